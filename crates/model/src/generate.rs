//! Text generation: sampling (greedy, temperature, top-k, top-p, min-p, repetition, presence
//! and frequency penalties, seeded), stop sequences and stop tokens, token streaming through a
//! callback, incremental detokenisation that never splits a UTF-8 character, and batched
//! decoding with one KV cache per sequence.

use std::collections::HashMap;

use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg32;
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use crate::lm::{Lm, LmCache};
use crate::{Error, Result};

/// How to pick tokens and when to stop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplingParams {
    /// Most tokens to generate.
    pub max_new_tokens: usize,
    /// Softmax temperature; 0 picks the most likely token (greedy).
    pub temperature: f64,
    /// Keep only the `k` most likely tokens.
    pub top_k: Option<usize>,
    /// Keep the smallest set of tokens whose probability reaches `p` (nucleus sampling).
    pub top_p: Option<f64>,
    /// Drop tokens less likely than `min_p` times the most likely one.
    pub min_p: Option<f64>,
    /// Divide positive (multiply negative) logits of tokens already in the prompt or output.
    pub repetition_penalty: f64,
    /// Subtract from the logits of tokens already generated (OpenAI's `presence_penalty`).
    pub presence_penalty: f64,
    /// Subtract, per occurrence, from tokens already generated (OpenAI's `frequency_penalty`).
    pub frequency_penalty: f64,
    /// Seed of the sampler.
    pub seed: u64,
    /// Stop when the text contains one of these (the stop string itself is not returned).
    pub stop: Vec<String>,
    /// Stop after one of these tokens (end of sequence); it is not returned.
    pub stop_token_ids: Vec<u32>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            max_new_tokens: 128,
            temperature: 0.0,
            top_k: None,
            top_p: None,
            min_p: None,
            repetition_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            seed: 0,
            stop: Vec::new(),
            stop_token_ids: Vec::new(),
        }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// A stop token or stop sequence.
    Stop,
    /// `max_new_tokens`, or the model's context, was reached.
    Length,
    /// The caller's callback asked to stop.
    Cancelled,
}

/// Turns logits into tokens, keeping the state that penalties and the seeded RNG need.
#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplingParams,
    rng: Pcg32,
    seen: std::collections::HashSet<u32>,
    generated: HashMap<u32, u32>,
}

impl Sampler {
    /// A sampler; `prompt` tokens count for the repetition penalty.
    pub fn new(params: &SamplingParams, prompt: &[u32]) -> Self {
        Self {
            params: params.clone(),
            rng: Pcg32::seed_from_u64(params.seed),
            seen: prompt.iter().copied().collect(),
            generated: HashMap::new(),
        }
    }

    /// Applies the penalties and the temperature: the distribution that sampling draws from,
    /// as logits.
    pub fn adjust(&self, logits: &mut [f32]) {
        let p = &self.params;
        if p.repetition_penalty != 1.0 {
            for &t in &self.seen {
                if let Some(l) = logits.get_mut(t as usize) {
                    *l = if *l > 0.0 {
                        *l / p.repetition_penalty as f32
                    } else {
                        *l * p.repetition_penalty as f32
                    };
                }
            }
        }
        if p.presence_penalty != 0.0 || p.frequency_penalty != 0.0 {
            for (&t, &n) in &self.generated {
                if let Some(l) = logits.get_mut(t as usize) {
                    *l -= (p.presence_penalty + p.frequency_penalty * f64::from(n)) as f32;
                }
            }
        }
        if p.temperature > 0.0 && p.temperature != 1.0 {
            logits.iter_mut().for_each(|l| *l /= p.temperature as f32);
        }
    }

    /// Picks the next token from `logits` (one position) and records it.
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        let mut l = logits.to_vec();
        self.adjust(&mut l);
        let token = if self.params.temperature <= 0.0 {
            argmax(&l)
        } else {
            self.draw(&l)
        };
        self.seen.insert(token);
        *self.generated.entry(token).or_insert(0) += 1;
        token
    }

    /// Draws from the softmax of `l` after top-k, top-p and min-p filtering.
    fn draw(&mut self, l: &[f32]) -> u32 {
        let max = l.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut probs: Vec<(u32, f32)> = l
            .iter()
            .enumerate()
            .map(|(i, &x)| (i as u32, (x - max).exp()))
            .collect();
        probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        if let Some(k) = self.params.top_k.filter(|&k| k > 0) {
            probs.truncate(k);
        }
        let total: f32 = probs.iter().map(|p| p.1).sum();
        probs.iter_mut().for_each(|p| p.1 /= total);
        if let Some(top_p) = self.params.top_p.filter(|&p| p < 1.0) {
            let mut acc = 0.0;
            let mut keep = 0;
            for (i, p) in probs.iter().enumerate() {
                acc += p.1;
                keep = i + 1;
                if f64::from(acc) >= top_p {
                    break;
                }
            }
            probs.truncate(keep.max(1));
        }
        if let Some(min_p) = self.params.min_p.filter(|&p| p > 0.0) {
            let cutoff = probs[0].1 * min_p as f32;
            probs.retain(|p| p.1 >= cutoff);
        }
        let total: f32 = probs.iter().map(|p| p.1).sum();
        let mut r = self.rng.random::<f32>() * total;
        for &(t, p) in &probs {
            r -= p;
            if r <= 0.0 {
                return t;
            }
        }
        probs.last().map_or(0, |p| p.0)
    }
}

/// Index of the largest value (the first one on ties, as `torch.argmax`).
pub fn argmax(l: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in l.iter().enumerate() {
        if x > l[best] {
            best = i;
        }
    }
    best as u32
}

/// Decodes tokens as they come, returning only complete characters: a byte-level token that
/// ends inside a UTF-8 character is held back until the character is whole.
#[derive(Debug, Clone, Default)]
pub struct Detokenizer {
    ids: Vec<u32>,
    prefix: usize,
    read: usize,
}

impl Detokenizer {
    /// Adds a token; returns the new text, if any is complete.
    pub fn push(&mut self, tok: &Tokenizer, id: u32) -> Result<Option<String>> {
        self.ids.push(id);
        let before = tok
            .decode(&self.ids[self.prefix..self.read], false)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        let after = tok
            .decode(&self.ids[self.prefix..], false)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        if after.len() > before.len() && !after.ends_with('\u{fffd}') && after.starts_with(&before)
        {
            let delta = after[before.len()..].to_owned();
            self.prefix = self.read;
            self.read = self.ids.len();
            Ok(Some(delta))
        } else {
            Ok(None)
        }
    }
}

/// The result of one generation.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// Generated token ids (stop tokens excluded).
    pub tokens: Vec<u32>,
    /// Generated text (stop sequence excluded).
    pub text: String,
    /// Why it ended.
    pub finish: FinishReason,
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
}

/// Changes logits (one position, the whole vocabulary) before a token is sampled.
pub type LogitsHook<'a> = dyn FnMut(&mut [f32]) -> Result<()> + 'a;

/// One sequence being generated: its cache, sampler, text and stop handling.
#[derive(Debug)]
pub struct Sequence {
    /// The KV cache.
    pub cache: LmCache,
    sampler: Sampler,
    detok: Detokenizer,
    params: SamplingParams,
    tokens: Vec<u32>,
    text: String,
    emitted: usize,
    prompt_tokens: usize,
    /// The logits of the last step, as the sampler saw them before penalties.
    logits: Vec<f32>,
    /// Set when the sequence has ended.
    pub finish: Option<FinishReason>,
}

impl Sequence {
    /// Runs the prompt through the model and samples the first token.
    pub fn start(
        model: &Lm,
        tok: &Tokenizer,
        prompt: &[u32],
        params: &SamplingParams,
    ) -> Result<(Self, Option<String>)> {
        Self::start_with(model, tok, prompt, params, None)
    }

    /// [`Sequence::start`] with a hook that may change the logits before the first token is
    /// sampled (e.g. mask tokens a grammar forbids).
    pub fn start_with(
        model: &Lm,
        tok: &Tokenizer,
        prompt: &[u32],
        params: &SamplingParams,
        adjust: Option<&mut LogitsHook<'_>>,
    ) -> Result<(Self, Option<String>)> {
        Self::start_cached(model, tok, prompt, params, model.new_cache(), adjust)
    }

    /// [`Sequence::start_with`] on a cache that already holds the first `cache.len()` tokens
    /// of `prompt` (a shared prefix): only the rest of the prompt is run.
    pub fn start_cached(
        model: &Lm,
        tok: &Tokenizer,
        prompt: &[u32],
        params: &SamplingParams,
        cache: LmCache,
        adjust: Option<&mut LogitsHook<'_>>,
    ) -> Result<(Self, Option<String>)> {
        if prompt.is_empty() {
            return Err(Error::Invalid("the prompt is empty".into()));
        }
        if prompt.len() >= model.context() {
            return Err(Error::Invalid(format!(
                "the prompt has {} tokens; the model's context is {}",
                prompt.len(),
                model.context()
            )));
        }
        if cache.len() >= prompt.len() {
            return Err(Error::Invalid(format!(
                "a cache of {} positions for a prompt of {} tokens",
                cache.len(),
                prompt.len()
            )));
        }
        let mut cache = cache;
        let logits = model.prefill(&prompt[cache.len()..], &mut cache)?;
        let mut seq = Self {
            cache,
            sampler: Sampler::new(params, prompt),
            detok: Detokenizer::default(),
            params: params.clone(),
            tokens: Vec::new(),
            text: String::new(),
            emitted: 0,
            prompt_tokens: prompt.len(),
            logits: Vec::new(),
            finish: None,
        };
        let delta = seq.accept_with(model, tok, &logits, adjust)?;
        Ok((seq, delta))
    }

    /// The token to feed next (the last sampled one).
    pub fn last_token(&self) -> Option<u32> {
        self.tokens.last().copied()
    }

    /// The raw logits of the last step (for log-probabilities).
    pub fn last_logits(&self) -> &[f32] {
        &self.logits
    }

    /// Tokens generated so far (a stop token is not counted).
    pub fn generated(&self) -> usize {
        self.tokens.len()
    }

    /// The tokens generated so far.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Samples from `logits` (vocab,), updates text and stop state; returns text safe to emit.
    pub fn accept(
        &mut self,
        model: &Lm,
        tok: &Tokenizer,
        logits: &[f32],
    ) -> Result<Option<String>> {
        self.accept_with(model, tok, logits, None)
    }

    /// [`Sequence::accept`] with a hook that may change the logits before sampling; the raw
    /// logits are kept for [`Sequence::last_logits`].
    pub fn accept_with(
        &mut self,
        model: &Lm,
        tok: &Tokenizer,
        logits: &[f32],
        adjust: Option<&mut LogitsHook<'_>>,
    ) -> Result<Option<String>> {
        let l: Vec<f32> = logits.to_vec();
        let t = match adjust {
            Some(f) => {
                let mut hooked = l.clone();
                f(&mut hooked)?;
                self.sampler.sample(&hooked)
            }
            None => self.sampler.sample(&l),
        };
        self.logits = l;
        if self.params.stop_token_ids.contains(&t) {
            self.finish = Some(FinishReason::Stop);
            return Ok(self.flush());
        }
        self.tokens.push(t);
        if let Some(d) = self.detok.push(tok, t)? {
            self.text.push_str(&d);
        }
        if let Some(pos) = self
            .params
            .stop
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| self.text.find(s.as_str()))
            .min()
        {
            self.text.truncate(pos);
            self.finish = Some(FinishReason::Stop);
            return Ok(self.flush());
        }
        let at_limit = self.tokens.len() >= self.params.max_new_tokens
            || self.prompt_tokens + self.tokens.len() >= model.context();
        if at_limit {
            self.finish = Some(FinishReason::Length);
            return Ok(self.flush());
        }
        // Hold back what could be the start of a stop sequence.
        let hold = self
            .params
            .stop
            .iter()
            .map(|s| s.len().saturating_sub(1))
            .max()
            .unwrap_or(0);
        let mut safe = self.text.len().saturating_sub(hold).max(self.emitted);
        while !self.text.is_char_boundary(safe) {
            safe -= 1;
        }
        if safe > self.emitted {
            let out = self.text[self.emitted..safe].to_owned();
            self.emitted = safe;
            Ok(Some(out))
        } else {
            Ok(None)
        }
    }

    /// Everything not yet emitted.
    fn flush(&mut self) -> Option<String> {
        if self.text.len() > self.emitted {
            let out = self.text[self.emitted..].to_owned();
            self.emitted = self.text.len();
            Some(out)
        } else {
            None
        }
    }

    /// Ends the sequence now (e.g. a grammar is complete); returns the text not yet emitted.
    pub fn finish_now(&mut self, reason: FinishReason) -> Option<String> {
        self.finish.get_or_insert(reason);
        self.flush()
    }

    /// Ends the sequence at the caller's request.
    pub fn cancel(&mut self) {
        self.finish.get_or_insert(FinishReason::Cancelled);
    }

    /// The finished result.
    pub fn result(&self) -> Generation {
        Generation {
            tokens: self.tokens.clone(),
            text: self.text.clone(),
            finish: self.finish.unwrap_or(FinishReason::Length),
            prompt_tokens: self.prompt_tokens,
        }
    }
}

/// Generates from one prompt, calling `on_text` with each new piece of text; returning `false`
/// from it stops generation.
pub fn generate(
    model: &Lm,
    tok: &Tokenizer,
    prompt: &[u32],
    params: &SamplingParams,
    on_text: &mut dyn FnMut(&str) -> bool,
) -> Result<Generation> {
    let (mut seq, delta) = Sequence::start(model, tok, prompt, params)?;
    if let Some(d) = delta
        && !on_text(&d)
    {
        seq.cancel();
    }
    while seq.finish.is_none() {
        let Some(last) = seq.last_token() else { break };
        let logits = model.decode(&[last], &mut [&mut seq.cache])?;
        if let Some(d) = seq.accept(model, tok, &logits)?
            && !on_text(&d)
        {
            seq.cancel();
        }
    }
    Ok(seq.result())
}

/// Generates from several prompts at once: each prompt is prefilled on its own, then every
/// step decodes all unfinished sequences in one batch.
pub fn generate_batch(
    model: &Lm,
    tok: &Tokenizer,
    prompts: &[Vec<u32>],
    params: &[SamplingParams],
) -> Result<Vec<Generation>> {
    if prompts.len() != params.len() {
        return Err(Error::Invalid(format!(
            "{} prompts but {} parameter sets",
            prompts.len(),
            params.len()
        )));
    }
    let mut seqs = prompts
        .iter()
        .zip(params)
        .map(|(p, sp)| Sequence::start(model, tok, p, sp).map(|s| s.0))
        .collect::<Result<Vec<_>>>()?;
    loop {
        let active: Vec<usize> = (0..seqs.len())
            .filter(|&i| seqs[i].finish.is_none())
            .collect();
        if active.is_empty() {
            break;
        }
        let tokens: Vec<u32> = active
            .iter()
            .filter_map(|&i| seqs[i].last_token())
            .collect();
        let logits = {
            let mut caches: Vec<&mut LmCache> = seqs
                .iter_mut()
                .filter(|s| s.finish.is_none())
                .map(|s| &mut s.cache)
                .collect();
            model.decode(&tokens, &mut caches)?
        };
        let v = model.vocab();
        for (row, &i) in active.iter().enumerate() {
            seqs[i].accept(model, tok, &logits[row * v..(row + 1) * v])?;
        }
    }
    Ok(seqs.iter().map(Sequence::result).collect())
}

/// Greedy continuation of `prompt` by `n` tokens, ignoring stop tokens (for parity tests).
pub fn greedy(model: &Lm, prompt: &[u32], n: usize) -> Result<Vec<u32>> {
    let mut cache = model.new_cache();
    let mut next = argmax(&model.prefill(prompt, &mut cache)?);
    let mut out = vec![next];
    while out.len() < n {
        next = argmax(&model.decode(&[next], &mut [&mut cache])?);
        out.push(next);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_and_filters() {
        let logits = [1.0f32, 3.0, 2.0, 3.0];
        assert_eq!(argmax(&logits), 1);
        let p = SamplingParams {
            temperature: 1.0,
            top_k: Some(1),
            ..Default::default()
        };
        let mut s = Sampler::new(&p, &[]);
        assert_eq!(s.sample(&logits), 1, "top-k 1 is greedy");
        let p = SamplingParams {
            temperature: 0.7,
            min_p: Some(0.9),
            seed: 3,
            ..Default::default()
        };
        let mut s = Sampler::new(&p, &[]);
        for _ in 0..20 {
            assert!(
                matches!(s.sample(&logits), 1 | 3),
                "min-p keeps only the two best"
            );
        }
    }

    #[test]
    fn same_seed_same_samples() {
        let logits: Vec<f32> = (0..50).map(|i| (i as f32 * 0.37).sin()).collect();
        let p = SamplingParams {
            temperature: 1.0,
            top_p: Some(0.9),
            seed: 42,
            ..Default::default()
        };
        let a: Vec<u32> = {
            let mut s = Sampler::new(&p, &[]);
            (0..30).map(|_| s.sample(&logits)).collect()
        };
        let b: Vec<u32> = {
            let mut s = Sampler::new(&p, &[]);
            (0..30).map(|_| s.sample(&logits)).collect()
        };
        assert_eq!(a, b);
        assert!(
            a.iter().collect::<std::collections::HashSet<_>>().len() > 3,
            "sampling varies"
        );
    }

    #[test]
    fn penalties_push_repeated_tokens_down() {
        let p = SamplingParams {
            repetition_penalty: 2.0,
            frequency_penalty: 1.0,
            ..Default::default()
        };
        let mut s = Sampler::new(&p, &[0]);
        let mut l = vec![2.0f32, 1.5, -1.0];
        s.adjust(&mut l);
        assert_eq!(l[0], 1.0, "prompt token divided by the repetition penalty");
        assert_eq!(s.sample(&[2.0, 1.5, -1.0]), 1);
        let mut l = vec![2.0f32, 1.5, -1.0];
        s.adjust(&mut l);
        assert_eq!(
            l[1],
            1.5 / 2.0 - 1.0,
            "generated token: repetition then frequency penalty"
        );
    }
}

//! The inference engine of one decoder: a bounded request queue and a thread that owns the
//! model and runs continuous batching. Each step it admits waiting requests (prefilling each
//! prompt into its own KV cache), then decodes one token for every active sequence in one
//! batch. A sequence whose client has gone away is dropped before the next step, so its slot
//! is free within one decode step.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError};
use std::time::Instant;

use duet_model::generate::{FinishReason, SamplingParams, Sequence};
use duet_model::lm::{Lm, LmCache};

use serde::Serialize;
use tokenizers::Tokenizer;
use tokio::sync::mpsc::UnboundedSender;

use crate::metrics::Metrics;
use crate::prefix::PrefixCache;
use duet_model::constrain as grammar;

/// Limits of one engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Sequences decoded together at most (the rest wait in the queue).
    pub max_batch: usize,
    /// Requests waiting for a slot at most; more are refused (HTTP 429).
    pub queue: usize,
    /// Prompt tokens run between two decode steps at most while sequences decode (a longer
    /// prompt is run in chunks of this size over several steps), so that new requests delay
    /// running streams by a bounded amount.
    pub prefill_budget: usize,
    /// Bytes of keys and values the prefix cache keeps at most (0: no prefix cache).
    pub prefix_cache_bytes: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_batch: 64,
            queue: 256,
            prefill_budget: 128,
            prefix_cache_bytes: 256 << 20,
        }
    }
}

/// One alternative for a sampled token, as OpenAI's `top_logprobs` lists them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopLogprob {
    /// The token's text.
    pub token: String,
    /// Its log-probability under the model.
    pub logprob: f32,
    /// The UTF-8 bytes of the text.
    pub bytes: Vec<u8>,
}

/// The log-probability of a sampled token and the most likely alternatives.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenLogprob {
    /// The token's text.
    pub token: String,
    /// Its log-probability under the model.
    pub logprob: f32,
    /// The UTF-8 bytes of the text.
    pub bytes: Vec<u8>,
    /// The `top_logprobs` most likely tokens at this position.
    pub top_logprobs: Vec<TopLogprob>,
}

/// What the engine sends back for a job.
#[derive(Debug, Clone)]
pub enum Event {
    /// The log-probabilities of the prompt's tokens after the first (each under the tokens
    /// before it), sent before any text when the job asked for them.
    Prompt {
        /// One per prompt token from the second on.
        logprobs: Vec<TokenLogprob>,
    },
    /// New text (possibly empty when only log-probabilities are new).
    Delta {
        /// Text safe to show (never a split character or a partial stop sequence).
        text: String,
        /// Log-probabilities of the tokens sampled since the last event, when asked for.
        logprobs: Vec<TokenLogprob>,
    },
    /// The sequence ended.
    Done {
        /// Why.
        finish: FinishReason,
        /// Tokens in the prompt.
        prompt_tokens: usize,
        /// Tokens generated.
        completion_tokens: usize,
    },
    /// The sequence failed; the message says why.
    Failed(String),
}

/// A generation request, ready for the engine: tokens in, events out.
pub struct Job {
    /// The prompt's tokens (checked against the context by the caller).
    pub prompt: Vec<u32>,
    /// Sampling and stopping.
    pub params: SamplingParams,
    /// `Some(n)`: report each sampled token's log-probability and the `n` most likely ones.
    pub logprobs: Option<usize>,
    /// Also report the prompt's tokens' log-probabilities ([`Event::Prompt`]), with the `n`
    /// of `logprobs` alternatives. A job with `max_new_tokens == 0` only scores its prompt.
    pub prompt_logprobs: bool,
    /// Give up after this instant.
    pub deadline: Option<Instant>,
    /// Where events go; when the receiver is dropped, the job is cancelled.
    pub events: UnboundedSender<Event>,
    /// A grammar the output must follow (structured output).
    pub grammar: Option<llguidance::Matcher>,
}

/// Why a job was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmitError {
    /// The queue is full: try again later.
    Full,
    /// The engine has stopped.
    Stopped,
}

/// A handle on an engine thread; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    tx: SyncSender<Job>,
    queued: Arc<AtomicUsize>,
    active: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("queued", &self.queued())
            .field("active", &self.active())
            .finish()
    }
}

/// A job whose prompt is being run (over several steps when it is long).
struct Prefilling {
    job: Job,
    /// The positions of the prompt run so far (a cached prefix, then chunks).
    cache: LmCache,
    /// When the job was taken (time to first token counts from here).
    started: Instant,
}

/// A sequence being decoded, with its client's channel.
struct Slot {
    seq: Sequence,
    job: Job,
    last_event: Instant,
    /// Tokens generated when the last event was sent.
    generated: usize,
}

impl Engine {
    /// Starts the engine thread for `model`; it runs until every handle is dropped and the
    /// last sequence has finished.
    pub fn start(
        name: &str,
        model: Lm,
        tokenizer: Arc<Tokenizer>,
        config: EngineConfig,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::sync_channel(config.queue.max(1));
        let queued = Arc::new(AtomicUsize::new(0));
        let active = Arc::new(AtomicUsize::new(0));
        let worker = Worker {
            name: name.to_owned(),
            model,
            tokenizer,
            max_batch: config.max_batch.max(1),
            prefill_budget: config.prefill_budget,
            prefix: RefCell::new(PrefixCache::new(config.prefix_cache_bytes)),
            rx,
            queued: queued.clone(),
            active: active.clone(),
            metrics,
        };
        std::thread::Builder::new()
            .name(format!("engine-{name}"))
            .spawn(move || worker.run())?;
        Ok(Self { tx, queued, active })
    }

    /// Queues a job; refuses at once when the queue is full.
    pub fn submit(&self, job: Job) -> Result<(), SubmitError> {
        self.queued.fetch_add(1, Ordering::SeqCst);
        match self.tx.try_send(job) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.queued.fetch_sub(1, Ordering::SeqCst);
                Err(match e {
                    TrySendError::Full(_) => SubmitError::Full,
                    TrySendError::Disconnected(_) => SubmitError::Stopped,
                })
            }
        }
    }

    /// Jobs waiting for a slot.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }

    /// Sequences being decoded.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }
}

/// The engine thread's state.
struct Worker {
    name: String,
    model: Lm,
    tokenizer: Arc<Tokenizer>,
    max_batch: usize,
    prefill_budget: usize,
    prefix: RefCell<PrefixCache>,
    rx: Receiver<Job>,
    queued: Arc<AtomicUsize>,
    active: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
}

impl Worker {
    fn run(self) {
        let mut slots: Vec<Slot> = Vec::new();
        let mut pending: VecDeque<Prefilling> = VecDeque::new();
        let mut open = true;
        loop {
            if slots.is_empty() && pending.is_empty() {
                if !open {
                    break;
                }
                match self.rx.recv() {
                    Ok(job) => self.admit(job, &mut pending),
                    Err(_) => break,
                }
            }
            while open && slots.len() + pending.len() < self.max_batch {
                match self.rx.try_recv() {
                    Ok(job) => self.admit(job, &mut pending),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => open = false,
                }
            }
            self.prefill(&mut pending, &mut slots);
            self.drop_gone(&mut slots);
            self.active.store(slots.len(), Ordering::SeqCst);
            self.metrics
                .set_load(&self.name, self.queued() + pending.len(), slots.len());
            if !slots.is_empty() {
                self.step(&mut slots);
            }
            self.active.store(slots.len(), Ordering::SeqCst);
        }
        self.active.store(0, Ordering::SeqCst);
        tracing::info!(model = %self.name, "engine stopped");
    }

    /// Runs waiting prompts: while sequences decode, at most `prefill_budget` prompt tokens
    /// per step, a long prompt in chunks over several steps (so it does not stall the streams
    /// running); when none decode, at least the first prompt whole.
    fn prefill(&self, pending: &mut VecDeque<Prefilling>, slots: &mut Vec<Slot>) {
        let mut budget = self.prefill_budget.max(1);
        while let Some(p) = pending.front_mut() {
            if p.job.events.is_closed() {
                self.metrics.cancelled.inc();
                pending.pop_front();
                continue;
            }
            let left = p.job.prompt.len() - p.cache.len();
            if left > budget && !slots.is_empty() {
                // A chunk, leaving the prompt's last token for the step that samples.
                let n = budget.min(left - 1);
                let from = p.cache.len();
                let chunk = &p.job.prompt[from..from + n];
                let ran = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    self.model.prefill(chunk, &mut p.cache)
                }));
                self.metrics.prefill_chunks.inc();
                if !matches!(ran, Ok(Ok(_))) {
                    let why = match ran {
                        Ok(Err(e)) => e.to_string(),
                        _ => "internal error in the engine".to_owned(),
                    };
                    let _ = p.job.events.send(Event::Failed(why));
                    pending.pop_front();
                }
                return;
            }
            let Some(p) = pending.pop_front() else { break };
            budget = budget.saturating_sub(left);
            self.start(p, slots);
            if budget == 0 && !slots.is_empty() {
                return;
            }
        }
    }

    fn queued(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }

    /// Drops sequences whose client went away or whose time is up.
    fn drop_gone(&self, slots: &mut Vec<Slot>) {
        let now = Instant::now();
        slots.retain(|s| {
            if s.job.events.is_closed() {
                self.metrics.cancelled.inc();
                return false;
            }
            if s.job.deadline.is_some_and(|d| now >= d) {
                let _ = s.job.events.send(Event::Failed(
                    "the request took longer than the server's time limit".into(),
                ));
                self.metrics.timeouts.inc();
                return false;
            }
            true
        });
    }

    /// Takes a new job: answers at once what needs no decoding (scoring only), else queues
    /// its prompt to be run, from the longest cached prefix.
    fn admit(&self, job: Job, pending: &mut VecDeque<Prefilling>) {
        self.queued.fetch_sub(1, Ordering::SeqCst);
        if job.events.is_closed() {
            self.metrics.cancelled.inc();
            return;
        }
        if job.deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = job.events.send(Event::Failed(
                "the request waited longer than the server's time limit".into(),
            ));
            self.metrics.timeouts.inc();
            return;
        }
        let started = Instant::now();
        if job.prompt_logprobs && !self.score_prompt(&job) {
            return;
        }
        if job.params.max_new_tokens == 0 {
            let _ = job.events.send(Event::Done {
                finish: FinishReason::Length,
                prompt_tokens: job.prompt.len(),
                completion_tokens: 0,
            });
            return;
        }
        let cached = self.prefix.borrow_mut().lookup(&job.prompt);
        let reused = cached.as_ref().map_or(0, LmCache::len);
        if reused > 0 {
            self.metrics.prefix_hits.inc();
            self.metrics.prefix_tokens.inc_by(reused as u64);
        }
        pending.push_back(Prefilling {
            cache: cached.unwrap_or_else(|| self.model.new_cache()),
            job,
            started,
        });
    }

    /// Runs the rest of a prompt, samples the first token and, unless the sequence is
    /// already over, gives it a slot.
    fn start(&self, p: Prefilling, slots: &mut Vec<Slot>) {
        let Prefilling {
            mut job,
            cache,
            started,
        } = p;
        let prefill = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let Job {
                prompt,
                params,
                grammar,
                ..
            } = &mut job;
            match grammar {
                Some(m) => Sequence::start_cached(
                    &self.model,
                    &self.tokenizer,
                    prompt,
                    params,
                    cache,
                    Some(&mut |l: &mut [f32]| grammar::mask(m, l)),
                ),
                None => Sequence::start_cached(
                    &self.model,
                    &self.tokenizer,
                    prompt,
                    params,
                    cache,
                    None,
                ),
            }
        }));
        match prefill {
            Ok(Ok((seq, text))) => {
                self.prefix.borrow_mut().insert(&job.prompt, &seq.cache);
                self.metrics.ttft.observe(started.elapsed().as_secs_f64());
                let mut slot = Slot {
                    seq,
                    job,
                    last_event: Instant::now(),
                    generated: 0,
                };
                if self.emit_checked(&mut slot, text) {
                    slots.push(slot);
                }
            }
            Ok(Err(e)) => {
                let _ = job.events.send(Event::Failed(e.to_string()));
            }
            Err(_) => {
                tracing::error!(model = %self.name, "a prefill panicked; the request failed");
                let _ = job
                    .events
                    .send(Event::Failed("internal error in the engine".into()));
            }
        }
    }

    /// Sends the log-probabilities of the job's prompt tokens; `false` when that failed (the
    /// job has then been told).
    fn score_prompt(&self, job: &Job) -> bool {
        let scored = std::panic::catch_unwind(AssertUnwindSafe(|| self.model.score(&job.prompt)));
        let logits = match scored {
            Ok(Ok(l)) => l,
            Ok(Err(e)) => {
                let _ = job.events.send(Event::Failed(e.to_string()));
                return false;
            }
            Err(_) => {
                let _ = job
                    .events
                    .send(Event::Failed("internal error in the engine".into()));
                return false;
            }
        };
        let vocab = self.model.vocab();
        let top = job.logprobs.unwrap_or(0);
        let logprobs = job
            .prompt
            .iter()
            .enumerate()
            .skip(1)
            .map(|(i, &t)| {
                let row = &logits[(i - 1) * vocab..i * vocab];
                token_logprob(&self.tokenizer, row, t, top)
            })
            .collect();
        job.events.send(Event::Prompt { logprobs }).is_ok()
    }

    /// Feeds a new token to the slot's grammar (ending the sequence when the output is
    /// complete), then [`Worker::emit`]s.
    fn emit_checked(&self, slot: &mut Slot, text: Option<String>) -> bool {
        let mut text = text;
        if let (Some(m), Some(t)) = (slot.job.grammar.as_mut(), slot.seq.last_token())
            && slot.seq.generated() > slot.generated
        {
            match grammar::advance(m, t) {
                Ok(Some(reason)) if slot.seq.finish.is_none() => {
                    if let Some(rest) = slot.seq.finish_now(reason) {
                        text.get_or_insert_with(String::new).push_str(&rest);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = slot.job.events.send(Event::Failed(e));
                    return false;
                }
            }
        }
        self.emit(slot, text)
    }

    /// Sends the text (and log-probabilities) of a step, and `Done` when the sequence ended.
    /// Returns whether the sequence goes on.
    fn emit(&self, slot: &mut Slot, text: Option<String>) -> bool {
        let mut logprobs = Vec::new();
        let now_generated = slot.seq.generated();
        if let (Some(n), Some(t)) = (slot.job.logprobs, slot.seq.last_token())
            && now_generated > slot.generated
        {
            logprobs.push(token_logprob(&self.tokenizer, slot.seq.last_logits(), t, n));
        }
        slot.generated = now_generated;
        let now = Instant::now();
        if text.is_some() || !logprobs.is_empty() {
            self.metrics
                .itl
                .observe(now.duration_since(slot.last_event).as_secs_f64());
            slot.last_event = now;
            let sent = slot.job.events.send(Event::Delta {
                text: text.unwrap_or_default(),
                logprobs,
            });
            if sent.is_err() {
                self.metrics.cancelled.inc();
                return false;
            }
        }
        if let Some(finish) = slot.seq.finish {
            // The whole conversation so far, for its next turn.
            let mut tokens = slot.job.prompt.clone();
            tokens.extend_from_slice(slot.seq.tokens());
            self.prefix.borrow_mut().insert(&tokens, &slot.seq.cache);
            self.metrics
                .tokens_out
                .get_or_create(&crate::metrics::ModelLabel::new(&self.name))
                .inc_by(now_generated as u64);
            let _ = slot.job.events.send(Event::Done {
                finish,
                prompt_tokens: slot.job.prompt.len(),
                completion_tokens: now_generated,
            });
            return false;
        }
        true
    }

    /// Decodes one token for every slot in one batch.
    fn step(&self, slots: &mut Vec<Slot>) {
        let tokens: Vec<u32> = slots.iter().filter_map(|s| s.seq.last_token()).collect();
        if tokens.len() != slots.len() {
            // A sequence without a sampled token cannot continue; end those.
            slots.retain(|s| s.seq.last_token().is_some());
            return;
        }
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let mut caches: Vec<&mut LmCache> =
                slots.iter_mut().map(|s| &mut s.seq.cache).collect();
            self.model.decode(&tokens, &mut caches)
        }));
        self.metrics.decode_steps.inc();
        let logits = match result {
            Ok(Ok(l)) => l,
            Ok(Err(e)) => return self.fail_all(slots, &e.to_string()),
            Err(_) => return self.fail_all(slots, "internal error in the engine"),
        };
        let mut keep = Vec::with_capacity(slots.len());
        let vocab = self.model.vocab();
        for (row, mut slot) in std::mem::take(slots).into_iter().enumerate() {
            let l = &logits[row * vocab..(row + 1) * vocab];
            let accepted = match &mut slot.job.grammar {
                Some(m) => slot.seq.accept_with(
                    &self.model,
                    &self.tokenizer,
                    l,
                    Some(&mut |l: &mut [f32]| grammar::mask(m, l)),
                ),
                None => slot.seq.accept(&self.model, &self.tokenizer, l),
            };
            match accepted {
                Ok(text) => {
                    if self.emit_checked(&mut slot, text) {
                        keep.push(slot);
                    }
                }
                Err(e) => {
                    let _ = slot.job.events.send(Event::Failed(e.to_string()));
                }
            }
        }
        *slots = keep;
    }

    fn fail_all(&self, slots: &mut Vec<Slot>, why: &str) {
        tracing::error!(model = %self.name, "decode step failed: {why}");
        for s in slots.drain(..) {
            let _ = s.job.events.send(Event::Failed(why.to_owned()));
        }
    }
}

/// The log-probability of token `t` under `logits` and the `n` most likely tokens.
pub fn token_logprob(tok: &Tokenizer, logits: &[f32], t: u32, n: usize) -> TokenLogprob {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = max + logits.iter().map(|&x| (x - max).exp()).sum::<f32>().ln();
    let text = |id: u32| tok.decode(&[id], false).unwrap_or_default();
    let mut order: Vec<usize> = (0..logits.len()).collect();
    let n = n.min(logits.len());
    if n > 0 {
        order.select_nth_unstable_by(n - 1, |&a, &b| logits[b].total_cmp(&logits[a]));
        order.truncate(n);
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    } else {
        order.clear();
    }
    let token = text(t);
    TokenLogprob {
        bytes: token.as_bytes().to_vec(),
        logprob: logits
            .get(t as usize)
            .map_or(f32::NEG_INFINITY, |&l| l - lse),
        token,
        top_logprobs: order
            .into_iter()
            .map(|i| {
                let token = text(i as u32);
                TopLogprob {
                    bytes: token.as_bytes().to_vec(),
                    logprob: logits[i] - lse,
                    token,
                }
            })
            .collect(),
    }
}

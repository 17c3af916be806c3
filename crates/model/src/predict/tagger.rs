//! Loading a token-classification directory and pulling entities out of text.

use std::path::Path;

use candle_core::Device;
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use super::classifier::argmax;
use super::windows::{
    Window, encoder_tokenizer, labelled_config, pad, softmax, split_words, window_len, word_windows,
};
use crate::Result;
use crate::bert::BertForTokenClassification;
use crate::hub::Checkpoint;

/// An entity found in a text, with character offsets (as Rasa and spaCy report them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entity {
    /// The entity type.
    pub entity: String,
    /// First character.
    pub start: usize,
    /// One past the last character.
    pub end: usize,
    /// The text of the entity.
    pub value: String,
    /// The mean probability of its words' tags.
    pub confidence: f32,
}

/// A loaded `BertForTokenClassification` directory.
pub struct EntityTagger {
    model: BertForTokenClassification,
    tokenizer: Tokenizer,
    tags: Vec<String>,
    max_len: usize,
    pad: u32,
}

impl EntityTagger {
    /// Loads a directory written by `duet train tokens` (or any Hugging Face
    /// `BertForTokenClassification` directory with `id2label`).
    pub fn load(dir: &Path) -> Result<Self> {
        let dev = Device::Cpu;
        let (cfg, tags) = labelled_config(dir)?;
        let ck = Checkpoint::load(dir, &dev)?;
        let model = BertForTokenClassification::load(ck.var_builder(&dev), &cfg, tags.len())?;
        ck.finish()?;
        let max_len = window_len(&cfg);
        Ok(Self {
            model,
            tokenizer: encoder_tokenizer(dir)?,
            tags,
            max_len,
            pad: cfg.pad_token_id,
        })
    }

    /// The tag set, in logit order.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }

    /// Tag probabilities of each word of each sentence (sentences given as words).
    pub fn word_probs(&self, sentences: &[Vec<&str>], batch: usize) -> Result<Vec<Vec<Vec<f32>>>> {
        let windows: Vec<Vec<Window>> = sentences
            .iter()
            .map(|w| word_windows(&self.tokenizer, w, self.max_len))
            .collect::<Result<_>>()?;
        word_probs(&self.model, &windows, self.pad, &Device::Cpu, batch)
    }

    /// The most probable tag of each word of each sentence.
    pub fn tag_words(&self, sentences: &[Vec<&str>], batch: usize) -> Result<Vec<Vec<String>>> {
        Ok(self
            .word_probs(sentences, batch)?
            .iter()
            .map(|p| best_tags(p, &self.tags))
            .collect())
    }

    /// The entities of each text.
    pub fn extract(&self, texts: &[&str], batch: usize) -> Result<Vec<Vec<Entity>>> {
        let spans: Vec<Vec<(usize, usize)>> = texts.iter().map(|t| split_words(t)).collect();
        let words: Vec<Vec<&str>> = texts
            .iter()
            .zip(&spans)
            .map(|(t, s)| s.iter().map(|&(a, b)| &t[a..b]).collect())
            .collect();
        let probs = self.word_probs(&words, batch)?;
        Ok(texts
            .iter()
            .zip(&spans)
            .zip(&probs)
            .map(|((t, s), p)| entities(t, s, p, &self.tags))
            .collect())
    }
}

/// Entities from word tag probabilities: spans of the best tags (seqeval's reading of BIO),
/// mapped back to character offsets of the text.
pub fn entities(
    text: &str,
    words: &[(usize, usize)],
    probs: &[Vec<f32>],
    tags: &[String],
) -> Vec<Entity> {
    let best = best_tags(probs, tags);
    let char_at = |byte: usize| text[..byte].chars().count();
    duet_eval::entities::spans(&best)
        .into_iter()
        .map(|s| {
            let (a, b) = (words[s.start].0, words[s.end - 1].1);
            let conf = probs[s.start..s.end]
                .iter()
                .map(|p| p.iter().copied().fold(0f32, f32::max))
                .sum::<f32>()
                / (s.end - s.start) as f32;
            Entity {
                entity: s.kind,
                start: char_at(a),
                end: char_at(b),
                value: text[a..b].to_owned(),
                confidence: conf,
            }
        })
        .collect()
}

/// Tag probabilities of every word of every sentence (each given as its windows), computed in
/// batches of windows of similar length.
pub fn word_probs(
    model: &BertForTokenClassification,
    sentences: &[Vec<Window>],
    pad_id: u32,
    dev: &Device,
    batch: usize,
) -> Result<Vec<Vec<Vec<f32>>>> {
    let mut flat: Vec<(usize, &Window)> = Vec::new();
    for (s, ws) in sentences.iter().enumerate() {
        flat.extend(ws.iter().map(|w| (s, w)));
    }
    let mut order: Vec<usize> = (0..flat.len()).collect();
    order.sort_by_key(|&i| flat[i].1.ids.len());
    let mut out: Vec<Vec<Vec<f32>>> = sentences
        .iter()
        .map(|ws| vec![Vec::new(); ws.iter().map(|w| w.heads.len()).sum()])
        .collect();
    for chunk in order.chunks(batch.max(1)) {
        let seqs: Vec<&[u32]> = chunk.iter().map(|&i| flat[i].1.ids.as_slice()).collect();
        let (ids, mask) = pad(&seqs, pad_id, dev)?;
        let logits: Vec<Vec<Vec<f32>>> = model
            .forward(&ids, &ids.zeros_like()?, &mask, None)?
            .to_vec3()?;
        for (&i, rows) in chunk.iter().zip(logits) {
            let (s, w) = flat[i];
            for (k, &pos) in w.heads.iter().enumerate() {
                out[s][w.first_word + k] = softmax(&rows[pos]);
            }
        }
    }
    Ok(out)
}

/// The tag of each word: the most probable one.
pub fn best_tags(probs: &[Vec<f32>], tags: &[String]) -> Vec<String> {
    probs.iter().map(|p| tags[argmax(p)].clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities_map_to_characters() {
        let text = "née à New York";
        let words = split_words(text);
        let tags: Vec<String> = ["O", "B-LOC", "I-LOC"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let p = |k: usize| {
            let mut v = vec![0.1f32; 3];
            v[k] = 0.8;
            v
        };
        let probs = vec![p(0), p(0), p(1), p(2)];
        let e = entities(text, &words, &probs, &tags);
        assert_eq!(e.len(), 1);
        assert_eq!((e[0].start, e[0].end), (6, 14));
        assert_eq!(e[0].value, "New York");
        assert_eq!(e[0].entity, "LOC");
        assert!((e[0].confidence - 0.8).abs() < 1e-6);
    }
}

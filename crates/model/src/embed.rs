//! Sentence embeddings as sentence-transformers computes them: tokenize (truncating at the
//! model's `max_seq_length`), encode, pool (`1_Pooling/config.json`), normalise (when
//! `modules.json` lists `Normalize`). Inputs are sorted by length and batched so that padding
//! wastes little.

use std::path::Path;
use std::sync::Arc;

use candle_core::Device;
use tokenizers::{Tokenizer, TruncationParams};

use crate::bert::{self, BertModel, Pooling};
use crate::hub::{Checkpoint, read_json};
use crate::{Error, Result};

/// A sentence encoder: a BERT model, its tokenizer and pooling.
#[derive(Debug, Clone)]
pub struct SentenceEmbedder {
    model: BertModel,
    tokenizer: Tokenizer,
    pooling: Pooling,
    normalize: bool,
    max_len: usize,
}

impl SentenceEmbedder {
    /// Loads a sentence-transformers (or plain BERT) directory.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let cfg = bert::Config::load(&dir.join("config.json"))?;
        let ck = Checkpoint::load(dir, device)?;
        let model = BertModel::load(ck.var_builder(device), &cfg, false)?;
        // Sentence embeddings pool the last hidden states; BERT's pooler layer is not used.
        ck.finish_except(&["pooler."])?;
        let tokenizer = crate::load_tokenizer(dir)?;
        let pooling = read_pooling(dir)?;
        let normalize = read_modules(dir)?.iter().any(|m| m.ends_with("Normalize"));
        let sbert = dir.join("sentence_bert_config.json");
        let max_len = if sbert.is_file() {
            let v: serde_json::Value = read_json(&sbert)?;
            v["max_seq_length"]
                .as_u64()
                .map(|n| n as usize)
                .unwrap_or(cfg.max_position_embeddings)
        } else {
            cfg.max_position_embeddings
        }
        .min(cfg.max_position_embeddings);
        Self::new(model, tokenizer, pooling, normalize, max_len)
    }

    /// An embedder from parts.
    pub fn new(
        model: BertModel,
        mut tokenizer: Tokenizer,
        pooling: Pooling,
        normalize: bool,
        max_len: usize,
    ) -> Result<Self> {
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                ..Default::default()
            }))
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        tokenizer.with_padding(None);
        Ok(Self {
            model,
            tokenizer,
            pooling,
            normalize,
            max_len,
        })
    }

    /// The same embedder truncating at `max_len` tokens (at most the model's positions).
    pub fn with_max_len(self, max_len: usize) -> Result<Self> {
        let max_len = max_len.min(self.model.cfg.max_position_embeddings);
        Self::new(
            self.model,
            self.tokenizer,
            self.pooling,
            self.normalize,
            max_len,
        )
    }

    /// Width of the vectors.
    pub fn dim(&self) -> usize {
        self.model.cfg.hidden_size
    }

    /// Longest input in tokens; longer ones are truncated.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Token ids of each text, special tokens added and truncated.
    pub fn tokenize(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>> {
        let enc = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(enc.into_iter().map(|e| e.get_ids().to_vec()).collect())
    }

    /// One vector per text, in the order given.
    pub fn embed(&self, texts: &[&str], batch_size: usize) -> Result<Vec<Vec<f32>>> {
        let ids = self.tokenize(texts)?;
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(ids[i].len()));
        let mut out = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(batch_size.max(1)) {
            let seqs: Vec<&[u32]> = chunk.iter().map(|&i| ids[i].as_slice()).collect();
            let vecs = self.embed_ids(&seqs)?;
            for (&i, v) in chunk.iter().zip(vecs) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    /// Vectors for already tokenized inputs. They are packed back to back: the linear layers see
    /// no padding, and attention runs within each sequence.
    pub fn embed_ids(&self, seqs: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        let (hidden, offsets) = self.model.forward_packed(seqs)?;
        let mut v = bert::pool_packed(&hidden, &offsets, self.pooling)?;
        if self.normalize {
            v = bert::l2_normalize(&v)?;
        }
        Ok(v.to_vec2()?)
    }

    /// Shares the embedder across threads.
    pub fn into_shared(self) -> Arc<Self> {
        Arc::new(self)
    }
}

/// The pooling mode of `1_Pooling/config.json`; mean when the folder has none.
fn read_pooling(dir: &Path) -> Result<Pooling> {
    let path = dir.join("1_Pooling").join("config.json");
    if !path.is_file() {
        return Ok(Pooling::Mean);
    }
    let v: serde_json::Value = read_json(&path)?;
    let on = |k: &str| v[k].as_bool().unwrap_or(false);
    Ok(if on("pooling_mode_cls_token") {
        Pooling::Cls
    } else if on("pooling_mode_max_tokens") {
        Pooling::Max
    } else if on("pooling_mode_mean_sqrt_len_tokens") {
        Pooling::MeanSqrtLen
    } else {
        Pooling::Mean
    })
}

/// The module types listed in `modules.json` (empty when absent).
fn read_modules(dir: &Path) -> Result<Vec<String>> {
    let path = dir.join("modules.json");
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let v: serde_json::Value = read_json(&path)?;
    Ok(v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m["type"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

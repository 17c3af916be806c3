//! One interface over every classifier duet trains: load a model directory, get class
//! probabilities.

use std::path::Path;

use candle_core::Device;

use super::tfidf::TfidfClassifier;
use super::windows::{encoder_tokenizer, labelled_config, pad, softmax, window_len, windows};
use crate::Result;
use crate::bert::BertForSequenceClassification;
use crate::hub::Checkpoint;

/// A loaded classifier.
pub enum Classifier {
    /// TF-IDF + logistic regression.
    Tfidf(TfidfClassifier),
    /// A fine-tuned BERT encoder.
    Bert {
        /// The network.
        model: Box<BertForSequenceClassification>,
        /// Its tokenizer.
        tokenizer: Box<tokenizers::Tokenizer>,
        /// Class names.
        labels: Vec<String>,
        /// Window length.
        max_len: usize,
        /// Windows per document.
        chunks: usize,
        /// Padding id.
        pad: u32,
    },
}

impl Classifier {
    /// Loads a classifier directory written by `duet train classify` (or any Hugging Face
    /// `BertForSequenceClassification` directory).
    pub fn load(dir: &Path) -> Result<Self> {
        if dir.join("tfidf.json").is_file() {
            return Ok(Self::Tfidf(TfidfClassifier::load(dir)?));
        }
        let dev = Device::Cpu;
        let (cfg, labels) = labelled_config(dir)?;
        let ck = Checkpoint::load(dir, &dev)?;
        let model = BertForSequenceClassification::load(ck.var_builder(&dev), &cfg, labels.len())?;
        ck.finish()?;
        let max_len = window_len(&cfg);
        let chunks = cfg
            .extra
            .get("duet_chunks")
            .and_then(|v| v.as_u64())
            .map_or(1, |v| v as usize);
        Ok(Self::Bert {
            model: Box::new(model),
            tokenizer: Box::new(encoder_tokenizer(dir)?),
            labels,
            max_len,
            chunks,
            pad: cfg.pad_token_id,
        })
    }

    /// Class names, in probability order.
    pub fn labels(&self) -> &[String] {
        match self {
            Self::Tfidf(m) => &m.labels,
            Self::Bert { labels, .. } => labels,
        }
    }

    /// Class probabilities for each text.
    pub fn predict_proba(&self, texts: &[&str], batch: usize) -> Result<Vec<Vec<f32>>> {
        match self {
            Self::Tfidf(m) => Ok(m.predict_proba(texts)),
            Self::Bert {
                model,
                tokenizer,
                max_len,
                chunks,
                pad,
                ..
            } => {
                let docs: Vec<Vec<Vec<u32>>> = texts
                    .iter()
                    .map(|t| windows(tokenizer, t, *max_len, *chunks))
                    .collect::<Result<_>>()?;
                let refs: Vec<&[Vec<u32>]> = docs.iter().map(Vec::as_slice).collect();
                let logits = doc_logits(model, &refs, *pad, &Device::Cpu, batch)?;
                Ok(logits.iter().map(|l| softmax(l)).collect())
            }
        }
    }
}

/// Logits per document (the mean over its windows), computed in batches of windows of similar
/// length.
pub fn doc_logits(
    model: &BertForSequenceClassification,
    docs: &[&[Vec<u32>]],
    pad_id: u32,
    dev: &Device,
    batch: usize,
) -> Result<Vec<Vec<f32>>> {
    let mut flat: Vec<(usize, &[u32])> = Vec::new();
    for (d, ws) in docs.iter().enumerate() {
        for w in ws.iter() {
            flat.push((d, w.as_slice()));
        }
    }
    // Similar lengths together: less padding.
    let mut order: Vec<usize> = (0..flat.len()).collect();
    order.sort_by_key(|&i| flat[i].1.len());
    let mut sums: Vec<Vec<f32>> = vec![Vec::new(); docs.len()];
    let mut counts = vec![0usize; docs.len()];
    for chunk in order.chunks(batch.max(1)) {
        let seqs: Vec<&[u32]> = chunk.iter().map(|&i| flat[i].1).collect();
        let (ids, mask) = pad(&seqs, pad_id, dev)?;
        let logits: Vec<Vec<f32>> = model
            .forward(&ids, &ids.zeros_like()?, &mask, None)?
            .to_vec2()?;
        for (&i, l) in chunk.iter().zip(logits) {
            let d = flat[i].0;
            if sums[d].is_empty() {
                sums[d] = vec![0.0; l.len()];
            }
            sums[d].iter_mut().zip(&l).for_each(|(s, v)| *s += v);
            counts[d] += 1;
        }
    }
    Ok(sums
        .into_iter()
        .zip(counts)
        .map(|(s, n)| s.into_iter().map(|v| v / n.max(1) as f32).collect())
        .collect())
}

/// The index of the largest value.
pub fn argmax(p: &[f32]) -> usize {
    p.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |x| x.0)
}

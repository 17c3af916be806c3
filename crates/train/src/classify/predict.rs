//! One interface over every classifier duet trains: load a model directory, get class
//! probabilities.

use std::path::Path;

use candle_core::Device;
use duet_model::bert::{self, BertForSequenceClassification};
use duet_model::hub::Checkpoint;
use tokenizers::Tokenizer;

use super::task::{ClassifyTask, encoder_tokenizer, softmax, windows};
use super::tfidf::TfidfClassifier;
use crate::{Error, Result};

/// A loaded classifier.
pub enum Classifier {
    /// TF-IDF + logistic regression.
    Tfidf(TfidfClassifier),
    /// A fine-tuned BERT encoder.
    Bert {
        /// The network.
        model: Box<BertForSequenceClassification>,
        /// Its tokenizer.
        tokenizer: Box<Tokenizer>,
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
        let cfg = bert::Config::load(&dir.join("config.json"))?;
        let labels = cfg.labels();
        if labels.is_empty() {
            return Err(Error::Config(format!(
                "{}: config.json names no labels (id2label)",
                dir.display()
            )));
        }
        let ck = Checkpoint::load(dir, &dev)?;
        let model = BertForSequenceClassification::load(ck.var_builder(&dev), &cfg, labels.len())?;
        ck.finish()?;
        let max_len = cfg
            .extra
            .get("duet_max_length")
            .and_then(|v| v.as_u64())
            .map_or(cfg.max_position_embeddings.min(512), |v| v as usize);
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
                let logits = ClassifyTask::doc_logits(model, &refs, *pad, &Device::Cpu, batch)?;
                Ok(logits.iter().map(|l| softmax(l)).collect())
            }
        }
    }
}

/// The index of the largest value.
pub fn argmax(p: &[f32]) -> usize {
    p.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |x| x.0)
}

//! `duet train tokens` configuration.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::data::Format;
use crate::config::TrainSection;
use crate::schedule::Decay;

/// The encoder to fine-tune.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokModel {
    /// A pretrained encoder directory (Hugging Face layout).
    pub path: String,
    /// Longest window in tokens; longer sentences are cut at word boundaries into windows.
    pub max_length: usize,
    /// Dropout on hidden states, attention and before the classifier.
    pub dropout: f64,
    /// Freeze the embeddings and this many of the lowest layers.
    pub freeze_layers: usize,
}

impl Default for TokModel {
    fn default() -> Self {
        Self {
            path: String::new(),
            max_length: 128,
            dropout: 0.1,
            freeze_layers: 0,
        }
    }
}

/// The tagged data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokData {
    /// Training sentences (CoNLL columns, Rasa NLU YAML or JSON lines).
    pub train: Option<PathBuf>,
    /// Validation sentences; without them `valid_share` of the training data is held out.
    pub valid: Option<PathBuf>,
    /// Share of the training sentences held out for validation (seeded).
    pub valid_share: f64,
    /// The reader (`auto` decides by the file name).
    pub format: Format,
    /// The CoNLL column holding the tag (0-based; default: the last).
    pub tag_column: Option<usize>,
}

impl Default for TokData {
    fn default() -> Self {
        Self {
            train: None,
            valid: None,
            valid_share: 0.1,
            format: Format::Auto,
            tag_column: None,
        }
    }
}

/// Epochs and warm-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokLoss {
    /// Passes over the training data (sets train.max_steps).
    pub epochs: f64,
    /// Share of the steps spent warming up (sets train.warmup_steps).
    pub warmup_ratio: f64,
}

impl Default for TokLoss {
    fn default() -> Self {
        Self {
            epochs: 3.0,
            warmup_ratio: 0.1,
        }
    }
}

/// `duet train tokens`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokConfig {
    /// The encoder.
    pub model: TokModel,
    /// The data.
    pub data: TokData,
    /// Epochs and warm-up.
    pub loss: TokLoss,
    /// The loop (its defaults here are the fine-tuning recipe; early stopping on entity F1).
    pub train: TrainSection,
}

impl Default for TokConfig {
    fn default() -> Self {
        let train = TrainSection {
            out: PathBuf::from("runs/tokens"),
            batch_size: 16,
            lr: 5e-5,
            min_lr: 0.0,
            warmup_steps: 0,
            schedule: Decay::Linear,
            weight_decay: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            grad_clip: 1.0,
            eval_every: 0,
            eval_batches: 0,
            checkpoint_every: 0,
            keep_checkpoints: 1,
            early_stop_metric: "val_f1".into(),
            log_every: 10,
            ..TrainSection::default()
        };
        Self {
            model: TokModel::default(),
            data: TokData::default(),
            loss: TokLoss::default(),
            train,
        }
    }
}

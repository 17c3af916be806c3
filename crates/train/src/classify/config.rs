//! `duet train classify` configuration.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::data::Fields;
use crate::config::TrainSection;
use crate::schedule::Decay;
use duet_model::predict::tfidf::TfidfConfig;

/// Class weights in the loss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ClassWeights {
    /// `none` or `auto` (inverse frequency, as scikit-learn's `balanced`).
    Named(String),
    /// One weight per class, in label order.
    List(Vec<f64>),
}

impl Default for ClassWeights {
    fn default() -> Self {
        Self::Named("none".into())
    }
}

/// The model to fine-tune.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClsModel {
    /// A pretrained encoder directory (Hugging Face layout), or `tfidf` for the baseline.
    pub path: String,
    /// Longest input in tokens (longer texts are truncated, or chunked with `chunks`).
    pub max_length: usize,
    /// Dropout on hidden states, attention and before the classifier.
    pub dropout: f64,
    /// Train only the classifier head.
    pub freeze_encoder: bool,
    /// Freeze the embeddings and this many of the lowest layers.
    pub freeze_layers: usize,
    /// Long documents: split into up to this many windows of `max_length` tokens and average
    /// the windows' logits (1: truncate).
    pub chunks: usize,
}

impl Default for ClsModel {
    fn default() -> Self {
        Self {
            path: String::new(),
            max_length: 128,
            dropout: 0.1,
            freeze_encoder: false,
            freeze_layers: 0,
            chunks: 1,
        }
    }
}

/// The labelled data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClsData {
    /// Training examples (CSV/TSV/JSONL file or a folder per label).
    pub train: Option<PathBuf>,
    /// Validation examples; without them `valid_share` of the training data is held out.
    pub valid: Option<PathBuf>,
    /// Share of the training data held out for validation (stratified, seeded).
    pub valid_share: f64,
    /// A JSON list of example ids (or indices) to leave out of training (a test split kept
    /// apart, e.g. `testdata/splits/sms-spam.json`).
    pub exclude: Option<PathBuf>,
    /// Field names (or column indices).
    pub text_field: String,
    /// Label field name (or column index).
    pub label_field: String,
}

impl Default for ClsData {
    fn default() -> Self {
        Self {
            train: None,
            valid: None,
            valid_share: 0.1,
            exclude: None,
            text_field: "text".into(),
            label_field: "label".into(),
        }
    }
}

impl ClsData {
    /// The field selection.
    pub fn fields(&self) -> Fields {
        Fields {
            text: self.text_field.clone(),
            label: self.label_field.clone(),
        }
    }
}

/// The loss and sampling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClsLoss {
    /// `none`, `auto` (inverse frequency) or a list.
    pub class_weights: ClassWeights,
    /// Draw batches with classes in equal proportion.
    pub balanced_sampling: bool,
    /// Label smoothing ε.
    pub label_smoothing: f64,
    /// Passes over the training data (sets train.max_steps).
    pub epochs: f64,
    /// Share of the steps spent warming up (sets train.warmup_steps).
    pub warmup_ratio: f64,
}

impl Default for ClsLoss {
    fn default() -> Self {
        Self {
            class_weights: ClassWeights::default(),
            balanced_sampling: false,
            label_smoothing: 0.0,
            epochs: 3.0,
            warmup_ratio: 0.1,
        }
    }
}

/// `duet train classify`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClsConfig {
    /// The model.
    pub model: ClsModel,
    /// The data.
    pub data: ClsData,
    /// Loss, sampling and epochs.
    pub loss: ClsLoss,
    /// The loop (its defaults here are the fine-tuning recipe).
    pub train: TrainSection,
    /// The TF-IDF baseline's settings (with `model.path = "tfidf"`).
    pub tfidf: TfidfConfig,
}

impl Default for ClsConfig {
    fn default() -> Self {
        let train = TrainSection {
            out: PathBuf::from("runs/classify"),
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
            early_stop_metric: "val_macro_f1".into(),
            log_every: 10,
            ..TrainSection::default()
        };
        Self {
            model: ClsModel::default(),
            data: ClsData::default(),
            loss: ClsLoss::default(),
            train,
            tfidf: TfidfConfig::default(),
        }
    }
}

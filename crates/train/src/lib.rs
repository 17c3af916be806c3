//! `duet-train`: the training loop and its tasks.
//!
//! A [`trainer::Trainer`] runs any [`trainer::Task`] — causal LM ([`tasks::lm`]), masked LM
//! ([`tasks::mlm`]) and, in later crates, classification — with AdamW ([`optim`]), a warm-up
//! schedule ([`schedule`]), gradient clipping and accumulation, evaluation with early stopping,
//! atomic checkpoints with exact resume ([`checkpoint`]), `metrics.jsonl` and `loss.png`.

pub mod checkpoint;
pub mod classify;
pub mod config;
pub mod data;
mod error;
pub mod fast;
pub mod optim;
pub mod plot;
pub mod run;
pub mod schedule;
pub mod tasks;
pub mod tokens;
pub mod trainer;

pub use error::{Error, Result};

//! Batches for training, as plain vectors (the model crate turns them into tensors): random
//! fixed-length LM windows, padded classification batches, and MLM masking.

pub mod classify;
pub mod lm;
pub mod mlm;

pub use classify::{PaddedBatch, pad_batch};
pub use lm::{LmBatch, LmBatcher};
pub use mlm::{IGNORE_INDEX, MaskConfig, mask_tokens};

//! The tasks the trainer runs: causal language modelling and masked language modelling.

pub mod lm;
pub mod mlm;

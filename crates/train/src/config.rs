//! Training configurations: TOML files whose every key has a default that suits a 2-core CPU;
//! the command line overrides any key (`--set model.n_layer=4`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::schedule::Decay;
use crate::{Error, Result};

/// The optimisation loop, shared by every task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainSection {
    /// The run directory.
    pub out: PathBuf,
    /// Optimizer steps.
    pub max_steps: usize,
    /// Sequences per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per optimizer step.
    pub grad_accum: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Learning rate at the end of the decay.
    pub min_lr: f64,
    /// Steps of linear warm-up.
    pub warmup_steps: usize,
    /// Decay after warm-up: `cosine`, `linear` or `constant`.
    pub schedule: Decay,
    /// Decoupled weight decay (not applied to biases and norm weights).
    pub weight_decay: f64,
    /// AdamW β1.
    pub beta1: f64,
    /// AdamW β2.
    pub beta2: f64,
    /// AdamW ε.
    pub eps: f64,
    /// Clip the global gradient norm to this (0: no clipping).
    pub grad_clip: f64,
    /// Seed of initialisation, data order and dropout.
    pub seed: u64,
    /// Evaluate every this many steps (0: only at the end).
    pub eval_every: usize,
    /// Validation batches per evaluation (0: the whole split).
    pub eval_batches: usize,
    /// Write a checkpoint every this many steps (0: only at the end).
    pub checkpoint_every: usize,
    /// Checkpoints kept (older ones are removed).
    pub keep_checkpoints: usize,
    /// Stop after this many evaluations without improvement (0: never).
    pub patience: usize,
    /// The metric early stopping and `best/` follow (lower is better for losses).
    pub early_stop_metric: String,
    /// Log training figures every this many steps.
    pub log_every: usize,
    /// `cpu` or `cuda`.
    pub device: String,
}

impl Default for TrainSection {
    fn default() -> Self {
        Self {
            out: PathBuf::from("runs/lm"),
            max_steps: 2000,
            batch_size: 12,
            grad_accum: 1,
            lr: 1e-3,
            min_lr: 1e-4,
            warmup_steps: 100,
            schedule: Decay::Cosine,
            weight_decay: 0.1,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            grad_clip: 1.0,
            seed: 1337,
            eval_every: 250,
            eval_batches: 50,
            checkpoint_every: 500,
            keep_checkpoints: 2,
            patience: 0,
            early_stop_metric: "val_loss".into(),
            log_every: 10,
            device: "cpu".into(),
        }
    }
}

impl TrainSection {
    /// Checks the values the types do not constrain.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.max_steps == 0 {
            return bad("train.max_steps must be at least 1".into());
        }
        if self.batch_size == 0 || self.grad_accum == 0 {
            return bad("train.batch_size and train.grad_accum must be at least 1".into());
        }
        if self.lr.is_nan() || self.lr <= 0.0 || self.min_lr < 0.0 || self.min_lr > self.lr {
            return bad(format!(
                "train.lr ({}) must be positive and at least train.min_lr ({})",
                self.lr, self.min_lr
            ));
        }
        if !(0.0..1.0).contains(&self.beta1) || !(0.0..1.0).contains(&self.beta2) {
            return bad("train.beta1 and train.beta2 must be in [0, 1)".into());
        }
        if self.device != "cpu" && self.device != "cuda" {
            return bad(format!(
                "train.device must be cpu or cuda, found {:?}",
                self.device
            ));
        }
        Ok(())
    }
}

/// Where the data comes from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataSection {
    /// A corpus directory (`duet corpus build`), encoded with `tokenizer` into the run dir.
    pub corpus: Option<PathBuf>,
    /// The `tokenizer.json` to encode the corpus with (and to save beside the model).
    pub tokenizer: Option<PathBuf>,
    /// Token shards made by `duet tokenizer encode` (instead of `corpus`); `tokenizer` may be
    /// left out, the directory keeps a copy of the one that encoded it.
    pub tokens: Option<PathBuf>,
}

/// The decoder to train (GPT-2 or Llama layout).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GptSection {
    /// `gpt2` or `llama`.
    pub model_type: String,
    /// Transformer blocks.
    pub n_layer: usize,
    /// Attention heads.
    pub n_head: usize,
    /// Key/value heads (Llama; defaults to `n_head`).
    pub n_kv_head: Option<usize>,
    /// Width of the residual stream.
    pub n_embd: usize,
    /// Width of the MLP (defaults: 4 × n_embd for GPT-2, 8/3 × n_embd rounded for Llama).
    pub n_inner: Option<usize>,
    /// Context length in tokens (training windows have this length).
    pub block_size: usize,
    /// Dropout on embeddings, attention and residual branches; with `init_from`, a value
    /// above 0 replaces the loaded network's.
    pub dropout: f64,
    /// RoPE base (Llama).
    pub rope_theta: f64,
    /// Share the token embedding with the output layer.
    pub tie_word_embeddings: bool,
    /// Start from this model directory instead of random weights.
    pub init_from: Option<PathBuf>,
}

impl Default for GptSection {
    fn default() -> Self {
        Self {
            model_type: "gpt2".into(),
            n_layer: 4,
            n_head: 4,
            n_kv_head: None,
            n_embd: 128,
            n_inner: None,
            block_size: 64,
            dropout: 0.0,
            rope_theta: 10_000.0,
            tie_word_embeddings: true,
            init_from: None,
        }
    }
}

impl GptSection {
    /// The model configuration for a vocabulary of `vocab_size`.
    pub fn to_config(&self, vocab_size: usize) -> Result<duet_model::gpt::Config> {
        let mut c = duet_model::gpt::Config::gpt2(
            vocab_size,
            self.block_size,
            self.n_embd,
            self.n_layer,
            self.n_head,
        );
        c.resid_pdrop = Some(self.dropout);
        c.embd_pdrop = Some(self.dropout);
        c.attn_pdrop = Some(self.dropout);
        c.tie_word_embeddings = Some(self.tie_word_embeddings);
        match self.model_type.as_str() {
            "gpt2" => c.intermediate_size = self.n_inner,
            "llama" => {
                c.model_type = "llama".into();
                c.num_key_value_heads = self.n_kv_head;
                c.intermediate_size = Some(
                    self.n_inner
                        .unwrap_or_else(|| (8 * self.n_embd / 3).div_ceil(32) * 32),
                );
                c.layer_norm_epsilon = None;
                c.rms_norm_eps = Some(1e-6);
                c.activation_function = None;
                c.hidden_act = Some("silu".into());
                c.rope_theta = Some(self.rope_theta);
                c.resid_pdrop = None;
                c.embd_pdrop = None;
                c.attn_pdrop = None;
                c.attention_dropout = Some(self.dropout);
            }
            other => {
                return Err(Error::Config(format!(
                    "model.model_type must be gpt2 or llama, found {other:?}"
                )));
            }
        }
        c.validate()
            .map_err(|e| Error::Config(format!("model: {e}")))?;
        Ok(c)
    }
}

/// `duet train lm`: a decoder from scratch (or continued) on a corpus.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LmConfig {
    /// The network.
    pub model: GptSection,
    /// The data.
    pub data: DataSection,
    /// The loop.
    pub train: TrainSection,
}

/// The encoder to pre-train with masked language modelling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BertSection {
    /// Encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Width of the hidden states.
    pub hidden_size: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// Longest input (training windows have this length, `[CLS]` and `[SEP]` included).
    pub max_position_embeddings: usize,
    /// Dropout on hidden states and attention.
    pub dropout: f64,
    /// Share of tokens masked.
    pub mask_prob: f64,
}

impl Default for BertSection {
    fn default() -> Self {
        Self {
            num_hidden_layers: 4,
            num_attention_heads: 4,
            hidden_size: 128,
            intermediate_size: 512,
            max_position_embeddings: 128,
            dropout: 0.1,
            mask_prob: 0.15,
        }
    }
}

/// `duet train mlm`: a BERT-style encoder from scratch with masked language modelling.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MlmConfig {
    /// The network.
    pub model: BertSection,
    /// The data (a WordPiece tokenizer with `[CLS]`, `[SEP]`, `[MASK]`, `[PAD]`).
    pub data: DataSection,
    /// The loop.
    pub train: TrainSection,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_named_and_defaults_hold() {
        let err = toml::from_str::<LmConfig>("[model]\nn_layers = 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("n_layers"), "{err}");
        let c: LmConfig = toml::from_str("[model]\nn_layer = 6\n").unwrap();
        assert_eq!(
            (c.model.n_layer, c.model.n_head, c.train.batch_size),
            (6, 4, 12)
        );
        assert!(c.model.to_config(100).is_ok());
        let bad = GptSection {
            n_embd: 130,
            ..GptSection::default()
        };
        assert!(bad.to_config(100).is_err());
    }
}

//! The hyper-parameters of a GGUF decoder, read from `<arch>.*` metadata with the keys and
//! defaults llama.cpp uses (`llama-model.cpp`, `llama-arch.cpp`).

use crate::gguf::{GgufFile, Metadata};
use crate::{Error, Result};

/// The decoder families duet runs from GGUF. Mistral and TinyLlama files say `llama`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// Llama 1–3, Mistral, SmolLM, TinyLlama: RMSNorm, RoPE on adjacent pairs, SwiGLU.
    Llama,
    /// Qwen 2 / 2.5: Llama with query/key/value biases and RoPE on halves.
    Qwen2,
    /// Qwen 3: Qwen 2 without biases, with RMSNorm on each head's queries and keys.
    Qwen3,
    /// Phi-3: fused query/key/value and gate/up projections, RoPE on halves.
    Phi3,
    /// Gemma: embeddings scaled by √width, GELU-gated MLP, RoPE on halves.
    Gemma,
    /// GPT-2: learned positions, LayerNorm with biases, fused attention projection, GELU.
    Gpt2,
}

impl Arch {
    /// The family for `general.architecture`.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "llama" | "mistral" => Self::Llama,
            "qwen2" => Self::Qwen2,
            "qwen3" => Self::Qwen3,
            "phi3" => Self::Phi3,
            "gemma" => Self::Gemma,
            "gpt2" => Self::Gpt2,
            _ => return None,
        })
    }

    /// `general.architecture` as llama.cpp writes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Llama => "llama",
            Self::Qwen2 => "qwen2",
            Self::Qwen3 => "qwen3",
            Self::Phi3 => "phi3",
            Self::Gemma => "gemma",
            Self::Gpt2 => "gpt2",
        }
    }

    /// Whether RoPE rotates the two halves of a head (`NEOX`) rather than adjacent pairs.
    pub fn rope_on_halves(self) -> bool {
        !matches!(self, Self::Llama)
    }
}

/// How positions enter attention.
#[derive(Debug, Clone, PartialEq)]
pub struct RopeConfig {
    /// Dimensions of each head that are rotated (from the start of the head).
    pub dims: usize,
    /// The base of the frequencies.
    pub base: f32,
    /// Rotate halves (`true`) or adjacent pairs.
    pub halves: bool,
    /// Positions are multiplied by this (linear scaling: `1 / factor`).
    pub freq_scale: f32,
}

/// Hyper-parameters of a decoder.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The family.
    pub arch: Arch,
    /// Tokens in the vocabulary.
    pub vocab: usize,
    /// Width of the residual stream.
    pub embd: usize,
    /// Blocks.
    pub layers: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Width of a head.
    pub head_dim: usize,
    /// Width of the MLP.
    pub ff: usize,
    /// Longest context it was trained on.
    pub context: usize,
    /// Norm epsilon.
    pub eps: f32,
    /// RoPE, absent for GPT-2.
    pub rope: Option<RopeConfig>,
}

fn key_err(file: &GgufFile, e: impl std::fmt::Display) -> Error {
    file.error(e.to_string())
}

impl Config {
    /// Reads the hyper-parameters of `file`.
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        let md: &Metadata = &file.metadata;
        let name = md
            .str("general.architecture")
            .map_err(|e| key_err(file, e))?;
        let arch = Arch::from_name(name).ok_or_else(|| {
            file.error(format!(
                "general.architecture {name:?} is not supported (llama, mistral, qwen2, qwen3, \
                 phi3, gemma, gpt2 are)"
            ))
        })?;
        let k = |suffix: &str| format!("{name}.{suffix}");
        let need = |suffix: &str| md.usize(&k(suffix)).map_err(|e| key_err(file, e));
        let opt = |suffix: &str| md.opt_usize(&k(suffix)).map_err(|e| key_err(file, e));
        let embd = need("embedding_length")?;
        let layers = need("block_count")?;
        let heads = need("attention.head_count")?;
        if heads == 0 || embd == 0 || layers == 0 {
            return Err(file.error(format!(
                "{name}: embedding_length {embd}, block_count {layers} and attention.head_count \
                 {heads} must all be positive"
            )));
        }
        let kv_heads = opt("attention.head_count_kv")?.unwrap_or(heads);
        let head_dim = opt("attention.key_length")?.unwrap_or(embd / heads);
        if kv_heads == 0 || heads % kv_heads != 0 || head_dim == 0 {
            return Err(file.error(format!(
                "{name}: {heads} query heads cannot share {kv_heads} key/value heads of width \
                 {head_dim}"
            )));
        }
        let ff = need("feed_forward_length")?;
        let context = opt("context_length")?.unwrap_or(2048);
        let eps_key = if arch == Arch::Gpt2 {
            "attention.layer_norm_epsilon"
        } else {
            "attention.layer_norm_rms_epsilon"
        };
        let eps = md
            .opt_f64(&k(eps_key))
            .map_err(|e| key_err(file, e))?
            .unwrap_or(1e-5) as f32;
        let vocab = match md.get("tokenizer.ggml.tokens").and_then(|v| v.as_array()) {
            Some(t) => t.len(),
            None => opt("vocab_size")?.ok_or_else(|| {
                file.error(
                    "neither tokenizer.ggml.tokens nor <arch>.vocab_size gives the vocabulary",
                )
            })?,
        };
        let rope = if arch == Arch::Gpt2 {
            None
        } else {
            let dims = opt("rope.dimension_count")?.unwrap_or(head_dim);
            if dims > head_dim || dims % 2 != 0 {
                return Err(file.error(format!(
                    "{name}.rope.dimension_count {dims} does not fit heads of {head_dim}"
                )));
            }
            let base = md
                .opt_f64(&k("rope.freq_base"))
                .map_err(|e| key_err(file, e))?
                .unwrap_or(10_000.0) as f32;
            let scaling = md
                .get(&k("rope.scaling.type"))
                .and_then(|v| v.as_str())
                .unwrap_or("none");
            let factor = md
                .opt_f64(&k("rope.scaling.factor"))
                .map_err(|e| key_err(file, e))?
                .unwrap_or(1.0) as f32;
            let freq_scale = match scaling {
                "none" => 1.0,
                "linear" if factor > 0.0 => 1.0 / factor,
                other => {
                    return Err(file.error(format!(
                        "{name}.rope.scaling.type {other:?} is not supported (none, linear; \
                         Llama 3's scaling comes as the rope_freqs tensor)"
                    )));
                }
            };
            Some(RopeConfig {
                dims,
                base,
                halves: arch.rope_on_halves(),
                freq_scale,
            })
        };
        Ok(Self {
            arch,
            vocab,
            embd,
            layers,
            heads,
            kv_heads,
            head_dim,
            ff,
            context,
            eps,
            rope,
        })
    }
}

//! A decoder-only Transformer: GPT-2 (Radford et al. 2019) and the Llama family (Touvron et
//! al. 2023) including Qwen2, matching Hugging Face `transformers`' `GPT2LMHeadModel`,
//! `LlamaForCausalLM` and `Qwen2ForCausalLM` tensor for tensor.
//!
//! GPT-2: learned positions, LayerNorm, GELU (tanh), biases, `Conv1D` weights stored
//! `(in, out)`, tied embeddings. Llama: RoPE, RMSNorm, SwiGLU, grouped-query attention, no
//! biases. Qwen2: Llama with biases on the query, key and value projections.
//!
//! A block reads as the paper: `x = x + attn(ln_1(x))`, `x = x + mlp(ln_2(x))`.

use std::path::Path;

use candle_core::{D, Device, Module, Result, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::nn::{Conv1D, Dropout, Embedding, Linear, Norm, dropout};
use crate::ops;

/// The two layouts of decoder that duet implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// GPT-2.
    Gpt2,
    /// Llama, Qwen2 and their relatives.
    Llama,
}

/// Hyper-parameters, read from and written to `config.json` with Hugging Face's keys (GPT-2's
/// `n_embd`, `n_layer`, ... are accepted as aliases).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// `gpt2`, `llama` or `qwen2`.
    pub model_type: String,
    /// Tokens in the vocabulary.
    pub vocab_size: usize,
    /// Width of the residual stream.
    #[serde(alias = "n_embd")]
    pub hidden_size: usize,
    /// Transformer blocks.
    #[serde(alias = "n_layer")]
    pub num_hidden_layers: usize,
    /// Query heads.
    #[serde(alias = "n_head")]
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention); defaults to the query heads.
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Width of the MLP; defaults to 4 × hidden for GPT-2.
    #[serde(alias = "n_inner", default)]
    pub intermediate_size: Option<usize>,
    /// Longest context.
    #[serde(alias = "n_positions")]
    pub max_position_embeddings: usize,
    /// LayerNorm epsilon (GPT-2).
    #[serde(default)]
    pub layer_norm_epsilon: Option<f64>,
    /// RMSNorm epsilon (Llama).
    #[serde(default)]
    pub rms_norm_eps: Option<f64>,
    /// RoPE base (`transformers` 4 writes it here).
    #[serde(default)]
    pub rope_theta: Option<f64>,
    /// RoPE settings (`transformers` 5 writes `{"rope_theta", "rope_type"}` here).
    #[serde(default)]
    pub rope_parameters: Option<serde_json::Value>,
    /// Width of one attention head, when it is not `hidden_size / num_attention_heads`.
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// Whether the output projection shares the token embedding.
    #[serde(default)]
    pub tie_word_embeddings: Option<bool>,
    /// Llama: biases on every attention projection.
    #[serde(default)]
    pub attention_bias: Option<bool>,
    /// GPT-2's activation (`gelu_new`).
    #[serde(default)]
    pub activation_function: Option<String>,
    /// Llama's activation (`silu`).
    #[serde(default)]
    pub hidden_act: Option<String>,
    /// GPT-2: dropout on the residual branches.
    #[serde(default)]
    pub resid_pdrop: Option<f64>,
    /// GPT-2: dropout on the embeddings.
    #[serde(default)]
    pub embd_pdrop: Option<f64>,
    /// GPT-2: dropout on the attention weights.
    #[serde(default)]
    pub attn_pdrop: Option<f64>,
    /// Llama: dropout on the attention weights.
    #[serde(default)]
    pub attention_dropout: Option<f64>,
    /// Beginning-of-sequence token.
    #[serde(default)]
    pub bos_token_id: Option<serde_json::Value>,
    /// End-of-sequence token(s).
    #[serde(default)]
    pub eos_token_id: Option<serde_json::Value>,
    /// RoPE scaling (Llama 3 and others): not supported; refused when set.
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
}

impl Config {
    /// The family the `model_type` belongs to.
    pub fn family(&self) -> Family {
        match self.model_type.as_str() {
            "gpt2" => Family::Gpt2,
            _ => Family::Llama,
        }
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads)
    }

    /// The RoPE base, wherever the config keeps it.
    pub fn theta(&self) -> f64 {
        self.rope_theta
            .or_else(|| {
                self.rope_parameters
                    .as_ref()
                    .and_then(|p| p["rope_theta"].as_f64())
            })
            .unwrap_or(10_000.0)
    }

    /// Key/value heads.
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Width of the MLP.
    pub fn mlp_dim(&self) -> usize {
        self.intermediate_size.unwrap_or(4 * self.hidden_size)
    }

    /// Normalisation epsilon.
    pub fn eps(&self) -> f64 {
        match self.family() {
            Family::Gpt2 => self.layer_norm_epsilon.unwrap_or(1e-5),
            Family::Llama => self.rms_norm_eps.unwrap_or(1e-6),
        }
    }

    /// Whether the LM head is the token embedding.
    pub fn tied(&self) -> bool {
        self.tie_word_embeddings
            .unwrap_or(self.family() == Family::Gpt2)
    }

    /// The activation name.
    pub fn act(&self) -> &str {
        match self.family() {
            Family::Gpt2 => self.activation_function.as_deref().unwrap_or("gelu_new"),
            Family::Llama => self.hidden_act.as_deref().unwrap_or("silu"),
        }
    }

    /// The end-of-sequence ids.
    pub fn eos_ids(&self) -> Vec<u32> {
        match &self.eos_token_id {
            Some(serde_json::Value::Number(n)) => {
                n.as_u64().map(|v| vec![v as u32]).unwrap_or_default()
            }
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_u64())
                .map(|v| v as u32)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Checks that the shapes fit together.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if !matches!(
            self.model_type.as_str(),
            "gpt2" | "llama" | "qwen2" | "mistral"
        ) {
            return Err(format!(
                "model_type {:?} is not a decoder duet runs (gpt2, llama, qwen2, mistral)",
                self.model_type
            ));
        }
        if self.num_attention_heads == 0
            || (self.head_dim.is_none()
                && !self.hidden_size.is_multiple_of(self.num_attention_heads))
        {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if !self.num_attention_heads.is_multiple_of(self.kv_heads()) {
            return Err(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                self.num_attention_heads,
                self.kv_heads()
            ));
        }
        if self.family() == Family::Llama && !self.head_dim().is_multiple_of(2) {
            return Err(format!(
                "head dimension {} must be even for RoPE",
                self.head_dim()
            ));
        }
        if self.rope_scaling.as_ref().is_some_and(|v| !v.is_null()) {
            return Err("rope_scaling is not supported yet".into());
        }
        if let Some(kind) = self
            .rope_parameters
            .as_ref()
            .and_then(|p| p["rope_type"].as_str())
            && kind != "default"
        {
            return Err(format!(
                "rope_type {kind:?} is not supported yet (only \"default\")"
            ));
        }
        Ok(())
    }

    /// Reads and validates `config.json`.
    pub fn load(path: &Path) -> crate::Result<Self> {
        let cfg: Self = crate::hub::read_json(path)?;
        cfg.validate().map_err(|message| crate::Error::Config {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(cfg)
    }

    /// A GPT-2-shaped config.
    pub fn gpt2(
        vocab_size: usize,
        n_positions: usize,
        n_embd: usize,
        n_layer: usize,
        n_head: usize,
    ) -> Self {
        Self {
            model_type: "gpt2".into(),
            vocab_size,
            hidden_size: n_embd,
            num_hidden_layers: n_layer,
            num_attention_heads: n_head,
            num_key_value_heads: None,
            intermediate_size: None,
            max_position_embeddings: n_positions,
            layer_norm_epsilon: Some(1e-5),
            rms_norm_eps: None,
            rope_theta: None,
            rope_parameters: None,
            head_dim: None,
            tie_word_embeddings: Some(true),
            attention_bias: None,
            activation_function: Some("gelu_new".into()),
            hidden_act: None,
            resid_pdrop: Some(0.1),
            embd_pdrop: Some(0.1),
            attn_pdrop: Some(0.1),
            attention_dropout: None,
            bos_token_id: None,
            eos_token_id: None,
            rope_scaling: None,
        }
    }

    /// GPT-2 small (124M parameters).
    pub fn gpt2_small() -> Self {
        Self::gpt2(50257, 1024, 768, 12, 12)
    }

    /// A tiny GPT-2 for tests.
    pub fn tiny() -> Self {
        Self::gpt2(64, 32, 16, 2, 2)
    }

    /// The `config.json` that `transformers` reads for this model.
    pub fn to_hf_json(&self) -> serde_json::Value {
        let mut v =
            serde_json::json!({ "model_type": self.model_type, "vocab_size": self.vocab_size });
        let o = v.as_object_mut().expect("object literal");
        let mut put = |k: &str, val: serde_json::Value| {
            if !val.is_null() {
                o.insert(k.into(), val);
            }
        };
        match self.family() {
            Family::Gpt2 => {
                put("architectures", serde_json::json!(["GPT2LMHeadModel"]));
                put("n_embd", self.hidden_size.into());
                put("n_layer", self.num_hidden_layers.into());
                put("n_head", self.num_attention_heads.into());
                put("n_positions", self.max_position_embeddings.into());
                put("n_inner", self.intermediate_size.into());
                put("layer_norm_epsilon", self.eps().into());
                put("activation_function", self.act().into());
                put("resid_pdrop", self.resid_pdrop.unwrap_or(0.1).into());
                put("embd_pdrop", self.embd_pdrop.unwrap_or(0.1).into());
                put("attn_pdrop", self.attn_pdrop.unwrap_or(0.1).into());
                put("tie_word_embeddings", self.tied().into());
            }
            Family::Llama => {
                let arch = match self.model_type.as_str() {
                    "qwen2" => "Qwen2ForCausalLM",
                    "mistral" => "MistralForCausalLM",
                    _ => "LlamaForCausalLM",
                };
                put("architectures", serde_json::json!([arch]));
                put("hidden_size", self.hidden_size.into());
                put("num_hidden_layers", self.num_hidden_layers.into());
                put("num_attention_heads", self.num_attention_heads.into());
                put("num_key_value_heads", self.kv_heads().into());
                put("intermediate_size", self.mlp_dim().into());
                put(
                    "max_position_embeddings",
                    self.max_position_embeddings.into(),
                );
                put("rms_norm_eps", self.eps().into());
                put("rope_theta", self.theta().into());
                put("head_dim", self.head_dim().into());
                put("hidden_act", self.act().into());
                put("tie_word_embeddings", self.tied().into());
                put("attention_bias", self.attention_bias.into());
                put(
                    "attention_dropout",
                    self.attention_dropout.unwrap_or(0.0).into(),
                );
            }
        }
        put(
            "bos_token_id",
            self.bos_token_id.clone().unwrap_or(serde_json::Value::Null),
        );
        put(
            "eos_token_id",
            self.eos_token_id.clone().unwrap_or(serde_json::Value::Null),
        );
        put("torch_dtype", "float32".into());
        v
    }
}

/// Keys and values of past positions for one sequence, one entry per block; passed explicitly
/// to `forward` so that several sequences can each keep their own.
#[derive(Debug, Clone, Default)]
pub struct Cache {
    layers: Vec<Option<(Tensor, Tensor)>>,
    /// Positions already processed.
    pub seq_len: usize,
}

impl Cache {
    /// An empty cache for a model with `n_layer` blocks.
    pub fn new(n_layer: usize) -> Self {
        Self {
            layers: vec![None; n_layer],
            seq_len: 0,
        }
    }

    /// Drops everything, as for a new sequence.
    pub fn clear(&mut self) {
        self.layers.iter_mut().for_each(|l| *l = None);
        self.seq_len = 0;
    }

    /// Forgets every position from `len` on (a shorter prefix stays usable).
    pub fn truncate(&mut self, len: usize) -> candle_core::Result<()> {
        if len >= self.seq_len {
            return Ok(());
        }
        if len == 0 {
            self.clear();
            return Ok(());
        }
        for (k, v) in self.layers.iter_mut().flatten() {
            *k = k.narrow(1, 0, len)?;
            *v = v.narrow(1, 0, len)?;
        }
        self.seq_len = len;
        Ok(())
    }

    /// Bytes of keys and values held.
    pub fn bytes(&self) -> usize {
        self.layers
            .iter()
            .flatten()
            .map(|(k, v)| (k.elem_count() + v.elem_count()) * k.dtype().size_in_bytes())
            .sum()
    }
}

/// Precomputed rotary angles.
#[derive(Debug, Clone)]
struct Rope {
    cos: Tensor,
    sin: Tensor,
}

impl Rope {
    fn new(cfg: &Config, dev: &Device) -> Result<Self> {
        let hs = cfg.head_dim();
        let theta = cfg.theta();
        let inv: Vec<f32> = (0..hs / 2)
            .map(|i| (1.0 / theta.powf(2.0 * i as f64 / hs as f64)) as f32)
            .collect();
        let inv = Tensor::from_vec(inv, (1, hs / 2), dev)?;
        let pos = Tensor::arange(0u32, cfg.max_position_embeddings as u32, dev)?
            .to_dtype(candle_core::DType::F32)?
            .reshape(((), 1))?;
        let freqs = pos.matmul(&inv)?; // (T, hs/2)
        Ok(Self {
            cos: freqs.cos()?,
            sin: freqs.sin()?,
        })
    }
}

/// Multi-head causal self-attention.
#[derive(Debug, Clone)]
struct Attention {
    /// GPT-2: fused query/key/value projection and the output projection.
    c_attn: Option<Conv1D>,
    c_proj: Option<Conv1D>,
    /// Llama: separate projections.
    q_proj: Option<Linear>,
    k_proj: Option<Linear>,
    v_proj: Option<Linear>,
    o_proj: Option<Linear>,
    n_head: usize,
    n_kv_head: usize,
    head_dim: usize,
    attn_pdrop: f64,
    resid_pdrop: f64,
}

impl Attention {
    fn load(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        let (c, hs) = (cfg.hidden_size, cfg.head_dim());
        let (nh, nkv) = (cfg.num_attention_heads, cfg.kv_heads());
        let mut a = Self {
            c_attn: None,
            c_proj: None,
            q_proj: None,
            k_proj: None,
            v_proj: None,
            o_proj: None,
            n_head: nh,
            n_kv_head: nkv,
            head_dim: hs,
            attn_pdrop: cfg.attn_pdrop.or(cfg.attention_dropout).unwrap_or(0.0),
            resid_pdrop: cfg.resid_pdrop.unwrap_or(0.0),
        };
        match cfg.family() {
            Family::Gpt2 => {
                a.c_attn = Some(Conv1D::load(vb.pp("c_attn"), c, 3 * c)?);
                a.c_proj = Some(Conv1D::load(vb.pp("c_proj"), c, c)?);
            }
            Family::Llama => {
                let qkv_bias = cfg.model_type == "qwen2" || cfg.attention_bias.unwrap_or(false);
                let o_bias = cfg.attention_bias.unwrap_or(false);
                a.q_proj = Some(Linear::load(vb.pp("q_proj"), c, nh * hs, qkv_bias)?);
                a.k_proj = Some(Linear::load(vb.pp("k_proj"), c, nkv * hs, qkv_bias)?);
                a.v_proj = Some(Linear::load(vb.pp("v_proj"), c, nkv * hs, qkv_bias)?);
                a.o_proj = Some(Linear::load(vb.pp("o_proj"), nh * hs, c, o_bias)?);
            }
        }
        Ok(a)
    }

    /// Projects `x` (B, T, C) to queries (B, T, nh, hs) and keys, values (B, T, nkv, hs).
    fn qkv(&self, x: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let (b, t, c) = x.dims3()?;
        let (q, k, v) = match (&self.c_attn, &self.q_proj, &self.k_proj, &self.v_proj) {
            (Some(c_attn), ..) => {
                let qkv = c_attn.forward(x)?; // (B, T, 3C)
                (
                    qkv.narrow(2, 0, c)?,
                    qkv.narrow(2, c, c)?,
                    qkv.narrow(2, 2 * c, c)?,
                )
            }
            (None, Some(q), Some(k), Some(v)) => (q.forward(x)?, k.forward(x)?, v.forward(x)?),
            _ => candle_core::bail!("attention has no projections"),
        };
        // (B, T, n·hs) -> (B, T, n, hs)
        let heads = |x: Tensor, n: usize| x.reshape((b, t, n, self.head_dim));
        Ok((
            heads(q, self.n_head)?,
            heads(k, self.n_kv_head)?,
            heads(v, self.n_kv_head)?,
        ))
    }

    /// Attention of queries (B, T, nh, hs) over keys and values (B, S, nkv, hs), past ones
    /// included; returns (B, T, nh·hs). Inference takes the fused kernel, training the
    /// differentiable composition.
    fn attend_any(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        past: usize,
        drop: Option<&Dropout>,
    ) -> Result<Tensor> {
        if drop.is_none() {
            return crate::fused::attention(q, k, v, None, true, past);
        }
        let bhtd = |x: &Tensor| x.transpose(1, 2)?.contiguous();
        self.attend(&bhtd(q)?, &bhtd(k)?, &bhtd(v)?, past, drop)
    }

    /// Attention over one sequence's queries and its keys/values (past ones included).
    fn attend(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        past: usize,
        drop: Option<&Dropout>,
    ) -> Result<Tensor> {
        let (b, _, t, hs) = q.dims4()?;
        let rep = self.n_head / self.n_kv_head;
        let (k, v) = (repeat_kv(k, rep)?, repeat_kv(v, rep)?);
        let scale = 1.0 / (hs as f64).sqrt();
        let att = (q.matmul(&k.t()?)? * scale)?; // (B, nh, T, S)
        let att = if t > 1 {
            att.broadcast_add(&ops::causal_mask(t, past, q.device())?)?
        } else {
            att
        };
        let att = ops::softmax_last_dim(&att)?;
        let att = dropout(&att, self.attn_pdrop, drop)?;
        let y = att.matmul(&v.contiguous()?)?; // (B, nh, T, hs)
        y.transpose(1, 2)?.reshape((b, t, self.n_head * hs))
    }

    fn project_out(&self, y: &Tensor, drop: Option<&Dropout>) -> Result<Tensor> {
        let y = match (&self.c_proj, &self.o_proj) {
            (Some(p), _) => p.forward(y)?,
            (None, Some(p)) => p.forward(y)?,
            _ => candle_core::bail!("attention has no output projection"),
        };
        dropout(&y, self.resid_pdrop, drop)
    }
}

/// Repeats each key/value head `rep` times for grouped-query attention.
fn repeat_kv(x: &Tensor, rep: usize) -> Result<Tensor> {
    if rep == 1 {
        return Ok(x.clone());
    }
    let (b, n_kv, t, hs) = x.dims4()?;
    x.unsqueeze(2)?
        .expand((b, n_kv, rep, t, hs))?
        .reshape((b, n_kv * rep, t, hs))
}

/// The position-wise feed-forward network: GELU MLP (GPT-2) or SwiGLU (Llama).
#[derive(Debug, Clone)]
enum Mlp {
    Gelu {
        c_fc: Conv1D,
        c_proj: Conv1D,
        act: String,
        pdrop: f64,
    },
    SwiGlu {
        gate: Linear,
        up: Linear,
        down: Linear,
        act: String,
    },
}

impl Mlp {
    fn load(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        let (c, h) = (cfg.hidden_size, cfg.mlp_dim());
        Ok(match cfg.family() {
            Family::Gpt2 => Self::Gelu {
                c_fc: Conv1D::load(vb.pp("c_fc"), c, h)?,
                c_proj: Conv1D::load(vb.pp("c_proj"), h, c)?,
                act: cfg.act().to_owned(),
                pdrop: cfg.resid_pdrop.unwrap_or(0.0),
            },
            Family::Llama => Self::SwiGlu {
                gate: Linear::load(vb.pp("gate_proj"), c, h, false)?,
                up: Linear::load(vb.pp("up_proj"), c, h, false)?,
                down: Linear::load(vb.pp("down_proj"), h, c, false)?,
                act: cfg.act().to_owned(),
            },
        })
    }

    fn forward(&self, x: &Tensor, drop: Option<&Dropout>) -> Result<Tensor> {
        match self {
            Self::Gelu {
                c_fc,
                c_proj,
                act,
                pdrop,
            } => match (drop, crate::fused::Act::from_name(act)) {
                (None, Some(a)) => c_proj.forward(&c_fc.forward_act(x, a)?),
                _ => {
                    let h = ops::activation(act, &c_fc.forward(x)?)?;
                    dropout(&c_proj.forward(&h)?, *pdrop, drop)
                }
            },
            Self::SwiGlu {
                gate,
                up,
                down,
                act,
            } => {
                let h = (ops::activation(act, &gate.forward(x)?)? * up.forward(x)?)?;
                down.forward(&h)
            }
        }
    }
}

/// One Transformer block.
#[derive(Debug, Clone)]
struct Block {
    ln_1: Norm,
    attn: Attention,
    ln_2: Norm,
    mlp: Mlp,
}

impl Block {
    fn load(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        let (c, eps) = (cfg.hidden_size, cfg.eps());
        Ok(match cfg.family() {
            Family::Gpt2 => Self {
                ln_1: Norm::layer(vb.pp("ln_1"), c, eps)?,
                attn: Attention::load(vb.pp("attn"), cfg)?,
                ln_2: Norm::layer(vb.pp("ln_2"), c, eps)?,
                mlp: Mlp::load(vb.pp("mlp"), cfg)?,
            },
            Family::Llama => Self {
                ln_1: Norm::rms(vb.pp("input_layernorm"), c, eps)?,
                attn: Attention::load(vb.pp("self_attn"), cfg)?,
                ln_2: Norm::rms(vb.pp("post_attention_layernorm"), c, eps)?,
                mlp: Mlp::load(vb.pp("mlp"), cfg)?,
            },
        })
    }
}

/// The whole decoder with its language-model head.
#[derive(Debug, Clone)]
pub struct Gpt {
    wte: Embedding,
    wpe: Option<Embedding>,
    blocks: Vec<Block>,
    ln_f: Norm,
    lm_head: Tensor,
    rope: Option<Rope>,
    cfg: Config,
}

impl Gpt {
    /// Builds the model from `vb` with Hugging Face's tensor names.
    pub fn load(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        cfg.validate().map_err(candle_core::Error::Msg)?;
        let (c, eps) = (cfg.hidden_size, cfg.eps());
        let (base, wte_name, blocks_name, ln_f) = match cfg.family() {
            Family::Gpt2 => (vb.pp("transformer"), "wte", "h", "ln_f"),
            Family::Llama => (vb.pp("model"), "embed_tokens", "layers", "norm"),
        };
        let wte = Embedding::load(base.pp(wte_name), cfg.vocab_size, c)?;
        let wpe = match cfg.family() {
            Family::Gpt2 => Some(Embedding::load(
                base.pp("wpe"),
                cfg.max_position_embeddings,
                c,
            )?),
            Family::Llama => None,
        };
        let blocks = (0..cfg.num_hidden_layers)
            .map(|i| Block::load(base.pp(blocks_name).pp(i), cfg))
            .collect::<Result<Vec<_>>>()?;
        let ln_f = match cfg.family() {
            Family::Gpt2 => Norm::layer(base.pp(ln_f), c, eps)?,
            Family::Llama => Norm::rms(base.pp(ln_f), c, eps)?,
        };
        let lm_head = if cfg.tied() {
            wte.weight.clone()
        } else {
            vb.pp("lm_head").get_with_hints(
                (cfg.vocab_size, c),
                "weight",
                candle_nn::Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
            )?
        };
        let rope = match cfg.family() {
            Family::Llama => Some(Rope::new(cfg, vb.device())?),
            Family::Gpt2 => None,
        };
        Ok(Self {
            wte,
            wpe,
            blocks,
            ln_f,
            lm_head,
            rope,
            cfg: cfg.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// A cache for one sequence.
    pub fn new_cache(&self) -> Cache {
        Cache::new(self.blocks.len())
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        self.wte.weight.device()
    }

    /// Token and position embeddings of `ids` (B, T) starting at position `start`.
    fn embed(&self, ids: &Tensor, start: usize, drop: Option<&Dropout>) -> Result<Tensor> {
        let (_, t) = ids.dims2()?;
        if start + t > self.cfg.max_position_embeddings {
            candle_core::bail!(
                "sequence of {} positions is longer than the model's context of {}",
                start + t,
                self.cfg.max_position_embeddings
            );
        }
        let mut x = self.wte.forward(ids)?;
        if let Some(wpe) = &self.wpe {
            let pos = Tensor::arange(start as u32, (start + t) as u32, ids.device())?;
            x = x.broadcast_add(&wpe.forward(&pos)?)?;
        }
        dropout(&x, self.cfg.embd_pdrop.unwrap_or(0.0), drop)
    }

    /// Rotates queries and keys (B, T, n, hs) by their positions (Llama).
    fn rotate(&self, q: Tensor, k: Tensor, start: usize) -> Result<(Tensor, Tensor)> {
        match &self.rope {
            Some(r) => {
                let t = q.dim(1)?;
                let (cos, sin) = (r.cos.narrow(0, start, t)?, r.sin.narrow(0, start, t)?);
                Ok((
                    ops::rope_thd(&q, &cos, &sin)?,
                    ops::rope_thd(&k, &cos, &sin)?,
                ))
            }
            None => Ok((q, k)),
        }
    }

    /// Logits `(B, T, vocab)` for `ids` `(B, T)`. With a cache, `ids` continue the cached
    /// sequence and their keys and values are appended; with `drop`, dropout is on (training).
    pub fn forward(
        &self,
        ids: &Tensor,
        cache: Option<&mut Cache>,
        drop: Option<&Dropout>,
    ) -> Result<Tensor> {
        let x = self.hidden(ids, cache, drop)?;
        self.head(&x)
    }

    /// Logits `(B, vocab)` of the last position only (prefilling a prompt into `cache`): the
    /// output layer runs on one position instead of all.
    pub fn forward_last(&self, ids: &Tensor, cache: Option<&mut Cache>) -> Result<Tensor> {
        let x = self.hidden(ids, cache, None)?;
        let t = x.dim(1)?;
        self.head(&x.narrow(1, t - 1, 1)?)?.squeeze(1)
    }

    /// The output of the last block `(B, T, C)`, before the final norm.
    fn hidden(
        &self,
        ids: &Tensor,
        mut cache: Option<&mut Cache>,
        drop: Option<&Dropout>,
    ) -> Result<Tensor> {
        let start = cache.as_ref().map_or(0, |c| c.seq_len);
        let mut x = self.embed(ids, start, drop)?;
        for (i, block) in self.blocks.iter().enumerate() {
            // x = x + attn(ln_1(x))
            let h = block.ln_1.forward(&x)?;
            let (q, k, v) = block.attn.qkv(&h)?;
            let (q, k) = self.rotate(q, k, start)?;
            let (k, v) = match cache.as_deref_mut() {
                Some(c) => {
                    let kv = match &c.layers[i] {
                        Some((pk, pv)) => (Tensor::cat(&[pk, &k], 1)?, Tensor::cat(&[pv, &v], 1)?),
                        None => (k, v),
                    };
                    c.layers[i] = Some(kv.clone());
                    kv
                }
                None => (k, v),
            };
            let y = block.attn.attend_any(&q, &k, &v, start, drop)?;
            x = (x + block.attn.project_out(&y, drop)?)?;
            // x = x + mlp(ln_2(x))
            x = (&x + block.mlp.forward(&block.ln_2.forward(&x)?, drop)?)?;
        }
        if let Some(c) = cache {
            c.seq_len += ids.dim(1)?;
        }
        Ok(x)
    }

    /// Final norm and output layer: logits `(B, T, vocab)`.
    fn head(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.ln_f.forward(x)?;
        let (b, t, c) = x.dims3()?;
        x.reshape((b * t, c))?
            .matmul(&self.lm_head.t()?)?
            .reshape((b, t, ()))
    }

    /// One decoding step for several sequences at once: `tokens[i]` continues the sequence in
    /// `caches[i]`. The projections and MLPs run as one batch; attention runs per sequence
    /// over its own cache. Returns logits `(n, vocab)`.
    pub fn decode_step(&self, tokens: &[u32], caches: &mut [&mut Cache]) -> Result<Tensor> {
        let n = tokens.len();
        if n != caches.len() {
            candle_core::bail!("{n} tokens for {} caches", caches.len());
        }
        let dev = self.device();
        let ids = Tensor::new(tokens, dev)?.reshape((n, 1))?;
        let mut x = self.wte.forward(&ids)?; // (n, 1, C)
        if let Some(wpe) = &self.wpe {
            let pos: Vec<u32> = caches.iter().map(|c| c.seq_len as u32).collect();
            if caches
                .iter()
                .any(|c| c.seq_len >= self.cfg.max_position_embeddings)
            {
                candle_core::bail!(
                    "a sequence reached the model's context of {}",
                    self.cfg.max_position_embeddings
                );
            }
            x = (x + wpe.forward(&Tensor::new(pos.as_slice(), dev)?.reshape((n, 1))?)?)?;
        }
        for (i, block) in self.blocks.iter().enumerate() {
            let h = block.ln_1.forward(&x)?;
            let (q, k, v) = block.attn.qkv(&h)?; // (n, 1, nh, hs)
            let mut ys = Vec::with_capacity(n);
            for (s, cache) in caches.iter_mut().enumerate() {
                let start = cache.seq_len;
                let (qs, ks) = self.rotate(q.narrow(0, s, 1)?, k.narrow(0, s, 1)?, start)?;
                let vs = v.narrow(0, s, 1)?;
                let (ks, vs) = match &cache.layers[i] {
                    Some((pk, pv)) => (Tensor::cat(&[pk, &ks], 1)?, Tensor::cat(&[pv, &vs], 1)?),
                    None => (ks, vs),
                };
                cache.layers[i] = Some((ks.clone(), vs.clone()));
                ys.push(crate::fused::attention(&qs, &ks, &vs, None, true, start)?);
            }
            let y = Tensor::cat(&ys, 0)?;
            x = (x + block.attn.project_out(&y, None)?)?;
            x = (&x + block.mlp.forward(&block.ln_2.forward(&x)?, None)?)?;
        }
        for c in caches.iter_mut() {
            c.seq_len += 1;
        }
        let x = self.ln_f.forward(&x)?.reshape((n, self.cfg.hidden_size))?;
        if n <= crate::fused::GEMV_MAX_ROWS && !self.lm_head.track_op() {
            return crate::fused::gemv_t(&x, &self.lm_head);
        }
        x.matmul(&self.lm_head.t()?)
    }

    /// Log-softmax over the vocabulary of the last position: next-token log-probabilities.
    pub fn last_logits(logits: &Tensor) -> Result<Tensor> {
        let (_, t, _) = logits.dims3()?;
        logits.narrow(1, t - 1, 1)?.squeeze(1)
    }

    /// Number of parameters (the tied head counted once).
    pub fn num_params(&self) -> usize {
        let mut n =
            self.wte.weight.elem_count() + self.wpe.as_ref().map_or(0, |w| w.weight.elem_count());
        if !self.cfg.tied() {
            n += self.lm_head.elem_count();
        }
        let c = self.cfg.hidden_size;
        let per_block = match self.cfg.family() {
            Family::Gpt2 => {
                4 * c
                    + c * 3 * c
                    + 3 * c
                    + c * c
                    + c
                    + 2 * c * self.cfg.mlp_dim()
                    + self.cfg.mlp_dim()
                    + c
            }
            Family::Llama => {
                let kv = self.cfg.kv_heads() * self.cfg.head_dim();
                let bias = if self.cfg.model_type == "qwen2" {
                    c + 2 * kv
                } else {
                    0
                };
                2 * c + c * c * 2 + 2 * c * kv + bias + 3 * c * self.cfg.mlp_dim()
            }
        };
        let ln_f = if self.cfg.family() == Family::Gpt2 {
            2 * c
        } else {
            c
        };
        n + per_block * self.blocks.len() + ln_f
    }
}

/// Cross-entropy of `logits` (B, T, V) against `targets` (B, T), averaged over positions.
pub fn lm_loss(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let (b, t, v) = logits.dims3()?;
    let logits = logits.reshape((b * t, v))?;
    let targets = targets.reshape(b * t)?;
    let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
    let picked = logp.gather(&targets.unsqueeze(1)?, 1)?;
    picked.mean_all()?.neg()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Var};
    use candle_nn::VarMap;

    fn tiny_llama() -> Config {
        let mut c = Config::tiny();
        c.model_type = "qwen2".into();
        c.num_key_value_heads = Some(1);
        c.intermediate_size = Some(24);
        c.rms_norm_eps = Some(1e-6);
        c.rope_theta = Some(10_000.0);
        c.hidden_act = Some("silu".into());
        c.tie_word_embeddings = Some(false);
        c
    }

    #[test]
    fn every_parameter_receives_a_gradient() {
        for cfg in [Config::tiny(), tiny_llama()] {
            let vm = VarMap::new();
            let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
            let m = Gpt::load(vb, &cfg).unwrap();
            let ids = Tensor::new(&[[1u32, 5, 9, 3], [2, 7, 7, 1]], &Device::Cpu).unwrap();
            let logits = m.forward(&ids, None, Some(&Dropout::new(0))).unwrap();
            let loss = lm_loss(&logits, &ids).unwrap();
            let grads = loss.backward().unwrap();
            for (name, var) in vm.data().lock().unwrap().iter() {
                let g = grads
                    .get(var.as_tensor())
                    .unwrap_or_else(|| panic!("{}: {name} got no gradient", cfg.model_type));
                let norm = g
                    .sqr()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap();
                assert!(norm > 0.0, "{}: {name} has a zero gradient", cfg.model_type);
            }
        }
    }

    #[test]
    fn cached_decoding_equals_the_full_forward() {
        for cfg in [Config::tiny(), tiny_llama()] {
            let vm = VarMap::new();
            let m =
                Gpt::load(VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu), &cfg).unwrap();
            // Detach the weights from the graph: inference.
            let tensors: std::collections::HashMap<String, Tensor> = vm
                .data()
                .lock()
                .unwrap()
                .iter()
                .map(|(k, v): (&String, &Var)| (k.clone(), v.as_tensor().detach()))
                .collect();
            let m2 = Gpt::load(
                VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu),
                &cfg,
            )
            .unwrap();
            drop(m);
            let ids = Tensor::new(&[[1u32, 5, 9, 3, 4, 8]], &Device::Cpu).unwrap();
            let full = m2.forward(&ids, None, None).unwrap();
            let mut cache = m2.new_cache();
            let a = m2
                .forward(&ids.narrow(1, 0, 4).unwrap(), Some(&mut cache), None)
                .unwrap();
            let b = m2
                .forward(&ids.narrow(1, 4, 1).unwrap(), Some(&mut cache), None)
                .unwrap();
            let mut c2 = cache.clone();
            let c = m2.decode_step(&[8], &mut [&mut c2]).unwrap();
            let stepped = Tensor::cat(&[a, b, c.unsqueeze(1).unwrap()], 1).unwrap();
            let diff = (full - stepped)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(diff < 1e-5, "{}: {diff}", cfg.model_type);
        }
    }
}

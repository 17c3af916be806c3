//! BERT (Devlin et al. 2019): embeddings, encoder, pooler and the heads of Hugging Face
//! `transformers` — `BertForMaskedLM`, `BertForSequenceClassification`,
//! `BertForTokenClassification` — with their tensor names, so checkpoints move both ways.
//!
//! A layer reads: `x = LN(x + attn(x))`, `x = LN(x + ffn(x))` (post-norm).

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{D, Module, Result, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::nn::{Dropout, Embedding, Linear, Norm, dropout};
use crate::ops;

/// Hyper-parameters with Hugging Face's `BertConfig` keys; keys duet does not use are kept so
/// that a saved `config.json` round-trips.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Tokens in the vocabulary.
    pub vocab_size: usize,
    /// Width of the hidden states.
    pub hidden_size: usize,
    /// Encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// Activation of the feed-forward layer.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Dropout on hidden states.
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f64,
    /// Dropout on attention weights.
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f64,
    /// Dropout before a classification head (defaults to `hidden_dropout_prob`).
    #[serde(default)]
    pub classifier_dropout: Option<f64>,
    /// Longest input.
    pub max_position_embeddings: usize,
    /// Segment types.
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Padding token id.
    #[serde(default)]
    pub pad_token_id: u32,
    /// Class names of a classification head, by index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id2label: Option<BTreeMap<String, String>>,
    /// Class indices by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label2id: Option<BTreeMap<String, usize>>,
    /// The `transformers` class this checkpoint is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architectures: Option<Vec<String>>,
    /// Always `bert`.
    #[serde(default = "default_model_type")]
    pub model_type: String,
    /// Other keys, kept as they were.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

fn default_act() -> String {
    "gelu".into()
}
fn default_dropout() -> f64 {
    0.1
}
fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_model_type() -> String {
    "bert".into()
}

impl Config {
    /// Reads and checks `config.json`.
    pub fn load(path: &Path) -> crate::Result<Self> {
        let cfg: Self = crate::hub::read_json(path)?;
        if cfg.model_type != "bert" {
            return Err(crate::Error::Config {
                path: path.to_path_buf(),
                message: format!(
                    "model_type {:?}: duet's encoder is BERT (model_type \"bert\")",
                    cfg.model_type
                ),
            });
        }
        if cfg.num_attention_heads == 0 || !cfg.hidden_size.is_multiple_of(cfg.num_attention_heads)
        {
            return Err(crate::Error::Config {
                path: path.to_path_buf(),
                message: format!(
                    "hidden_size {} is not a multiple of num_attention_heads {}",
                    cfg.hidden_size, cfg.num_attention_heads
                ),
            });
        }
        Ok(cfg)
    }

    /// A tiny config for tests.
    pub fn tiny() -> Self {
        Self {
            vocab_size: 64,
            hidden_size: 16,
            num_hidden_layers: 2,
            num_attention_heads: 2,
            intermediate_size: 32,
            hidden_act: "gelu".into(),
            hidden_dropout_prob: 0.1,
            attention_probs_dropout_prob: 0.1,
            classifier_dropout: None,
            max_position_embeddings: 32,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            pad_token_id: 0,
            id2label: None,
            label2id: None,
            architectures: None,
            model_type: "bert".into(),
            extra: Default::default(),
        }
    }

    /// The class names, in index order (`LABEL_i` where the config names none).
    pub fn labels(&self) -> Vec<String> {
        let n = self.id2label.as_ref().map_or(0, BTreeMap::len);
        (0..n)
            .map(|i| {
                self.id2label
                    .as_ref()
                    .and_then(|m| m.get(&i.to_string()).cloned())
                    .unwrap_or_else(|| format!("LABEL_{i}"))
            })
            .collect()
    }

    /// Sets the class names (and `label2id`).
    pub fn set_labels(&mut self, labels: &[String]) {
        self.id2label = Some(
            labels
                .iter()
                .enumerate()
                .map(|(i, l)| (i.to_string(), l.clone()))
                .collect(),
        );
        self.label2id = Some(
            labels
                .iter()
                .enumerate()
                .map(|(i, l)| (l.clone(), i))
                .collect(),
        );
    }
}

/// Word, position and segment embeddings, summed and normalised.
#[derive(Debug, Clone)]
pub struct Embeddings {
    word: Embedding,
    position: Embedding,
    token_type: Embedding,
    norm: Norm,
    pdrop: f64,
}

impl Embeddings {
    fn load(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        let h = cfg.hidden_size;
        Ok(Self {
            word: Embedding::load(vb.pp("word_embeddings"), cfg.vocab_size, h)?,
            position: Embedding::load(
                vb.pp("position_embeddings"),
                cfg.max_position_embeddings,
                h,
            )?,
            token_type: Embedding::load(vb.pp("token_type_embeddings"), cfg.type_vocab_size, h)?,
            norm: Norm::layer(vb.pp("LayerNorm"), h, cfg.layer_norm_eps)?,
            pdrop: cfg.hidden_dropout_prob,
        })
    }

    fn forward(&self, ids: &Tensor, type_ids: &Tensor, drop: Option<&Dropout>) -> Result<Tensor> {
        let (_, t) = ids.dims2()?;
        let pos = Tensor::arange(0u32, t as u32, ids.device())?;
        let x = self
            .word
            .forward(ids)?
            .add(&self.token_type.forward(type_ids)?)?
            .broadcast_add(&self.position.forward(&pos)?)?;
        dropout(&self.norm.forward(&x)?, self.pdrop, drop)
    }
}

/// One encoder layer.
#[derive(Debug, Clone)]
struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attn_out: Linear,
    attn_norm: Norm,
    intermediate: Linear,
    output: Linear,
    out_norm: Norm,
    n_head: usize,
    act: String,
    hidden_pdrop: f64,
    attn_pdrop: f64,
}

impl Layer {
    fn load(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        let (h, f, eps) = (cfg.hidden_size, cfg.intermediate_size, cfg.layer_norm_eps);
        let att = vb.pp("attention");
        Ok(Self {
            query: Linear::load(att.pp("self").pp("query"), h, h, true)?,
            key: Linear::load(att.pp("self").pp("key"), h, h, true)?,
            value: Linear::load(att.pp("self").pp("value"), h, h, true)?,
            attn_out: Linear::load(att.pp("output").pp("dense"), h, h, true)?,
            attn_norm: Norm::layer(att.pp("output").pp("LayerNorm"), h, eps)?,
            intermediate: Linear::load(vb.pp("intermediate").pp("dense"), h, f, true)?,
            output: Linear::load(vb.pp("output").pp("dense"), f, h, true)?,
            out_norm: Norm::layer(vb.pp("output").pp("LayerNorm"), h, eps)?,
            n_head: cfg.num_attention_heads,
            act: cfg.hidden_act.clone(),
            hidden_pdrop: cfg.hidden_dropout_prob,
            attn_pdrop: cfg.attention_probs_dropout_prob,
        })
    }

    /// Inference over packed sequences (N, H): no padding anywhere.
    fn forward_packed(&self, x: &Tensor, offsets: &[usize]) -> Result<Tensor> {
        use crate::fused::{self, Act};
        let (n, h) = x.dims2()?;
        let hs = h / self.n_head;
        let heads = |y: Tensor| y.reshape((n, self.n_head, hs));
        let q = heads(self.query.forward_act(x, Act::Identity)?)?;
        let k = heads(self.key.forward_act(x, Act::Identity)?)?;
        let v = heads(self.value.forward_act(x, Act::Identity)?)?;
        let y = fused::attention_varlen(&q, &k, &v, offsets, false)?;
        let (
            Norm::Layer {
                weight: w1,
                bias: b1,
                eps,
            },
            Norm::Layer {
                weight: w2,
                bias: b2,
                ..
            },
        ) = (&self.attn_norm, &self.out_norm)
        else {
            candle_core::bail!("BERT layers use LayerNorm");
        };
        let x = fused::add_layer_norm(
            x,
            &self.attn_out.matmul(&y)?,
            self.attn_out.bias.as_ref(),
            w1,
            b1,
            *eps,
        )?;
        let act = Act::from_name(&self.act).ok_or_else(|| {
            candle_core::Error::Msg(format!("activation {} has no fused kernel", self.act))
        })?;
        let f = self.intermediate.forward_act(&x, act)?;
        fused::add_layer_norm(
            &x,
            &self.output.matmul(&f)?,
            self.output.bias.as_ref(),
            w2,
            b2,
            *eps,
        )
    }

    /// Inference: fused kernels (bias + activation, attention, residual + LayerNorm);
    /// `key_mask` (B·T) is 1 for real tokens.
    fn forward_fused(&self, x: &Tensor, key_mask: &[u8]) -> Result<Tensor> {
        use crate::fused::{self, Act};
        let (b, t, h) = x.dims3()?;
        let hs = h / self.n_head;
        let heads = |y: Tensor| y.reshape((b, t, self.n_head, hs));
        let q = heads(self.query.forward_act(x, Act::Identity)?)?;
        let k = heads(self.key.forward_act(x, Act::Identity)?)?;
        let v = heads(self.value.forward_act(x, Act::Identity)?)?;
        let y = fused::attention(&q, &k, &v, Some(key_mask.to_vec()), false, 0)?;
        let (
            Norm::Layer {
                weight: w1,
                bias: b1,
                eps,
            },
            Norm::Layer {
                weight: w2,
                bias: b2,
                ..
            },
        ) = (&self.attn_norm, &self.out_norm)
        else {
            candle_core::bail!("BERT layers use LayerNorm");
        };
        // x = LN(x + attn(x)), the output projection's bias folded into the norm's pass
        let x = fused::add_layer_norm(
            x,
            &self.attn_out.matmul(&y)?,
            self.attn_out.bias.as_ref(),
            w1,
            b1,
            *eps,
        )?;
        // x = LN(x + ffn(x))
        let act = Act::from_name(&self.act).ok_or_else(|| {
            candle_core::Error::Msg(format!("activation {} has no fused kernel", self.act))
        })?;
        let f = self.intermediate.forward_act(&x, act)?;
        fused::add_layer_norm(
            &x,
            &self.output.matmul(&f)?,
            self.output.bias.as_ref(),
            w2,
            b2,
            *eps,
        )
    }

    /// `x` (B, T, H); `bias` (B, 1, 1, T) holds 0 for real tokens and a large negative for padding.
    fn forward(&self, x: &Tensor, bias: &Tensor, drop: Option<&Dropout>) -> Result<Tensor> {
        let (b, t, h) = x.dims3()?;
        let hs = h / self.n_head;
        // (B, T, H) -> (B, nh, T, hs)
        let heads = |y: Tensor| {
            y.reshape((b, t, self.n_head, hs))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = heads(self.query.forward(x)?)?;
        let k = heads(self.key.forward(x)?)?;
        let v = heads(self.value.forward(x)?)?;
        let att = (q.matmul(&k.t()?)? * (1.0 / (hs as f64).sqrt()))?.broadcast_add(bias)?;
        let att = dropout(&ops::softmax_last_dim(&att)?, self.attn_pdrop, drop)?;
        let y = att.matmul(&v)?.transpose(1, 2)?.reshape((b, t, h))?;
        // x = LN(x + attn(x))
        let y = dropout(&self.attn_out.forward(&y)?, self.hidden_pdrop, drop)?;
        let x = self.attn_norm.forward(&(x + y)?)?;
        // x = LN(x + ffn(x))
        let f = ops::activation(&self.act, &self.intermediate.forward(&x)?)?;
        let f = dropout(&self.output.forward(&f)?, self.hidden_pdrop, drop)?;
        self.out_norm.forward(&(x + f)?)
    }
}

/// The encoder: embeddings, layers and (optionally) the pooler.
#[derive(Debug, Clone)]
pub struct BertModel {
    embeddings: Embeddings,
    layers: Vec<Layer>,
    pooler: Option<Linear>,
    /// The configuration.
    pub cfg: Config,
}

impl BertModel {
    /// Loads the encoder; the pooler is read when `pooler` is set.
    pub fn load(vb: VarBuilder, cfg: &Config, pooler: bool) -> Result<Self> {
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| Layer::load(vb.pp("encoder").pp("layer").pp(i), cfg))
            .collect::<Result<Vec<_>>>()?;
        let pooler = if pooler {
            Some(Linear::load(
                vb.pp("pooler").pp("dense"),
                cfg.hidden_size,
                cfg.hidden_size,
                true,
            )?)
        } else {
            None
        };
        Ok(Self {
            embeddings: Embeddings::load(vb.pp("embeddings"), cfg)?,
            layers,
            pooler,
            cfg: cfg.clone(),
        })
    }

    /// The word embedding table (tied to the MLM decoder).
    pub fn word_embeddings(&self) -> &Tensor {
        &self.embeddings.word.weight
    }

    /// Hidden states `(B, T, H)` of `ids` `(B, T)`; `mask` is 1 for real tokens, 0 for padding.
    pub fn forward(
        &self,
        ids: &Tensor,
        type_ids: &Tensor,
        mask: &Tensor,
        drop: Option<&Dropout>,
    ) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        if t > self.cfg.max_position_embeddings {
            candle_core::bail!(
                "input of {t} tokens is longer than the model's {} positions",
                self.cfg.max_position_embeddings
            );
        }
        let mut x = self.embeddings.forward(ids, type_ids, drop)?;
        if drop.is_none() && crate::fused::Act::from_name(&self.cfg.hidden_act).is_some() {
            // Inference: fused kernels.
            let key_mask: Vec<u8> = mask
                .to_dtype(candle_core::DType::U8)?
                .flatten_all()?
                .to_vec1()?;
            for layer in &self.layers {
                x = layer.forward_fused(&x, &key_mask)?;
            }
            return Ok(x);
        }
        // (1 - mask) * min, broadcast over heads and queries: (B, 1, 1, T)
        let bias = ((mask.to_dtype(candle_core::DType::F32)?.affine(-1.0, 1.0))?
            * f32::MIN as f64)?
            .reshape((b, 1, 1, t))?;
        for layer in &self.layers {
            x = layer.forward(&x, &bias, drop)?;
        }
        Ok(x)
    }

    /// Inference on sequences packed back to back with no padding: returns the hidden states
    /// (N, H) of all tokens, sequence `s` in rows `offsets[s]..offsets[s + 1]`. Segment ids
    /// are all 0.
    pub fn forward_packed(&self, seqs: &[&[u32]]) -> Result<(Tensor, Vec<usize>)> {
        let mut offsets = Vec::with_capacity(seqs.len() + 1);
        offsets.push(0);
        let mut ids = Vec::new();
        let mut pos = Vec::new();
        for s in seqs {
            if s.len() > self.cfg.max_position_embeddings {
                candle_core::bail!(
                    "input of {} tokens is longer than the model's {} positions",
                    s.len(),
                    self.cfg.max_position_embeddings
                );
            }
            ids.extend_from_slice(s);
            pos.extend(0..s.len() as u32);
            offsets.push(ids.len());
        }
        let dev = self.word_embeddings().device();
        let n = ids.len();
        let ids = Tensor::from_vec(ids, n, dev)?;
        let pos = Tensor::from_vec(pos, n, dev)?;
        let e = &self.embeddings;
        let x = e
            .word
            .forward(&ids)?
            .add(&e.position.forward(&pos)?)?
            .broadcast_add(&e.token_type.weight.get(0)?)?;
        let mut x = e.norm.forward(&x)?;
        for layer in &self.layers {
            x = layer.forward_packed(&x, &offsets)?;
        }
        Ok((x, offsets))
    }

    /// `tanh(W h_[CLS] + b)`: the pooled output that BERT's classifier reads.
    pub fn pool(&self, hidden: &Tensor) -> Result<Tensor> {
        let cls = hidden.narrow(1, 0, 1)?.squeeze(1)?;
        match &self.pooler {
            Some(p) => p.forward(&cls)?.tanh(),
            None => candle_core::bail!("this model was loaded without a pooler"),
        }
    }
}

/// `BertForMaskedLM`: the encoder and the prediction head tied to the word embeddings.
#[derive(Debug, Clone)]
pub struct BertForMaskedLm {
    /// The encoder.
    pub bert: BertModel,
    transform: Linear,
    transform_norm: Norm,
    bias: Tensor,
}

impl BertForMaskedLm {
    /// Loads `bert.*` and `cls.predictions.*`.
    pub fn load(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        let bert = BertModel::load(vb.pp("bert"), cfg, false)?;
        let p = vb.pp("cls").pp("predictions");
        let h = cfg.hidden_size;
        Ok(Self {
            transform: Linear::load(p.pp("transform").pp("dense"), h, h, true)?,
            transform_norm: Norm::layer(p.pp("transform").pp("LayerNorm"), h, cfg.layer_norm_eps)?,
            bias: p.get_with_hints(cfg.vocab_size, "bias", candle_nn::Init::Const(0.0))?,
            bert,
        })
    }

    /// Vocabulary logits `(B, T, V)`.
    pub fn forward(
        &self,
        ids: &Tensor,
        type_ids: &Tensor,
        mask: &Tensor,
        drop: Option<&Dropout>,
    ) -> Result<Tensor> {
        let x = self.bert.forward(ids, type_ids, mask, drop)?;
        let x = self.transform_norm.forward(&ops::activation(
            &self.bert.cfg.hidden_act,
            &self.transform.forward(&x)?,
        )?)?;
        let (b, t, h) = x.dims3()?;
        x.reshape((b * t, h))?
            .matmul(&self.bert.word_embeddings().t()?)?
            .broadcast_add(&self.bias)?
            .reshape((b, t, ()))
    }
}

/// `BertForSequenceClassification`: pooled output, dropout, a linear classifier.
#[derive(Debug, Clone)]
pub struct BertForSequenceClassification {
    /// The encoder.
    pub bert: BertModel,
    classifier: Linear,
    pdrop: f64,
}

impl BertForSequenceClassification {
    /// Loads `bert.*` (with the pooler) and `classifier.*` for `num_labels` classes.
    pub fn load(vb: VarBuilder, cfg: &Config, num_labels: usize) -> Result<Self> {
        Ok(Self {
            bert: BertModel::load(vb.pp("bert"), cfg, true)?,
            classifier: Linear::load(vb.pp("classifier"), cfg.hidden_size, num_labels, true)?,
            pdrop: cfg.classifier_dropout.unwrap_or(cfg.hidden_dropout_prob),
        })
    }

    /// Class logits `(B, num_labels)`.
    pub fn forward(
        &self,
        ids: &Tensor,
        type_ids: &Tensor,
        mask: &Tensor,
        drop: Option<&Dropout>,
    ) -> Result<Tensor> {
        let x = self.bert.forward(ids, type_ids, mask, drop)?;
        let pooled = dropout(&self.bert.pool(&x)?, self.pdrop, drop)?;
        self.classifier.forward(&pooled)
    }
}

/// `BertForTokenClassification`: a linear classifier on every position.
#[derive(Debug, Clone)]
pub struct BertForTokenClassification {
    /// The encoder.
    pub bert: BertModel,
    classifier: Linear,
    pdrop: f64,
}

impl BertForTokenClassification {
    /// Loads `bert.*` (no pooler) and `classifier.*` for `num_labels` tags.
    pub fn load(vb: VarBuilder, cfg: &Config, num_labels: usize) -> Result<Self> {
        Ok(Self {
            bert: BertModel::load(vb.pp("bert"), cfg, false)?,
            classifier: Linear::load(vb.pp("classifier"), cfg.hidden_size, num_labels, true)?,
            pdrop: cfg.classifier_dropout.unwrap_or(cfg.hidden_dropout_prob),
        })
    }

    /// Tag logits `(B, T, num_labels)`.
    pub fn forward(
        &self,
        ids: &Tensor,
        type_ids: &Tensor,
        mask: &Tensor,
        drop: Option<&Dropout>,
    ) -> Result<Tensor> {
        let x = dropout(
            &self.bert.forward(ids, type_ids, mask, drop)?,
            self.pdrop,
            drop,
        )?;
        self.classifier.forward(&x)
    }
}

/// How token states become one sentence vector (sentence-transformers' `Pooling`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// The first token's state.
    Cls,
    /// The mean over real tokens.
    Mean,
    /// The element-wise maximum over real tokens.
    Max,
    /// The sum over real tokens divided by the square root of their number.
    MeanSqrtLen,
}

/// Pools `hidden` (B, T, H) over the positions where `mask` (B, T) is 1.
pub fn pool(hidden: &Tensor, mask: &Tensor, how: Pooling) -> Result<Tensor> {
    let m = mask.to_dtype(candle_core::DType::F32)?.unsqueeze(2)?; // (B, T, 1)
    match how {
        Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1),
        Pooling::Mean | Pooling::MeanSqrtLen => {
            let sum = hidden.broadcast_mul(&m)?.sum(1)?;
            let n = m.sum(1)?.clamp(1e-9, f64::MAX)?;
            let n = if how == Pooling::MeanSqrtLen {
                n.sqrt()?
            } else {
                n
            };
            sum.broadcast_div(&n)
        }
        Pooling::Max => {
            // Padding gets a very negative value so it never wins.
            let neg = ((m.affine(-1.0, 1.0))? * -1e9)?;
            hidden.broadcast_add(&neg)?.max(1)
        }
    }
}

/// Pools packed hidden states (N, H), sequence `s` in rows `offsets[s]..offsets[s + 1]`.
pub fn pool_packed(hidden: &Tensor, offsets: &[usize], how: Pooling) -> Result<Tensor> {
    let rows = offsets
        .windows(2)
        .map(|w| {
            if w[1] == w[0] {
                return Tensor::zeros(hidden.dim(1)?, hidden.dtype(), hidden.device());
            }
            let h = hidden.narrow(0, w[0], w[1] - w[0])?;
            match how {
                Pooling::Cls => h.get(0),
                Pooling::Mean => h.mean(0),
                Pooling::Max => h.max(0),
                Pooling::MeanSqrtLen => h.sum(0)? / ((w[1] - w[0]) as f64).sqrt(),
            }
        })
        .collect::<Result<Vec<_>>>()?;
    Tensor::stack(&rows, 0)
}

/// Scales rows to unit L2 norm (sentence-transformers' `Normalize`).
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let norm = x
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .sqrt()?
        .clamp(1e-12, f64::MAX)?;
    x.broadcast_div(&norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    #[test]
    fn every_parameter_receives_a_gradient() {
        let cfg = Config::tiny();
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        let m = BertForSequenceClassification::load(vb, &cfg, 3).unwrap();
        let ids = Tensor::new(&[[2u32, 5, 9, 3], [2, 7, 1, 0]], &Device::Cpu).unwrap();
        let types = Tensor::new(&[[0u32, 0, 1, 1], [0, 0, 0, 0]], &Device::Cpu).unwrap();
        let mask = Tensor::new(&[[1u32, 1, 1, 1], [1, 1, 1, 0]], &Device::Cpu).unwrap();
        let logits = m
            .forward(&ids, &types, &mask, Some(&Dropout::new(1)))
            .unwrap();
        let target = Tensor::new(&[0u32, 2], &Device::Cpu).unwrap();
        let loss = candle_nn::loss::cross_entropy(&logits, &target).unwrap();
        let grads = loss.backward().unwrap();
        for (name, var) in vm.data().lock().unwrap().iter() {
            let g = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("{name} got no gradient"));
            // Position embeddings beyond the input length and unused ids get no signal.
            if name.contains("embeddings.") {
                continue;
            }
            let norm = g
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(norm > 0.0, "{name} has a zero gradient");
        }
    }

    #[test]
    fn padding_does_not_change_real_positions() {
        let cfg = Config::tiny();
        let vm = VarMap::new();
        let m = BertModel::load(
            VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu),
            &cfg,
            true,
        )
        .unwrap();
        let ids = Tensor::new(&[[2u32, 5, 9]], &Device::Cpu).unwrap();
        let padded = Tensor::new(&[[2u32, 5, 9, 0, 0]], &Device::Cpu).unwrap();
        let a = m
            .forward(
                &ids,
                &ids.zeros_like().unwrap(),
                &ids.ones_like().unwrap(),
                None,
            )
            .unwrap();
        let mask = Tensor::new(&[[1u32, 1, 1, 0, 0]], &Device::Cpu).unwrap();
        let b = m
            .forward(&padded, &padded.zeros_like().unwrap(), &mask, None)
            .unwrap()
            .narrow(1, 0, 3)
            .unwrap();
        let diff = (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-5, "{diff}");
        let pooled = pool(
            &m.forward(&padded, &padded.zeros_like().unwrap(), &mask, None)
                .unwrap(),
            &mask,
            Pooling::Mean,
        )
        .unwrap();
        let n = l2_normalize(&pooled)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!((n - 1.0).abs() < 1e-5);
    }
}

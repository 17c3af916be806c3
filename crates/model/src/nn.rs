//! Small building blocks shared by the models: linear layers in both weight layouts, norms,
//! embeddings and seeded dropout.

use std::sync::Mutex;

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg32;

use crate::ops;

/// `x Wᵀ` for `x` (N, in): the streaming kernel for a few rows at inference, else a matmul.
fn mm_t(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    if x.dim(0)? <= crate::fused::GEMV_MAX_ROWS && !x.track_op() && !w.track_op() {
        crate::fused::gemv_t(x, w)
    } else {
        x.matmul(&w.t()?)
    }
}

/// `x W` for `x` (N, in), `W` (in, out): as [`mm_t`].
fn mm(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    if x.dim(0)? <= crate::fused::GEMV_MAX_ROWS && !x.track_op() && !w.track_op() {
        crate::fused::gemv(x, w)
    } else {
        x.matmul(w)
    }
}

/// How `transformers` initialises weights of GPT-2, Llama and BERT (`initializer_range`).
pub const INIT: candle_nn::Init = candle_nn::Init::Randn {
    mean: 0.0,
    stdev: 0.02,
};

/// `y = x Wᵀ + b` with `W` stored `(out, in)`, as `torch.nn.Linear`.
#[derive(Debug, Clone)]
pub struct Linear {
    /// Weight, `(out, in)`.
    pub weight: Tensor,
    /// Bias, `(out,)`.
    pub bias: Option<Tensor>,
}

impl Linear {
    /// Loads `weight` (and `bias` when `bias` is set) from `vb`.
    pub fn load(vb: VarBuilder, in_dim: usize, out_dim: usize, bias: bool) -> Result<Self> {
        let weight = vb.get_with_hints((out_dim, in_dim), "weight", INIT)?;
        let bias = if bias {
            Some(vb.get_with_hints(out_dim, "bias", candle_nn::Init::Const(0.0))?)
        } else {
            None
        };
        Ok(Self { weight, bias })
    }
}

impl Linear {
    /// `x Wᵀ` without the bias, `x` of shape (N, in) or (B, T, in).
    pub fn matmul(&self, x: &Tensor) -> Result<Tensor> {
        match x.dims() {
            [b, t, c] => mm_t(&x.reshape((b * t, *c))?, &self.weight)?.reshape((*b, *t, ())),
            [_, _] => mm_t(x, &self.weight),
            _ => x.matmul(&self.weight.t()?),
        }
    }

    /// `act(x Wᵀ + b)` with the bias and activation fused (inference).
    pub fn forward_act(&self, x: &Tensor, act: crate::fused::Act) -> Result<Tensor> {
        let y = self.matmul(x)?;
        match &self.bias {
            Some(b) => crate::fused::bias_act(&y, b, act),
            None if act == crate::fused::Act::Identity => Ok(y),
            None => crate::fused::bias_act(
                &y,
                &Tensor::zeros(y.dim(candle_core::D::Minus1)?, y.dtype(), y.device())?,
                act,
            ),
        }
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.matmul(x)?;
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

/// `y = x W + b` with `W` stored `(in, out)`, as GPT-2's `Conv1D`.
#[derive(Debug, Clone)]
pub struct Conv1D {
    /// Weight, `(in, out)`.
    pub weight: Tensor,
    /// Bias, `(out,)`.
    pub bias: Tensor,
}

impl Conv1D {
    /// Loads `weight` and `bias` from `vb`.
    pub fn load(vb: VarBuilder, in_dim: usize, out_dim: usize) -> Result<Self> {
        let weight = vb.get_with_hints(
            (in_dim, out_dim),
            "weight",
            candle_nn::Init::Randn {
                mean: 0.0,
                stdev: 0.02,
            },
        )?;
        let bias = vb.get_with_hints(out_dim, "bias", candle_nn::Init::Const(0.0))?;
        Ok(Self { weight, bias })
    }
}

impl Conv1D {
    /// `act(x W + b)` with the bias and activation fused (inference).
    pub fn forward_act(&self, x: &Tensor, act: crate::fused::Act) -> Result<Tensor> {
        crate::fused::bias_act(&self.matmul(x)?, &self.bias, act)
    }

    /// `x W` without the bias.
    pub fn matmul(&self, x: &Tensor) -> Result<Tensor> {
        match x.dims() {
            [b, t, c] => mm(&x.reshape((b * t, *c))?, &self.weight)?.reshape((*b, *t, ())),
            [_, _] => mm(x, &self.weight),
            _ => x.matmul(&self.weight),
        }
    }
}

impl Module for Conv1D {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.matmul(x)?.broadcast_add(&self.bias)
    }
}

/// LayerNorm or RMSNorm.
#[derive(Debug, Clone)]
pub enum Norm {
    /// `(x - mean) / sqrt(var + eps) * w + b`.
    Layer {
        /// Scale.
        weight: Tensor,
        /// Shift.
        bias: Tensor,
        /// Epsilon.
        eps: f64,
    },
    /// `x / sqrt(mean(x²) + eps) * w`.
    Rms {
        /// Scale.
        weight: Tensor,
        /// Epsilon.
        eps: f64,
    },
}

impl Norm {
    /// A LayerNorm with `weight` and `bias` under `vb`.
    pub fn layer(vb: VarBuilder, dim: usize, eps: f64) -> Result<Self> {
        Ok(Self::Layer {
            weight: vb.get_with_hints(dim, "weight", candle_nn::Init::Const(1.0))?,
            bias: vb.get_with_hints(dim, "bias", candle_nn::Init::Const(0.0))?,
            eps,
        })
    }

    /// An RMSNorm with `weight` under `vb`.
    pub fn rms(vb: VarBuilder, dim: usize, eps: f64) -> Result<Self> {
        Ok(Self::Rms {
            weight: vb.get_with_hints(dim, "weight", candle_nn::Init::Const(1.0))?,
            eps,
        })
    }
}

impl Module for Norm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Layer { weight, bias, eps } => ops::layer_norm(x, weight, bias, *eps),
            Self::Rms { weight, eps } => ops::rms_norm(x, weight, *eps),
        }
    }
}

/// A token or position embedding table.
#[derive(Debug, Clone)]
pub struct Embedding {
    /// The table, `(n, dim)`.
    pub weight: Tensor,
}

impl Embedding {
    /// Loads `weight` from `vb`.
    pub fn load(vb: VarBuilder, n: usize, dim: usize) -> Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints(
                (n, dim),
                "weight",
                candle_nn::Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
            )?,
        })
    }

    /// Looks up ids of any shape; appends a `dim` axis.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let mut shape = ids.dims().to_vec();
        shape.push(self.weight.dim(1)?);
        self.weight
            .index_select(&ids.flatten_all()?, 0)?
            .reshape(shape)
    }
}

/// Seeded dropout for training: the same seed drops the same units, so runs reproduce.
#[derive(Debug)]
pub struct Dropout {
    rng: Mutex<Pcg32>,
}

impl Dropout {
    /// A dropout source seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: Mutex::new(Pcg32::seed_from_u64(seed)),
        }
    }

    /// The generator's state, for checkpoints.
    pub fn state(&self) -> Option<Pcg32> {
        self.rng.lock().ok().map(|r| r.clone())
    }

    /// Restores a saved generator state.
    pub fn restore(&self, state: Pcg32) {
        if let Ok(mut r) = self.rng.lock() {
            *r = state;
        }
    }

    /// Draws a seed for kernels that make their own masks (the explicit training path), so
    /// that their masks follow this generator and its checkpointed state.
    pub fn seed(&self) -> Result<u64> {
        let mut rng = self
            .rng
            .lock()
            .map_err(|_| candle_core::Error::Msg("dropout lock poisoned".into()))?;
        Ok(rng.random::<u64>())
    }

    /// Zeroes each element with probability `p` and scales the rest by `1 / (1 - p)`.
    pub fn apply(&self, x: &Tensor, p: f64) -> Result<Tensor> {
        if p <= 0.0 {
            return Ok(x.clone());
        }
        let n = x.elem_count();
        let keep = 1.0 - p;
        let scale = (1.0 / keep) as f32;
        let mask: Vec<f32> = {
            let mut rng = self
                .rng
                .lock()
                .map_err(|_| candle_core::Error::Msg("dropout lock poisoned".into()))?;
            (0..n)
                .map(|_| {
                    if rng.random::<f64>() < keep {
                        scale
                    } else {
                        0.0
                    }
                })
                .collect()
        };
        let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
        x.mul(&mask)
    }
}

/// Applies dropout when training (`drop` is set), the identity otherwise.
pub fn dropout(x: &Tensor, p: f64, drop: Option<&Dropout>) -> Result<Tensor> {
    match drop {
        Some(d) if p > 0.0 => d.apply(x, p),
        _ => Ok(x.clone()),
    }
}

/// f32 on the model's device, for masks built on the host.
pub fn host_f32(v: Vec<f32>, shape: &[usize], like: &Tensor) -> Result<Tensor> {
    Tensor::from_vec(v, shape, like.device())?.to_dtype(DType::F32)
}

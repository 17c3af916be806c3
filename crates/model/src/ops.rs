//! Operations with two paths: candle's fused CPU kernels when no gradient is needed, and a plain
//! composition of differentiable ops when the inputs are tracked for backprop. candle's fused
//! `layer_norm`, `rms_norm`, `softmax_last_dim` and `rope` have no backward (see
//! shared/CANDLE-NOTES.md): using them in training silently stops the gradient.

use candle_core::{D, DType, Result, Tensor};

/// Whether any input records operations for backprop.
fn tracked(ts: &[&Tensor]) -> bool {
    ts.iter().any(|t| t.track_op())
}

/// Softmax over the last dimension.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if tracked(&[x]) {
        candle_nn::ops::softmax(x, D::Minus1)
    } else {
        candle_nn::ops::softmax_last_dim(x)
    }
}

/// Layer normalisation over the last dimension (Ba et al. 2016).
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    if tracked(&[x, weight, bias]) {
        layer_norm_reference(x, weight, bias, eps)
    } else {
        candle_nn::ops::layer_norm(&x.contiguous()?, weight, bias, eps as f32)
    }
}

/// Layer normalisation written as plain tensor ops (differentiable).
pub fn layer_norm_reference(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let centred = x.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
    centred
        .broadcast_div(&(var + eps)?.sqrt()?)?
        .broadcast_mul(weight)?
        .broadcast_add(bias)
}

/// RMS normalisation over the last dimension (Zhang & Sennrich 2019), computed in f32.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    if tracked(&[x, weight]) {
        rms_norm_reference(x, weight, eps)
    } else {
        candle_nn::ops::rms_norm(&x.contiguous()?, weight, eps as f32)
    }
}

/// RMS normalisation written as plain tensor ops (differentiable).
pub fn rms_norm_reference(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
    x.broadcast_div(&(ms + eps)?.sqrt()?)?.broadcast_mul(weight)
}

/// Rotary position embedding (Su et al. 2021), "rotate half" layout as in Llama:
/// `x`: (B, nh, T, hs), `cos`/`sin`: (T, hs/2).
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    if tracked(&[x]) {
        candle_nn::rotary_emb::rope_slow(x, cos, sin)
    } else {
        candle_nn::rotary_emb::rope(&x.contiguous()?, cos, sin)
    }
}

/// Rotary position embedding on (B, T, nh, hs), the layout projections produce.
pub fn rope_thd(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    if tracked(&[x]) {
        candle_nn::rotary_emb::rope_slow(&x.transpose(1, 2)?, cos, sin)?.transpose(1, 2)
    } else {
        candle_nn::rotary_emb::rope_thd(&x.contiguous()?, cos, sin)
    }
}

/// GELU with the exact error function (BERT's "gelu").
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    x.gelu_erf()
}

/// GELU with the tanh approximation (GPT-2's "gelu_new").
pub fn gelu_tanh(x: &Tensor) -> Result<Tensor> {
    x.gelu()
}

/// Applies a named activation as Hugging Face configs name them.
pub fn activation(name: &str, x: &Tensor) -> Result<Tensor> {
    match name {
        "gelu" | "gelu_python" => gelu_erf(x),
        "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => gelu_tanh(x),
        "relu" => x.relu(),
        "silu" | "swish" => candle_nn::ops::silu(x),
        "tanh" => x.tanh(),
        other => candle_core::bail!(
            "activation {other:?} is not supported (gelu, gelu_new, relu, silu, tanh)"
        ),
    }
}

/// Mask for causal attention over `t` new positions that follow `past` cached ones: 0 where
/// a query may look, -inf where it may not; shape (t, past + t).
pub fn causal_mask(t: usize, past: usize, device: &candle_core::Device) -> Result<Tensor> {
    let mask: Vec<f32> = (0..t)
        .flat_map(|i| {
            (0..past + t).map(move |j| if j > past + i { f32::NEG_INFINITY } else { 0.0 })
        })
        .collect();
    Tensor::from_vec(mask, (t, past + t), device)
}

/// Converts weights stored as f16/bf16 to f32 for CPU compute.
pub fn to_f32(t: Tensor) -> Result<Tensor> {
    if t.dtype() == DType::F32 {
        Ok(t)
    } else {
        t.to_dtype(DType::F32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn rand(shape: &[usize], seed: u64) -> Tensor {
        let n: usize = shape.iter().product();
        let mut s = seed;
        let v: Vec<f32> = (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn fast_and_reference_paths_agree() {
        let x = rand(&[2, 3, 16], 1);
        let w = rand(&[16], 2);
        let b = rand(&[16], 3);
        let fast = layer_norm(&x, &w, &b, 1e-5).unwrap();
        assert!(max_diff(&fast, &layer_norm_reference(&x, &w, &b, 1e-5).unwrap()) < 1e-5);
        let fast = rms_norm(&x, &w, 1e-6).unwrap();
        assert!(max_diff(&fast, &rms_norm_reference(&x, &w, 1e-6).unwrap()) < 1e-5);
        let fast = softmax_last_dim(&x).unwrap();
        assert!(max_diff(&fast, &candle_nn::ops::softmax(&x, D::Minus1).unwrap()) < 1e-6);
        let q = rand(&[1, 2, 5, 8], 4);
        let (cos, sin) = (rand(&[5, 4], 5), rand(&[5, 4], 6));
        let fast = rope(&q, &cos, &sin).unwrap();
        assert!(
            max_diff(
                &fast,
                &candle_nn::rotary_emb::rope_slow(&q, &cos, &sin).unwrap()
            ) < 1e-6
        );
    }

    #[test]
    fn tracked_inputs_take_the_differentiable_path() {
        let w = Var::from_tensor(&rand(&[16], 2)).unwrap();
        let b = Var::from_tensor(&rand(&[16], 3)).unwrap();
        let x = rand(&[4, 16], 1);
        let y = layer_norm(&x, w.as_tensor(), b.as_tensor(), 1e-5).unwrap();
        let grads = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        assert!(
            grads.get(w.as_tensor()).is_some(),
            "layer norm weight got no gradient"
        );
        assert!(
            grads.get(b.as_tensor()).is_some(),
            "layer norm bias got no gradient"
        );
    }

    #[test]
    fn causal_mask_with_a_cache() {
        let m = causal_mask(2, 3, &Device::Cpu)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(m[0][..4], [0.0; 4]);
        assert!(m[0][4].is_infinite());
        assert_eq!(m[1], [0.0; 5]);
    }
}

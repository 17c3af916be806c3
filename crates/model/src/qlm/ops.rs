//! The element-wise steps of a decoder forward pass on plain `f32` rows: norms, rotary
//! embeddings, activations, and attention over an f16 key/value cache.

use super::config::RopeConfig;
use crate::quant::ggml;

/// `x ← x / rms(x) · w` over each row of `x` (width `w.len()`), as ggml computes it: the
/// squares summed in f64, `scale = 1 / sqrtf(mean + eps)`, then `(x · scale) · w`.
pub fn rms_norm(x: &mut [f32], w: &[f32], eps: f32) {
    for row in x.chunks_exact_mut(w.len()) {
        let sum: f64 = row.iter().map(|v| (v * v) as f64).sum();
        let mean = (sum / w.len() as f64) as f32;
        let s = 1.0 / (mean + eps).sqrt();
        for (v, g) in row.iter_mut().zip(w) {
            *v = *v * s * g;
        }
    }
}

/// RMS norm of `src` into `dst`.
pub fn rms_norm_into(src: &[f32], dst: &mut [f32], w: &[f32], eps: f32) {
    dst.copy_from_slice(src);
    rms_norm(dst, w, eps);
}

/// LayerNorm of `src` into `dst` with weight and bias, as ggml's `norm` computes it: the sum
/// in f64 then `mean = sum / n` in f32; the variance from squared deviations summed sixteen at
/// a time (GCC's reduction order) into an f64; `((x − mean) · scale) · w + b`.
pub fn layer_norm_into(src: &[f32], dst: &mut [f32], w: &[f32], b: &[f32], eps: f32) {
    let n = w.len();
    for (s, d) in src.chunks_exact(n).zip(dst.chunks_exact_mut(n)) {
        let sum = s.iter().map(|&v| v as f64).sum::<f64>() as f32;
        let mean = sum / n as f32;
        let mut var = 0f64;
        let full = n / 16 * 16;
        for chunk in s[..full].chunks_exact(16) {
            let mut sq = [0f32; 16];
            for (q, &v) in sq.iter_mut().zip(chunk) {
                let dv = v - mean;
                *q = dv * dv;
            }
            var += ggml::reduce16(&sq) as f64;
        }
        for &v in &s[full..] {
            let dv = v - mean;
            var += (dv * dv) as f64;
        }
        let var = (var / n as f64) as f32;
        let scale = 1.0 / (var + eps).sqrt();
        for i in 0..n {
            d[i] = (s[i] - mean) * scale * w[i] + b[i];
        }
    }
}

/// Adds `b` to every row of `x`.
pub fn add_bias(x: &mut [f32], b: &[f32]) {
    for row in x.chunks_exact_mut(b.len()) {
        for (v, c) in row.iter_mut().zip(b) {
            *v += c;
        }
    }
}

/// `silu(gate) · up`, into `gate` (ggml's `ggml_vec_swiglu_f32`).
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    ggml::swiglu(gate, up);
}

/// GPT-2's GELU (tanh approximation), in place, as ggml computes it on the CPU: through a
/// table of f16 values (`GGML_GELU_FP16`): the input rounded to f16, GELU of that, rounded to
/// f16; zero below −10 and the identity above 10.
pub fn gelu(x: &mut [f32]) {
    const C: f32 = 0.797_884_6; // √(2/π)
    const A: f32 = 0.044715;
    for v in x.iter_mut() {
        if *v <= -10.0 {
            *v = 0.0;
        } else if *v < 10.0 {
            let h = half::f16::from_f32(*v).to_f32();
            let g = 0.5 * h * (1.0 + (C * h * (1.0 + A * h * h)).tanh());
            *v = half::f16::from_f32(g).to_f32();
        }
    }
}

/// `gelu(gate) · up`, into `gate` (Gemma).
pub fn geglu(gate: &mut [f32], up: &[f32]) {
    gelu(gate);
    for (g, u) in gate.iter_mut().zip(up) {
        *g *= u;
    }
}

/// The cosines and sines of RoPE at position `pos`, one pair per rotated pair of values, as
/// ggml's `ggml_rope_cache_init` makes them: `θ₀ = pos`, `θᵢ₊₁ = θᵢ · base^(−2/dims)` in f32,
/// divided by the pair's factor (`rope_freqs`, Llama 3's scaling) and scaled linearly.
pub fn rope_angles(cfg: &RopeConfig, factors: Option<&[f32]>, pos: usize) -> Vec<(f32, f32)> {
    let theta_scale = cfg.base.powf(-2.0 / cfg.dims as f32);
    let mut theta = pos as f32;
    (0..cfg.dims / 2)
        .map(|i| {
            let ff = factors.and_then(|v| v.get(i)).copied().unwrap_or(1.0);
            let t = cfg.freq_scale * (theta / ff);
            theta *= theta_scale;
            (t.cos(), t.sin())
        })
        .collect()
}

/// Rotates each head of `x` (`heads × head_dim`) by `angles` (from [`rope_angles`]), with
/// the products fused as GCC compiles ggml's `rotate_pairs`.
pub fn rope(x: &mut [f32], head_dim: usize, cfg: &RopeConfig, angles: &[(f32, f32)]) {
    let half = cfg.dims / 2;
    #[cfg(target_arch = "x86_64")]
    if crate::quant::Isa::detect() == crate::quant::Isa::Avx512Vnni {
        for head in x.chunks_exact_mut(head_dim) {
            crate::quant::x86::rotate(head, angles, cfg.halves);
        }
        return;
    }
    for head in x.chunks_exact_mut(head_dim) {
        for (i, &(c, s)) in angles.iter().enumerate() {
            let (a, b) = if cfg.halves {
                (i, i + half)
            } else {
                (2 * i, 2 * i + 1)
            };
            let (x0, x1) = (head[a], head[b]);
            head[a] = x0.mul_add(c, -(x1 * s));
            head[b] = x0.mul_add(s, x1 * c);
        }
    }
}

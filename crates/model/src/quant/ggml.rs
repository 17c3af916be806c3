//! llama.cpp's arithmetic, operation for operation, for the steps whose rounding decides
//! whether duet's logits equal llama.cpp's to the bit (ggml 0.25, x86 with AVX2/AVX-512, as
//! `ggml-cpu` is built with `GGML_NATIVE`): the order in which partial sums are added, where a
//! product is fused into an FMA, and which values are rounded to f16.
//!
//! - [`hsum8`], [`reduce16`]: the horizontal sums of `hsum_float_8` and of GCC's
//!   `_mm512_reduce_add_ps`.
//! - [`dot_f16`]: `ggml_vec_dot_f16` (four 16-lane accumulators over steps of 64, reduced
//!   pairwise, the rest in f64) — attention of a single token; [`dot_f16_tiled`]: tinyBLAS's
//!   one 16-lane accumulator per output — attention of a batch of tokens.
//! - [`expf16`]: `ggml_v_expf` (AVX-512), used by the softmax and SiLU.
//!
//! Everything here is portable Rust that spells out the same operations; the AVX kernels of
//! the matrix products live in `x86.rs`.

use half::f16;

/// `hsum_float_8`: `((l0+l4) + (l2+l6)) + ((l1+l5) + (l3+l7))`.
#[inline]
pub fn hsum8(l: &[f32; 8]) -> f32 {
    let a = [l[4] + l[0], l[5] + l[1], l[6] + l[2], l[7] + l[3]];
    (a[0] + a[2]) + (a[1] + a[3])
}

/// GCC's `_mm512_reduce_add_ps`: halves of 256, then 128 bits, then pairs.
#[inline]
pub fn reduce16(l: &[f32; 16]) -> f32 {
    let mut t = [0f32; 8];
    for i in 0..8 {
        t[i] = l[i + 8] + l[i];
    }
    let u = [t[4] + t[0], t[5] + t[1], t[6] + t[2], t[7] + t[3]];
    (u[0] + u[2]) + (u[1] + u[3])
}

/// `ggml_vec_dot_f16` of two f16 vectors given as f32 values (exactly representable): steps
/// of 64 into four 16-lane FMA accumulators, reduced `(s0+s2)+(s1+s3)` then [`reduce16`],
/// the rest added in f64.
#[allow(clippy::needless_range_loop)] // lane l of accumulator j, as ggml writes it
pub fn dot_f16(x: &[f32], y: &[f32]) -> f32 {
    let n = x.len().min(y.len());
    let np = n & !63;
    let mut sum = [[0f32; 16]; 4];
    for i in (0..np).step_by(64) {
        for (j, s) in sum.iter_mut().enumerate() {
            for l in 0..16 {
                let k = i + 16 * j + l;
                s[l] = x[k].mul_add(y[k], s[l]);
            }
        }
    }
    let mut acc = [0f32; 16];
    for l in 0..16 {
        acc[l] = (sum[0][l] + sum[2][l]) + (sum[1][l] + sum[3][l]);
    }
    let mut s = reduce16(&acc) as f64;
    for k in np..n {
        s += (x[k] * y[k]) as f64;
    }
    s as f32
}

/// tinyBLAS's dot (llamafile `sgemm`, F16 on AVX-512): one 16-lane accumulator through the
/// whole length (zero-padded to a multiple of 16), then [`reduce16`].
pub fn dot_f16_tiled(x: &[f32], y: &[f32]) -> f32 {
    let n = x.len().min(y.len());
    let mut acc = [0f32; 16];
    for i in (0..n).step_by(16) {
        for l in 0..16.min(n - i) {
            acc[l] = x[i + l].mul_add(y[i + l], acc[l]);
        }
    }
    reduce16(&acc)
}

/// [`dot_f16`] of f16 vectors that llama.cpp pads with zeros to a multiple of 64 (its cache
/// length is a multiple of 256): the padding is added as zeros, never as an f64 tail.
pub fn dot_f16_padded(x: &[f16], y: &[f16]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if super::Isa::detect() == super::Isa::Avx512Vnni {
        return super::x86::dot_f16_padded(x, y);
    }
    let n = x.len().min(y.len()).div_ceil(64) * 64;
    let pad = |v: &[f16]| {
        let mut f: Vec<f32> = v.iter().map(|h| h.to_f32()).collect();
        f.resize(n, 0.0);
        f
    };
    dot_f16(&pad(x), &pad(y))
}

/// [`dot_f16_tiled`] of f16 vectors.
pub fn dot_f16_tiled_h(x: &[f16], y: &[f16]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if super::Isa::detect() == super::Isa::Avx512Vnni {
        return super::x86::dot_f16_tiled(x, y);
    }
    let f = |v: &[f16]| v.iter().map(|h| h.to_f32()).collect::<Vec<f32>>();
    dot_f16_tiled(&f(x), &f(y))
}

/// Values rounded to f16, as `ggml_cpu_fp32_to_fp16` rounds them (to nearest, ties to even).
pub fn round_f16(x: &mut [f32]) {
    for v in x {
        *v = f16::from_f32(*v).to_f32();
    }
}

/// `ggml_v_expf` for one value: `exp(x)` by a degree-5 polynomial on the reduced argument,
/// scaled by `2^n`, with ggml's handling of large magnitudes.
#[inline]
pub fn expf(x: f32) -> f32 {
    let r = f32::from_bits(0x4b40_0000); // 0x1.8p23
    let z = x.mul_add(f32::from_bits(0x3fb8_aa3b), r); // 0x1.715476p+0
    let n = z - r;
    let b = (-n).mul_add(
        f32::from_bits(0x35bf_be8e),                  // 0x1.7f7d1cp-20
        (-n).mul_add(f32::from_bits(0x3f31_7200), x), // 0x1.62e4p-1
    );
    let u = b * b;
    let j = f32::from_bits(0x3c07_2010) // 0x1.0e4020p-7
        .mul_add(b, f32::from_bits(0x3d2b_9f17)) // 0x1.573e2ep-5
        .mul_add(
            u,
            f32::from_bits(0x3e2a_af33).mul_add(b, f32::from_bits(0x3eff_fedb)),
        ) // 0x1.555e66p-3, 0x1.fffdb6p-2
        .mul_add(u, f32::from_bits(0x3f7f_fff6).mul_add(b, 1.0)); // 0x1.ffffecp-1
    if n.abs() > 192.0 {
        return if n <= 0.0 { 0.0 } else { f32::INFINITY };
    }
    scalef(j, n)
}

/// `_mm512_scalef_ps` for finite `j` and integral `n`: `j · 2^n`.
#[inline]
fn scalef(j: f32, n: f32) -> f32 {
    let n = n as i32;
    // Two steps keep every intermediate power of two representable.
    let half = n / 2;
    j * pow2(half) * pow2(n - half)
}

#[inline]
fn pow2(e: i32) -> f32 {
    if e < -126 {
        // Subnormal powers of two: build them by halving.
        let mut v = f32::from_bits(1 << 23); // 2^-126
        for _ in e..-126 {
            v *= 0.5;
        }
        v
    } else {
        f32::from_bits(((e + 127) as u32) << 23)
    }
}

/// `ggml_v_silu`: `x / (1 + exp(−x))` with [`expf`].
#[inline]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + expf(0.0 - x))
}

/// `ggml_vec_swiglu_f32`: `gate ← silu(gate) · up`, sixteen values at a time with
/// [`silu`], the rest with libm's `expf` as ggml's scalar tail does.
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::Isa::detect() == super::Isa::Avx512Vnni {
        return super::x86::swiglu(gate, up);
    }
    let n = gate.len().min(up.len());
    let full = n / 16 * 16;
    for k in 0..full {
        gate[k] = silu(gate[k]) * up[k];
    }
    for k in full..n {
        gate[k] = gate[k] / (1.0 + (-gate[k]).exp()) * up[k];
    }
}

/// `ggml_vec_soft_max_f32` and the normalisation of `ggml_compute_forward_soft_max_f32`:
/// `x` holds scaled, masked scores (masked ones `−∞`); sums every 16 with [`reduce16`] into
/// an f64, then multiplies by `(float)(1.0 / sum)`.
pub fn softmax(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::Isa::detect() == super::Isa::Avx512Vnni {
        return super::x86::softmax(x);
    }
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f64;
    for chunk in x.chunks_mut(16) {
        let mut lanes = [0f32; 16];
        for (l, v) in chunk.iter_mut().enumerate() {
            *v = expf(*v - max);
            lanes[l] = *v;
        }
        sum += reduce16(&lanes) as f64;
    }
    let inv = (1.0 / sum) as f32;
    for v in x {
        *v *= inv;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expf_is_close_to_the_exponential_and_handles_the_extremes() {
        for i in -800..=800 {
            let x = i as f32 * 0.11;
            let (ours, libm) = (expf(x), x.exp());
            if libm.is_finite() && libm > 1e-37 {
                assert!(
                    ((ours - libm) / libm).abs() < 3e-7,
                    "exp({x}): {ours} against {libm}"
                );
            }
        }
        assert_eq!(expf(f32::NEG_INFINITY), 0.0);
        assert_eq!(expf(-200.0), 0.0);
        assert_eq!(expf(200.0), f32::INFINITY);
    }

    #[test]
    fn reductions_follow_the_documented_order() {
        // Values whose sum depends on the order: 1e8 + 1 − 1e8.
        let mut l = [0f32; 8];
        l[0] = 1e8;
        l[4] = 1.0;
        l[2] = -1e8;
        // (l0 + l4) + (l2 + l6) = (1e8) + (-1e8) = 0 in f32 (1 is absorbed).
        assert_eq!(hsum8(&l), 0.0);
        let mut m = [0f32; 16];
        m[0] = 1e8;
        m[8] = 1.0;
        m[4] = -1e8;
        assert_eq!(reduce16(&m), 0.0);
        m[8] = 0.0;
        m[1] = 1.0;
        m[5] = 0.0;
        assert_eq!(
            reduce16(&m),
            1.0,
            "(u0 + u2) + (u1 + u3): the 1 is added last"
        );
    }
}

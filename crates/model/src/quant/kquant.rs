//! Quantization to the k-quants (`Q4_K`, `Q5_K`, `Q6_K`) as llama.cpp's reference quantizers
//! do it without an importance matrix: per sub-block, a weighted least-squares search for
//! the scale (and minimum) over a small grid of candidate scales (`make_qkx2_quants`,
//! `make_qx_quants`), then the sub-block scales themselves quantized to 6 or 8 bits against
//! one f16 super-block scale.

use half::f16;

use super::blocks::{QK_K, scale_min_k4};

/// Round half to even, as ggml's `nearest_int` does.
#[inline]
fn nearest(x: f32) -> i32 {
    x.round_ties_even() as i32
}

#[inline]
fn f16_round(v: f32) -> f32 {
    f16::from_f32(v).to_f32()
}

/// Scale and minimum of `x` for values `0..=nmax`, minimising the weighted squared error over
/// candidate scales `(nmax + rmin + rdelta * i) / (max − min)`, `i = 0..=steps`. Returns
/// `(scale, −min)` and writes the levels to `levels`.
fn scale_and_min(
    x: &[f32],
    nmax: i32,
    weights: &[f32],
    levels: &mut [u8],
    rmin: f32,
    rdelta: f32,
    steps: i32,
) -> (f32, f32) {
    let n = x.len();
    let mut min = x.iter().copied().fold(f32::INFINITY, f32::min);
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum_w: f32 = weights.iter().sum();
    let sum_x: f32 = weights.iter().zip(x).map(|(w, v)| w * v).sum();
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        levels.iter_mut().for_each(|l| *l = 0);
        return (0.0, -min);
    }
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best = 0.0;
    for i in 0..n {
        let l = nearest(iscale * (x[i] - min)).clamp(0, nmax);
        levels[i] = l as u8;
        let diff = scale * l as f32 + min - x[i];
        best += weights[i] * diff * diff;
    }
    let mut aux = [0u8; 32];
    for is in 0..=steps {
        iscale = (rmin + rdelta * is as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0f32, 0f32, 0f32);
        for i in 0..n {
            let l = nearest(iscale * (x[i] - min)).clamp(0, nmax);
            aux[i] = l as u8;
            let (w, l) = (weights[i], l as f32);
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let err: f32 = (0..n)
                .map(|i| {
                    let diff = this_scale * aux[i] as f32 + this_min - x[i];
                    weights[i] * diff * diff
                })
                .sum();
            if err < best {
                levels[..n].copy_from_slice(&aux[..n]);
                best = err;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// Symmetric scale of `x` for levels `−nmax..nmax−1` weighted by `x²`, searched over 19
/// candidate scales around `−nmax / max` (`make_qx_quants` with `rmse_type` 1). Writes
/// `level + nmax` to `levels`.
fn symmetric_scale(x: &[f32], nmax: i32, levels: &mut [i8]) -> f32 {
    let (mut max, mut amax) = (0f32, 0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax < 1e-30 {
        levels.iter_mut().for_each(|l| *l = 0);
        return 0.0;
    }
    let fit = |iscale: f32| {
        let (mut sumlx, mut suml2) = (0f32, 0f32);
        for &v in x {
            let l = nearest(iscale * v).clamp(-nmax, nmax - 1) as f32;
            let w = v * v;
            sumlx += w * v * l;
            suml2 += w * l * l;
        }
        (sumlx, suml2)
    };
    let mut iscale = -(nmax as f32) / max;
    let put = |iscale: f32, levels: &mut [i8]| {
        for (l, &v) in levels.iter_mut().zip(x) {
            *l = (nearest(iscale * v).clamp(-nmax, nmax - 1) + nmax) as i8;
        }
    };
    put(iscale, levels);
    let (sumlx, suml2) = fit(iscale);
    let mut scale = sumlx / suml2;
    let mut best = scale * sumlx;
    for is in -9..=9 {
        if is == 0 {
            continue;
        }
        iscale = -(nmax as f32 + 0.1 * is as f32) / max;
        let (sumlx, suml2) = fit(iscale);
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            put(iscale, levels);
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// Sub-block scales and minimums of a `Q4_K`/`Q5_K` super-block, quantized to 6 bits and
/// packed as `get_scale_min_k4` reads them; returns `(d, dmin, packed)`.
fn pack_scales(scales: &[f32; 8], mins: &[f32; 8]) -> (f32, f32, [u8; 12]) {
    let max_scale = scales.iter().copied().fold(0f32, f32::max);
    let max_min = mins.iter().copied().fold(0f32, f32::max);
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let mut packed = [0u8; 12];
    for j in 0..8 {
        let ls = nearest(inv_scale * scales[j]).clamp(0, 63) as u8;
        let lm = nearest(inv_min * mins[j]).clamp(0, 63) as u8;
        if j < 4 {
            packed[j] = ls;
            packed[j + 4] = lm;
        } else {
            packed[j + 4] = (ls & 0xF) | ((lm & 0xF) << 4);
            packed[j - 4] |= (ls >> 4) << 6;
            packed[j] |= (lm >> 4) << 6;
        }
    }
    (max_scale / 63.0, max_min / 63.0, packed)
}

/// Levels `0..=nmax` of a super-block against its quantized scales.
fn levels_k(x: &[f32], d: f32, dmin: f32, packed: &[u8; 12], nmax: i32) -> [u8; QK_K] {
    let mut levels = [0u8; QK_K];
    for j in 0..8 {
        let (sc, m) = scale_min_k4(j, packed);
        let d = d * sc as f32;
        if d == 0.0 {
            continue;
        }
        let dm = dmin * m as f32;
        for i in 0..32 {
            levels[32 * j + i] = nearest((x[32 * j + i] + dm) / d).clamp(0, nmax) as u8;
        }
    }
    levels
}

fn subblock_fit(x: &[f32], nmax: i32, rmin: f32, steps: i32) -> ([f32; 8], [f32; 8]) {
    let (mut scales, mut mins) = ([0f32; 8], [0f32; 8]);
    let mut levels = [0u8; 32];
    for j in 0..8 {
        let b = &x[32 * j..32 * j + 32];
        let av = (b.iter().map(|v| v * v).sum::<f32>() / 32.0).sqrt();
        let w: Vec<f32> = b.iter().map(|v| av + v.abs()).collect();
        (scales[j], mins[j]) = scale_and_min(b, nmax, &w, &mut levels, rmin, 0.1, steps);
    }
    (scales, mins)
}

/// One `Q4_K` super-block (256 values, 144 bytes).
pub fn quantize_q4_k(x: &[f32], out: &mut Vec<u8>) {
    let (scales, mins) = subblock_fit(x, 15, -1.0, 20);
    let (d, dmin, packed) = pack_scales(&scales, &mins);
    let (d, dmin) = (f16_round(d), f16_round(dmin));
    let levels = levels_k(x, d, dmin, &packed, 15);
    out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
    out.extend_from_slice(&f16::from_f32(dmin).to_le_bytes());
    out.extend_from_slice(&packed);
    for c in 0..4 {
        for l in 0..32 {
            out.push(levels[64 * c + l] | (levels[64 * c + 32 + l] << 4));
        }
    }
}

/// One `Q5_K` super-block (256 values, 176 bytes).
pub fn quantize_q5_k(x: &[f32], out: &mut Vec<u8>) {
    let (scales, mins) = subblock_fit(x, 31, -0.5, 15);
    let (d, dmin, packed) = pack_scales(&scales, &mins);
    let (d, dmin) = (f16_round(d), f16_round(dmin));
    let levels = levels_k(x, d, dmin, &packed, 31);
    out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
    out.extend_from_slice(&f16::from_f32(dmin).to_le_bytes());
    out.extend_from_slice(&packed);
    let mut qh = [0u8; 32];
    let mut ql = [0u8; 128];
    for c in 0..4 {
        let (m1, m2) = (1u8 << (2 * c), 2u8 << (2 * c));
        for j in 0..32 {
            let (mut l1, mut l2) = (levels[64 * c + j], levels[64 * c + j + 32]);
            if l1 > 15 {
                l1 -= 16;
                qh[j] |= m1;
            }
            if l2 > 15 {
                l2 -= 16;
                qh[j] |= m2;
            }
            ql[32 * c + j] = l1 | (l2 << 4);
        }
    }
    out.extend_from_slice(&qh);
    out.extend_from_slice(&ql);
}

/// One `Q6_K` super-block (256 values, 210 bytes).
pub fn quantize_q6_k(x: &[f32], out: &mut Vec<u8>) {
    let mut levels = [0i8; QK_K];
    let mut scales = [0f32; 16];
    let (mut max_scale, mut max_abs) = (0f32, 0f32);
    for ib in 0..16 {
        let s = symmetric_scale(
            &x[16 * ib..16 * ib + 16],
            32,
            &mut levels[16 * ib..16 * ib + 16],
        );
        scales[ib] = s;
        if s.abs() > max_abs {
            max_abs = s.abs();
            max_scale = s;
        }
    }
    if max_abs < 1e-15 {
        out.extend(std::iter::repeat_n(0u8, 210));
        return;
    }
    let iscale = -128.0 / max_scale;
    let d = f16_round(1.0 / iscale);
    let sc: Vec<i8> = scales
        .iter()
        .map(|&s| nearest(iscale * s).min(127) as i8)
        .collect();
    let mut l = [0u8; QK_K];
    for j in 0..16 {
        let dj = d * sc[j] as f32;
        if dj == 0.0 {
            continue;
        }
        for i in 0..16 {
            l[16 * j + i] = (nearest(x[16 * j + i] / dj).clamp(-32, 31) + 32) as u8;
        }
    }
    let mut ql = [0u8; 128];
    let mut qh = [0u8; 64];
    for half in 0..2 {
        let (j, qo, ho) = (128 * half, 64 * half, 32 * half);
        for i in 0..32 {
            let (a, b, c, e) = (l[j + i], l[j + i + 32], l[j + i + 64], l[j + i + 96]);
            ql[qo + i] = (a & 0xF) | ((c & 0xF) << 4);
            ql[qo + i + 32] = (b & 0xF) | ((e & 0xF) << 4);
            qh[ho + i] = (a >> 4) | ((b >> 4) << 2) | ((c >> 4) << 4) | ((e >> 4) << 6);
        }
    }
    out.extend_from_slice(&ql);
    out.extend_from_slice(&qh);
    out.extend(sc.iter().map(|&s| s as u8));
    out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
}

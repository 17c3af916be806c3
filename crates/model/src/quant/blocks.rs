//! The block formats of ggml, value by value: dequantization (the reference every fast kernel
//! is tested against) and quantization (what `duet quantize` writes), following the
//! definitions of `ggml-quants.c` (`dequantize_row_*`, `quantize_row_*_ref`).
//!
//! A row of `n` values is `n / block` blocks laid end to end; within a 32-value block of
//! `Q4_*`/`Q5_*` the low nibbles hold values 0–15 and the high nibbles 16–31.

use half::{bf16, f16};

use super::GgmlType;

/// Values in the blocks of the k-quants.
pub const QK_K: usize = 256;

#[inline]
pub(crate) fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

#[inline]
fn put_f16(out: &mut Vec<u8>, v: f32) {
    out.extend_from_slice(&f16::from_f32(v).to_le_bytes());
}

/// The 6-bit scale and minimum of sub-block `j` of a `Q4_K`/`Q5_K` block (`get_scale_min_k4`).
#[inline]
pub(crate) fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Dequantizes one row: `data` holds `out.len()` values of type `t`.
///
/// Panics if `t` is not [`GgmlType::is_supported`] or the lengths disagree; callers check
/// both when a file is loaded.
pub fn dequantize_row(t: GgmlType, data: &[u8], out: &mut [f32]) {
    let n = out.len();
    match t {
        GgmlType::F32 => {
            for (o, c) in out.iter_mut().zip(data.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        GgmlType::F16 => {
            for (o, c) in out.iter_mut().zip(data.chunks_exact(2)) {
                *o = f16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
        GgmlType::BF16 => {
            for (o, c) in out.iter_mut().zip(data.chunks_exact(2)) {
                *o = bf16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
        GgmlType::Q4_0 | GgmlType::Q4_1 => {
            let (off, bytes) = if t == GgmlType::Q4_0 {
                (2, 18)
            } else {
                (4, 20)
            };
            for (b, y) in data.chunks_exact(bytes).zip(out.chunks_exact_mut(32)) {
                let d = f16_at(b, 0);
                let m = if t == GgmlType::Q4_1 {
                    f16_at(b, 2)
                } else {
                    -8.0 * d
                };
                let qs = &b[off..off + 16];
                for j in 0..16 {
                    y[j] = (qs[j] & 0xF) as f32 * d + m;
                    y[j + 16] = (qs[j] >> 4) as f32 * d + m;
                }
            }
        }
        GgmlType::Q5_0 | GgmlType::Q5_1 => {
            let (off, bytes) = if t == GgmlType::Q5_0 {
                (2, 22)
            } else {
                (4, 24)
            };
            for (b, y) in data.chunks_exact(bytes).zip(out.chunks_exact_mut(32)) {
                let d = f16_at(b, 0);
                let m = if t == GgmlType::Q5_1 {
                    f16_at(b, 2)
                } else {
                    -16.0 * d
                };
                let qh = u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]]);
                let qs = &b[off + 4..off + 20];
                for j in 0..16 {
                    let h0 = ((qh >> j) << 4) & 0x10;
                    let h1 = (qh >> (j + 12)) & 0x10;
                    y[j] = ((qs[j] as u32 & 0xF) | h0) as f32 * d + m;
                    y[j + 16] = ((qs[j] as u32 >> 4) | h1) as f32 * d + m;
                }
            }
        }
        GgmlType::Q8_0 => {
            for (b, y) in data.chunks_exact(34).zip(out.chunks_exact_mut(32)) {
                let d = f16_at(b, 0);
                for j in 0..32 {
                    y[j] = b[2 + j] as i8 as f32 * d;
                }
            }
        }
        GgmlType::Q4_K => {
            for (b, y) in data.chunks_exact(144).zip(out.chunks_exact_mut(QK_K)) {
                let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
                let scales = &b[4..16];
                let qs = &b[16..144];
                for c in 0..4 {
                    let (s1, m1) = scale_min_k4(2 * c, scales);
                    let (s2, m2) = scale_min_k4(2 * c + 1, scales);
                    let (d1, d2) = (d * s1 as f32, d * s2 as f32);
                    let (m1, m2) = (dmin * m1 as f32, dmin * m2 as f32);
                    let q = &qs[32 * c..32 * c + 32];
                    for l in 0..32 {
                        y[64 * c + l] = d1 * (q[l] & 0xF) as f32 - m1;
                        y[64 * c + 32 + l] = d2 * (q[l] >> 4) as f32 - m2;
                    }
                }
            }
        }
        GgmlType::Q5_K => {
            for (b, y) in data.chunks_exact(176).zip(out.chunks_exact_mut(QK_K)) {
                let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
                let scales = &b[4..16];
                let qh = &b[16..48];
                let ql = &b[48..176];
                for c in 0..4 {
                    let (s1, m1) = scale_min_k4(2 * c, scales);
                    let (s2, m2) = scale_min_k4(2 * c + 1, scales);
                    let (d1, d2) = (d * s1 as f32, d * s2 as f32);
                    let (m1, m2) = (dmin * m1 as f32, dmin * m2 as f32);
                    let (u1, u2) = (1u8 << (2 * c), 2u8 << (2 * c));
                    let q = &ql[32 * c..32 * c + 32];
                    for l in 0..32 {
                        let h1 = if qh[l] & u1 != 0 { 16 } else { 0 };
                        let h2 = if qh[l] & u2 != 0 { 16 } else { 0 };
                        y[64 * c + l] = d1 * ((q[l] & 0xF) + h1) as f32 - m1;
                        y[64 * c + 32 + l] = d2 * ((q[l] >> 4) + h2) as f32 - m2;
                    }
                }
            }
        }
        GgmlType::Q6_K => {
            for (b, y) in data.chunks_exact(210).zip(out.chunks_exact_mut(QK_K)) {
                let d = f16_at(b, 208);
                for half in 0..2 {
                    let ql = &b[64 * half..64 * half + 64];
                    let qh = &b[128 + 32 * half..128 + 32 * half + 32];
                    let sc = &b[192 + 8 * half..192 + 8 * half + 8];
                    let y = &mut y[128 * half..128 * half + 128];
                    for l in 0..32 {
                        let is = l / 16;
                        let q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i32 - 32;
                        let q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
                        let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
                        let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
                        y[l] = d * (sc[is] as i8) as f32 * q1 as f32;
                        y[l + 32] = d * (sc[is + 2] as i8) as f32 * q2 as f32;
                        y[l + 64] = d * (sc[is + 4] as i8) as f32 * q3 as f32;
                        y[l + 96] = d * (sc[is + 6] as i8) as f32 * q4 as f32;
                    }
                }
            }
        }
        other => panic!("dequantize_row: {other} is not supported"),
    }
    debug_assert_eq!(n % t.block().0, 0);
}

/// Quantizes one row of `x` to type `t`, appending the blocks to `out`. `x.len()` must be a
/// whole number of `t`'s blocks.
pub fn quantize_row(t: GgmlType, x: &[f32], out: &mut Vec<u8>) {
    match t {
        GgmlType::F32 => x
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        GgmlType::F16 => x.iter().for_each(|&v| put_f16(out, v)),
        GgmlType::BF16 => x
            .iter()
            .for_each(|&v| out.extend_from_slice(&bf16::from_f32(v).to_le_bytes())),
        GgmlType::Q8_0 => {
            for b in x.chunks_exact(32) {
                let amax = b.iter().fold(0f32, |a, v| a.max(v.abs()));
                let d = amax / 127.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                put_f16(out, d);
                out.extend(b.iter().map(|v| (v * id).round() as i8 as u8));
            }
        }
        GgmlType::Q4_0 => {
            for b in x.chunks_exact(32) {
                // The value of largest magnitude, sign kept, maps to −8.
                let max = b
                    .iter()
                    .fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
                let d = max / -8.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                put_f16(out, d);
                let q = |v: f32| ((v * id + 8.5) as i32).min(15) as u8;
                out.extend((0..16).map(|j| q(b[j]) | (q(b[j + 16]) << 4)));
            }
        }
        GgmlType::Q4_1 => {
            for b in x.chunks_exact(32) {
                let min = b.iter().copied().fold(f32::INFINITY, f32::min);
                let max = b.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let d = (max - min) / 15.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                put_f16(out, d);
                put_f16(out, min);
                let q = |v: f32| (((v - min) * id + 0.5) as i32).min(15) as u8;
                out.extend((0..16).map(|j| q(b[j]) | (q(b[j + 16]) << 4)));
            }
        }
        GgmlType::Q5_0 => {
            for b in x.chunks_exact(32) {
                let max = b
                    .iter()
                    .fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
                let d = max / -16.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                put_f16(out, d);
                let q = |v: f32| ((v * id + 16.5) as i32).min(31) as u32;
                let mut qh = 0u32;
                let mut qs = [0u8; 16];
                for j in 0..16 {
                    let (a, c) = (q(b[j]), q(b[j + 16]));
                    qs[j] = (a & 0xF) as u8 | (((c & 0xF) as u8) << 4);
                    qh |= ((a & 0x10) >> 4) << j;
                    qh |= ((c & 0x10) >> 4) << (j + 16);
                }
                out.extend_from_slice(&qh.to_le_bytes());
                out.extend_from_slice(&qs);
            }
        }
        GgmlType::Q5_1 => {
            for b in x.chunks_exact(32) {
                let min = b.iter().copied().fold(f32::INFINITY, f32::min);
                let max = b.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let d = (max - min) / 31.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                put_f16(out, d);
                put_f16(out, min);
                let q = |v: f32| (((v - min) * id + 0.5) as i32).min(31) as u32;
                let mut qh = 0u32;
                let mut qs = [0u8; 16];
                for j in 0..16 {
                    let (a, c) = (q(b[j]), q(b[j + 16]));
                    qs[j] = (a & 0xF) as u8 | (((c & 0xF) as u8) << 4);
                    qh |= ((a & 0x10) >> 4) << j;
                    qh |= ((c & 0x10) >> 4) << (j + 16);
                }
                out.extend_from_slice(&qh.to_le_bytes());
                out.extend_from_slice(&qs);
            }
        }
        GgmlType::Q4_K => x
            .chunks_exact(QK_K)
            .for_each(|b| super::kquant::quantize_q4_k(b, out)),
        GgmlType::Q5_K => x
            .chunks_exact(QK_K)
            .for_each(|b| super::kquant::quantize_q5_k(b, out)),
        GgmlType::Q6_K => x
            .chunks_exact(QK_K)
            .for_each(|b| super::kquant::quantize_q6_k(b, out)),
        other => panic!("quantize_row: {other} is not supported"),
    }
}

//! AVX-512 VNNI kernels for [`super::dot`]: `vpdpbusd` multiplies unsigned weight levels by
//! signed 8-bit activations and sums groups of four into 32-bit lanes, so a 64-value step is
//! one instruction after the levels are unpacked. Offset formats (`Q4_0`, `Q5_0`, and `Q8_0`
//! stored as `level + 128`) start each lane from `−offset × Σ4 a` so the integer sums are
//! exact; block scales multiply the lanes as floats, and one horizontal sum ends the row.
//!
//! Each kernel is held equal to [`super::dot::dot_ref`] by the tests of `quant::tests`.
#![allow(unsafe_code)]

use std::arch::x86_64::*;

use super::GgmlType;
use super::act::ActRow;
use super::blocks::scale_min_k4;
use super::dot::dot_ref;

/// `w · a` for a row of type `t`. Only called when [`super::dot::Isa::detect`] found
/// AVX-512 F/BW/VL/VNNI.
pub fn dot(t: GgmlType, w: &[u8], a: &ActRow<'_>) -> f32 {
    // SAFETY: `Isa::detect` checked the CPU features these functions are compiled for, and
    // every kernel reads only inside `w` and `a` (lengths are checked when a matrix is made:
    // `w` is whole blocks and `a` has the same number of values).
    unsafe {
        match t {
            GgmlType::Q4_0 => blocks32::<0>(w, a),
            GgmlType::Q4_1 => q4_1_exact(w, a),
            GgmlType::Q5_0 => blocks32::<2>(w, a),
            GgmlType::Q5_1 => blocks32::<3>(w, a),
            GgmlType::Q8_0 => q8_0_exact(w, a),
            GgmlType::Q4_K => q45_k::<false>(w, a),
            GgmlType::Q5_K => q45_k::<true>(w, a),
            GgmlType::Q6_K => q6_k(w, a),
            GgmlType::F32 => f32_row(w, a.f),
            GgmlType::F16 => f16_row(w, a.f),
            GgmlType::BF16 => bf16_row(w, a.f),
            _ => dot_ref(t, w, a),
        }
    }
}

#[inline]
#[target_feature(enable = "f16c")]
unsafe fn half(p: *const u8) -> f32 {
    // SAFETY: the caller points at two readable bytes.
    let bits = unsafe { (p as *const u16).read_unaligned() };
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

/// Layout of a 32-value block format: bytes, offset of the levels, of the 5th bits, whether
/// it has a minimum, and the offset its levels carry (as a shift: 2^k).
const fn layout(kind: u8) -> (usize, usize, Option<usize>, bool, Option<i32>) {
    match kind {
        0 => (18, 2, None, false, Some(3)),   // Q4_0: q − 8
        1 => (20, 4, None, true, None),       // Q4_1: d·q + m
        2 => (22, 6, Some(2), false, Some(4)), // Q5_0: q − 16
        3 => (24, 8, Some(4), true, None),    // Q5_1: d·q + m
        _ => (34, 2, None, false, Some(7)),   // Q8_0: (q + 128) − 128
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,f16c")]
unsafe fn blocks32<const KIND: u8>(w: &[u8], a: &ActRow<'_>) -> f32 {
    let (bytes, qs_off, qh_off, has_min, shift) = layout(KIND);
    let nb = w.len() / bytes;
    let mut acc = _mm512_setzero_ps();
    let mut extra = 0f32;
    let nib = _mm256_set1_epi8(0x0F);
    let wp = w.as_ptr();
    let ap = a.qs.as_ptr();
    // SAFETY (whole function): block `b` of `w` is `bytes` long at `b * bytes`, its
    // activations 32 bytes at `32 b`, their sums of four 8 i32 at `8 b`; `b < nb`.
    unsafe {
        for p in 0..nb / 2 {
            let (b0, b1) = (2 * p, 2 * p + 1);
            let (w0, w1) = (wp.add(b0 * bytes), wp.add(b1 * bytes));
            let levels = if KIND == 4 {
                let lo = _mm256_loadu_si256(w0.add(qs_off) as *const __m256i);
                let hi = _mm256_loadu_si256(w1.add(qs_off) as *const __m256i);
                let v = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
                _mm512_xor_si512(v, _mm512_set1_epi8(-128))
            } else {
                // [block 0's 16 bytes | block 1's 16 bytes] → low nibbles, high nibbles.
                let x = _mm256_loadu2_m128i(w1.add(qs_off) as *const __m128i, w0.add(qs_off) as *const __m128i);
                let lo = _mm256_and_si256(x, nib);
                let hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), nib);
                // [lo0 lo1 hi0 hi1] → [lo0 hi0 lo1 hi1]: values 0–31 of block 0, then block 1.
                let v = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
                let mut v = _mm512_shuffle_i64x2(v, v, 0b11_01_10_00);
                if let Some(h) = qh_off {
                    let h0 = (w0.add(h) as *const u32).read_unaligned() as u64;
                    let h1 = (w1.add(h) as *const u32).read_unaligned() as u64;
                    v = _mm512_or_si512(v, _mm512_maskz_set1_epi8(h0 | (h1 << 32), 0x10));
                }
                v
            };
            let av = _mm512_loadu_si512(ap.add(64 * p) as *const __m512i);
            let init = match shift {
                Some(k) => {
                    let s4 = _mm512_loadu_si512(a.sum4.as_ptr().add(16 * p) as *const __m512i);
                    _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_sllv_epi32(s4, _mm512_set1_epi32(k)))
                }
                None => _mm512_setzero_si512(),
            };
            let isum = _mm512_dpbusd_epi32(init, levels, av);
            let s0 = half(w0) * a.d[b0];
            let s1 = half(w1) * a.d[b1];
            let scale = _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(s0), _mm512_set1_ps(s1));
            acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), scale, acc);
            if has_min {
                extra += half(w0.add(2)) * a.s[b0] + half(w1.add(2)) * a.s[b1];
            }
        }
    }
    let mut total = _mm512_reduce_add_ps(acc) + extra;
    if nb % 2 == 1 {
        let b = nb - 1;
        let t = [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0][KIND as usize];
        let tail = ActRow {
            qs: &a.qs[32 * b..32 * b + 32],
            d: &a.d[b..b + 1],
            s: &a.s[b..b + 1],
            sum4: &a.sum4[8 * b..8 * b + 8],
            ..ActRow::default()
        };
        total += dot_ref(t, &w[b * bytes..], &tail);
    }
    total
}

/// `hsum_float_8` on a register.
#[inline]
#[target_feature(enable = "avx2")]
fn hsum8(v: __m256) -> f32 {
    let a = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
    let b = _mm_add_ps(a, _mm_movehl_ps(a, a));
    _mm_cvtss_f32(_mm_add_ss(b, _mm_movehdup_ps(b)))
}

/// `ggml_vec_dot_q4_1_q8_1` as ggml's AVX2 path computes it (VNNI for the integer part):
/// per block `acc = fma(d·d', Σ₄ qa, acc)` over 8 lanes and `m = fma(m, s, m)`, then
/// `hsum_float_8(acc) + m`.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni")]
unsafe fn q4_1_exact(w: &[u8], a: &ActRow<'_>) -> f32 {
    let nb = w.len() / 20;
    let mut acc = _mm256_setzero_ps();
    let mut summs = 0f32;
    let nib = _mm256_set1_epi8(0x0F);
    for b in 0..nb {
        // SAFETY: block `b` is 20 bytes at `20 b`; its activations 32 bytes at `32 b`.
        unsafe {
            let p = w.as_ptr().add(20 * b);
            let d0 = half(p);
            summs = half(p.add(2)).mul_add(a.s[b], summs);
            let d0d1 = _mm256_set1_ps(d0 * a.d[b]);
            let x = _mm_loadu_si128(p.add(4) as *const __m128i);
            let qx = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(x, 4), x), nib);
            let qy = _mm256_loadu_si256(a.qs.as_ptr().add(32 * b) as *const __m256i);
            let xy = _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(_mm256_setzero_si256(), qx, qy));
            acc = _mm256_fmadd_ps(d0d1, xy, acc);
        }
    }
    hsum8(acc) + summs
}

/// `ggml_vec_dot_q8_0_q8_0` as ggml's AVX2 path computes it: `acc = fma(d·d', Σ₄ qa, acc)`
/// over 8 lanes, then `hsum_float_8`.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni")]
unsafe fn q8_0_exact(w: &[u8], a: &ActRow<'_>) -> f32 {
    let nb = w.len() / 34;
    let mut acc = _mm256_setzero_ps();
    for b in 0..nb {
        // SAFETY: block `b` is 34 bytes at `34 b`; its activations 32 bytes at `32 b`.
        unsafe {
            let p = w.as_ptr().add(34 * b);
            let d = _mm256_set1_ps(half(p) * a.d[b]);
            let qx = _mm256_loadu_si256(p.add(2) as *const __m256i);
            let qy = _mm256_loadu_si256(a.qs.as_ptr().add(32 * b) as *const __m256i);
            // |x| · sign(y, x) = x · y, with the unsigned operand vpdpbusd wants.
            let ax = _mm256_sign_epi8(qx, qx);
            let sy = _mm256_sign_epi8(qy, qx);
            let q = _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(_mm256_setzero_si256(), ax, sy));
            acc = _mm256_fmadd_ps(d, q, acc);
        }
    }
    hsum8(acc)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,f16c")]
unsafe fn q45_k<const FIVE: bool>(w: &[u8], a: &ActRow<'_>) -> f32 {
    let bytes = if FIVE { 176 } else { 144 };
    let ql_off = if FIVE { 48 } else { 16 };
    let nib = _mm256_set1_epi8(0x0F);
    let mut acc = _mm512_setzero_ps();
    let mut extra = 0f32;
    for (b, blk) in w.chunks_exact(bytes).enumerate() {
        let mut sc = [0i32; 8];
        let mut summ = 0i32;
        for j in 0..8 {
            let (s, m) = scale_min_k4(j, &blk[4..16]);
            sc[j] = s as i32;
            summ += m as i32 * (a.bsums[16 * b + 2 * j] as i32 + a.bsums[16 * b + 2 * j + 1] as i32);
        }
        // SAFETY: `blk` is one whole super-block and `a.qs` holds its 256 activations at
        // `256 b`.
        unsafe {
            let d8 = a.d[b];
            let mut isum = _mm512_setzero_si512();
            let qh = if FIVE {
                _mm256_loadu_si256(blk.as_ptr().add(16) as *const __m256i)
            } else {
                _mm256_setzero_si256()
            };
            for c in 0..4 {
                let x = _mm256_loadu_si256(blk.as_ptr().add(ql_off + 32 * c) as *const __m256i);
                let lo = _mm256_and_si256(x, nib);
                let hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), nib);
                let mut v = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
                if FIVE {
                    let m_lo = _mm256_test_epi8_mask(qh, _mm256_set1_epi8(1 << (2 * c)));
                    let m_hi = _mm256_test_epi8_mask(qh, _mm256_set1_epi8((2u8 << (2 * c)) as i8));
                    let mask = m_lo as u64 | ((m_hi as u64) << 32);
                    v = _mm512_or_si512(v, _mm512_maskz_set1_epi8(mask, 0x10));
                }
                let av = _mm512_loadu_si512(a.qs.as_ptr().add(256 * b + 64 * c) as *const __m512i);
                let dp = _mm512_dpbusd_epi32(_mm512_setzero_si512(), v, av);
                let scv = _mm512_mask_blend_epi32(
                    0xFF00,
                    _mm512_set1_epi32(sc[2 * c]),
                    _mm512_set1_epi32(sc[2 * c + 1]),
                );
                isum = _mm512_add_epi32(isum, _mm512_mullo_epi32(dp, scv));
            }
            let d = half(blk.as_ptr()) * d8;
            acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(d), acc);
            extra -= half(blk.as_ptr().add(2)) * d8 * summ as f32;
        }
    }
    _mm512_reduce_add_ps(acc) + extra
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,f16c")]
unsafe fn q6_k(w: &[u8], a: &ActRow<'_>) -> f32 {
    let mut acc = _mm512_setzero_ps();
    let mut extra = 0f32;
    for (b, blk) in w.chunks_exact(210).enumerate() {
        let mut corr = 0i32;
        for j in 0..16 {
            corr += blk[192 + j] as i8 as i32 * a.bsums[16 * b + j] as i32;
        }
        // SAFETY: `blk` is one whole super-block and `a.qs` holds its 256 activations.
        unsafe {
            let m4 = _mm512_set1_epi8(0x0F);
            let m2 = _mm256_set1_epi8(0x03);
            let pick_lo = _mm_setr_epi8(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
            let pick_hi = _mm_setr_epi8(4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7);
            let mut isum = _mm512_setzero_si512();
            for half_ in 0..2 {
                let p = blk.as_ptr();
                let ql = _mm512_loadu_si512(p.add(64 * half_) as *const __m512i);
                let qh = _mm256_loadu_si256(p.add(128 + 32 * half_) as *const __m256i);
                // The two high bits of every value, already shifted to bits 4–5.
                let h0 = _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4);
                let h1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m2), 4);
                let h2 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m2), 4);
                let h3 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m2), 4);
                let h01 = _mm512_inserti64x4(_mm512_castsi256_si512(h0), h1, 1);
                let h23 = _mm512_inserti64x4(_mm512_castsi256_si512(h2), h3, 1);
                let v01 = _mm512_or_si512(_mm512_and_si512(ql, m4), h01);
                let v23 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4), h23);
                let ab = a.qs.as_ptr().add(256 * b + 128 * half_);
                let dp01 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), v01, _mm512_loadu_si512(ab as *const __m512i));
                let dp23 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), v23, _mm512_loadu_si512(ab.add(64) as *const __m512i));
                let scales = _mm_loadl_epi64(p.add(192 + 8 * half_) as *const __m128i);
                let s01 = _mm512_cvtepi8_epi32(_mm_shuffle_epi8(scales, pick_lo));
                let s23 = _mm512_cvtepi8_epi32(_mm_shuffle_epi8(scales, pick_hi));
                isum = _mm512_add_epi32(isum, _mm512_mullo_epi32(dp01, s01));
                isum = _mm512_add_epi32(isum, _mm512_mullo_epi32(dp23, s23));
            }
            let d = half(blk.as_ptr().add(208)) * a.d[b];
            acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(d), acc);
            extra -= d * (32 * corr) as f32;
        }
    }
    _mm512_reduce_add_ps(acc) + extra
}

#[target_feature(enable = "avx512f")]
unsafe fn f32_row(w: &[u8], x: &[f32]) -> f32 {
    let n = x.len().min(w.len() / 4);
    let mut acc = _mm512_setzero_ps();
    let mut i = 0;
    // SAFETY: 16 values from `i < n − 15` are inside both rows.
    unsafe {
        while i + 16 <= n {
            let wv = _mm512_loadu_ps(w.as_ptr().add(4 * i) as *const f32);
            acc = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x.as_ptr().add(i)), acc);
            i += 16;
        }
    }
    let mut s = _mm512_reduce_add_ps(acc);
    for j in i..n {
        let c = &w[4 * j..4 * j + 4];
        s += f32::from_le_bytes([c[0], c[1], c[2], c[3]]) * x[j];
    }
    s
}

#[target_feature(enable = "avx512f,f16c")]
unsafe fn f16_row(w: &[u8], x: &[f32]) -> f32 {
    let n = x.len().min(w.len() / 2);
    let mut acc = _mm512_setzero_ps();
    let mut i = 0;
    // SAFETY: 16 values from `i < n − 15` are inside both rows.
    unsafe {
        while i + 16 <= n {
            let h = _mm256_loadu_si256(w.as_ptr().add(2 * i) as *const __m256i);
            acc = _mm512_fmadd_ps(_mm512_cvtph_ps(h), _mm512_loadu_ps(x.as_ptr().add(i)), acc);
            i += 16;
        }
    }
    let mut s = _mm512_reduce_add_ps(acc);
    for j in i..n {
        s += half::f16::from_le_bytes([w[2 * j], w[2 * j + 1]]).to_f32() * x[j];
    }
    s
}

#[target_feature(enable = "avx512f")]
unsafe fn bf16_row(w: &[u8], x: &[f32]) -> f32 {
    let n = x.len().min(w.len() / 2);
    let mut acc = _mm512_setzero_ps();
    let mut i = 0;
    // SAFETY: 16 values from `i < n − 15` are inside both rows.
    unsafe {
        while i + 16 <= n {
            let h = _mm256_loadu_si256(w.as_ptr().add(2 * i) as *const __m256i);
            let f = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
            acc = _mm512_fmadd_ps(f, _mm512_loadu_ps(x.as_ptr().add(i)), acc);
            i += 16;
        }
    }
    let mut s = _mm512_reduce_add_ps(acc);
    for j in i..n {
        s += half::bf16::from_le_bytes([w[2 * j], w[2 * j + 1]]).to_f32() * x[j];
    }
    s
}

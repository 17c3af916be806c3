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
        0 => (18, 2, None, false, Some(3)),    // Q4_0: q − 8
        1 => (20, 4, None, true, None),        // Q4_1: d·q + m
        2 => (22, 6, Some(2), false, Some(4)), // Q5_0: q − 16
        3 => (24, 8, Some(4), true, None),     // Q5_1: d·q + m
        _ => (34, 2, None, false, Some(7)),    // Q8_0: (q + 128) − 128
    }
}

/// The levels of blocks `2p` and `2p + 1` of a 32-value block row (`w0`, `w1` point at them),
/// as unsigned bytes: values 0–31 of block `2p`, then of block `2p + 1`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
unsafe fn levels_pair<const KIND: u8>(w0: *const u8, w1: *const u8) -> __m512i {
    let (_, qs_off, qh_off, _, _) = layout(KIND);
    // SAFETY: the caller points at two whole blocks of kind `KIND`.
    unsafe {
        if KIND == 4 {
            let lo = _mm256_loadu_si256(w0.add(qs_off) as *const __m256i);
            let hi = _mm256_loadu_si256(w1.add(qs_off) as *const __m256i);
            let v = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
            return _mm512_xor_si512(v, _mm512_set1_epi8(-128));
        }
        let nib = _mm256_set1_epi8(0x0F);
        // [block 0's 16 bytes | block 1's 16 bytes] → low nibbles, high nibbles.
        let x = _mm256_loadu2_m128i(
            w1.add(qs_off) as *const __m128i,
            w0.add(qs_off) as *const __m128i,
        );
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
    }
}

/// The integer sums' starting value for blocks `2p`, `2p + 1`: minus the levels' offset times
/// the activations' sums of four (zero for formats with a minimum).
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn offset_pair<const KIND: u8>(a: &ActRow<'_>, p: usize) -> __m512i {
    match layout(KIND).4 {
        // SAFETY: the sums of four of blocks `2p`, `2p + 1` are 16 i32 at `16 p`.
        Some(k) => unsafe {
            let s4 = _mm512_loadu_si512(a.sum4.as_ptr().add(16 * p) as *const __m512i);
            _mm512_sub_epi32(
                _mm512_setzero_si512(),
                _mm512_sllv_epi32(s4, _mm512_set1_epi32(k)),
            )
        },
        None => _mm512_setzero_si512(),
    }
}

/// The last block of a row with an odd number of blocks, by the reference.
fn odd_block<const KIND: u8>(w: &[u8], a: &ActRow<'_>) -> f32 {
    let bytes = layout(KIND).0;
    let nb = w.len() / bytes;
    if nb.is_multiple_of(2) {
        return 0.0;
    }
    let b = nb - 1;
    let t = [
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
    ][KIND as usize];
    let tail = ActRow {
        qs: &a.qs[32 * b..32 * b + 32],
        d: &a.d[b..b + 1],
        s: &a.s[b..b + 1],
        sum4: &a.sum4[8 * b..8 * b + 8],
        ..ActRow::default()
    };
    dot_ref(t, &w[b * bytes..], &tail)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,f16c")]
unsafe fn blocks32<const KIND: u8>(w: &[u8], a: &ActRow<'_>) -> f32 {
    let (bytes, _, _, has_min, _) = layout(KIND);
    let nb = w.len() / bytes;
    let mut acc = _mm512_setzero_ps();
    let mut extra = 0f32;
    let wp = w.as_ptr();
    let ap = a.qs.as_ptr();
    // SAFETY (whole function): block `b` of `w` is `bytes` long at `b * bytes`, its
    // activations 32 bytes at `32 b`, their sums of four 8 i32 at `8 b`; `b < nb`.
    unsafe {
        for p in 0..nb / 2 {
            let (b0, b1) = (2 * p, 2 * p + 1);
            let (w0, w1) = (wp.add(b0 * bytes), wp.add(b1 * bytes));
            let levels = levels_pair::<KIND>(w0, w1);
            let av = _mm512_loadu_si512(ap.add(64 * p) as *const __m512i);
            let isum = _mm512_dpbusd_epi32(offset_pair::<KIND>(a, p), levels, av);
            let s0 = half(w0) * a.d[b0];
            let s1 = half(w1) * a.d[b1];
            let scale = _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(s0), _mm512_set1_ps(s1));
            acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), scale, acc);
            if has_min {
                extra += half(w0.add(2)) * a.s[b0] + half(w1.add(2)) * a.s[b1];
            }
        }
    }
    _mm512_reduce_add_ps(acc) + extra + odd_block::<KIND>(w, a)
}

/// [`blocks32`] for four rows against four rows of activations: each row's levels are
/// unpacked once for the four activation rows; every output goes through the same operations
/// as in `blocks32`, so each equals it to the bit.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,f16c")]
unsafe fn blocks32_tile<const KIND: u8>(w: [&[u8]; 4], a: [&ActRow<'_>; 4]) -> [[f32; 4]; 4] {
    let (bytes, _, _, has_min, _) = layout(KIND);
    let nb = w[0].len() / bytes;
    let mut acc = [[_mm512_setzero_ps(); 4]; 4];
    let mut extra = [[0f32; 4]; 4];
    // SAFETY (whole function): as in `blocks32`, for each of the four rows (all of the same
    // length) and each of the four activation rows.
    unsafe {
        for p in 0..nb / 2 {
            let (b0, b1) = (2 * p, 2 * p + 1);
            let w0: [*const u8; 4] = [0, 1, 2, 3].map(|r| w[r].as_ptr().add(b0 * bytes));
            let w1: [*const u8; 4] = [0, 1, 2, 3].map(|r| w[r].as_ptr().add(b1 * bytes));
            let levels = [0, 1, 2, 3].map(|r| levels_pair::<KIND>(w0[r], w1[r]));
            let d0 = [0, 1, 2, 3].map(|r| half(w0[r]));
            let d1 = [0, 1, 2, 3].map(|r| half(w1[r]));
            for c in 0..4 {
                let av = _mm512_loadu_si512(a[c].qs.as_ptr().add(64 * p) as *const __m512i);
                let init = offset_pair::<KIND>(a[c], p);
                for r in 0..4 {
                    let isum = _mm512_dpbusd_epi32(init, levels[r], av);
                    let scale = _mm512_mask_blend_ps(
                        0xFF00,
                        _mm512_set1_ps(d0[r] * a[c].d[b0]),
                        _mm512_set1_ps(d1[r] * a[c].d[b1]),
                    );
                    acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), scale, acc[r][c]);
                    if has_min {
                        extra[r][c] +=
                            half(w0[r].add(2)) * a[c].s[b0] + half(w1[r].add(2)) * a[c].s[b1];
                    }
                }
            }
        }
    }
    let mut out = [[0f32; 4]; 4];
    for r in 0..4 {
        for c in 0..4 {
            out[r][c] =
                _mm512_reduce_add_ps(acc[r][c]) + extra[r][c] + odd_block::<KIND>(w[r], a[c]);
        }
    }
    out
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

/// Two rows' 8-lane accumulators side by side in one 512-bit register: lanes 0–7 hold row A's,
/// lanes 8–15 row B's. Every lane goes through the same operations as in the one-row kernel,
/// so each half sums to the same value; the halves are reduced apart at the end.
#[inline]
#[target_feature(enable = "avx512f")]
fn halves(v: __m512) -> (__m256, __m256) {
    (
        _mm512_castps512_ps256(v),
        _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)),
    )
}

/// Nibbles of two 16-byte blocks as `[lo A | hi A | lo B | hi B]` (values 0–31 of each).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx2")]
unsafe fn nibbles2(a: *const u8, b: *const u8) -> __m512i {
    // SAFETY: the caller points at 16 readable bytes each.
    let x = unsafe { _mm256_loadu2_m128i(b as *const __m128i, a as *const __m128i) };
    let nib = _mm256_set1_epi8(0x0F);
    let lo = _mm256_and_si256(x, nib);
    let hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), nib);
    let v = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
    _mm512_shuffle_i64x2(v, v, 0b11_01_10_00)
}

/// The `d` and `m` (two f16s at the start of each block) of four blocks as
/// `[d0, m0, d1, m1, d2, m2, d3, m3]` in f32.
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn dm4(p: [*const u8; 4]) -> __m256 {
    // SAFETY: the caller points at four readable bytes each.
    let words = unsafe { p.map(|q| (q as *const i32).read_unaligned()) };
    _mm256_cvtph_ps(_mm_setr_epi32(words[0], words[1], words[2], words[3]))
}

/// `[v[2i] × 8, v[2i+2] × 8]`: two rows' block scales spread over their register halves.
#[inline]
#[target_feature(enable = "avx512f")]
fn spread(v: __m256, i: usize) -> __m512 {
    let idx = if i == 0 {
        _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2)
    } else {
        _mm512_setr_epi32(4, 4, 4, 4, 4, 4, 4, 4, 6, 6, 6, 6, 6, 6, 6, 6)
    };
    _mm512_permutexvar_ps(idx, _mm512_castps256_ps512(v))
}

/// [`q4_1_exact`] for four rows at once, two rows per 512-bit register; the four rows' block
/// scales are converted and multiplied together (lane by lane, the same products).
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
#[allow(clippy::needless_range_loop)] // row pairs index several arrays
unsafe fn q4_1_exact4(w: [&[u8]; 4], a: &ActRow<'_>) -> [f32; 4] {
    let nb = w[0].len() / 20;
    let mut acc = [_mm512_setzero_ps(); 2];
    // Lanes 1, 3, 5, 7: the four rows' `m·s` sums (the even lanes are never read).
    let mut summs = _mm256_setzero_ps();
    for b in 0..nb {
        // SAFETY: block `b` of each row is 20 bytes at `20 b` (the rows have equal lengths);
        // its activations 32 bytes at `32 b`.
        unsafe {
            let p: [*const u8; 4] = [0, 1, 2, 3].map(|r| w[r].as_ptr().add(20 * b));
            let y = _mm256_loadu_si256(a.qs.as_ptr().add(32 * b) as *const __m256i);
            let qy = _mm512_inserti64x4(_mm512_castsi256_si512(y), y, 1);
            let dm = dm4(p);
            summs = _mm256_fmadd_ps(dm, _mm256_set1_ps(a.s[b]), summs);
            let prod = _mm256_mul_ps(dm, _mm256_set1_ps(a.d[b]));
            for pair in 0..2 {
                let qx = nibbles2(p[2 * pair].add(4), p[2 * pair + 1].add(4));
                let xy = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), qx, qy));
                acc[pair] = _mm512_fmadd_ps(spread(prod, pair), xy, acc[pair]);
            }
        }
    }
    let mut s = [0f32; 8];
    // SAFETY: eight floats into an eight-float array.
    unsafe { _mm256_storeu_ps(s.as_mut_ptr(), summs) };
    let (a0, a1) = halves(acc[0]);
    let (a2, a3) = halves(acc[1]);
    [
        hsum8(a0) + s[1],
        hsum8(a1) + s[3],
        hsum8(a2) + s[5],
        hsum8(a3) + s[7],
    ]
}

/// [`q8_0_exact`] for four rows at once, two rows per 512-bit register.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
#[allow(clippy::needless_range_loop)] // row pairs index several arrays
unsafe fn q8_0_exact4(w: [&[u8]; 4], a: &ActRow<'_>) -> [f32; 4] {
    let nb = w[0].len() / 34;
    let mut acc = [_mm512_setzero_ps(); 2];
    for b in 0..nb {
        // SAFETY: block `b` of each row is 34 bytes at `34 b`; its activations 32 bytes.
        unsafe {
            let y = _mm256_loadu_si256(a.qs.as_ptr().add(32 * b) as *const __m256i);
            let qy = _mm512_inserti64x4(_mm512_castsi256_si512(y), y, 1);
            let d1 = a.d[b];
            for pair in 0..2 {
                let (pa, pb) = (
                    w[2 * pair].as_ptr().add(34 * b),
                    w[2 * pair + 1].as_ptr().add(34 * b),
                );
                let scale = _mm512_mask_blend_ps(
                    0xFF00,
                    _mm512_set1_ps(half(pa) * d1),
                    _mm512_set1_ps(half(pb) * d1),
                );
                let xa = _mm256_loadu_si256(pa.add(2) as *const __m256i);
                let xb = _mm256_loadu_si256(pb.add(2) as *const __m256i);
                let qx = _mm512_inserti64x4(_mm512_castsi256_si512(xa), xb, 1);
                // |x| and y with x's sign: the unsigned operand vpdpbusd wants.
                let ax = _mm512_abs_epi8(qx);
                let sy =
                    _mm512_mask_sub_epi8(qy, _mm512_movepi8_mask(qx), _mm512_setzero_si512(), qy);
                let q = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), ax, sy));
                acc[pair] = _mm512_fmadd_ps(scale, q, acc[pair]);
            }
        }
    }
    let (a0, a1) = halves(acc[0]);
    let (a2, a3) = halves(acc[1]);
    [hsum8(a0), hsum8(a1), hsum8(a2), hsum8(a3)]
}

/// [`q4_1_exact`] for four rows against four rows of activations, two rows per 512-bit
/// register: each weight block is unpacked once for the four activation rows; every
/// (row, activation) pair goes through the same operations in the same order as the one-row
/// kernel.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
#[allow(clippy::needless_range_loop)] // rows, pairs and activations index several arrays
unsafe fn q4_1_tile(w: [&[u8]; 4], a: [&ActRow<'_>; 4]) -> [[f32; 4]; 4] {
    let nb = w[0].len() / 20;
    // acc[pair][c]: rows 2·pair and 2·pair+1 against activation row c.
    let mut acc = [[_mm512_setzero_ps(); 4]; 2];
    // summs[c], lanes 1, 3, 5, 7: the four rows' `m·s` sums against activation row c.
    let mut summs = [_mm256_setzero_ps(); 4];
    for b in 0..nb {
        // SAFETY: block `b` of each row is 20 bytes at `20 b`; activations 32 bytes at `32 b`.
        unsafe {
            let p: [*const u8; 4] = [0, 1, 2, 3].map(|r| w[r].as_ptr().add(20 * b));
            let dm = dm4(p);
            let qx = [
                nibbles2(p[0].add(4), p[1].add(4)),
                nibbles2(p[2].add(4), p[3].add(4)),
            ];
            for c in 0..4 {
                let y = _mm256_loadu_si256(a[c].qs.as_ptr().add(32 * b) as *const __m256i);
                let qy = _mm512_inserti64x4(_mm512_castsi256_si512(y), y, 1);
                summs[c] = _mm256_fmadd_ps(dm, _mm256_set1_ps(a[c].s[b]), summs[c]);
                let prod = _mm256_mul_ps(dm, _mm256_set1_ps(a[c].d[b]));
                for pair in 0..2 {
                    let xy = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(
                        _mm512_setzero_si512(),
                        qx[pair],
                        qy,
                    ));
                    acc[pair][c] = _mm512_fmadd_ps(spread(prod, pair), xy, acc[pair][c]);
                }
            }
        }
    }
    let mut out = [[0f32; 4]; 4];
    for c in 0..4 {
        let mut s = [0f32; 8];
        // SAFETY: eight floats into an eight-float array.
        unsafe { _mm256_storeu_ps(s.as_mut_ptr(), summs[c]) };
        for pair in 0..2 {
            let (lo, hi) = halves(acc[pair][c]);
            out[2 * pair][c] = hsum8(lo) + s[4 * pair + 1];
            out[2 * pair + 1][c] = hsum8(hi) + s[4 * pair + 3];
        }
    }
    out
}

/// [`q8_0_exact`] for four rows against four rows of activations, two rows per 512-bit
/// register.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
#[allow(clippy::needless_range_loop)] // rows, pairs and activations index several arrays
unsafe fn q8_0_tile(w: [&[u8]; 4], a: [&ActRow<'_>; 4]) -> [[f32; 4]; 4] {
    let nb = w[0].len() / 34;
    let mut acc = [[_mm512_setzero_ps(); 4]; 2];
    for b in 0..nb {
        // SAFETY: block `b` of each row is 34 bytes at `34 b`; activations 32 bytes at `32 b`.
        unsafe {
            let p: [*const u8; 4] = [0, 1, 2, 3].map(|r| w[r].as_ptr().add(34 * b));
            let d = [half(p[0]), half(p[1]), half(p[2]), half(p[3])];
            // [d of row 2·pair ×8 | d of row 2·pair + 1 ×8]: one product with the activation's
            // scale gives both rows' block scales (the same f32 products as one at a time).
            let dv = [0, 1].map(|pair| {
                _mm512_mask_blend_ps(
                    0xFF00,
                    _mm512_set1_ps(d[2 * pair]),
                    _mm512_set1_ps(d[2 * pair + 1]),
                )
            });
            let mut ax = [_mm512_setzero_si512(); 2];
            let mut neg = [0u64; 2];
            for pair in 0..2 {
                let xa = _mm256_loadu_si256(p[2 * pair].add(2) as *const __m256i);
                let xb = _mm256_loadu_si256(p[2 * pair + 1].add(2) as *const __m256i);
                let qx = _mm512_inserti64x4(_mm512_castsi256_si512(xa), xb, 1);
                ax[pair] = _mm512_abs_epi8(qx);
                neg[pair] = _mm512_movepi8_mask(qx);
            }
            for c in 0..4 {
                let y = _mm256_loadu_si256(a[c].qs.as_ptr().add(32 * b) as *const __m256i);
                let qy = _mm512_inserti64x4(_mm512_castsi256_si512(y), y, 1);
                let dy = _mm512_set1_ps(a[c].d[b]);
                for pair in 0..2 {
                    let scale = _mm512_mul_ps(dv[pair], dy);
                    let sy = _mm512_mask_sub_epi8(qy, neg[pair], _mm512_setzero_si512(), qy);
                    let q = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(
                        _mm512_setzero_si512(),
                        ax[pair],
                        sy,
                    ));
                    acc[pair][c] = _mm512_fmadd_ps(scale, q, acc[pair][c]);
                }
            }
        }
    }
    let mut out = [[0f32; 4]; 4];
    for c in 0..4 {
        for pair in 0..2 {
            let (lo, hi) = halves(acc[pair][c]);
            out[2 * pair][c] = hsum8(lo);
            out[2 * pair + 1][c] = hsum8(hi);
        }
    }
    out
}

/// Four rows of `t` against four rows of activations, when a tile kernel exists.
pub fn tile4(t: GgmlType, w: [&[u8]; 4], a: [&ActRow<'_>; 4]) -> Option<[[f32; 4]; 4]> {
    // SAFETY: as in `dot`.
    unsafe {
        match t {
            GgmlType::Q4_0 => Some(blocks32_tile::<0>(w, a)),
            GgmlType::Q4_1 => Some(q4_1_tile(w, a)),
            GgmlType::Q5_0 => Some(blocks32_tile::<2>(w, a)),
            GgmlType::Q5_1 => Some(blocks32_tile::<3>(w, a)),
            GgmlType::Q8_0 => Some(q8_0_tile(w, a)),
            _ => None,
        }
    }
}

/// Four rows of `t` against one row of activations, when a four-row kernel exists.
pub fn dot4(t: GgmlType, w: [&[u8]; 4], a: &ActRow<'_>) -> Option<[f32; 4]> {
    // SAFETY: as in `dot`.
    unsafe {
        match t {
            GgmlType::Q4_1 => Some(q4_1_exact4(w, a)),
            GgmlType::Q8_0 => Some(q8_0_exact4(w, a)),
            _ => None,
        }
    }
}

/// Asks the CPU to bring `bytes` into the cache ahead of use (one hint per 64-byte line).
pub fn prefetch(bytes: &[u8]) {
    let mut off = 0;
    while off < bytes.len() {
        // SAFETY: prefetching is a hint that never faults; the address is inside the slice.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(bytes.as_ptr().add(off) as *const i8) };
        off += 64;
    }
}

/// GCC's `_mm512_reduce_add_ps` (see [`super::ggml::reduce16`]).
#[inline]
#[target_feature(enable = "avx512f")]
fn reduce16(v: __m512) -> f32 {
    let hi = _mm512_castpd_ps(_mm512_insertf64x4(
        _mm512_setzero_pd(),
        _mm512_extractf64x4_pd(_mm512_castps_pd(v), 1),
        0,
    ));
    let t = _mm256_add_ps(_mm512_castps512_ps256(hi), _mm512_castps512_ps256(v));
    let u = _mm_add_ps(_mm256_extractf128_ps(t, 1), _mm256_castps256_ps128(t));
    let w = _mm_add_ps(u, _mm_permute_ps(u, 0b01_00_11_10));
    _mm_cvtss_f32(_mm_add_ss(w, _mm_shuffle_ps(w, w, 0x55)))
}

/// Sixteen f16 values from `p`, zeros past `valid` of them.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c")]
unsafe fn load_f16(p: *const half::f16, valid: usize) -> __m512 {
    // SAFETY: the caller guarantees `valid` readable values at `p`.
    unsafe {
        if valid >= 16 {
            _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i))
        } else {
            let m = ((1u32 << valid) - 1) as __mmask16;
            _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p as *const i16))
        }
    }
}

/// `ggml_vec_dot_f16` of f16 vectors whose length llama.cpp pads to a multiple of 64 with
/// zeros (see [`super::ggml::dot_f16`]).
pub fn dot_f16_padded(x: &[half::f16], y: &[half::f16]) -> f32 {
    // SAFETY: CPU features checked by `Isa::detect`; loads stay within `n` values.
    unsafe { dot_f16_padded_avx(x, y) }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c")]
unsafe fn dot_f16_padded_avx(x: &[half::f16], y: &[half::f16]) -> f32 {
    let n = x.len().min(y.len());
    let mut sum = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    while i < n {
        for (j, s) in sum.iter_mut().enumerate() {
            let at = i + 16 * j;
            if at < n {
                // SAFETY: `n − at` values remain.
                let (a, b) = unsafe {
                    (
                        load_f16(x.as_ptr().add(at), n - at),
                        load_f16(y.as_ptr().add(at), n - at),
                    )
                };
                *s = _mm512_fmadd_ps(a, b, *s);
            }
        }
        i += 64;
    }
    let acc = _mm512_add_ps(_mm512_add_ps(sum[0], sum[2]), _mm512_add_ps(sum[1], sum[3]));
    reduce16(acc)
}

/// tinyBLAS's f16 dot with one 16-lane accumulator (see [`super::ggml::dot_f16_tiled`]).
pub fn dot_f16_tiled(x: &[half::f16], y: &[half::f16]) -> f32 {
    // SAFETY: CPU features checked by `Isa::detect`; loads stay within `n` values.
    unsafe { dot_f16_tiled_avx(x, y) }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c")]
unsafe fn dot_f16_tiled_avx(x: &[half::f16], y: &[half::f16]) -> f32 {
    let n = x.len().min(y.len());
    let mut acc = _mm512_setzero_ps();
    let mut i = 0;
    while i < n {
        // SAFETY: `n − i` values remain.
        let (a, b) = unsafe {
            (
                load_f16(x.as_ptr().add(i), n - i),
                load_f16(y.as_ptr().add(i), n - i),
            )
        };
        acc = _mm512_fmadd_ps(a, b, acc);
        i += 16;
    }
    reduce16(acc)
}

/// `ggml_v_expf` on 16 lanes (AVX-512), operation for operation.
#[inline]
#[target_feature(enable = "avx512f")]
fn v_expf(x: __m512) -> __m512 {
    let r = _mm512_set1_ps(f32::from_bits(0x4b40_0000));
    let z = _mm512_fmadd_ps(x, _mm512_set1_ps(f32::from_bits(0x3fb8_aa3b)), r);
    let n = _mm512_sub_ps(z, r);
    let b = _mm512_fnmadd_ps(
        n,
        _mm512_set1_ps(f32::from_bits(0x35bf_be8e)),
        _mm512_fnmadd_ps(n, _mm512_set1_ps(f32::from_bits(0x3f31_7200)), x),
    );
    let d = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(_mm512_abs_ps(n), _mm512_set1_ps(192.0));
    let u = _mm512_mul_ps(b, b);
    let j = _mm512_fmadd_ps(
        _mm512_fmadd_ps(
            _mm512_fmadd_ps(
                _mm512_set1_ps(f32::from_bits(0x3c07_2010)),
                b,
                _mm512_set1_ps(f32::from_bits(0x3d2b_9f17)),
            ),
            u,
            _mm512_fmadd_ps(
                _mm512_set1_ps(f32::from_bits(0x3e2a_af33)),
                b,
                _mm512_set1_ps(f32::from_bits(0x3eff_fedb)),
            ),
        ),
        u,
        _mm512_fmadd_ps(
            _mm512_set1_ps(f32::from_bits(0x3f7f_fff6)),
            b,
            _mm512_set1_ps(1.0),
        ),
    );
    let res = _mm512_scalef_ps(j, n);
    if d == 0 {
        return res;
    }
    let zero = _mm512_setzero_ps();
    let alt = _mm512_mask_blend_ps(
        _mm512_cmp_ps_mask::<_CMP_LE_OQ>(n, zero),
        _mm512_set1_ps(f32::INFINITY),
        zero,
    );
    _mm512_mask_blend_ps(d, res, alt)
}

/// `ggml_vec_swiglu_f32`: `gate ← silu(gate) · up` sixteen at a time with `ggml_v_silu`,
/// the rest with libm's `expf` as ggml's scalar tail does.
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    // SAFETY: CPU features checked by `Isa::detect`; loads and stores stay in the slices.
    unsafe { swiglu_avx(gate, up) }
}

#[target_feature(enable = "avx512f")]
unsafe fn swiglu_avx(gate: &mut [f32], up: &[f32]) {
    let n = gate.len().min(up.len());
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: 16 values at `i` in both slices.
        unsafe {
            let x = _mm512_loadu_ps(gate.as_ptr().add(i));
            let e = v_expf(_mm512_sub_ps(_mm512_setzero_ps(), x));
            let silu = _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0), e));
            _mm512_storeu_ps(
                gate.as_mut_ptr().add(i),
                _mm512_mul_ps(silu, _mm512_loadu_ps(up.as_ptr().add(i))),
            );
        }
        i += 16;
    }
    for k in i..n {
        gate[k] = gate[k] / (1.0 + (-gate[k]).exp()) * up[k];
    }
}

/// [`super::ggml::softmax`] sixteen lanes at a time.
pub fn softmax(x: &mut [f32]) {
    // SAFETY: CPU features checked by `Isa::detect`; loads and stores stay in the slice.
    unsafe { softmax_avx(x) }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn softmax_avx(x: &mut [f32]) {
    let n = x.len();
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f64;
    let mut i = 0;
    while i < n {
        let m = if n - i >= 16 {
            0xFFFF
        } else {
            ((1u32 << (n - i)) - 1) as __mmask16
        };
        // SAFETY: `m` covers only the values left.
        unsafe {
            // Lanes past the end hold −∞, as llama.cpp's masked cache positions do.
            let v = _mm512_mask_loadu_ps(_mm512_set1_ps(f32::NEG_INFINITY), m, x.as_ptr().add(i));
            let e = v_expf(_mm512_sub_ps(v, _mm512_set1_ps(max)));
            _mm512_mask_storeu_ps(x.as_mut_ptr().add(i), m, e);
            sum += reduce16(e) as f64;
        }
        i += 16;
    }
    let inv = _mm512_set1_ps((1.0 / sum) as f32);
    let mut i = 0;
    while i < n {
        let m = if n - i >= 16 {
            0xFFFF
        } else {
            ((1u32 << (n - i)) - 1) as __mmask16
        };
        // SAFETY: as above.
        unsafe {
            let v = _mm512_maskz_loadu_ps(m, x.as_ptr().add(i));
            _mm512_mask_storeu_ps(x.as_mut_ptr().add(i), m, _mm512_mul_ps(v, inv));
        }
        i += 16;
    }
}

/// RoPE's rotation of one head with hardware FMA (see `qlm::ops::rope`).
pub fn rotate(head: &mut [f32], angles: &[(f32, f32)], halves: bool) {
    // SAFETY: CPU features checked by `Isa::detect`.
    unsafe { rotate_fma(head, angles, halves) }
}

#[target_feature(enable = "fma")]
unsafe fn rotate_fma(head: &mut [f32], angles: &[(f32, f32)], halves: bool) {
    let half = angles.len();
    for (i, &(c, s)) in angles.iter().enumerate() {
        let (a, b) = if halves {
            (i, i + half)
        } else {
            (2 * i, 2 * i + 1)
        };
        let (x0, x1) = (head[a], head[b]);
        head[a] = x0.mul_add(c, -(x1 * s));
        head[b] = x0.mul_add(s, x1 * c);
    }
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
#[allow(clippy::needless_range_loop)] // sub-block j indexes scales, mins and sums
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
            summ +=
                m as i32 * (a.bsums[16 * b + 2 * j] as i32 + a.bsums[16 * b + 2 * j + 1] as i32);
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
                let dp01 = _mm512_dpbusd_epi32(
                    _mm512_setzero_si512(),
                    v01,
                    _mm512_loadu_si512(ab as *const __m512i),
                );
                let dp23 = _mm512_dpbusd_epi32(
                    _mm512_setzero_si512(),
                    v23,
                    _mm512_loadu_si512(ab.add(64) as *const __m512i),
                );
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

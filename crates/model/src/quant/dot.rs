//! Dot products of one weight row (in its block format) with one row of activations: the
//! scalar reference, and the dispatch to the SIMD kernels chosen once at run time.
//!
//! Every format reduces a block to an integer dot product of its levels with the 8-bit
//! activations, then scales it: `Q4_0` `d·Σ(q−8)a`, `Q4_1` `d·Σqa + m·s`, `Q8_0` `d·Σqa`,
//! `Q4_K` `d·Σⱼ scⱼ Σqa − dmin·Σⱼ mⱼ Σa`, `Q6_K` `d·Σⱼ scⱼ Σ(q−32)a` (all times the
//! activations' scale), exactly as ggml's `ggml_vec_dot_*` do.

use half::{bf16, f16};

use super::GgmlType;
use super::act::ActRow;
use super::blocks::{f16_at, scale_min_k4};

/// Which kernels this CPU runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512 F/BW/VL with VNNI (Intel Ice Lake and later, AMD Zen 4 and later).
    Avx512Vnni,
    /// Portable Rust.
    Scalar,
}

impl Isa {
    /// The best kernels for this CPU (`DUET_ISA=scalar` forces the portable ones).
    pub fn detect() -> Self {
        static ISA: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *ISA.get_or_init(|| {
            if std::env::var("DUET_ISA").is_ok_and(|v| v == "scalar") {
                return Isa::Scalar;
            }
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx512vl")
                && std::is_x86_feature_detected!("avx512vnni")
            {
                return Isa::Avx512Vnni;
            }
            Isa::Scalar
        })
    }

    /// A short name for logs and benchmarks.
    pub fn name(self) -> &'static str {
        match self {
            Self::Avx512Vnni => "avx512-vnni",
            Self::Scalar => "scalar",
        }
    }
}

/// `w · a` for a row `w` of type `t`, with the kernels for `isa`.
#[inline]
pub fn dot(isa: Isa, t: GgmlType, w: &[u8], a: &ActRow<'_>) -> f32 {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni => super::x86::dot(t, w, a),
        _ => dot_ref(t, w, a),
    }
}

/// `w · a` for four rows of type `t` at once (the same values as four calls of [`dot`]).
#[inline]
pub fn dot4(isa: Isa, t: GgmlType, w: [&[u8]; 4], a: &ActRow<'_>) -> [f32; 4] {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni => {
            super::x86::dot4(t, w, a).unwrap_or_else(|| w.map(|r| super::x86::dot(t, r, a)))
        }
        _ => w.map(|r| dot_ref(t, r, a)),
    }
}

/// Four rows of type `t` against four rows of activations: `out[r][c] = w[r] · a[c]`, each
/// the same value as [`dot`] gives.
#[inline]
pub fn tile4(isa: Isa, t: GgmlType, w: [&[u8]; 4], a: [&ActRow<'_>; 4]) -> [[f32; 4]; 4] {
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512Vnni
        && let Some(v) = super::x86::tile4(t, w, a)
    {
        return v;
    }
    let mut out = [[0f32; 4]; 4];
    for (c, ac) in a.iter().enumerate() {
        let col = dot4(isa, t, w, ac);
        for r in 0..4 {
            out[r][c] = col[r];
        }
    }
    out
}

/// The portable reference of [`dot`].
pub fn dot_ref(t: GgmlType, w: &[u8], a: &ActRow<'_>) -> f32 {
    let mut sum = 0f32;
    match t {
        GgmlType::F32 => {
            for (c, x) in w.chunks_exact(4).zip(a.f) {
                sum += f32::from_le_bytes([c[0], c[1], c[2], c[3]]) * x;
            }
        }
        GgmlType::F16 => {
            for (c, x) in w.chunks_exact(2).zip(a.f) {
                sum += f16::from_le_bytes([c[0], c[1]]).to_f32() * x;
            }
        }
        GgmlType::BF16 => {
            for (c, x) in w.chunks_exact(2).zip(a.f) {
                sum += bf16::from_le_bytes([c[0], c[1]]).to_f32() * x;
            }
        }
        GgmlType::Q4_0 | GgmlType::Q4_1 => {
            let (off, bytes) = if t == GgmlType::Q4_0 {
                (2, 18)
            } else {
                (4, 20)
            };
            for (b, blk) in w.chunks_exact(bytes).enumerate() {
                let q = &a.qs[32 * b..32 * b + 32];
                let bias = if t == GgmlType::Q4_0 { 8 } else { 0 };
                let mut isum = 0i32;
                for j in 0..16 {
                    isum += ((blk[off + j] & 0xF) as i32 - bias) * q[j] as i32;
                    isum += ((blk[off + j] >> 4) as i32 - bias) * q[j + 16] as i32;
                }
                sum += f16_at(blk, 0) * a.d[b] * isum as f32;
                if t == GgmlType::Q4_1 {
                    sum += f16_at(blk, 2) * a.s[b];
                }
            }
        }
        GgmlType::Q5_0 | GgmlType::Q5_1 => {
            let (off, bytes) = if t == GgmlType::Q5_0 {
                (2, 22)
            } else {
                (4, 24)
            };
            for (b, blk) in w.chunks_exact(bytes).enumerate() {
                let q = &a.qs[32 * b..32 * b + 32];
                let qh = u32::from_le_bytes([blk[off], blk[off + 1], blk[off + 2], blk[off + 3]]);
                let bias = if t == GgmlType::Q5_0 { 16 } else { 0 };
                let mut isum = 0i32;
                for j in 0..16 {
                    let lo = (blk[off + 4 + j] & 0xF) as i32 | (((qh >> j) & 1) << 4) as i32;
                    let hi = (blk[off + 4 + j] >> 4) as i32 | (((qh >> (j + 16)) & 1) << 4) as i32;
                    isum += (lo - bias) * q[j] as i32 + (hi - bias) * q[j + 16] as i32;
                }
                sum += f16_at(blk, 0) * a.d[b] * isum as f32;
                if t == GgmlType::Q5_1 {
                    sum += f16_at(blk, 2) * a.s[b];
                }
            }
        }
        GgmlType::Q8_0 => {
            for (b, blk) in w.chunks_exact(34).enumerate() {
                let q = &a.qs[32 * b..32 * b + 32];
                let isum: i32 = (0..32).map(|j| blk[2 + j] as i8 as i32 * q[j] as i32).sum();
                sum += f16_at(blk, 0) * a.d[b] * isum as f32;
            }
        }
        GgmlType::Q4_K | GgmlType::Q5_K => {
            let bytes = if t == GgmlType::Q4_K { 144 } else { 176 };
            for (b, blk) in w.chunks_exact(bytes).enumerate() {
                let q = &a.qs[256 * b..256 * b + 256];
                let bs = &a.bsums[16 * b..16 * b + 16];
                let (qh, ql) = if t == GgmlType::Q4_K {
                    (&blk[0..0], &blk[16..144])
                } else {
                    (&blk[16..48], &blk[48..176])
                };
                let (mut sumi, mut summ) = (0i32, 0i32);
                for j in 0..8 {
                    let (sc, m) = scale_min_k4(j, &blk[4..16]);
                    let (c, upper) = (j / 2, j % 2 == 1);
                    let mut dotj = 0i32;
                    for l in 0..32 {
                        let byte = ql[32 * c + l];
                        let mut v = if upper { byte >> 4 } else { byte & 0xF } as i32;
                        if !qh.is_empty() && qh[l] & (1 << j) != 0 {
                            v += 16;
                        }
                        dotj += v * q[32 * j + l] as i32;
                    }
                    sumi += sc as i32 * dotj;
                    summ += m as i32 * (bs[2 * j] as i32 + bs[2 * j + 1] as i32);
                }
                let (d, dmin) = (f16_at(blk, 0), f16_at(blk, 2));
                sum += a.d[b] * (d * sumi as f32 - dmin * summ as f32);
            }
        }
        GgmlType::Q6_K => {
            for (b, blk) in w.chunks_exact(210).enumerate() {
                let q = &a.qs[256 * b..256 * b + 256];
                let mut sumi = 0i32;
                for half in 0..2 {
                    let ql = &blk[64 * half..64 * half + 64];
                    let qh = &blk[128 + 32 * half..160 + 32 * half];
                    let sc = &blk[192 + 8 * half..200 + 8 * half];
                    for v in 0..128 {
                        let (l, quarter) = (v % 32, v / 32);
                        let low = match quarter {
                            0 => ql[l] & 0xF,
                            1 => ql[l + 32] & 0xF,
                            2 => ql[l] >> 4,
                            _ => ql[l + 32] >> 4,
                        };
                        let high = (qh[l] >> (2 * quarter)) & 3;
                        let level = (low | (high << 4)) as i32 - 32;
                        sumi += sc[v / 16] as i8 as i32 * level * q[128 * half + v] as i32;
                    }
                }
                sum += f16_at(blk, 208) * a.d[b] * sumi as f32;
            }
        }
        other => panic!("dot: {other} is not supported"),
    }
    sum
}

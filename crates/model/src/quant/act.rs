//! Activations quantized to 8 bits for the integer dot products, as llama.cpp quantizes them
//! (`quantize_row_q8_0`, `q8_1`, `q8_K` on x86): per 32 values for the 32-value weight
//! formats (scale rounded to f16 as in the file format, `127 / amax`, round to nearest even),
//! per 256 values with sums of every 16 for the k-quants.

use half::f16;

use super::GgmlType;

/// Rounds to the nearest integer, ties to even, for `|x| < 2²²` (ggml's `nearest_int`
/// trick: adding 1.5·2²³ leaves no fraction bits, so the addition itself rounds).
#[inline]
fn round_even(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    (x + MAGIC) - MAGIC
}

/// Which 8-bit format a weight type's dot product takes its activations in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActKind {
    /// 32 values: one scale (f16-rounded), and the scaled sum for `Q4_1`/`Q5_1`.
    Blocks32,
    /// 256 values: one f32 scale, sums of every 16 values.
    Blocks256,
    /// Plain f32 (float weights).
    Float,
}

impl ActKind {
    /// The activation format `t`'s kernels read.
    pub fn of(t: GgmlType) -> Self {
        match t {
            GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K => Self::Blocks256,
            GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => Self::Float,
            _ => Self::Blocks32,
        }
    }
}

/// Rows of activations in one [`ActKind`].
#[derive(Debug, Clone, Default)]
pub struct Acts {
    /// Values per row.
    pub cols: usize,
    /// Number of rows.
    pub rows: usize,
    /// The 8-bit values, `rows × cols` (empty for [`ActKind::Float`]).
    pub qs: Vec<i8>,
    /// One scale per block (32 or 256 values).
    pub d: Vec<f32>,
    /// `Blocks32`: scale × sum of the block's values (f16-rounded, llama.cpp's `s`).
    pub s: Vec<f32>,
    /// `Blocks256`: the sum of every 16 values.
    pub bsums: Vec<i16>,
    /// Sums of every 4 values (`Blocks32`), the correction term of offset formats.
    pub sum4: Vec<i32>,
    /// The f32 values (`Float`).
    pub f: Vec<f32>,
    /// The format.
    pub kind: Option<ActKind>,
}

impl Acts {
    /// Quantizes `x` (`rows × cols`, row-major) to `kind`.
    pub fn quantize(kind: ActKind, x: &[f32], cols: usize) -> Self {
        let rows = x.len() / cols.max(1);
        let mut a = Self {
            cols,
            rows,
            kind: Some(kind),
            ..Self::default()
        };
        match kind {
            ActKind::Float => a.f = x.to_vec(),
            ActKind::Blocks32 => {
                a.qs = vec![0; x.len()];
                a.d.reserve(x.len() / 32);
                a.s.reserve(x.len() / 32);
                a.sum4 = vec![0; x.len() / 4];
                for (b, (xb, qb)) in x
                    .chunks_exact(32)
                    .zip(a.qs.chunks_exact_mut(32))
                    .enumerate()
                {
                    let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
                    let d = amax / 127.0;
                    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
                    let mut sum = 0i32;
                    for (q, v) in qb.iter_mut().zip(xb) {
                        *q = round_even(v * id) as i8;
                        sum += *q as i32;
                    }
                    for k in 0..8 {
                        a.sum4[b * 8 + k] = qb[4 * k..4 * k + 4].iter().map(|&q| q as i32).sum();
                    }
                    a.d.push(f16::from_f32(d).to_f32());
                    a.s.push(f16::from_f32(d * sum as f32).to_f32());
                }
            }
            ActKind::Blocks256 => {
                a.qs = vec![0; x.len()];
                a.bsums = vec![0; x.len() / 16];
                for (b, (xb, qb)) in x
                    .chunks_exact(256)
                    .zip(a.qs.chunks_exact_mut(256))
                    .enumerate()
                {
                    let (mut max, mut amax) = (0f32, 0f32);
                    for &v in xb {
                        if v.abs() > amax {
                            amax = v.abs();
                            max = v;
                        }
                    }
                    if amax == 0.0 {
                        a.d.push(0.0);
                        continue;
                    }
                    let iscale = -127.0 / max;
                    for (q, v) in qb.iter_mut().zip(xb) {
                        *q = (round_even(iscale * v) as i32).min(127) as i8;
                    }
                    for k in 0..16 {
                        a.bsums[b * 16 + k] =
                            qb[16 * k..16 * k + 16].iter().map(|&q| q as i16).sum();
                    }
                    a.d.push(1.0 / iscale);
                }
            }
        }
        a
    }

    /// The format.
    pub fn kind(&self) -> ActKind {
        self.kind.unwrap_or(ActKind::Float)
    }

    /// Blocks per row.
    pub fn blocks_per_row(&self) -> usize {
        match self.kind() {
            ActKind::Blocks32 => self.cols / 32,
            ActKind::Blocks256 => self.cols / 256,
            ActKind::Float => 0,
        }
    }

    /// Row `i` as a borrowed view.
    pub fn row(&self, i: usize) -> ActRow<'_> {
        let (c, nb) = (self.cols, self.blocks_per_row());
        match self.kind() {
            ActKind::Float => ActRow {
                f: &self.f[i * c..(i + 1) * c],
                ..ActRow::default()
            },
            ActKind::Blocks32 => ActRow {
                qs: &self.qs[i * c..(i + 1) * c],
                d: &self.d[i * nb..(i + 1) * nb],
                s: &self.s[i * nb..(i + 1) * nb],
                sum4: &self.sum4[i * c / 4..(i + 1) * c / 4],
                ..ActRow::default()
            },
            ActKind::Blocks256 => ActRow {
                qs: &self.qs[i * c..(i + 1) * c],
                d: &self.d[i * nb..(i + 1) * nb],
                bsums: &self.bsums[i * c / 16..(i + 1) * c / 16],
                ..ActRow::default()
            },
        }
    }
}

/// One row of [`Acts`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ActRow<'a> {
    /// 8-bit values.
    pub qs: &'a [i8],
    /// Block scales.
    pub d: &'a [f32],
    /// Scaled block sums (`Blocks32`).
    pub s: &'a [f32],
    /// Sums of 16 (`Blocks256`).
    pub bsums: &'a [i16],
    /// Sums of 4 (`Blocks32`).
    pub sum4: &'a [i32],
    /// f32 values (`Float`).
    pub f: &'a [f32],
}

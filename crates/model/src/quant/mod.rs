//! Quantized weights and the products over them: ggml's block formats ([`GgmlType`],
//! [`blocks`]), activations quantized to 8 bits as llama.cpp does ([`act`]), integer dot
//! products with AVX-512 VNNI chosen at run time ([`dot`]), and [`QMatrix::matmul`], which
//! splits a product over the threads of a spinning [`pool::Pool`].
//!
//! Weights stay in their file format — for a GGUF file, in its memory map — so a 4-bit model
//! takes 4 bits a weight in memory, and decoding reads each weight once per token.

pub mod act;
pub mod blocks;
pub mod dot;
pub mod ggml;
mod kquant;
pub mod pool;
mod types;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86;

use std::sync::Arc;

pub use act::{ActKind, ActRow, Acts};
pub use dot::Isa;
pub use types::GgmlType;

use crate::gguf::GgufFile;
use crate::{Error, Result};

/// Where a matrix's bytes live.
#[derive(Debug, Clone)]
enum Bytes {
    /// A tensor of a memory-mapped GGUF file.
    Mapped(Arc<GgufFile>, usize),
    /// Bytes owned by the matrix (converted or re-quantized weights).
    Owned(Arc<Vec<u8>>),
}

/// A weight matrix `rows × cols` in a ggml type, row-major (each row whole blocks).
#[derive(Debug, Clone)]
pub struct QMatrix {
    /// The block format.
    pub dtype: GgmlType,
    /// Output features.
    pub rows: usize,
    /// Input features (values per row).
    pub cols: usize,
    row_bytes: usize,
    bytes: Bytes,
}

impl QMatrix {
    /// The matrix held by tensor `index` of `file` (ggml dims `[cols, rows]`).
    pub fn from_gguf(file: &Arc<GgufFile>, index: usize) -> Result<Self> {
        let t = file
            .tensors
            .get(index)
            .ok_or_else(|| file.error(format!("no tensor number {index}")))?;
        if !t.dtype.is_supported() {
            return Err(file.error(format!(
                "tensor {}: type {} is not supported (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, \
                 Q8_0, Q4_K, Q5_K, Q6_K are)",
                t.name, t.dtype
            )));
        }
        let cols = t.dims[0];
        let rows = t.dims[1..].iter().product();
        let row_bytes = t.dtype.row_bytes(cols).ok_or_else(|| {
            file.error(format!(
                "tensor {}: rows of {cols} are not whole blocks",
                t.name
            ))
        })?;
        Ok(Self {
            dtype: t.dtype,
            rows,
            cols,
            row_bytes,
            bytes: Bytes::Mapped(file.clone(), index),
        })
    }

    /// A matrix from encoded bytes (`rows` rows of `cols` values of `dtype`).
    pub fn from_bytes(dtype: GgmlType, rows: usize, cols: usize, data: Vec<u8>) -> Result<Self> {
        let row_bytes = dtype
            .row_bytes(cols)
            .filter(|rb| rb * rows == data.len())
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "{} bytes are not {rows} rows of {cols} {dtype} values",
                    data.len()
                ))
            })?;
        Ok(Self {
            dtype,
            rows,
            cols,
            row_bytes,
            bytes: Bytes::Owned(Arc::new(data)),
        })
    }

    /// Quantizes an f32 matrix (`rows × cols`, row-major) to `dtype`.
    pub fn quantize(dtype: GgmlType, rows: usize, cols: usize, x: &[f32]) -> Result<Self> {
        if x.len() != rows * cols || dtype.row_bytes(cols).is_none() || !dtype.is_supported() {
            return Err(Error::Invalid(format!(
                "cannot quantize {} values as {rows} × {cols} {dtype}",
                x.len()
            )));
        }
        let mut data = Vec::with_capacity(dtype.row_bytes(cols).unwrap_or(0) * rows);
        for r in x.chunks_exact(cols) {
            blocks::quantize_row(dtype, r, &mut data);
        }
        Self::from_bytes(dtype, rows, cols, data)
    }

    /// All the matrix's bytes.
    pub fn bytes(&self) -> &[u8] {
        match &self.bytes {
            Bytes::Mapped(f, i) => f.data(&f.tensors[*i]),
            Bytes::Owned(v) => v,
        }
    }

    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        self.row_bytes
    }

    /// Row `r`, encoded.
    pub fn row(&self, r: usize) -> &[u8] {
        &self.bytes()[r * self.row_bytes..(r + 1) * self.row_bytes]
    }

    /// Row `r` as f32 (embedding lookups).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        blocks::dequantize_row(self.dtype, self.row(r), &mut out[..self.cols]);
    }

    /// The whole matrix as f32, row-major.
    pub fn dequantize(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.rows * self.cols];
        for (r, o) in out.chunks_exact_mut(self.cols.max(1)).enumerate() {
            self.dequantize_row(r, o);
        }
        out
    }

    /// The activation format this matrix's kernels read.
    pub fn act_kind(&self) -> ActKind {
        ActKind::of(self.dtype)
    }

    /// `out[i][r] = Σₖ self[r][k] · x[i][k]` for every row `i` of `acts`: `out` is
    /// `acts.rows × self.rows`, row-major.
    pub fn matmul(&self, acts: &Acts, out: &mut [f32], pool: &pool::Pool) {
        matmul_many(&mut [(self, acts, out)], pool);
    }
}

/// Several products `(w, acts, out)` run as one parallel job (see [`QMatrix::matmul`]): the
/// rows of all the matrices are cut into chunks that the pool's threads take in turn, so
/// projections that read the same input (query, key and value) cost one synchronisation.
///
/// Panics if a product's shapes or activation format disagree (a bug in the caller).
pub fn matmul_many(jobs: &mut [(&QMatrix, &Acts, &mut [f32])], pool: &pool::Pool) {
    for (w, a, out) in jobs.iter() {
        assert_eq!(a.cols, w.cols, "activations and matrix disagree on width");
        assert_eq!(
            a.kind(),
            w.act_kind(),
            "activations are in the wrong format"
        );
        assert_eq!(out.len(), a.rows * w.rows, "output has the wrong size");
    }
    let isa = Isa::detect();
    let total: usize = jobs.iter().map(|(w, _, _)| w.rows).sum();
    // Enough chunks to balance the threads, few enough to keep each worth its hand-out.
    let chunk = total.div_ceil(pool.threads() * 8).clamp(16, 256);
    let mut parts = Vec::new();
    for (j, (w, _, _)) in jobs.iter().enumerate() {
        let mut r0 = 0;
        while r0 < w.rows {
            parts.push((j, r0, (r0 + chunk).min(w.rows)));
            r0 += chunk;
        }
    }
    let outs: Vec<pool::Disjoint> = jobs
        .iter_mut()
        .map(|(_, _, o)| pool::Disjoint::new(o))
        .collect();
    let jobs: &[(&QMatrix, &Acts, &mut [f32])] = jobs;
    pool.run(parts.len(), &|t| {
        let (j, r0, r1) = parts[t];
        let (w, acts, _) = &jobs[j];
        let (bytes, rb, rows) = (w.bytes(), w.row_bytes, w.rows);
        let row = |r: usize| &bytes[r * rb..(r + 1) * rb];
        let out = &outs[j];
        let mut i = 0;
        // Four activation rows at a time: each weight block is unpacked once for four.
        while i + 4 <= acts.rows {
            let a = [
                acts.row(i),
                acts.row(i + 1),
                acts.row(i + 2),
                acts.row(i + 3),
            ];
            let mut r = r0;
            while r + 4 <= r1 {
                let v = dot::tile4(
                    isa,
                    w.dtype,
                    [row(r), row(r + 1), row(r + 2), row(r + 3)],
                    [&a[0], &a[1], &a[2], &a[3]],
                );
                for (c, _) in a.iter().enumerate() {
                    // SAFETY: this task alone writes columns `r0..r1` of every output row.
                    #[allow(unsafe_code)]
                    let o = unsafe { out.part((i + c) * rows + r, 4) };
                    for k in 0..4 {
                        o[k] = v[k][c];
                    }
                }
                r += 4;
            }
            for r in r..r1 {
                for (c, ac) in a.iter().enumerate() {
                    // SAFETY: as above.
                    #[allow(unsafe_code)]
                    let o = unsafe { out.part((i + c) * rows + r, 1) };
                    o[0] = dot::dot(isa, w.dtype, row(r), ac);
                }
            }
            i += 4;
        }
        for i in i..acts.rows {
            let a = acts.row(i);
            // SAFETY: this task alone writes columns `r0..r1` of output row `i`.
            #[allow(unsafe_code)]
            let o = unsafe { out.part(i * rows + r0, r1 - r0) };
            let mut r = r0;
            while r + 4 <= r1 {
                // Decoding streams every weight once: ask for the next rows while these run.
                #[cfg(target_arch = "x86_64")]
                {
                    const AHEAD: usize = 8;
                    if isa == Isa::Avx512Vnni && r + AHEAD + 4 <= rows {
                        x86::prefetch(&bytes[(r + AHEAD) * rb..(r + AHEAD + 4) * rb]);
                    }
                }
                let v = dot::dot4(
                    isa,
                    w.dtype,
                    [row(r), row(r + 1), row(r + 2), row(r + 3)],
                    &a,
                );
                o[r - r0..r - r0 + 4].copy_from_slice(&v);
                r += 4;
            }
            for r in r..r1 {
                o[r - r0] = dot::dot(isa, w.dtype, row(r), &a);
            }
        }
    });
}

#[cfg(test)]
mod tests;

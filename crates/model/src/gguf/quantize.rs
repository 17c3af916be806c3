//! Choosing each tensor's type for a quantized GGUF file, as `llama-quantize` chooses it
//! (`llama-quant.cpp`, without an importance matrix), and writing the file.
//!
//! - Only 2-D weights are quantized (`*.weight`, not norms, not positional embeddings);
//!   vectors stay f32.
//! - The output layer — or the token embedding when it doubles as the output — gets `Q6_K`
//!   (`Q8_0` when its rows are not whole 256-blocks, and for `Q8_0` files).
//! - `Q4_K_M`: `attn_v` and `ffn_down` of the layers `use_more_bits` picks get `Q6_K`, a fused
//!   `attn_qkv` gets `Q5_K`.
//! - A k-quant that does not fit a tensor's rows falls back (`Q4_K`→`Q5_0`, `Q5_K`→`Q5_1`,
//!   `Q6_K`→`Q8_0`), as llama.cpp's `tensor_type_fallback` does.

use std::path::Path;

use super::value::{Metadata, Value};
use super::write::{TensorBlob, write};
use crate::quant::{GgmlType, blocks};
use crate::{Error, Result};

/// The file types `duet quantize` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    /// Every matrix f16.
    F16,
    /// Every matrix `Q8_0`.
    Q8_0,
    /// `Q4_0` matrices, the output `Q6_K`/`Q8_0`.
    Q4_0,
    /// llama.cpp's `Q4_K_M` mix.
    Q4KM,
}

impl FileType {
    /// The name llama.cpp uses (`q4_k_m`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::F16 => "f16",
            Self::Q8_0 => "q8_0",
            Self::Q4_0 => "q4_0",
            Self::Q4KM => "q4_k_m",
        }
    }

    /// `general.file_type` (llama.cpp's `llama_ftype`).
    pub fn code(self) -> u32 {
        match self {
            Self::F16 => 1,
            Self::Q8_0 => 7,
            Self::Q4_0 => 2,
            Self::Q4KM => 15,
        }
    }

    fn base(self) -> GgmlType {
        match self {
            Self::F16 => GgmlType::F16,
            Self::Q8_0 => GgmlType::Q8_0,
            Self::Q4_0 => GgmlType::Q4_0,
            Self::Q4KM => GgmlType::Q4_K,
        }
    }
}

/// One tensor in f32, with its GGUF name and ggml dimensions (innermost first).
#[derive(Debug, Clone)]
pub struct F32Tensor {
    /// GGUF name.
    pub name: String,
    /// ggml dimensions.
    pub dims: Vec<usize>,
    /// The values, row-major over `dims` reversed.
    pub data: Vec<f32>,
}

/// llama.cpp's `use_more_bits`: the first and last eighth of the layers, and every third
/// layer between.
fn use_more_bits(i: usize, n: usize) -> bool {
    let (i, n) = (i as i64, n as i64);
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

fn layer_of(name: &str) -> Option<usize> {
    name.strip_prefix("blk.")?.split('.').next()?.parse().ok()
}

fn fallback(t: GgmlType, ncols: usize) -> GgmlType {
    if ncols.is_multiple_of(t.block().0) {
        return t;
    }
    let f = match t {
        GgmlType::Q4_K => GgmlType::Q5_0,
        GgmlType::Q5_K => GgmlType::Q5_1,
        GgmlType::Q6_K => GgmlType::Q8_0,
        other => other,
    };
    if ncols.is_multiple_of(f.block().0) {
        f
    } else {
        GgmlType::F16
    }
}

/// The type llama.cpp gives tensor `name` (`ncols` values per row) in a file of type `ft`;
/// `n_layers` is the number of blocks, `tied` whether the token embedding is the output.
pub fn tensor_type(
    ft: FileType,
    name: &str,
    dims: &[usize],
    n_layers: usize,
    tied: bool,
) -> GgmlType {
    let quantizable = dims.len() >= 2
        && name.ends_with("weight")
        && !name.contains("_norm.weight")
        && name != "position_embd.weight"
        && name != "token_types.weight";
    if !quantizable {
        return GgmlType::F32;
    }
    let base = ft.base();
    if ft == FileType::F16 {
        return GgmlType::F16;
    }
    let ncols = dims[0];
    let is_output = name == "output.weight" || (tied && name == "token_embd.weight");
    let t = if is_output {
        if !ncols.is_multiple_of(base.block().0) {
            GgmlType::Q8_0
        } else if base != GgmlType::Q8_0 {
            GgmlType::Q6_K
        } else {
            base
        }
    } else if ft == FileType::Q4KM {
        let layer = layer_of(name).unwrap_or(0);
        if name.contains("attn_v.weight") || name.contains("ffn_down") {
            if use_more_bits(layer, n_layers) {
                GgmlType::Q6_K
            } else {
                base
            }
        } else if name.contains("attn_qkv.weight") {
            GgmlType::Q5_K
        } else {
            base
        }
    } else {
        base
    };
    fallback(t, ncols)
}

/// What [`write_quantized`] wrote.
#[derive(Debug, Clone, Default)]
pub struct Written {
    /// Tensors per type.
    pub types: std::collections::BTreeMap<String, usize>,
    /// Bytes of tensor data.
    pub bytes: usize,
}

/// Quantizes `tensors` to `ft` and writes a GGUF file with `metadata` (its
/// `general.file_type` and `general.quantization_version` set).
pub fn write_quantized(
    path: &Path,
    mut metadata: Metadata,
    tensors: &[F32Tensor],
    ft: FileType,
    n_layers: usize,
) -> Result<Written> {
    let tied = !tensors.iter().any(|t| t.name == "output.weight");
    metadata.insert("general.file_type", Value::U32(ft.code()));
    metadata.insert("general.quantization_version", Value::U32(2));
    let mut blobs = Vec::with_capacity(tensors.len());
    let mut written = Written::default();
    for t in tensors {
        let dtype = tensor_type(ft, &t.name, &t.dims, n_layers, tied);
        let cols = t.dims[0];
        if t.data.len() != t.dims.iter().product::<usize>() {
            return Err(Error::Invalid(format!(
                "tensor {}: {} values for dimensions {:?}",
                t.name,
                t.data.len(),
                t.dims
            )));
        }
        let mut data =
            Vec::with_capacity(dtype.row_bytes(cols).unwrap_or(0) * (t.data.len() / cols.max(1)));
        for row in t.data.chunks(cols.max(1)) {
            blocks::quantize_row(dtype, row, &mut data);
        }
        *written.types.entry(dtype.name()).or_default() += 1;
        written.bytes += data.len();
        blobs.push(TensorBlob {
            name: t.name.clone(),
            dims: t.dims.clone(),
            dtype,
            data,
        });
    }
    write(path, &metadata, &blobs)?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_follow_llama_cpp_for_smollm2_shapes() {
        let t = |ft, name: &str, dims: &[usize]| tensor_type(ft, name, dims, 30, true);
        // SmolLM2: 576-wide rows are not whole 256-blocks.
        assert_eq!(
            t(FileType::Q4KM, "token_embd.weight", &[576, 49152]),
            GgmlType::Q8_0
        );
        assert_eq!(
            t(FileType::Q4KM, "blk.5.attn_q.weight", &[576, 576]),
            GgmlType::Q5_0
        );
        assert_eq!(
            t(FileType::Q4KM, "blk.0.ffn_down.weight", &[1536, 576]),
            GgmlType::Q6_K
        );
        assert_eq!(
            t(FileType::Q4KM, "blk.4.ffn_down.weight", &[1536, 576]),
            GgmlType::Q4_K
        );
        assert_eq!(
            t(FileType::Q4KM, "blk.0.attn_v.weight", &[576, 192]),
            GgmlType::Q8_0
        );
        assert_eq!(
            t(FileType::Q4KM, "blk.0.attn_norm.weight", &[576]),
            GgmlType::F32
        );
        assert_eq!(
            t(FileType::Q8_0, "token_embd.weight", &[576, 49152]),
            GgmlType::Q8_0
        );
        assert_eq!(
            t(FileType::Q4_0, "token_embd.weight", &[576, 49152]),
            GgmlType::Q8_0
        );
        assert_eq!(
            t(FileType::Q4_0, "token_embd.weight", &[512, 100]),
            GgmlType::Q6_K
        );
        assert_eq!(
            t(FileType::F16, "blk.0.attn_q.weight", &[576, 576]),
            GgmlType::F16
        );
        // use_more_bits over 30 layers: 0–2, 26–29 and every third from 5.
        let more: Vec<usize> = (0..30).filter(|&i| use_more_bits(i, 30)).collect();
        assert_eq!(
            more,
            vec![0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 26, 27, 28, 29]
        );
    }
}

//! Writing a GGUF v3 file: header, metadata, tensor table, aligned data. The file is written
//! beside its destination and renamed into place, so a failed write leaves nothing behind.

use std::io::Write;
use std::path::Path;

use super::value::{Metadata, Value};
use super::{DEFAULT_ALIGNMENT, MAGIC};
use crate::error::IoContext;
use crate::quant::GgmlType;
use crate::{Error, Result};

/// One tensor to write: its name, ggml dimensions (innermost first), type and data.
#[derive(Debug, Clone)]
pub struct TensorBlob {
    /// The GGUF name (`blk.0.attn_q.weight`).
    pub name: String,
    /// ggml's dimensions, innermost first.
    pub dims: Vec<usize>,
    /// The type of `data`.
    pub dtype: GgmlType,
    /// The encoded values.
    pub data: Vec<u8>,
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => out.push(*x),
        Value::I8(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => out.push(u8::from(*x)),
        Value::String(s) => put_string(out, s),
        Value::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Array(t, items) => {
            out.extend_from_slice(&t.to_u32().to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for i in items {
                put_value(out, i);
            }
        }
    }
}

/// Encodes a whole GGUF file in memory.
pub fn encode(metadata: &Metadata, tensors: &[TensorBlob]) -> Result<Vec<u8>> {
    let alignment = metadata
        .get("general.alignment")
        .and_then(Value::as_u64)
        .unwrap_or(DEFAULT_ALIGNMENT) as usize;
    let mut out = Vec::new();
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    out.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
    for (k, v) in metadata.iter() {
        if let Value::Array(t, items) = v
            && items.iter().any(|i| i.value_type() != *t)
        {
            return Err(Error::Invalid(format!(
                "metadata key {k}: array elements are not all {t:?}"
            )));
        }
        put_string(&mut out, k);
        out.extend_from_slice(&v.value_type().to_u32().to_le_bytes());
        put_value(&mut out, v);
    }
    let mut offset = 0usize;
    for t in tensors {
        let expected = t
            .dims
            .first()
            .and_then(|&d| t.dtype.row_bytes(d))
            .map(|row| row * t.dims.iter().skip(1).product::<usize>());
        if expected != Some(t.data.len()) {
            return Err(Error::Invalid(format!(
                "tensor {}: {} bytes of data for dimensions {:?} of {}",
                t.name,
                t.data.len(),
                t.dims,
                t.dtype
            )));
        }
        put_string(&mut out, &t.name);
        out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
        for &d in &t.dims {
            out.extend_from_slice(&(d as u64).to_le_bytes());
        }
        out.extend_from_slice(&t.dtype.to_u32().to_le_bytes());
        out.extend_from_slice(&(offset as u64).to_le_bytes());
        offset = (offset + t.data.len()).div_ceil(alignment) * alignment;
    }
    out.resize(out.len().div_ceil(alignment) * alignment, 0);
    for t in tensors {
        out.extend_from_slice(&t.data);
        out.resize(out.len().div_ceil(alignment) * alignment, 0);
    }
    Ok(out)
}

/// Writes a GGUF file to `path` atomically.
pub fn write(path: &Path, metadata: &Metadata, tensors: &[TensorBlob]) -> Result<()> {
    let bytes = encode(metadata, tensors)?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).at(dir)?;
    tmp.write_all(&bytes).at(path)?;
    tmp.as_file().sync_all().at(path)?;
    tmp.persist(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

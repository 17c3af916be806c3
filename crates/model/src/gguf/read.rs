//! Parsing a GGUF header out of a memory map, every length checked against the file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::value::{Metadata, Value, ValueType};
use super::{DEFAULT_ALIGNMENT, MAGIC};
use crate::error::IoContext;
use crate::quant::GgmlType;
use crate::{Error, Result};

/// Longest string the header may hold (a chat template or a merge list entry is far below).
const MAX_STRING: u64 = 64 << 20;
/// Most dimensions of a tensor (ggml's `GGML_MAX_DIMS`).
const MAX_DIMS: u32 = 4;

/// Where one tensor's data lies and what it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// Its name (`blk.0.attn_q.weight`, ...).
    pub name: String,
    /// ggml's dimensions, innermost first: `[columns, rows, ...]`.
    pub dims: Vec<usize>,
    /// Its type.
    pub dtype: GgmlType,
    /// Offset of its data from the start of the data section.
    pub offset: u64,
    /// Bytes of data.
    pub size: usize,
}

impl TensorInfo {
    /// Number of values.
    pub fn elements(&self) -> usize {
        self.dims.iter().product()
    }

    /// The shape outermost first, as PyTorch and Hugging Face write it.
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().copied().collect()
    }
}

/// The bytes of the file: a read-only memory map, or a buffer (files written in memory).
#[derive(Debug)]
enum Bytes {
    Map(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Self::Map(m) => m,
            Self::Owned(v) => v,
        }
    }
}

/// An open GGUF file: its metadata, its tensor table, and its data (memory-mapped).
#[derive(Debug)]
pub struct GgufFile {
    path: PathBuf,
    bytes: Bytes,
    /// Format version (2 or 3).
    pub version: u32,
    /// The key–value metadata.
    pub metadata: Metadata,
    /// The tensors, in file order.
    pub tensors: Vec<TensorInfo>,
    data_start: usize,
}

/// A bounds-checked reader over the header.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn fail(&self, what: &str) -> Error {
        Error::Gguf {
            path: self.path.to_path_buf(),
            message: format!("{what} (at byte {})", self.pos),
        }
    }

    fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8]> {
        let left = (self.bytes.len() - self.pos) as u64;
        if n > left {
            return Err(self.fail(&format!(
                "truncated file: {what} needs {n} bytes, {left} are left"
            )));
        }
        let s = &self.bytes[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let s = self.take(N as u64, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let n = self.u64(what)?;
        if n > MAX_STRING {
            return Err(self.fail(&format!("{what}: a string of {n} bytes is implausible")));
        }
        let b = self.take(n, what)?;
        String::from_utf8(b.to_vec()).map_err(|_| self.fail(&format!("{what}: not UTF-8")))
    }

    fn value(&mut self, t: ValueType, what: &str, depth: u8) -> Result<Value> {
        Ok(match t {
            ValueType::U8 => Value::U8(self.array::<1>(what)?[0]),
            ValueType::I8 => Value::I8(i8::from_le_bytes(self.array(what)?)),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.array(what)?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.array(what)?)),
            ValueType::U32 => Value::U32(self.u32(what)?),
            ValueType::I32 => Value::I32(i32::from_le_bytes(self.array(what)?)),
            ValueType::F32 => Value::F32(f32::from_le_bytes(self.array(what)?)),
            ValueType::Bool => match self.array::<1>(what)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(self.fail(&format!("{what}: {b} is not a boolean"))),
            },
            ValueType::String => Value::String(self.string(what)?),
            ValueType::U64 => Value::U64(self.u64(what)?),
            ValueType::I64 => Value::I64(i64::from_le_bytes(self.array(what)?)),
            ValueType::F64 => Value::F64(f64::from_le_bytes(self.array(what)?)),
            ValueType::Array => {
                if depth > 2 {
                    return Err(self.fail(&format!("{what}: arrays nested too deep")));
                }
                let tag = self.u32(what)?;
                let et = ValueType::from_u32(tag).ok_or_else(|| {
                    self.fail(&format!("{what}: unknown array element type {tag}"))
                })?;
                let n = self.u64(what)?;
                // Every element takes at least one byte: a count beyond the bytes left is a
                // corrupt file, not an allocation to attempt.
                let left = (self.bytes.len() - self.pos) as u64;
                if n > left {
                    return Err(self.fail(&format!(
                        "{what}: an array of {n} elements cannot fit in the {left} bytes left"
                    )));
                }
                let mut v = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    v.push(self.value(et, what, depth + 1)?);
                }
                Value::Array(et, v)
            }
        })
    }
}

impl GgufFile {
    /// Memory-maps and parses `path`.
    pub fn open(path: &Path) -> Result<Arc<Self>> {
        let file = std::fs::File::open(path).at(path)?;
        let map = map_readonly(&file).at(path)?;
        Self::parse(path, Bytes::Map(map)).map(Arc::new)
    }

    /// Parses a GGUF file held in memory (`name` is used in errors).
    pub fn from_bytes(name: &Path, bytes: Vec<u8>) -> Result<Arc<Self>> {
        Self::parse(name, Bytes::Owned(bytes)).map(Arc::new)
    }

    fn parse(path: &Path, bytes: Bytes) -> Result<Self> {
        let mut c = Cursor {
            bytes: &bytes,
            pos: 0,
            path,
        };
        let magic = c.u32("the magic number")?;
        if magic != MAGIC {
            return Err(Error::Gguf {
                path: path.to_path_buf(),
                message: format!(
                    "not a GGUF file: it starts with {:?}, expected \"GGUF\"",
                    String::from_utf8_lossy(&magic.to_le_bytes())
                ),
            });
        }
        let version = c.u32("the version")?;
        if !(2..=3).contains(&version) {
            return Err(c.fail(&format!(
                "GGUF version {version} is not supported (2 and 3 are)"
            )));
        }
        let n_tensors = c.u64("the tensor count")?;
        let n_kv = c.u64("the metadata count")?;
        let mut metadata = Metadata::new();
        for i in 0..n_kv {
            let key = c.string(&format!("metadata key {i}"))?;
            let tag = c.u32(&format!("the type of {key}"))?;
            let t = ValueType::from_u32(tag)
                .ok_or_else(|| c.fail(&format!("metadata key {key}: unknown value type {tag}")))?;
            let v = c.value(t, &format!("metadata key {key}"), 0)?;
            metadata.insert(key, v);
        }
        let mut tensors = Vec::new();
        for i in 0..n_tensors {
            let name = c.string(&format!("the name of tensor {i}"))?;
            let n_dims = c.u32(&format!("tensor {name}: its dimension count"))?;
            if n_dims == 0 || n_dims > MAX_DIMS {
                return Err(c.fail(&format!(
                    "tensor {name}: {n_dims} dimensions (1 to {MAX_DIMS} expected)"
                )));
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for _ in 0..n_dims {
                let d = c.u64(&format!("tensor {name}: a dimension"))?;
                dims.push(usize::try_from(d).map_err(|_| c.fail("dimension too large"))?);
            }
            let tag = c.u32(&format!("tensor {name}: its type"))?;
            let dtype = GgmlType::from_u32(tag)
                .ok_or_else(|| c.fail(&format!("tensor {name}: unknown ggml type {tag}")))?;
            let offset = c.u64(&format!("tensor {name}: its offset"))?;
            let elements = dims
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .ok_or_else(|| c.fail(&format!("tensor {name}: dimensions {dims:?} overflow")))?;
            let size = dtype
                .row_bytes(dims[0])
                .and_then(|row| row.checked_mul(elements / dims[0].max(1)))
                .ok_or_else(|| {
                    c.fail(&format!(
                        "tensor {name}: {} rows of {} values are not whole {dtype} blocks of {}",
                        elements / dims[0].max(1),
                        dims[0],
                        dtype.block().0
                    ))
                })?;
            tensors.push(TensorInfo {
                name,
                dims,
                dtype,
                offset,
                size,
            });
        }
        let alignment = match metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(v) => match v.as_u64() {
                Some(a) if a > 0 && a.is_power_of_two() => a,
                _ => {
                    return Err(c.fail(&format!(
                        "general.alignment must be a power of two, found {}",
                        v.describe()
                    )));
                }
            },
        };
        let data_start = (c.pos as u64).div_ceil(alignment) * alignment;
        let data_len = (bytes.len() as u64).saturating_sub(data_start);
        for t in &tensors {
            if t.offset % alignment != 0 {
                return Err(c.fail(&format!(
                    "tensor {}: offset {} is not a multiple of the alignment {alignment}",
                    t.name, t.offset
                )));
            }
            let end = t.offset.checked_add(t.size as u64);
            if end.is_none_or(|e| e > data_len) {
                return Err(Error::Gguf {
                    path: path.to_path_buf(),
                    message: format!(
                        "truncated file: tensor {} ({} bytes at offset {}) ends past the data \
                         section's {data_len} bytes",
                        t.name, t.size, t.offset
                    ),
                });
            }
        }
        let data_start = data_start as usize;
        Ok(Self {
            path: path.to_path_buf(),
            bytes,
            version,
            metadata,
            tensors,
            data_start,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The tensor called `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The data of a tensor of this file.
    pub fn data(&self, t: &TensorInfo) -> &[u8] {
        let start = self.data_start + t.offset as usize;
        &self.bytes[start..start + t.size]
    }

    /// Bytes of tensor data in all.
    pub fn data_bytes(&self) -> usize {
        self.tensors.iter().map(|t| t.size).sum()
    }

    /// An error about this file.
    pub fn error(&self, message: impl Into<String>) -> Error {
        Error::Gguf {
            path: self.path.clone(),
            message: message.into(),
        }
    }
}

#[allow(unsafe_code)]
fn map_readonly(file: &std::fs::File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: the map is read-only and private to this process; a model file changed on disk
    // while it is served is outside what any reader of a memory-mapped file can guard against
    // (llama.cpp maps model files the same way).
    unsafe { memmap2::Mmap::map(file) }
}

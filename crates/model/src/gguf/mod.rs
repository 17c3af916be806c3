//! GGUF, llama.cpp's model file (<https://github.com/ggml-org/ggml/blob/master/docs/gguf.md>):
//! a header of typed metadata (`general.*`, `<arch>.*`, `tokenizer.ggml.*`), a table of
//! tensors (name, shape, ggml type, offset), then the aligned tensor data.
//!
//! - [`GgufFile::open`] memory-maps a file and parses its header with every length checked
//!   against the file's size, so a corrupt or truncated file is an error naming the key or
//!   tensor, never a panic or a huge allocation; tensor data stays in the map (zero-copy).
//! - [`Metadata`] holds the key–value pairs with typed getters whose errors name the key.
//! - [`write`] writes a GGUF file (v3) from metadata and tensor blobs.
//! - [`tokenizer`] builds a `tokenizers::Tokenizer` from `tokenizer.ggml.*`.

pub mod convert;
pub mod quantize;
mod read;
pub mod tokenizer;
mod value;
mod write;

pub use read::{GgufFile, TensorInfo};
pub use value::{Metadata, Value, ValueType};
pub use write::{TensorBlob, encode, write};

/// `GGUF` as a little-endian `u32`.
pub const MAGIC: u32 = 0x4655_4747;

/// Alignment of the tensor data when `general.alignment` is not set.
pub const DEFAULT_ALIGNMENT: u64 = 32;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::GgmlType;
    use std::path::Path;

    fn sample() -> (Metadata, Vec<TensorBlob>) {
        let mut md = Metadata::new();
        md.insert("general.architecture", Value::String("llama".into()));
        md.insert("general.alignment", Value::U32(32));
        md.insert(
            "tokenizer.ggml.tokens",
            Value::Array(
                ValueType::String,
                vec![Value::String("a".into()), Value::String("b".into())],
            ),
        );
        md.insert("llama.rope.freq_base", Value::F32(10000.0));
        md.insert("flag", Value::Bool(true));
        md.insert("big", Value::I64(-5));
        let t = vec![
            TensorBlob {
                name: "a.weight".into(),
                dims: vec![32, 2],
                dtype: GgmlType::Q8_0,
                data: vec![0; 68],
            },
            TensorBlob {
                name: "b.weight".into(),
                dims: vec![3],
                dtype: GgmlType::F32,
                data: vec![1; 12],
            },
        ];
        (md, t)
    }

    #[test]
    fn written_files_read_back_with_every_value_and_tensor() {
        let (md, t) = sample();
        let bytes = encode(&md, &t).unwrap();
        let f = GgufFile::from_bytes(Path::new("mem.gguf"), bytes).unwrap();
        assert_eq!(f.version, 3);
        assert_eq!(f.metadata, md);
        assert_eq!(f.tensors.len(), 2);
        assert_eq!(f.tensors[0].dims, vec![32, 2]);
        assert_eq!(f.tensors[1].offset % 32, 0);
        assert_eq!(f.data(&f.tensors[1]), &[1u8; 12][..]);
    }

    fn message(bytes: Vec<u8>) -> String {
        GgufFile::from_bytes(Path::new("bad.gguf"), bytes)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn every_truncation_is_an_error_naming_what_was_cut() {
        let (md, t) = sample();
        let bytes = encode(&md, &t).unwrap();
        // The file ends with 20 bytes of padding after the last tensor; cutting those is fine.
        let end = bytes.len() - 20;
        assert!(GgufFile::from_bytes(Path::new("ok.gguf"), bytes[..end].to_vec()).is_ok());
        for cut in 0..end {
            // Cutting into the data section is caught by the tensor extents; before it, by
            // the header reader. Either way an error, never a panic.
            let m = message(bytes[..cut].to_vec());
            assert!(m.starts_with("bad.gguf: "), "cut at {cut}: {m}");
        }
        assert!(message(bytes[..10].to_vec()).contains("truncated file"));
        assert!(message(bytes[..end - 1].to_vec()).contains("tensor b.weight"));
    }

    #[test]
    fn corrupt_headers_are_errors_naming_the_field() {
        assert!(message(b"GGML\x03\0\0\0".to_vec()).contains("not a GGUF file"));
        let mut v = MAGIC.to_le_bytes().to_vec();
        v.extend_from_slice(&1u32.to_le_bytes());
        assert!(message(v).contains("version 1 is not supported"));
        // A string length far beyond the file.
        let mut v = MAGIC.to_le_bytes().to_vec();
        v.extend_from_slice(&3u32.to_le_bytes());
        v.extend_from_slice(&0u64.to_le_bytes());
        v.extend_from_slice(&1u64.to_le_bytes());
        v.extend_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(message(v).contains("implausible"));
        // An array count that cannot fit.
        let (mut md, t) = sample();
        md.insert("zz", Value::Array(ValueType::U32, vec![Value::U32(1)]));
        let mut bytes = encode(&md, &t).unwrap();
        let key = bytes.windows(2).rposition(|w| w == b"zz").unwrap();
        let count_at = key + 2 + 4 + 4;
        bytes[count_at..count_at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(message(bytes).contains("metadata key zz"));
        // An unknown tensor type.
        let (md, mut t) = sample();
        t.truncate(1);
        let mut bytes = encode(&md, &t).unwrap();
        let name = bytes.windows(8).position(|w| w == b"a.weight").unwrap();
        let type_at = name + 8 + 4 + 16;
        bytes[type_at..type_at + 4].copy_from_slice(&77u32.to_le_bytes());
        assert!(message(bytes).contains("tensor a.weight: unknown ggml type 77"));
    }
}

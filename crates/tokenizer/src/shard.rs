//! Token shards: a 64-byte header, then the token ids as little-endian `u16` (when the
//! vocabulary fits) or `u32`. Documents are separated by the separator token. Shards are
//! memory-mapped for reading.
//!
//! Header: magic `DUETTOK\0`, version u32, bytes per token u32 (2 or 4), tokens u64,
//! documents u64, text bytes u64 (UTF-8 bytes the tokens encode, for bits per byte),
//! vocabulary size u32, separator id u32 (`u32::MAX`: none), 16 reserved bytes.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::error::IoContext;
use crate::{Error, Result};

/// The first eight bytes of every token shard.
pub const MAGIC: &[u8; 8] = b"DUETTOK\0";
/// The layout version written and accepted.
pub const VERSION: u32 = 1;
/// Header size in bytes.
pub const HEADER_LEN: usize = 64;
/// The separator id meaning "no separator".
pub const NO_SEPARATOR: u32 = u32::MAX;

/// The facts a shard header holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// 2 (`u16`) or 4 (`u32`).
    pub width: u32,
    /// Number of tokens.
    pub tokens: u64,
    /// Number of documents.
    pub docs: u64,
    /// UTF-8 bytes of the documents' text.
    pub text_bytes: u64,
    /// Vocabulary size of the tokenizer.
    pub vocab_size: u32,
    /// The id placed after each document.
    pub separator: u32,
}

impl Header {
    fn to_bytes(self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[..8].copy_from_slice(MAGIC);
        b[8..12].copy_from_slice(&VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&self.width.to_le_bytes());
        b[16..24].copy_from_slice(&self.tokens.to_le_bytes());
        b[24..32].copy_from_slice(&self.docs.to_le_bytes());
        b[32..40].copy_from_slice(&self.text_bytes.to_le_bytes());
        b[40..44].copy_from_slice(&self.vocab_size.to_le_bytes());
        b[44..48].copy_from_slice(&self.separator.to_le_bytes());
        b
    }

    fn parse(b: &[u8], path: &Path) -> Result<Self> {
        let bad = |reason: String| Error::BadShard {
            path: path.to_path_buf(),
            reason,
        };
        if b.len() < HEADER_LEN || &b[..8] != MAGIC {
            return Err(bad("not a duet token shard (bad magic number)".into()));
        }
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(a)
        };
        let version = u32_at(8);
        if version != VERSION {
            return Err(bad(format!(
                "token shard version {version}; this duet reads version {VERSION}"
            )));
        }
        let h = Self {
            width: u32_at(12),
            tokens: u64_at(16),
            docs: u64_at(24),
            text_bytes: u64_at(32),
            vocab_size: u32_at(40),
            separator: u32_at(44),
        };
        if h.width != 2 && h.width != 4 {
            return Err(bad(format!("token width {} (expected 2 or 4)", h.width)));
        }
        let expected = HEADER_LEN as u64 + h.tokens * u64::from(h.width);
        if b.len() as u64 != expected {
            return Err(bad(format!(
                "{} bytes, but the header promises {expected}; the shard is truncated",
                b.len()
            )));
        }
        Ok(h)
    }
}

/// The width that fits a vocabulary.
pub fn width_for(vocab_size: usize) -> u32 {
    if vocab_size <= 1 << 16 { 2 } else { 4 }
}

/// Writes one shard through a temp file renamed on [`ShardWriter::finish`].
pub struct ShardWriter {
    w: BufWriter<File>,
    tmp: PathBuf,
    path: PathBuf,
    header: Header,
}

impl ShardWriter {
    /// Starts a shard at `path`.
    pub fn create(path: &Path, vocab_size: u32, separator: u32) -> Result<Self> {
        let tmp = path.with_extension("bin.tmp");
        let mut w = BufWriter::with_capacity(1 << 20, File::create(&tmp).at(&tmp)?);
        let header = Header {
            width: width_for(vocab_size as usize),
            tokens: 0,
            docs: 0,
            text_bytes: 0,
            vocab_size,
            separator,
        };
        w.write_all(&header.to_bytes()).at(&tmp)?;
        Ok(Self {
            w,
            tmp,
            path: path.to_path_buf(),
            header,
        })
    }

    /// Appends one document's tokens, then the separator.
    pub fn push_doc(&mut self, ids: &[u32], text_bytes: u64) -> Result<()> {
        let sep = (self.header.separator != NO_SEPARATOR).then_some(self.header.separator);
        for &id in ids.iter().chain(sep.iter()) {
            if id >= self.header.vocab_size {
                return Err(Error::Invalid(format!(
                    "token id {id} is outside the vocabulary of {}",
                    self.header.vocab_size
                )));
            }
            if self.header.width == 2 {
                self.w.write_all(&(id as u16).to_le_bytes()).at(&self.tmp)?;
            } else {
                self.w.write_all(&id.to_le_bytes()).at(&self.tmp)?;
            }
            self.header.tokens += 1;
        }
        self.header.docs += 1;
        self.header.text_bytes += text_bytes;
        Ok(())
    }

    /// Tokens written so far.
    pub fn tokens(&self) -> u64 {
        self.header.tokens
    }

    /// Writes the final header, syncs and renames the shard into place.
    pub fn finish(mut self) -> Result<Header> {
        self.w.flush().at(&self.tmp)?;
        let file = self.w.into_inner().map_err(|e| Error::Io {
            path: self.tmp.clone(),
            source: e.into_error(),
        })?;
        std::os::unix::fs::FileExt::write_all_at(&file, &self.header.to_bytes(), 0).at(&self.tmp)?;
        file.sync_all().at(&self.tmp)?;
        std::fs::rename(&self.tmp, &self.path).at(&self.path)?;
        Ok(self.header)
    }
}

/// A memory-mapped token shard.
#[derive(Debug)]
pub struct TokenShard {
    map: Mmap,
    /// The shard's header.
    pub header: Header,
}

impl TokenShard {
    /// Maps a shard and checks its header against its size.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).at(path)?;
        // SAFETY: the map is read-only and duet writes shards under a temp name and renames
        // them, so a finished shard is never modified while mapped; a truncated file is
        // rejected by the size check in `Header::parse` before any token is read.
        #[allow(unsafe_code)]
        let map = unsafe { Mmap::map(&file) }.at(path)?;
        let header = Header::parse(&map, path)?;
        Ok(Self { map, header })
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.header.tokens as usize
    }

    /// Whether the shard holds no tokens.
    pub fn is_empty(&self) -> bool {
        self.header.tokens == 0
    }

    /// Copies tokens `start..start + out.len()` into `out`.
    pub fn read(&self, start: usize, out: &mut [u32]) {
        let body = &self.map[HEADER_LEN..];
        if self.header.width == 2 {
            let bytes = &body[start * 2..(start + out.len()) * 2];
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = u32::from(u16::from_le_bytes([c[0], c[1]]));
            }
        } else {
            let bytes = &body[start * 4..(start + out.len()) * 4];
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
    }
}

/// Several shards read as one sequence of tokens.
#[derive(Debug)]
pub struct TokenStream {
    shards: Vec<TokenShard>,
    starts: Vec<usize>,
    len: usize,
}

impl TokenStream {
    /// Opens the shards in order; they must agree on vocabulary and separator.
    pub fn open(paths: &[PathBuf]) -> Result<Self> {
        let shards = paths
            .iter()
            .map(|p| TokenShard::open(p))
            .collect::<Result<Vec<_>>>()?;
        if let Some(first) = shards.first() {
            for (s, p) in shards.iter().zip(paths) {
                if (s.header.vocab_size, s.header.separator)
                    != (first.header.vocab_size, first.header.separator)
                {
                    return Err(Error::BadShard {
                        path: p.clone(),
                        reason: "vocabulary or separator differs from the first shard".into(),
                    });
                }
            }
        }
        let mut starts = Vec::with_capacity(shards.len());
        let mut len = 0;
        for s in &shards {
            starts.push(len);
            len += s.len();
        }
        Ok(Self {
            shards,
            starts,
            len,
        })
    }

    /// Total tokens.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no tokens.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The shards' headers.
    pub fn headers(&self) -> impl Iterator<Item = &Header> {
        self.shards.iter().map(|s| &s.header)
    }

    /// Copies tokens `start..start + out.len()` into `out`, across shard boundaries.
    pub fn read(&self, mut start: usize, out: &mut [u32]) -> Result<()> {
        if start + out.len() > self.len {
            return Err(Error::Invalid(format!(
                "tokens {}..{} requested from a stream of {}",
                start,
                start + out.len(),
                self.len
            )));
        }
        let mut filled = 0;
        while filled < out.len() {
            let i = self.starts.partition_point(|&s| s <= start) - 1;
            let shard = &self.shards[i];
            let offset = start - self.starts[i];
            let take = (shard.len() - offset).min(out.len() - filled);
            shard.read(offset, &mut out[filled..filled + take]);
            filled += take;
            start += take;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_u16_and_u32_across_shards() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.bin");
        let b = dir.path().join("b.bin");
        let mut w = ShardWriter::create(&a, 70_000, 0).unwrap();
        w.push_doc(&[1, 69_999], 5).unwrap();
        assert_eq!(w.finish().unwrap().tokens, 3);
        let mut w = ShardWriter::create(&b, 70_000, 0).unwrap();
        w.push_doc(&[7], 1).unwrap();
        w.finish().unwrap();
        let s = TokenStream::open(&[a.clone(), b]).unwrap();
        let mut out = vec![0; 5];
        s.read(0, &mut out).unwrap();
        assert_eq!(out, [1, 69_999, 0, 7, 0]);
        assert!(s.read(1, &mut out).is_err());
        let small = dir.path().join("c.bin");
        let mut w = ShardWriter::create(&small, 100, NO_SEPARATOR).unwrap();
        assert!(w.push_doc(&[100], 1).is_err());
        w.push_doc(&[99, 3], 2).unwrap();
        let h = w.finish().unwrap();
        assert_eq!((h.width, h.tokens), (2, 2));
    }

    #[test]
    fn truncated_and_foreign_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.bin");
        let mut w = ShardWriter::create(&p, 100, 0).unwrap();
        w.push_doc(&[1, 2, 3], 3).unwrap();
        w.finish().unwrap();
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 1]).unwrap();
        assert!(
            TokenShard::open(&p)
                .unwrap_err()
                .to_string()
                .contains("truncated")
        );
        std::fs::write(
            &p,
            b"GGUF and some more bytes to fill a header......................................",
        )
        .unwrap();
        assert!(
            TokenShard::open(&p)
                .unwrap_err()
                .to_string()
                .contains("magic")
        );
    }
}

//! Corpus shards: `<split>/shard-NNNNN.jsonl.zst`, one [`Document`] per line, written under a
//! temp name and renamed when complete, so an interrupted run never leaves a shard that looks
//! finished.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::IoContext;
use crate::split::Split;
use crate::{Document, Error, Result};

/// What one finished shard holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// Path relative to the corpus directory.
    pub path: String,
    /// Documents in it.
    pub docs: u64,
    /// Compressed size in bytes.
    pub bytes: u64,
}

type Encoder = zstd::stream::write::Encoder<'static, BufWriter<File>>;

/// Writes one split's shards, starting a new shard every `max_docs` documents.
pub struct ShardWriter {
    root: PathBuf,
    split: Split,
    max_docs: usize,
    level: i32,
    current: Option<(Encoder, PathBuf, PathBuf, u64)>,
    shards: Vec<ShardInfo>,
}

impl ShardWriter {
    /// A writer for `root/<split>/`.
    pub fn new(root: &Path, split: Split, max_docs: usize, level: i32) -> Result<Self> {
        let dir = root.join(split.name());
        std::fs::create_dir_all(&dir).at(&dir)?;
        Ok(Self {
            root: root.to_path_buf(),
            split,
            max_docs,
            level,
            current: None,
            shards: Vec::new(),
        })
    }

    /// Appends a document.
    pub fn write(&mut self, doc: &Document) -> Result<()> {
        if self
            .current
            .as_ref()
            .is_some_and(|c| c.3 as usize >= self.max_docs)
        {
            self.close_current()?;
        }
        if self.current.is_none() {
            let name = format!("shard-{:05}.jsonl.zst", self.shards.len());
            let dir = self.root.join(self.split.name());
            let path = dir.join(&name);
            let tmp = dir.join(format!(".{name}.tmp"));
            let file = BufWriter::with_capacity(1 << 16, File::create(&tmp).at(&tmp)?);
            let enc = zstd::stream::write::Encoder::new(file, self.level).at(&tmp)?;
            self.current = Some((enc, tmp, path, 0));
        }
        if let Some((enc, tmp, _, n)) = self.current.as_mut() {
            serde_json::to_writer(&mut *enc, doc)?;
            enc.write_all(b"\n").at(tmp)?;
            *n += 1;
        }
        Ok(())
    }

    fn close_current(&mut self) -> Result<()> {
        let Some((enc, tmp, path, docs)) = self.current.take() else {
            return Ok(());
        };
        let mut w = enc.finish().at(&tmp)?;
        w.flush().at(&tmp)?;
        let file = w.into_inner().map_err(|e| Error::Io {
            path: tmp.clone(),
            source: e.into_error(),
        })?;
        file.sync_all().at(&tmp)?;
        let bytes = file.metadata().at(&tmp)?.len();
        std::fs::rename(&tmp, &path).at(&path)?;
        let rel = format!(
            "{}/{}",
            self.split.name(),
            path.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        );
        self.shards.push(ShardInfo {
            path: rel,
            docs,
            bytes,
        });
        Ok(())
    }

    /// Closes the last shard and returns every shard written.
    pub fn finish(mut self) -> Result<Vec<ShardInfo>> {
        self.close_current()?;
        Ok(self.shards)
    }
}

/// The shard files of one split of a corpus, in order.
pub fn shard_paths(corpus: &Path, split: Split) -> Result<Vec<PathBuf>> {
    let dir = corpus.join(split.name());
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .at(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("shard-") && n.ends_with(".jsonl.zst"))
        })
        .collect();
    paths.sort();
    Ok(paths)
}

/// Checks that `dir` is a finished corpus (it has `manifest.json`).
pub fn check_corpus(dir: &Path) -> Result<()> {
    if dir.join("manifest.json").is_file() {
        Ok(())
    } else {
        Err(Error::NotACorpus {
            path: dir.to_path_buf(),
            reason: "no manifest.json; was `duet corpus build` interrupted?".into(),
        })
    }
}

/// Streams the documents of one split of a finished corpus, shard by shard.
pub struct SplitReader {
    paths: std::vec::IntoIter<PathBuf>,
    current: Option<(Box<dyn BufRead + Send>, PathBuf, u64)>,
}

impl SplitReader {
    /// Opens `split` of the corpus at `dir`.
    pub fn open(dir: &Path, split: Split) -> Result<Self> {
        check_corpus(dir)?;
        Ok(Self {
            paths: shard_paths(dir, split)?.into_iter(),
            current: None,
        })
    }

    fn next_doc(&mut self) -> Result<Option<Document>> {
        loop {
            if self.current.is_none() {
                let Some(path) = self.paths.next() else {
                    return Ok(None);
                };
                let dec =
                    zstd::stream::read::Decoder::new(File::open(&path).at(&path)?).at(&path)?;
                self.current = Some((Box::new(BufReader::with_capacity(1 << 16, dec)), path, 0));
            }
            let Some((r, path, line)) = self.current.as_mut() else {
                continue;
            };
            let mut buf = String::new();
            if r.read_line(&mut buf).at(path)? == 0 {
                self.current = None;
                continue;
            }
            *line += 1;
            let doc = serde_json::from_str(&buf).map_err(|e| Error::Parse {
                path: path.clone(),
                line: *line,
                message: format!("expected a document object: {e}"),
            })?;
            return Ok(Some(doc));
        }
    }
}

impl Iterator for SplitReader {
    type Item = Result<Document>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_doc().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_rotate_and_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = ShardWriter::new(dir.path(), Split::Train, 2, 3).unwrap();
        let docs: Vec<Document> = (0..5)
            .map(|i| Document {
                id: format!("d{i}"),
                text: format!("text {i}"),
                source: "s".into(),
                lang: "en".into(),
                meta: Default::default(),
            })
            .collect();
        for d in &docs {
            w.write(d).unwrap();
        }
        let shards = w.finish().unwrap();
        assert_eq!(shards.iter().map(|s| s.docs).collect::<Vec<_>>(), [2, 2, 1]);
        assert!(
            SplitReader::open(dir.path(), Split::Train).is_err(),
            "no manifest yet"
        );
        std::fs::write(dir.path().join("manifest.json"), "{}").unwrap();
        let back: Vec<Document> = SplitReader::open(dir.path(), Split::Train)
            .unwrap()
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(back, docs);
    }
}

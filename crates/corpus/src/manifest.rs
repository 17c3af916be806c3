//! `manifest.json`: how a corpus was made — inputs with hashes, the resolved config, counts and
//! shards. It holds no timestamps, so the same inputs and config give the same manifest, and its
//! hash identifies the corpus in later artefacts' provenance.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::error::IoContext;
use crate::read::{InputSummary, SkippedFile};
use crate::shard::ShardInfo;
use crate::{Error, Result};

/// A corpus or file this corpus was made against, with its hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    /// Path as given on the command line.
    pub path: String,
    /// SHA-256 of its `manifest.json` (corpora) or of its bytes (files).
    pub sha256: String,
    /// Documents or items taken from it.
    pub items: u64,
}

/// The manifest of a corpus directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Version of duet that wrote it.
    pub duet_version: String,
    /// `build` or `merge`.
    pub kind: String,
    /// The resolved configuration.
    pub config: Config,
    /// Input files read, with sizes and hashes.
    pub inputs: Vec<InputSummary>,
    /// Files skipped by name.
    pub skipped: Vec<SkippedFile>,
    /// `K/N` when the run processed one shard of the inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// Corpora whose documents were removed as duplicates (`--dedup-against`).
    #[serde(default)]
    pub dedup_against: Vec<Reference>,
    /// Evaluation sets decontaminated against.
    #[serde(default)]
    pub decontaminate: Vec<Reference>,
    /// Shard outputs combined by `duet corpus merge`.
    #[serde(default)]
    pub merged_from: Vec<Reference>,
    /// Documents read.
    pub docs_in: u64,
    /// Documents kept.
    pub docs_out: u64,
    /// Kept documents per split.
    pub splits: BTreeMap<String, u64>,
    /// The shard files.
    pub shards: Vec<ShardInfo>,
}

impl Manifest {
    /// Reads `dir/manifest.json`.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join("manifest.json");
        let text = std::fs::read_to_string(&path).at(&path)?;
        serde_json::from_str(&text).map_err(|e| Error::Parse {
            path: path.clone(),
            line: e.line() as u64,
            message: e.to_string(),
        })
    }
}

/// SHA-256 of a file, hex.
pub fn file_sha256(path: &Path) -> Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).at(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).at(path)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(crate::read::hex(&h.finalize()))
}

/// Writes a file through a temp name and a rename, so readers never see half of it.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).at(&tmp)?;
        f.write_all(bytes).at(&tmp)?;
        f.sync_all().at(&tmp)?;
    }
    std::fs::rename(&tmp, path).at(path)
}

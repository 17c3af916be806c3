//! De-duplication: exact (hash of normalised text) and near (MinHash + LSH banding), with
//! disk-backed buckets so memory stays bounded, and deterministic clusters: every document
//! gets an index in input order, and each cluster keeps its lowest index.
//!
//! Steps: 1) [`DedupIndex::add`] writes each document's exact key and band keys into
//! partition files and its signature into a row file; 2) [`DedupIndex::resolve`] sorts one
//! partition at a time, turns equal keys into candidate pairs, verifies near pairs by the
//! signatures' estimated Jaccard similarity, and joins verified pairs in a union-find whose
//! roots are the lowest index.

pub mod minhash;

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::config::DedupConfig;
use crate::error::IoContext;
use crate::{Error, Result};

pub use minhash::{MinHasher, estimate_jaccard, exact_key};

/// Bytes of one bucket record: key u64, document u32, table u16, padding u16.
const RECORD: usize = 16;
/// The table number of exact keys; LSH bands are 1..=bands.
const EXACT_TABLE: u16 = 0;
/// Magic number of a corpus's `dedup/signatures.bin`.
pub const SIGNATURES_MAGIC: &[u8; 8] = b"DUETSIG1";
/// Version of the signatures file layout.
pub const SIGNATURES_VERSION: u32 = 1;

/// What de-duplication concluded about one document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Kept: first of its cluster (or alone).
    Keep,
    /// Same normalised text as an earlier document.
    Exact,
    /// Near-duplicate of an earlier document.
    Near,
    /// Duplicate of a document of an earlier corpus (`--dedup-against`).
    EarlierCorpus,
}

impl Verdict {
    /// The drop reason as reports name it.
    pub fn reason(self) -> Option<&'static str> {
        match self {
            Self::Keep => None,
            Self::Exact => Some("dedup.exact"),
            Self::Near => Some("dedup.near"),
            Self::EarlierCorpus => Some("dedup.earlier_corpus"),
        }
    }
}

/// The on-disk index documents are added to before resolution.
pub struct DedupIndex {
    cfg: DedupConfig,
    hasher: MinHasher,
    dir: PathBuf,
    partitions: Vec<BufWriter<File>>,
    rows: BufWriter<File>,
    rows_path: PathBuf,
    row_len: usize,
    count: u32,
    external: u32,
}

impl DedupIndex {
    /// Creates an empty index in `dir` (a scratch directory).
    pub fn create(dir: &Path, cfg: &DedupConfig) -> Result<Self> {
        std::fs::create_dir_all(dir).at(dir)?;
        let partitions = (0..cfg.partitions)
            .map(|p| {
                let path = dir.join(format!("bucket-{p:04}.bin"));
                File::create(&path)
                    .at(&path)
                    .map(|f| BufWriter::with_capacity(1 << 16, f))
            })
            .collect::<Result<Vec<_>>>()?;
        let rows_path = dir.join("rows.bin");
        let rows = BufWriter::with_capacity(1 << 16, File::create(&rows_path).at(&rows_path)?);
        Ok(Self {
            cfg: cfg.clone(),
            hasher: MinHasher::new(cfg),
            dir: dir.to_path_buf(),
            partitions,
            rows,
            rows_path,
            row_len: 8 + 4 * if cfg.near { cfg.num_perm } else { 0 },
            count: 0,
            external: 0,
        })
    }

    /// The hasher whose signatures [`Self::add`] expects.
    pub fn hasher(&self) -> &MinHasher {
        &self.hasher
    }

    /// Documents added so far.
    pub fn len(&self) -> u32 {
        self.count
    }

    /// Whether no document was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Adds a document's exact key and signature; returns its index.
    pub fn add(&mut self, exact: u64, sig: &[u32]) -> Result<u32> {
        let doc = self.count;
        self.count = self.count.checked_add(1).ok_or_else(|| {
            Error::Config("more than 4 billion documents in one run; use --shard".into())
        })?;
        let mut row = Vec::with_capacity(self.row_len);
        row.extend_from_slice(&exact.to_le_bytes());
        row.extend(sig.iter().flat_map(|v| v.to_le_bytes()));
        self.rows.write_all(&row).at(&self.rows_path)?;
        if self.cfg.exact {
            self.record(EXACT_TABLE, exact, doc)?;
        }
        if self.cfg.near {
            for (band, key) in self.hasher.band_keys(sig).into_iter().enumerate() {
                self.record(band as u16 + 1, key, doc)?;
            }
        }
        Ok(doc)
    }

    fn record(&mut self, table: u16, key: u64, doc: u32) -> Result<()> {
        let p = (key.rotate_left(17) % self.partitions.len() as u64) as usize;
        let mut rec = [0u8; RECORD];
        rec[..8].copy_from_slice(&key.to_le_bytes());
        rec[8..12].copy_from_slice(&doc.to_le_bytes());
        rec[12..14].copy_from_slice(&table.to_le_bytes());
        let path = self.dir.join(format!("bucket-{p:04}.bin"));
        self.partitions[p].write_all(&rec).at(&path)
    }

    /// Marks every document added so far as belonging to an earlier corpus: a later document
    /// that joins one of their clusters is a duplicate of that corpus.
    pub fn mark_external(&mut self) {
        self.external = self.count;
    }

    /// Adds every row of an earlier corpus's `dedup/signatures.bin` (checking that it was made
    /// with the same hash family), then marks them external.
    pub fn add_earlier_corpus(&mut self, corpus: &Path) -> Result<u64> {
        let path = corpus.join("dedup").join("signatures.bin");
        let mut r = SignatureReader::open(&path)?;
        let h = r.header;
        let cfg = &self.cfg;
        let near_perm = if cfg.near { cfg.num_perm } else { 0 };
        if h.num_perm as usize != near_perm
            || h.seed != cfg.seed
            || h.ngram as usize != cfg.ngram
            || h.shingle != shingle_code(cfg)
        {
            return Err(Error::NotACorpus {
                path: corpus.to_path_buf(),
                reason: format!(
                    "its signatures were made with num_perm={}, seed={}, ngram={}, shingle={}; this run uses num_perm={}, seed={}, ngram={}, shingle={}",
                    h.num_perm,
                    h.seed,
                    h.ngram,
                    h.shingle,
                    near_perm,
                    cfg.seed,
                    cfg.ngram,
                    shingle_code(cfg)
                ),
            });
        }
        let mut n = 0;
        while let Some((exact, sig)) = r.next_row()? {
            self.add(exact, &sig)?;
            n += 1;
        }
        self.mark_external();
        Ok(n)
    }

    /// Sorts the buckets, verifies candidates and clusters documents.
    pub fn resolve(mut self) -> Result<Resolution> {
        for (p, w) in self.partitions.iter_mut().enumerate() {
            w.flush().at(&self.dir.join(format!("bucket-{p:04}.bin")))?;
        }
        self.rows.flush().at(&self.rows_path)?;
        let n = self.count as usize;
        let mut parent: Vec<u32> = (0..self.count).collect();
        let mut exact_dup = vec![false; n];
        let rows = File::open(&self.rows_path).at(&self.rows_path)?;
        let row_len = self.row_len;
        let threshold = self.cfg.threshold;
        let read_sig = |doc: u32| -> std::io::Result<Vec<u32>> {
            let mut buf = vec![0u8; row_len - 8];
            rows.read_exact_at(&mut buf, doc as u64 * row_len as u64 + 8)?;
            Ok(buf
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect())
        };
        for p in 0..self.partitions.len() {
            let path = self.dir.join(format!("bucket-{p:04}.bin"));
            let mut bytes = Vec::new();
            File::open(&path)
                .at(&path)?
                .read_to_end(&mut bytes)
                .at(&path)?;
            let mut recs: Vec<(u16, u64, u32)> = bytes
                .chunks_exact(RECORD)
                .map(|r| {
                    let key = u64::from_le_bytes(r[..8].try_into().unwrap_or_default());
                    let doc = u32::from_le_bytes(r[8..12].try_into().unwrap_or_default());
                    let table = u16::from_le_bytes(r[12..14].try_into().unwrap_or_default());
                    (table, key, doc)
                })
                .collect();
            drop(bytes);
            recs.par_sort_unstable();
            // Candidate pairs: each member of a bucket against the bucket's first member.
            let mut exact_pairs = Vec::new();
            let mut near_pairs = Vec::new();
            for group in recs.chunk_by(|a, b| a.0 == b.0 && a.1 == b.1) {
                let (table, _, first) = group[0];
                for &(_, _, doc) in &group[1..] {
                    if table == EXACT_TABLE {
                        exact_pairs.push((first, doc));
                    } else {
                        near_pairs.push((first, doc));
                    }
                }
            }
            drop(recs);
            near_pairs.sort_unstable();
            near_pairs.dedup();
            let verified: Vec<(u32, u32)> = near_pairs
                .into_par_iter()
                .map(|(a, b)| -> std::io::Result<Option<(u32, u32)>> {
                    let (sa, sb) = (read_sig(a)?, read_sig(b)?);
                    Ok((estimate_jaccard(&sa, &sb) >= threshold).then_some((a, b)))
                })
                .filter_map(|r| r.transpose())
                .collect::<std::io::Result<_>>()
                .at(&self.rows_path)?;
            for (a, b) in exact_pairs {
                exact_dup[b as usize] = true;
                union(&mut parent, a, b);
            }
            for (a, b) in verified {
                union(&mut parent, a, b);
            }
            std::fs::remove_file(&path).at(&path)?;
        }
        for i in 0..n {
            let r = find(&mut parent, i as u32);
            parent[i] = r;
        }
        Ok(Resolution {
            root: parent,
            exact_dup,
            external: self.external,
            rows_path: self.rows_path,
            row_len,
        })
    }
}

/// The shingle kind as a byte in the signatures header.
fn shingle_code(cfg: &DedupConfig) -> u8 {
    match cfg.shingle {
        crate::config::Shingle::Char => 0,
        crate::config::Shingle::Word => 1,
    }
}

fn find(parent: &mut [u32], mut x: u32) -> u32 {
    while parent[x as usize] != x {
        let up = parent[parent[x as usize] as usize];
        parent[x as usize] = up;
        x = up;
    }
    x
}

fn union(parent: &mut [u32], a: u32, b: u32) {
    let (ra, rb) = (find(parent, a), find(parent, b));
    match ra.cmp(&rb) {
        std::cmp::Ordering::Less => parent[rb as usize] = ra,
        std::cmp::Ordering::Greater => parent[ra as usize] = rb,
        std::cmp::Ordering::Equal => {}
    }
}

/// The clusters found, and the rows to copy into the output's index.
#[derive(Debug)]
pub struct Resolution {
    root: Vec<u32>,
    exact_dup: Vec<bool>,
    external: u32,
    rows_path: PathBuf,
    row_len: usize,
}

impl Resolution {
    /// What happens to document `doc`.
    pub fn verdict(&self, doc: u32) -> Verdict {
        let root = self.root[doc as usize];
        if root == doc {
            Verdict::Keep
        } else if root < self.external {
            Verdict::EarlierCorpus
        } else if self.exact_dup[doc as usize] {
            Verdict::Exact
        } else {
            Verdict::Near
        }
    }

    /// The cluster representative of `doc` (itself when kept).
    pub fn root(&self, doc: u32) -> u32 {
        self.root[doc as usize]
    }

    /// Index of the first document of this run (earlier corpora come before it).
    pub fn first_own(&self) -> u32 {
        self.external
    }

    /// Sizes of clusters with more than one member, largest first (ties: lower root first).
    pub fn clusters(&self) -> Vec<(u32, u64)> {
        let mut sizes: std::collections::HashMap<u32, u64> = std::collections::HashMap::new();
        for (i, &r) in self.root.iter().enumerate() {
            if r != i as u32 {
                *sizes.entry(r).or_insert(1) += 1;
            }
        }
        let mut v: Vec<(u32, u64)> = sizes.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }

    /// Reads rows (exact key and signature) in index order, for copying kept documents'.
    pub fn rows(&self) -> Result<RowReader> {
        let f = File::open(&self.rows_path).at(&self.rows_path)?;
        Ok(RowReader {
            r: BufReader::with_capacity(1 << 16, f),
            row_len: self.row_len,
            path: self.rows_path.clone(),
        })
    }
}

/// Sequential reader of the staged rows.
pub struct RowReader {
    r: BufReader<File>,
    row_len: usize,
    path: PathBuf,
}

impl RowReader {
    /// The next row's raw bytes (exact key then signature, little-endian).
    pub fn next_row(&mut self) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; self.row_len];
        self.r.read_exact(&mut buf).at(&self.path)?;
        Ok(buf)
    }
}

/// The header of `dedup/signatures.bin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignatureHeader {
    /// Signature length (0 when near-duplicate removal was off).
    pub num_perm: u32,
    /// Hash family seed.
    pub seed: u64,
    /// Shingle length.
    pub ngram: u32,
    /// 0 = characters, 1 = words.
    pub shingle: u8,
    /// Rows that follow.
    pub count: u64,
}

/// Writes a corpus's `dedup/signatures.bin`: the exact key and signature of every kept
/// document, in the corpus's global order (see `dedup/order.bin`).
pub struct SignatureWriter {
    w: BufWriter<File>,
    path: PathBuf,
    tmp: PathBuf,
    count: u64,
    header: SignatureHeader,
}

impl SignatureWriter {
    /// Starts writing at `path` (through a temp file renamed by [`Self::finish`]).
    pub fn create(path: &Path, cfg: &DedupConfig) -> Result<Self> {
        let tmp = path.with_extension("bin.tmp");
        let w = BufWriter::new(File::create(&tmp).at(&tmp)?);
        let header = SignatureHeader {
            num_perm: if cfg.near { cfg.num_perm as u32 } else { 0 },
            seed: cfg.seed,
            ngram: cfg.ngram as u32,
            shingle: shingle_code(cfg),
            count: 0,
        };
        let mut s = Self {
            w,
            path: path.to_path_buf(),
            tmp,
            count: 0,
            header,
        };
        s.write_header()?;
        Ok(s)
    }

    fn write_header(&mut self) -> Result<()> {
        let h = self.header;
        let mut b = Vec::with_capacity(40);
        b.extend_from_slice(SIGNATURES_MAGIC);
        b.extend_from_slice(&SIGNATURES_VERSION.to_le_bytes());
        b.extend_from_slice(&h.num_perm.to_le_bytes());
        b.extend_from_slice(&h.seed.to_le_bytes());
        b.extend_from_slice(&h.ngram.to_le_bytes());
        b.push(h.shingle);
        b.extend_from_slice(&[0u8; 3]);
        b.extend_from_slice(&self.count.to_le_bytes());
        self.w.write_all(&b).at(&self.tmp)
    }

    /// Appends one row as produced by [`RowReader::next_row`].
    pub fn push_raw(&mut self, row: &[u8]) -> Result<()> {
        self.count += 1;
        self.w.write_all(row).at(&self.tmp)
    }

    /// Writes the final count into the header and renames the file into place.
    pub fn finish(mut self) -> Result<()> {
        self.w.flush().at(&self.tmp)?;
        let file = self.w.into_inner().map_err(|e| Error::Io {
            path: self.tmp.clone(),
            source: e.into_error(),
        })?;
        file.write_all_at(&self.count.to_le_bytes(), 32)
            .at(&self.tmp)?;
        file.sync_all().at(&self.tmp)?;
        std::fs::rename(&self.tmp, &self.path).at(&self.path)
    }
}

/// Reads a corpus's `dedup/signatures.bin`.
pub struct SignatureReader {
    r: BufReader<File>,
    path: PathBuf,
    /// The file's header.
    pub header: SignatureHeader,
    read: u64,
}

impl SignatureReader {
    /// Opens the file and checks its magic number and version.
    pub fn open(path: &Path) -> Result<Self> {
        let mut r = BufReader::new(File::open(path).at(path)?);
        let mut b = [0u8; 40];
        r.read_exact(&mut b).at(path)?;
        let bad = |reason: String| Error::NotACorpus {
            path: path.to_path_buf(),
            reason,
        };
        if &b[..8] != SIGNATURES_MAGIC {
            return Err(bad("signatures.bin has the wrong magic number".into()));
        }
        let version = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
        if version != SIGNATURES_VERSION {
            return Err(bad(format!(
                "signatures.bin version {version}, expected {SIGNATURES_VERSION}"
            )));
        }
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or_default());
        let header = SignatureHeader {
            num_perm: u32_at(12),
            seed: u64_at(16),
            ngram: u32_at(24),
            shingle: b[28],
            count: u64_at(32),
        };
        Ok(Self {
            r,
            path: path.to_path_buf(),
            header,
            read: 0,
        })
    }

    /// The next row: exact key and signature; `None` after the last.
    pub fn next_row(&mut self) -> Result<Option<(u64, Vec<u32>)>> {
        if self.read == self.header.count {
            return Ok(None);
        }
        let mut b = vec![0u8; 8 + 4 * self.header.num_perm as usize];
        self.r.read_exact(&mut b).at(&self.path)?;
        self.read += 1;
        let exact = u64::from_le_bytes(b[..8].try_into().unwrap_or_default());
        let sig = b[8..]
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(Some((exact, sig)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(texts: &[&str], cfg: &DedupConfig) -> Vec<Verdict> {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = DedupIndex::create(dir.path(), cfg).unwrap();
        for t in texts {
            let sig = idx.hasher().signature(t);
            idx.add(exact_key(t), &sig).unwrap();
        }
        let res = idx.resolve().unwrap();
        (0..texts.len() as u32).map(|i| res.verdict(i)).collect()
    }

    #[test]
    fn exact_and_near_duplicates_keep_the_first() {
        let a = "The committee met on Tuesday to review the annual budget and discuss new hires.";
        let near =
            "The committee met on Tuesday to review the annual budgets and discuss new hire.";
        let other = "Completely different sentence about the weather in the mountains this spring.";
        let v = run(
            &[
                a,
                other,
                "THE COMMITTEE met on tuesday, to review the annual budget and discuss new hires!",
                near,
            ],
            &DedupConfig::default(),
        );
        assert_eq!(
            v,
            [Verdict::Keep, Verdict::Keep, Verdict::Exact, Verdict::Near]
        );
    }

    #[test]
    fn partitions_do_not_change_the_result() {
        const WORDS: [&str; 12] = [
            "river", "mountain", "city", "bread", "music", "winter", "garden", "letter", "engine",
            "silver", "harbor", "forest",
        ];
        let mut state = 7u64;
        let mut texts: Vec<String> = (0..120)
            .map(|_| {
                (0..12)
                    .map(|_| {
                        state = state
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        WORDS[(state >> 60) as usize % WORDS.len()]
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        for i in 0..30 {
            texts.push(texts[i * 3].clone());
        }
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let one = run(
            &refs,
            &DedupConfig {
                partitions: 1,
                ..Default::default()
            },
        );
        let many = run(
            &refs,
            &DedupConfig {
                partitions: 13,
                ..Default::default()
            },
        );
        assert_eq!(one, many);
        assert!(one[120..].iter().all(|v| *v == Verdict::Exact));
    }
}

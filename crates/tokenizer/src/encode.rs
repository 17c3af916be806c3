//! Encoding a corpus into token shards, one folder per split, with a manifest that ties the
//! shards to the exact tokenizer and corpus that made them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokenizers::Tokenizer;

use duet_corpus::{Split, SplitReader};

use crate::error::{IoContext, tk};
use crate::shard::{NO_SEPARATOR, ShardWriter, TokenStream, width_for};
use crate::{Error, Result};

/// Separator tokens tried in order when none is named.
const SEPARATORS: &[&str] = &["<|endoftext|>", "</s>", "[SEP]"];

/// How to encode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncodeOptions {
    /// Start a new shard after this many tokens.
    pub shard_tokens: u64,
    /// The token placed after each document; `None`: the first of `<|endoftext|>`, `</s>`,
    /// `[SEP]` the vocabulary has.
    pub separator: Option<String>,
    /// Documents encoded together (in parallel).
    pub batch_docs: usize,
    /// Replace an existing output directory.
    pub force: bool,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        Self {
            shard_tokens: 1 << 27,
            separator: None,
            batch_docs: 2048,
            force: false,
        }
    }
}

/// Figures of one encoded split.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SplitStats {
    /// Documents.
    pub docs: u64,
    /// Tokens, separators included.
    pub tokens: u64,
    /// UTF-8 bytes of the text.
    pub text_bytes: u64,
    /// Shard files relative to the output directory.
    pub shards: Vec<String>,
    /// Per language: (bytes, tokens without separators).
    pub by_lang: BTreeMap<String, (u64, u64)>,
}

/// `manifest.json` of a token directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenManifest {
    /// SHA-256 of the `tokenizer.json` used.
    pub tokenizer_sha256: String,
    /// SHA-256 of the corpus's `manifest.json`.
    pub corpus_manifest_sha256: String,
    /// Vocabulary size (added tokens included).
    pub vocab_size: u32,
    /// Bytes per token id in the shards.
    pub width: u32,
    /// The separator token and its id, if any.
    pub separator: Option<(String, u32)>,
    /// Per split.
    pub splits: BTreeMap<String, SplitStats>,
}

impl TokenManifest {
    /// Reads `dir/manifest.json`.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join("manifest.json");
        let bytes = std::fs::read(&path).at(&path)?;
        Ok(serde_json::from_slice(&bytes)?)
    }

    /// Opens the shards of one split as a single token stream.
    pub fn stream(&self, dir: &Path, split: Split) -> Result<TokenStream> {
        let stats = self.splits.get(split.name()).ok_or_else(|| {
            Error::Invalid(format!("{}: no {} split", dir.display(), split.name()))
        })?;
        let paths: Vec<PathBuf> = stats.shards.iter().map(|s| dir.join(s)).collect();
        TokenStream::open(&paths)
    }
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).at(path)?;
    Ok(sha256_hex(&bytes))
}

/// SHA-256 of bytes, hex.
fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Loads a `tokenizer.json`.
pub fn load_tokenizer(path: &Path) -> Result<Tokenizer> {
    Tokenizer::from_file(path).map_err(|e| Error::Tokenizers(format!("{}: {e}", path.display())))
}

/// The copy of the tokenizer that `encode_corpus` keeps beside the shards, so that a token
/// directory says by itself how to read it back.
pub const TOKENIZER_COPY: &str = "tokenizer.json";

/// Encodes every split of `corpus` with the tokenizer at `tokenizer_path` into `out`, with a
/// copy of the tokenizer (`out/tokenizer.json`).
pub fn encode_corpus(
    tokenizer_path: &Path,
    corpus: &Path,
    out: &Path,
    opts: &EncodeOptions,
    bar: &ProgressBar,
) -> Result<TokenManifest> {
    duet_corpus::check_corpus(corpus)?;
    let tokenizer_bytes = std::fs::read(tokenizer_path).at(tokenizer_path)?;
    let tokenizer = Tokenizer::from_bytes(&tokenizer_bytes)
        .map_err(|e| Error::Tokenizers(format!("{}: {e}", tokenizer_path.display())))?;
    if out.exists() && std::fs::read_dir(out).at(out)?.next().is_some() {
        if !opts.force {
            return Err(Error::Invalid(format!(
                "{} already exists; pass --force to replace it",
                out.display()
            )));
        }
        std::fs::remove_dir_all(out).at(out)?;
    }
    std::fs::create_dir_all(out).at(out)?;
    let vocab_size = u32::try_from(tokenizer.get_vocab_size(true))
        .map_err(|_| Error::Invalid("vocabulary too large".into()))?;
    let separator = match &opts.separator {
        Some(s) => Some((
            s.clone(),
            tokenizer.token_to_id(s).ok_or_else(|| {
                Error::Invalid(format!("--separator {s:?} is not in the vocabulary"))
            })?,
        )),
        None => SEPARATORS
            .iter()
            .find_map(|s| tokenizer.token_to_id(s).map(|id| ((*s).to_owned(), id))),
    };
    let sep_id = separator.as_ref().map_or(NO_SEPARATOR, |s| s.1);
    let mut splits = BTreeMap::new();
    for split in Split::ALL {
        bar.set_message(format!("encoding {}", split.name()));
        let dir = out.join(split.name());
        std::fs::create_dir_all(&dir).at(&dir)?;
        let mut stats = SplitStats::default();
        let mut writer: Option<ShardWriter> = None;
        let mut reader = SplitReader::open(corpus, split)?;
        loop {
            let docs: Vec<_> = reader
                .by_ref()
                .take(opts.batch_docs.max(1))
                .collect::<std::result::Result<_, _>>()?;
            if docs.is_empty() {
                break;
            }
            let texts: Vec<&str> = docs.iter().map(|d| d.text.as_str()).collect();
            let encodings = tokenizer.encode_batch(texts, false).map_err(tk)?;
            for (d, e) in docs.iter().zip(encodings) {
                if let Some(w) = writer.take_if(|w| w.tokens() >= opts.shard_tokens) {
                    w.finish()?;
                }
                if writer.is_none() {
                    let name = format!("{}/tokens-{:05}.bin", split.name(), stats.shards.len());
                    writer = Some(ShardWriter::create(&out.join(&name), vocab_size, sep_id)?);
                    stats.shards.push(name);
                }
                let ids = e.get_ids();
                let bytes = d.text.len() as u64;
                if let Some(w) = writer.as_mut() {
                    w.push_doc(ids, bytes)?;
                }
                stats.docs += 1;
                stats.tokens += ids.len() as u64 + u64::from(sep_id != NO_SEPARATOR);
                stats.text_bytes += bytes;
                let l = stats.by_lang.entry(d.lang.clone()).or_default();
                l.0 += bytes;
                l.1 += ids.len() as u64;
            }
            bar.inc(docs.len() as u64);
        }
        if let Some(w) = writer {
            w.finish()?;
        }
        splits.insert(split.name().to_owned(), stats);
    }
    let manifest = TokenManifest {
        tokenizer_sha256: sha256_hex(&tokenizer_bytes),
        corpus_manifest_sha256: sha256_file(&corpus.join("manifest.json"))?,
        vocab_size,
        width: width_for(vocab_size as usize),
        separator,
        splits,
    };
    let copy = out.join(TOKENIZER_COPY);
    std::fs::write(&copy, &tokenizer_bytes).at(&copy)?;
    let path = out.join("manifest.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest)?).at(&path)?;
    bar.finish_and_clear();
    Ok(manifest)
}

//! `duet-corpus`: collect and clean text for language models.
//!
//! Readers for text, Markdown, HTML, JSONL, CSV/TSV, fortune files and dictd dictionaries
//! (plain, `.gz`, `.zst`), web archives (WARC and WET, gzip per record or whole-file) and
//! e-books (EPUB 2 and 3, PDF), broken records counted and passed over; main-text extraction
//! from HTML; Unicode normalisation and cleaning; length, language, quality and repetition
//! filters; exact and MinHash near-duplicate removal with disk-backed buckets; decontamination
//! against evaluation sets; PII redaction; a deterministic split; zstd-compressed JSONL shards
//! with a manifest and a report that
//! accounts for every document.
//!
//! ```
//! use duet_corpus::{BuildOptions, Config, Split, SplitReader, build};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let input = dir.path().join("quotes");
//! std::fs::write(&input, "A fool and his money are soon parted.\n%\nWrite to me at jane@example.com, please.\n")?;
//! let opts = BuildOptions {
//!     inputs: vec![input],
//!     out: dir.path().join("corpus"),
//!     force: false,
//!     strict: false,
//!     shard: None,
//!     dedup_against: vec![],
//!     decontaminate: vec![],
//!     progress: indicatif::ProgressBar::hidden(),
//! };
//! let mut cfg = Config::default();
//! cfg.split.valid = 0.0;
//! cfg.split.test = 0.0;
//! let report = build(&cfg, &opts)?;
//! assert_eq!((report.docs_in, report.docs_out), (2, 2));
//! let texts: Vec<String> = SplitReader::open(&opts.out, Split::Train)?
//!     .map(|d| d.map(|d| d.text))
//!     .collect::<Result<_, _>>()?;
//! assert_eq!(texts[1], "Write to me at <EMAIL>, please.");
//! # Ok(())
//! # }
//! ```

pub mod clean;
pub mod config;
pub mod crawl;
pub mod decontam;
pub mod dedup;
mod document;
mod error;
pub mod filter;
pub mod manifest;
pub mod pii;
mod pipeline;
pub mod read;
pub mod report;
pub mod shard;
pub mod split;
pub mod text;

pub use config::Config;
pub use document::Document;
pub use error::{Error, Result};
pub use manifest::Manifest;
pub use pipeline::{BuildOptions, MergeOptions, ShardSpec, build, merge};
pub use report::Report;
pub use shard::{SplitReader, check_corpus};
pub use split::Split;

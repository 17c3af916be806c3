//! The corpus job's configuration: every key has a default a user would pick for a laptop.
//!
//! The file form is TOML (`--config corpus.toml`); every key can also be set from the command
//! line with `--set section.key=value`. The resolved configuration is saved in `manifest.json`.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The whole configuration of `duet corpus build`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// How inputs are read.
    pub input: InputConfig,
    /// How text is cleaned.
    pub clean: CleanConfig,
    /// Which documents are dropped.
    pub filters: FiltersConfig,
    /// Exact and near-duplicate removal.
    pub dedup: DedupConfig,
    /// Removal of documents that overlap evaluation sets.
    pub decontaminate: DecontaminateConfig,
    /// Personal-data redaction.
    pub pii: PiiConfig,
    /// Train / validation / test split.
    pub split: SplitConfig,
    /// Shard sizes.
    pub output: OutputConfig,
    /// Worker threads; 0 uses every core.
    pub threads: usize,
}

impl Config {
    /// Parses a TOML document; unknown keys are errors that name the key.
    pub fn from_toml(text: &str) -> Result<Self> {
        let cfg: Self = toml::from_str(text).map_err(|e| Error::Config(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks values that the types alone do not constrain.
    pub fn validate(&self) -> Result<()> {
        let s = &self.split;
        for (name, v) in [("split.valid", s.valid), ("split.test", s.test)] {
            if !(0.0..1.0).contains(&v) {
                return Err(Error::Config(format!(
                    "{name} must be in [0, 1), found {v}"
                )));
            }
        }
        if s.valid + s.test >= 1.0 {
            return Err(Error::Config(format!(
                "split.valid + split.test must be below 1, found {}",
                s.valid + s.test
            )));
        }
        let d = &self.dedup;
        if d.num_perm == 0 || d.bands == 0 || !d.num_perm.is_multiple_of(d.bands) {
            return Err(Error::Config(format!(
                "dedup.num_perm ({}) must be a positive multiple of dedup.bands ({})",
                d.num_perm, d.bands
            )));
        }
        if d.ngram == 0 {
            return Err(Error::Config("dedup.ngram must be at least 1".into()));
        }
        if !(0.0..=1.0).contains(&d.threshold) {
            return Err(Error::Config(format!(
                "dedup.threshold must be in [0, 1], found {}",
                d.threshold
            )));
        }
        if d.partitions == 0 {
            return Err(Error::Config("dedup.partitions must be at least 1".into()));
        }
        if self.decontaminate.ngram == 0 {
            return Err(Error::Config(
                "decontaminate.ngram must be at least 1".into(),
            ));
        }
        if self.output.shard_docs == 0 {
            return Err(Error::Config("output.shard_docs must be at least 1".into()));
        }
        let l = &self.filters.language;
        if !(0.0..=1.0).contains(&l.min_confidence) {
            return Err(Error::Config(format!(
                "filters.language.min_confidence must be in [0, 1], found {}",
                l.min_confidence
            )));
        }
        Ok(())
    }
}

/// The input formats duet reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Decide by extension and content.
    Auto,
    /// Plain text; one document per file (or per paragraph, see `text_unit`).
    Text,
    /// Markdown; front matter removed, one document per file.
    Markdown,
    /// HTML; the main text is extracted.
    Html,
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated values with a header.
    Csv,
    /// Tab-separated values with a header.
    Tsv,
    /// Fortune files: entries separated by lines holding only `%`.
    Fortune,
    /// dictd dictionaries (`NAME.index` beside `NAME.dict[.dz]`): one document per headword.
    Dictd,
    /// Web archives (`.warc`, `.warc.gz`): HTML and text responses and resources.
    Warc,
    /// Common Crawl's extracted text (`.wet`, `.wet.gz`): WARC `conversion` records.
    Wet,
    /// EPUB 2 and 3 e-books: the spine's chapters in order (see `book_unit`).
    Epub,
    /// PDF: the text layer of every page, running headers and footers removed.
    Pdf,
}

/// How an e-book is cut into documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BookUnit {
    /// The whole book is one document.
    Book,
    /// Each chapter (EPUB spine item) is a document.
    Chapter,
}

/// How a plain-text file is cut into documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TextUnit {
    /// The whole file is one document (books, articles).
    File,
    /// Each blank-line-separated paragraph is a document.
    Paragraph,
    /// Each non-empty line is a document (chat logs, sentence lists).
    Line,
}

/// How inputs are read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InputConfig {
    /// Format of every input, or `auto`.
    pub format: Format,
    /// Field holding the text in JSONL inputs.
    pub text_field: String,
    /// Field holding the id in JSONL inputs (absent: `<source>#<n>`).
    pub id_field: String,
    /// Column holding the text in CSV/TSV inputs (a name, or a 0-based index for files without
    /// a header).
    pub text_column: String,
    /// Whether CSV/TSV inputs start with a header row.
    pub has_header: bool,
    /// How plain-text files are cut into documents.
    pub text_unit: TextUnit,
    /// How e-books are cut into documents.
    pub book_unit: BookUnit,
    /// Files larger than this (after decompression) are cut at this many bytes and counted.
    pub max_doc_bytes: usize,
    /// Glob-like suffixes of file names that are skipped when walking directories.
    pub skip_suffixes: Vec<String>,
}

impl Default for InputConfig {
    fn default() -> Self {
        Self {
            format: Format::Auto,
            text_field: "text".into(),
            id_field: "id".into(),
            text_column: "text".into(),
            has_header: true,
            text_unit: TextUnit::File,
            book_unit: BookUnit::Book,
            max_doc_bytes: 16 << 20,
            skip_suffixes: vec![".dat".into(), ".u8".into()],
        }
    }
}

/// Unicode normalisation forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Normalization {
    /// Compatibility composition: full-width letters, ligatures and the like folded.
    Nfkc,
    /// Canonical composition only.
    Nfc,
    /// Leave the text as it is.
    None,
}

/// How text is cleaned before filtering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CleanConfig {
    /// The Unicode normalisation form.
    pub normalization: Normalization,
    /// Remove ANSI escape sequences (terminal colours).
    pub strip_ansi: bool,
    /// Remove control characters other than newline and tab.
    pub strip_control: bool,
    /// Collapse runs of spaces, trim lines, keep at most one blank line between paragraphs.
    pub normalize_whitespace: bool,
}

impl Default for CleanConfig {
    fn default() -> Self {
        Self {
            normalization: Normalization::Nfkc,
            strip_ansi: true,
            strip_control: true,
            normalize_whitespace: true,
        }
    }
}

/// All document filters, applied in this order; the first that fails names the drop.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FiltersConfig {
    /// Length bounds.
    pub length: LengthConfig,
    /// Language identification and allow-list.
    pub language: LanguageConfig,
    /// Gopher/C4-style quality heuristics.
    pub quality: QualityConfig,
    /// Gopher-style repetition heuristics.
    pub repetition: RepetitionConfig,
}

/// Length bounds in characters and words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LengthConfig {
    /// Whether the filter runs.
    pub enabled: bool,
    /// Fewest characters a document may have.
    pub min_chars: usize,
    /// Most characters a document may have.
    pub max_chars: usize,
    /// Fewest words (CJK characters count as words).
    pub min_words: usize,
    /// Most words.
    pub max_words: usize,
}

impl Default for LengthConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            min_chars: 10,
            max_chars: 1_000_000,
            min_words: 3,
            max_words: 200_000,
        }
    }
}

/// Language identification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LanguageConfig {
    /// Whether documents outside the allow-list are dropped (the language is detected anyway).
    pub enabled: bool,
    /// ISO 639-1 codes to keep; empty keeps every language.
    pub allow: Vec<String>,
    /// Documents detected with less confidence are dropped as `language_uncertain`.
    pub min_confidence: f64,
}

impl Default for LanguageConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            allow: vec!["en".into(), "zh".into()],
            min_confidence: 0.5,
        }
    }
}

/// Gopher (Rae et al. 2021) and C4 (Raffel et al. 2020) quality heuristics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QualityConfig {
    /// Whether the filter runs.
    pub enabled: bool,
    /// Documents with fewer words skip these ratio-based checks: Gopher designed them for
    /// documents of 50 words and more, and on short texts one number or quote flips them.
    pub min_words_to_apply: usize,
    /// Smallest mean word length (space-separated languages).
    pub min_mean_word_len: f64,
    /// Largest mean word length.
    pub max_mean_word_len: f64,
    /// Largest ratio of `#` and `...`/`…` to words.
    pub max_symbol_ratio: f64,
    /// Largest share of lines ending in an ellipsis.
    pub max_ellipsis_line_ratio: f64,
    /// Largest share of lines starting with a bullet.
    pub max_bullet_line_ratio: f64,
    /// Smallest share of words containing a letter.
    pub min_alpha_word_ratio: f64,
    /// English documents need at least this many of Gopher's stop words.
    pub min_stop_words: usize,
    /// Largest share of lines that contain `lorem ipsum`, `{` or `javascript` (C4).
    pub max_code_line_ratio: f64,
}

impl Default for QualityConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            min_words_to_apply: 50,
            min_mean_word_len: 3.0,
            max_mean_word_len: 10.0,
            max_symbol_ratio: 0.1,
            max_ellipsis_line_ratio: 0.3,
            max_bullet_line_ratio: 0.9,
            min_alpha_word_ratio: 0.8,
            min_stop_words: 2,
            max_code_line_ratio: 0.5,
        }
    }
}

/// Gopher repetition heuristics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RepetitionConfig {
    /// Whether the filter runs.
    pub enabled: bool,
    /// Documents with fewer words skip the n-gram checks (a repeated name in a two-line joke
    /// is not spam).
    pub min_words_for_ngrams: usize,
    /// Largest share of lines that are duplicates of an earlier line.
    pub max_dup_line_ratio: f64,
    /// Largest share of characters in duplicated lines.
    pub max_dup_line_char_ratio: f64,
    /// Largest share of paragraphs that are duplicates.
    pub max_dup_para_ratio: f64,
    /// Largest share of characters in duplicated paragraphs.
    pub max_dup_para_char_ratio: f64,
    /// Largest share of characters covered by the most frequent 2-, 3- and 4-gram.
    pub max_top_ngram_char_ratio: [f64; 3],
    /// Largest share of characters covered by duplicated 5- to 10-grams.
    pub max_dup_ngram_char_ratio: [f64; 6],
}

impl Default for RepetitionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            min_words_for_ngrams: 50,
            max_dup_line_ratio: 0.3,
            max_dup_line_char_ratio: 0.2,
            max_dup_para_ratio: 0.3,
            max_dup_para_char_ratio: 0.2,
            max_top_ngram_char_ratio: [0.2, 0.18, 0.16],
            max_dup_ngram_char_ratio: [0.15, 0.14, 0.13, 0.12, 0.11, 0.10],
        }
    }
}

/// What a shingle is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Shingle {
    /// Character n-grams of the normalised text: robust to small edits, works for CJK.
    Char,
    /// Word n-grams; CJK characters count as words.
    Word,
}

/// Exact and near-duplicate removal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DedupConfig {
    /// Remove documents whose normalised text hashes equal (lower-cased, punctuation and
    /// whitespace removed).
    pub exact: bool,
    /// Remove near-duplicates found by MinHash + LSH.
    pub near: bool,
    /// Shingle kind.
    pub shingle: Shingle,
    /// Shingle length (characters or words).
    pub ngram: usize,
    /// Number of MinHash permutations.
    pub num_perm: usize,
    /// LSH bands; `num_perm / bands` rows each.
    pub bands: usize,
    /// Estimated Jaccard similarity at or above which two candidates are duplicates.
    pub threshold: f64,
    /// Seed of the hash family.
    pub seed: u64,
    /// On-disk bucket partitions per band; more partitions, less memory per sort.
    pub partitions: usize,
}

impl Default for DedupConfig {
    fn default() -> Self {
        Self {
            exact: true,
            near: true,
            shingle: Shingle::Char,
            ngram: 5,
            num_perm: 128,
            bands: 32,
            threshold: 0.45,
            seed: 0x5eed_d0e7,
            partitions: 16,
        }
    }
}

/// Decontamination against evaluation sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecontaminateConfig {
    /// N-gram length in words (CJK characters count as words).
    pub ngram: usize,
}

impl Default for DecontaminateConfig {
    fn default() -> Self {
        Self { ngram: 13 }
    }
}

/// Personal-data redaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PiiConfig {
    /// Whether redaction runs.
    pub enabled: bool,
    /// The kinds to redact (`email`, `phone`, `ip`, `card`, `cn_id`); empty means all.
    pub kinds: Vec<String>,
}

impl Default for PiiConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            kinds: Vec::new(),
        }
    }
}

/// Deterministic split by a hash of the document id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SplitConfig {
    /// Share of documents in `valid/`.
    pub valid: f64,
    /// Share of documents in `test/`.
    pub test: f64,
    /// Salt of the hash, to draw a different split.
    pub seed: u64,
}

impl Default for SplitConfig {
    fn default() -> Self {
        Self {
            valid: 0.05,
            test: 0.05,
            seed: 0,
        }
    }
}

/// Shard sizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputConfig {
    /// Documents per shard.
    pub shard_docs: usize,
    /// zstd level of the shards.
    pub zstd_level: i32,
}

impl Default for OutputConfig {
    fn default() -> Self {
        Self {
            shard_docs: 50_000,
            zstd_level: 3,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_is_named() {
        let err = Config::from_toml("[dedup]\nthreshhold = 0.4\n").unwrap_err();
        assert!(err.to_string().contains("threshhold"), "{err}");
    }

    #[test]
    fn bands_must_divide_permutations() {
        let err = Config::from_toml("[dedup]\nbands = 7\n").unwrap_err();
        assert!(err.to_string().contains("multiple"), "{err}");
    }

    #[test]
    fn the_example_config_holds_the_defaults() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/configs/corpus.toml"
        );
        let text = std::fs::read_to_string(path).unwrap();
        assert_eq!(Config::from_toml(&text).unwrap(), Config::default());
    }

    #[test]
    fn defaults_round_trip_through_toml() {
        let text = toml::to_string(&Config::default()).unwrap();
        assert_eq!(Config::from_toml(&text).unwrap(), Config::default());
    }
}

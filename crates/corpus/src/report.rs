//! The corpus report: every input document accounted for, as `report.json` and `report.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// How many example documents each drop reason keeps.
pub const EXAMPLES_PER_REASON: usize = 3;
/// Characters of an example's text kept in the report.
const EXAMPLE_CHARS: usize = 240;

/// An example of a dropped document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// The document's id.
    pub id: String,
    /// The start of its text.
    pub text: String,
    /// More about the drop (the parse error, the duplicate's representative).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// Documents dropped for one reason.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dropped {
    /// How many.
    pub count: u64,
    /// The first few, in input order.
    pub examples: Vec<Example>,
}

/// One duplicate cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    /// The kept document's id (or `earlier corpus` for `--dedup-against`).
    pub representative: String,
    /// Members including the representative.
    pub size: u64,
    /// Ids of the first few dropped members.
    pub members: Vec<String>,
}

/// De-duplication figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Duplicates {
    /// Clusters with more than one member.
    pub clusters: u64,
    /// The largest clusters.
    pub largest: Vec<Cluster>,
}

/// A bucket of the length histogram.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LengthBucket {
    /// Smallest length in characters (inclusive).
    pub min_chars: u64,
    /// Largest length (exclusive).
    pub max_chars: u64,
    /// Kept documents in the bucket.
    pub docs: u64,
}

/// Files seen.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Files {
    /// Files read.
    pub read: u64,
    /// Files skipped, with the reason.
    pub skipped: Vec<crate::read::SkippedFile>,
    /// Files that could not be read (non-strict runs go on).
    pub errors: Vec<String>,
    /// Documents decoded with replacement characters.
    pub lossy_utf8: u64,
    /// Documents cut at `input.max_doc_bytes`.
    pub truncated: u64,
}

/// What one kind of source (a format: `html`, `warc`, `wet`, ...) contributed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceKind {
    /// Files read as this kind.
    pub files: u64,
    /// Documents read from them (including malformed records).
    pub docs_in: u64,
    /// Records that could not be parsed.
    pub malformed: u64,
    /// Documents kept before de-duplication.
    pub kept: u64,
}

/// The whole report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Documents read (including malformed records).
    pub docs_in: u64,
    /// Documents written.
    pub docs_out: u64,
    /// Dropped documents by reason; `docs_in == docs_out + sum(count)`.
    pub dropped: BTreeMap<String, Dropped>,
    /// Kept documents per split.
    pub splits: BTreeMap<String, u64>,
    /// Kept documents per language.
    pub languages: BTreeMap<String, u64>,
    /// Languages of all readable documents before the language filter.
    pub languages_in: BTreeMap<String, u64>,
    /// Redactions per kind.
    pub redactions: BTreeMap<String, u64>,
    /// Duplicate clusters.
    pub duplicates: Duplicates,
    /// Kept documents by length (powers of two).
    pub length_histogram: Vec<LengthBucket>,
    /// Files and documents per source kind (input format).
    #[serde(default)]
    pub sources: BTreeMap<String, SourceKind>,
    /// Files.
    pub files: Files,
    /// Bytes of input files on disk.
    pub bytes_in: u64,
    /// Characters of kept text.
    pub chars_out: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
}

impl Report {
    /// Counts a dropped document, keeping the first few as examples.
    pub fn drop_doc(&mut self, reason: &str, id: &str, text: &str, detail: String) {
        let d = self.dropped.entry(reason.to_owned()).or_default();
        d.count += 1;
        if d.examples.len() < EXAMPLES_PER_REASON {
            d.examples.push(Example {
                id: id.to_owned(),
                text: snippet(text),
                detail,
            });
        }
    }

    /// Counts a kept document in the length histogram.
    pub fn count_length(&mut self, chars: u64) {
        let b = if chars == 0 {
            0
        } else {
            64 - chars.leading_zeros() as usize
        };
        while self.length_histogram.len() <= b {
            let i = self.length_histogram.len() as u32;
            let min = if i == 0 { 0 } else { 1u64 << (i - 1) };
            self.length_histogram.push(LengthBucket {
                min_chars: min,
                max_chars: 1u64 << i,
                docs: 0,
            });
        }
        self.length_histogram[b].docs += 1;
    }

    /// Documents dropped for any reason.
    pub fn total_dropped(&self) -> u64 {
        self.dropped.values().map(|d| d.count).sum()
    }

    /// Whether every input document is accounted for.
    pub fn balanced(&self) -> bool {
        self.docs_in == self.docs_out + self.total_dropped()
    }

    /// Renders the report as Markdown.
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# Corpus report\n");
        let pct = |n: u64| {
            if self.docs_in == 0 {
                0.0
            } else {
                100.0 * n as f64 / self.docs_in as f64
            }
        };
        let _ = writeln!(s, "| | documents | share |\n| --- | ---: | ---: |");
        let _ = writeln!(s, "| read | {} | 100% |", self.docs_in);
        let _ = writeln!(
            s,
            "| kept | {} | {:.1}% |",
            self.docs_out,
            pct(self.docs_out)
        );
        let _ = writeln!(
            s,
            "| dropped | {} | {:.1}% |",
            self.total_dropped(),
            pct(self.total_dropped())
        );
        let _ = writeln!(
            s,
            "\nEvery document is accounted for: {} read = {} kept + {} dropped{}.\n",
            self.docs_in,
            self.docs_out,
            self.total_dropped(),
            if self.balanced() { "" } else { " (MISMATCH)" }
        );
        let _ = writeln!(
            s,
            "{} files read ({:.1} MB), {} skipped, {} unreadable; {} documents decoded lossily, {} truncated; {:.1} s.\n",
            self.files.read,
            self.bytes_in as f64 / 1e6,
            self.files.skipped.len(),
            self.files.errors.len(),
            self.files.lossy_utf8,
            self.files.truncated,
            self.seconds
        );
        let _ = writeln!(
            s,
            "## Sources\n\n| kind | files | documents read | malformed | kept before de-duplication |\n| --- | ---: | ---: | ---: | ---: |"
        );
        for (k, v) in &self.sources {
            let _ = writeln!(
                s,
                "| {k} | {} | {} | {} | {} |",
                v.files, v.docs_in, v.malformed, v.kept
            );
        }
        let _ = writeln!(s, "\n## Splits\n\n| split | documents |\n| --- | ---: |");
        for (k, v) in &self.splits {
            let _ = writeln!(s, "| {k} | {v} |");
        }
        let _ = writeln!(
            s,
            "\n## Dropped, by reason\n\n| reason | documents | share |\n| --- | ---: | ---: |"
        );
        for (k, d) in &self.dropped {
            let _ = writeln!(s, "| `{k}` | {} | {:.2}% |", d.count, pct(d.count));
        }
        for (k, d) in &self.dropped {
            let _ = writeln!(s, "\n### `{k}`\n");
            for e in &d.examples {
                let detail = if e.detail.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", e.detail)
                };
                let _ = writeln!(s, "- `{}`{}: {}", e.id, detail, quote(&e.text));
            }
        }
        let _ = writeln!(
            s,
            "\n## Duplicates\n\n{} clusters with more than one member.\n",
            self.duplicates.clusters
        );
        if !self.duplicates.largest.is_empty() {
            let _ = writeln!(
                s,
                "| kept | size | dropped members (first few) |\n| --- | ---: | --- |"
            );
            for c in &self.duplicates.largest {
                let _ = writeln!(
                    s,
                    "| `{}` | {} | {} |",
                    c.representative,
                    c.size,
                    c.members
                        .iter()
                        .map(|m| format!("`{m}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        let _ = writeln!(
            s,
            "\n## Languages\n\n| language | read | kept |\n| --- | ---: | ---: |"
        );
        let mut langs: Vec<_> = self.languages_in.iter().collect();
        langs.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (k, v) in langs {
            let _ = writeln!(
                s,
                "| {k} | {v} | {} |",
                self.languages.get(k).copied().unwrap_or(0)
            );
        }
        let _ = writeln!(s, "\n## Redactions\n\n| kind | count |\n| --- | ---: |");
        for (k, v) in &self.redactions {
            let _ = writeln!(s, "| {k} | {v} |");
        }
        let _ = writeln!(
            s,
            "\n## Length of kept documents (characters)\n\n| from | to | documents |\n| ---: | ---: | ---: |"
        );
        for b in self.length_histogram.iter().filter(|b| b.docs > 0) {
            let _ = writeln!(s, "| {} | {} | {} |", b.min_chars, b.max_chars, b.docs);
        }
        if !self.files.skipped.is_empty() || !self.files.errors.is_empty() {
            let _ = writeln!(s, "\n## Files not read\n");
            for f in self.files.skipped.iter().take(50) {
                let _ = writeln!(s, "- `{}`: {}", f.source, f.reason);
            }
            if self.files.skipped.len() > 50 {
                let _ = writeln!(s, "- ... and {} more", self.files.skipped.len() - 50);
            }
            for e in &self.files.errors {
                let _ = writeln!(s, "- error: {e}");
            }
        }
        s
    }

    /// Adds another report's counts into this one (for `duet corpus merge`).
    pub fn absorb(&mut self, other: &Report) {
        self.docs_in += other.docs_in;
        self.bytes_in += other.bytes_in;
        for (k, d) in &other.dropped {
            let e = self.dropped.entry(k.clone()).or_default();
            e.count += d.count;
            for ex in &d.examples {
                if e.examples.len() < EXAMPLES_PER_REASON {
                    e.examples.push(ex.clone());
                }
            }
        }
        for (k, v) in &other.languages_in {
            *self.languages_in.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.redactions {
            *self.redactions.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.sources {
            let e = self.sources.entry(k.clone()).or_default();
            e.files += v.files;
            e.docs_in += v.docs_in;
            e.malformed += v.malformed;
            e.kept += v.kept;
        }
        self.files.read += other.files.read;
        self.files
            .skipped
            .extend(other.files.skipped.iter().cloned());
        self.files.errors.extend(other.files.errors.iter().cloned());
        self.files.lossy_utf8 += other.files.lossy_utf8;
        self.files.truncated += other.files.truncated;
    }
}

/// The start of a text on one line.
fn snippet(text: &str) -> String {
    let mut s: String = text.chars().take(EXAMPLE_CHARS).collect();
    if text.chars().count() > EXAMPLE_CHARS {
        s.push('…');
    }
    s
}

/// A text made safe for one Markdown line.
fn quote(text: &str) -> String {
    format!("“{}”", text.replace('\n', " ⏎ ").replace('|', "\\|"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_powers_of_two() {
        let mut r = Report::default();
        for n in [0, 1, 2, 3, 4, 1000] {
            r.count_length(n);
        }
        let docs: Vec<u64> = r.length_histogram.iter().map(|b| b.docs).collect();
        assert_eq!(docs, [1, 1, 2, 1, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(
            (
                r.length_histogram[10].min_chars,
                r.length_histogram[10].max_chars
            ),
            (512, 1024)
        );
    }

    #[test]
    fn examples_are_capped_and_markdown_balances() {
        let mut r = Report {
            docs_in: 5,
            docs_out: 1,
            ..Default::default()
        };
        for i in 0..4 {
            r.drop_doc("length.too_few_chars", &format!("d{i}"), "x", String::new());
        }
        assert_eq!(r.dropped["length.too_few_chars"].examples.len(), 3);
        assert!(r.balanced());
        assert!(r.to_markdown().contains("5 read = 1 kept + 4 dropped."));
    }
}

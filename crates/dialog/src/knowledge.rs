//! Answers from documents: a project's `knowledge/` folder (Markdown, text, HTML) cut into
//! passages under their headings, embedded with a sentence-embedding model (MiniLM) at
//! `duet dialog train`, and searched by cosine similarity for the user's question. Without a
//! model (`DuetKnowledge` with no `model:`), passages are found by their words alone: ranked by
//! BM25 and scored by the share of the question's word weight (IDF) they contain.

use std::path::{Path, PathBuf};

use candle_core::Device;
use duet_model::embed::SentenceEmbedder;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result, io};
use crate::project::Project;

/// One passage of a document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Passage {
    /// The file, relative to `knowledge/`.
    pub source: String,
    /// The headings above it, outermost first, joined by " > ".
    pub heading: String,
    /// The passage.
    pub text: String,
}

/// The `DuetKnowledge` component of `config.yml`.
#[derive(Debug, Clone, PartialEq)]
pub struct KnowledgeChoice {
    /// The sentence-embedding model directory; `None` searches by words alone.
    pub model: Option<PathBuf>,
    /// Below this score (cosine similarity, or word coverage without a model) a passage does
    /// not answer.
    pub min_score: f64,
}

impl KnowledgeChoice {
    /// Reads the choice from the project's `config.yml`.
    pub fn of(p: &Project) -> Option<Self> {
        let c = p
            .config
            .pipeline
            .iter()
            .find(|c| c.get("name").and_then(Value::as_str) == Some("DuetKnowledge"))?;
        let model = c.get("model").and_then(Value::as_str).map(|m| {
            let m = PathBuf::from(m);
            if m.is_absolute() { m } else { p.dir.join(m) }
        });
        Some(Self {
            model,
            min_score: c.get("min_score").and_then(Value::as_f64).unwrap_or(0.3),
        })
    }
}

/// Cuts a document's text into passages: a new one at each heading (`#` lines) and blank line;
/// passages over `max_words` are split.
pub fn passages(source: &str, text: &str, max_words: usize) -> Vec<Passage> {
    let mut out = Vec::new();
    let mut headings: Vec<(usize, String)> = Vec::new();
    let mut para: Vec<&str> = Vec::new();
    let flush = |para: &mut Vec<&str>, headings: &[(usize, String)], out: &mut Vec<Passage>| {
        let joined = para.join(" ");
        para.clear();
        let words: Vec<&str> = joined.split_whitespace().collect();
        let heading = headings
            .iter()
            .map(|(_, h)| h.as_str())
            .collect::<Vec<_>>()
            .join(" > ");
        for chunk in words.chunks(max_words.max(1)) {
            out.push(Passage {
                source: source.to_owned(),
                heading: heading.clone(),
                text: chunk.join(" "),
            });
        }
    };
    for line in text.lines() {
        let l = line.trim();
        if let Some(h) = l.strip_prefix('#') {
            flush(&mut para, &headings, &mut out);
            let level = 1 + h.chars().take_while(|&c| c == '#').count();
            let title = h.trim_start_matches('#').trim().to_owned();
            headings.retain(|(lv, _)| *lv < level);
            headings.push((level, title));
        } else if l.is_empty() {
            flush(&mut para, &headings, &mut out);
        } else {
            para.push(l);
        }
    }
    flush(&mut para, &headings, &mut out);
    out
}

pub use crate::project::files_under;

/// The passages of every document under `dir`, in file order.
pub fn read_dir(dir: &Path) -> Result<Vec<Passage>> {
    let mut out = Vec::new();
    for f in files_under(dir)? {
        let ext = f
            .extension()
            .map(|e| e.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        let raw = || std::fs::read_to_string(&f).map_err(io(&f));
        let text = match ext.as_str() {
            "md" | "markdown" | "txt" => raw()?,
            "html" | "htm" => {
                let e = duet_corpus::read::html::extract(&raw()?);
                match e.title {
                    Some(t) => format!("# {t}\n\n{}", e.text),
                    None => e.text,
                }
            }
            _ => continue,
        };
        let rel = f.strip_prefix(dir).unwrap_or(&f).display().to_string();
        out.extend(passages(&rel, &text, 120));
    }
    Ok(out)
}

/// A searchable knowledge base.
pub struct Knowledge {
    /// The passages.
    pub passages: Vec<Passage>,
    vectors: Vec<Vec<f32>>,
    /// Each passage's content words (headings included), for BM25 and word coverage.
    terms: Vec<Vec<String>>,
    embedder: Option<SentenceEmbedder>,
    /// Below this score nothing answers.
    pub min_score: f64,
    /// The embedding model's directory (`None`: word search).
    pub model: Option<PathBuf>,
}

/// What the knowledge base keeps on disk beside the vectors.
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    #[serde(default)]
    model: Option<PathBuf>,
    min_score: f64,
    passages: Vec<Passage>,
    vectors: Vec<Vec<f32>>,
}

fn emb(e: duet_model::Error) -> Error {
    Error::Model(format!("knowledge base embeddings: {e}"))
}

/// The text that is embedded for a passage: its headings and words.
fn embedded_text(p: &Passage) -> String {
    if p.heading.is_empty() {
        p.text.clone()
    } else {
        format!("{}: {}", p.heading, p.text)
    }
}

impl Knowledge {
    /// Reads `knowledge/` and embeds every passage.
    pub fn build(p: &Project, choice: &KnowledgeChoice) -> Result<Option<Self>> {
        let dir = p.dir.join("knowledge");
        if !dir.is_dir() {
            return Ok(None);
        }
        let passages = read_dir(&dir)?;
        let (embedder, vectors) = match &choice.model {
            Some(m) => {
                let e = SentenceEmbedder::load(m, &Device::Cpu).map_err(emb)?;
                let texts: Vec<String> = passages.iter().map(embedded_text).collect();
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                let vectors = e.embed(&refs, 16).map_err(emb)?;
                (Some(e), vectors)
            }
            None => (None, Vec::new()),
        };
        Ok(Some(Self {
            terms: terms_of(&passages),
            passages,
            vectors,
            embedder,
            min_score: choice.min_score,
            model: choice.model.clone(),
        }))
    }

    /// Writes `knowledge.json` into `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let f = dir.join("knowledge.json");
        let s = Stored {
            model: self.model.clone(),
            min_score: self.min_score,
            passages: self.passages.clone(),
            vectors: self.vectors.clone(),
        };
        std::fs::write(&f, serde_json::to_vec(&s)?).map_err(io(&f))
    }

    /// Reads a knowledge base saved in `dir`, if there is one.
    pub fn load(dir: &Path) -> Result<Option<Self>> {
        let f = dir.join("knowledge.json");
        if !f.is_file() {
            return Ok(None);
        }
        let s: Stored = serde_json::from_slice(&std::fs::read(&f).map_err(io(&f))?)?;
        let embedder = match &s.model {
            Some(m) => Some(SentenceEmbedder::load(m, &Device::Cpu).map_err(emb)?),
            None => None,
        };
        Ok(Some(Self {
            terms: terms_of(&s.passages),
            passages: s.passages,
            vectors: s.vectors,
            embedder,
            min_score: s.min_score,
            model: s.model,
        }))
    }

    /// The `k` passages that best answer `query`, best first, each with its score (what
    /// `min_score` is compared with): cosine similarity to the query, or without a model the
    /// share of the query's word weight the passage contains.
    pub fn search(&self, query: &str, k: usize) -> Result<Vec<(&Passage, f64)>> {
        let Some(embedder) = &self.embedder else {
            let lexical = bm25(&self.terms, query);
            let cover = coverage(&self.terms, query);
            let mut order: Vec<usize> = (0..self.terms.len()).collect();
            order.sort_by(|&a, &b| lexical[b].total_cmp(&lexical[a]));
            return Ok(order
                .into_iter()
                .take(k)
                .map(|i| (&self.passages[i], cover[i]))
                .collect());
        };
        let q = embedder
            .embed(&[query], 1)
            .map_err(emb)?
            .pop()
            .unwrap_or_default();
        let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        let qn = norm(&q);
        let cos: Vec<f64> = self
            .vectors
            .iter()
            .map(|v| {
                let dot: f32 = v.iter().zip(&q).map(|(a, b)| a * b).sum();
                f64::from(dot / (qn * norm(v)))
            })
            .collect();
        let lexical = bm25(&self.terms, query);
        // Dense similarity plus a fifth of the BM25 score relative to the best one: exact rare
        // words break ties between paraphrases.
        let top = lexical.iter().copied().fold(0.0, f64::max);
        let fused: Vec<f64> = (0..cos.len())
            .map(|i| {
                cos[i]
                    + if top > 0.0 {
                        0.2 * lexical[i] / top
                    } else {
                        0.0
                    }
            })
            .collect();
        let mut order: Vec<usize> = (0..cos.len()).collect();
        order.sort_by(|&a, &b| fused[b].total_cmp(&fused[a]));
        Ok(order
            .into_iter()
            .take(k)
            .map(|i| (&self.passages[i], cos[i]))
            .collect())
    }
}

/// English function words, left out of BM25.
const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "how",
    "i", "if", "in", "is", "it", "me", "my", "of", "on", "or", "our", "so", "that", "the", "this",
    "to", "we", "what", "when", "where", "which", "who", "will", "with", "you", "your", "have",
    "has", "there", "it's", "not", "no", "yes", "any", "all", "get", "us", "was", "its",
];

/// Lower-cased content words of two or more letters or digits, plural `s` dropped ("cards"
/// matches "card").
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 2)
        .map(str::to_lowercase)
        .filter(|w| !STOPWORDS.contains(&w.as_str()))
        .map(|w| match w.strip_suffix('s') {
            Some(stem) if stem.chars().count() >= 3 && !stem.ends_with('s') => stem.to_owned(),
            _ => w,
        })
        .collect()
}

/// The content words of each passage, its headings included (what is searched by words).
pub fn terms_of(passages: &[Passage]) -> Vec<Vec<String>> {
    passages.iter().map(|p| words(&embedded_text(p))).collect()
}

/// For each document (its content words, as [`terms_of`] gives them), the share of the query's
/// distinct content words it contains, each word weighted by its inverse document frequency (a
/// passage holding the query's rare words scores near 1, one holding only its common words near
/// 0).
pub fn coverage(toks: &[Vec<String>], query: &str) -> Vec<f64> {
    let n = toks.len() as f64;
    let mut q = words(query);
    q.sort();
    q.dedup();
    let idf: Vec<f64> = q
        .iter()
        .map(|w| {
            let df = toks.iter().filter(|t| t.contains(w)).count() as f64;
            ((n + 1.0) / (df + 1.0)).ln() + 1.0
        })
        .collect();
    let total: f64 = idf.iter().sum();
    toks.iter()
        .map(|t| {
            if total == 0.0 {
                return 0.0;
            }
            q.iter()
                .zip(&idf)
                .filter(|(w, _)| t.contains(*w))
                .map(|(_, i)| i)
                .sum::<f64>()
                / total
        })
        .collect()
}

/// Okapi BM25 (k1 = 1.2, b = 0.75) of each document (its content words, as [`terms_of`]
/// gives them) for `query`.
pub fn bm25(toks: &[Vec<String>], query: &str) -> Vec<f64> {
    let n = toks.len() as f64;
    let avg = toks.iter().map(Vec::len).sum::<usize>() as f64 / n.max(1.0);
    let mut q = words(query);
    q.sort();
    q.dedup();
    toks.iter()
        .map(|d| {
            let len = d.len() as f64;
            q.iter()
                .map(|w| {
                    let tf = d.iter().filter(|x| *x == w).count() as f64;
                    if tf == 0.0 {
                        return 0.0;
                    }
                    let df = toks.iter().filter(|t| t.contains(w)).count() as f64;
                    let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
                    idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * len / avg.max(1.0)))
                })
                .sum()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passages_follow_headings_and_paragraphs() {
        let md = "# Shipping\n\n## Times\nOrders ship\nin a day.\n\nExpress takes one.\n\n# Returns\nThirty days.\n";
        let p = passages("faq.md", md, 3);
        let got: Vec<(&str, &str)> = p
            .iter()
            .map(|p| (p.heading.as_str(), p.text.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("Shipping > Times", "Orders ship in"),
                ("Shipping > Times", "a day."),
                ("Shipping > Times", "Express takes one."),
                ("Returns", "Thirty days."),
            ]
        );
    }
}

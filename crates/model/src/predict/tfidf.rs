//! The fast baseline: TF-IDF features over word 1–2-grams and in-word character 2–5-grams
//! (scikit-learn's `TfidfVectorizer` with `analyzer="word"` and `"char_wb"`, sublinear term
//! frequency, smoothed idf, each part L2-normalised), and multinomial logistic regression with
//! L2 regularisation. This is the fitted model: features, prediction, saving and loading;
//! `duet-train` fits it (L-BFGS on sparse rows).

use std::collections::HashMap;
use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::IoContext;
use crate::{Error, Result};

/// Feature and training settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TfidfConfig {
    /// Word n-gram range (inclusive); `[0, 0]` turns word features off.
    pub word_ngrams: [usize; 2],
    /// In-word character n-gram range; `[0, 0]` turns them off.
    pub char_ngrams: [usize; 2],
    /// Terms in fewer documents are dropped.
    pub min_df: usize,
    /// Use `1 + ln(tf)` instead of raw counts.
    pub sublinear_tf: bool,
    /// Inverse regularisation strength (scikit-learn's `C`).
    pub c: f64,
    /// L-BFGS iterations at most.
    pub max_iter: usize,
    /// Stop when no gradient entry of the mean loss exceeds this (scikit-learn's `tol`).
    pub tol: f64,
    /// Weigh classes by inverse frequency (`balanced`).
    pub balanced: bool,
}

impl Default for TfidfConfig {
    fn default() -> Self {
        Self {
            word_ngrams: [1, 2],
            char_ngrams: [2, 5],
            min_df: 1,
            sublinear_tf: true,
            c: 10.0,
            max_iter: 300,
            tol: 1e-4,
            balanced: false,
        }
    }
}

/// A sparse row: (feature, value), sorted by feature.
pub type SparseRow = Vec<(u32, f32)>;

/// Words as scikit-learn's default token pattern finds them: runs of two or more word characters.
fn tokens(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        if c.is_alphanumeric() || c == '_' {
            start.get_or_insert(i);
        } else if let Some(s) = start.take()
            && text[s..i].chars().count() >= 2
        {
            out.push(&text[s..i]);
        }
    }
    if let Some(s) = start
        && text[s..].chars().count() >= 2
    {
        out.push(&text[s..]);
    }
    out
}

impl TfidfConfig {
    /// The terms of a document, with counts, before the vocabulary filters them.
    pub fn terms(&self, text: &str) -> HashMap<String, u32> {
        let lower = text.to_lowercase();
        let mut counts: HashMap<String, u32> = HashMap::new();
        if self.word_ngrams[1] > 0 {
            let toks = tokens(&lower);
            for n in self.word_ngrams[0].max(1)..=self.word_ngrams[1] {
                for g in toks.windows(n) {
                    *counts.entry(format!("w {}", g.join(" "))).or_default() += 1;
                }
            }
        }
        if self.char_ngrams[1] > 0 {
            let shortest = self.char_ngrams[0].max(1);
            for word in lower.split_whitespace() {
                let padded: Vec<char> = std::iter::once(' ')
                    .chain(word.chars())
                    .chain(std::iter::once(' '))
                    .collect();
                for n in shortest..=self.char_ngrams[1] {
                    if padded.len() < n {
                        // A padded word shorter than the shortest n-gram counts once, whole,
                        // as in scikit-learn's `char_wb`.
                        if n == shortest {
                            let mut key = String::with_capacity(2 + 4 * padded.len());
                            key.push_str("c ");
                            key.extend(padded.iter());
                            *counts.entry(key).or_default() += 1;
                        }
                        break;
                    }
                    for g in padded.windows(n) {
                        let mut key = String::with_capacity(2 + 4 * n);
                        key.push_str("c ");
                        key.extend(g.iter());
                        *counts.entry(key).or_default() += 1;
                    }
                }
            }
        }
        counts
    }
}

/// A fitted TF-IDF + logistic-regression classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TfidfClassifier {
    /// The settings it was fitted with.
    pub config: TfidfConfig,
    /// Class names.
    pub labels: Vec<String>,
    /// Terms in feature order (`w ...` word n-grams, `c ...` character n-grams).
    pub terms: Vec<String>,
    /// Inverse document frequency per feature.
    pub idf: Vec<f32>,
    /// Weights, `labels.len() × terms.len()`, row-major.
    pub weights: Vec<f32>,
    /// One intercept per class.
    pub bias: Vec<f32>,
    #[serde(skip)]
    index: HashMap<String, u32>,
}

impl TfidfClassifier {
    /// An unfitted classifier over a vocabulary: every weight zero (uniform probabilities).
    pub fn new(
        config: TfidfConfig,
        labels: Vec<String>,
        terms: Vec<String>,
        idf: Vec<f32>,
    ) -> Self {
        let mut m = Self {
            weights: vec![0.0; labels.len() * terms.len()],
            bias: vec![0.0; labels.len()],
            config,
            labels,
            terms,
            idf,
            index: HashMap::new(),
        };
        m.reindex();
        m
    }

    fn reindex(&mut self) {
        self.index = self
            .terms
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
    }

    /// The TF-IDF row of a document's term counts: each part (word, character) L2-normalised.
    pub fn row(&self, counts: HashMap<String, u32>) -> SparseRow {
        let mut row: SparseRow = counts
            .into_iter()
            .filter_map(|(t, c)| {
                let i = *self.index.get(&t)?;
                let tf = if self.config.sublinear_tf {
                    1.0 + (c as f32).ln()
                } else {
                    c as f32
                };
                Some((i, tf * self.idf[i as usize]))
            })
            .collect();
        row.sort_unstable_by_key(|x| x.0);
        // Normalise the word block and the character block apart, as scikit-learn's
        // FeatureUnion of two vectorizers would.
        for prefix in ["c ", "w "] {
            let sq: f32 = row
                .iter()
                .filter(|(i, _)| self.terms[*i as usize].starts_with(prefix))
                .map(|(_, v)| v * v)
                .sum();
            if sq > 0.0 {
                let inv = 1.0 / sq.sqrt();
                for (i, v) in row.iter_mut() {
                    if self.terms[*i as usize].starts_with(prefix) {
                        *v *= inv;
                    }
                }
            }
        }
        row
    }

    /// Class probabilities per text.
    pub fn predict_proba(&self, texts: &[&str]) -> Vec<Vec<f32>> {
        texts
            .par_iter()
            .map(|t| {
                let row = self.row(self.config.terms(t));
                let mut z = scores(&row, &self.weights, &self.bias, self.terms.len());
                softmax_in_place(&mut z);
                z.into_iter().map(|v| v as f32).collect()
            })
            .collect()
    }

    /// Saves as `dir/tfidf.json` with a `config.json` that names the model type and labels.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).at(dir)?;
        let p = dir.join("tfidf.json");
        std::fs::write(&p, serde_json::to_vec(self)?).at(&p)?;
        let cfg = serde_json::json!({"model_type": "duet-tfidf", "architectures": ["TfidfLogisticRegression"], "id2label": self.labels.iter().enumerate().map(|(i, l)| (i.to_string(), l.clone())).collect::<std::collections::BTreeMap<_, _>>(), "num_features": self.terms.len()});
        let p = dir.join("config.json");
        std::fs::write(&p, serde_json::to_vec_pretty(&cfg)?).at(&p)
    }

    /// Loads `dir/tfidf.json`.
    pub fn load(dir: &Path) -> Result<Self> {
        let p = dir.join("tfidf.json");
        let bytes = std::fs::read(&p).at(&p)?;
        let mut m: Self = serde_json::from_slice(&bytes).map_err(|e| Error::Config {
            path: p.clone(),
            message: e.to_string(),
        })?;
        if m.weights.len() != m.labels.len() * m.terms.len()
            || m.idf.len() != m.terms.len()
            || m.bias.len() != m.labels.len()
        {
            return Err(Error::Config {
                path: p,
                message: "weights, bias, idf and terms do not fit together".into(),
            });
        }
        m.reindex();
        Ok(m)
    }
}

/// `z_c = W_c · x + b_c`.
pub fn scores(row: &SparseRow, w: &[f32], b: &[f32], f: usize) -> Vec<f64> {
    b.iter()
        .enumerate()
        .map(|(c, &bc)| {
            f64::from(bc)
                + row
                    .iter()
                    .map(|&(i, v)| f64::from(w[c * f + i as usize]) * f64::from(v))
                    .sum::<f64>()
        })
        .collect()
}

/// Softmax of scores, in place.
pub fn softmax_in_place(z: &mut [f64]) {
    let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let s: f64 = z
        .iter_mut()
        .map(|v| {
            *v = (*v - m).exp();
            *v
        })
        .sum();
    z.iter_mut().for_each(|v| *v /= s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_follow_the_default_pattern() {
        assert_eq!(
            tokens("I'm a WIN-ner: 100% free!"),
            ["WIN", "ner", "100", "free"]
        );
        let c = TfidfConfig {
            word_ngrams: [0, 0],
            char_ngrams: [2, 3],
            ..Default::default()
        };
        let t = c.terms("ab");
        assert_eq!(t.len(), 5, "{t:?}"); // " a", "ab", "b ", " ab", "ab "
        // A word shorter than the shortest n-gram counts once, whole.
        let c = TfidfConfig {
            word_ngrams: [0, 0],
            char_ngrams: [4, 5],
            ..Default::default()
        };
        let t = c.terms("a ok");
        assert_eq!(t.len(), 2, "{t:?}"); // " a ", " ok "
        assert_eq!(t.get("c  a "), Some(&1), "{t:?}");
    }

    #[test]
    fn a_file_that_does_not_fit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = TfidfClassifier::new(
            TfidfConfig::default(),
            vec!["a".into(), "b".into()],
            vec!["w x".into()],
            vec![1.0],
        );
        m.save(dir.path()).unwrap();
        assert_eq!(
            TfidfClassifier::load(dir.path())
                .unwrap()
                .predict_proba(&["x"]),
            [[0.5, 0.5]]
        );
        m.weights.pop();
        m.save(dir.path()).unwrap();
        let e = TfidfClassifier::load(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("tfidf.json: weights, bias, idf and terms do not fit together"),
            "{e}"
        );
    }
}

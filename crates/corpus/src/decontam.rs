//! Decontamination: documents that share a long n-gram with a registered evaluation set are
//! dropped, so that later evaluations on that set stay honest (GPT-3's 13-gram rule).

use std::collections::{BTreeSet, HashSet};

use xxhash_rust::xxh3::xxh3_64;

use crate::text::{normalize_word, words};

/// The n-grams of the evaluation sets, hashed.
#[derive(Debug, Clone, Default)]
pub struct Decontaminator {
    ngram: usize,
    /// N-gram lengths in use: `ngram`, and the full length of evaluation items shorter than it.
    lengths: BTreeSet<usize>,
    grams: HashSet<u64>,
}

impl Decontaminator {
    /// An empty set for n-grams of `ngram` words.
    pub fn new(ngram: usize) -> Self {
        Self {
            ngram,
            lengths: BTreeSet::new(),
            grams: HashSet::new(),
        }
    }

    /// Registers one evaluation item. Items shorter than `ngram` words register as a whole.
    pub fn add(&mut self, text: &str) {
        let w = norm_words(text);
        if w.is_empty() {
            return;
        }
        let n = self.ngram.min(w.len());
        self.lengths.insert(n);
        for g in w.windows(n) {
            self.grams.insert(hash(g));
        }
    }

    /// Number of distinct n-grams registered.
    pub fn len(&self) -> usize {
        self.grams.len()
    }

    /// Whether nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.grams.is_empty()
    }

    /// Whether `text` shares an n-gram with an evaluation item.
    pub fn contaminated(&self, text: &str) -> bool {
        if self.grams.is_empty() {
            return false;
        }
        let w = norm_words(text);
        self.lengths
            .iter()
            .any(|&n| w.len() >= n && w.windows(n).any(|g| self.grams.contains(&hash(g))))
    }
}

/// Words lower-cased without surrounding punctuation; punctuation-only words dropped.
fn norm_words(text: &str) -> Vec<String> {
    words(text)
        .into_iter()
        .map(normalize_word)
        .filter(|w| !w.is_empty())
        .collect()
}

fn hash(g: &[String]) -> u64 {
    xxh3_64(g.join(" ").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_thirteen_gram_is_caught() {
        let mut d = Decontaminator::new(13);
        d.add("Question: what is the capital city of France and what river runs through it, please answer?");
        d.add("短问题");
        let leak =
            "Blog post. What is the capital city of France, and what river runs through it? Paris.";
        assert!(d.contaminated(leak));
        assert!(
            !d.contaminated("What is the capital city of Spain and what river runs through it?")
        );
        assert!(d.contaminated("这是一个短问题。"));
    }
}

//! MinHash signatures (Broder 1997) over character or word shingles, and the LSH band keys
//! that make candidate pairs.

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use crate::config::{DedupConfig, Shingle};
use crate::text::words;

/// Computes MinHash signatures with a seeded multiply-shift hash family.
#[derive(Debug, Clone)]
pub struct MinHasher {
    a: Vec<u64>,
    b: Vec<u64>,
    shingle: Shingle,
    ngram: usize,
    bands: usize,
}

/// SplitMix64: expands a seed into the hash family's parameters.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl MinHasher {
    /// A hasher for `cfg.num_perm` permutations seeded by `cfg.seed`.
    pub fn new(cfg: &DedupConfig) -> Self {
        let mut state = cfg.seed;
        let a = (0..cfg.num_perm)
            .map(|_| splitmix(&mut state) | 1)
            .collect();
        let b = (0..cfg.num_perm).map(|_| splitmix(&mut state)).collect();
        Self {
            a,
            b,
            shingle: cfg.shingle,
            ngram: cfg.ngram,
            bands: cfg.bands,
        }
    }

    /// Number of permutations (the signature's length).
    pub fn num_perm(&self) -> usize {
        self.a.len()
    }

    /// The 64-bit hashes of a text's shingles, each occurrence counted apart, sorted.
    pub fn shingles(&self, text: &str) -> Vec<u64> {
        let norm = normalize(text);
        let mut hashes = match self.shingle {
            Shingle::Char => {
                let bounds: Vec<usize> = norm
                    .char_indices()
                    .map(|(i, _)| i)
                    .chain([norm.len()])
                    .collect();
                let chars = bounds.len() - 1;
                if chars <= self.ngram {
                    vec![xxh3_64(norm.as_bytes())]
                } else {
                    (0..=chars - self.ngram)
                        .map(|i| xxh3_64(&norm.as_bytes()[bounds[i]..bounds[i + self.ngram]]))
                        .collect()
                }
            }
            Shingle::Word => {
                let w = words(&norm);
                if w.len() <= self.ngram {
                    vec![xxh3_64(w.join(" ").as_bytes())]
                } else {
                    w.windows(self.ngram)
                        .map(|g| xxh3_64(g.join(" ").as_bytes()))
                        .collect()
                }
            }
        };
        // The k-th occurrence of a shingle is an element of its own, so the sets compare as
        // multisets: long documents do not converge on the same set of common shingles.
        hashes.sort_unstable();
        let mut k = 0u64;
        for i in 0..hashes.len() {
            k = if i > 0 && hashes[i] == hashes[i - 1] {
                k + 1
            } else {
                0
            };
            if k > 0 {
                hashes[i] = xxh3_64_with_seed(&hashes[i].to_le_bytes(), k);
            }
        }
        hashes.sort_unstable();
        hashes.dedup();
        hashes
    }

    /// The MinHash signature of `text`: per permutation, the least hash of any shingle.
    pub fn signature(&self, text: &str) -> Vec<u32> {
        let mut sig = vec![u32::MAX; self.a.len()];
        for h in self.shingles(text) {
            for ((s, &a), &b) in sig.iter_mut().zip(&self.a).zip(&self.b) {
                let v = (a.wrapping_mul(h).wrapping_add(b) >> 32) as u32;
                *s = (*s).min(v);
            }
        }
        sig
    }

    /// One key per LSH band: documents sharing any band key are candidate duplicates.
    pub fn band_keys(&self, sig: &[u32]) -> Vec<u64> {
        let rows = sig.len() / self.bands;
        sig.chunks(rows)
            .enumerate()
            .map(|(band, chunk)| {
                let bytes: Vec<u8> = chunk.iter().flat_map(|v| v.to_le_bytes()).collect();
                xxh3_64_with_seed(&bytes, band as u64)
            })
            .collect()
    }
}

/// The share of positions where two signatures agree: an estimate of Jaccard similarity.
pub fn estimate_jaccard(a: &[u32], b: &[u32]) -> f64 {
    let same = a.iter().zip(b).filter(|(x, y)| x == y).count();
    same as f64 / a.len().max(1) as f64
}

/// Text as shingles see it: lower-cased, letters and digits only, other runs a single space.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    for c in text.chars() {
        if c.is_alphanumeric() {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.extend(c.to_lowercase());
        } else {
            space = true;
        }
    }
    out
}

/// The key of exact de-duplication: a hash of the normalised text.
pub fn exact_key(text: &str) -> u64 {
    xxh3_64(normalize(text).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jaccard(a: &[u64], b: &[u64]) -> f64 {
        let sa: std::collections::HashSet<_> = a.iter().collect();
        let sb: std::collections::HashSet<_> = b.iter().collect();
        sa.intersection(&sb).count() as f64 / sa.union(&sb).count() as f64
    }

    #[test]
    fn estimate_tracks_true_jaccard() {
        let h = MinHasher::new(&DedupConfig::default());
        let a = "The quick brown fox jumps over the lazy dog while the cat watches from the window sill.";
        let b = "The quick brown fox jumped over a lazy dog while the cat watched from the window.";
        let truth = jaccard(&h.shingles(a), &h.shingles(b));
        let est = estimate_jaccard(&h.signature(a), &h.signature(b));
        assert!((truth - est).abs() < 0.12, "truth {truth} estimate {est}");
    }

    #[test]
    fn normalisation_ignores_case_and_punctuation() {
        assert_eq!(exact_key("Hello, World!"), exact_key("hello   world"));
        assert_ne!(exact_key("hello world"), exact_key("hello word"));
    }

    #[test]
    fn identical_texts_share_every_band() {
        let h = MinHasher::new(&DedupConfig::default());
        let s = h.signature("床前明月光，疑是地上霜。");
        assert_eq!(
            h.band_keys(&s),
            h.band_keys(&h.signature("床前明月光 疑是地上霜"))
        );
        assert_eq!(s.len(), 128);
    }
}

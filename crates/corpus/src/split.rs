//! Deterministic train/validation/test split by a hash of the document id.

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::config::SplitConfig;

/// The three splits of a corpus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Training data.
    Train,
    /// Validation data (model selection, early stopping).
    Valid,
    /// Held-out test data.
    Test,
}

impl Split {
    /// Every split, in order.
    pub const ALL: [Split; 3] = [Split::Train, Split::Valid, Split::Test];

    /// Folder name in a corpus directory.
    pub fn name(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Valid => "valid",
            Self::Test => "test",
        }
    }

    /// The split's number in `dedup/order.bin`.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// Parses a split's name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// Which split a document goes to: the same id always lands in the same split.
pub fn assign(id: &str, cfg: &SplitConfig) -> Split {
    let u = (xxh3_64_with_seed(id.as_bytes(), cfg.seed) >> 11) as f64 / (1u64 << 53) as f64;
    if u < cfg.test {
        Split::Test
    } else if u < cfg.test + cfg.valid {
        Split::Valid
    } else {
        Split::Train
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_are_respected_and_stable() {
        let cfg = SplitConfig {
            valid: 0.1,
            test: 0.2,
            seed: 1,
        };
        let n = 20_000;
        let mut counts = [0usize; 3];
        for i in 0..n {
            counts[assign(&format!("doc-{i}"), &cfg) as usize] += 1;
        }
        assert!(
            (counts[1] as f64 / n as f64 - 0.1).abs() < 0.01,
            "{counts:?}"
        );
        assert!(
            (counts[2] as f64 / n as f64 - 0.2).abs() < 0.01,
            "{counts:?}"
        );
        assert_eq!(assign("doc-7", &cfg), assign("doc-7", &cfg));
    }
}

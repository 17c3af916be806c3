//! Masked-language-model masking as in BERT (Devlin et al. 2019): 15% of the non-special
//! positions are chosen; of those 80% become `[MASK]`, 10% a random token, 10% stay.

use rand::RngExt;

/// The label of positions that do not count in the loss (PyTorch's `ignore_index`).
pub const IGNORE_INDEX: i64 = -100;

/// Masking parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MaskConfig {
    /// Share of positions chosen.
    pub probability: f64,
    /// The `[MASK]` id.
    pub mask_id: u32,
    /// Vocabulary size, for random replacements.
    pub vocab_size: u32,
}

/// Masks `ids` in place; `special[i]` marks positions never chosen (CLS, SEP, padding).
/// Returns the labels: the original id where chosen, [`IGNORE_INDEX`] elsewhere.
pub fn mask_tokens(
    ids: &mut [u32],
    special: &[bool],
    cfg: &MaskConfig,
    rng: &mut impl RngExt,
) -> Vec<i64> {
    let mut labels = vec![IGNORE_INDEX; ids.len()];
    for (i, id) in ids.iter_mut().enumerate() {
        if special.get(i).copied().unwrap_or(false) || !rng.random_bool(cfg.probability) {
            continue;
        }
        labels[i] = i64::from(*id);
        let r: f64 = rng.random();
        if r < 0.8 {
            *id = cfg.mask_id;
        } else if r < 0.9 {
            *id = rng.random_range(0..cfg.vocab_size);
        }
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn proportions_follow_bert() {
        let mut rng = rand_pcg::Pcg32::seed_from_u64(3);
        let n = 100_000;
        let orig: Vec<u32> = (0..n).map(|i| 5 + (i % 50) as u32).collect();
        let mut ids = orig.clone();
        let mut special = vec![false; n];
        special[0] = true;
        let cfg = MaskConfig {
            probability: 0.15,
            mask_id: 1,
            vocab_size: 1000,
        };
        let labels = mask_tokens(&mut ids, &special, &cfg, &mut rng);
        assert_eq!(labels[0], IGNORE_INDEX);
        let chosen: Vec<usize> = (0..n).filter(|&i| labels[i] != IGNORE_INDEX).collect();
        let share = chosen.len() as f64 / n as f64;
        assert!((share - 0.15).abs() < 0.01, "{share}");
        let masked = chosen.iter().filter(|&&i| ids[i] == 1).count() as f64 / chosen.len() as f64;
        let kept =
            chosen.iter().filter(|&&i| ids[i] == orig[i]).count() as f64 / chosen.len() as f64;
        assert!((masked - 0.8).abs() < 0.02, "{masked}");
        assert!((kept - 0.1).abs() < 0.02 + 0.001, "{kept}");
        assert!(chosen.iter().all(|&i| labels[i] == i64::from(orig[i])));
    }
}

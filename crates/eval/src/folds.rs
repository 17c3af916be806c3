//! Stratified k-fold cross-validation: every fold keeps the label proportions, the assignment is
//! seeded, and results are summarised as mean ± standard deviation.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_pcg::Pcg32;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The fold of each example (0..k), stratified by `labels`.
pub fn stratified_folds(labels: &[usize], k: usize, seed: u64) -> Result<Vec<usize>> {
    if k < 2 {
        return Err(Error::Invalid(format!(
            "--folds must be at least 2, found {k}"
        )));
    }
    let mut by_class: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, &l) in labels.iter().enumerate() {
        by_class.entry(l).or_default().push(i);
    }
    let mut rng = Pcg32::seed_from_u64(seed);
    let mut fold = vec![0usize; labels.len()];
    // Deal each class's shuffled examples round-robin, continuing where the last class ended, so
    // fold sizes differ by at most one.
    let mut next = 0usize;
    for idx in by_class.values_mut() {
        idx.shuffle(&mut rng);
        for &i in idx.iter() {
            fold[i] = next % k;
            next += 1;
        }
    }
    Ok(fold)
}

/// Mean and (sample) standard deviation of a metric over folds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeanStd {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation.
    pub std: f64,
}

/// Summarises per-fold metric maps: each key's mean and standard deviation.
pub fn summarise(folds: &[BTreeMap<String, f64>]) -> BTreeMap<String, MeanStd> {
    let mut keys: Vec<&String> = folds.iter().flat_map(|f| f.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .map(|k| {
            let v: Vec<f64> = folds.iter().filter_map(|f| f.get(k).copied()).collect();
            let n = v.len() as f64;
            let mean = v.iter().sum::<f64>() / n;
            let var = if v.len() > 1 {
                v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
            } else {
                0.0
            };
            (
                k.clone(),
                MeanStd {
                    mean,
                    std: var.sqrt(),
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_keep_proportions() {
        let labels: Vec<usize> = (0..100).map(|i| usize::from(i % 10 == 0)).collect();
        let f = stratified_folds(&labels, 5, 1).unwrap();
        for k in 0..5 {
            let members: Vec<usize> = (0..100).filter(|&i| f[i] == k).collect();
            assert_eq!(members.len(), 20);
            assert_eq!(members.iter().filter(|&&i| labels[i] == 1).count(), 2);
        }
        assert_eq!(f, stratified_folds(&labels, 5, 1).unwrap());
        assert!(stratified_folds(&labels, 1, 1).is_err());
    }

    #[test]
    fn mean_and_std() {
        let folds: Vec<BTreeMap<String, f64>> = [0.9, 1.0]
            .iter()
            .map(|&v| [("acc".to_owned(), v)].into_iter().collect())
            .collect();
        let s = summarise(&folds);
        assert!((s["acc"].mean - 0.95).abs() < 1e-12);
        assert!((s["acc"].std - 0.070_710_678).abs() < 1e-6);
    }
}

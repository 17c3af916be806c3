//! Classification metrics, defined as scikit-learn defines them (so a golden file made by
//! scikit-learn holds them): precision of a class that is never predicted is 0, F1 is 0 when
//! precision and recall are both 0, micro averages pool the counts, weighted ones weigh by
//! support.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Precision, recall, F1 and support of one class (or an average).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Prf {
    /// Of the predictions of the class, the share that were right.
    pub precision: f64,
    /// Of the examples of the class, the share found.
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// Examples of the class (for averages: all examples).
    pub support: usize,
}

impl Prf {
    /// From true positives, predicted positives and actual positives.
    pub fn from_counts(tp: usize, predicted: usize, actual: usize) -> Self {
        let p = if predicted == 0 {
            0.0
        } else {
            tp as f64 / predicted as f64
        };
        let r = if actual == 0 {
            0.0
        } else {
            tp as f64 / actual as f64
        };
        let f1 = if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        };
        Self {
            precision: p,
            recall: r,
            f1,
            support: actual,
        }
    }
}

/// A point of the threshold sweep (binary tasks).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ThresholdPoint {
    /// Predict the positive class when its probability is at least this.
    pub threshold: f64,
    /// Precision of the positive class.
    pub precision: f64,
    /// Recall of the positive class.
    pub recall: f64,
    /// F1 of the positive class.
    pub f1: f64,
}

/// Every classification metric duet reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Share of examples predicted right.
    pub accuracy: f64,
    /// Mean F1 over classes.
    pub macro_f1: f64,
    /// Mean precision over classes.
    pub macro_precision: f64,
    /// Mean recall over classes.
    pub macro_recall: f64,
    /// F1 from pooled counts (equals accuracy for single-label tasks).
    pub micro_f1: f64,
    /// F1 weighted by support.
    pub weighted_f1: f64,
    /// Per class, by name.
    pub per_class: BTreeMap<String, Prf>,
    /// Class names in index order.
    pub labels: Vec<String>,
    /// `confusion[true][predicted]`.
    pub confusion: Vec<Vec<usize>>,
    /// Examples.
    pub support: usize,
    /// Binary tasks with probabilities: area under the ROC curve of the positive (second) class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roc_auc: Option<f64>,
    /// Binary tasks with probabilities: average precision of the positive class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pr_auc: Option<f64>,
    /// Binary tasks with probabilities: precision/recall/F1 of the positive class by threshold.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub thresholds: Vec<ThresholdPoint>,
    /// With probabilities: expected calibration error over 15 equal-width confidence bins.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ece: Option<f64>,
}

impl Metrics {
    /// Computes every metric. `probs[i][c]`, when given, is the probability of class `c` for
    /// example `i`.
    pub fn compute(
        y_true: &[usize],
        y_pred: &[usize],
        probs: Option<&[Vec<f32>]>,
        labels: &[String],
    ) -> Self {
        let k = labels.len().max(
            y_true
                .iter()
                .chain(y_pred)
                .map(|&c| c + 1)
                .max()
                .unwrap_or(0),
        );
        let mut confusion = vec![vec![0usize; k]; k];
        for (&t, &p) in y_true.iter().zip(y_pred) {
            confusion[t][p] += 1;
        }
        let name = |c: usize| {
            labels
                .get(c)
                .cloned()
                .unwrap_or_else(|| format!("class_{c}"))
        };
        let mut per_class = BTreeMap::new();
        let (mut sum_p, mut sum_r, mut sum_f, mut weighted) = (0.0, 0.0, 0.0, 0.0);
        let n = y_true.len();
        let mut correct = 0;
        for c in 0..k {
            let tp = confusion[c][c];
            correct += tp;
            let actual: usize = confusion[c].iter().sum();
            let predicted: usize = confusion.iter().map(|row| row[c]).sum();
            let prf = Prf::from_counts(tp, predicted, actual);
            sum_p += prf.precision;
            sum_r += prf.recall;
            sum_f += prf.f1;
            weighted += prf.f1 * actual as f64;
            per_class.insert(name(c), prf);
        }
        let accuracy = if n == 0 {
            0.0
        } else {
            correct as f64 / n as f64
        };
        let kf = k.max(1) as f64;
        let mut m = Self {
            accuracy,
            macro_f1: sum_f / kf,
            macro_precision: sum_p / kf,
            macro_recall: sum_r / kf,
            micro_f1: accuracy,
            weighted_f1: if n == 0 { 0.0 } else { weighted / n as f64 },
            per_class,
            labels: (0..k).map(name).collect(),
            confusion,
            support: n,
            roc_auc: None,
            pr_auc: None,
            thresholds: Vec::new(),
            ece: None,
        };
        if let Some(probs) = probs {
            m.ece = Some(expected_calibration_error(y_true, probs, 15));
            if k == 2 {
                let scores: Vec<f64> = probs
                    .iter()
                    .map(|p| f64::from(p.get(1).copied().unwrap_or(0.0)))
                    .collect();
                let pos: Vec<bool> = y_true.iter().map(|&t| t == 1).collect();
                m.roc_auc = roc_auc(&pos, &scores);
                m.pr_auc = average_precision(&pos, &scores);
                m.thresholds = (1..20)
                    .map(|i| {
                        let th = i as f64 * 0.05;
                        let (mut tp, mut pp) = (0, 0);
                        for (&s, &y) in scores.iter().zip(&pos) {
                            if s >= th {
                                pp += 1;
                                if y {
                                    tp += 1;
                                }
                            }
                        }
                        let actual = pos.iter().filter(|&&y| y).count();
                        let prf = Prf::from_counts(tp, pp, actual);
                        ThresholdPoint {
                            threshold: th,
                            precision: prf.precision,
                            recall: prf.recall,
                            f1: prf.f1,
                        }
                    })
                    .collect();
            }
        }
        m
    }

    /// A flat map of the headline figures (for cross-validation summaries and slices).
    pub fn headline(&self) -> BTreeMap<String, f64> {
        let mut h = BTreeMap::new();
        h.insert("accuracy".into(), self.accuracy);
        h.insert("macro_f1".into(), self.macro_f1);
        h.insert("weighted_f1".into(), self.weighted_f1);
        for (c, p) in &self.per_class {
            h.insert(format!("{c}.precision"), p.precision);
            h.insert(format!("{c}.recall"), p.recall);
            h.insert(format!("{c}.f1"), p.f1);
        }
        if let Some(v) = self.roc_auc {
            h.insert("roc_auc".into(), v);
        }
        if let Some(v) = self.pr_auc {
            h.insert("pr_auc".into(), v);
        }
        if let Some(v) = self.ece {
            h.insert("ece".into(), v);
        }
        h
    }
}

/// Area under the ROC curve: the probability that a random positive scores above a random
/// negative, ties counting one half (Mann–Whitney). `None` when a class is absent.
pub fn roc_auc(pos: &[bool], scores: &[f64]) -> Option<f64> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Average ranks over ties.
    let mut ranks = vec![0f64; scores.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            ranks[k] = r;
        }
        i = j + 1;
    }
    let n_pos = pos.iter().filter(|&&p| p).count() as f64;
    let n_neg = pos.len() as f64 - n_pos;
    if n_pos == 0.0 || n_neg == 0.0 {
        return None;
    }
    let sum: f64 = ranks
        .iter()
        .zip(pos)
        .filter(|(_, p)| **p)
        .map(|(r, _)| r)
        .sum();
    Some((sum - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * n_neg))
}

/// Average precision as scikit-learn computes it: Σ (R_n − R_{n−1}) P_n over thresholds at each
/// distinct score, highest first. `None` without positives.
pub fn average_precision(pos: &[bool], scores: &[f64]) -> Option<f64> {
    let n_pos = pos.iter().filter(|&&p| p).count();
    if n_pos == 0 {
        return None;
    }
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut ap = 0.0;
    let mut prev_recall = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let s = scores[idx[i]];
        while i < idx.len() && scores[idx[i]] == s {
            if pos[idx[i]] {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        let recall = tp as f64 / n_pos as f64;
        let precision = tp as f64 / (tp + fp) as f64;
        ap += (recall - prev_recall) * precision;
        prev_recall = recall;
    }
    Some(ap)
}

/// Expected calibration error: the support-weighted mean |accuracy − confidence| over equal-width
/// bins of the top-class probability.
pub fn expected_calibration_error(y_true: &[usize], probs: &[Vec<f32>], bins: usize) -> f64 {
    let mut acc = vec![0f64; bins];
    let mut conf = vec![0f64; bins];
    let mut count = vec![0usize; bins];
    for (&t, p) in y_true.iter().zip(probs) {
        let (best, &c) = p
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap_or((0, &0.0));
        let c = f64::from(c);
        let b = ((c * bins as f64) as usize).min(bins - 1);
        count[b] += 1;
        conf[b] += c;
        if best == t {
            acc[b] += 1.0;
        }
    }
    let n = y_true.len().max(1) as f64;
    (0..bins)
        .filter(|&b| count[b] > 0)
        .map(|b| (acc[b] - conf[b]).abs() / n)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("c{i}")).collect()
    }

    #[test]
    fn hand_computed_three_classes() {
        // true: 0 0 0 1 1 2 ; pred: 0 1 0 1 2 2
        let m = Metrics::compute(&[0, 0, 0, 1, 1, 2], &[0, 1, 0, 1, 2, 2], None, &labels(3));
        assert!((m.accuracy - 4.0 / 6.0).abs() < 1e-12);
        let c0 = m.per_class["c0"];
        assert_eq!((c0.precision, c0.recall, c0.support), (1.0, 2.0 / 3.0, 3));
        let c1 = m.per_class["c1"];
        assert_eq!((c1.precision, c1.recall), (0.5, 0.5));
        let c2 = m.per_class["c2"];
        assert!((c2.f1 - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.macro_f1 - (0.8 + 0.5 + 2.0 / 3.0) / 3.0).abs() < 1e-12);
        assert!((m.weighted_f1 - (0.8 * 3.0 + 0.5 * 2.0 + 2.0 / 3.0) / 6.0).abs() < 1e-12);
        assert_eq!(
            m.confusion,
            vec![vec![2, 1, 0], vec![0, 1, 1], vec![0, 0, 1]]
        );
    }

    #[test]
    fn a_class_never_predicted_has_zero_precision() {
        let m = Metrics::compute(&[0, 1, 1], &[0, 0, 0], None, &labels(2));
        assert_eq!(
            m.per_class["c1"],
            Prf {
                precision: 0.0,
                recall: 0.0,
                f1: 0.0,
                support: 2
            }
        );
    }

    #[test]
    fn auc_and_average_precision_by_hand() {
        let pos = [false, false, true, true];
        let scores = [0.1, 0.4, 0.35, 0.8];
        assert_eq!(roc_auc(&pos, &scores), Some(0.75));
        // Descending: 0.8 (T), 0.4 (F), 0.35 (T), 0.1 (F): AP = 0.5*1 + 0.5*(2/3).
        assert!((average_precision(&pos, &scores).unwrap() - (0.5 + 1.0 / 3.0)).abs() < 1e-12);
        assert_eq!(roc_auc(&[true, true], &[0.1, 0.2]), None);
    }

    #[test]
    fn a_perfectly_calibrated_model_has_zero_ece() {
        let probs = vec![vec![0.0, 1.0], vec![1.0, 0.0]];
        assert_eq!(expected_calibration_error(&[1, 0], &probs, 15), 0.0);
        let over = vec![vec![0.1, 0.9], vec![0.1, 0.9]];
        assert!((expected_calibration_error(&[1, 0], &over, 15) - 0.4).abs() < 1e-6);
    }
}

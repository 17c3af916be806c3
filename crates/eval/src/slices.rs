//! Per-slice reports: the metrics of each slice of the data (by a field such as language,
//! source or length bucket) and the largest gap between slices — who the model fails.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::classification::Metrics;

/// The metrics of every slice and the widest gaps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SliceReport {
    /// The field the data was sliced by.
    pub field: String,
    /// Metrics per slice value.
    pub slices: BTreeMap<String, Metrics>,
    /// For the headline metrics: (metric, best slice, worst slice, gap).
    pub gaps: Vec<(String, String, String, f64)>,
}

/// Computes metrics per slice; `slice[i]` is example `i`'s slice value.
pub fn by_slice(
    field: &str,
    slice: &[String],
    y_true: &[usize],
    y_pred: &[usize],
    probs: Option<&[Vec<f32>]>,
    labels: &[String],
) -> SliceReport {
    let mut members: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, s) in slice.iter().enumerate() {
        members.entry(s.as_str()).or_default().push(i);
    }
    let slices: BTreeMap<String, Metrics> = members
        .iter()
        .map(|(s, idx)| {
            let t: Vec<usize> = idx.iter().map(|&i| y_true[i]).collect();
            let p: Vec<usize> = idx.iter().map(|&i| y_pred[i]).collect();
            let pr: Option<Vec<Vec<f32>>> =
                probs.map(|pr| idx.iter().map(|&i| pr[i].clone()).collect());
            (
                (*s).to_owned(),
                Metrics::compute(&t, &p, pr.as_deref(), labels),
            )
        })
        .collect();
    let mut gaps = Vec::new();
    for metric in ["accuracy", "macro_f1"] {
        let vals: Vec<(&String, f64)> = slices
            .iter()
            .map(|(s, m)| {
                (
                    s,
                    if metric == "accuracy" {
                        m.accuracy
                    } else {
                        m.macro_f1
                    },
                )
            })
            .collect();
        if let (Some(best), Some(worst)) = (
            vals.iter().max_by(|a, b| a.1.total_cmp(&b.1)),
            vals.iter().min_by(|a, b| a.1.total_cmp(&b.1)),
        ) {
            gaps.push((
                metric.to_owned(),
                best.0.clone(),
                worst.0.clone(),
                best.1 - worst.1,
            ));
        }
    }
    SliceReport {
        field: field.to_owned(),
        slices,
        gaps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gap_names_the_worst_slice() {
        let labels = vec!["a".to_owned(), "b".to_owned()];
        let slice: Vec<String> = ["en", "en", "zh", "zh"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let r = by_slice("lang", &slice, &[0, 1, 0, 1], &[0, 1, 1, 1], None, &labels);
        assert_eq!(r.slices["en"].accuracy, 1.0);
        assert_eq!(r.slices["zh"].accuracy, 0.5);
        assert_eq!(
            r.gaps[0],
            ("accuracy".to_owned(), "en".to_owned(), "zh".to_owned(), 0.5)
        );
    }
}

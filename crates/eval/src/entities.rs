//! Entity-level scores from BIO tags, counted as seqeval counts them: an entity is right only
//! when its type and both boundaries are right; an `I-` tag that does not continue an entity of
//! its type starts a new one.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::classification::Prf;

/// An entity: its type and token range `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Span {
    /// The entity type (`PER`, `city`, ...).
    pub kind: String,
    /// First token.
    pub start: usize,
    /// One past the last token.
    pub end: usize,
}

/// The entities a BIO tag sequence describes.
pub fn spans(tags: &[String]) -> Vec<Span> {
    let mut out = Vec::new();
    let mut open: Option<Span> = None;
    for (i, tag) in tags.iter().enumerate() {
        let (prefix, kind) = match tag.split_once('-') {
            Some((p, k)) if p == "B" || p == "I" => (p, k),
            _ => ("O", ""),
        };
        let continues = prefix == "I" && open.as_ref().is_some_and(|s| s.kind == kind);
        if continues {
            if let Some(s) = open.as_mut() {
                s.end = i + 1;
            }
            continue;
        }
        if let Some(s) = open.take() {
            out.push(s);
        }
        if prefix != "O" {
            open = Some(Span {
                kind: kind.to_owned(),
                start: i,
                end: i + 1,
            });
        }
    }
    out.extend(open);
    out
}

/// Entity-level precision, recall and F1: per type, micro over all entities, and macro.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntityMetrics {
    /// Per entity type.
    pub per_type: BTreeMap<String, Prf>,
    /// Pooled over every entity.
    pub micro: Prf,
    /// Mean over types.
    pub macro_f1: f64,
}

/// Scores predicted tag sequences against true ones (one sequence per sentence).
pub fn score(truth: &[Vec<String>], pred: &[Vec<String>]) -> EntityMetrics {
    let mut tp: BTreeMap<String, usize> = BTreeMap::new();
    let mut n_true: BTreeMap<String, usize> = BTreeMap::new();
    let mut n_pred: BTreeMap<String, usize> = BTreeMap::new();
    for (t, p) in truth.iter().zip(pred) {
        let ts: BTreeSet<Span> = spans(t).into_iter().collect();
        let ps: BTreeSet<Span> = spans(p).into_iter().collect();
        for s in &ts {
            *n_true.entry(s.kind.clone()).or_default() += 1;
            if ps.contains(s) {
                *tp.entry(s.kind.clone()).or_default() += 1;
            }
        }
        for s in &ps {
            *n_pred.entry(s.kind.clone()).or_default() += 1;
        }
    }
    let kinds: BTreeSet<&String> = n_true.keys().chain(n_pred.keys()).collect();
    let get = |m: &BTreeMap<String, usize>, k: &str| m.get(k).copied().unwrap_or(0);
    let per_type: BTreeMap<String, Prf> = kinds
        .iter()
        .map(|k| {
            (
                (*k).clone(),
                Prf::from_counts(get(&tp, k), get(&n_pred, k), get(&n_true, k)),
            )
        })
        .collect();
    let micro = Prf::from_counts(
        tp.values().sum(),
        n_pred.values().sum(),
        n_true.values().sum(),
    );
    let macro_f1 = if per_type.is_empty() {
        0.0
    } else {
        per_type.values().map(|p| p.f1).sum::<f64>() / per_type.len() as f64
    };
    EntityMetrics {
        per_type,
        micro,
        macro_f1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn spans_follow_seqeval() {
        let s = spans(&tags("B-PER I-PER O B-LOC I-PER I-LOC O I-LOC"));
        let got: Vec<(&str, usize, usize)> = s
            .iter()
            .map(|s| (s.kind.as_str(), s.start, s.end))
            .collect();
        assert_eq!(
            got,
            [
                ("PER", 0, 2),
                ("LOC", 3, 4),
                ("PER", 4, 5),
                ("LOC", 5, 6),
                ("LOC", 7, 8)
            ]
        );
    }

    #[test]
    fn boundaries_must_match() {
        let truth = vec![tags("B-PER I-PER O B-LOC")];
        let pred = vec![tags("B-PER O O B-LOC")];
        let m = score(&truth, &pred);
        assert_eq!(m.per_type["LOC"].f1, 1.0);
        assert_eq!(m.per_type["PER"].f1, 0.0);
        assert_eq!((m.micro.precision, m.micro.recall), (0.5, 0.5));
    }
}

//! The redactor against the labelled set in testdata/pii (made by make_pii_set.py there):
//! precision and recall of at least 0.95 for every kind.

mod common;

use std::collections::BTreeMap;

use duet_corpus::pii::{PiiKind, Redactor};

#[test]
fn precision_and_recall_per_kind_reach_95_percent() -> anyhow::Result<()> {
    let text = std::fs::read_to_string(common::root().join("testdata/pii/labelled.tsv"))?;
    let r = Redactor::new(&[])?;
    // kind -> (true positives, false positives, false negatives, positives, negatives)
    let mut tally: BTreeMap<&str, [u32; 5]> = BTreeMap::new();
    let mut misses = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let cols: Vec<&str> = line.splitn(4, '\t').collect();
        let [kind, label, span, text] = cols[..] else {
            anyhow::bail!("labelled.tsv:{}: expected 4 columns", i + 1);
        };
        let want = match kind {
            "EMAIL" => PiiKind::Email,
            "PHONE" => PiiKind::Phone,
            "IP" => PiiKind::Ip,
            "CARD" => PiiKind::Card,
            "CN_ID" => PiiKind::CnId,
            other => anyhow::bail!("labelled.tsv:{}: unknown kind {other}", i + 1),
        };
        let found: Vec<(PiiKind, &str)> = r
            .find(text)
            .into_iter()
            .map(|m| (m.kind, &text[m.start..m.end]))
            .collect();
        let t = tally.entry(kind).or_default();
        if label == "1" {
            t[3] += 1;
            if found.contains(&(want, span)) {
                t[0] += 1;
            } else {
                t[2] += 1;
                misses.push(format!(
                    "missed {kind} {span:?} in {text:?}: found {found:?}"
                ));
            }
        } else {
            t[4] += 1;
            if found.iter().any(|(k, _)| *k == want) {
                t[1] += 1;
                misses.push(format!("false {kind} in {text:?}: found {found:?}"));
            }
        }
    }
    let mut report = String::new();
    let mut ok = true;
    for (kind, [tp, fp, fn_, pos, neg]) in &tally {
        let precision = f64::from(*tp) / f64::from(tp + fp).max(1.0);
        let recall = f64::from(*tp) / f64::from(tp + fn_).max(1.0);
        report += &format!(
            "{kind}: precision {precision:.3} recall {recall:.3} ({pos} positive, {neg} negative)\n"
        );
        ok &= precision >= 0.95 && recall >= 0.95 && *pos >= 50 && *neg >= 50;
    }
    println!("{report}");
    assert!(ok, "{report}\n{}", misses.join("\n"));
    assert_eq!(tally.len(), 5);
    Ok(())
}

//! The redactor against an independent set (testdata/pii/independent: personal data made by
//! `faker` in ten locales and libphonenumber's example numbers for every region, and
//! look-alikes that must survive; made by make.py there, which shares nothing with the
//! redactor). Prints precision and recall per kind and holds each to the floor measured when the
//! set was made, so that a change that loses ground fails.

mod common;

use std::collections::BTreeMap;

use duet_corpus::pii::{PiiKind, Redactor};
use serde_json::Value;

/// `(kind, precision floor, recall floor)`: what the redactor reached on this set when it was
/// made, rounded down (the misses are named in bench/RESULTS.md).
const FLOORS: [(&str, f64, f64); 5] = [
    ("EMAIL", 1.0, 1.0),
    ("PHONE", 1.0, 0.71),
    ("IP", 1.0, 1.0),
    ("CARD", 1.0, 1.0),
    ("CN_ID", 1.0, 1.0),
];

fn kind_name(k: PiiKind) -> &'static str {
    match k {
        PiiKind::Email => "EMAIL",
        PiiKind::Phone => "PHONE",
        PiiKind::Ip => "IP",
        PiiKind::Card => "CARD",
        PiiKind::CnId => "CN_ID",
    }
}

/// The byte offset of character `c` of `s`.
fn byte_at(s: &str, c: usize) -> usize {
    s.char_indices().nth(c).map_or(s.len(), |(b, _)| b)
}

#[test]
fn precision_and_recall_per_kind_on_the_independent_set() -> anyhow::Result<()> {
    let path = common::root().join("testdata/pii/independent/set.jsonl");
    let text = std::fs::read_to_string(&path)?;
    let r = Redactor::new(&[])?;
    // kind -> [true positives, false positives, false negatives]
    let mut tally: BTreeMap<String, [u32; 3]> = BTreeMap::new();
    let mut misses: BTreeMap<String, u32> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let v: Value = serde_json::from_str(line)
            .map_err(|e| anyhow::anyhow!("{}:{}: {e}", path.display(), i + 1))?;
        let kind = v["kind"].as_str().unwrap_or("");
        // Misses are counted by how the value was made, the region left out.
        let source = match v["source"]
            .as_str()
            .unwrap_or("")
            .split(' ')
            .collect::<Vec<_>>()[..]
        {
            ["phonenumbers", _, t, fmt] => format!("phonenumbers {fmt} (type {t})"),
            _ => v["source"].as_str().unwrap_or("").to_owned(),
        };
        let s = v["text"].as_str().unwrap_or_default();
        let span = (
            byte_at(s, v["span"][0].as_u64().unwrap_or(0) as usize),
            byte_at(s, v["span"][1].as_u64().unwrap_or(0) as usize),
        );
        let mut hit = false;
        for m in r.find(s) {
            let name = kind_name(m.kind);
            let overlap = m.end.min(span.1).saturating_sub(m.start.max(span.0));
            if name == kind && overlap * 5 >= (span.1 - span.0) * 4 {
                hit = true;
            } else {
                tally.entry(name.to_owned()).or_default()[1] += 1;
                *misses.entry(format!("false {name}: {source}")).or_default() += 1;
            }
        }
        if kind != "NONE" {
            let t = tally.entry(kind.to_owned()).or_default();
            if hit {
                t[0] += 1;
            } else {
                t[2] += 1;
                *misses
                    .entry(format!("missed {kind}: {source}"))
                    .or_default() += 1;
            }
        }
    }
    println!("| kind | found | false | missed | precision | recall |");
    let mut low = Vec::new();
    for (kind, p_floor, r_floor) in FLOORS {
        let [tp, fp, fnn] = tally.get(kind).copied().unwrap_or_default();
        let p = f64::from(tp) / f64::from((tp + fp).max(1));
        let rc = f64::from(tp) / f64::from((tp + fnn).max(1));
        println!("| {kind} | {tp} | {fp} | {fnn} | {p:.4} | {rc:.4} |");
        if p < p_floor || rc < r_floor {
            low.push(format!(
                "{kind}: precision {p:.4} (floor {p_floor}), recall {rc:.4} (floor {r_floor})"
            ));
        }
    }
    let mut worst: Vec<_> = misses.into_iter().collect();
    worst.sort_by_key(|w| std::cmp::Reverse(w.1));
    for (what, n) in worst.iter().take(40) {
        println!("{n:5}  {what}");
    }
    assert!(low.is_empty(), "{low:?}");
    Ok(())
}

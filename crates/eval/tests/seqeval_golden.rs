//! duet's entity-level metrics against seqeval's on the same tag sequences
//! (testdata/eval/entities_golden.json, made by testdata/eval/make_entities_golden.py).

use anyhow::{Context, Result};
use duet_eval::entities::score;

fn seqs(v: &serde_json::Value) -> Vec<Vec<String>> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    s.as_array()
                        .map(|s| {
                            s.iter()
                                .filter_map(|t| t.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn entity_metrics_equal_seqeval() -> Result<()> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/eval/entities_golden.json"
    );
    let g: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let truth = seqs(&g["truth"]);
    anyhow::ensure!(truth.len() == 300, "the golden file holds 300 sentences");
    let m = score(&truth, &seqs(&g["pred"]));
    let close = |a: f64, b: &serde_json::Value, what: &str| -> Result<()> {
        let b = b
            .as_f64()
            .with_context(|| format!("{what}: not a number"))?;
        anyhow::ensure!((a - b).abs() < 1e-9, "{what}: duet {a}, seqeval {b}");
        Ok(())
    };
    close(m.micro.precision, &g["precision"], "precision")?;
    close(m.micro.recall, &g["recall"], "recall")?;
    close(m.micro.f1, &g["f1"], "f1")?;
    close(m.macro_f1, &g["macro_f1"], "macro_f1")?;
    let per = g["per_type"].as_object().context("per_type")?;
    anyhow::ensure!(
        per.len() == m.per_type.len(),
        "types: {per:?} vs {:?}",
        m.per_type.keys()
    );
    for (k, v) in per {
        let p = m
            .per_type
            .get(k)
            .with_context(|| format!("duet has no type {k}"))?;
        close(p.precision, &v["precision"], &format!("{k} precision"))?;
        close(p.recall, &v["recall"], &format!("{k} recall"))?;
        close(p.f1, &v["f1"], &format!("{k} f1"))?;
        anyhow::ensure!(
            Some(p.support as u64) == v["support"].as_u64(),
            "{k} support"
        );
    }
    Ok(())
}

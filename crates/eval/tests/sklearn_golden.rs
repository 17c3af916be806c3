//! duet's classification metrics against scikit-learn's on the same predictions
//! (testdata/eval/golden.json, made by testdata/eval/make_golden.py).

use anyhow::{Context, Result};
use duet_eval::classification::Metrics;

#[test]
fn metrics_equal_scikit_learn() -> Result<()> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/eval/golden.json"
    );
    let g: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let close = |a: f64, b: &serde_json::Value, what: &str| -> Result<()> {
        let b = b
            .as_f64()
            .with_context(|| format!("{what}: not a number"))?;
        anyhow::ensure!((a - b).abs() < 1e-9, "{what}: duet {a}, scikit-learn {b}");
        Ok(())
    };
    for case in g["cases"].as_array().context("cases")? {
        let name = case["name"].as_str().unwrap_or("?");
        let v = |k: &str| -> Vec<usize> {
            case[k]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_u64())
                        .map(|x| x as usize)
                        .collect()
                })
                .unwrap_or_default()
        };
        let (t, p) = (v("y_true"), v("y_pred"));
        let probs: Vec<Vec<f32>> = case["probs"]
            .as_array()
            .context("probs")?
            .iter()
            .map(|r| {
                r.as_array()
                    .map(|r| {
                        r.iter()
                            .filter_map(|x| x.as_f64())
                            .map(|x| x as f32)
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect();
        let k = probs[0].len();
        let labels: Vec<String> = (0..k).map(|i| format!("c{i}")).collect();
        let m = Metrics::compute(&t, &p, Some(&probs), &labels);
        close(m.accuracy, &case["accuracy"], &format!("{name} accuracy"))?;
        close(m.macro_f1, &case["macro_f1"], &format!("{name} macro_f1"))?;
        close(m.micro_f1, &case["micro_f1"], &format!("{name} micro_f1"))?;
        close(
            m.weighted_f1,
            &case["weighted_f1"],
            &format!("{name} weighted_f1"),
        )?;
        for (i, l) in labels.iter().enumerate() {
            let c = m.per_class[l];
            close(
                c.precision,
                &case["precision"][i],
                &format!("{name} {l} precision"),
            )?;
            close(c.recall, &case["recall"][i], &format!("{name} {l} recall"))?;
            close(c.f1, &case["f1"][i], &format!("{name} {l} f1"))?;
            anyhow::ensure!(
                c.support as u64 == case["support"][i].as_u64().unwrap_or(0),
                "{name} {l} support"
            );
        }
        let conf: Vec<Vec<usize>> = case["confusion"]
            .as_array()
            .context("confusion")?
            .iter()
            .map(|r| {
                r.as_array()
                    .map(|r| {
                        r.iter()
                            .filter_map(|x| x.as_u64())
                            .map(|x| x as usize)
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect();
        assert_eq!(m.confusion, conf, "{name} confusion");
        if k == 2 {
            close(
                m.roc_auc.context("roc_auc")?,
                &case["roc_auc"],
                &format!("{name} roc_auc"),
            )?;
            close(
                m.pr_auc.context("pr_auc")?,
                &case["pr_auc"],
                &format!("{name} pr_auc"),
            )?;
        }
    }
    Ok(())
}

//! Writing evaluation results: `metrics.json`, `report.md`, and `confusion.png`.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::classification::Metrics;
use crate::folds::MeanStd;
use crate::slices::SliceReport;
use crate::{Error, Result};

static FONT: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");

/// Registers the embedded font (DejaVu Sans) as `sans-serif` for plotters, once per process,
/// so charts need no system fonts.
pub fn register_fonts() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `metrics.json`.
pub fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    write(path, &serde_json::to_vec_pretty(value)?)
}

/// A Markdown report of one evaluation.
pub fn markdown(title: &str, m: &Metrics, data_summary: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# {title}\n");
    if !data_summary.is_empty() {
        let _ = writeln!(s, "{data_summary}\n");
    }
    let _ = writeln!(s, "| metric | value |\n| --- | ---: |");
    let _ = writeln!(s, "| examples | {} |", m.support);
    let _ = writeln!(s, "| accuracy | {:.4} |", m.accuracy);
    let _ = writeln!(s, "| macro F1 | {:.4} |", m.macro_f1);
    let _ = writeln!(s, "| micro F1 | {:.4} |", m.micro_f1);
    let _ = writeln!(s, "| weighted F1 | {:.4} |", m.weighted_f1);
    if let Some(v) = m.roc_auc {
        let _ = writeln!(s, "| ROC-AUC | {v:.4} |");
    }
    if let Some(v) = m.pr_auc {
        let _ = writeln!(s, "| PR-AUC (average precision) | {v:.4} |");
    }
    if let Some(v) = m.ece {
        let _ = writeln!(s, "| expected calibration error | {v:.4} |");
    }
    let _ = writeln!(
        s,
        "\n## Per class\n\n| class | precision | recall | F1 | support |\n| --- | ---: | ---: | ---: | ---: |"
    );
    for l in &m.labels {
        if let Some(p) = m.per_class.get(l) {
            let _ = writeln!(
                s,
                "| {l} | {:.4} | {:.4} | {:.4} | {} |",
                p.precision, p.recall, p.f1, p.support
            );
        }
    }
    let _ = writeln!(
        s,
        "\n## Confusion matrix (rows: true, columns: predicted)\n"
    );
    let _ = writeln!(s, "| | {} |", m.labels.join(" | "));
    let _ = writeln!(s, "| --- |{}", " ---: |".repeat(m.labels.len()));
    for (l, row) in m.labels.iter().zip(&m.confusion) {
        let _ = writeln!(
            s,
            "| **{l}** | {} |",
            row.iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(" | ")
        );
    }
    if !m.thresholds.is_empty() {
        let pos = m.labels.get(1).cloned().unwrap_or_default();
        let _ = writeln!(
            s,
            "\n## Threshold sweep (class `{pos}`)\n\n| threshold | precision | recall | F1 |\n| ---: | ---: | ---: | ---: |"
        );
        for t in &m.thresholds {
            let _ = writeln!(
                s,
                "| {:.2} | {:.4} | {:.4} | {:.4} |",
                t.threshold, t.precision, t.recall, t.f1
            );
        }
    }
    s
}

/// The Markdown section of a cross-validation summary.
pub fn markdown_folds(k: usize, summary: &std::collections::BTreeMap<String, MeanStd>) -> String {
    let mut s = format!(
        "\n## {k}-fold cross-validation (mean ± std)\n\n| metric | mean | std |\n| --- | ---: | ---: |\n"
    );
    for (name, v) in summary {
        let _ = writeln!(s, "| {name} | {:.4} | {:.4} |", v.mean, v.std);
    }
    s
}

/// The Markdown section of a slice report.
pub fn markdown_slices(r: &SliceReport) -> String {
    let mut s = format!(
        "\n## By `{}`\n\n| slice | examples | accuracy | macro F1 |\n| --- | ---: | ---: | ---: |\n",
        r.field
    );
    for (name, m) in &r.slices {
        let _ = writeln!(
            s,
            "| {name} | {} | {:.4} | {:.4} |",
            m.support, m.accuracy, m.macro_f1
        );
    }
    for (metric, best, worst, gap) in &r.gaps {
        let _ = writeln!(
            s,
            "\nLargest {metric} gap: {gap:.4} (best `{best}`, worst `{worst}`)."
        );
    }
    s
}

/// Draws the confusion matrix as a heat map with counts.
pub fn confusion_png(path: &Path, m: &Metrics) -> Result<()> {
    register_fonts();
    let err = |e: &dyn std::fmt::Display| Error::Plot(format!("{}: {e}", path.display()));
    let k = m.labels.len().max(1);
    let size = (160 + 70 * k as u32).min(1600);
    let root = BitMapBackend::new(path, (size + 120, size)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "confusion (rows: true, columns: predicted)",
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(90)
        .y_label_area_size(120)
        .build_cartesian_2d(0..k, 0..k)
        .map_err(|e| err(&e))?;
    let labels = m.labels.clone();
    let labels2 = m.labels.clone();
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(k)
        .y_labels(k)
        .x_label_formatter(&move |x| labels.get(*x).cloned().unwrap_or_default())
        .y_label_formatter(&move |y| {
            k.checked_sub(1 + *y)
                .and_then(|i| labels2.get(i).cloned())
                .unwrap_or_default()
        })
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| err(&e))?;
    let max = m
        .confusion
        .iter()
        .flatten()
        .copied()
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    for (t, row) in m.confusion.iter().enumerate() {
        for (p, &n) in row.iter().enumerate() {
            let y = k - 1 - t;
            let shade = 1.0 - (n as f64 / max).sqrt() * 0.85;
            let c = RGBColor((255.0 * shade) as u8, (255.0 * shade) as u8, 255);
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(p, y), (p + 1, y + 1)],
                    c.filled(),
                )))
                .map_err(|e| err(&e))?;
            let text_color = if shade < 0.5 { WHITE } else { BLACK };
            chart
                .draw_series(std::iter::once(Text::new(
                    n.to_string(),
                    (p, y + 1),
                    ("sans-serif", 16).into_font().color(&text_color),
                )))
                .map_err(|e| err(&e))?;
        }
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_and_png() {
        let labels = vec!["ham".to_owned(), "spam".to_owned()];
        let probs = vec![vec![0.9, 0.1], vec![0.2, 0.8], vec![0.6, 0.4]];
        let m = Metrics::compute(&[0, 1, 1], &[0, 1, 0], Some(&probs), &labels);
        let md = markdown("SMS", &m, "3 messages");
        assert!(
            md.contains("| spam | 1.0000 | 0.5000 | 0.6667 | 2 |"),
            "{md}"
        );
        assert!(md.contains("| **spam** | 1 | 1 |"), "{md}");
        let dir = tempfile::tempdir().unwrap();
        confusion_png(&dir.path().join("c.png"), &m).unwrap();
        assert!(
            std::fs::read(dir.path().join("c.png"))
                .unwrap()
                .starts_with(b"\x89PNG")
        );
    }
}

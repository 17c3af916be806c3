//! `duet eval classify`: one model on a labelled file, or stratified k-fold cross-validation
//! of a recipe, with slice (bias) reports, a data summary, `metrics.json`, `report.md` and
//! `confusion.png`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use duet_eval::classification::Metrics;
use duet_eval::folds::{self, MeanStd};
use duet_eval::report;
use duet_eval::slices::{self, SliceReport};
use duet_model::predict::Classifier;
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

use super::config::ClsConfig;
use super::data::{self, Example};
use super::run::{fit, predict_examples};
use crate::trainer::Outcome;
use crate::{Error, Result};

/// Counts and text lengths of a labelled data set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSummary {
    /// Examples.
    pub examples: usize,
    /// Examples per label.
    pub labels: BTreeMap<String, usize>,
    /// Length in words: mean, median, 95th percentile, maximum.
    pub words: LengthStats,
    /// Length in characters.
    pub chars: LengthStats,
}

/// Summary statistics of lengths.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LengthStats {
    /// Mean.
    pub mean: f64,
    /// Median.
    pub median: usize,
    /// 95th percentile.
    pub p95: usize,
    /// Maximum.
    pub max: usize,
}

impl LengthStats {
    fn of(mut v: Vec<usize>) -> Self {
        if v.is_empty() {
            return Self {
                mean: 0.0,
                median: 0,
                p95: 0,
                max: 0,
            };
        }
        v.sort_unstable();
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        Self {
            mean: v.iter().sum::<usize>() as f64 / v.len() as f64,
            median: at(0.5),
            p95: at(0.95),
            max: v[v.len() - 1],
        }
    }
}

impl DataSummary {
    /// Summarises `examples`.
    pub fn of(examples: &[Example]) -> Self {
        let mut labels = BTreeMap::new();
        for e in examples {
            *labels.entry(e.label.clone()).or_insert(0) += 1;
        }
        Self {
            examples: examples.len(),
            labels,
            words: LengthStats::of(
                examples
                    .iter()
                    .map(|e| e.text.split_whitespace().count())
                    .collect(),
            ),
            chars: LengthStats::of(examples.iter().map(|e| e.text.chars().count()).collect()),
        }
    }

    /// The summary as Markdown.
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "## Data\n\n{} examples.\n\n| label | examples | share |\n| --- | ---: | ---: |\n",
            self.examples
        );
        for (l, n) in &self.labels {
            let _ = writeln!(
                s,
                "| {l} | {n} | {:.1}% |",
                100.0 * *n as f64 / self.examples.max(1) as f64
            );
        }
        let _ = writeln!(
            s,
            "\n| length | mean | median | 95th pct | max |\n| --- | ---: | ---: | ---: | ---: |"
        );
        for (name, l) in [("words", &self.words), ("characters", &self.chars)] {
            let _ = writeln!(
                s,
                "| {name} | {:.1} | {} | {} | {} |",
                l.mean, l.median, l.p95, l.max
            );
        }
        s
    }
}

/// Options of an evaluation.
#[derive(Debug, Clone, Default)]
pub struct EvalOptions {
    /// Report metrics per value of this field, and the widest gaps.
    pub slice_by: Option<String>,
    /// Texts per inference batch.
    pub batch: usize,
}

/// Metrics of a model on labelled data, with optional slices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The metrics.
    #[serde(flatten)]
    pub metrics: Metrics,
    /// Per-slice metrics and gaps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slices: Option<SliceReport>,
    /// The data.
    pub data: DataSummary,
}

fn slice_values(examples: &[Example], field: &str) -> Result<Vec<String>> {
    examples
        .iter()
        .map(|e| {
            if field == "label" {
                return Ok(e.label.clone());
            }
            e.fields.get(field).cloned().ok_or_else(|| {
                Error::Config(format!(
                    "{}: no field {field:?} to slice by (fields: {:?})",
                    e.id,
                    e.fields.keys().collect::<Vec<_>>()
                ))
            })
        })
        .collect()
}

/// Evaluates a loaded classifier on `examples`.
pub fn evaluate(c: &Classifier, examples: &[Example], opts: &EvalOptions) -> Result<Evaluation> {
    if examples.is_empty() {
        return Err(Error::Config("no examples to evaluate".into()));
    }
    let p = predict_examples(c, examples, opts.batch.max(1))?;
    let metrics = Metrics::compute(&p.truth, &p.pred, Some(&p.probs), c.labels());
    let slices = match &opts.slice_by {
        Some(f) => Some(slices::by_slice(
            f,
            &slice_values(examples, f)?,
            &p.truth,
            &p.pred,
            Some(&p.probs),
            c.labels(),
        )),
        None => None,
    };
    Ok(Evaluation {
        metrics,
        slices,
        data: DataSummary::of(examples),
    })
}

/// Writes `metrics.json`, `report.md` and `confusion.png` of an evaluation into `out`.
pub fn write_evaluation(out: &Path, title: &str, e: &Evaluation) -> Result<()> {
    create_dir(out)?;
    report::write_json(&out.join("metrics.json"), &serde_json::to_value(e)?)?;
    let mut md = report::markdown(title, &e.metrics, "");
    if let Some(s) = &e.slices {
        md.push_str(&report::markdown_slices(s));
    }
    md.push('\n');
    md.push_str(&e.data.markdown());
    write_text(&out.join("report.md"), &md)?;
    report::confusion_png(&out.join("confusion.png"), &e.metrics)?;
    Ok(())
}

/// The result of a cross-validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrossValidation {
    /// Folds.
    pub folds: usize,
    /// Mean and standard deviation of each headline metric over the folds.
    pub summary: BTreeMap<String, MeanStd>,
    /// Each fold's evaluation on its held-out part.
    pub per_fold: Vec<Evaluation>,
    /// The whole data set.
    pub data: DataSummary,
}

/// Stratified k-fold cross-validation of the recipe `cfg` on `examples` (exact duplicates kept
/// in one fold): trains `k` models
/// (each under `out/fold-<i>/run`, validating on a stratified share of its training part for
/// early stopping), evaluates each on its held-out fold, and summarises. A stop request ends it
/// early with an error naming the fold.
pub fn cross_validate(
    cfg: &ClsConfig,
    examples: &[Example],
    k: usize,
    out: &Path,
    opts: &EvalOptions,
    stop: Arc<AtomicBool>,
    bar: &ProgressBar,
) -> Result<CrossValidation> {
    let labels = data::label_set(examples);
    // Folds over groups of exact duplicates, so that no text is both trained on and tested.
    let groups = data::duplicate_groups(examples);
    let y: Vec<usize> = groups
        .iter()
        .map(|g| {
            let label = &examples[g[0]].label;
            labels.iter().position(|l| l == label).unwrap_or(0)
        })
        .collect();
    let group_fold = folds::stratified_folds(&y, k, cfg.train.seed)?;
    let mut fold_of = vec![0; examples.len()];
    for (g, &f) in groups.iter().zip(&group_fold) {
        for &i in g {
            fold_of[i] = f;
        }
    }
    let mut per_fold = Vec::new();
    for f in 0..k {
        let (mut test, mut rest) = (Vec::new(), Vec::new());
        for (e, &fold) in examples.iter().zip(&fold_of) {
            if fold == f {
                test.push(e.clone());
            } else {
                rest.push(e.clone());
            }
        }
        let held: std::collections::HashSet<usize> =
            data::stratified_holdout(&rest, cfg.data.valid_share, cfg.train.seed ^ 0x5a1)
                .into_iter()
                .collect();
        let (mut train, mut valid) = (Vec::new(), Vec::new());
        for (i, e) in rest.into_iter().enumerate() {
            if held.contains(&i) {
                valid.push(e);
            } else {
                train.push(e);
            }
        }
        let fold_dir = out.join(format!("fold-{f}"));
        let mut fcfg = cfg.clone();
        fcfg.train.out = fold_dir.join("run");
        let toml = toml::to_string(&fcfg).map_err(|e| Error::Config(e.to_string()))?;
        tracing::info!(
            "fold {}/{k}: {} train, {} valid, {} test",
            f + 1,
            train.len(),
            valid.len(),
            test.len()
        );
        let outcome = fit(&fcfg, &toml, &train, &valid, false, stop.clone(), bar)?;
        if outcome == Outcome::Interrupted || stop.load(Ordering::SeqCst) {
            return Err(Error::Config(format!(
                "cross-validation stopped during fold {}",
                f + 1
            )));
        }
        let model_dir = best_or_final(&fcfg.train.out);
        let c = Classifier::load(&model_dir)?;
        let e = evaluate(&c, &test, opts)?;
        write_evaluation(&fold_dir, &format!("Fold {} of {k}", f + 1), &e)?;
        per_fold.push(e);
    }
    let heads: Vec<BTreeMap<String, f64>> = per_fold.iter().map(|e| e.metrics.headline()).collect();
    let cv = CrossValidation {
        folds: k,
        summary: folds::summarise(&heads),
        per_fold,
        data: DataSummary::of(examples),
    };
    create_dir(out)?;
    report::write_json(&out.join("metrics.json"), &serde_json::to_value(&cv)?)?;
    let mut md = format!("# {k}-fold cross-validation\n");
    md.push_str(&report::markdown_folds(k, &cv.summary));
    md.push('\n');
    md.push_str(&cv.data.markdown());
    write_text(&out.join("report.md"), &md)?;
    Ok(cv)
}

/// The model a run directory stands for: `best/` when early stopping kept one, else `final/`.
pub fn best_or_final(run: &Path) -> PathBuf {
    let best = run.join("best");
    if best.join("config.json").is_file() {
        best
    } else {
        run.join("final")
    }
}

fn create_dir(p: &Path) -> Result<()> {
    std::fs::create_dir_all(p).map_err(|source| Error::Io {
        path: p.to_path_buf(),
        source,
    })
}

fn write_text(p: &Path, s: &str) -> Result<()> {
    std::fs::write(p, s).map_err(|source| Error::Io {
        path: p.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(label: &str, text: &str) -> Example {
        Example {
            id: String::new(),
            text: text.into(),
            label: label.into(),
            fields: BTreeMap::new(),
        }
    }

    #[test]
    fn summary_counts_and_lengths() {
        let d = DataSummary::of(&[ex("a", "one two"), ex("b", "x"), ex("a", "p q r s")]);
        assert_eq!(d.examples, 3);
        assert_eq!(d.labels["a"], 2);
        assert_eq!(d.words.max, 4);
        assert_eq!(d.words.median, 2);
        assert!((d.words.mean - 7.0 / 3.0).abs() < 1e-12);
        assert!(d.markdown().contains("| a | 2 | 66.7% |"));
    }

    #[test]
    fn slicing_by_a_missing_field_names_it() {
        let err = slice_values(&[ex("a", "t")], "lang").unwrap_err();
        assert!(err.to_string().contains("lang"));
    }
}

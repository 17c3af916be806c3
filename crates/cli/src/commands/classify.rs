//! `duet train classify`, `duet eval classify`, `duet eval split` and `duet classify`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use duet_model::predict::{Classifier, argmax};
use duet_train::classify::config::ClsConfig;
use duet_train::classify::data::{self, Fields};
use duet_train::classify::evaluate::{self, EvalOptions};
use duet_train::classify::run;

use super::train::{bar, stop_flag};

/// Arguments of `duet train classify`; every config key can also be set with `--set`.
#[derive(Debug, Args)]
pub struct TrainClassifyArgs {
    /// A TOML config (examples/configs/classify.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// A pretrained encoder directory (Hugging Face layout), or `tfidf` (sets model.path).
    #[arg(long)]
    pub model: Option<String>,
    /// Training data: CSV/TSV/JSONL with text and label, or a folder per label (sets
    /// data.train).
    #[arg(long)]
    pub train: Option<PathBuf>,
    /// Validation data (sets data.valid); without it data.valid_share is held out.
    #[arg(long)]
    pub valid: Option<PathBuf>,
    /// A JSON list of ids kept out of training, e.g. a test split (sets data.exclude).
    #[arg(long)]
    pub exclude: Option<PathBuf>,
    /// The run directory (sets train.out); the model lands in OUT/final and OUT/best.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Passes over the data (sets loss.epochs).
    #[arg(long)]
    pub epochs: Option<f64>,
    /// Seed (sets train.seed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Continue from the newest checkpoint of the run directory.
    #[arg(long)]
    pub resume: bool,
    /// Set any config key: --set loss.class_weights=auto (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

fn quoted(s: &str) -> String {
    format!("{s:?}")
}

fn overrides(a: &TrainClassifyArgs) -> Vec<String> {
    let p = |p: &Path| quoted(&p.display().to_string());
    let mut v = Vec::new();
    if let Some(m) = &a.model {
        v.push(format!("model.path={}", quoted(m)));
    }
    if let Some(x) = &a.train {
        v.push(format!("data.train={}", p(x)));
    }
    if let Some(x) = &a.valid {
        v.push(format!("data.valid={}", p(x)));
    }
    if let Some(x) = &a.exclude {
        v.push(format!("data.exclude={}", p(x)));
    }
    if let Some(x) = &a.out {
        v.push(format!("train.out={}", p(x)));
    }
    if let Some(e) = a.epochs {
        v.push(format!("loss.epochs={e}"));
    }
    if let Some(s) = a.seed {
        v.push(format!("train.seed={s}"));
    }
    v.extend(a.set.iter().cloned());
    v
}

/// Runs `duet train classify`.
pub fn train(a: TrainClassifyArgs) -> Result<()> {
    let cfg: ClsConfig = super::config::load(a.config.as_deref(), &overrides(&a))?;
    if cfg.model.path.is_empty() {
        bail!("set the model: --model ENCODER_DIR (a pretrained encoder) or --model tfidf");
    }
    let toml = toml::to_string(&cfg).context("serialising the config")?;
    let (train, valid) = run::split_data(&cfg)?;
    eprintln!(
        "{} training and {} validation examples",
        train.len(),
        valid.len()
    );
    let outcome = run::fit(&cfg, &toml, &train, &valid, a.resume, stop_flag()?, &bar())?;
    let model = evaluate::best_or_final(&cfg.train.out);
    say!("{outcome:?}; model {}", model.display());
    Ok(())
}

/// Arguments of `duet eval classify`.
#[derive(Debug, Args)]
pub struct EvalClassifyArgs {
    /// A classifier directory; with --folds, the encoder to fine-tune (or `tfidf`).
    #[arg(long)]
    pub model: String,
    /// Labelled data (CSV/TSV/JSONL or a folder per label).
    #[arg(long)]
    pub data: PathBuf,
    /// Where metrics.json, report.md and confusion.png go.
    #[arg(long)]
    pub out: PathBuf,
    /// Evaluate only the ids listed in this JSON file (`[..]` or `{"test": [..]}`).
    #[arg(long)]
    pub ids: Option<PathBuf>,
    /// Stratified k-fold cross-validation: train K models with the recipe of --config.
    #[arg(long)]
    pub folds: Option<usize>,
    /// The training recipe for --folds.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Report metrics per value of this field and the widest gap between slices.
    #[arg(long)]
    pub slice_by: Option<String>,
    /// The text field (a name, or a column index for headerless files).
    #[arg(long, default_value = "text")]
    pub text_field: String,
    /// The label field.
    #[arg(long, default_value = "label")]
    pub label_field: String,
    /// Set any key of the --folds recipe (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// Runs `duet eval classify`.
pub fn eval(a: EvalClassifyArgs) -> Result<()> {
    let fields = Fields {
        text: a.text_field.clone(),
        label: a.label_field.clone(),
    };
    let mut examples = data::load(&a.data, &fields)?;
    if let Some(ids) = &a.ids {
        let keep = run::read_ids(ids)?;
        examples.retain(|e| keep.contains(&e.id));
        if examples.is_empty() {
            bail!(
                "{}: none of its ids occur in {}",
                ids.display(),
                a.data.display()
            );
        }
    }
    let opts = EvalOptions {
        slice_by: a.slice_by.clone(),
        batch: 32,
    };
    if let Some(k) = a.folds {
        let mut o = vec![format!("model.path={}", quoted(&a.model))];
        o.push(format!("data.text_field={}", quoted(&a.text_field)));
        o.push(format!("data.label_field={}", quoted(&a.label_field)));
        o.extend(a.set.iter().cloned());
        let cfg: ClsConfig = super::config::load(a.config.as_deref(), &o)?;
        let cv = evaluate::cross_validate(&cfg, &examples, k, &a.out, &opts, stop_flag()?, &bar())?;
        for name in ["accuracy", "macro_f1", "weighted_f1"] {
            if let Some(v) = cv.summary.get(name) {
                say!("{name}: {:.4} ± {:.4}", v.mean, v.std);
            }
        }
    } else {
        let c = Classifier::load(Path::new(&a.model))
            .with_context(|| format!("loading the classifier {}", a.model))?;
        let e = evaluate::evaluate(&c, &examples, &opts)?;
        evaluate::write_evaluation(&a.out, &format!("{} on {}", a.model, a.data.display()), &e)?;
        say!(
            "accuracy {:.4}, macro F1 {:.4}, weighted F1 {:.4} on {} examples",
            e.metrics.accuracy,
            e.metrics.macro_f1,
            e.metrics.weighted_f1,
            e.metrics.support
        );
    }
    say!("report: {}", a.out.join("report.md").display());
    Ok(())
}

/// Arguments of `duet eval split`.
#[derive(Debug, Args)]
pub struct SplitArgs {
    /// Labelled data.
    #[arg(long)]
    pub data: PathBuf,
    /// The JSON file of ids to write (`{"test": [..], "train": [..]}`).
    #[arg(long)]
    pub out: PathBuf,
    /// Share of each label held out for testing.
    #[arg(long, default_value_t = 0.2)]
    pub share: f64,
    /// Seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// The text field.
    #[arg(long, default_value = "text")]
    pub text_field: String,
    /// The label field.
    #[arg(long, default_value = "label")]
    pub label_field: String,
}

/// Runs `duet eval split`: a seeded, stratified test split keeping duplicates together.
pub fn split(a: SplitArgs) -> Result<()> {
    if !(0.0..1.0).contains(&a.share) || a.share == 0.0 {
        bail!("--share must be between 0 and 1, found {}", a.share);
    }
    let fields = Fields {
        text: a.text_field.clone(),
        label: a.label_field.clone(),
    };
    let examples = data::load(&a.data, &fields)?;
    let (test, duplicated) = data::grouped_test_split(&examples, a.share, a.seed);
    let test_set: std::collections::HashSet<usize> = test.iter().copied().collect();
    let ids = |keep: bool| -> Vec<&str> {
        examples
            .iter()
            .enumerate()
            .filter(|(i, _)| test_set.contains(i) == keep)
            .map(|(_, e)| e.id.as_str())
            .collect()
    };
    let v = serde_json::json!({
        "data": a.data.display().to_string(),
        "share": a.share,
        "seed": a.seed,
        "examples": examples.len(),
        "with_duplicates": duplicated,
        "test": ids(true),
        "train": ids(false),
    });
    std::fs::write(&a.out, serde_json::to_string_pretty(&v)? + "\n")
        .with_context(|| format!("writing {}", a.out.display()))?;
    say!(
        "{} test and {} train examples ({} had an exact duplicate; each group kept on one side) -> {}",
        test.len(),
        examples.len() - test.len(),
        duplicated,
        a.out.display()
    );
    Ok(())
}

/// Arguments of `duet classify`.
#[derive(Debug, Args)]
pub struct ClassifyArgs {
    /// A classifier directory.
    #[arg(long)]
    pub model: PathBuf,
    /// The text to classify; `-` or nothing reads one text per line from standard input.
    pub text: Option<String>,
    /// Texts per batch.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
}

/// Runs `duet classify`: one JSON line per text with the label and every class probability.
pub fn classify(a: ClassifyArgs) -> Result<()> {
    let c = Classifier::load(&a.model)
        .with_context(|| format!("loading the classifier {}", a.model.display()))?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let emit = |texts: &[String]| -> Result<()> {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let probs = c.predict_proba(&refs, a.batch_size.max(1))?;
        for (t, p) in texts.iter().zip(&probs) {
            let best = argmax(p);
            let map: serde_json::Map<String, serde_json::Value> = c
                .labels()
                .iter()
                .zip(p)
                .map(|(l, &v)| (l.clone(), serde_json::json!(v)))
                .collect();
            let line = serde_json::json!({
                "text": t,
                "label": c.labels()[best],
                "score": p[best],
                "probs": map,
            });
            writeln!(out, "{line}")?;
        }
        out.flush()?;
        Ok(())
    };
    super::for_each_batch(a.text.as_deref(), a.batch_size, emit)
}

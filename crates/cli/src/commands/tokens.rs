//! `duet train tokens`, `duet eval tokens` and `duet extract entities`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use duet_model::predict::EntityTagger;
use duet_train::classify::evaluate::best_or_final;
use duet_train::tokens::config::TokConfig;
use duet_train::tokens::data::{self, Format};
use duet_train::tokens::run;

use super::train::{bar, stop_flag};

/// Arguments of `duet train tokens`; every config key can also be set with `--set`.
#[derive(Debug, Args)]
pub struct TrainTokensArgs {
    /// A TOML config (examples/configs/ner.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// A pretrained encoder directory (sets model.path).
    #[arg(long)]
    pub model: Option<String>,
    /// Tagged sentences: CoNLL columns, Rasa NLU YAML or JSON lines (sets data.train).
    #[arg(long)]
    pub train: Option<PathBuf>,
    /// Validation sentences (sets data.valid); without them data.valid_share is held out.
    #[arg(long)]
    pub valid: Option<PathBuf>,
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
    /// Set any config key: --set model.max_length=64 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

fn overrides(a: &TrainTokensArgs) -> Vec<String> {
    let p = |p: &Path| format!("{:?}", p.display().to_string());
    let mut v = Vec::new();
    if let Some(m) = &a.model {
        v.push(format!("model.path={m:?}"));
    }
    if let Some(x) = &a.train {
        v.push(format!("data.train={}", p(x)));
    }
    if let Some(x) = &a.valid {
        v.push(format!("data.valid={}", p(x)));
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

/// Runs `duet train tokens`.
pub fn train(a: TrainTokensArgs) -> Result<()> {
    let cfg: TokConfig = super::config::load(a.config.as_deref(), &overrides(&a))?;
    if cfg.model.path.is_empty() {
        bail!("set the encoder: --model ENCODER_DIR (a pretrained encoder directory)");
    }
    let toml = toml::to_string(&cfg).context("serialising the config")?;
    let (train, valid) = run::split_data(&cfg)?;
    eprintln!(
        "{} training and {} validation sentences; tags {:?}",
        train.len(),
        valid.len(),
        data::tag_set(&train)
    );
    let outcome = run::fit(&cfg, &toml, &train, &valid, a.resume, stop_flag()?, &bar())?;
    say!(
        "{outcome:?}; model {}",
        best_or_final(&cfg.train.out).display()
    );
    Ok(())
}

/// Arguments of `duet eval tokens`.
#[derive(Debug, Args)]
pub struct EvalTokensArgs {
    /// A token-classification directory.
    #[arg(long)]
    pub model: PathBuf,
    /// Tagged sentences (CoNLL columns, Rasa NLU YAML or JSON lines).
    #[arg(long)]
    pub data: PathBuf,
    /// Where metrics.json, report.md and predictions.jsonl go.
    #[arg(long)]
    pub out: PathBuf,
    /// The reader: auto, conll, rasa or jsonl.
    #[arg(long, default_value = "auto")]
    pub format: String,
    /// The CoNLL column holding the tag (default: the last).
    #[arg(long)]
    pub tag_column: Option<usize>,
}

/// Runs `duet eval tokens`: entity-level precision, recall and F1 per type and overall.
pub fn eval(a: EvalTokensArgs) -> Result<()> {
    let format: Format =
        serde_json::from_value(serde_json::json!(a.format)).with_context(|| {
            format!(
                "--format must be auto, conll, rasa or jsonl, found {:?}",
                a.format
            )
        })?;
    let sentences = data::load(&a.data, format, a.tag_column)?;
    let tagger = EntityTagger::load(&a.model)
        .with_context(|| format!("loading the tagger {}", a.model.display()))?;
    let (e, pred) = run::evaluate(&tagger, &sentences)?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let mut lines = String::new();
    for (s, p) in sentences.iter().zip(&pred) {
        lines.push_str(
            &serde_json::json!({"id": s.id, "words": s.word_strs(), "tags": s.tags, "pred": p})
                .to_string(),
        );
        lines.push('\n');
    }
    std::fs::write(a.out.join("predictions.jsonl"), lines)
        .with_context(|| format!("writing {}", a.out.join("predictions.jsonl").display()))?;
    let title = format!("{} on {}", a.model.display(), a.data.display());
    std::fs::write(
        a.out.join("metrics.json"),
        serde_json::to_string_pretty(&e)? + "\n",
    )
    .with_context(|| format!("writing {}", a.out.join("metrics.json").display()))?;
    std::fs::write(a.out.join("report.md"), e.markdown(&title))
        .with_context(|| format!("writing {}", a.out.join("report.md").display()))?;
    say!(
        "entity precision {:.4}, recall {:.4}, F1 {:.4} (macro {:.4}) on {} sentences, {} entities",
        e.precision,
        e.recall,
        e.f1,
        e.macro_f1,
        e.sentences,
        e.entities
    );
    say!("report: {}", a.out.join("report.md").display());
    Ok(())
}

/// `duet extract ...`.
#[derive(Debug, Subcommand)]
pub enum ExtractCommand {
    /// Named entities (or slots) of each text, as JSON lines with character offsets.
    Entities(ExtractArgs),
    /// Key phrases of each document (YAKE, re-ranked by a sentence encoder with --model).
    Keywords(super::keywords::KeywordsArgs),
    /// JSON that fills a schema, written by a served language model (constrained decoding).
    Json(super::keywords::JsonArgs),
}

/// Arguments of `duet extract entities`.
#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// A token-classification directory.
    #[arg(long)]
    pub model: PathBuf,
    /// The text; `-` or nothing reads one text per line from standard input.
    pub text: Option<String>,
    /// Texts per batch.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
}

/// Runs `duet extract entities`: `{"text", "entities": [{"entity", "start", "end", "value",
/// "confidence"}]}` per line.
pub fn extract(cmd: ExtractCommand) -> Result<()> {
    let a = match cmd {
        ExtractCommand::Entities(a) => a,
        ExtractCommand::Keywords(a) => return super::keywords::run(a),
        ExtractCommand::Json(a) => return super::keywords::json(a),
    };
    let tagger = EntityTagger::load(&a.model)
        .with_context(|| format!("loading the tagger {}", a.model.display()))?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let emit = |texts: &[String]| -> Result<()> {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        for (t, es) in texts
            .iter()
            .zip(tagger.extract(&refs, a.batch_size.max(1))?)
        {
            writeln!(out, "{}", serde_json::json!({"text": t, "entities": es}))?;
        }
        out.flush()?;
        Ok(())
    };
    super::for_each_batch(a.text.as_deref(), a.batch_size, emit)
}

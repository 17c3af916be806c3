//! `duet train lm|mlm` and `duet eval lm`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use duet_train::config::{LmConfig, MlmConfig};
use indicatif::{ProgressBar, ProgressStyle};

/// Training commands.
#[derive(Debug, Subcommand)]
pub enum TrainCommand {
    /// Train a GPT-style decoder (GPT-2 or Llama layout) on a corpus.
    Lm(LmArgs),
    /// Pre-train a BERT-style encoder with masked language modelling.
    Mlm(LmArgs),
    /// Fine-tune a pretrained encoder (or fit TF-IDF + logistic regression) to classify text.
    Classify(super::classify::TrainClassifyArgs),
    /// Fine-tune a pretrained encoder to tag words (named entities, slots).
    Tokens(super::tokens::TrainTokensArgs),
}

/// Arguments shared by `duet train lm` and `duet train mlm`; every config key can also be set
/// with `--set section.key=value`.
#[derive(Debug, Args)]
pub struct LmArgs {
    /// A TOML config (examples/configs/*.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// A corpus directory (sets data.corpus).
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// A tokenizer.json (sets data.tokenizer).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Token shards from `duet tokenizer encode` (sets data.tokens).
    #[arg(long)]
    pub tokens: Option<PathBuf>,
    /// The run directory (sets train.out).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Optimizer steps (sets train.max_steps).
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Seed (sets train.seed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Continue from the newest checkpoint of the run directory.
    #[arg(long)]
    pub resume: bool,
    /// Set any config key: --set model.n_layer=4 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// Arguments of `duet eval lm`.
#[derive(Debug, Args)]
pub struct EvalLmArgs {
    /// A decoder model directory or a GGUF file.
    #[arg(long)]
    pub model: PathBuf,
    /// Token shards, or a corpus directory (encoded with the model's tokenizer).
    #[arg(long)]
    pub data: PathBuf,
    /// The split: train, valid or test.
    #[arg(long, default_value = "valid")]
    pub split: String,
    /// Windows per batch.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Most batches (0: the whole split).
    #[arg(long, default_value_t = 0)]
    pub max_batches: usize,
    /// Tokens per window (0: the model's whole context).
    #[arg(long, default_value_t = 0)]
    pub context: usize,
}

/// The overrides the flags stand for, before the generic `--set` ones.
fn flag_overrides(a: &LmArgs) -> Vec<String> {
    let q = |p: &std::path::Path| format!("{:?}", p.display().to_string());
    let mut v = Vec::new();
    if let Some(p) = &a.corpus {
        v.push(format!("data.corpus={}", q(p)));
    }
    if let Some(p) = &a.tokenizer {
        v.push(format!("data.tokenizer={}", q(p)));
    }
    if let Some(p) = &a.tokens {
        v.push(format!("data.tokens={}", q(p)));
    }
    if let Some(p) = &a.out {
        v.push(format!("train.out={}", q(p)));
    }
    if let Some(n) = a.max_steps {
        v.push(format!("train.max_steps={n}"));
    }
    if let Some(s) = a.seed {
        v.push(format!("train.seed={s}"));
    }
    v.extend(a.set.iter().cloned());
    v
}

/// A stop flag that Ctrl-C sets (the trainer checkpoints, then exits).
pub fn stop_flag() -> Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    ctrlc::set_handler(move || {
        if f.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!(
            "\nstopping after this step; writing a checkpoint (Ctrl-C again to quit at once)"
        );
    })
    .context("installing the Ctrl-C handler")?;
    Ok(flag)
}

/// The training progress bar.
pub fn bar() -> ProgressBar {
    let b = ProgressBar::new(0);
    b.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} step {pos}/{len} ETA {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b
}

/// Makes the calling thread one of rayon's workers (the pool keeps its size, one thread fewer
/// is spawned). A training step alternates short serial work with parallel loops; with the
/// caller outside the pool, the idle workers spin beside it and take its core.
pub fn join_thread_pool() {
    if let Err(e) = rayon::ThreadPoolBuilder::new()
        .use_current_thread()
        .build_global()
    {
        tracing::debug!("the thread pool was already built: {e}");
    }
}

/// Runs a training command.
pub fn run(cmd: TrainCommand) -> Result<()> {
    join_thread_pool();
    match cmd {
        TrainCommand::Classify(a) => super::classify::train(a)?,
        TrainCommand::Tokens(a) => super::tokens::train(a)?,
        TrainCommand::Lm(a) => {
            let cfg: LmConfig = super::config::load(a.config.as_deref(), &flag_overrides(&a))?;
            let toml = toml::to_string(&cfg).context("serialising the config")?;
            let (outcome, step) =
                duet_train::run::train_lm(&cfg, &toml, a.resume, stop_flag()?, &bar())?;
            say!(
                "{outcome:?} at step {step}; run directory {}",
                cfg.train.out.display()
            );
        }
        TrainCommand::Mlm(a) => {
            let mut overrides = flag_overrides(&a);
            if a.out.is_none() && !overrides.iter().any(|o| o.starts_with("train.out")) {
                overrides.insert(0, "train.out=\"runs/mlm\"".into());
            }
            let cfg: MlmConfig = super::config::load(a.config.as_deref(), &overrides)?;
            let toml = toml::to_string(&cfg).context("serialising the config")?;
            let (outcome, step) =
                duet_train::run::train_mlm(&cfg, &toml, a.resume, stop_flag()?, &bar())?;
            say!(
                "{outcome:?} at step {step}; run directory {}",
                cfg.train.out.display()
            );
        }
    }
    Ok(())
}

/// Runs `duet eval lm`.
pub fn eval_lm(a: EvalLmArgs) -> Result<()> {
    let split = duet_corpus::Split::from_name(&a.split)
        .with_context(|| format!("--split must be train, valid or test, found {:?}", a.split))?;
    let data = if a.data.join("manifest.json").is_file()
        && a.data.join(split.name()).join("tokens-00000.bin").exists()
    {
        duet_train::config::DataSection {
            tokens: Some(a.data.clone()),
            ..Default::default()
        }
    } else {
        duet_train::config::DataSection {
            corpus: Some(a.data.clone()),
            ..Default::default()
        }
    };
    let scratch = std::env::temp_dir().join(format!("duet-eval-{}", std::process::id()));
    let m = duet_train::run::eval_lm(
        &a.model,
        &data,
        &scratch,
        split,
        a.batch_size,
        a.max_batches,
        a.context,
    );
    let _ = std::fs::remove_dir_all(&scratch);
    let m = m?;
    say!("{}", serde_json::to_string_pretty(&m)?);
    Ok(())
}

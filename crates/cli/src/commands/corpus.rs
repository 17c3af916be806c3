//! `duet corpus build|merge|crawl`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use duet_corpus::{BuildOptions, Config, MergeOptions, Report, ShardSpec};

/// Corpus commands.
#[derive(Debug, Subcommand)]
pub enum CorpusCommand {
    /// Read, clean, filter, de-duplicate, redact and split text into a corpus directory.
    Build(BuildArgs),
    /// Combine corpora built with `--shard K/N`, removing duplicates across them.
    Merge(MergeArgs),
    /// Fetch pages from sites politely (robots.txt, a delay per host) into a WARC file.
    Crawl(super::crawl::CrawlArgs),
}

/// Arguments of `duet corpus build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Files and directories to read (txt, md, html, jsonl, csv/tsv, fortune, dictd, warc, wet,
    /// epub, pdf; .gz/.zst).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// The corpus directory to write.
    #[arg(long)]
    pub out: PathBuf,
    /// A TOML config (see examples/configs/corpus.toml); flags and --set override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Set any config key: --set dedup.threshold=0.7 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Replace the output directory if it exists.
    #[arg(long)]
    pub force: bool,
    /// Stop at the first unreadable file or malformed record.
    #[arg(long)]
    pub strict: bool,
    /// Process one deterministic part of the inputs, K of N (0-based), for batch schedulers.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,
    /// Remove documents that duplicate an earlier corpus (repeatable).
    #[arg(long, value_name = "DIR")]
    pub dedup_against: Vec<PathBuf>,
    /// Drop documents sharing long n-grams with these evaluation sets (repeatable).
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub decontaminate: Vec<PathBuf>,
    /// Worker threads (0: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Arguments of `duet corpus merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Corpus directories made with `--shard K/N`.
    #[arg(required = true)]
    pub parts: Vec<PathBuf>,
    /// The merged corpus directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace the output directory if it exists.
    #[arg(long)]
    pub force: bool,
}

/// Runs a corpus command.
pub fn run(cmd: CorpusCommand) -> Result<()> {
    match cmd {
        CorpusCommand::Build(a) => build(a),
        CorpusCommand::Merge(a) => merge(a),
        CorpusCommand::Crawl(a) => super::crawl::run(a),
    }
}

fn build(a: BuildArgs) -> Result<()> {
    let mut cfg: Config = super::config::load(a.config.as_deref(), &a.set)?;
    if let Some(t) = a.threads {
        cfg.threads = t;
    }
    cfg.validate()?;
    let shard = a
        .shard
        .as_deref()
        .map(str::parse::<ShardSpec>)
        .transpose()?;
    let opts = BuildOptions {
        inputs: a.inputs,
        out: a.out.clone(),
        force: a.force,
        strict: a.strict,
        shard,
        dedup_against: a.dedup_against,
        decontaminate: a.decontaminate,
        progress: super::byte_bar(),
    };
    let report =
        duet_corpus::build(&cfg, &opts).with_context(|| format!("building {}", a.out.display()))?;
    summarize(&report, &a.out)
}

fn merge(a: MergeArgs) -> Result<()> {
    let opts = MergeOptions {
        parts: a.parts.clone(),
        out: a.out.clone(),
        force: a.force,
        progress: super::count_bar(a.parts.len() as u64),
    };
    let report =
        duet_corpus::merge(&opts).with_context(|| format!("merging into {}", a.out.display()))?;
    summarize(&report, &a.out)
}

/// Prints the figures a user checks first.
fn summarize(r: &Report, out: &std::path::Path) -> Result<()> {
    if !r.balanced() {
        bail!(
            "internal accounting error: {} in != {} out + {} dropped",
            r.docs_in,
            r.docs_out,
            r.total_dropped()
        );
    }
    let mb = r.bytes_in as f64 / 1e6;
    say!(
        "{} documents in, {} kept, {} dropped; {:.1} MB in {:.1} s ({:.0} docs/s, {:.1} MB/s)",
        r.docs_in,
        r.docs_out,
        r.total_dropped(),
        mb,
        r.seconds,
        r.docs_in as f64 / r.seconds.max(1e-9),
        mb / r.seconds.max(1e-9)
    );
    let mut reasons: Vec<_> = r.dropped.iter().collect();
    reasons.sort_by_key(|(_, d)| std::cmp::Reverse(d.count));
    for (k, d) in reasons.iter().take(8) {
        say!("  dropped {:>9}  {k}", d.count);
    }
    say!("report: {}", out.join("report.md").display());
    Ok(())
}

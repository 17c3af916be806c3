//! `duet corpus crawl`: fetch pages politely into a WARC file that `duet corpus build` reads.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use duet_corpus::crawl::{CrawlConfig, Scope, WARC_FILE, crawl};

/// Arguments of `duet corpus crawl`.
#[derive(Debug, Args)]
pub struct CrawlArgs {
    /// Pages to start from (http:// or https://; https through rustls with the Mozilla root
    /// certificates).
    #[arg(required = true, value_name = "SEED_URL")]
    pub seeds: Vec<String>,
    /// The directory to write crawl.warc.gz and the checkpoint in; an interrupted crawl there
    /// resumes.
    #[arg(long)]
    pub out: PathBuf,
    /// A TOML file of crawl settings; flags and --set override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Set any crawl key: --set max_depth=3 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Which links to follow.
    #[arg(long, value_enum)]
    pub scope: Option<ScopeArg>,
    /// Responses to fetch in all, over every run [default: 1000].
    #[arg(long)]
    pub max_pages: Option<u64>,
    /// Link depth from the seeds [default: 5].
    #[arg(long)]
    pub max_depth: Option<u32>,
    /// Seconds between two requests to one host [default: 1].
    #[arg(long)]
    pub delay: Option<f64>,
    /// Requests in flight at once, over all hosts [default: 4].
    #[arg(long)]
    pub concurrency: Option<usize>,
}

/// `--scope` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ScopeArg {
    /// Any page on a seed's host.
    Host,
    /// Pages under a seed's folder.
    Prefix,
}

/// Runs the crawl and prints what it did.
pub fn run(a: CrawlArgs) -> Result<()> {
    let mut cfg: CrawlConfig = super::config::load(a.config.as_deref(), &a.set)?;
    if let Some(s) = a.scope {
        cfg.scope = match s {
            ScopeArg::Host => Scope::Host,
            ScopeArg::Prefix => Scope::Prefix,
        };
    }
    if let Some(n) = a.max_pages {
        cfg.max_pages = n;
    }
    if let Some(d) = a.max_depth {
        cfg.max_depth = d;
    }
    if let Some(d) = a.delay {
        cfg.delay = d;
    }
    if let Some(c) = a.concurrency {
        cfg.concurrency = c;
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let resolved = toml::to_string(&cfg).context("writing the crawl config")?;
    std::fs::write(a.out.join("crawl.toml"), resolved)
        .with_context(|| format!("writing {}", a.out.join("crawl.toml").display()))?;
    let bar = super::count_bar(cfg.max_pages);
    let s = crawl(&cfg, &a.seeds, &a.out, &bar)
        .with_context(|| format!("crawling into {}", a.out.display()))?;
    bar.finish_and_clear();
    say!(
        "{} responses fetched, {} recorded, {} not recorded (not HTML or text, too large, or an error), {} disallowed by robots.txt, {} failed",
        s.fetched,
        s.recorded,
        s.not_recorded,
        s.disallowed,
        s.failed
    );
    say!("warc: {}", a.out.join(WARC_FILE).display());
    Ok(())
}

//! One module per verb; each exposes `run(args) -> anyhow::Result<()>`.

/// Writes a status line to stdout. Unlike `println!` it does not panic when stdout is a closed
/// pipe (`duet ... | head`, or a supervisor that stopped reading a server's output): the line is
/// dropped and the command goes on. Bulk output (generated text, predictions, vectors) goes
/// through a handle instead, so that a closed pipe ends the command (`main` exits quietly).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

pub mod chat;
pub mod classify;
pub mod config;
pub mod corpus;
pub mod crawl;
pub mod dialog;
pub mod export;
pub mod keywords;
pub mod model;
pub mod quantize;
pub mod quickstart;
pub mod serve;
pub mod tokenizer;
pub mod tokens;
pub mod train;

use indicatif::{ProgressBar, ProgressStyle};

/// The async runtime of the servers: two worker threads (model work runs on the blocking pool).
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .build()
        .context("starting the async runtime")
}

/// A progress bar over bytes with a message, drawn on stderr (hidden when it is not a terminal).
pub fn byte_bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// A progress bar over items with a message.
pub fn count_bar(len: u64) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} {per_sec} ETA {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Calls `emit` with `text` alone, or, when it is absent or `-`, with the non-empty lines of
/// standard input in batches of `batch` (the input of `duet classify` and `duet extract`).
pub fn for_each_batch(
    text: Option<&str>,
    batch: usize,
    mut emit: impl FnMut(&[String]) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::io::BufRead;
    if let Some(t) = text.filter(|t| *t != "-") {
        return emit(&[t.to_owned()]);
    }
    let mut lines = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let line = line.context("reading standard input")?;
        if line.trim().is_empty() {
            continue;
        }
        lines.push(line);
        if lines.len() == batch.max(1) {
            emit(&lines)?;
            lines.clear();
        }
    }
    if !lines.is_empty() {
        emit(&lines)?;
    }
    Ok(())
}

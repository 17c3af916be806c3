//! Sentence-embedding throughput, in-process, as bench/model measures its peers: one warm-up
//! pass over the texts, then timed passes; prints JSON with sentences/s.
//!
//! `cargo run --release -p duet-model --example bench_embed -- MODEL_DIR TEXTS.txt [BATCH] [MAX_LEN] [RUNS]`

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::Device;
use duet_model::embed::SentenceEmbedder;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let model = args
        .get(1)
        .context("usage: bench_embed MODEL_DIR TEXTS.txt [BATCH] [MAX_LEN] [RUNS]")?;
    let texts = std::fs::read_to_string(args.get(2).context("texts file")?)?;
    let batch: usize = args.get(3).map_or(Ok(32), |s| s.parse())?;
    let max_len: usize = args.get(4).map_or(Ok(128), |s| s.parse())?;
    let runs: usize = args.get(5).map_or(Ok(5), |s| s.parse())?;
    let texts: Vec<&str> = texts.lines().collect();
    let e = SentenceEmbedder::load(Path::new(model), &Device::Cpu)?.with_max_len(max_len)?;
    e.embed(&texts, batch)?;
    let mut rates = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let v = e.embed(&texts, batch)?;
        rates.push(v.len() as f64 / t.elapsed().as_secs_f64());
    }
    let mut sorted = rates.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "{}",
        serde_json::json!({"peer": "duet", "sentences_per_s": sorted[sorted.len() / 2], "runs": rates, "batch": batch, "max_len": max_len, "texts": texts.len()})
    );
    Ok(())
}

//! llama-bench's two measures on a GGUF file, for `bench/gguf/run.sh`: prompt processing of
//! `pp` tokens in one batch (`pp512`) and generation of `tg` tokens one at a time from an
//! empty context (`tg128`), each repeated after a warm-up; prints one JSON object.
//!
//! `cargo run --release -p duet-model --example bench_gguf -- FILE [PP] [TG] [REPS]`
//! (threads from `DUET_THREADS`, default all CPUs).

use std::time::Instant;

use anyhow::{Context, Result};
use duet_model::lm::{Lm, LoadedLm};

fn stats(v: &[f64]) -> (f64, f64) {
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (v.len().max(2) - 1) as f64;
    (mean, var.sqrt())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .context("usage: bench_gguf FILE [PP] [TG] [REPS]")?;
    let pp: usize = args.get(2).map_or(Ok(512), |s| s.parse())?;
    let tg: usize = args.get(3).map_or(Ok(128), |s| s.parse())?;
    let reps: usize = args.get(4).map_or(Ok(5), |s| s.parse())?;
    let loaded = LoadedLm::load(std::path::Path::new(path), &candle_core::Device::Cpu)?;
    let lm: &Lm = &loaded.lm;
    let vocab = lm.vocab() as u32;
    // Token ids spread over the vocabulary, as llama-bench's random prompt.
    let prompt: Vec<u32> = (0..pp as u32).map(|i| (i * 7919 + 13) % vocab).collect();
    let mut pp_rates = Vec::new();
    for rep in 0..=reps {
        let mut cache = lm.new_cache();
        let t = Instant::now();
        lm.prefill(&prompt, &mut cache)?;
        if rep > 0 {
            pp_rates.push(pp as f64 / t.elapsed().as_secs_f64());
        }
    }
    let mut tg_rates = Vec::new();
    for rep in 0..=reps {
        let mut cache = lm.new_cache();
        let mut tok = 1u32;
        let t = Instant::now();
        for _ in 0..tg {
            let l = lm.decode(&[tok], &mut [&mut cache])?;
            tok = duet_model::generate::argmax(&l);
        }
        if rep > 0 {
            tg_rates.push(tg as f64 / t.elapsed().as_secs_f64());
        }
    }
    let ((ppm, pps), (tgm, tgs)) = (stats(&pp_rates), stats(&tg_rates));
    let threads = duet_model::quant::pool::global().threads();
    println!(
        "{}",
        serde_json::json!({
            "file": path,
            "model": lm.describe(),
            "threads": threads,
            "isa": duet_model::quant::Isa::detect().name(),
            "pp": pp, "pp_tokens_per_s": ppm, "pp_stddev": pps, "pp_runs": pp_rates,
            "tg": tg, "tg_tokens_per_s": tgm, "tg_stddev": tgs, "tg_runs": tg_rates,
        })
    );
    Ok(())
}

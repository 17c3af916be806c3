//! Greedy decode speed, in-process: prefill a prompt, then time `N` single-token steps with the
//! KV cache; prints JSON with decode tokens/s (prefill timed apart).
//!
//! `cargo run --release -p duet-model --example bench_decode -- MODEL_DIR "prompt text" [NEW_TOKENS] [RUNS]`

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use duet_model::generate::argmax;
use duet_model::gpt::Gpt;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let dir = Path::new(
        args.get(1)
            .context("usage: bench_decode MODEL_DIR PROMPT [NEW_TOKENS] [RUNS]")?,
    );
    let prompt = args.get(2).context("prompt")?;
    let n: usize = args.get(3).map_or(Ok(128), |s| s.parse())?;
    let runs: usize = args.get(4).map_or(Ok(3), |s| s.parse())?;
    let dev = Device::Cpu;
    let model = duet_model::load_gpt(dir, &dev)?;
    let tok = duet_model::load_tokenizer(dir)?;
    let ids = tok
        .encode(prompt.as_str(), false)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .get_ids()
        .to_vec();
    let run = || -> Result<(f64, f64, Vec<u32>)> {
        let mut cache = model.new_cache();
        let t0 = Instant::now();
        let logits = model.forward(
            &Tensor::new(ids.as_slice(), &dev)?.unsqueeze(0)?,
            Some(&mut cache),
            None,
        )?;
        let mut next = argmax(&Gpt::last_logits(&logits)?.squeeze(0)?.to_vec1::<f32>()?);
        let prefill = t0.elapsed().as_secs_f64();
        let mut out = vec![next];
        let t1 = Instant::now();
        while out.len() < n {
            let l = model.decode_step(&[next], &mut [&mut cache])?.squeeze(0)?;
            next = argmax(&l.to_vec1::<f32>()?);
            out.push(next);
        }
        Ok((prefill, t1.elapsed().as_secs_f64(), out))
    };
    run()?;
    let mut rates = Vec::new();
    let mut prefills = Vec::new();
    let mut tokens = Vec::new();
    for _ in 0..runs {
        let (p, d, out) = run()?;
        prefills.push(p);
        rates.push((n - 1) as f64 / d);
        tokens = out;
    }
    let mut sorted = rates.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "{}",
        serde_json::json!({"peer": "duet", "decode_tokens_per_s": sorted[sorted.len() / 2], "runs": rates, "prefill_s": prefills, "prompt_tokens": ids.len(), "new_tokens": n, "first_tokens": &tokens[..tokens.len().min(16)]})
    );
    Ok(())
}

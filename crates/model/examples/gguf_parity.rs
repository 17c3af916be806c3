//! duet against a golden file that llama.cpp wrote for a GGUF file
//! (`testdata/gguf/smollm2/make_golden.py --gguf FILE --out DIR`): for each prompt, whether duet's
//! token ids and greedy continuation equal llama.cpp's; prints one JSON object. Used by
//! `bench/gguf/quantize_parity.sh` on the files `duet quantize` writes.
//!
//! `cargo run --release -p duet-model --example gguf_parity -- FILE GOLDEN.jsonl`

use anyhow::{Context, Result};
use duet_model::generate::argmax;
use duet_model::lm::LoadedLm;
use serde_json::{Value, json};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(file), Some(golden)) = (args.get(1), args.get(2)) else {
        anyhow::bail!("usage: gguf_parity FILE GOLDEN.jsonl");
    };
    let loaded = LoadedLm::load(std::path::Path::new(file), &candle_core::Device::Cpu)?;
    let text = std::fs::read_to_string(golden).with_context(|| golden.clone())?;
    let (mut n, mut same_ids, mut same_greedy, mut diverged) = (0, 0, 0, Vec::new());
    for (i, line) in text.lines().enumerate() {
        let g: Value = serde_json::from_str(line).with_context(|| format!("{golden}:{}", i + 1))?;
        let ids_of = |k: &str| -> Vec<u32> {
            g[k].as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_u64().map(|x| x as u32))
                .collect()
        };
        let (want_prompt, want) = (ids_of("prompt_ids"), ids_of("greedy_ids"));
        let ids = loaded
            .tokenizer
            .encode(g["text"].as_str().unwrap_or_default(), true)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .get_ids()
            .to_vec();
        n += 1;
        same_ids += usize::from(ids == want_prompt);
        // Greedy steps until the first token that differs from llama.cpp's.
        let mut cache = loaded.lm.new_cache();
        let mut logits = loaded.lm.prefill(&want_prompt, &mut cache)?;
        let mut step = 0;
        while step < want.len() && argmax(&logits) == want[step] {
            step += 1;
            if step < want.len() {
                logits = loaded.lm.decode(&[want[step - 1]], &mut [&mut cache])?;
            }
        }
        if step == want.len() {
            same_greedy += 1;
        } else {
            let ours = argmax(&logits);
            let theirs = want[step] as usize;
            let col = |k: &str| g["steps"][k].get(step).cloned().unwrap_or(Value::Null);
            diverged.push(json!({
                "id": g["id"], "step": step,
                "duet": {"pick": ours, "logit": logits[ours as usize],
                         "logit_of_llama_cpp_pick": logits[theirs]},
                "llama_cpp": {"pick": theirs, "logit": col("logit"),
                              "runner_up": col("second_id"), "runner_up_logit": col("second_logit")},
            }));
        }
    }
    println!(
        "{}",
        json!({"file": file, "golden": golden, "prompts": n, "same_prompt_ids": same_ids,
               "same_greedy": same_greedy, "diverged": diverged})
    );
    Ok(())
}

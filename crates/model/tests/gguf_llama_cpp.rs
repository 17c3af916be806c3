//! duet against llama.cpp on the real SmolLM2-135M-Instruct GGUF (Q4_1): the token ids of
//! every golden prompt, and greedy continuations of up to 32 tokens. The golden file comes
//! from llama.cpp itself (`testdata/gguf/smollm2/make_golden.py`, llama-cpp-python built from
//! its sdist); the model from `scripts/fetch-data.sh smollm2`.
//!
//! Quantized activations may flip a near-tie, so the bar is llama.cpp's: at least 95% of the
//! continuations identical; each divergence is printed with both sides' logits.

use std::path::PathBuf;

use anyhow::{Context, Result};
use duet_model::generate::argmax;
use duet_model::lm::LoadedLm;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn model_path() -> Option<PathBuf> {
    let p = root().join("data/external/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    p.is_file().then_some(p)
}

/// llama.cpp's greedy steps, one column per field.
#[derive(serde::Deserialize)]
struct Steps {
    id: Vec<u32>,
    logit: Vec<f32>,
    second_id: Vec<u32>,
    second_logit: Vec<f32>,
}

#[derive(serde::Deserialize)]
struct Golden {
    id: String,
    text: String,
    prompt_ids: Vec<u32>,
    greedy_ids: Vec<u32>,
    steps: Steps,
}

fn goldens() -> Result<Vec<Golden>> {
    let path = root().join("testdata/gguf/smollm2/golden.jsonl");
    std::fs::read_to_string(&path)
        .with_context(|| path.display().to_string())?
        .lines()
        .map(|l| Ok(serde_json::from_str(l)?))
        .collect()
}

#[test]
fn smollm2_prompts_tokenize_and_continue_as_in_llama_cpp() -> Result<()> {
    let Some(path) = model_path() else {
        eprintln!("skipped: run scripts/fetch-data.sh smollm2 for the SmolLM2 GGUF");
        return Ok(());
    };
    let loaded = LoadedLm::load(&path, &candle_core::Device::Cpu)?;
    let mut eog = loaded.stop_ids();
    eog.sort_unstable();
    assert_eq!(
        eog,
        [0, 2, 4],
        "the end-of-generation tokens llama.cpp reports"
    );
    let goldens = goldens()?;
    assert!(
        goldens.len() >= 100,
        "the golden file has {} prompts",
        goldens.len()
    );
    let (mut same, mut report) = (0, Vec::new());
    for g in &goldens {
        let ids = loaded
            .tokenizer
            .encode(g.text.as_str(), true)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .get_ids()
            .to_vec();
        assert_eq!(
            ids, g.prompt_ids,
            "{}: token ids differ from llama.cpp's",
            g.id
        );
        let mut cache = loaded.lm.new_cache();
        let mut logits = loaded.lm.prefill(&ids, &mut cache)?;
        let mut ours = Vec::new();
        for step in 0..g.greedy_ids.len() {
            let t = argmax(&logits);
            ours.push(t);
            if t != g.greedy_ids[step] {
                let s = &g.steps;
                report.push(format!(
                    "{} step {step}: duet {t} ({:.3}; llama.cpp's pick {} at {:.3}), llama.cpp {} \
                     ({:.3}; runner-up {} at {:.3})",
                    g.id,
                    logits[t as usize],
                    s.id[step],
                    logits[s.id[step] as usize],
                    s.id[step],
                    s.logit[step],
                    s.second_id[step],
                    s.second_logit[step]
                ));
                break;
            }
            if eog.contains(&t) || step + 1 == g.greedy_ids.len() {
                break;
            }
            logits = loaded.lm.decode(&[t], &mut [&mut cache])?;
        }
        if ours == g.greedy_ids {
            same += 1;
        }
    }
    eprintln!(
        "{same} of {} greedy continuations equal llama.cpp's",
        goldens.len()
    );
    for r in &report {
        eprintln!("  {r}");
    }
    assert!(
        same * 100 >= goldens.len() * 95,
        "only {same} of {} continuations equal llama.cpp's",
        goldens.len()
    );
    Ok(())
}

//! Writes models that duet initialised (seeded) and saved in the Hugging Face layout, each with
//! `duet_outputs.safetensors` (inputs and duet's logits), so that
//! `testdata/model/check_roundtrip.py DIR` can load them with `transformers` and compare.
//!
//! `cargo run --release -p duet-model --example save_for_transformers -- OUT_DIR`
//! (testdata/model/roundtrip.sh runs it and the checks).

use std::collections::HashMap;
use std::path::Path;

use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use duet_model::bert::{
    self, BertForMaskedLm, BertForSequenceClassification, BertForTokenClassification,
};
use duet_model::gpt::{Config, Gpt};
use duet_model::hub::save_pretrained;
use duet_model::init::{VarInit, tensors};

fn write_outputs(dir: &Path, ids: &Tensor, mask: Option<&Tensor>, logits: &Tensor) -> Result<()> {
    let mut out = HashMap::new();
    out.insert("input_ids".to_owned(), ids.to_dtype(DType::I64)?);
    if let Some(m) = mask {
        out.insert("attention_mask".to_owned(), m.to_dtype(DType::I64)?);
    }
    out.insert("logits".to_owned(), logits.clone());
    candle_core::safetensors::save(&out, dir.join("duet_outputs.safetensors"))?;
    Ok(())
}

fn main() -> Result<()> {
    let out = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: save_for_transformers OUT_DIR"))?;
    let out = Path::new(&out);
    let dev = Device::Cpu;
    let ids = Tensor::new(
        &[
            [3u32, 17, 42, 9, 100, 7, 64, 5],
            [11, 2, 250, 31, 8, 99, 120, 4],
        ],
        &dev,
    )?;
    // Decoders.
    let mut llama = Config::gpt2(256, 64, 32, 2, 4);
    llama.model_type = "llama".into();
    llama.num_key_value_heads = Some(2);
    llama.intermediate_size = Some(64);
    llama.rms_norm_eps = Some(1e-6);
    llama.layer_norm_epsilon = None;
    llama.activation_function = None;
    llama.hidden_act = Some("silu".into());
    llama.tie_word_embeddings = Some(false);
    llama.rope_theta = Some(10_000.0);
    let mut qwen2 = llama.clone();
    qwen2.model_type = "qwen2".into();
    qwen2.tie_word_embeddings = Some(true);
    qwen2.rope_theta = Some(1_000_000.0);
    for (name, cfg) in [
        ("duet-gpt2", Config::gpt2(256, 64, 32, 2, 4)),
        ("duet-llama", llama),
        ("duet-qwen2", qwen2),
    ] {
        let vm = VarMap::new();
        let m = Gpt::load(VarInit::new(&vm, 7, None).var_builder(&dev), &cfg)?;
        let logits = m.forward(&ids, None, None)?;
        let dir = out.join(name);
        save_pretrained(&dir, &tensors(&vm), &cfg.to_hf_json(), None)?;
        write_outputs(&dir, &ids, None, &logits)?;
        println!("wrote {}", dir.display());
    }
    // Encoders with their heads.
    let mask = Tensor::new(
        &[[1u32, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0, 0, 0]],
        &dev,
    )?;
    let types = ids.zeros_like()?;
    for arch in [
        "BertForSequenceClassification",
        "BertForMaskedLM",
        "BertForTokenClassification",
    ] {
        let mut cfg = bert::Config::tiny();
        cfg.vocab_size = 256;
        cfg.architectures = Some(vec![arch.to_owned()]);
        let vm = VarMap::new();
        let vb = VarInit::new(&vm, 11, None).var_builder(&dev);
        let logits = match arch {
            "BertForSequenceClassification" => {
                cfg.set_labels(&["ham".to_owned(), "spam".to_owned()]);
                BertForSequenceClassification::load(vb, &cfg, 2)?
                    .forward(&ids, &types, &mask, None)?
            }
            "BertForMaskedLM" => {
                BertForMaskedLm::load(vb, &cfg)?.forward(&ids, &types, &mask, None)?
            }
            _ => {
                cfg.set_labels(&["O".to_owned(), "B-LOC".to_owned(), "I-LOC".to_owned()]);
                BertForTokenClassification::load(vb, &cfg, 3)?.forward(&ids, &types, &mask, None)?
            }
        };
        let dir = out.join(format!("duet-{}", arch.to_lowercase()));
        save_pretrained(&dir, &tensors(&vm), &serde_json::to_value(&cfg)?, None)?;
        write_outputs(&dir, &ids, Some(&mask), &logits)?;
        println!("wrote {}", dir.display());
    }
    Ok(())
}

//! Parity with Hugging Face `transformers`: tiny random checkpoints and their outputs were made
//! by testdata/model/make_tiny.py (seeded); duet must load them and agree within 1e-4, and
//! greedy decoding must pick the same 20 tokens.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use candle_core::{D, DType, Device, IndexOp, Tensor};
use duet_model::bert::{
    self, BertForMaskedLm, BertForSequenceClassification, BertForTokenClassification, BertModel,
};
use duet_model::generate;
use duet_model::gpt::{Config, Gpt};
use duet_model::hub::Checkpoint;
use duet_model::lm::Lm;

const TOL: f32 = 1e-4;

fn dir(name: &str) -> PathBuf {
    common::root().join("testdata/model").join(name)
}

fn golden(name: &str) -> Result<HashMap<String, Tensor>> {
    Ok(candle_core::safetensors::load(
        dir(name).join("golden.safetensors"),
        &Device::Cpu,
    )?)
}

fn max_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    anyhow::ensure!(
        a.dims() == b.dims(),
        "shapes differ: {:?} vs {:?}",
        a.dims(),
        b.dims()
    );
    Ok((a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
}

fn ids(t: &Tensor) -> Result<Tensor> {
    Ok(t.to_dtype(DType::U32)?)
}

fn load_gpt(path: &Path) -> Result<Gpt> {
    Ok(duet_model::load_gpt(path, &Device::Cpu)?)
}

#[test]
fn decoders_match_transformers_logits_cache_and_greedy() -> Result<()> {
    for name in ["tiny-gpt2", "tiny-llama", "tiny-qwen2"] {
        let m = load_gpt(&dir(name))?;
        let g = golden(name)?;
        let input = ids(&g["input_ids"])?;
        let logits = m.forward(&input, None, None)?;
        let d = max_diff(&logits, &g["logits"])?;
        println!("{name}: logits max diff {d:.2e}");
        assert!(d < TOL, "{name}: logits differ by {d}");
        // With a cache: 6 tokens, then the other 4 one at a time, per row.
        for row in 0..2 {
            let r = input.i(row..row + 1)?;
            let mut cache = m.new_cache();
            let first = m.forward(&r.narrow(1, 0, 6)?, Some(&mut cache), None)?;
            let d = max_diff(&first, &g["logits_step"].i(row..row + 1)?)?;
            assert!(d < TOL, "{name}: prefix logits differ by {d}");
            for t in 6..10 {
                let step = m.forward(&r.narrow(1, t, 1)?, Some(&mut cache), None)?;
                let d = max_diff(&step, &g["logits"].i((row..row + 1, t..t + 1))?)?;
                assert!(d < TOL, "{name}: cached step {t} differs by {d}");
            }
            // Greedy continuation: 20 tokens, the same as transformers' generate().
            let prompt: Vec<u32> = r.squeeze(0)?.to_vec1()?;
            let ours = generate::greedy(&Lm::Candle(Box::new(m.clone())), &prompt, 20)?;
            let theirs: Vec<u32> = ids(&g["greedy"].i((row, 10..30))?)?.to_vec1()?;
            assert_eq!(ours, theirs, "{name} row {row}: greedy tokens differ");
        }
    }
    Ok(())
}

#[test]
fn batched_decoding_equals_one_sequence_at_a_time() -> Result<()> {
    let m = Lm::Candle(Box::new(load_gpt(&dir("tiny-llama"))?));
    let g = golden("tiny-llama")?;
    let input = ids(&g["input_ids"])?;
    let prompts: Vec<Vec<u32>> = vec![
        input.i(0)?.to_vec1()?,
        input.i(1)?.narrow(0, 0, 7)?.to_vec1()?,
    ];
    let tok = tokenizers::Tokenizer::from_file(common::root().join("testdata/tokenizer/bpe.json"))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let params = generate::SamplingParams {
        max_new_tokens: 12,
        ..Default::default()
    };
    let batch = generate::generate_batch(&m, &tok, &prompts, &[params.clone(), params.clone()])?;
    for (p, b) in prompts.iter().zip(&batch) {
        let single = generate::generate(&m, &tok, p, &params, &mut |_| true)?;
        assert_eq!(single.tokens, b.tokens);
        assert_eq!(single.tokens, generate::greedy(&m, p, 12)?);
    }
    Ok(())
}

#[test]
fn bert_heads_match_transformers() -> Result<()> {
    let dev = Device::Cpu;
    for name in ["tiny-bert-mlm", "tiny-bert-cls", "tiny-bert-tok"] {
        let cfg = bert::Config::load(&dir(name).join("config.json"))?;
        let ck = Checkpoint::load(&dir(name), &dev)?;
        let g = golden(name)?;
        let (input, types, mask) = (
            ids(&g["input_ids"])?,
            ids(&g["token_type_ids"])?,
            ids(&g["attention_mask"])?,
        );
        let vb = ck.var_builder(&dev);
        let (logits, hidden) = match name {
            "tiny-bert-mlm" => {
                let m = BertForMaskedLm::load(vb, &cfg)?;
                (
                    m.forward(&input, &types, &mask, None)?,
                    m.bert.forward(&input, &types, &mask, None)?,
                )
            }
            "tiny-bert-cls" => {
                let m = BertForSequenceClassification::load(vb, &cfg, cfg.labels().len())?;
                let h = m.bert.forward(&input, &types, &mask, None)?;
                let d = max_diff(&m.bert.pool(&h)?, &g["pooled"])?;
                assert!(d < TOL, "pooled output differs by {d}");
                assert_eq!(cfg.labels(), ["neg", "neu", "pos"]);
                (m.forward(&input, &types, &mask, None)?, h)
            }
            _ => {
                let m = BertForTokenClassification::load(vb, &cfg, cfg.labels().len())?;
                (
                    m.forward(&input, &types, &mask, None)?,
                    m.bert.forward(&input, &types, &mask, None)?,
                )
            }
        };
        ck.finish()?;
        // Padding positions of row 1 hold whatever the model computes there; compare real ones.
        let real = |t: &Tensor| -> Result<Tensor> {
            Ok(t.broadcast_mul(&mask.to_dtype(DType::F32)?.unsqueeze(D::Minus1)?)?)
        };
        let (d_h, d_l) = if logits.rank() == 3 {
            (
                max_diff(&real(&hidden)?, &real(&g["hidden"])?)?,
                max_diff(&real(&logits)?, &real(&g["logits"])?)?,
            )
        } else {
            (
                max_diff(&real(&hidden)?, &real(&g["hidden"])?)?,
                max_diff(&logits, &g["logits"])?,
            )
        };
        println!("{name}: hidden max diff {d_h:.2e}, logits max diff {d_l:.2e}");
        assert!(d_h < TOL && d_l < TOL, "{name}: hidden {d_h}, logits {d_l}");
    }
    Ok(())
}

#[test]
fn a_checkpoint_that_does_not_fit_lists_every_problem() -> Result<()> {
    let dev = Device::Cpu;
    let mut cfg = Config::load(&dir("tiny-llama").join("config.json"))?;
    cfg.intermediate_size = Some(100);
    cfg.num_hidden_layers = 3;
    let ck = Checkpoint::load(&dir("tiny-llama"), &dev)?;
    let _ = Gpt::load(ck.var_builder(&dev), &cfg)?;
    let err = ck.finish().unwrap_err().to_string();
    assert!(
        err.contains(
            "wrong shape model.layers.0.mlp.gate_proj.weight: expected [100, 48], found [96, 48]"
        ),
        "{err}"
    );
    assert!(
        err.contains("missing model.layers.2.input_layernorm.weight"),
        "{err}"
    );
    assert!(err.contains("testdata/model/tiny-llama"), "{err}");
    Ok(())
}

#[test]
fn a_bert_base_checkpoint_loads_under_a_task_prefix_and_back() -> Result<()> {
    // The MLM checkpoint stores `bert.*`; a bare BertModel asks for names without it.
    let dev = Device::Cpu;
    let cfg = bert::Config::load(&dir("tiny-bert-mlm").join("config.json"))?;
    let ck = Checkpoint::load(&dir("tiny-bert-mlm"), &dev)?;
    let m = BertModel::load(ck.var_builder(&dev), &cfg, false)?;
    ck.finish()?;
    let g = golden("tiny-bert-mlm")?;
    let h = m.forward(
        &ids(&g["input_ids"])?,
        &ids(&g["token_type_ids"])?,
        &ids(&g["attention_mask"])?,
        None,
    )?;
    let row0 = max_diff(&h.i(0)?, &g["hidden"].i(0)?)?;
    assert!(row0 < TOL, "{row0}");
    Ok(())
}

#[test]
fn configs_of_transformers_5_and_4_both_load() -> Result<()> {
    let v5 = Config::load(&dir("tiny-qwen2").join("config.json"))?;
    assert_eq!(v5.theta(), 1_000_000.0);
    let mut legacy: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir("tiny-qwen2").join("config.json"))?)?;
    let obj = legacy.as_object_mut().context("object")?;
    obj.remove("rope_parameters");
    obj.insert("rope_theta".into(), 1_000_000.0.into());
    let v4: Config = serde_json::from_value(legacy)?;
    assert_eq!(v4.theta(), 1_000_000.0);
    let written: Config = serde_json::from_value(v5.to_hf_json())?;
    assert_eq!(
        (written.theta(), written.kv_heads(), written.tied()),
        (1_000_000.0, 2, true)
    );
    Ok(())
}

//! The trainer end to end on synthetic token shards: a decoder and an MLM encoder learn, a run
//! resumes exactly, survives a killed checkpoint write, and stops on a NaN loss; gradients match
//! finite differences.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use duet_model::nn::Dropout;
use duet_tokenizer::TokenManifest;
use duet_tokenizer::encode::SplitStats;
use duet_tokenizer::shard::ShardWriter;
use duet_train::config::LmConfig;
use duet_train::trainer::{Outcome, Task, Trainer};

/// Writes a token directory with the given train and valid tokens.
fn tokens(dir: &Path, train: &[u32], valid: &[u32], vocab: u32) -> Result<()> {
    let mut splits = BTreeMap::new();
    for (name, toks) in [("train", train), ("valid", valid), ("test", valid)] {
        std::fs::create_dir_all(dir.join(name))?;
        let shard = format!("{name}/tokens-00000.bin");
        let mut w = ShardWriter::create(
            &dir.join(&shard),
            vocab,
            duet_tokenizer::shard::NO_SEPARATOR,
        )?;
        w.push_doc(toks, toks.len() as u64)?;
        w.finish()?;
        splits.insert(
            name.to_owned(),
            SplitStats {
                docs: 1,
                tokens: toks.len() as u64,
                text_bytes: toks.len() as u64,
                shards: vec![shard],
                by_lang: BTreeMap::new(),
            },
        );
    }
    let m = TokenManifest {
        tokenizer_sha256: "test".into(),
        corpus_manifest_sha256: "test".into(),
        vocab_size: vocab,
        width: 2,
        separator: None,
        splits,
    };
    std::fs::write(dir.join("manifest.json"), serde_json::to_vec(&m)?)?;
    Ok(())
}

/// A tiny config over `tokens` in `out`.
fn config(tokens: &Path, out: &Path, model_type: &str, steps: usize) -> Result<LmConfig> {
    let text = format!(
        "[model]\nmodel_type = \"{model_type}\"\nn_layer = 2\nn_head = 2\nn_embd = 32\nblock_size = 16\n\
         [data]\ntokens = {:?}\n\
         [train]\nout = {:?}\nmax_steps = {steps}\nbatch_size = 4\nlr = 3e-3\nmin_lr = 3e-4\nwarmup_steps = 10\n\
         eval_every = 0\neval_batches = 2\ncheckpoint_every = 0\nlog_every = 1\nseed = 7\n",
        tokens.display().to_string(),
        out.display().to_string()
    );
    Ok(toml::from_str(&text)?)
}

/// The `train_loss` of every step in a run's metrics.
fn losses(run: &Path) -> Result<Vec<(u64, f64)>> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl"))?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| Some((v["step"].as_u64()?, v["train_loss"].as_f64()?)))
        .collect())
}

fn repeating(n: usize) -> Vec<u32> {
    (0..n).map(|i| (i % 20) as u32 + 1).collect()
}

#[test]
fn a_tiny_model_memorises_a_repeating_sequence() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    tokens(
        &tmp.path().join("tok"),
        &repeating(4000),
        &repeating(400),
        24,
    )?;
    // GPT-2 goes through the explicit path, Llama through candle's autograd.
    for model_type in ["gpt2", "llama"] {
        let out = tmp.path().join(model_type);
        let cfg = config(&tmp.path().join("tok"), &out, model_type, 300)?;
        let (task, vm) = duet_train::run::lm_task(&cfg)?;
        let mut t = Trainer::new(
            task,
            vm,
            &cfg.train,
            "x",
            false,
            Arc::new(AtomicBool::new(false)),
        )?;
        assert_eq!(t.run(&indicatif::ProgressBar::hidden())?, Outcome::Finished);
        let l = losses(&out)?;
        let last = l.last().map(|x| x.1).unwrap_or(f64::MAX);
        println!("{model_type}: first loss {:.3}, last {:.4}", l[0].1, last);
        assert!(last < 0.05, "{model_type}: loss {last} after 300 steps");
        assert!(out.join("final/model.safetensors").is_file() && out.join("loss.png").is_file());
        let val: serde_json::Value = std::fs::read_to_string(out.join("metrics.jsonl"))?
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .rfind(|v| v.get("val_loss").is_some())
            .unwrap_or_default();
        assert!(val["val_loss"].as_f64().is_some_and(|v| v < 0.1), "{val}");
    }
    Ok(())
}

/// A WordPiece `tokenizer.json` with BERT's five special tokens (ids 0–4) and `words` after them.
fn wordpiece(path: &Path, words: usize) -> Result<()> {
    let specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
    let mut vocab = serde_json::Map::new();
    for (i, w) in specials
        .iter()
        .map(|s| (*s).to_owned())
        .chain((0..words).map(|i| format!("w{i}")))
        .enumerate()
    {
        vocab.insert(w, i.into());
    }
    let tok = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null,
        "decoder": null,
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": vocab},
    });
    std::fs::write(path, serde_json::to_string(&tok)?)?;
    Ok(())
}

#[test]
fn an_mlm_encoder_learns_to_fill_in_masked_tokens() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let tokenizer = tmp.path().join("wordpiece.json");
    wordpiece(&tokenizer, 16)?;
    // A 16-word cycle: every masked word follows from its neighbours; each word is 1/16 of the
    // masked positions, so always guessing the most frequent one scores about 6%.
    let cycle = |n: usize| -> Vec<u32> { (0..n).map(|i| (i % 16) as u32 + 5).collect() };
    let dir = tmp.path().join("tok");
    tokens(&dir, &cycle(6000), &cycle(1200), 21)?;
    let mut m = TokenManifest::load(&dir)?;
    m.tokenizer_sha256 = duet_tokenizer::encode::sha256_file(&tokenizer)?;
    std::fs::write(dir.join("manifest.json"), serde_json::to_vec(&m)?)?;
    let out = tmp.path().join("mlm");
    let text = format!(
        "[model]\nnum_hidden_layers = 2\nnum_attention_heads = 2\nhidden_size = 32\n\
         intermediate_size = 64\nmax_position_embeddings = 34\ndropout = 0.0\n\
         [data]\ntokens = {:?}\ntokenizer = {:?}\n\
         [train]\nout = {:?}\nmax_steps = 800\nbatch_size = 16\nlr = 5e-3\nmin_lr = 3e-4\n\
         warmup_steps = 20\neval_every = 400\neval_batches = 4\ncheckpoint_every = 0\nseed = 7\n",
        dir.display().to_string(),
        tokenizer.display().to_string(),
        out.display().to_string()
    );
    let cfg: duet_train::config::MlmConfig = toml::from_str(&text)?;
    let stop = Arc::new(AtomicBool::new(false));
    let bar = indicatif::ProgressBar::hidden();
    let (outcome, step) = duet_train::run::train_mlm(&cfg, &text, false, stop, &bar)?;
    assert_eq!((outcome, step), (Outcome::Finished, 800));
    let last: serde_json::Value = std::fs::read_to_string(out.join("metrics.jsonl"))?
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .rfind(|v| v.get("val_masked_accuracy").is_some())
        .unwrap_or_default();
    let (acc, majority) = (
        last["val_masked_accuracy"].as_f64().unwrap_or(0.0),
        last["val_majority_accuracy"].as_f64().unwrap_or(1.0),
    );
    assert!(acc > 0.9 && majority < 0.15, "{last}");
    assert!(out.join("final/model.safetensors").is_file());
    Ok(())
}

/// Stops the run (as Ctrl-C would) after `after` micro-batches.
struct StopAfter<T: Task> {
    inner: T,
    left: usize,
    flag: Arc<AtomicBool>,
}

impl<T: Task> Task for StopAfter<T> {
    fn train_loss(&mut self, drop: &Dropout) -> duet_train::Result<(Tensor, usize)> {
        self.tick();
        self.inner.train_loss(drop)
    }
    fn loss_and_grads(
        &mut self,
        vm: &VarMap,
        drop: &Dropout,
    ) -> duet_train::Result<Option<duet_train::trainer::LossAndGrads>> {
        let r = self.inner.loss_and_grads(vm, drop)?;
        if r.is_some() {
            self.tick();
        }
        Ok(r)
    }
    fn evaluate(&mut self, vm: &VarMap) -> duet_train::Result<BTreeMap<String, f64>> {
        self.inner.evaluate(vm)
    }
    fn data_state(&self) -> duet_train::Result<serde_json::Value> {
        self.inner.data_state()
    }
    fn set_data_state(&mut self, v: &serde_json::Value) -> duet_train::Result<()> {
        self.inner.set_data_state(v)
    }
    fn save(&self, dir: &Path, vm: &VarMap) -> duet_train::Result<()> {
        self.inner.save(dir, vm)
    }
    fn unit(&self) -> &'static str {
        self.inner.unit()
    }
    fn provenance(&self) -> serde_json::Value {
        self.inner.provenance()
    }
}

impl<T: Task> StopAfter<T> {
    fn tick(&mut self) {
        self.left = self.left.saturating_sub(1);
        if self.left == 0 {
            self.flag.store(true, Ordering::SeqCst);
        }
    }
}

#[test]
fn resume_continues_exactly_like_the_uninterrupted_run() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let train: Vec<u32> = (0..3000)
        .map(|i| ((i * 7919 + i / 3) % 23) as u32)
        .collect();
    tokens(&tmp.path().join("tok"), &train, &train[..500], 24)?;
    for model_type in ["gpt2", "llama"] {
        let mut cfg = config(
            &tmp.path().join("tok"),
            &tmp.path().join(format!("{model_type}-a")),
            model_type,
            24,
        )?;
        // Dropout on: resume must restore its generator too (GPT-2 takes the explicit path).
        cfg.model.dropout = 0.1;
        let (task, vm) = duet_train::run::lm_task(&cfg)?;
        Trainer::new(
            task,
            vm,
            &cfg.train,
            "cfg",
            false,
            Arc::new(AtomicBool::new(false)),
        )?
        .run(&indicatif::ProgressBar::hidden())?;
        let straight = losses(&cfg.train.out)?;
        // The same run, stopped after 9 steps, then resumed.
        cfg.train.out = tmp.path().join(format!("{model_type}-b"));
        let flag = Arc::new(AtomicBool::new(false));
        let (task, vm) = duet_train::run::lm_task(&cfg)?;
        let task = StopAfter {
            inner: task,
            left: 9,
            flag: flag.clone(),
        };
        assert_eq!(
            Trainer::new(task, vm, &cfg.train, "cfg", false, flag)?
                .run(&indicatif::ProgressBar::hidden())?,
            Outcome::Interrupted
        );
        let (task, vm) = duet_train::run::lm_task(&cfg)?;
        let mut t = Trainer::new(
            task,
            vm,
            &cfg.train,
            "cfg",
            true,
            Arc::new(AtomicBool::new(false)),
        )?;
        assert_eq!(t.step(), 9);
        t.run(&indicatif::ProgressBar::hidden())?;
        let resumed = losses(&cfg.train.out)?;
        assert_eq!(straight.len(), resumed.len());
        for (a, b) in straight.iter().zip(&resumed) {
            assert_eq!(a.0, b.0);
            assert!(
                (a.1 - b.1).abs() < 1e-5,
                "{model_type} step {}: {} vs {}",
                a.0,
                a.1,
                b.1
            );
        }
        // A different configuration is refused.
        let (task, vm) = duet_train::run::lm_task(&cfg)?;
        assert!(
            Trainer::new(
                task,
                vm,
                &cfg.train,
                "other",
                true,
                Arc::new(AtomicBool::new(false))
            )
            .is_err()
        );
    }
    Ok(())
}

#[test]
fn a_half_written_checkpoint_is_ignored_and_the_last_whole_one_loads() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    tokens(
        &tmp.path().join("tok"),
        &repeating(3000),
        &repeating(400),
        24,
    )?;
    let mut cfg = config(&tmp.path().join("tok"), &tmp.path().join("run"), "gpt2", 10)?;
    cfg.train.checkpoint_every = 5;
    let (task, vm) = duet_train::run::lm_task(&cfg)?;
    Trainer::new(
        task,
        vm,
        &cfg.train,
        "cfg",
        false,
        Arc::new(AtomicBool::new(false)),
    )?
    .run(&indicatif::ProgressBar::hidden())?;
    // A write killed half way: a temp dir with some files, and a step dir without its state.
    let ck = cfg.train.out.join("checkpoints");
    std::fs::create_dir_all(ck.join(".tmp-step-0000015"))?;
    std::fs::write(ck.join(".tmp-step-0000015/model.safetensors"), b"partial")?;
    std::fs::create_dir_all(ck.join("step-0000020"))?;
    std::fs::write(ck.join("step-0000020/model.safetensors"), b"partial")?;
    let listed = duet_train::checkpoint::list(&cfg.train.out)?;
    assert_eq!(listed.last().map(|l| l.0), Some(10));
    let (task, vm) = duet_train::run::lm_task(&cfg)?;
    let t = Trainer::new(
        task,
        vm,
        &cfg.train,
        "cfg",
        true,
        Arc::new(AtomicBool::new(false)),
    )?;
    assert_eq!(t.step(), 10);
    let w = candle_core::safetensors::load(
        listed[listed.len() - 1].1.join("model.safetensors"),
        &Device::Cpu,
    )?;
    assert!(w.contains_key("transformer.wte.weight"));
    Ok(())
}

#[test]
fn a_nan_loss_stops_the_run_and_names_the_step() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    tokens(
        &tmp.path().join("tok"),
        &repeating(3000),
        &repeating(400),
        24,
    )?;
    let mut cfg = config(
        &tmp.path().join("tok"),
        &tmp.path().join("run"),
        "gpt2",
        200,
    )?;
    cfg.train.lr = 1e6;
    cfg.train.min_lr = 1e6;
    cfg.train.grad_clip = 0.0;
    cfg.train.checkpoint_every = 1;
    let (task, vm) = duet_train::run::lm_task(&cfg)?;
    let err = Trainer::new(
        task,
        vm,
        &cfg.train,
        "cfg",
        false,
        Arc::new(AtomicBool::new(false)),
    )?
    .run(&indicatif::ProgressBar::hidden())
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, duet_train::Error::NonFinite { .. }), "{msg}");
    assert!(msg.contains("at step"), "{msg}");
    // Every checkpoint left behind holds finite weights.
    for (_, dir) in duet_train::checkpoint::list(&cfg.train.out)? {
        for (name, t) in
            candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu)?
        {
            let s = t
                .to_dtype(DType::F32)?
                .abs()?
                .sum_all()?
                .to_scalar::<f32>()?;
            assert!(s.is_finite(), "{name} in {} is not finite", dir.display());
        }
    }
    Ok(())
}

#[test]
fn gradients_match_finite_differences_in_every_module() -> Result<()> {
    use duet_model::init::VarInit;
    let dev = Device::Cpu;
    let ids = Tensor::new(&[[1u32, 5, 9, 3, 7], [2, 4, 6, 8, 0]], &dev)?;
    let tgt = Tensor::new(&[[5u32, 9, 3, 7, 1], [4, 6, 8, 0, 2]], &dev)?;
    let mut gpt2 = duet_model::gpt::Config::gpt2(12, 8, 8, 2, 2);
    gpt2.resid_pdrop = Some(0.0);
    gpt2.embd_pdrop = Some(0.0);
    gpt2.attn_pdrop = Some(0.0);
    let mut llama = gpt2.clone();
    llama.model_type = "llama".into();
    llama.num_key_value_heads = Some(1);
    llama.intermediate_size = Some(16);
    llama.rms_norm_eps = Some(1e-6);
    llama.hidden_act = Some("silu".into());
    llama.tie_word_embeddings = Some(false);
    llama.rope_theta = Some(10_000.0);
    for cfg in [gpt2, llama] {
        let vm = VarMap::new();
        let m = duet_model::gpt::Gpt::load(VarInit::new(&vm, 5, None).var_builder(&dev), &cfg)?;
        for (_, var) in vm
            .data()
            .lock()
            .map_err(|_| anyhow::anyhow!("lock"))?
            .iter()
        {
            if var.rank() == 2 {
                var.set(&(var.as_tensor() * 15.0)?)?;
            }
        }
        let drop = Dropout::new(0);
        let loss = |m: &duet_model::gpt::Gpt| -> Result<f64> {
            Ok(f64::from(
                duet_model::gpt::lm_loss(&m.forward(&ids, None, Some(&drop))?, &tgt)?
                    .to_scalar::<f32>()?,
            ))
        };
        let grads =
            duet_model::gpt::lm_loss(&m.forward(&ids, None, Some(&drop))?, &tgt)?.backward()?;
        let data = vm
            .data()
            .lock()
            .map_err(|_| anyhow::anyhow!("lock"))?
            .clone();
        for (name, var) in &data {
            let g: Vec<f32> = grads
                .get(var.as_tensor())
                .ok_or_else(|| anyhow::anyhow!("{name}: no gradient"))?
                .flatten_all()?
                .to_vec1()?;
            // The coordinate with the largest gradient, perturbed both ways.
            let (idx, &ga) = g
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
                .ok_or_else(|| anyhow::anyhow!("empty"))?;
            let orig: Vec<f32> = var.flatten_all()?.to_vec1()?;
            let h = 1e-2f32;
            let mut plus = orig.clone();
            plus[idx] += h;
            var.set(&Tensor::from_vec(plus, var.shape(), &dev)?)?;
            let lp = loss(&m)?;
            let mut minus = orig.clone();
            minus[idx] -= h;
            var.set(&Tensor::from_vec(minus, var.shape(), &dev)?)?;
            let lm = loss(&m)?;
            var.set(&Tensor::from_vec(orig, var.shape(), &dev)?)?;
            let fd = (lp - lm) / (2.0 * f64::from(h));
            let rel = (fd - f64::from(ga)).abs() / f64::from(ga).abs().max(1e-3);
            assert!(
                rel < 0.03,
                "{} {name}[{idx}]: autograd {ga}, finite differences {fd}",
                cfg.model_type
            );
        }
    }
    Ok(())
}

//! Entry points for the command line: build the model, the task and the trainer from a
//! configuration, and run.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use candle_core::Device;
use candle_nn::VarMap;
use duet_model::bert::{self, BertForMaskedLm};
use duet_model::gpt::Gpt;
use duet_model::hub::Checkpoint;
use duet_model::init::VarInit;
use indicatif::ProgressBar;

use crate::config::{LmConfig, MlmConfig};
use crate::tasks::lm::LmTask;
use crate::tasks::mlm::{MlmTask, Specials};
use crate::trainer::{Outcome, Trainer};
use crate::{Error, Result, data};

/// The device a config names.
pub fn device(name: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" => Device::new_cuda(0).map_err(|e| {
            Error::Config(format!(
                "train.device = \"cuda\": {e} (build duet with --features cuda)"
            ))
        }),
        other => Err(Error::Config(format!(
            "train.device must be cpu or cuda, found {other:?}"
        ))),
    }
}

/// Builds the causal-LM task and its variables as `cfg` says (encoding the corpus if needed).
pub fn lm_task(cfg: &LmConfig) -> Result<(LmTask, VarMap)> {
    cfg.train.validate()?;
    let dev = device(&cfg.train.device)?;
    std::fs::create_dir_all(&cfg.train.out).map_err(|source| Error::Io {
        path: cfg.train.out.clone(),
        source,
    })?;
    let tokens = data::prepare(&cfg.data, &cfg.train.out)?;
    let (model_cfg, pretrained) = match &cfg.model.init_from {
        Some(dir) => {
            let mut c = duet_model::gpt::Config::load(&dir.join("config.json"))?;
            // model.dropout above 0 applies to a loaded network too: fine-tuning on little
            // data wants it whatever the network was pre-trained with.
            let p = cfg.model.dropout;
            if p > 0.0 {
                if c.family() == duet_model::gpt::Family::Gpt2 {
                    (c.resid_pdrop, c.embd_pdrop, c.attn_pdrop) = (Some(p), Some(p), Some(p));
                } else {
                    c.attention_dropout = Some(p);
                }
            }
            (c, Some(Checkpoint::load(dir, &dev)?))
        }
        None => (
            cfg.model.to_config(tokens.manifest.vocab_size as usize)?,
            None,
        ),
    };
    let varmap = VarMap::new();
    let init = VarInit::new(&varmap, cfg.train.seed, pretrained);
    let model = Gpt::load(init.var_builder(&dev), &model_cfg)?;
    let task = LmTask::new(
        model,
        tokens,
        cfg.train.batch_size,
        cfg.train.seed,
        cfg.train.eval_batches,
        dev,
    )?;
    Ok((task, varmap))
}

/// Trains a decoder as `cfg` says. `config_toml` is the resolved configuration (saved in the
/// run directory).
pub fn train_lm(
    cfg: &LmConfig,
    config_toml: &str,
    resume: bool,
    stop: Arc<AtomicBool>,
    bar: &ProgressBar,
) -> Result<(Outcome, usize)> {
    bar.set_message("encoding the corpus");
    let (task, varmap) = lm_task(cfg)?;
    let mut trainer = Trainer::new(task, varmap, &cfg.train, config_toml, resume, stop)?;
    let outcome = trainer.run(bar)?;
    Ok((outcome, trainer.step()))
}

/// Pre-trains a BERT-style encoder with masked language modelling.
pub fn train_mlm(
    cfg: &MlmConfig,
    config_toml: &str,
    resume: bool,
    stop: Arc<AtomicBool>,
    bar: &ProgressBar,
) -> Result<(Outcome, usize)> {
    cfg.train.validate()?;
    let dev = device(&cfg.train.device)?;
    std::fs::create_dir_all(&cfg.train.out).map_err(|source| Error::Io {
        path: cfg.train.out.clone(),
        source,
    })?;
    let tokenizer = cfg.data.tokenizer.clone().ok_or_else(|| {
        Error::Config("MLM needs data.tokenizer (a WordPiece tokenizer.json)".into())
    })?;
    let specials = Specials::from_tokenizer(&tokenizer)?;
    bar.set_message("encoding the corpus");
    let tokens = data::prepare(&cfg.data, &cfg.train.out)?;
    let m = &cfg.model;
    let mut bcfg = bert::Config::tiny();
    bcfg.vocab_size = tokens.manifest.vocab_size as usize;
    bcfg.hidden_size = m.hidden_size;
    bcfg.num_hidden_layers = m.num_hidden_layers;
    bcfg.num_attention_heads = m.num_attention_heads;
    bcfg.intermediate_size = m.intermediate_size;
    bcfg.max_position_embeddings = m.max_position_embeddings;
    bcfg.hidden_dropout_prob = m.dropout;
    bcfg.attention_probs_dropout_prob = m.dropout;
    bcfg.pad_token_id = specials.pad;
    if !m.hidden_size.is_multiple_of(m.num_attention_heads) || m.max_position_embeddings < 8 {
        return Err(Error::Config("model.hidden_size must be a multiple of model.num_attention_heads, and max_position_embeddings at least 8".into()));
    }
    let varmap = VarMap::new();
    let init = VarInit::new(&varmap, cfg.train.seed, None);
    let model = BertForMaskedLm::load(init.var_builder(&dev), &bcfg)?;
    let task = MlmTask::new(
        model,
        bcfg,
        tokens,
        specials,
        cfg.train.batch_size,
        m.mask_prob,
        cfg.train.seed,
        cfg.train.eval_batches,
        dev,
    )?;
    let mut trainer = Trainer::new(task, varmap, &cfg.train, config_toml, resume, stop)?;
    let outcome = trainer.run(bar)?;
    Ok((outcome, trainer.step()))
}

/// Perplexity and bits per byte of a decoder (a model directory or a GGUF file) on a split of
/// token shards (or of a corpus, encoded with the model's tokenizer). Windows are the model's
/// context, or `context` tokens when that is smaller and not zero.
#[allow(clippy::too_many_arguments)]
pub fn eval_lm(
    model_path: &Path,
    data: &crate::config::DataSection,
    scratch: &Path,
    split: duet_corpus::Split,
    batch: usize,
    max_batches: usize,
    context: usize,
) -> Result<BTreeMap<String, f64>> {
    let dev = Device::Cpu;
    let loaded = duet_model::lm::LoadedLm::load(model_path, &dev)?;
    let mut data = data.clone();
    if data.tokenizer.is_none() {
        data.tokenizer = if loaded.gguf.is_some() {
            // The tokenizer of a GGUF file lives in its metadata: write it out for encoding.
            std::fs::create_dir_all(scratch)
                .map_err(|e| Error::Config(format!("{}: {e}", scratch.display())))?;
            let path = scratch.join("tokenizer.json");
            loaded
                .tokenizer
                .save(&path, false)
                .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
            Some(path)
        } else {
            crate::tasks::lm::tokenizer_of(model_path)
        };
    }
    let tokens = data::prepare(&data, scratch)?;
    let stream = tokens.manifest.stream(&tokens.dir, split)?;
    let mut t = loaded.lm.context();
    if context > 0 {
        t = t.min(context);
    }
    let batches = duet_tokenizer::batch::lm::eval_batches(
        &stream,
        batch,
        t,
        if max_batches == 0 {
            usize::MAX
        } else {
            max_batches
        },
    )?;
    if batches.is_empty() {
        return Err(Error::Config(format!(
            "the {} split has fewer than {} tokens",
            split.name(),
            t + 1
        )));
    }
    let (mut total, mut n) = (0f64, 0usize);
    for b in &batches {
        match &loaded.lm {
            duet_model::lm::Lm::Candle(model) => {
                let x = candle_core::Tensor::from_slice(&b.inputs, (b.batch, b.seq_len), &dev)?;
                let y = candle_core::Tensor::from_slice(&b.targets, (b.batch, b.seq_len), &dev)?;
                let loss = duet_model::gpt::lm_loss(&model.forward(&x, None, None)?, &y)?;
                total += f64::from(loss.to_scalar::<f32>()?) * (b.batch * b.seq_len) as f64;
            }
            lm => {
                let v = lm.vocab();
                for r in 0..b.batch {
                    let ids = &b.inputs[r * b.seq_len..(r + 1) * b.seq_len];
                    let logits = lm.score(ids)?;
                    for (p, &y) in b.targets[r * b.seq_len..(r + 1) * b.seq_len]
                        .iter()
                        .enumerate()
                    {
                        let row = &logits[p * v..(p + 1) * v];
                        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                        let lse = max as f64
                            + row
                                .iter()
                                .map(|&l| ((l - max) as f64).exp())
                                .sum::<f64>()
                                .ln();
                        total += lse - row[y as usize] as f64;
                    }
                }
            }
        }
        n += b.batch * b.seq_len;
    }
    let s = &tokens.manifest.splits[split.name()];
    let bytes_per_token = s.text_bytes as f64 / s.tokens.max(1) as f64;
    let loss = total / n as f64;
    let mut m = BTreeMap::new();
    m.insert("loss".into(), loss);
    m.insert("perplexity".into(), loss.exp());
    m.insert(
        "bits_per_byte".into(),
        loss / std::f64::consts::LN_2 / bytes_per_token,
    );
    m.insert("tokens".into(), n as f64);
    Ok(m)
}

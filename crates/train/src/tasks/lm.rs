//! Causal language modelling: random windows of `block_size + 1` tokens, next-token
//! cross-entropy; evaluation reports loss, perplexity and bits per byte on the validation split.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use duet_model::gpt::{self, Gpt};
use duet_model::nn::Dropout;
use duet_tokenizer::TokenStream;
use duet_tokenizer::batch::LmBatcher;
use duet_tokenizer::batch::lm::eval_batches;

use crate::data::Tokens;
use crate::trainer::Task;
use crate::{Error, Result};

/// The causal-LM task over token shards.
pub struct LmTask {
    model: Gpt,
    cfg: gpt::Config,
    train: TokenStream,
    valid: TokenStream,
    batcher: LmBatcher,
    eval_batches: usize,
    bytes_per_token: f64,
    tokens: Tokens,
    device: Device,
    fast: Option<crate::fast::gpt2::Gpt2Step>,
}

impl LmTask {
    /// A task for `model` (whose parameters are in the trainer's `VarMap`) over `tokens`.
    pub fn new(
        model: Gpt,
        tokens: Tokens,
        batch: usize,
        seed: u64,
        eval_batches: usize,
        device: Device,
    ) -> Result<Self> {
        let cfg = model.config().clone();
        let train = tokens
            .manifest
            .stream(&tokens.dir, duet_corpus::Split::Train)?;
        let valid = tokens
            .manifest
            .stream(&tokens.dir, duet_corpus::Split::Valid)?;
        let t = cfg.max_position_embeddings;
        if train.len() <= t + 1 {
            return Err(Error::Config(format!(
                "the training split has {} tokens, fewer than one window of {} (model.block_size + 1)",
                train.len(),
                t + 1
            )));
        }
        if valid.len() <= t + 1 {
            return Err(Error::Config(format!(
                "the validation split has {} tokens, fewer than one window of {}; build the corpus with a larger split.valid",
                valid.len(),
                t + 1
            )));
        }
        if tokens.manifest.vocab_size as usize > cfg.vocab_size {
            return Err(Error::Config(format!(
                "the tokens use {} ids, the model has {}",
                tokens.manifest.vocab_size, cfg.vocab_size
            )));
        }
        let v = &tokens.manifest.splits["valid"];
        let bytes_per_token = v.text_bytes as f64 / v.tokens.max(1) as f64;
        let fast = if device.is_cpu() && crate::fast::gpt2::supported(&cfg) {
            Some(crate::fast::gpt2::Gpt2Step::new(&cfg, batch, t)?)
        } else {
            tracing::info!(
                "training through candle's autograd (the explicit path covers GPT-2 with a tied head and a GELU MLP)"
            );
            None
        };
        Ok(Self {
            model,
            cfg,
            train,
            valid,
            batcher: LmBatcher::new(seed, batch, t),
            eval_batches,
            bytes_per_token,
            tokens,
            device,
            fast,
        })
    }

    /// The model.
    pub fn model(&self) -> &Gpt {
        &self.model
    }
}

/// The model's loss on one batch of windows.
fn batch_loss(
    model: &Gpt,
    inputs: &[u32],
    targets: &[u32],
    b: usize,
    t: usize,
    dev: &Device,
    drop: Option<&Dropout>,
) -> Result<Tensor> {
    let x = Tensor::from_slice(inputs, (b, t), dev)?;
    let y = Tensor::from_slice(targets, (b, t), dev)?;
    let logits = model.forward(&x, None, drop)?;
    Ok(gpt::lm_loss(&logits, &y)?)
}

impl Task for LmTask {
    fn train_loss(&mut self, drop: &Dropout) -> Result<(Tensor, usize)> {
        let b = self.batcher.next_batch(&self.train)?;
        let loss = batch_loss(
            &self.model,
            &b.inputs,
            &b.targets,
            b.batch,
            b.seq_len,
            &self.device,
            Some(drop),
        )?;
        Ok((loss, b.batch * b.seq_len))
    }

    fn loss_and_grads(
        &mut self,
        varmap: &VarMap,
        drop: &Dropout,
    ) -> Result<Option<crate::trainer::LossAndGrads>> {
        let Some(fast) = self.fast.as_mut() else {
            return Ok(None);
        };
        let b = self.batcher.next_batch(&self.train)?;
        let (loss, grads) = fast.loss_and_grads(varmap, &b.inputs, &b.targets, drop.seed()?)?;
        Ok(Some((loss, grads, b.batch * b.seq_len)))
    }

    fn evaluate(&mut self, varmap: &VarMap) -> Result<BTreeMap<String, f64>> {
        // An inference-only copy over the same storage: no graph, the fused kernels.
        let detached = duet_model::init::tensors(varmap).into_iter().collect();
        let model = Gpt::load(
            candle_nn::VarBuilder::from_tensors(detached, candle_core::DType::F32, &self.device),
            &self.cfg,
        )?;
        let max = if self.eval_batches == 0 {
            usize::MAX
        } else {
            self.eval_batches
        };
        let batches = eval_batches(&self.valid, self.batcher.batch, self.batcher.seq_len, max)?;
        let (mut total, mut n) = (0f64, 0usize);
        for b in &batches {
            let loss = batch_loss(
                &model,
                &b.inputs,
                &b.targets,
                b.batch,
                b.seq_len,
                &self.device,
                None,
            )?;
            let count = b.batch * b.seq_len;
            total += f64::from(loss.to_scalar::<f32>()?) * count as f64;
            n += count;
        }
        let loss = total / n.max(1) as f64;
        let mut m = BTreeMap::new();
        m.insert("val_loss".into(), loss);
        m.insert("val_ppl".into(), loss.exp());
        m.insert(
            "val_bpb".into(),
            loss / std::f64::consts::LN_2 / self.bytes_per_token,
        );
        m.insert("val_tokens".into(), n as f64);
        Ok(m)
    }

    fn data_state(&self) -> Result<serde_json::Value> {
        Ok(serde_json::to_value(&self.batcher)?)
    }

    fn set_data_state(&mut self, v: &serde_json::Value) -> Result<()> {
        self.batcher = serde_json::from_value(v.clone())?;
        Ok(())
    }

    fn save(&self, dir: &Path, varmap: &VarMap) -> Result<()> {
        save_decoder(dir, varmap, &self.cfg, self.tokens.tokenizer.as_deref())
    }

    fn unit(&self) -> &'static str {
        "tokens"
    }

    fn provenance(&self) -> serde_json::Value {
        crate::data::provenance(&self.tokens)
    }
}

/// Writes a decoder in the Hugging Face layout with its tokenizer and generation config.
pub fn save_decoder(
    dir: &Path,
    varmap: &VarMap,
    cfg: &gpt::Config,
    tokenizer: Option<&Path>,
) -> Result<()> {
    let mut hf = cfg.to_hf_json();
    let mut eos = None;
    if let Some(t) = tokenizer
        && let Ok(tok) = duet_tokenizer::load_tokenizer(t)
    {
        eos = ["<|endoftext|>", "</s>", "[SEP]"]
            .iter()
            .find_map(|s| tok.token_to_id(s));
    }
    if let Some(e) = eos {
        hf["eos_token_id"] = e.into();
        hf["bos_token_id"] = e.into();
    }
    duet_model::hub::save_pretrained(dir, &duet_model::init::tensors(varmap), &hf, tokenizer)?;
    let generation = serde_json::json!({"bos_token_id": eos, "eos_token_id": eos, "do_sample": true, "temperature": 0.8, "max_new_tokens": 128});
    let p = dir.join("generation_config.json");
    std::fs::write(&p, serde_json::to_vec_pretty(&generation)?).map_err(|source| Error::Io {
        path: p.clone(),
        source,
    })?;
    Ok(())
}

/// The path of a tokenizer beside a model, if present.
pub fn tokenizer_of(dir: &Path) -> Option<PathBuf> {
    let p = dir.join("tokenizer.json");
    p.is_file().then_some(p)
}

//! Masked language modelling (Devlin et al. 2019): random windows wrapped in `[CLS] … [SEP]`,
//! 15% of positions chosen (80% `[MASK]`, 10% random, 10% kept), cross-entropy on the chosen
//! positions. Evaluation masks the validation windows with a fixed seed and reports the loss,
//! the masked-token accuracy, and the accuracy of always predicting the most frequent token.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use duet_model::bert::{self, BertForMaskedLm};
use duet_model::nn::Dropout;
use duet_tokenizer::TokenStream;
use duet_tokenizer::batch::lm::eval_batches;
use duet_tokenizer::batch::{IGNORE_INDEX, LmBatcher, MaskConfig, mask_tokens};
use rand::SeedableRng;
use rand_pcg::Pcg32;
use serde::{Deserialize, Serialize};

use crate::data::Tokens;
use crate::trainer::Task;
use crate::{Error, Result};

/// Ids of the special tokens the task needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Specials {
    /// `[CLS]`.
    pub cls: u32,
    /// `[SEP]`.
    pub sep: u32,
    /// `[MASK]`.
    pub mask: u32,
    /// `[PAD]`.
    pub pad: u32,
}

impl Specials {
    /// Reads them from a tokenizer; each must be present.
    pub fn from_tokenizer(path: &Path) -> Result<Self> {
        let t = duet_tokenizer::load_tokenizer(path)?;
        let id = |s: &str| {
            t.token_to_id(s).ok_or_else(|| Error::Config(format!("{}: no {s} token; MLM needs a WordPiece tokenizer (duet tokenizer train --kind wordpiece)", path.display())))
        };
        Ok(Self {
            cls: id("[CLS]")?,
            sep: id("[SEP]")?,
            mask: id("[MASK]")?,
            pad: id("[PAD]")?,
        })
    }
}

/// The loader's state: window sampler and masking generator.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    windows: LmBatcher,
    rng: Pcg32,
}

/// The MLM task over token shards.
pub struct MlmTask {
    model: BertForMaskedLm,
    cfg: bert::Config,
    train: TokenStream,
    valid: TokenStream,
    state: State,
    specials: Specials,
    mask_prob: f64,
    eval_batches: usize,
    tokens: Tokens,
    device: Device,
    /// The explicit forward and backward pass, where it covers the model (CPU, GELU).
    fast: Option<crate::fast::bert::BertMlmStep>,
}

impl MlmTask {
    /// A task for `model` over `tokens`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        model: BertForMaskedLm,
        cfg: bert::Config,
        tokens: Tokens,
        specials: Specials,
        batch: usize,
        mask_prob: f64,
        seed: u64,
        eval_batches: usize,
        device: Device,
    ) -> Result<Self> {
        let train = tokens
            .manifest
            .stream(&tokens.dir, duet_corpus::Split::Train)?;
        let valid = tokens
            .manifest
            .stream(&tokens.dir, duet_corpus::Split::Valid)?;
        let window = cfg.max_position_embeddings - 2;
        if train.len() <= window + 1 || valid.len() <= window + 1 {
            return Err(Error::Config(format!(
                "the train and valid splits need more than {} tokens each (one window)",
                window + 1
            )));
        }
        let fast = if device.is_cpu() && crate::fast::bert::supported(&cfg) {
            Some(crate::fast::bert::BertMlmStep::new(&cfg)?)
        } else {
            tracing::info!(
                "training through candle's autograd (the explicit path covers GELU encoders on the CPU)"
            );
            None
        };
        Ok(Self {
            model,
            cfg,
            train,
            valid,
            state: State {
                windows: LmBatcher::new(seed, batch, window),
                rng: Pcg32::seed_from_u64(seed ^ 0x3a5c),
            },
            specials,
            mask_prob,
            eval_batches,
            tokens,
            device,
            fast,
        })
    }

    /// Wraps windows in `[CLS] … [SEP]`, masks them, and returns the loss, the number of masked
    /// positions, the predictions' correct count and the labels.
    fn masked(&self, windows: &[u32], b: usize, rng: &mut Pcg32) -> (Vec<u32>, Vec<i64>) {
        let w = windows.len() / b;
        let t = w + 2;
        let mut ids = Vec::with_capacity(b * t);
        for row in windows.chunks_exact(w) {
            ids.push(self.specials.cls);
            ids.extend_from_slice(row);
            ids.push(self.specials.sep);
        }
        let s = self.specials;
        let special: Vec<bool> = ids
            .iter()
            .map(|&i| i == s.cls || i == s.sep || i == s.pad)
            .collect();
        let cfg = MaskConfig {
            probability: self.mask_prob,
            mask_id: s.mask,
            vocab_size: self.cfg.vocab_size as u32,
        };
        let labels = mask_tokens(&mut ids, &special, &cfg, rng);
        (ids, labels)
    }

    /// Logits at the masked positions and their labels.
    fn forward_masked(
        &self,
        ids: Vec<u32>,
        labels: &[i64],
        b: usize,
        drop: Option<&Dropout>,
    ) -> Result<Option<(Tensor, Tensor)>> {
        self.forward_masked_with(&self.model, ids, labels, b, drop)
    }

    /// As [`Self::forward_masked`] with another copy of the model.
    fn forward_masked_with(
        &self,
        model: &BertForMaskedLm,
        ids: Vec<u32>,
        labels: &[i64],
        b: usize,
        drop: Option<&Dropout>,
    ) -> Result<Option<(Tensor, Tensor)>> {
        let t = ids.len() / b;
        let x = Tensor::from_vec(ids, (b, t), &self.device)?;
        let logits = model.forward(&x, &x.zeros_like()?, &x.ones_like()?, drop)?;
        let pos: Vec<u32> = labels
            .iter()
            .enumerate()
            .filter(|(_, l)| **l != IGNORE_INDEX)
            .map(|(i, _)| i as u32)
            .collect();
        if pos.is_empty() {
            return Ok(None);
        }
        let target: Vec<u32> = labels
            .iter()
            .filter(|l| **l != IGNORE_INDEX)
            .map(|&l| l as u32)
            .collect();
        let v = logits.dim(2)?;
        let picked = logits
            .reshape((b * t, v))?
            .index_select(&Tensor::new(pos.as_slice(), &self.device)?, 0)?;
        Ok(Some((
            picked,
            Tensor::new(target.as_slice(), &self.device)?,
        )))
    }
}

impl Task for MlmTask {
    fn train_loss(&mut self, drop: &Dropout) -> Result<(Tensor, usize)> {
        let batch = self.state.windows.next_batch(&self.train)?;
        let mut rng = self.state.rng.clone();
        let (ids, labels) = self.masked(&batch.inputs, batch.batch, &mut rng);
        self.state.rng = rng;
        match self.forward_masked(ids, &labels, batch.batch, Some(drop))? {
            Some((logits, target)) => {
                let n = target.dim(0)?;
                Ok((candle_nn::loss::cross_entropy(&logits, &target)?, n))
            }
            None => Err(Error::Config(
                "a batch had no masked position; raise model.mask_prob or train.batch_size".into(),
            )),
        }
    }

    fn loss_and_grads(
        &mut self,
        varmap: &VarMap,
        drop: &Dropout,
    ) -> Result<Option<crate::trainer::LossAndGrads>> {
        if self.fast.is_none() {
            return Ok(None);
        }
        let batch = self.state.windows.next_batch(&self.train)?;
        let mut rng = self.state.rng.clone();
        let (ids, labels) = self.masked(&batch.inputs, batch.batch, &mut rng);
        self.state.rng = rng;
        let t = ids.len() / batch.batch;
        let seqs: Vec<&[u32]> = ids.chunks(t).collect();
        let Some(fast) = &self.fast else {
            return Ok(None);
        };
        let (loss, grads, n) = fast.loss_and_grads(varmap, &seqs, &labels, drop.seed()?)?;
        Ok(Some((loss, grads, n)))
    }

    fn evaluate(&mut self, varmap: &VarMap) -> Result<BTreeMap<String, f64>> {
        let detached = duet_model::init::tensors(varmap).into_iter().collect();
        let eval_model = BertForMaskedLm::load(
            candle_nn::VarBuilder::from_tensors(detached, candle_core::DType::F32, &self.device),
            &self.cfg,
        )?;
        let max = if self.eval_batches == 0 {
            usize::MAX
        } else {
            self.eval_batches
        };
        let w = self.state.windows.seq_len;
        let batches = eval_batches(&self.valid, self.state.windows.batch, w, max)?;
        let mut rng = Pcg32::seed_from_u64(0xe7a1);
        let (mut loss_sum, mut n, mut correct) = (0f64, 0usize, 0usize);
        let mut freq: BTreeMap<u32, usize> = BTreeMap::new();
        for b in &batches {
            let (ids, labels) = self.masked(&b.inputs, b.batch, &mut rng);
            let Some((logits, target)) =
                self.forward_masked_with(&eval_model, ids, &labels, b.batch, None)?
            else {
                continue;
            };
            let k = target.dim(0)?;
            loss_sum +=
                f64::from(candle_nn::loss::cross_entropy(&logits, &target)?.to_scalar::<f32>()?)
                    * k as f64;
            let pred: Vec<u32> = logits.argmax(1)?.to_vec1()?;
            let tgt: Vec<u32> = target.to_vec1()?;
            correct += pred.iter().zip(&tgt).filter(|(a, b)| a == b).count();
            for t in tgt {
                *freq.entry(t).or_default() += 1;
            }
            n += k;
        }
        let majority = freq.values().copied().max().unwrap_or(0);
        let mut m = BTreeMap::new();
        m.insert("val_loss".into(), loss_sum / n.max(1) as f64);
        m.insert(
            "val_masked_accuracy".into(),
            correct as f64 / n.max(1) as f64,
        );
        m.insert(
            "val_majority_accuracy".into(),
            majority as f64 / n.max(1) as f64,
        );
        m.insert("val_masked".into(), n as f64);
        Ok(m)
    }

    fn data_state(&self) -> Result<serde_json::Value> {
        Ok(serde_json::to_value(&self.state)?)
    }

    fn set_data_state(&mut self, v: &serde_json::Value) -> Result<()> {
        self.state = serde_json::from_value(v.clone())?;
        Ok(())
    }

    fn save(&self, dir: &Path, varmap: &VarMap) -> Result<()> {
        let mut cfg = self.cfg.clone();
        cfg.architectures = Some(vec!["BertForMaskedLM".into()]);
        cfg.pad_token_id = self.specials.pad;
        duet_model::hub::save_pretrained(
            dir,
            &duet_model::init::tensors(varmap),
            &serde_json::to_value(&cfg)?,
            self.tokens.tokenizer.as_deref(),
        )?;
        Ok(())
    }

    fn unit(&self) -> &'static str {
        "tokens"
    }

    fn provenance(&self) -> serde_json::Value {
        crate::data::provenance(&self.tokens)
    }
}

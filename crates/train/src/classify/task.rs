//! Fine-tuning a BERT encoder for sequence classification (the Hugging Face recipe:
//! `BertForSequenceClassification`, AdamW, warm-up then linear decay), with class weights,
//! label smoothing, balanced sampling, frozen layers, and long documents cut into windows whose
//! logits are averaged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{D, DType, Device, Tensor};
use candle_nn::VarMap;
use duet_model::bert::{self, BertForSequenceClassification};
use duet_model::nn::Dropout;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg32;
use serde::{Deserialize, Serialize};

use duet_model::predict::classifier::doc_logits;
use duet_model::predict::windows::{pad, softmax};

use crate::trainer::Task;
use crate::{Error, Result};

/// Where the sampler is, for exact resume.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Sampler {
    order: Vec<usize>,
    pos: usize,
    epoch: u64,
    rng: Pcg32,
}

/// The sequence-classification task.
pub struct ClassifyTask {
    model: BertForSequenceClassification,
    cfg: bert::Config,
    /// Training windows and their labels.
    train: Vec<(Vec<u32>, usize)>,
    /// Validation documents: windows and label.
    valid: Vec<(Vec<Vec<u32>>, usize)>,
    labels: Vec<String>,
    batch: usize,
    sampler: Sampler,
    balanced: bool,
    class_weights: Option<Vec<f32>>,
    smoothing: f64,
    encoder_dir: PathBuf,
    frozen: BTreeMap<String, Tensor>,
    device: Device,
    /// The explicit forward and backward pass, where it covers the model (CPU, GELU).
    fast: Option<crate::fast::bert::BertClassifierStep>,
}

/// Settings of [`ClassifyTask::new`] beyond the data.
pub struct ClassifyOptions {
    /// Sequences per batch.
    pub batch: usize,
    /// Seed of the sampler.
    pub seed: u64,
    /// Classes in equal proportion per batch.
    pub balanced: bool,
    /// Per-class loss weights.
    pub class_weights: Option<Vec<f32>>,
    /// Label smoothing ε.
    pub smoothing: f64,
}

impl ClassifyTask {
    /// A task over tokenized windows.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        model: BertForSequenceClassification,
        cfg: bert::Config,
        train: Vec<(Vec<u32>, usize)>,
        valid: Vec<(Vec<Vec<u32>>, usize)>,
        labels: Vec<String>,
        opts: ClassifyOptions,
        encoder_dir: PathBuf,
        frozen: BTreeMap<String, Tensor>,
        device: Device,
    ) -> Result<Self> {
        if train.is_empty() {
            return Err(Error::Config("no training examples".into()));
        }
        let mut rng = Pcg32::seed_from_u64(opts.seed);
        let mut order: Vec<usize> = (0..train.len()).collect();
        order.shuffle(&mut rng);
        let fast = if device.is_cpu() && crate::fast::bert::supported(&cfg) {
            Some(crate::fast::bert::BertClassifierStep::new(
                &cfg,
                labels.len(),
            )?)
        } else {
            tracing::info!(
                "fine-tuning through candle's autograd (the explicit path covers GELU encoders on the CPU)"
            );
            None
        };
        Ok(Self {
            model,
            cfg,
            train,
            valid,
            labels,
            batch: opts.batch,
            sampler: Sampler {
                order,
                pos: 0,
                epoch: 0,
                rng,
            },
            balanced: opts.balanced,
            class_weights: opts.class_weights,
            smoothing: opts.smoothing,
            encoder_dir,
            frozen,
            device,
            fast,
        })
    }

    /// The next batch of training indices.
    fn next_indices(&mut self) -> Vec<usize> {
        let s = &mut self.sampler;
        if self.balanced {
            // A class uniformly at random, then an example of it.
            let k = self.labels.len();
            let mut by: Vec<Vec<usize>> = vec![Vec::new(); k];
            for (i, (_, y)) in self.train.iter().enumerate() {
                by[*y].push(i);
            }
            let classes: Vec<usize> = (0..k).filter(|&c| !by[c].is_empty()).collect();
            return (0..self.batch)
                .map(|_| {
                    let c = classes[s.rng.random_range(0..classes.len())];
                    by[c][s.rng.random_range(0..by[c].len())]
                })
                .collect();
        }
        let mut out = Vec::with_capacity(self.batch);
        while out.len() < self.batch {
            if s.pos == s.order.len() {
                s.order.shuffle(&mut s.rng);
                s.pos = 0;
                s.epoch += 1;
            }
            out.push(s.order[s.pos]);
            s.pos += 1;
        }
        out
    }

    /// Weighted, smoothed cross-entropy of `logits` (B, K) against `y`.
    fn loss(&self, logits: &Tensor, y: &[usize]) -> Result<Tensor> {
        let k = logits.dim(1)?;
        let logp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
        let yt = Tensor::from_vec(
            y.iter().map(|&v| v as u32).collect::<Vec<_>>(),
            y.len(),
            &self.device,
        )?;
        let nll = logp.gather(&yt.unsqueeze(1)?, 1)?.squeeze(1)?.neg()?;
        let per = if self.smoothing > 0.0 {
            let smooth = logp.mean(1)?.neg()?;
            ((nll * (1.0 - self.smoothing))? + (smooth * self.smoothing)?)?
        } else {
            nll
        };
        let _ = k;
        match &self.class_weights {
            Some(w) => {
                let wv: Vec<f32> = y
                    .iter()
                    .map(|&c| w.get(c).copied().unwrap_or(1.0))
                    .collect();
                let total: f32 = wv.iter().sum();
                let wt = Tensor::from_vec(wv, y.len(), &self.device)?;
                Ok((per.mul(&wt)?.sum_all()? / f64::from(total))?)
            }
            None => Ok(per.mean_all()?),
        }
    }
}

/// Writes a fine-tuned encoder in the Hugging Face layout: weights, `config.json`, and the
/// encoder's tokenizer files (`tokenizer.json`, `vocab.txt`, ...), so that `transformers` loads
/// the directory with its tokenizer.
pub fn save_encoder_dir(
    dir: &Path,
    tensors: &BTreeMap<String, Tensor>,
    cfg: &bert::Config,
    encoder_dir: &Path,
) -> Result<()> {
    duet_model::hub::save_pretrained(dir, tensors, &serde_json::to_value(cfg)?, Some(encoder_dir))?;
    for extra in ["vocab.txt", "special_tokens_map.json"] {
        let src = encoder_dir.join(extra);
        if src.is_file() {
            std::fs::copy(&src, dir.join(extra)).map_err(|source| Error::Io {
                path: src.clone(),
                source,
            })?;
        }
    }
    Ok(())
}

impl Task for ClassifyTask {
    fn train_loss(&mut self, drop: &Dropout) -> Result<(Tensor, usize)> {
        let idx = self.next_indices();
        let seqs: Vec<&[u32]> = idx.iter().map(|&i| self.train[i].0.as_slice()).collect();
        let y: Vec<usize> = idx.iter().map(|&i| self.train[i].1).collect();
        let (ids, mask) = pad(&seqs, self.cfg.pad_token_id, &self.device)?;
        let logits = self
            .model
            .forward(&ids, &ids.zeros_like()?, &mask, Some(drop))?;
        Ok((self.loss(&logits, &y)?, idx.len()))
    }

    fn loss_and_grads(
        &mut self,
        varmap: &VarMap,
        drop: &Dropout,
    ) -> Result<Option<crate::trainer::LossAndGrads>> {
        if self.fast.is_none() {
            return Ok(None);
        }
        let idx = self.next_indices();
        let seqs: Vec<&[u32]> = idx.iter().map(|&i| self.train[i].0.as_slice()).collect();
        let y: Vec<usize> = idx.iter().map(|&i| self.train[i].1).collect();
        let opts = crate::fast::bert::LossOptions {
            class_weights: self.class_weights.as_deref(),
            smoothing: self.smoothing as f32,
        };
        let Some(fast) = &self.fast else {
            return Ok(None);
        };
        let (loss, grads) =
            fast.loss_and_grads(varmap, &self.frozen, &seqs, &y, opts, drop.seed()?)?;
        Ok(Some((loss, grads, idx.len())))
    }

    fn evaluate(&mut self, varmap: &VarMap) -> Result<BTreeMap<String, f64>> {
        let mut tensors: std::collections::HashMap<String, Tensor> =
            duet_model::init::tensors(varmap).into_iter().collect();
        tensors.extend(self.frozen.iter().map(|(k, v)| (k.clone(), v.clone())));
        let model = BertForSequenceClassification::load(
            candle_nn::VarBuilder::from_tensors(tensors, DType::F32, &self.device),
            &self.cfg,
            self.labels.len(),
        )?;
        let docs: Vec<&[Vec<u32>]> = self.valid.iter().map(|(w, _)| w.as_slice()).collect();
        let logits = doc_logits(&model, &docs, self.cfg.pad_token_id, &self.device, 64)?;
        let y: Vec<usize> = self.valid.iter().map(|(_, y)| *y).collect();
        let probs: Vec<Vec<f32>> = logits.iter().map(|l| softmax(l)).collect();
        let pred: Vec<usize> = probs
            .iter()
            .map(|p| {
                p.iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .map_or(0, |x| x.0)
            })
            .collect();
        let loss = y
            .iter()
            .zip(&probs)
            .map(|(&t, p)| -f64::from(p[t].max(1e-12)).ln())
            .sum::<f64>()
            / y.len().max(1) as f64;
        let m = duet_eval::classification::Metrics::compute(&y, &pred, Some(&probs), &self.labels);
        let mut out = BTreeMap::new();
        out.insert("val_loss".into(), loss);
        for (k, v) in m.headline() {
            out.insert(format!("val_{k}"), v);
        }
        Ok(out)
    }

    fn data_state(&self) -> Result<serde_json::Value> {
        Ok(serde_json::to_value(&self.sampler)?)
    }

    fn set_data_state(&mut self, v: &serde_json::Value) -> Result<()> {
        self.sampler = serde_json::from_value(v.clone())?;
        Ok(())
    }

    fn save(&self, dir: &Path, varmap: &VarMap) -> Result<()> {
        let mut tensors = duet_model::init::tensors(varmap);
        tensors.extend(self.frozen.iter().map(|(k, v)| (k.clone(), v.clone())));
        let mut cfg = self.cfg.clone();
        cfg.architectures = Some(vec!["BertForSequenceClassification".into()]);
        cfg.set_labels(&self.labels);
        save_encoder_dir(dir, &tensors, &cfg, &self.encoder_dir)
    }

    fn unit(&self) -> &'static str {
        "examples"
    }

    fn provenance(&self) -> serde_json::Value {
        serde_json::json!({"encoder": self.encoder_dir.display().to_string(), "train_windows": self.train.len(), "valid_docs": self.valid.len(), "labels": self.labels})
    }
}

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
use tokenizers::Tokenizer;

use crate::trainer::Task;
use crate::{Error, Result};

/// Token windows of a text: `[CLS] … [SEP]` pieces of at most `max_len` tokens, at most
/// `chunks` of them.
pub fn windows(
    tok: &Tokenizer,
    text: &str,
    max_len: usize,
    chunks: usize,
) -> Result<Vec<Vec<u32>>> {
    let enc = tok
        .encode(text, false)
        .map_err(|e| Error::Config(format!("tokenizer: {e}")))?;
    let ids = enc.get_ids();
    let (cls, sep) = specials(tok)?;
    let body = max_len.saturating_sub(2).max(1);
    let mut out: Vec<Vec<u32>> = ids
        .chunks(body)
        .take(chunks.max(1))
        .map(|c| {
            std::iter::once(cls)
                .chain(c.iter().copied())
                .chain(std::iter::once(sep))
                .collect()
        })
        .collect();
    if out.is_empty() {
        out.push(vec![cls, sep]);
    }
    Ok(out)
}

/// `[CLS]` and `[SEP]` ids.
fn specials(tok: &Tokenizer) -> Result<(u32, u32)> {
    let id = |s: &str| {
        tok.token_to_id(s)
            .ok_or_else(|| Error::Config(format!("the encoder's tokenizer has no {s} token")))
    };
    Ok((id("[CLS]")?, id("[SEP]")?))
}

/// The tokenizer of an encoder directory, with its own padding and truncation turned off.
pub fn encoder_tokenizer(dir: &Path) -> Result<Tokenizer> {
    let mut t = duet_model::load_tokenizer(dir)?;
    t.with_padding(None);
    t.with_truncation(None)
        .map_err(|e| Error::Config(format!("tokenizer: {e}")))?;
    Ok(t)
}

/// Pads sequences into `(ids, mask)` tensors of the longest length.
pub fn pad(seqs: &[&[u32]], pad_id: u32, dev: &Device) -> Result<(Tensor, Tensor)> {
    let t = seqs.iter().map(|s| s.len()).max().unwrap_or(1).max(1);
    let mut ids = Vec::with_capacity(seqs.len() * t);
    let mut mask = Vec::with_capacity(seqs.len() * t);
    for s in seqs {
        ids.extend_from_slice(s);
        ids.extend(std::iter::repeat_n(pad_id, t - s.len()));
        mask.extend(std::iter::repeat_n(1u32, s.len()));
        mask.extend(std::iter::repeat_n(0u32, t - s.len()));
    }
    Ok((
        Tensor::from_vec(ids, (seqs.len(), t), dev)?,
        Tensor::from_vec(mask, (seqs.len(), t), dev)?,
    ))
}

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

    /// Logits per document (windows averaged) with a given copy of the model.
    pub fn doc_logits(
        model: &BertForSequenceClassification,
        docs: &[&[Vec<u32>]],
        pad_id: u32,
        dev: &Device,
        batch: usize,
    ) -> Result<Vec<Vec<f32>>> {
        let mut flat: Vec<(usize, &[u32])> = Vec::new();
        for (d, ws) in docs.iter().enumerate() {
            for w in ws.iter() {
                flat.push((d, w.as_slice()));
            }
        }
        // Similar lengths together: less padding.
        let mut order: Vec<usize> = (0..flat.len()).collect();
        order.sort_by_key(|&i| flat[i].1.len());
        let mut sums: Vec<Vec<f32>> = vec![Vec::new(); docs.len()];
        let mut counts = vec![0usize; docs.len()];
        for chunk in order.chunks(batch.max(1)) {
            let seqs: Vec<&[u32]> = chunk.iter().map(|&i| flat[i].1).collect();
            let (ids, mask) = pad(&seqs, pad_id, dev)?;
            let logits: Vec<Vec<f32>> = model
                .forward(&ids, &ids.zeros_like()?, &mask, None)?
                .to_vec2()?;
            for (&i, l) in chunk.iter().zip(logits) {
                let d = flat[i].0;
                if sums[d].is_empty() {
                    sums[d] = vec![0.0; l.len()];
                }
                sums[d].iter_mut().zip(&l).for_each(|(s, v)| *s += v);
                counts[d] += 1;
            }
        }
        Ok(sums
            .into_iter()
            .zip(counts)
            .map(|(s, n)| s.into_iter().map(|v| v / n.max(1) as f32).collect())
            .collect())
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

/// Softmax of one row.
pub fn softmax(l: &[f32]) -> Vec<f32> {
    let m = l.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = l.iter().map(|v| (v - m).exp()).collect();
    let s: f32 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
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
        let logits = Self::doc_logits(&model, &docs, self.cfg.pad_token_id, &self.device, 64)?;
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

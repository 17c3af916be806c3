//! Fine-tuning a BERT encoder for token classification (`BertForTokenClassification`): words
//! are split into word pieces by the encoder's tokenizer, the first piece of each word carries
//! the word's tag and the other pieces are left out of the loss (the Hugging Face alignment);
//! sentences longer than the window are cut at word boundaries into several windows.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{D, DType, Device, Tensor};
use candle_nn::VarMap;
use duet_model::bert::{self, BertForTokenClassification};
use duet_model::nn::Dropout;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_pcg::Pcg32;
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use super::data::Sentence;
use crate::trainer::Task;
use crate::{Error, Result};
use duet_model::predict::tagger::{best_tags, word_probs};
use duet_model::predict::windows::{Window, pad, word_windows};

/// A training window with the tag index of each position (`None`: not in the loss).
#[derive(Debug, Clone)]
pub struct Labelled {
    /// The window.
    pub window: Window,
    /// Per position of `window.ids`.
    pub targets: Vec<Option<u32>>,
}

/// Training windows of a sentence, tags looked up in `index`.
pub fn labelled_windows(
    tok: &Tokenizer,
    s: &Sentence,
    max_len: usize,
    index: &BTreeMap<String, u32>,
) -> Result<Vec<Labelled>> {
    let words = s.word_strs();
    word_windows(tok, &words, max_len)?
        .into_iter()
        .map(|w| {
            let mut targets = vec![None; w.ids.len()];
            for (k, &pos) in w.heads.iter().enumerate() {
                let tag = &s.tags[w.first_word + k];
                let id = index.get(tag).copied().ok_or_else(|| {
                    Error::Config(format!(
                        "{}: tag {tag:?} is not one of the model's tags",
                        s.id
                    ))
                })?;
                targets[pos] = Some(id);
            }
            Ok(Labelled { window: w, targets })
        })
        .collect()
}

/// Where the sampler is, for exact resume.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Sampler {
    order: Vec<usize>,
    pos: usize,
    epoch: u64,
    rng: Pcg32,
}

/// The token-classification task.
pub struct TokensTask {
    model: BertForTokenClassification,
    cfg: bert::Config,
    train: Vec<Labelled>,
    /// Validation sentences: windows and true tags.
    valid: Vec<(Vec<Window>, Vec<String>)>,
    tags: Vec<String>,
    batch: usize,
    sampler: Sampler,
    encoder_dir: PathBuf,
    frozen: BTreeMap<String, Tensor>,
    device: Device,
    /// The explicit forward and backward pass, where it covers the model (CPU, GELU).
    fast: Option<crate::fast::bert::BertTaggerStep>,
}

/// What [`TokensTask::new`] needs beyond the model.
pub struct TokensData {
    /// Training windows.
    pub train: Vec<Labelled>,
    /// Validation sentences: windows and true tags.
    pub valid: Vec<(Vec<Window>, Vec<String>)>,
    /// The tag set, in logit order.
    pub tags: Vec<String>,
}

impl TokensTask {
    /// A task over aligned windows.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        model: BertForTokenClassification,
        cfg: bert::Config,
        data: TokensData,
        batch: usize,
        seed: u64,
        encoder_dir: PathBuf,
        frozen: BTreeMap<String, Tensor>,
        device: Device,
    ) -> Result<Self> {
        if data.train.is_empty() {
            return Err(Error::Config("no training sentences".into()));
        }
        let mut rng = Pcg32::seed_from_u64(seed);
        let mut order: Vec<usize> = (0..data.train.len()).collect();
        order.shuffle(&mut rng);
        let fast = if device.is_cpu() && crate::fast::bert::supported(&cfg) {
            Some(crate::fast::bert::BertTaggerStep::new(
                &cfg,
                data.tags.len(),
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
            train: data.train,
            valid: data.valid,
            tags: data.tags,
            batch,
            sampler: Sampler {
                order,
                pos: 0,
                epoch: 0,
                rng,
            },
            encoder_dir,
            frozen,
            device,
            fast,
        })
    }

    fn next_indices(&mut self) -> Vec<usize> {
        let s = &mut self.sampler;
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
}

/// Mean cross-entropy of `logits` (B, T, K) over the positions that have a target.
pub fn masked_loss(logits: &Tensor, targets: &[Vec<Option<u32>>], dev: &Device) -> Result<Tensor> {
    let (b, t, _) = logits.dims3()?;
    let mut ids = Vec::with_capacity(b * t);
    let mut weight = Vec::with_capacity(b * t);
    for row in targets {
        for p in 0..t {
            let y = row.get(p).copied().flatten();
            ids.push(y.unwrap_or(0));
            weight.push(if y.is_some() { 1f32 } else { 0.0 });
        }
    }
    let n: f32 = weight.iter().sum();
    let logp = candle_nn::ops::log_softmax(&logits.flatten_to(1)?, D::Minus1)?;
    let y = Tensor::from_vec(ids, (b * t, 1), dev)?;
    let nll = logp.gather(&y, 1)?.squeeze(1)?.neg()?;
    let w = Tensor::from_vec(weight, b * t, dev)?;
    Ok((nll.mul(&w)?.sum_all()? / f64::from(n.max(1.0)))?)
}

impl Task for TokensTask {
    fn train_loss(&mut self, drop: &Dropout) -> Result<(Tensor, usize)> {
        let idx = self.next_indices();
        let seqs: Vec<&[u32]> = idx
            .iter()
            .map(|&i| self.train[i].window.ids.as_slice())
            .collect();
        let targets: Vec<Vec<Option<u32>>> =
            idx.iter().map(|&i| self.train[i].targets.clone()).collect();
        let (ids, mask) = pad(&seqs, self.cfg.pad_token_id, &self.device)?;
        let logits = self
            .model
            .forward(&ids, &ids.zeros_like()?, &mask, Some(drop))?;
        Ok((masked_loss(&logits, &targets, &self.device)?, idx.len()))
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
        let seqs: Vec<&[u32]> = idx
            .iter()
            .map(|&i| self.train[i].window.ids.as_slice())
            .collect();
        let targets: Vec<Vec<Option<u32>>> =
            idx.iter().map(|&i| self.train[i].targets.clone()).collect();
        let Some(fast) = &self.fast else {
            return Ok(None);
        };
        let (loss, grads) =
            fast.loss_and_grads(varmap, &self.frozen, &seqs, &targets, drop.seed()?)?;
        Ok(Some((loss, grads, idx.len())))
    }

    fn evaluate(&mut self, varmap: &VarMap) -> Result<BTreeMap<String, f64>> {
        let mut tensors: std::collections::HashMap<String, Tensor> =
            duet_model::init::tensors(varmap).into_iter().collect();
        tensors.extend(self.frozen.iter().map(|(k, v)| (k.clone(), v.clone())));
        let model = BertForTokenClassification::load(
            candle_nn::VarBuilder::from_tensors(tensors, DType::F32, &self.device),
            &self.cfg,
            self.tags.len(),
        )?;
        let windows: Vec<Vec<Window>> = self.valid.iter().map(|(w, _)| w.clone()).collect();
        let probs = word_probs(&model, &windows, self.cfg.pad_token_id, &self.device, 64)?;
        let index: BTreeMap<&str, usize> = self
            .tags
            .iter()
            .enumerate()
            .map(|(i, t)| (t.as_str(), i))
            .collect();
        let (mut loss, mut n) = (0.0, 0usize);
        let mut truth = Vec::new();
        let mut pred = Vec::new();
        for ((_, tags), p) in self.valid.iter().zip(&probs) {
            for (t, pw) in tags.iter().zip(p) {
                if let Some(&k) = index.get(t.as_str()) {
                    loss -= f64::from(pw[k].max(1e-12)).ln();
                    n += 1;
                }
            }
            truth.push(tags.clone());
            pred.push(best_tags(p, &self.tags));
        }
        let m = duet_eval::entities::score(&truth, &pred);
        let mut out = BTreeMap::new();
        out.insert("val_loss".into(), loss / n.max(1) as f64);
        out.insert("val_precision".into(), m.micro.precision);
        out.insert("val_recall".into(), m.micro.recall);
        out.insert("val_f1".into(), m.micro.f1);
        out.insert("val_macro_f1".into(), m.macro_f1);
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
        cfg.architectures = Some(vec!["BertForTokenClassification".into()]);
        cfg.set_labels(&self.tags);
        crate::classify::task::save_encoder_dir(dir, &tensors, &cfg, &self.encoder_dir)
    }

    fn unit(&self) -> &'static str {
        "sentences"
    }

    fn provenance(&self) -> serde_json::Value {
        serde_json::json!({"encoder": self.encoder_dir.display().to_string(), "train_windows": self.train.len(), "valid_sentences": self.valid.len(), "tags": self.tags})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_loss_counts_only_targets() {
        let dev = Device::Cpu;
        // Two positions, two tags; only position 1 has a target (tag 0).
        let logits = Tensor::new(&[[[0f32, 0.0], [2.0, 0.0]]], &dev).unwrap();
        let l: f32 = masked_loss(&logits, &[vec![None, Some(0)]], &dev)
            .unwrap()
            .to_scalar()
            .unwrap();
        let want = -(2f32.exp() / (2f32.exp() + 1.0)).ln();
        assert!((l - want).abs() < 1e-6, "{l} vs {want}");
    }
}

//! `duet train tokens` and `duet eval tokens`: fitting and scoring entity taggers.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use candle_nn::VarMap;
use duet_eval::entities::EntityMetrics;
use duet_model::bert::{self, BertForTokenClassification};
use duet_model::hub::Checkpoint;
use duet_model::init::VarInit;
use indicatif::ProgressBar;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_pcg::Pcg32;
use serde::Serialize;

use super::config::TokConfig;
use super::data::{self, Sentence};
use duet_model::predict::EntityTagger;
use duet_model::predict::windows::{encoder_tokenizer, word_windows};

use super::task::{TokensData, TokensTask, labelled_windows};
use crate::trainer::{Outcome, Trainer};
use crate::{Error, Result};

/// Training and validation sentences as the config says (a seeded share held out without a
/// validation file).
pub fn split_data(cfg: &TokConfig) -> Result<(Vec<Sentence>, Vec<Sentence>)> {
    let d = &cfg.data;
    let path = d
        .train
        .as_ref()
        .ok_or_else(|| Error::Config("set data.train (--train FILE)".into()))?;
    let mut all = data::load(path, d.format, d.tag_column)?;
    if let Some(v) = &d.valid {
        return Ok((all, data::load(v, d.format, d.tag_column)?));
    }
    let mut rng = Pcg32::seed_from_u64(cfg.train.seed ^ 0x70c);
    all.shuffle(&mut rng);
    let n = ((all.len() as f64) * d.valid_share).round() as usize;
    let valid = all.split_off(all.len() - n.min(all.len().saturating_sub(1)));
    Ok((all, valid))
}

/// Fine-tunes an encoder to tag `train`, validating on `valid`; writes the run directory.
pub fn fit(
    cfg: &TokConfig,
    config_toml: &str,
    train: &[Sentence],
    valid: &[Sentence],
    resume: bool,
    stop: Arc<AtomicBool>,
    bar: &ProgressBar,
) -> Result<Outcome> {
    let tags = data::tag_set(train);
    if tags.len() < 3 {
        return Err(Error::Config(
            "the training data has no entities (every tag is O)".into(),
        ));
    }
    let index: BTreeMap<String, u32> = tags
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    let dev = crate::run::device(&cfg.train.device)?;
    let enc = Path::new(&cfg.model.path);
    let tok = encoder_tokenizer(enc)?;
    let m = &cfg.model;
    let mut train_w = Vec::new();
    for s in train {
        train_w.extend(labelled_windows(&tok, s, m.max_length, &index)?);
    }
    // Validation tags the model cannot produce still count (as misses).
    let valid_d = valid
        .iter()
        .map(|s| {
            Ok((
                word_windows(&tok, &s.word_strs(), m.max_length)?,
                s.tags.clone(),
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut tcfg = cfg.train.clone();
    let per_epoch = train_w
        .len()
        .div_ceil(tcfg.batch_size * tcfg.grad_accum)
        .max(1);
    if cfg.loss.epochs > 0.0 {
        tcfg.max_steps = ((cfg.loss.epochs * per_epoch as f64).round() as usize).max(1);
    }
    if tcfg.warmup_steps == 0 {
        tcfg.warmup_steps = (cfg.loss.warmup_ratio * tcfg.max_steps as f64).round() as usize;
    }
    if tcfg.eval_every == 0 {
        tcfg.eval_every = per_epoch;
    }
    let mut bcfg = bert::Config::load(&enc.join("config.json"))?;
    bcfg.hidden_dropout_prob = m.dropout;
    bcfg.attention_probs_dropout_prob = m.dropout;
    bcfg.classifier_dropout = Some(m.dropout);
    bcfg.set_labels(&tags);
    bcfg.extra
        .insert("duet_max_length".into(), m.max_length.into());
    let mut frozen = Vec::new();
    if m.freeze_layers > 0 {
        frozen.push("bert.embeddings.".to_owned());
        frozen.extend((0..m.freeze_layers).map(|l| format!("bert.encoder.layer.{l}.")));
    }
    let varmap = VarMap::new();
    let init = VarInit::with_frozen(
        &varmap,
        tcfg.seed,
        Some(Checkpoint::load(enc, &dev)?),
        frozen,
    );
    let model = BertForTokenClassification::load(init.var_builder(&dev), &bcfg, tags.len())?;
    tracing::info!("newly initialised: {:?}", init.fresh());
    let task = TokensTask::new(
        model,
        bcfg,
        TokensData {
            train: train_w,
            valid: valid_d,
            tags,
        },
        tcfg.batch_size,
        tcfg.seed,
        enc.to_path_buf(),
        init.frozen(),
        dev,
    )?;
    let mut trainer = Trainer::new(task, varmap, &tcfg, config_toml, resume, stop)?;
    trainer.run(bar)
}

/// Entity-level scores of a tagger on tagged sentences, and counts of the data.
#[derive(Debug, Clone, Serialize)]
pub struct TokenEvaluation {
    /// Micro precision over every entity.
    pub precision: f64,
    /// Micro recall.
    pub recall: f64,
    /// Micro F1 (the CoNLL score).
    pub f1: f64,
    /// Mean F1 over entity types.
    pub macro_f1: f64,
    /// Share of words whose tag is right.
    pub word_accuracy: f64,
    /// Sentences scored.
    pub sentences: usize,
    /// Entities in the data.
    pub entities: usize,
    /// Per entity type.
    pub per_type: BTreeMap<String, duet_eval::classification::Prf>,
}

impl TokenEvaluation {
    /// From true and predicted tags.
    pub fn of(truth: &[Vec<String>], pred: &[Vec<String>]) -> Self {
        let m: EntityMetrics = duet_eval::entities::score(truth, pred);
        let (mut right, mut words) = (0usize, 0usize);
        for (t, p) in truth.iter().zip(pred) {
            words += t.len();
            right += t.iter().zip(p).filter(|(a, b)| a == b).count();
        }
        Self {
            precision: m.micro.precision,
            recall: m.micro.recall,
            f1: m.micro.f1,
            macro_f1: m.macro_f1,
            word_accuracy: right as f64 / words.max(1) as f64,
            sentences: truth.len(),
            entities: m.micro.support,
            per_type: m.per_type,
        }
    }

    /// A Markdown report.
    pub fn markdown(&self, title: &str) -> String {
        let mut s = format!(
            "# Entity evaluation: {title}\n\n{} sentences, {} entities. Entity-level scores (an \
             entity counts only with its type and both boundaries right).\n\n| | precision | \
             recall | F1 | support |\n|---|---|---|---|---|\n",
            self.sentences, self.entities
        );
        for (k, p) in &self.per_type {
            s.push_str(&format!(
                "| {k} | {:.4} | {:.4} | {:.4} | {} |\n",
                p.precision, p.recall, p.f1, p.support
            ));
        }
        s.push_str(&format!(
            "| **micro** | {:.4} | {:.4} | {:.4} | {} |\n\nmacro F1 {:.4}; word accuracy {:.4}\n",
            self.precision, self.recall, self.f1, self.entities, self.macro_f1, self.word_accuracy
        ));
        s
    }
}

/// Tags `sentences` with `tagger` and scores them; also returns the predicted tags.
pub fn evaluate(
    tagger: &EntityTagger,
    sentences: &[Sentence],
) -> Result<(TokenEvaluation, Vec<Vec<String>>)> {
    let words: Vec<Vec<&str>> = sentences.iter().map(Sentence::word_strs).collect();
    let pred = tagger.tag_words(&words, 32)?;
    let truth: Vec<Vec<String>> = sentences.iter().map(|s| s.tags.clone()).collect();
    Ok((TokenEvaluation::of(&truth, &pred), pred))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluation_counts_words_and_entities() {
        let t = |s: &str| s.split(' ').map(str::to_owned).collect::<Vec<_>>();
        let e = TokenEvaluation::of(&[t("B-A I-A O B-B")], &[t("B-A I-A O O")]);
        assert_eq!(e.entities, 2);
        assert_eq!((e.precision, e.recall), (1.0, 0.5));
        assert!((e.word_accuracy - 0.75).abs() < 1e-12);
        assert!(
            e.markdown("x")
                .contains("| A | 1.0000 | 1.0000 | 1.0000 | 1 |")
        );
    }
}

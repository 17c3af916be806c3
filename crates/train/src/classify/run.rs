//! `duet train classify` and `duet eval classify`: fitting, evaluating and cross-validating
//! classifiers.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use candle_nn::VarMap;
use duet_eval::classification::Metrics;
use duet_model::bert::{self, BertForSequenceClassification};
use duet_model::hub::Checkpoint;
use duet_model::init::VarInit;
use indicatif::ProgressBar;

use super::config::{ClassWeights, ClsConfig};
use super::data::{self, Example};
use duet_model::predict::windows::{encoder_tokenizer, windows};
use duet_model::predict::{Classifier, argmax};

use super::task::{ClassifyOptions, ClassifyTask};
use crate::trainer::{Outcome, Trainer};
use crate::{Error, Result};

/// Ids (or row indices) listed in a JSON file: `[..]` or `{"test": [..]}`.
pub fn read_ids(path: &Path) -> Result<HashSet<String>> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let v: serde_json::Value = serde_json::from_slice(&bytes)?;
    let list = v.get("test").cloned().unwrap_or(v);
    let arr = list
        .as_array()
        .ok_or_else(|| Error::Config(format!("{}: expected a JSON list of ids", path.display())))?;
    Ok(arr
        .iter()
        .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
        .collect())
}

/// Training and validation examples as the config says.
pub fn split_data(cfg: &ClsConfig) -> Result<(Vec<Example>, Vec<Example>)> {
    let train_path = cfg
        .data
        .train
        .as_ref()
        .ok_or_else(|| Error::Config("set data.train (--train FILE)".into()))?;
    let mut all = data::load(train_path, &cfg.data.fields())?;
    if let Some(ex) = &cfg.data.exclude {
        let ids = read_ids(ex)?;
        all.retain(|e| !ids.contains(&e.id));
    }
    if let Some(v) = &cfg.data.valid {
        return Ok((all, data::load(v, &cfg.data.fields())?));
    }
    let held: HashSet<usize> =
        data::stratified_holdout(&all, cfg.data.valid_share, cfg.train.seed ^ 0x5a1)
            .into_iter()
            .collect();
    let (mut train, mut valid) = (Vec::new(), Vec::new());
    for (i, e) in all.into_iter().enumerate() {
        if held.contains(&i) {
            valid.push(e)
        } else {
            train.push(e)
        }
    }
    Ok((train, valid))
}

/// Fits a classifier as `cfg` says on `train`, validating on `valid`; writes the run directory
/// (`final/`, `best/`, `metrics.jsonl`, ...). Returns how the run ended.
pub fn fit(
    cfg: &ClsConfig,
    config_toml: &str,
    train: &[Example],
    valid: &[Example],
    resume: bool,
    stop: Arc<AtomicBool>,
    bar: &ProgressBar,
) -> Result<Outcome> {
    let labels = data::label_set(train);
    if labels.len() < 2 {
        return Err(Error::Config(format!(
            "the training data has {} label(s); classification needs at least 2",
            labels.len()
        )));
    }
    let index: BTreeMap<&str, usize> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.as_str(), i))
        .collect();
    let y_of = |e: &Example| {
        index.get(e.label.as_str()).copied().ok_or_else(|| {
            Error::Config(format!(
                "{}: label {:?} is not in the training data",
                e.id, e.label
            ))
        })
    };
    let out = &cfg.train.out;
    std::fs::create_dir_all(out).map_err(|source| Error::Io {
        path: out.clone(),
        source,
    })?;
    if cfg.model.path == "tfidf" {
        let texts: Vec<&str> = train.iter().map(|e| e.text.as_str()).collect();
        let y: Vec<usize> = train.iter().map(y_of).collect::<Result<_>>()?;
        let start = std::time::Instant::now();
        let mut tcfg = cfg.tfidf.clone();
        tcfg.balanced |= matches!(&cfg.loss.class_weights, ClassWeights::Named(s) if s == "auto");
        let m = super::tfidf::fit(&tcfg, &texts, &y, &labels)?;
        let secs = start.elapsed().as_secs_f64();
        m.save(&out.join("final"))?;
        m.save(&out.join("best"))?;
        let vm = evaluate_dir(&out.join("final"), valid)?;
        let line = serde_json::json!({"step": 1, "train_seconds": secs, "val_accuracy": vm.accuracy, "val_macro_f1": vm.macro_f1, "features": m.terms.len()});
        std::fs::write(out.join("metrics.jsonl"), format!("{line}\n")).map_err(|source| {
            Error::Io {
                path: out.join("metrics.jsonl"),
                source,
            }
        })?;
        std::fs::write(out.join("config.toml"), config_toml).map_err(|source| Error::Io {
            path: out.join("config.toml"),
            source,
        })?;
        bar.finish_with_message(format!(
            "TF-IDF: {} features in {secs:.2} s; validation accuracy {:.4}",
            m.terms.len(),
            vm.accuracy
        ));
        return Ok(Outcome::Finished);
    }
    let dev = crate::run::device(&cfg.train.device)?;
    let enc = Path::new(&cfg.model.path);
    let tok = encoder_tokenizer(enc)?;
    let m = &cfg.model;
    let mut train_w = Vec::new();
    for e in train {
        for w in windows(&tok, &e.text, m.max_length, m.chunks)? {
            train_w.push((w, y_of(e)?));
        }
    }
    let valid_d = valid
        .iter()
        .map(|e| Ok((windows(&tok, &e.text, m.max_length, m.chunks)?, y_of(e)?)))
        .collect::<Result<Vec<_>>>()?;
    let counts: Vec<usize> = (0..labels.len())
        .map(|c| train_w.iter().filter(|(_, y)| *y == c).count())
        .collect();
    let class_weights = match &cfg.loss.class_weights {
        ClassWeights::Named(s) if s == "none" => None,
        ClassWeights::Named(s) if s == "auto" => Some(
            counts
                .iter()
                .map(|&n| (train_w.len() as f64 / (labels.len() as f64 * n.max(1) as f64)) as f32)
                .collect(),
        ),
        ClassWeights::Named(s) => {
            return Err(Error::Config(format!(
                "loss.class_weights must be none, auto or a list, found {s:?}"
            )));
        }
        ClassWeights::List(v) if v.len() == labels.len() => {
            Some(v.iter().map(|&w| w as f32).collect())
        }
        ClassWeights::List(v) => {
            return Err(Error::Config(format!(
                "loss.class_weights lists {} weights for {} labels {:?}",
                v.len(),
                labels.len(),
                labels
            )));
        }
    };
    // Steps from epochs, warm-up from its ratio, one evaluation per epoch unless set.
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
    bcfg.set_labels(&labels);
    bcfg.extra
        .insert("duet_max_length".into(), m.max_length.into());
    bcfg.extra.insert("duet_chunks".into(), m.chunks.into());
    let mut frozen = Vec::new();
    if m.freeze_encoder {
        frozen.push("bert.".to_owned());
    } else if m.freeze_layers > 0 {
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
    let model = BertForSequenceClassification::load(init.var_builder(&dev), &bcfg, labels.len())?;
    let fresh = init.fresh();
    tracing::info!("newly initialised: {fresh:?}");
    let opts = ClassifyOptions {
        batch: tcfg.batch_size,
        seed: tcfg.seed,
        balanced: cfg.loss.balanced_sampling,
        class_weights,
        smoothing: cfg.loss.label_smoothing,
    };
    let task = ClassifyTask::new(
        model,
        bcfg,
        train_w,
        valid_d,
        labels,
        opts,
        enc.to_path_buf(),
        init.frozen(),
        dev,
    )?;
    let mut trainer = Trainer::new(task, varmap, &tcfg, config_toml, resume, stop)?;
    trainer.run(bar)
}

/// A classifier's predictions on labelled examples, as class indices into its labels.
#[derive(Debug, Clone)]
pub struct Predictions {
    /// The true class of each example.
    pub truth: Vec<usize>,
    /// The predicted class of each example.
    pub pred: Vec<usize>,
    /// Class probabilities of each example.
    pub probs: Vec<Vec<f32>>,
}

/// Predictions of a classifier on `examples`; a label the model does not know is an error.
pub fn predict_examples(c: &Classifier, examples: &[Example], batch: usize) -> Result<Predictions> {
    let labels = c.labels();
    let index: BTreeMap<&str, usize> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.as_str(), i))
        .collect();
    let y: Vec<usize> = examples
        .iter()
        .map(|e| {
            index.get(e.label.as_str()).copied().ok_or_else(|| {
                Error::Config(format!(
                    "{}: label {:?} is not one of the model's {:?}",
                    e.id, e.label, labels
                ))
            })
        })
        .collect::<Result<_>>()?;
    let texts: Vec<&str> = examples.iter().map(|e| e.text.as_str()).collect();
    let probs = c.predict_proba(&texts, batch)?;
    let pred = probs.iter().map(|p| argmax(p)).collect();
    Ok(Predictions {
        truth: y,
        pred,
        probs,
    })
}

/// Metrics of a classifier directory on `examples`.
pub fn evaluate_dir(dir: &Path, examples: &[Example]) -> Result<Metrics> {
    let c = Classifier::load(dir)?;
    let p = predict_examples(&c, examples, 32)?;
    Ok(Metrics::compute(
        &p.truth,
        &p.pred,
        Some(&p.probs),
        c.labels(),
    ))
}

//! The training loop, the same for every task: micro-batches with gradient accumulation,
//! global-norm clipping, AdamW with a warm-up schedule, periodic evaluation with early stopping
//! and a kept best model, atomic checkpoints with exact resume, a stop request (Ctrl-C) that
//! checkpoints first, and a refusal to go on from a NaN loss.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use candle_core::Tensor;
use candle_nn::VarMap;
use duet_model::nn::Dropout;
use indicatif::ProgressBar;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::checkpoint::{self, TrainerState};
use crate::config::TrainSection;
use crate::error::IoContext;
use crate::optim::{AdamW, AdamWConfig, clip_grad_norm};
use crate::schedule::Schedule;
use crate::{Error, Result};

/// One gradient per variable, by variable name.
pub type Gradients = BTreeMap<String, Tensor>;

/// What [`Task::loss_and_grads`] returns: the loss, the gradients, the batch's size.
pub type LossAndGrads = (f32, Gradients, usize);

/// What a task provides to the trainer.
pub trait Task {
    /// The loss (a scalar, averaged over the micro-batch) of the next training micro-batch and
    /// its size in the task's unit.
    fn train_loss(&mut self, drop: &Dropout) -> Result<(Tensor, usize)>;
    /// A task that computes its own gradients (an explicit backward pass) returns the loss of
    /// the next micro-batch, a gradient per variable, and the batch's size; `None` means
    /// candle's autograd on [`Task::train_loss`] is used. `drop` seeds its dropout masks.
    fn loss_and_grads(
        &mut self,
        _varmap: &VarMap,
        _drop: &Dropout,
    ) -> Result<Option<LossAndGrads>> {
        Ok(None)
    }
    /// Metrics on the validation data; includes the early-stopping metric. `varmap` holds the
    /// current parameters (evaluation may build a detached, inference-only model from them).
    fn evaluate(&mut self, varmap: &VarMap) -> Result<BTreeMap<String, f64>>;
    /// The data loader's state, for checkpoints.
    fn data_state(&self) -> Result<serde_json::Value>;
    /// Restores a saved data loader state.
    fn set_data_state(&mut self, v: &serde_json::Value) -> Result<()>;
    /// Writes the model in the Hugging Face layout into `dir`.
    fn save(&self, dir: &Path, varmap: &VarMap) -> Result<()>;
    /// The unit of `train_loss`'s size, for logs (`tokens`, `examples`).
    fn unit(&self) -> &'static str;
    /// Facts about the run's inputs for `duet.json` (corpus and tokenizer hashes).
    fn provenance(&self) -> serde_json::Value;
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// All steps done.
    Finished,
    /// Early stopping: no improvement for `patience` evaluations.
    EarlyStopped,
    /// A stop was requested (Ctrl-C); a checkpoint was written.
    Interrupted,
}

/// The trainer over one task.
pub struct Trainer<T: Task> {
    /// The task.
    pub task: T,
    varmap: VarMap,
    opt: AdamW,
    sched: Schedule,
    cfg: TrainSection,
    dropout: Dropout,
    state: TrainerState,
    run: PathBuf,
    stop: Arc<AtomicBool>,
    metrics: std::fs::File,
    train_curve: Vec<(f64, f64)>,
    valid_curve: Vec<(f64, f64)>,
}

/// A line of `metrics.jsonl`.
fn log_line(f: &mut std::fs::File, path: &Path, v: &serde_json::Value) -> Result<()> {
    let mut line = serde_json::to_vec(v)?;
    line.push(b'\n');
    f.write_all(&line).at(path)
}

impl<T: Task> Trainer<T> {
    /// A trainer for `task` whose parameters live in `varmap`. `config_toml` is the resolved
    /// configuration, saved as `config.toml` and hashed so that a resume can check it.
    /// With `resume`, the newest checkpoint of the run directory is loaded.
    pub fn new(
        task: T,
        varmap: VarMap,
        cfg: &TrainSection,
        config_toml: &str,
        resume: bool,
        stop: Arc<AtomicBool>,
    ) -> Result<Self> {
        cfg.validate()?;
        let run = cfg.out.clone();
        let config_sha256 = Sha256::digest(config_toml.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>();
        let existing = checkpoint::list(&run)?;
        if !resume && run.join("metrics.jsonl").exists() {
            return Err(Error::Config(format!(
                "{} holds an earlier run; pass --resume to continue it, or choose another --out",
                run.display()
            )));
        }
        std::fs::create_dir_all(&run).at(&run)?;
        let cfg_path = run.join("config.toml");
        std::fs::write(&cfg_path, config_toml).at(&cfg_path)?;
        let opt = AdamW::new(
            &varmap,
            AdamWConfig {
                beta1: cfg.beta1,
                beta2: cfg.beta2,
                eps: cfg.eps,
                weight_decay: cfg.weight_decay,
            },
        )?;
        let sched = Schedule {
            lr: cfg.lr,
            min_lr: cfg.min_lr,
            warmup: cfg.warmup_steps,
            total: cfg.max_steps,
            decay: cfg.schedule,
        };
        let dropout = Dropout::new(cfg.seed ^ 0xd0_d0);
        let state = TrainerState {
            step: 0,
            seen: 0,
            best: None,
            best_step: 0,
            bad_evals: 0,
            dropout_rng: dropout
                .state()
                .ok_or_else(|| Error::Config("dropout lock poisoned".into()))?,
            data: serde_json::Value::Null,
            config_sha256,
        };
        let metrics_path = run.join("metrics.jsonl");
        let mut t = Self {
            task,
            varmap,
            opt,
            sched,
            cfg: cfg.clone(),
            dropout,
            state,
            run,
            stop,
            metrics: std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&metrics_path)
                .at(&metrics_path)?,
            train_curve: Vec::new(),
            valid_curve: Vec::new(),
        };
        if resume {
            match existing.last() {
                Some((_, dir)) => t.restore(dir)?,
                None => tracing::info!(
                    "no checkpoint in {}; starting from the beginning",
                    t.run.display()
                ),
            }
        }
        Ok(t)
    }

    /// The optimizer step reached.
    pub fn step(&self) -> usize {
        self.state.step
    }

    /// Loads a checkpoint: weights, optimizer, trainer and data state; trims metrics written
    /// after it.
    fn restore(&mut self, dir: &Path) -> Result<()> {
        let st = checkpoint::read_state(dir)?;
        if st.config_sha256 != self.state.config_sha256 {
            return Err(Error::Checkpoint {
                path: dir.to_path_buf(),
                reason: "the configuration differs from the one this run was started with (see config.toml in the run directory)".into(),
            });
        }
        let weights = candle_core::safetensors::load(
            dir.join("model.safetensors"),
            &candle_core::Device::Cpu,
        )?;
        {
            let data = self
                .varmap
                .data()
                .lock()
                .map_err(|_| Error::Config("varmap lock poisoned".into()))?;
            for (name, var) in data.iter() {
                let t = weights.get(name).ok_or_else(|| Error::Checkpoint {
                    path: dir.to_path_buf(),
                    reason: format!("no tensor {name}"),
                })?;
                var.set(&t.to_device(var.device())?)?;
            }
        }
        let opt = candle_core::safetensors::load(
            dir.join("optimizer.safetensors"),
            &candle_core::Device::Cpu,
        )?;
        self.opt.load_state(&opt)?;
        self.task.set_data_state(&st.data)?;
        self.dropout.restore(st.dropout_rng.clone());
        self.state = st;
        // Keep the metrics up to the checkpoint; later lines belong to the lost work.
        let path = self.run.join("metrics.jsonl");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let mut kept = String::new();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
            if v["step"]
                .as_u64()
                .is_some_and(|s| s as usize <= self.state.step)
            {
                if let Some(l) = v["train_loss"].as_f64() {
                    self.train_curve
                        .push((v["step"].as_f64().unwrap_or(0.0), l));
                }
                if let Some(l) = v["val_loss"].as_f64() {
                    self.valid_curve
                        .push((v["step"].as_f64().unwrap_or(0.0), l));
                }
                kept.push_str(line);
                kept.push('\n');
            }
        }
        std::fs::write(&path, kept).at(&path)?;
        self.metrics = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .at(&path)?;
        tracing::info!("resumed from {} at step {}", dir.display(), self.state.step);
        Ok(())
    }

    /// Writes a checkpoint of the current state.
    pub fn checkpoint(&mut self) -> Result<PathBuf> {
        self.state.dropout_rng = self
            .dropout
            .state()
            .ok_or_else(|| Error::Config("dropout lock poisoned".into()))?;
        self.state.data = self.task.data_state()?;
        let opt = self.opt.state()?;
        let dir = checkpoint::write(&self.run, &self.state, &opt, |d| {
            self.task.save(d, &self.varmap)
        })?;
        checkpoint::prune(&self.run, self.cfg.keep_checkpoints)?;
        Ok(dir)
    }

    /// Runs until `max_steps`, early stopping, or a stop request.
    pub fn run(&mut self, bar: &ProgressBar) -> Result<Outcome> {
        let cfg = self.cfg.clone();
        bar.set_length(cfg.max_steps as u64);
        bar.set_position(self.state.step as u64);
        let metrics_path = self.run.join("metrics.jsonl");
        let mut outcome = Outcome::Finished;
        let mut window_start = Instant::now();
        let mut window_seen = 0u64;
        let mut window_loss = 0f64;
        let mut window_steps = 0usize;
        while self.state.step < cfg.max_steps {
            if self.stop.load(Ordering::SeqCst) {
                outcome = Outcome::Interrupted;
                break;
            }
            let lr = self.sched.at(self.state.step);
            let mut grads: BTreeMap<String, Tensor> = BTreeMap::new();
            let mut loss_sum = 0f64;
            for _ in 0..cfg.grad_accum {
                if let Some((value, g, n)) =
                    self.task.loss_and_grads(&self.varmap, &self.dropout)?
                {
                    if !value.is_finite() {
                        return Err(Error::NonFinite {
                            step: self.state.step + 1,
                            value,
                        });
                    }
                    loss_sum += f64::from(value);
                    for (name, gv) in g {
                        let gv = if cfg.grad_accum > 1 {
                            (gv / cfg.grad_accum as f64)?
                        } else {
                            gv
                        };
                        match grads.get_mut(&name) {
                            Some(acc) => *acc = (&*acc + gv)?,
                            None => {
                                grads.insert(name, gv);
                            }
                        }
                    }
                    self.state.seen += n as u64;
                    window_seen += n as u64;
                    continue;
                }
                let (loss, n) = self.task.train_loss(&self.dropout)?;
                let value = loss.to_scalar::<f32>()?;
                if !value.is_finite() {
                    return Err(Error::NonFinite {
                        step: self.state.step + 1,
                        value,
                    });
                }
                loss_sum += f64::from(value);
                let scaled = if cfg.grad_accum > 1 {
                    (loss / cfg.grad_accum as f64)?
                } else {
                    loss
                };
                let g = scaled.backward()?;
                for (name, var) in self.opt.vars() {
                    if let Some(gv) = g.get(var.as_tensor()) {
                        match grads.get_mut(name) {
                            Some(acc) => *acc = (&*acc + gv)?,
                            None => {
                                grads.insert(name.to_owned(), gv.clone());
                            }
                        }
                    }
                }
                self.state.seen += n as u64;
                window_seen += n as u64;
            }
            let grad_norm = clip_grad_norm(&mut grads, cfg.grad_clip)?;
            if !grad_norm.is_finite() {
                return Err(Error::NonFinite {
                    step: self.state.step + 1,
                    value: grad_norm as f32,
                });
            }
            self.opt.step(&grads, lr)?;
            drop(grads);
            self.state.step += 1;
            let step = self.state.step;
            let train_loss = loss_sum / cfg.grad_accum as f64;
            window_loss += train_loss;
            window_steps += 1;
            if step.is_multiple_of(cfg.log_every.max(1)) || step == cfg.max_steps {
                let secs = window_start.elapsed().as_secs_f64().max(1e-9);
                let rate = window_seen as f64 / secs;
                let avg = window_loss / window_steps as f64;
                let mut line = serde_json::json!({"step": step, "train_loss": avg, "lr": lr, "grad_norm": grad_norm});
                line[format!("{}_per_sec", self.task.unit())] = rate.into();
                log_line(&mut self.metrics, &metrics_path, &line)?;
                self.train_curve.push((step as f64, avg));
                bar.set_message(format!(
                    "loss {avg:.4} lr {lr:.2e} {rate:.0} {}/s",
                    self.task.unit()
                ));
                window_start = Instant::now();
                window_seen = 0;
                window_loss = 0.0;
                window_steps = 0;
            }
            bar.set_position(step as u64);
            let eval_now = (cfg.eval_every > 0 && step.is_multiple_of(cfg.eval_every))
                || step == cfg.max_steps;
            if eval_now && self.evaluate_and_track(&metrics_path)? {
                outcome = Outcome::EarlyStopped;
                break;
            }
            if cfg.checkpoint_every > 0
                && step.is_multiple_of(cfg.checkpoint_every)
                && step != cfg.max_steps
            {
                self.checkpoint()?;
            }
        }
        let ckpt = self.checkpoint()?;
        if outcome != Outcome::Interrupted {
            checkpoint::publish_model(&ckpt, &self.run.join("final"))?;
            self.write_provenance(&self.run.join("final"), outcome)?;
        }
        self.plot()?;
        self.write_provenance(&self.run, outcome)?;
        bar.finish_with_message(format!("{outcome:?} at step {}", self.state.step));
        Ok(outcome)
    }

    /// Evaluates, logs, keeps the best model; returns whether early stopping triggers.
    fn evaluate_and_track(&mut self, metrics_path: &Path) -> Result<bool> {
        let m = self.task.evaluate(&self.varmap)?;
        let step = self.state.step;
        let mut line = serde_json::json!({"step": step});
        for (k, v) in &m {
            line[k] = (*v).into();
        }
        log_line(&mut self.metrics, metrics_path, &line)?;
        if let Some(l) = m.get("val_loss") {
            self.valid_curve.push((step as f64, *l));
        }
        self.plot()?;
        let key = &self.cfg.early_stop_metric;
        let Some(&value) = m.get(key) else {
            return Err(Error::Config(format!(
                "train.early_stop_metric {key:?} is not among the evaluation metrics {:?}",
                m.keys().collect::<Vec<_>>()
            )));
        };
        // Losses go down; accuracies and F1 go up.
        let lower_better = key.contains("loss") || key.contains("ppl") || key.contains("bpb");
        let better = self
            .state
            .best
            .is_none_or(|b| if lower_better { value < b } else { value > b });
        if better {
            self.state.best = Some(value);
            self.state.best_step = step;
            self.state.bad_evals = 0;
            let tmp = self.run.join(".best-staging");
            if tmp.exists() {
                std::fs::remove_dir_all(&tmp).at(&tmp)?;
            }
            self.task.save(&tmp, &self.varmap)?;
            checkpoint::publish_model(&tmp, &self.run.join("best"))?;
            std::fs::remove_dir_all(&tmp).at(&tmp)?;
            self.write_provenance(&self.run.join("best"), Outcome::Finished)?;
        } else {
            self.state.bad_evals += 1;
        }
        Ok(self.cfg.patience > 0 && self.state.bad_evals >= self.cfg.patience)
    }

    /// Redraws `loss.png`.
    fn plot(&self) -> Result<()> {
        crate::plot::loss_plot(
            &self.run.join("loss.png"),
            &self.train_curve,
            &self.valid_curve,
        )
    }

    /// `duet.json`: how the model was made.
    fn write_provenance(&self, dir: &Path, outcome: Outcome) -> Result<()> {
        let v = serde_json::json!({
            "duet_version": env!("CARGO_PKG_VERSION"),
            "git_commit": git_commit(),
            "outcome": outcome,
            "step": self.state.step,
            "seen": self.state.seen,
            "best": self.state.best,
            "best_step": self.state.best_step,
            "config_sha256": self.state.config_sha256,
            "inputs": self.task.provenance(),
        });
        let p = dir.join("duet.json");
        std::fs::create_dir_all(dir).at(dir)?;
        std::fs::write(&p, serde_json::to_vec_pretty(&v)?).at(&p)
    }
}

/// The commit of the working directory's git checkout, if any.
fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

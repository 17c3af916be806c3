//! The trained policy: a small neural network over the featurised dialogue history (the role of
//! Rasa's TED policy). Each of the last `max_history` states becomes a multi-hot vector of its
//! features (previous action, intent, entities, slots, active form); the vectors, in order, feed
//! a two-layer perceptron whose softmax ranks every action. It answers where rules and
//! memorised stories do not, and gives way to the fallback below its confidence threshold.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{Linear, Module, Optimizer, VarBuilder};
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg32;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, io};
use crate::policy::State;

/// Hyper-parameters and vocabularies of the trained policy.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LearnedMeta {
    /// States of history fed to the network.
    pub history: usize,
    /// Feature name to index.
    pub features: BTreeMap<String, usize>,
    /// Actions, in output order.
    pub actions: Vec<String>,
    /// Hidden units.
    pub hidden: usize,
    /// Below this confidence the fallback runs instead.
    pub threshold: f64,
}

/// A trained policy network.
pub struct LearnedPolicy {
    /// Vocabularies and settings.
    pub meta: LearnedMeta,
    l1: Linear,
    l2: Linear,
}

fn state_features(s: &State) -> Vec<String> {
    let mut f = Vec::new();
    if let Some(a) = &s.prev_action {
        f.push(format!("prev:{a}"));
    }
    if let Some(i) = &s.intent {
        f.push(format!("intent:{i}"));
    }
    if let Some(t) = &s.text {
        f.extend(
            t.split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .map(|w| format!("word:{}", w.to_lowercase())),
        );
    }
    f.extend(s.entities.iter().map(|e| format!("entity:{e}")));
    f.extend(s.slots.iter().map(|(k, v)| format!("slot:{k}={v}")));
    if let Some(l) = &s.active_loop {
        f.push(format!("loop:{l}"));
    }
    f
}

fn candle(e: candle_core::Error) -> Error {
    Error::Model(format!("policy network: {e}"))
}

impl LearnedMeta {
    fn width(&self) -> usize {
        self.history * self.features.len().max(1)
    }

    /// The input row of the latest `history` states (oldest first, padded at the front).
    fn row(&self, states: &[State]) -> Vec<f32> {
        let v = self.features.len().max(1);
        let mut x = vec![0f32; self.width()];
        let tail = &states[states.len().saturating_sub(self.history)..];
        let offset = self.history - tail.len();
        for (k, s) in tail.iter().enumerate() {
            for f in state_features(s) {
                if let Some(&i) = self.features.get(&f) {
                    x[(offset + k) * v + i] = 1.0;
                }
            }
        }
        x
    }
}

impl LearnedPolicy {
    /// Trains on (history, next action) pairs.
    pub fn train(
        pairs: &[(Vec<State>, String)],
        history: usize,
        epochs: usize,
        threshold: f64,
        seed: u64,
    ) -> Result<Option<Self>> {
        if pairs.is_empty() {
            return Ok(None);
        }
        let mut features = BTreeMap::new();
        let mut actions: Vec<String> = pairs.iter().map(|(_, a)| a.clone()).collect();
        actions.sort();
        actions.dedup();
        for (h, _) in pairs {
            for s in h {
                for f in state_features(s) {
                    let n = features.len();
                    features.entry(f).or_insert(n);
                }
            }
        }
        let meta = LearnedMeta {
            history: history.max(1),
            features,
            actions,
            hidden: 64,
            threshold,
        };
        let dev = Device::Cpu;
        let w = meta.width();
        let xs: Vec<f32> = pairs.iter().flat_map(|(h, _)| meta.row(h)).collect();
        let ys: Vec<u32> = pairs
            .iter()
            .map(|(_, a)| meta.actions.binary_search(a).unwrap_or(0) as u32)
            .collect();
        let x = Tensor::from_vec(xs, (pairs.len(), w), &dev).map_err(candle)?;
        let y = Tensor::from_vec(ys, pairs.len(), &dev).map_err(candle)?;
        // Seeded uniform initialisation (as PyTorch's `Linear`): a run is reproducible.
        let mut rng = Pcg32::seed_from_u64(seed);
        let mut var = |rows: usize, cols: usize, fan_in: usize| -> Result<Var> {
            let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
            let v: Vec<f32> = (0..rows * cols.max(1))
                .map(|_| rng.random_range(-bound..bound))
                .collect();
            let t = if cols == 0 {
                Tensor::from_vec(v, rows, &dev)
            } else {
                Tensor::from_vec(v, (rows, cols), &dev)
            };
            Var::from_tensor(&t.map_err(candle)?).map_err(candle)
        };
        let vars = [
            var(meta.hidden, w, w)?,
            var(meta.hidden, 0, w)?,
            var(meta.actions.len(), meta.hidden, meta.hidden)?,
            var(meta.actions.len(), 0, meta.hidden)?,
        ];
        let l1 = Linear::new(
            vars[0].as_tensor().clone(),
            Some(vars[1].as_tensor().clone()),
        );
        let l2 = Linear::new(
            vars[2].as_tensor().clone(),
            Some(vars[3].as_tensor().clone()),
        );
        let mut opt = candle_nn::AdamW::new(
            vars.to_vec(),
            candle_nn::ParamsAdamW {
                lr: 0.01,
                weight_decay: 0.001,
                ..Default::default()
            },
        )
        .map_err(candle)?;
        for _ in 0..epochs {
            let logits = l2
                .forward(&l1.forward(&x).map_err(candle)?.relu().map_err(candle)?)
                .map_err(candle)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &y).map_err(candle)?;
            opt.backward_step(&loss).map_err(candle)?;
        }
        Ok(Some(Self { meta, l1, l2 }))
    }

    /// Probability of every action after `states`, best first.
    pub fn rank(&self, states: &[State]) -> Result<Vec<(String, f64)>> {
        let x = Tensor::from_vec(self.meta.row(states), (1, self.meta.width()), &Device::Cpu)
            .map_err(candle)?;
        let logits = self
            .l2
            .forward(
                &self
                    .l1
                    .forward(&x)
                    .map_err(candle)?
                    .relu()
                    .map_err(candle)?,
            )
            .map_err(candle)?;
        let p: Vec<f32> = candle_nn::ops::softmax_last_dim(&logits)
            .and_then(|p| p.squeeze(0))
            .and_then(|p| p.to_vec1())
            .map_err(candle)?;
        let mut out: Vec<(String, f64)> = self
            .meta
            .actions
            .iter()
            .cloned()
            .zip(p.into_iter().map(f64::from))
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(out)
    }

    /// Writes `policy.safetensors` and `policy.json` into `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let mut t = std::collections::HashMap::new();
        for (name, l) in [("l1", &self.l1), ("l2", &self.l2)] {
            t.insert(format!("{name}.weight"), l.weight().clone());
            if let Some(b) = l.bias() {
                t.insert(format!("{name}.bias"), b.clone());
            }
        }
        let st = dir.join("policy.safetensors");
        candle_core::safetensors::save(&t, &st).map_err(candle)?;
        let js = dir.join("policy.json");
        std::fs::write(&js, serde_json::to_vec_pretty(&self.meta)?).map_err(io(&js))
    }

    /// Reads a policy written by [`LearnedPolicy::save`]; `None` when there is none.
    pub fn load(dir: &Path) -> Result<Option<Self>> {
        let js = dir.join("policy.json");
        if !js.is_file() {
            return Ok(None);
        }
        let meta: LearnedMeta = serde_json::from_slice(&std::fs::read(&js).map_err(io(&js))?)?;
        let st = dir.join("policy.safetensors");
        let t = candle_core::safetensors::load(&st, &Device::Cpu).map_err(candle)?;
        let vb = VarBuilder::from_tensors(t, DType::F32, &Device::Cpu);
        let l1 = candle_nn::linear(meta.width(), meta.hidden, vb.pp("l1")).map_err(candle)?;
        let l2 = candle_nn::linear(meta.hidden, meta.actions.len(), vb.pp("l2")).map_err(candle)?;
        Ok(Some(Self { meta, l1, l2 }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(prev: &str, intent: &str, slots: &[(&str, &str)]) -> State {
        State {
            prev_action: Some(prev.into()),
            intent: Some(intent.into()),
            text: None,
            entities: vec![],
            slots: slots
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            active_loop: None,
        }
    }

    #[test]
    fn generalises_to_states_no_story_had_and_round_trips() {
        let pairs = vec![
            (
                vec![st("action_listen", "greet", &[])],
                "utter_greet".to_owned(),
            ),
            (
                vec![
                    st("action_listen", "greet", &[]),
                    st("utter_greet", "greet", &[]),
                ],
                "action_listen".to_owned(),
            ),
            (
                vec![st("action_listen", "thank", &[("vip", "true")])],
                "utter_welcome".to_owned(),
            ),
        ];
        let p = LearnedPolicy::train(&pairs, 3, 200, 0.3, 7)
            .unwrap()
            .unwrap();
        // A slot no greeting story had: exact memorisation would not know; the network does.
        let unseen = [st("action_listen", "greet", &[("vip", "true")])];
        assert_eq!(p.rank(&unseen).unwrap()[0].0, "utter_greet");
        let tmp = tempfile::tempdir().unwrap();
        p.save(tmp.path()).unwrap();
        let q = LearnedPolicy::load(tmp.path()).unwrap().unwrap();
        assert_eq!(p.rank(&unseen).unwrap(), q.rank(&unseen).unwrap());
    }
}

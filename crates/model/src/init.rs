//! Parameters as trainable variables: initialised from a seed (so runs reproduce — candle's own
//! CPU initialisers are not seeded), or copied from a pretrained checkpoint where it has the
//! tensor, with the names of newly initialised parameters recorded (a classifier head on a
//! pretrained encoder, say).

use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::{Init, VarBuilder, VarMap};
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;
use rand_pcg::Pcg32;

use crate::hub::Checkpoint;

/// A `VarBuilder` backend that creates variables in a `VarMap`.
pub struct VarInit {
    varmap: VarMap,
    rng: Mutex<Pcg32>,
    pretrained: Option<Arc<Checkpoint>>,
    fresh: Mutex<Vec<String>>,
    frozen_prefixes: Vec<String>,
    frozen: Mutex<std::collections::BTreeMap<String, Tensor>>,
}

impl VarInit {
    /// Variables initialised from `seed` (and from `pretrained` where it has the tensor).
    pub fn new(varmap: &VarMap, seed: u64, pretrained: Option<Arc<Checkpoint>>) -> Arc<Self> {
        Self::with_frozen(varmap, seed, pretrained, Vec::new())
    }

    /// As [`Self::new`], but parameters whose names start with one of `frozen` are plain
    /// tensors, outside the `VarMap` (so no optimizer touches them); [`Self::frozen`] returns
    /// them for saving.
    pub fn with_frozen(
        varmap: &VarMap,
        seed: u64,
        pretrained: Option<Arc<Checkpoint>>,
        frozen: Vec<String>,
    ) -> Arc<Self> {
        Arc::new(Self {
            varmap: varmap.clone(),
            rng: Mutex::new(Pcg32::seed_from_u64(seed)),
            pretrained,
            fresh: Mutex::new(Vec::new()),
            frozen_prefixes: frozen,
            frozen: Mutex::new(std::collections::BTreeMap::new()),
        })
    }

    /// The frozen parameters, by name.
    pub fn frozen(&self) -> std::collections::BTreeMap<String, Tensor> {
        self.frozen.lock().map(|f| f.clone()).unwrap_or_default()
    }

    /// A `VarBuilder` over this backend (f32 on `device`).
    pub fn var_builder(self: &Arc<Self>, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(Shared(self.clone())), DType::F32, device.clone())
    }

    /// Names of the variables that did not come from the pretrained checkpoint.
    pub fn fresh(&self) -> Vec<String> {
        self.fresh.lock().map(|f| f.clone()).unwrap_or_default()
    }

    fn sample(&self, shape: &Shape, init: Init, dev: &Device) -> candle_core::Result<Tensor> {
        let n = shape.elem_count();
        let mut rng = self
            .rng
            .lock()
            .map_err(|_| candle_core::Error::Msg("init lock poisoned".into()))?;
        let normal = |rng: &mut Pcg32, mean: f64, std: f64| -> Vec<f32> {
            (0..n)
                .map(|_| (mean + std * rng.sample::<f64, _>(StandardNormal)) as f32)
                .collect()
        };
        let v: Vec<f32> = match init {
            Init::Const(c) => vec![c as f32; n],
            Init::Randn { mean, stdev } => normal(&mut rng, mean, stdev),
            Init::Uniform { lo, up } => (0..n)
                .map(|_| (lo + (up - lo) * rng.random::<f64>()) as f32)
                .collect(),
            Init::Kaiming {
                dist,
                fan,
                non_linearity,
            } => {
                let std = non_linearity.gain() / (fan.for_shape(shape) as f64).sqrt();
                match dist {
                    candle_nn::init::NormalOrUniform::Normal => normal(&mut rng, 0.0, std),
                    candle_nn::init::NormalOrUniform::Uniform => {
                        let bound = 3f64.sqrt() * std;
                        (0..n)
                            .map(|_| (-bound + 2.0 * bound * rng.random::<f64>()) as f32)
                            .collect()
                    }
                }
            }
        };
        Tensor::from_vec(v, shape, dev)
    }
}

struct Shared(Arc<VarInit>);

impl candle_nn::var_builder::SimpleBackend for Shared {
    fn get(
        &self,
        s: Shape,
        name: &str,
        init: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let vi = &self.0;
        let data = vi.varmap.data();
        if let Some(v) = data
            .lock()
            .map_err(|_| candle_core::Error::Msg("varmap lock poisoned".into()))?
            .get(name)
        {
            if v.dims() != s.dims() {
                candle_core::bail!(
                    "variable {name} exists with shape {:?}, asked for {:?}",
                    v.dims(),
                    s.dims()
                );
            }
            return Ok(v.as_tensor().clone());
        }
        if let Some(t) = vi.frozen.lock().ok().and_then(|f| f.get(name).cloned()) {
            return Ok(t);
        }
        let value = match vi
            .pretrained
            .as_ref()
            .map(|ck| ck.get(name))
            .transpose()
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?
            .flatten()
        {
            Some(t) if t.dims() == s.dims() => t.to_device(dev)?,
            // A task head trained for another label set (a token classifier's head when a
            // sequence classifier is wanted, or other labels): started afresh, as
            // `transformers`' `ignore_mismatched_sizes` does; the encoder's own tensors must fit.
            Some(t) if name.starts_with("classifier.") => {
                tracing::warn!(
                    "pretrained {name} has shape {:?}, the new head needs {:?}: initialised afresh",
                    t.dims(),
                    s.dims()
                );
                if let Ok(mut f) = vi.fresh.lock() {
                    f.push(name.to_owned());
                }
                vi.sample(&s, init, dev)?
            }
            Some(t) => candle_core::bail!(
                "pretrained {name} has shape {:?}, the model needs {:?}",
                t.dims(),
                s.dims()
            ),
            None => {
                if let Ok(mut f) = vi.fresh.lock() {
                    f.push(name.to_owned());
                }
                vi.sample(&s, init, dev)?
            }
        };
        if vi
            .frozen_prefixes
            .iter()
            .any(|p| name.starts_with(p.as_str()))
        {
            let t = value.to_dtype(dtype)?;
            if let Ok(mut f) = vi.frozen.lock() {
                f.insert(name.to_owned(), t.clone());
            }
            return Ok(t);
        }
        let var = Var::from_tensor(&value.to_dtype(dtype)?)?;
        let t = var.as_tensor().clone();
        data.lock()
            .map_err(|_| candle_core::Error::Msg("varmap lock poisoned".into()))?
            .insert(name.to_owned(), var);
        Ok(t)
    }

    fn get_unchecked(
        &self,
        name: &str,
        _dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        match self
            .0
            .varmap
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("varmap lock poisoned".into()))?
            .get(name)
        {
            Some(v) => Ok(v.as_tensor().clone()),
            None => candle_core::bail!("no variable {name}"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.0
            .varmap
            .data()
            .lock()
            .map(|d| d.contains_key(name))
            .unwrap_or(false)
    }
}

/// The variables of a `VarMap` as plain tensors, by name (for saving).
pub fn tensors(varmap: &VarMap) -> std::collections::BTreeMap<String, Tensor> {
    varmap
        .data()
        .lock()
        .map(|d| {
            d.iter()
                .map(|(k, v)| (k.clone(), v.as_tensor().detach()))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpt::{Config, Gpt};

    #[test]
    fn the_same_seed_gives_the_same_weights() {
        let make = |seed| {
            let vm = VarMap::new();
            let init = VarInit::new(&vm, seed, None);
            Gpt::load(init.var_builder(&Device::Cpu), &Config::tiny()).unwrap();
            tensors(&vm)
        };
        let (a, b, c) = (make(1), make(1), make(2));
        for (k, t) in &a {
            let same = |o: &std::collections::BTreeMap<String, Tensor>| {
                (t - &o[k])
                    .unwrap()
                    .abs()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
                    == 0.0
            };
            assert!(same(&b), "{k} differs between runs with one seed");
            if k.ends_with("weight") && !k.contains("ln_") {
                assert!(!same(&c), "{k} is the same for two seeds");
            }
        }
        let std = a["transformer.h.0.mlp.c_fc.weight"]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let var = std.iter().map(|x| x * x).sum::<f32>() / std.len() as f32;
        assert!((var.sqrt() - 0.02).abs() < 0.005, "std {}", var.sqrt());
    }
}

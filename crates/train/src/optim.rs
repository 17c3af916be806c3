//! AdamW (Loshchilov & Hutter 2019) with decoupled weight decay, no decay on biases and norm
//! weights (every parameter of rank 1, as nanoGPT does), bias correction as in PyTorch, and one
//! fused in-place update per parameter instead of a dozen allocating tensor ops.

use std::collections::BTreeMap;
use std::sync::Mutex;

use candle_core::{CpuStorage, InplaceOp2, Layout, Tensor, Var, bail};
use candle_nn::VarMap;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// AdamW's hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Added to the root of the second moment.
    pub eps: f64,
    /// Decoupled weight decay (multiplied by the learning rate).
    pub weight_decay: f64,
}

/// One parameter and its optimizer state.
struct Param {
    name: String,
    var: Var,
    m: Vec<f32>,
    v: Vec<f32>,
    decay: bool,
}

/// The optimizer over every variable of a `VarMap`.
pub struct AdamW {
    params: Vec<Param>,
    cfg: AdamWConfig,
    /// Updates applied so far.
    pub steps: u64,
}

impl AdamW {
    /// An optimizer for every variable in `varmap` (in name order, so checkpoints are stable).
    pub fn new(varmap: &VarMap, cfg: AdamWConfig) -> Result<Self> {
        let data = varmap
            .data()
            .lock()
            .map_err(|_| Error::Config("varmap lock poisoned".into()))?;
        let mut names: Vec<&String> = data.keys().collect();
        names.sort();
        let params = names
            .into_iter()
            .map(|name| {
                let var = data[name].clone();
                let n = var.elem_count();
                Param {
                    name: name.clone(),
                    decay: var.rank() >= 2,
                    var,
                    m: vec![0.0; n],
                    v: vec![0.0; n],
                }
            })
            .collect();
        Ok(Self {
            params,
            cfg,
            steps: 0,
        })
    }

    /// Names of the parameters that are decayed and of those that are not.
    pub fn groups(&self) -> (Vec<&str>, Vec<&str>) {
        let decay = self
            .params
            .iter()
            .filter(|p| p.decay)
            .map(|p| p.name.as_str())
            .collect();
        let no = self
            .params
            .iter()
            .filter(|p| !p.decay)
            .map(|p| p.name.as_str())
            .collect();
        (decay, no)
    }

    /// The variables, in the optimizer's order.
    pub fn vars(&self) -> impl Iterator<Item = (&str, &Var)> {
        self.params.iter().map(|p| (p.name.as_str(), &p.var))
    }

    /// Applies one update with learning rate `lr`; `grads` are looked up per variable (a
    /// variable without a gradient is left alone).
    pub fn step(&mut self, grads: &BTreeMap<String, Tensor>, lr: f64) -> Result<()> {
        self.steps += 1;
        let t = self.steps as i32;
        let c = self.cfg;
        for p in &mut self.params {
            let Some(g) = grads.get(&p.name) else {
                continue;
            };
            let op = Step {
                m: Mutex::new(&mut p.m),
                v: Mutex::new(&mut p.v),
                lr: lr as f32,
                beta1: c.beta1 as f32,
                beta2: c.beta2 as f32,
                eps: c.eps as f32,
                decay: if p.decay {
                    (lr * c.weight_decay) as f32
                } else {
                    0.0
                },
                bc1: 1.0 - c.beta1.powi(t) as f32,
                bc2: 1.0 - c.beta2.powi(t) as f32,
            };
            p.var.as_tensor().inplace_op2(&g.contiguous()?, &op)?;
        }
        Ok(())
    }

    /// The state to save: `m.<name>`, `v.<name>` and `steps`.
    pub fn state(&self) -> Result<BTreeMap<String, Tensor>> {
        let dev = candle_core::Device::Cpu;
        let mut out = BTreeMap::new();
        for p in &self.params {
            let shape = p.var.shape().clone();
            out.insert(
                format!("m.{}", p.name),
                Tensor::from_slice(&p.m, shape.clone(), &dev)?,
            );
            out.insert(
                format!("v.{}", p.name),
                Tensor::from_slice(&p.v, shape, &dev)?,
            );
        }
        out.insert("steps".into(), Tensor::new(&[self.steps as f64], &dev)?);
        Ok(out)
    }

    /// Restores a saved state; every parameter must be in it.
    pub fn load_state(&mut self, state: &std::collections::HashMap<String, Tensor>) -> Result<()> {
        for p in &mut self.params {
            let n = p.m.len();
            let get = |k: &str| -> Result<Vec<f32>> {
                let t = state
                    .get(k)
                    .ok_or_else(|| Error::Config(format!("optimizer state has no {k}")))?;
                if t.elem_count() != n {
                    return Err(Error::Config(format!(
                        "optimizer state {k} has {} values for {n} parameters",
                        t.elem_count()
                    )));
                }
                Ok(t.flatten_all()?.to_vec1()?)
            };
            let (m, v) = (
                get(&format!("m.{}", p.name))?,
                get(&format!("v.{}", p.name))?,
            );
            p.m = m;
            p.v = v;
        }
        let steps = state
            .get("steps")
            .ok_or_else(|| Error::Config("optimizer state has no steps".into()))?;
        self.steps = steps.to_vec1::<f64>()?.first().copied().unwrap_or(0.0) as u64;
        Ok(())
    }
}

/// The fused update of one parameter.
struct Step<'a> {
    m: Mutex<&'a mut Vec<f32>>,
    v: Mutex<&'a mut Vec<f32>>,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    decay: f32,
    bc1: f32,
    bc2: f32,
}

impl InplaceOp2 for Step<'_> {
    fn name(&self) -> &'static str {
        "duet-adamw"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        let (CpuStorage::F32(p), CpuStorage::F32(g)) = (s1, s2) else {
            bail!("adamw: f32 parameters and gradients")
        };
        let (Some((p0, p1)), Some((g0, g1))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
        else {
            bail!("adamw: contiguous parameters and gradients")
        };
        let (p, g) = (&mut p[p0..p1], &g[g0..g1]);
        let mut m = self
            .m
            .lock()
            .map_err(|_| candle_core::Error::Msg("adamw lock".into()))?;
        let mut v = self
            .v
            .lock()
            .map_err(|_| candle_core::Error::Msg("adamw lock".into()))?;
        if p.len() != g.len() || m.len() != p.len() {
            bail!(
                "adamw: {} parameters, {} gradients, {} moments",
                p.len(),
                g.len(),
                m.len()
            );
        }
        let (b1, b2, lr, eps, decay) = (self.beta1, self.beta2, self.lr, self.eps, self.decay);
        let (inv1, inv2) = (1.0 / self.bc1, 1.0 / self.bc2);
        const CHUNK: usize = 1 << 14;
        p.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .zip(m.par_chunks_mut(CHUNK).zip(v.par_chunks_mut(CHUNK)))
            .for_each(|((p, g), (m, v))| {
                for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                    // 1) decoupled decay, 2) moments, 3) bias-corrected step
                    *p -= decay * *p;
                    *m = b1 * *m + (1.0 - b1) * g;
                    *v = b2 * *v + (1.0 - b2) * g * g;
                    *p -= lr * (*m * inv1) / ((*v * inv2).sqrt() + eps);
                }
            });
        Ok(())
    }
}

/// Scales gradients so that their global L2 norm is at most `max_norm`; returns the norm before.
/// Works on the gradients' storage directly (candle's element-wise ops would hand large tensors
/// to a spinning worker pool that competes with the matmul threads on a small machine).
pub fn clip_grad_norm(grads: &mut BTreeMap<String, Tensor>, max_norm: f64) -> Result<f64> {
    let mut sq = 0f64;
    for g in grads.values() {
        let (storage, layout) = g.storage_and_layout();
        let candle_core::Storage::Cpu(CpuStorage::F32(v)) = &*storage else {
            sq += f64::from(g.sqr()?.sum_all()?.to_scalar::<f32>()?);
            continue;
        };
        let v = match layout.contiguous_offsets() {
            Some((a, b)) => &v[a..b],
            None => return Err(Error::Config("non-contiguous gradient".into())),
        };
        sq += v
            .par_chunks(1 << 14)
            .map(|c| c.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>())
            .sum::<f64>();
    }
    let norm = sq.sqrt();
    if max_norm > 0.0 && norm > max_norm {
        let scale = (max_norm / (norm + 1e-6)) as f32;
        for g in grads.values_mut() {
            g.inplace_op1(&Scale(scale))?;
        }
    }
    Ok(norm)
}

/// Multiplies a tensor by a constant, in place.
struct Scale(f32);

impl candle_core::InplaceOp1 for Scale {
    fn name(&self) -> &'static str {
        "duet-scale"
    }

    fn cpu_fwd(&self, s: &mut CpuStorage, l: &Layout) -> candle_core::Result<()> {
        let CpuStorage::F32(v) = s else {
            bail!("scale: f32 only")
        };
        let Some((a, b)) = l.contiguous_offsets() else {
            bail!("scale: contiguous only")
        };
        v[a..b]
            .par_chunks_mut(1 << 14)
            .for_each(|c| c.iter_mut().for_each(|x| *x *= self.0));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    /// The reference: AdamW as PyTorch writes it, in plain f64.
    fn reference(p: &mut [f64], g: &[f64], m: &mut [f64], v: &mut [f64], t: i32, lr: f64, wd: f64) {
        let (b1, b2, eps) = (0.9, 0.999, 1e-8);
        for i in 0..p.len() {
            p[i] *= 1.0 - lr * wd;
            m[i] = b1 * m[i] + (1.0 - b1) * g[i];
            v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
            p[i] -= lr * (m[i] / (1.0 - b1.powi(t))) / ((v[i] / (1.0 - b2.powi(t))).sqrt() + eps);
        }
    }

    #[test]
    fn matches_pytorch_adamw_and_skips_decay_on_vectors() {
        let vm = VarMap::new();
        let w = vm
            .get(
                (2, 3),
                "w",
                candle_nn::Init::Const(0.5),
                DType::F32,
                &Device::Cpu,
            )
            .unwrap();
        let b = vm
            .get(
                3,
                "b",
                candle_nn::Init::Const(0.5),
                DType::F32,
                &Device::Cpu,
            )
            .unwrap();
        let cfg = AdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.1,
        };
        let mut opt = AdamW::new(&vm, cfg).unwrap();
        assert_eq!(opt.groups(), (vec!["w"], vec!["b"]));
        let gw: Vec<f32> = vec![0.1, -0.2, 0.3, 0.0, 1.0, -1.0];
        let mut grads = BTreeMap::new();
        grads.insert(
            "w".to_owned(),
            Tensor::from_vec(gw.clone(), (2, 3), &Device::Cpu).unwrap(),
        );
        grads.insert(
            "b".to_owned(),
            Tensor::from_vec(vec![1f32, 1.0, 1.0], 3, &Device::Cpu).unwrap(),
        );
        let mut pw = vec![0.5f64; 6];
        let (mut mw, mut vw) = (vec![0.0; 6], vec![0.0; 6]);
        let mut pb = vec![0.5f64; 3];
        let (mut mb, mut vb) = (vec![0.0; 3], vec![0.0; 3]);
        for t in 1..=3 {
            opt.step(&grads, 0.01).unwrap();
            let g: Vec<f64> = gw.iter().map(|&x| f64::from(x)).collect();
            reference(&mut pw, &g, &mut mw, &mut vw, t, 0.01, 0.1);
            reference(&mut pb, &[1.0; 3], &mut mb, &mut vb, t, 0.01, 0.0);
        }
        let got: Vec<f32> = w.flatten_all().unwrap().to_vec1().unwrap();
        for (a, b) in got.iter().zip(&pw) {
            assert!((f64::from(*a) - b).abs() < 1e-6, "{a} vs {b}");
        }
        let got: Vec<f32> = b.to_vec1().unwrap();
        assert!((f64::from(got[0]) - pb[0]).abs() < 1e-6);
        // State round trip.
        let state: std::collections::HashMap<String, Tensor> =
            opt.state().unwrap().into_iter().collect();
        let mut again = AdamW::new(&vm, cfg).unwrap();
        again.load_state(&state).unwrap();
        assert_eq!(again.steps, 3);
    }

    #[test]
    fn clipping_scales_to_the_max_norm() {
        let mut g = BTreeMap::new();
        g.insert(
            "a".to_owned(),
            Tensor::new(&[3f32, 4.0], &Device::Cpu).unwrap(),
        );
        let n = clip_grad_norm(&mut g, 1.0).unwrap();
        assert!((n - 5.0).abs() < 1e-6);
        let v: Vec<f32> = g["a"].to_vec1().unwrap();
        assert!((v[0] - 0.6).abs() < 1e-5 && (v[1] - 0.8).abs() < 1e-5);
    }
}

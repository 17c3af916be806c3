//! duet's AdamW (`duet_train::optim::AdamW`) held to PyTorch's own `torch.optim.AdamW` step by
//! step: testdata/train/adamw_golden.json, made by testdata/train/make_adamw_golden.py (a
//! decayed matrix and an undecayed vector, betas, eps and decay off PyTorch's defaults, a
//! learning rate that changes every step, a zero and a large sign-flipping gradient).
//!
//! Tolerance: both sides work in f32; after each of the ten steps every parameter must be
//! within 1e-6 of PyTorch's, relative to its size where that is above 1 (the largest
//! difference seen is below 3e-7: rounding in the last bits).

use std::collections::BTreeMap;

use anyhow::{Context, Result, ensure};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use duet_train::optim::{AdamW, AdamWConfig};
use serde::Deserialize;

/// One optimizer step of the golden trajectory.
#[derive(Deserialize)]
struct Step {
    lr: f64,
    grads: BTreeMap<String, Vec<f32>>,
    params: BTreeMap<String, Vec<f32>>,
}

#[derive(Deserialize)]
struct Golden {
    betas: [f64; 2],
    eps: f64,
    weight_decay: f64,
    shapes: BTreeMap<String, Vec<usize>>,
    init: BTreeMap<String, Vec<f32>>,
    steps: Vec<Step>,
}

#[test]
fn adamw_follows_pytorchs_trajectory() -> Result<()> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/train/adamw_golden.json"
    );
    let g: Golden = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let dev = Device::Cpu;
    let mut vm = VarMap::new();
    for (name, shape) in &g.shapes {
        vm.get(
            shape.as_slice(),
            name,
            candle_nn::Init::Const(0.0),
            DType::F32,
            &dev,
        )?;
        vm.set_one(
            name,
            Tensor::from_vec(g.init[name].clone(), shape.as_slice(), &dev)?,
        )?;
    }
    let mut opt = AdamW::new(
        &vm,
        AdamWConfig {
            beta1: g.betas[0],
            beta2: g.betas[1],
            eps: g.eps,
            weight_decay: g.weight_decay,
        },
    )?;
    // PyTorch's groups: weight decay on the matrix only.
    assert_eq!(opt.groups(), (vec!["w"], vec!["b"]));
    for (t, step) in g.steps.iter().enumerate() {
        let grads = step
            .grads
            .iter()
            .map(|(name, v)| {
                let t = Tensor::from_vec(v.clone(), g.shapes[name].as_slice(), &dev)?;
                Ok((name.clone(), t))
            })
            .collect::<Result<BTreeMap<String, Tensor>>>()?;
        opt.step(&grads, step.lr)?;
        for (name, var) in opt.vars() {
            let got: Vec<f32> = var.as_tensor().flatten_all()?.to_vec1()?;
            let want = step.params.get(name).context("a parameter PyTorch lacks")?;
            for (i, (a, b)) in got.iter().zip(want).enumerate() {
                ensure!(
                    (a - b).abs() <= 1e-6 * b.abs().max(1.0),
                    "step {}: {name}[{i}] duet {a}, PyTorch {b}",
                    t + 1
                );
            }
        }
    }
    Ok(())
}

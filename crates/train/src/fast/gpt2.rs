//! An explicit forward and backward pass of GPT-2 for training on the CPU, with every
//! activation in a buffer allocated once (after llm.c). It reads the parameters from the same
//! candle variables the model uses (Hugging Face names) and returns one gradient per variable,
//! so the optimizer, checkpoints and saving are the trainer's usual ones; a test holds its loss
//! and gradients equal to candle's autograd on the same model.

use std::collections::BTreeMap;

use candle_core::Tensor;
use candle_nn::VarMap;
use duet_model::gpt::{Config, Family};

use super::kernels as k;
use super::matmul::matmul;
use super::{Params, with_params};
use crate::{Error, Result};

/// Whether the explicit path can train this model: GPT-2 layout with a tied head and the
/// GELU MLP (f32 on the CPU; dropout on the embeddings, attention and residual branches as
/// the model sets it).
pub fn supported(cfg: &Config) -> bool {
    cfg.family() == Family::Gpt2
        && cfg.tied()
        && cfg
            .intermediate_size
            .is_none_or(|m| m == 4 * cfg.hidden_size)
        && cfg.act() == "gelu_new"
}

/// Per-layer activations kept for backward.
struct LayerActs {
    ln1: Vec<f32>,
    ln1_mean: Vec<f32>,
    ln1_rstd: Vec<f32>,
    qkv: Vec<f32>,
    atty: Vec<f32>,
    att: Vec<f32>,
    res2: Vec<f32>,
    ln2: Vec<f32>,
    ln2_mean: Vec<f32>,
    ln2_rstd: Vec<f32>,
    fch: Vec<f32>,
    fch_gelu: Vec<f32>,
    res3: Vec<f32>,
    /// Dropout on the attention probabilities this step (masks made again in backward).
    attn_drop: Option<k::AttnDropout>,
    /// Dropout masks of the attention and MLP branches (empty without residual dropout).
    drop_attn: Vec<f32>,
    drop_mlp: Vec<f32>,
}

/// Dropout probabilities of the three GPT-2 sites.
#[derive(Clone, Copy)]
struct Pdrop {
    embd: f32,
    attn: f32,
    resid: f32,
}

/// Buffers for one batch shape (B, T).
pub struct Gpt2Step {
    b: usize,
    t: usize,
    c: usize,
    nh: usize,
    v: usize,
    eps: f32,
    layers: usize,
    pdrop: Pdrop,
    encoded: Vec<f32>,
    emb_mask: Vec<f32>,
    acts: Vec<LayerActs>,
    lnf: Vec<f32>,
    lnf_mean: Vec<f32>,
    lnf_rstd: Vec<f32>,
    logits: Vec<f32>,
}

impl Gpt2Step {
    /// Buffers for batches of `b` sequences of `t` tokens.
    pub fn new(cfg: &Config, b: usize, t: usize) -> Result<Self> {
        if !supported(cfg) || cfg.head_dim() > 256 {
            return Err(Error::Config(
                "the explicit path trains GPT-2-layout models with a tied head and a GELU MLP"
                    .into(),
            ));
        }
        let (c, n) = (cfg.hidden_size, b * t);
        let pdrop = Pdrop {
            embd: cfg.embd_pdrop.unwrap_or(0.0) as f32,
            attn: cfg.attn_pdrop.or(cfg.attention_dropout).unwrap_or(0.0) as f32,
            resid: cfg.resid_pdrop.unwrap_or(0.0) as f32,
        };
        let mask = |p: f32| vec![0f32; if p > 0.0 { n * c } else { 0 }];
        let layer = || LayerActs {
            ln1: vec![0.0; n * c],
            ln1_mean: vec![0.0; n],
            ln1_rstd: vec![0.0; n],
            qkv: vec![0.0; n * 3 * c],
            atty: vec![0.0; n * c],
            att: vec![0.0; b * cfg.num_attention_heads * t * t],
            res2: vec![0.0; n * c],
            ln2: vec![0.0; n * c],
            ln2_mean: vec![0.0; n],
            ln2_rstd: vec![0.0; n],
            fch: vec![0.0; n * 4 * c],
            fch_gelu: vec![0.0; n * 4 * c],
            res3: vec![0.0; n * c],
            attn_drop: None,
            drop_attn: mask(pdrop.resid),
            drop_mlp: mask(pdrop.resid),
        };
        Ok(Self {
            b,
            t,
            c,
            nh: cfg.num_attention_heads,
            v: cfg.vocab_size,
            eps: cfg.eps() as f32,
            layers: cfg.num_hidden_layers,
            pdrop,
            encoded: vec![0.0; n * c],
            emb_mask: mask(pdrop.embd),
            acts: (0..cfg.num_hidden_layers).map(|_| layer()).collect(),
            lnf: vec![0.0; n * c],
            lnf_mean: vec![0.0; n],
            lnf_rstd: vec![0.0; n],
            logits: vec![0.0; n * cfg.vocab_size],
        })
    }

    /// One forward and backward pass: the mean next-token loss, and a gradient per variable.
    /// `seed` makes the step's dropout masks (the same seed gives the same masks).
    pub fn loss_and_grads(
        &mut self,
        varmap: &VarMap,
        inputs: &[u32],
        targets: &[u32],
        seed: u64,
    ) -> Result<(f32, BTreeMap<String, Tensor>)> {
        with_params(varmap, &BTreeMap::new(), |p| {
            let loss = self.forward(p, inputs, targets, seed)?;
            Ok((loss, self.backward(p, inputs)?))
        })
    }

    fn forward(&mut self, p: &Params, inputs: &[u32], targets: &[u32], seed: u64) -> Result<f32> {
        let (t, c, nh, v) = (self.t, self.c, self.nh, self.v);
        let pdrop = self.pdrop;
        let n = self.b * t;
        if inputs.len() != n || targets.len() != n {
            return Err(Error::Config(format!(
                "batch of {} tokens for buffers of {n}",
                inputs.len()
            )));
        }
        if let Some(bad) = inputs.iter().chain(targets).find(|&&i| i as usize >= v) {
            return Err(Error::Config(format!(
                "token id {bad} is outside the vocabulary of {v}"
            )));
        }
        k::encoder_forward(
            &mut self.encoded,
            inputs,
            p.get("transformer.wte.weight")?,
            p.get("transformer.wpe.weight")?,
            t,
            c,
        );
        // Dropout sites: 0 the embeddings; per layer 3l+1 attention, 3l+2 and 3l+3 the
        // attention and MLP branches.
        if pdrop.embd > 0.0 {
            k::dropout_mask(&mut self.emb_mask, pdrop.embd, k::site_seed(seed, 0));
            k::mul_into(&mut self.encoded, &self.emb_mask);
        }
        for l in 0..self.layers {
            let site = 3 * l as u64;
            let pre = format!("transformer.h.{l}.");
            let g = |s: &str| p.get(&format!("{pre}{s}"));
            let (before, rest) = self.acts.split_at_mut(l);
            let a = &mut rest[0];
            let x: &[f32] = if l == 0 {
                &self.encoded
            } else {
                &before[l - 1].res3
            };
            // x = x + attn(ln_1(x))
            k::layernorm_forward(
                &mut a.ln1,
                &mut a.ln1_mean,
                &mut a.ln1_rstd,
                x,
                g("ln_1.weight")?,
                g("ln_1.bias")?,
                c,
                self.eps,
            );
            matmul(
                &mut a.qkv,
                &a.ln1,
                g("attn.c_attn.weight")?,
                n,
                3 * c,
                c,
                false,
                false,
                false,
            );
            k::bias_forward(&mut a.qkv, g("attn.c_attn.bias")?);
            a.attn_drop = (pdrop.attn > 0.0).then(|| k::AttnDropout {
                p: pdrop.attn,
                seed: k::site_seed(seed, site + 1),
            });
            k::attention_forward(&mut a.atty, &mut a.att, &a.qkv, t, c, nh, a.attn_drop);
            matmul(
                &mut a.res2,
                &a.atty,
                g("attn.c_proj.weight")?,
                n,
                c,
                c,
                false,
                false,
                false,
            );
            k::bias_forward(&mut a.res2, g("attn.c_proj.bias")?);
            if pdrop.resid > 0.0 {
                k::dropout_mask(&mut a.drop_attn, pdrop.resid, k::site_seed(seed, site + 2));
                k::mul_into(&mut a.res2, &a.drop_attn);
            }
            k::add_into(&mut a.res2, x);
            // x = x + mlp(ln_2(x))
            k::layernorm_forward(
                &mut a.ln2,
                &mut a.ln2_mean,
                &mut a.ln2_rstd,
                &a.res2,
                g("ln_2.weight")?,
                g("ln_2.bias")?,
                c,
                self.eps,
            );
            matmul(
                &mut a.fch,
                &a.ln2,
                g("mlp.c_fc.weight")?,
                n,
                4 * c,
                c,
                false,
                false,
                false,
            );
            k::bias_gelu_forward(
                &mut a.fch,
                &mut a.fch_gelu,
                g("mlp.c_fc.bias")?,
                k::Gelu::Tanh,
            );
            matmul(
                &mut a.res3,
                &a.fch_gelu,
                g("mlp.c_proj.weight")?,
                n,
                c,
                4 * c,
                false,
                false,
                false,
            );
            k::bias_forward(&mut a.res3, g("mlp.c_proj.bias")?);
            if pdrop.resid > 0.0 {
                k::dropout_mask(&mut a.drop_mlp, pdrop.resid, k::site_seed(seed, site + 3));
                k::mul_into(&mut a.res3, &a.drop_mlp);
            }
            k::add_into(&mut a.res3, &a.res2);
        }
        let x: &[f32] = match self.acts.last() {
            Some(a) => &a.res3,
            None => &self.encoded,
        };
        k::layernorm_forward(
            &mut self.lnf,
            &mut self.lnf_mean,
            &mut self.lnf_rstd,
            x,
            p.get("transformer.ln_f.weight")?,
            p.get("transformer.ln_f.bias")?,
            c,
            self.eps,
        );
        // logits = lnf · wteᵀ, then softmax cross-entropy in place (logits become dlogits)
        matmul(
            &mut self.logits,
            &self.lnf,
            p.get("transformer.wte.weight")?,
            n,
            v,
            c,
            false,
            true,
            false,
        );
        Ok(k::softmax_xent(&mut self.logits, targets, v))
    }

    fn backward(&mut self, p: &Params, inputs: &[u32]) -> Result<BTreeMap<String, Vec<f32>>> {
        let (t, c, nh, v) = (self.t, self.c, self.nh, self.v);
        let n = self.b * t;
        let mut grads: BTreeMap<String, Vec<f32>> = BTreeMap::new();
        let mut zeros = |name: &str, len: usize| {
            grads.insert(name.to_owned(), vec![0f32; len]);
        };
        zeros("transformer.wte.weight", v * c);
        zeros(
            "transformer.wpe.weight",
            p.get("transformer.wpe.weight")?.len(),
        );
        zeros("transformer.ln_f.weight", c);
        zeros("transformer.ln_f.bias", c);
        for l in 0..self.layers {
            for (s, len) in [
                ("ln_1.weight", c),
                ("ln_1.bias", c),
                ("attn.c_attn.weight", c * 3 * c),
                ("attn.c_attn.bias", 3 * c),
                ("attn.c_proj.weight", c * c),
                ("attn.c_proj.bias", c),
                ("ln_2.weight", c),
                ("ln_2.bias", c),
                ("mlp.c_fc.weight", c * 4 * c),
                ("mlp.c_fc.bias", 4 * c),
                ("mlp.c_proj.weight", 4 * c * c),
                ("mlp.c_proj.bias", c),
            ] {
                zeros(&format!("transformer.h.{l}.{s}"), len);
            }
        }
        let mut take = |name: &str| {
            grads
                .remove(name)
                .ok_or_else(|| Error::Config(format!("no gradient buffer {name}")))
        };
        // The head: dlnf = dlogits · wte, dwte += dlogitsᵀ · lnf.
        let mut dwte = take("transformer.wte.weight")?;
        let mut dx = vec![0f32; n * c];
        matmul(
            &mut dx,
            &self.logits,
            p.get("transformer.wte.weight")?,
            n,
            c,
            v,
            false,
            false,
            false,
        );
        matmul(
            &mut dwte,
            &self.logits,
            &self.lnf,
            v,
            c,
            n,
            true,
            false,
            true,
        );
        let (mut dlnf_w, mut dlnf_b) = (
            take("transformer.ln_f.weight")?,
            take("transformer.ln_f.bias")?,
        );
        let mut dres = vec![0f32; n * c];
        {
            let x: &[f32] = match self.acts.last() {
                Some(a) => &a.res3,
                None => &self.encoded,
            };
            k::layernorm_backward(
                &mut dres,
                &mut dlnf_w,
                &mut dlnf_b,
                &dx,
                x,
                p.get("transformer.ln_f.weight")?,
                &self.lnf_mean,
                &self.lnf_rstd,
                c,
            );
        }
        let mut out = BTreeMap::new();
        out.insert("transformer.ln_f.weight".to_owned(), dlnf_w);
        out.insert("transformer.ln_f.bias".to_owned(), dlnf_b);
        // Scratch reused by every layer.
        let mut dfch = vec![0f32; n * 4 * c];
        let mut dfch_gelu = vec![0f32; n * 4 * c];
        let mut dln = vec![0f32; n * c];
        let mut datty = vec![0f32; n * c];
        let mut dqkv = vec![0f32; n * 3 * c];
        // The gradient into a dropped-out branch: d(branch) = d(residual) ∘ mask.
        let mut dbranch = vec![0f32; if self.pdrop.resid > 0.0 { n * c } else { 0 }];
        for l in (0..self.layers).rev() {
            let pre = format!("transformer.h.{l}.");
            let g = |s: &str| p.get(&format!("{pre}{s}"));
            let a = &self.acts[l];
            let x: &[f32] = if l == 0 {
                &self.encoded
            } else {
                &self.acts[l - 1].res3
            };
            // dres holds d(res3). res3 = res2 + drop(fcproj): d(res2) = dres + d through the MLP.
            let dy: &[f32] = if a.drop_mlp.is_empty() {
                &dres
            } else {
                k::mul(&mut dbranch, &dres, &a.drop_mlp);
                &dbranch
            };
            let mut dw = take(&format!("{pre}mlp.c_proj.weight"))?;
            let mut db = take(&format!("{pre}mlp.c_proj.bias"))?;
            k::bias_backward(&mut db, dy);
            matmul(&mut dw, &a.fch_gelu, dy, 4 * c, c, n, true, false, true);
            matmul(
                &mut dfch_gelu,
                dy,
                g("mlp.c_proj.weight")?,
                n,
                4 * c,
                c,
                false,
                true,
                false,
            );
            out.insert(format!("{pre}mlp.c_proj.weight"), dw);
            out.insert(format!("{pre}mlp.c_proj.bias"), db);
            dfch.fill(0.0);
            k::gelu_backward(&mut dfch, &a.fch, &dfch_gelu, k::Gelu::Tanh);
            let mut dw = take(&format!("{pre}mlp.c_fc.weight"))?;
            let mut db = take(&format!("{pre}mlp.c_fc.bias"))?;
            k::bias_backward(&mut db, &dfch);
            matmul(&mut dw, &a.ln2, &dfch, c, 4 * c, n, true, false, true);
            matmul(
                &mut dln,
                &dfch,
                g("mlp.c_fc.weight")?,
                n,
                c,
                4 * c,
                false,
                true,
                false,
            );
            out.insert(format!("{pre}mlp.c_fc.weight"), dw);
            out.insert(format!("{pre}mlp.c_fc.bias"), db);
            let (mut dw, mut db) = (
                take(&format!("{pre}ln_2.weight"))?,
                take(&format!("{pre}ln_2.bias"))?,
            );
            k::layernorm_backward(
                &mut dres,
                &mut dw,
                &mut db,
                &dln,
                &a.res2,
                g("ln_2.weight")?,
                &a.ln2_mean,
                &a.ln2_rstd,
                c,
            );
            out.insert(format!("{pre}ln_2.weight"), dw);
            out.insert(format!("{pre}ln_2.bias"), db);
            // dres now holds d(res2). res2 = x + drop(attproj).
            let dy: &[f32] = if a.drop_attn.is_empty() {
                &dres
            } else {
                k::mul(&mut dbranch, &dres, &a.drop_attn);
                &dbranch
            };
            let mut dw = take(&format!("{pre}attn.c_proj.weight"))?;
            let mut db = take(&format!("{pre}attn.c_proj.bias"))?;
            k::bias_backward(&mut db, dy);
            matmul(&mut dw, &a.atty, dy, c, c, n, true, false, true);
            matmul(
                &mut datty,
                dy,
                g("attn.c_proj.weight")?,
                n,
                c,
                c,
                false,
                true,
                false,
            );
            out.insert(format!("{pre}attn.c_proj.weight"), dw);
            out.insert(format!("{pre}attn.c_proj.bias"), db);
            dqkv.fill(0.0);
            k::attention_backward(&mut dqkv, &datty, &a.qkv, &a.att, t, c, nh, a.attn_drop);
            let mut dw = take(&format!("{pre}attn.c_attn.weight"))?;
            let mut db = take(&format!("{pre}attn.c_attn.bias"))?;
            k::bias_backward(&mut db, &dqkv);
            matmul(&mut dw, &a.ln1, &dqkv, c, 3 * c, n, true, false, true);
            matmul(
                &mut dln,
                &dqkv,
                g("attn.c_attn.weight")?,
                n,
                c,
                3 * c,
                false,
                true,
                false,
            );
            out.insert(format!("{pre}attn.c_attn.weight"), dw);
            out.insert(format!("{pre}attn.c_attn.bias"), db);
            let (mut dw, mut db) = (
                take(&format!("{pre}ln_1.weight"))?,
                take(&format!("{pre}ln_1.bias"))?,
            );
            k::layernorm_backward(
                &mut dres,
                &mut dw,
                &mut db,
                &dln,
                x,
                g("ln_1.weight")?,
                &a.ln1_mean,
                &a.ln1_rstd,
                c,
            );
            out.insert(format!("{pre}ln_1.weight"), dw);
            out.insert(format!("{pre}ln_1.bias"), db);
            // dres now holds d(x): the residual stream into this layer.
        }
        if !self.emb_mask.is_empty() {
            k::mul_into(&mut dres, &self.emb_mask);
        }
        let mut dwpe = take("transformer.wpe.weight")?;
        k::encoder_backward(&mut dwte, &mut dwpe, &dres, inputs, t, c);
        out.insert("transformer.wte.weight".to_owned(), dwte);
        out.insert("transformer.wpe.weight".to_owned(), dwpe);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use duet_model::gpt::{Gpt, lm_loss};
    use duet_model::init::VarInit;
    use duet_model::nn::Dropout;

    #[test]
    fn loss_and_gradients_equal_candle_autograd() {
        let mut cfg = Config::gpt2(50, 16, 32, 2, 4);
        cfg.resid_pdrop = Some(0.0);
        cfg.embd_pdrop = Some(0.0);
        cfg.attn_pdrop = Some(0.0);
        let vm = VarMap::new();
        let m = Gpt::load(VarInit::new(&vm, 3, None).var_builder(&Device::Cpu), &cfg).unwrap();
        // Larger weights than the 0.02 init, so that every path carries signal.
        for (_, var) in vm.data().lock().unwrap().iter() {
            let t = var.as_tensor();
            if t.rank() == 2 {
                var.set(&(t * 10.0).unwrap()).unwrap();
            }
        }
        let (b, t) = (3, 12);
        let inputs: Vec<u32> = (0..b * t).map(|i| ((i * 7 + 3) % 50) as u32).collect();
        let targets: Vec<u32> = (0..b * t).map(|i| ((i * 11 + 5) % 50) as u32).collect();
        let x = Tensor::from_slice(&inputs, (b, t), &Device::Cpu).unwrap();
        let y = Tensor::from_slice(&targets, (b, t), &Device::Cpu).unwrap();
        let loss = lm_loss(&m.forward(&x, None, Some(&Dropout::new(0))).unwrap(), &y).unwrap();
        let want = loss.to_scalar::<f32>().unwrap();
        let grads = loss.backward().unwrap();
        let mut step = Gpt2Step::new(&cfg, b, t).unwrap();
        let (got, fast) = step.loss_and_grads(&vm, &inputs, &targets, 0).unwrap();
        assert!((got - want).abs() < 1e-4, "loss {got} vs {want}");
        let data = vm.data().lock().unwrap();
        assert_eq!(fast.len(), data.len());
        for (name, var) in data.iter() {
            let g = grads.get(var.as_tensor()).unwrap();
            let d = (g - &fast[name])
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            let scale = g
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
                .max(1e-3);
            assert!(d / scale < 1e-3, "{name}: max diff {d} (scale {scale})");
        }
    }

    /// The loss of one step with the masks of `seed`.
    fn loss_at(step: &mut Gpt2Step, vm: &VarMap, inputs: &[u32], targets: &[u32]) -> f32 {
        step.loss_and_grads(vm, inputs, targets, 42).unwrap().0
    }

    #[test]
    fn gradients_with_dropout_match_finite_differences_under_fixed_masks() {
        let mut cfg = Config::gpt2(30, 8, 16, 2, 2);
        cfg.resid_pdrop = Some(0.3);
        cfg.embd_pdrop = Some(0.3);
        cfg.attn_pdrop = Some(0.3);
        let vm = VarMap::new();
        Gpt::load(VarInit::new(&vm, 5, None).var_builder(&Device::Cpu), &cfg).unwrap();
        for (_, var) in vm.data().lock().unwrap().iter() {
            let t = var.as_tensor();
            if t.rank() == 2 {
                var.set(&(t * 10.0).unwrap()).unwrap();
            }
        }
        let (b, t) = (2, 8);
        let inputs: Vec<u32> = (0..b * t).map(|i| ((i * 7 + 3) % 30) as u32).collect();
        let targets: Vec<u32> = (0..b * t).map(|i| ((i * 11 + 5) % 30) as u32).collect();
        let mut step = Gpt2Step::new(&cfg, b, t).unwrap();
        let (loss, grads) = step.loss_and_grads(&vm, &inputs, &targets, 42).unwrap();
        // The masks are a function of the seed: the same seed, the same loss; another, not.
        assert_eq!(loss, loss_at(&mut step, &vm, &inputs, &targets));
        let other = step.loss_and_grads(&vm, &inputs, &targets, 43).unwrap().0;
        assert_ne!(loss, other);
        // About 30% of a mask is zero, the rest 1/0.7.
        let zeros = step.emb_mask.iter().filter(|&&m| m == 0.0).count() as f32;
        let share = zeros / step.emb_mask.len() as f32;
        assert!((0.2..0.4).contains(&share), "{share} of the mask dropped");
        assert!(
            step.emb_mask
                .iter()
                .all(|&m| m == 0.0 || (m - 1.0 / 0.7).abs() < 1e-6)
        );
        // Central differences on the two largest gradient entries of every variable.
        let eps = 1e-2f32;
        let vars: Vec<(String, candle_core::Var)> = vm
            .data()
            .lock()
            .unwrap()
            .iter()
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        let mut checked = 0;
        for (name, var) in &vars {
            let g: Vec<f32> = grads[name].flatten_all().unwrap().to_vec1().unwrap();
            let mut order: Vec<usize> = (0..g.len()).collect();
            order.sort_by(|&i, &j| g[j].abs().total_cmp(&g[i].abs()));
            let base: Vec<f32> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
            for &i in order.iter().take(2) {
                let mut at = |delta: f32| {
                    let mut w = base.clone();
                    w[i] += delta;
                    var.set(&Tensor::from_vec(w, var.shape(), &Device::Cpu).unwrap())
                        .unwrap();
                    loss_at(&mut step, &vm, &inputs, &targets)
                };
                let fd = (at(eps) - at(-eps)) / (2.0 * eps);
                at(0.0);
                let tol = 0.03 * g[i].abs() + 2e-3;
                assert!(
                    (fd - g[i]).abs() < tol,
                    "{name}[{i}]: finite difference {fd}, gradient {}",
                    g[i]
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 2 * vars.len());
    }
}

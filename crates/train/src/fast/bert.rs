//! An explicit forward and backward pass of `BertForSequenceClassification` for fine-tuning on
//! the CPU, as [`super::gpt2`] is for decoders. The batch's sequences are packed back to back
//! with no padding and attention runs per sequence, so no work goes to padding. It reads the
//! parameters by their Hugging Face names from the trainer's variables (and from frozen
//! weights) and returns one gradient per trained variable; a test holds its loss and gradients
//! equal to candle's autograd on the padded model.
//!
//! A layer reads `x = LN(x + drop(attn(x)))`, `x = LN(x + drop(W₂ gelu(W₁ x)))` (post-norm);
//! the head is `logits = W_c drop(tanh(W_p x_[CLS]))`.

use std::collections::BTreeMap;

use candle_core::Tensor;
use candle_nn::VarMap;
use duet_model::bert::Config;
use rayon::prelude::*;

use super::kernels::{self as k, AttnDropout, Gelu, Packed};
use super::matmul::matmul;
use super::{Params, with_params};
use crate::{Error, Result};

/// The GELU kernel for a config's `hidden_act`, if the explicit path has one.
fn gelu_of(cfg: &Config) -> Option<Gelu> {
    match cfg.hidden_act.as_str() {
        "gelu" | "gelu_python" => Some(Gelu::Erf),
        "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Some(Gelu::Tanh),
        _ => None,
    }
}

/// Whether the explicit path can fine-tune this encoder: a GELU feed-forward layer and heads
/// that divide the width.
pub fn supported(cfg: &Config) -> bool {
    gelu_of(cfg).is_some()
        && cfg.num_attention_heads > 0
        && cfg.hidden_size.is_multiple_of(cfg.num_attention_heads)
}

/// How the classification loss weighs examples.
#[derive(Clone, Copy, Debug, Default)]
pub struct LossOptions<'a> {
    /// A weight per class; the loss is the weighted mean over the batch.
    pub class_weights: Option<&'a [f32]>,
    /// Label smoothing ε: `(1 − ε) · nll + ε · mean over classes of −log p`.
    pub smoothing: f32,
}

/// The encoder's shape and dropout, read from its config.
struct Encoder {
    h: usize,
    f: usize,
    nh: usize,
    layers: usize,
    vocab: usize,
    positions: usize,
    eps: f32,
    gelu: Gelu,
    p_hidden: f32,
    p_attn: f32,
}

/// What the encoder's forward pass keeps for backward.
struct Forward {
    packed: Packed,
    ids: Vec<u32>,
    pos: Vec<usize>,
    emb: Vec<f32>,
    e_mean: Vec<f32>,
    e_rstd: Vec<f32>,
    emb_mask: Vec<f32>,
    /// The embeddings' output, then each layer's.
    hidden: Vec<Vec<f32>>,
    acts: Vec<LayerActs>,
}

/// A fine-tuning step of `BertForSequenceClassification`.
pub struct BertClassifierStep {
    enc: Encoder,
    labels: usize,
    p_cls: f32,
}

/// A fine-tuning step of `BertForTokenClassification`.
pub struct BertTaggerStep {
    enc: Encoder,
    labels: usize,
    p_cls: f32,
}

/// A pre-training step of `BertForMaskedLM`: the prediction head (dense, GELU, LayerNorm,
/// then the word embeddings as the decoder, with a bias) on the masked positions only.
pub struct BertMlmStep {
    enc: Encoder,
}

/// Activations of one layer kept for backward.
struct LayerActs {
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    probs: Vec<f32>,
    attn_drop: Option<AttnDropout>,
    ctx: Vec<f32>,
    drop_attn: Vec<f32>,
    s1: Vec<f32>,
    ln1_mean: Vec<f32>,
    ln1_rstd: Vec<f32>,
    h1: Vec<f32>,
    u: Vec<f32>,
    g: Vec<f32>,
    drop_ffn: Vec<f32>,
    s2: Vec<f32>,
    ln2_mean: Vec<f32>,
    ln2_rstd: Vec<f32>,
}

/// `y (n×out) = x (n×in) · Wᵀ + b`, with `W` stored (out, in) as in `torch.nn.Linear`.
fn linear(y: &mut [f32], x: &[f32], w: &[f32], b: &[f32], n: usize, out: usize, inp: usize) {
    matmul(y, x, w, n, out, inp, false, true, false);
    k::bias_forward(y, b);
}

/// Gradients of [`linear`]: `dW += dyᵀ x`, `db += Σ dy`, and, when asked, `dx (+)= dy W`.
#[allow(clippy::too_many_arguments)]
fn linear_back(
    dx: Option<(&mut [f32], bool)>,
    dw: &mut [f32],
    db: &mut [f32],
    dy: &[f32],
    x: &[f32],
    w: &[f32],
    n: usize,
    out: usize,
    inp: usize,
) {
    k::bias_backward(db, dy);
    matmul(dw, dy, x, out, inp, n, true, false, true);
    if let Some((dx, accumulate)) = dx {
        matmul(dx, dy, w, n, inp, out, false, false, accumulate);
    }
}

/// The name of a parameter of layer `l`.
fn lname(l: usize, s: &str) -> String {
    format!("bert.encoder.layer.{l}.{s}")
}

impl Encoder {
    fn new(cfg: &Config) -> Result<Self> {
        let gelu = gelu_of(cfg).filter(|_| supported(cfg)).ok_or_else(|| {
            Error::Config(format!(
                "the explicit path fine-tunes BERT with a GELU feed-forward layer (hidden_act {:?})",
                cfg.hidden_act
            ))
        })?;
        Ok(Self {
            h: cfg.hidden_size,
            f: cfg.intermediate_size,
            nh: cfg.num_attention_heads,
            layers: cfg.num_hidden_layers,
            vocab: cfg.vocab_size,
            positions: cfg.max_position_embeddings,
            eps: cfg.layer_norm_eps as f32,
            gelu,
            p_hidden: cfg.hidden_dropout_prob as f32,
            p_attn: cfg.attention_probs_dropout_prob as f32,
        })
    }

    fn check(&self, seqs: &[&[u32]]) -> Result<()> {
        if seqs.is_empty() {
            return Err(Error::Config("an empty batch".into()));
        }
        for s in seqs {
            if s.is_empty() || s.len() > self.positions {
                return Err(Error::Config(format!(
                    "a sequence of {} tokens (the encoder takes 1 to {})",
                    s.len(),
                    self.positions
                )));
            }
            if let Some(bad) = s.iter().find(|&&i| i as usize >= self.vocab) {
                return Err(Error::Config(format!(
                    "token id {bad} is outside the vocabulary of {}",
                    self.vocab
                )));
            }
        }
        Ok(())
    }

    /// The dropout site of a head: after the encoder's `3L + 1` sites.
    fn head_site(&self) -> u64 {
        3 * self.layers as u64 + 1
    }

    /// The encoder's forward pass over packed `seqs`.
    fn forward(&self, p: &Params, seqs: &[&[u32]], seed: u64) -> Result<Forward> {
        let (h, f, nh, eps) = (self.h, self.f, self.nh, self.eps);
        let packed = Packed::new(seqs.iter().map(|s| s.len()));
        let n = packed.rows();
        let ids: Vec<u32> = seqs.concat();
        let pos: Vec<usize> = seqs.iter().flat_map(|s| 0..s.len()).collect();
        // Dropout sites: 0 the embeddings; per layer 3l+1 attention, 3l+2 and 3l+3 the two
        // branches.

        // Embeddings: word + position + segment 0, LayerNorm, dropout.
        let (wte, wpe, wtt) = (
            p.get("bert.embeddings.word_embeddings.weight")?,
            p.get("bert.embeddings.position_embeddings.weight")?,
            p.get("bert.embeddings.token_type_embeddings.weight")?,
        );
        let mut emb = vec![0f32; n * h];
        emb.par_chunks_mut(h)
            .zip(ids.par_iter().zip(pos.par_iter()))
            .for_each(|(e, (&id, &t))| {
                let (w, q, s) = (
                    &wte[id as usize * h..(id as usize + 1) * h],
                    &wpe[t * h..(t + 1) * h],
                    &wtt[..h],
                );
                for i in 0..h {
                    e[i] = w[i] + q[i] + s[i];
                }
            });
        let (mut e_mean, mut e_rstd) = (vec![0f32; n], vec![0f32; n]);
        let mut x = vec![0f32; n * h];
        k::layernorm_forward(
            &mut x,
            &mut e_mean,
            &mut e_rstd,
            &emb,
            p.get("bert.embeddings.LayerNorm.weight")?,
            p.get("bert.embeddings.LayerNorm.bias")?,
            h,
            eps,
        );
        let emb_mask = mask(self.p_hidden, n * h, seed, 0);
        if !emb_mask.is_empty() {
            k::mul_into(&mut x, &emb_mask);
        }
        let mut hidden = vec![x];
        let mut acts = Vec::with_capacity(self.layers);
        for l in 0..self.layers {
            let g = |s: &str| p.get(&lname(l, s));
            let x = &hidden[l];
            let site = 3 * l as u64;
            let (mut q, mut kk, mut v) = (vec![0f32; n * h], vec![0f32; n * h], vec![0f32; n * h]);
            for (out, name) in [
                (&mut q, "attention.self.query"),
                (&mut kk, "attention.self.key"),
                (&mut v, "attention.self.value"),
            ] {
                linear(
                    out,
                    x,
                    g(&format!("{name}.weight"))?,
                    g(&format!("{name}.bias"))?,
                    n,
                    h,
                    h,
                );
            }
            let mut probs = vec![0f32; packed.probs_len(nh)];
            let attn_drop = (self.p_attn > 0.0).then(|| AttnDropout {
                p: self.p_attn,
                seed: k::site_seed(seed, site + 1),
            });
            let mut ctx = vec![0f32; n * h];
            k::attention_packed_forward(
                &mut ctx, &mut probs, &q, &kk, &v, &packed, h, nh, attn_drop,
            );
            // s1 = x + drop(ctx W_oᵀ + b_o); h1 = LN(s1)
            let mut s1 = vec![0f32; n * h];
            linear(
                &mut s1,
                &ctx,
                g("attention.output.dense.weight")?,
                g("attention.output.dense.bias")?,
                n,
                h,
                h,
            );
            let drop_attn = mask(self.p_hidden, n * h, seed, site + 2);
            if !drop_attn.is_empty() {
                k::mul_into(&mut s1, &drop_attn);
            }
            k::add_into(&mut s1, x);
            let (mut ln1_mean, mut ln1_rstd, mut h1) =
                (vec![0f32; n], vec![0f32; n], vec![0f32; n * h]);
            k::layernorm_forward(
                &mut h1,
                &mut ln1_mean,
                &mut ln1_rstd,
                &s1,
                g("attention.output.LayerNorm.weight")?,
                g("attention.output.LayerNorm.bias")?,
                h,
                eps,
            );
            // s2 = h1 + drop(gelu(h1 W_iᵀ + b_i) W_o2ᵀ + b_o2); out = LN(s2)
            let (mut u, mut gl) = (vec![0f32; n * f], vec![0f32; n * f]);
            matmul(
                &mut u,
                &h1,
                g("intermediate.dense.weight")?,
                n,
                f,
                h,
                false,
                true,
                false,
            );
            k::bias_gelu_forward(&mut u, &mut gl, g("intermediate.dense.bias")?, self.gelu);
            let mut s2 = vec![0f32; n * h];
            linear(
                &mut s2,
                &gl,
                g("output.dense.weight")?,
                g("output.dense.bias")?,
                n,
                h,
                f,
            );
            let drop_ffn = mask(self.p_hidden, n * h, seed, site + 3);
            if !drop_ffn.is_empty() {
                k::mul_into(&mut s2, &drop_ffn);
            }
            k::add_into(&mut s2, &h1);
            let (mut ln2_mean, mut ln2_rstd, mut out) =
                (vec![0f32; n], vec![0f32; n], vec![0f32; n * h]);
            k::layernorm_forward(
                &mut out,
                &mut ln2_mean,
                &mut ln2_rstd,
                &s2,
                g("output.LayerNorm.weight")?,
                g("output.LayerNorm.bias")?,
                h,
                eps,
            );
            hidden.push(out);
            acts.push(LayerActs {
                q,
                k: kk,
                v,
                probs,
                attn_drop,
                ctx,
                drop_attn,
                s1,
                ln1_mean,
                ln1_rstd,
                h1,
                u,
                g: gl,
                drop_ffn,
                s2,
                ln2_mean,
                ln2_rstd,
            });
        }

        Ok(Forward {
            packed,
            ids,
            pos,
            emb,
            e_mean,
            e_rstd,
            emb_mask,
            hidden,
            acts,
        })
    }

    /// The encoder's backward pass from `dx`, the gradient of its output; adds a gradient per
    /// parameter to `grads`.
    fn backward(
        &self,
        p: &Params,
        fw: &Forward,
        mut dx: Vec<f32>,
        grads: &mut Grads,
    ) -> Result<()> {
        let (h, f, nh) = (self.h, self.f, self.nh);
        let n = fw.packed.rows();
        let (hidden, acts, packed) = (&fw.hidden, &fw.acts, &fw.packed);
        // Scratch reused by every layer.
        let mut ds2 = vec![0f32; n * h];
        let mut dbranch = vec![0f32; n * h];
        let mut dg = vec![0f32; n * f];
        let mut du = vec![0f32; n * f];
        let mut dh1 = vec![0f32; n * h];
        let mut ds1 = vec![0f32; n * h];
        let mut dctx = vec![0f32; n * h];
        let (mut dq, mut dk, mut dv) = (vec![0f32; n * h], vec![0f32; n * h], vec![0f32; n * h]);
        for l in (0..self.layers).rev() {
            let name = |s: &str| lname(l, s);
            let a = &acts[l];
            // out = LN2(s2)
            let (mean, rstd) = (&a.ln2_mean, &a.ln2_rstd);
            grads.layernorm(
                p,
                &name("output.LayerNorm"),
                &mut ds2,
                &dx,
                &a.s2,
                mean,
                rstd,
                h,
            )?;
            // s2 = h1 + drop(gelu(h1 W_iᵀ + b_i) W_o2ᵀ + b_o2): h1 gets ds2 and the branch's.
            let dy = through_mask(&mut dbranch, &ds2, &a.drop_ffn);
            grads.linear(
                p,
                &name("output.dense"),
                Some((&mut dg, false)),
                dy,
                &a.g,
                n,
                h,
                f,
            )?;
            du.fill(0.0);
            k::gelu_backward(&mut du, &a.u, &dg, self.gelu);
            dh1.copy_from_slice(&ds2);
            let w_i = name("intermediate.dense");
            grads.linear(p, &w_i, Some((&mut dh1, true)), &du, &a.h1, n, f, h)?;
            // h1 = LN1(s1)
            let (mean, rstd) = (&a.ln1_mean, &a.ln1_rstd);
            let ln1 = name("attention.output.LayerNorm");
            grads.layernorm(p, &ln1, &mut ds1, &dh1, &a.s1, mean, rstd, h)?;
            // s1 = x + drop(ctx W_oᵀ + b_o)
            let dy = through_mask(&mut dbranch, &ds1, &a.drop_attn);
            let w_o = name("attention.output.dense");
            grads.linear(p, &w_o, Some((&mut dctx, false)), dy, &a.ctx, n, h, h)?;
            dq.fill(0.0);
            dk.fill(0.0);
            dv.fill(0.0);
            k::attention_packed_backward(
                &mut dq,
                &mut dk,
                &mut dv,
                &dctx,
                &a.probs,
                &a.q,
                &a.k,
                &a.v,
                packed,
                h,
                nh,
                a.attn_drop,
            );
            // dx = ds1 (the residual) + the three projections' input gradients.
            dx.copy_from_slice(&ds1);
            for (d, proj) in [(&dq, "query"), (&dk, "key"), (&dv, "value")] {
                let w = name(&format!("attention.self.{proj}"));
                grads.linear(p, &w, Some((&mut dx, true)), d, &hidden[l], n, h, h)?;
            }
        }
        // Embeddings: dropout, LayerNorm, then the three tables.
        if !fw.emb_mask.is_empty() {
            k::mul_into(&mut dx, &fw.emb_mask);
        }
        let mut demb = vec![0f32; n * h];
        let (mean, rstd) = (&fw.e_mean, &fw.e_rstd);
        let ln = "bert.embeddings.LayerNorm";
        grads.layernorm(p, ln, &mut demb, &dx, &fw.emb, mean, rstd, h)?;
        let (mut dwte, mut dwpe, mut dwtt) = (
            vec![0f32; p.get("bert.embeddings.word_embeddings.weight")?.len()],
            vec![0f32; p.get("bert.embeddings.position_embeddings.weight")?.len()],
            vec![0f32; p.get("bert.embeddings.token_type_embeddings.weight")?.len()],
        );
        for ((d, &id), &t) in demb.chunks_exact(h).zip(&fw.ids).zip(&fw.pos) {
            let id = id as usize;
            for i in 0..h {
                dwte[id * h + i] += d[i];
                dwpe[t * h + i] += d[i];
                dwtt[i] += d[i];
            }
        }
        // Added to what a tied decoder (the MLM head) put there.
        match grads.0.get_mut("bert.embeddings.word_embeddings.weight") {
            Some(g) => k::add_into(g, &dwte),
            None => {
                grads.insert("bert.embeddings.word_embeddings.weight", dwte);
            }
        }
        grads.insert("bert.embeddings.position_embeddings.weight", dwpe);
        grads.insert("bert.embeddings.token_type_embeddings.weight", dwtt);
        Ok(())
    }
}

/// Gradients by parameter name, filled by the backward passes.
#[derive(Default)]
struct Grads(BTreeMap<String, Vec<f32>>);

impl Grads {
    fn insert(&mut self, name: &str, g: Vec<f32>) {
        self.0.insert(name.to_owned(), g);
    }

    /// [`linear_back`] through the linear layer `name` (`name.weight` (out, in), `name.bias`),
    /// keeping their gradients.
    #[allow(clippy::too_many_arguments)]
    fn linear(
        &mut self,
        p: &Params,
        name: &str,
        dx: Option<(&mut [f32], bool)>,
        dy: &[f32],
        x: &[f32],
        n: usize,
        out: usize,
        inp: usize,
    ) -> Result<()> {
        let (w, b) = (format!("{name}.weight"), format!("{name}.bias"));
        let (mut dw, mut db) = (vec![0f32; out * inp], vec![0f32; out]);
        linear_back(dx, &mut dw, &mut db, dy, x, p.get(&w)?, n, out, inp);
        self.0.insert(w, dw);
        self.0.insert(b, db);
        Ok(())
    }

    /// The backward pass of the LayerNorm `name` over rows of `h`: `dx` (overwritten) from
    /// `dy`, keeping the gradients of `name.weight` and `name.bias`.
    #[allow(clippy::too_many_arguments)]
    fn layernorm(
        &mut self,
        p: &Params,
        name: &str,
        dx: &mut [f32],
        dy: &[f32],
        x: &[f32],
        mean: &[f32],
        rstd: &[f32],
        h: usize,
    ) -> Result<()> {
        let (w, b) = (format!("{name}.weight"), format!("{name}.bias"));
        dx.fill(0.0);
        let (mut dw, mut db) = (vec![0f32; h], vec![0f32; h]);
        k::layernorm_backward(dx, &mut dw, &mut db, dy, x, p.get(&w)?, mean, rstd, h);
        self.0.insert(w, dw);
        self.0.insert(b, db);
        Ok(())
    }
}

/// `dy ∘ mask` (in `scratch`), the gradient through a dropout, or `dy` itself without one.
fn through_mask<'a>(scratch: &'a mut [f32], dy: &'a [f32], mask: &[f32]) -> &'a [f32] {
    if mask.is_empty() {
        dy
    } else {
        k::mul(scratch, dy, mask);
        scratch
    }
}

/// A dropout mask for `site` of `len` values, or an empty one when `p` is 0.
fn mask(p: f32, len: usize, seed: u64, site: u64) -> Vec<f32> {
    if p <= 0.0 {
        return Vec::new();
    }
    let mut m = vec![0f32; len];
    k::dropout_mask(&mut m, p, k::site_seed(seed, site));
    m
}

impl BertClassifierStep {
    /// A step for `cfg` with a head of `labels` classes.
    pub fn new(cfg: &Config, labels: usize) -> Result<Self> {
        Ok(Self {
            enc: Encoder::new(cfg)?,
            labels,
            p_cls: cfg.classifier_dropout.unwrap_or(cfg.hidden_dropout_prob) as f32,
        })
    }

    /// One forward and backward pass over `seqs` (token ids with `[CLS]` first) and their
    /// classes: the loss, and a gradient for each variable of `varmap` (`fixed` holds weights
    /// read but not trained). `seed` makes the step's dropout masks.
    pub fn loss_and_grads(
        &self,
        varmap: &VarMap,
        fixed: &BTreeMap<String, Tensor>,
        seqs: &[&[u32]],
        y: &[usize],
        loss: LossOptions,
        seed: u64,
    ) -> Result<(f32, BTreeMap<String, Tensor>)> {
        self.enc.check(seqs)?;
        if seqs.len() != y.len() {
            return Err(Error::Config(format!(
                "{} sequences for {} labels",
                seqs.len(),
                y.len()
            )));
        }
        if let Some(bad) = y.iter().find(|&&c| c >= self.labels) {
            return Err(Error::Config(format!(
                "class {bad} for a head of {} classes",
                self.labels
            )));
        }
        with_params(varmap, fixed, |p| self.step(p, seqs, y, loss, seed))
    }

    fn step(
        &self,
        p: &Params,
        seqs: &[&[u32]],
        y: &[usize],
        opts: LossOptions,
        seed: u64,
    ) -> Result<(f32, BTreeMap<String, Vec<f32>>)> {
        let (h, kc) = (self.enc.h, self.labels);
        let fw = self.enc.forward(p, seqs, seed)?;
        let (packed, n, b) = (&fw.packed, fw.packed.rows(), fw.packed.len());
        let hidden = &fw.hidden;
        // The head: pooled = tanh(x_[CLS] W_pᵀ + b_p), logits = drop(pooled) W_cᵀ + b_c.
        let last = &hidden[self.enc.layers];
        let mut cls = vec![0f32; b * h];
        for (s, row) in cls.chunks_exact_mut(h).enumerate() {
            let r = packed.offsets[s];
            row.copy_from_slice(&last[r * h..(r + 1) * h]);
        }
        let (wp, wc) = (
            p.get("bert.pooler.dense.weight")?,
            p.get("classifier.weight")?,
        );
        let mut pooled = vec![0f32; b * h];
        linear(
            &mut pooled,
            &cls,
            wp,
            p.get("bert.pooler.dense.bias")?,
            b,
            h,
            h,
        );
        pooled.iter_mut().for_each(|x| *x = x.tanh());
        let cls_mask = mask(self.p_cls, b * h, seed, self.enc.head_site());
        let mut dropped = pooled.clone();
        if !cls_mask.is_empty() {
            k::mul_into(&mut dropped, &cls_mask);
        }
        let mut logits = vec![0f32; b * kc];
        linear(
            &mut logits,
            &dropped,
            wc,
            p.get("classifier.bias")?,
            b,
            kc,
            h,
        );
        let (loss, dlogits) = classification_loss(&logits, y, kc, opts);

        // Backward.
        let mut grads = Grads::default();
        let mut ddropped = vec![0f32; b * h];
        let dd = Some((&mut ddropped[..], false));
        grads.linear(p, "classifier", dd, &dlogits, &dropped, b, kc, h)?;
        if !cls_mask.is_empty() {
            k::mul_into(&mut ddropped, &cls_mask);
        }
        // d tanh = 1 − tanh²
        let dpre: Vec<f32> = ddropped
            .iter()
            .zip(&pooled)
            .map(|(d, t)| d * (1.0 - t * t))
            .collect();
        let mut dcls = vec![0f32; b * h];
        let dc = Some((&mut dcls[..], false));
        grads.linear(p, "bert.pooler.dense", dc, &dpre, &cls, b, h, h)?;
        let mut dx = vec![0f32; n * h];
        for (s, row) in dcls.chunks_exact(h).enumerate() {
            let r = packed.offsets[s];
            dx[r * h..(r + 1) * h].copy_from_slice(row);
        }
        self.enc.backward(p, &fw, dx, &mut grads)?;
        Ok((loss, grads.0))
    }
}

impl BertTaggerStep {
    /// A step for `cfg` with a head of `labels` tags.
    pub fn new(cfg: &Config, labels: usize) -> Result<Self> {
        Ok(Self {
            enc: Encoder::new(cfg)?,
            labels,
            p_cls: cfg.classifier_dropout.unwrap_or(cfg.hidden_dropout_prob) as f32,
        })
    }

    /// One forward and backward pass over `seqs` and their per-token tags (`None`: not in the
    /// loss, such as a word's later pieces): the mean cross-entropy over tagged tokens, and a
    /// gradient for each variable of `varmap`. `seed` makes the step's dropout masks.
    pub fn loss_and_grads(
        &self,
        varmap: &VarMap,
        fixed: &BTreeMap<String, Tensor>,
        seqs: &[&[u32]],
        tags: &[Vec<Option<u32>>],
        seed: u64,
    ) -> Result<(f32, BTreeMap<String, Tensor>)> {
        self.enc.check(seqs)?;
        if seqs.len() != tags.len() {
            return Err(Error::Config(format!(
                "{} sequences for {} tag rows",
                seqs.len(),
                tags.len()
            )));
        }
        if let Some(bad) = tags
            .iter()
            .flatten()
            .flatten()
            .find(|&&t| t as usize >= self.labels)
        {
            return Err(Error::Config(format!(
                "tag {bad} for a head of {} tags",
                self.labels
            )));
        }
        with_params(varmap, fixed, |p| self.step(p, seqs, tags, seed))
    }

    fn step(
        &self,
        p: &Params,
        seqs: &[&[u32]],
        tags: &[Vec<Option<u32>>],
        seed: u64,
    ) -> Result<(f32, BTreeMap<String, Vec<f32>>)> {
        let (h, kc) = (self.enc.h, self.labels);
        let fw = self.enc.forward(p, seqs, seed)?;
        let n = fw.packed.rows();
        // logits = drop(x) W_cᵀ + b_c at every token
        let mut x = fw.hidden[self.enc.layers].clone();
        let head_mask = mask(self.p_cls, n * h, seed, self.enc.head_site());
        if !head_mask.is_empty() {
            k::mul_into(&mut x, &head_mask);
        }
        let wc = p.get("classifier.weight")?;
        let mut logits = vec![0f32; n * kc];
        linear(&mut logits, &x, wc, p.get("classifier.bias")?, n, kc, h);
        // The mean cross-entropy over tagged tokens; logits become its gradient.
        let target: Vec<Option<u32>> = seqs
            .iter()
            .zip(tags)
            .flat_map(|(s, t)| (0..s.len()).map(move |i| t.get(i).copied().flatten()))
            .collect();
        let counted = target.iter().filter(|t| t.is_some()).count().max(1) as f32;
        let mut loss = 0f64;
        for (row, t) in logits.chunks_exact_mut(kc).zip(&target) {
            let Some(t) = *t else {
                row.fill(0.0);
                continue;
            };
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let lse = max + row.iter().map(|v| (v - max).exp()).sum::<f32>().ln();
            loss += f64::from(lse - row[t as usize]);
            row.iter_mut().for_each(|v| *v = (*v - lse).exp() / counted);
            row[t as usize] -= 1.0 / counted;
        }
        let mut grads = Grads::default();
        let mut dx = vec![0f32; n * h];
        grads.linear(
            p,
            "classifier",
            Some((&mut dx, false)),
            &logits,
            &x,
            n,
            kc,
            h,
        )?;
        if !head_mask.is_empty() {
            k::mul_into(&mut dx, &head_mask);
        }
        self.enc.backward(p, &fw, dx, &mut grads)?;
        Ok(((loss / f64::from(counted)) as f32, grads.0))
    }
}

impl BertMlmStep {
    /// A step for `cfg`.
    pub fn new(cfg: &Config) -> Result<Self> {
        Ok(Self {
            enc: Encoder::new(cfg)?,
        })
    }

    /// One forward and backward pass over `seqs` and `labels` (one per token of the sequences
    /// back to back; below 0 where a token is not predicted): the mean cross-entropy over the
    /// predicted tokens, their number, and a gradient for each variable of `varmap`.
    pub fn loss_and_grads(
        &self,
        varmap: &VarMap,
        seqs: &[&[u32]],
        labels: &[i64],
        seed: u64,
    ) -> Result<(f32, BTreeMap<String, Tensor>, usize)> {
        self.enc.check(seqs)?;
        let n: usize = seqs.iter().map(|s| s.len()).sum();
        if labels.len() != n {
            return Err(Error::Config(format!(
                "{} labels for {n} tokens",
                labels.len()
            )));
        }
        let picked: Vec<(usize, u32)> = labels
            .iter()
            .enumerate()
            .filter(|(_, l)| **l >= 0)
            .map(|(i, &l)| (i, l as u32))
            .collect();
        if picked.is_empty() {
            return Err(Error::Config(
                "a batch had no masked position; raise model.mask_prob or train.batch_size".into(),
            ));
        }
        if let Some((_, bad)) = picked.iter().find(|(_, l)| *l as usize >= self.enc.vocab) {
            return Err(Error::Config(format!(
                "label {bad} is outside the vocabulary of {}",
                self.enc.vocab
            )));
        }
        let count = picked.len();
        let (loss, grads) = with_params(varmap, &BTreeMap::new(), |p| {
            self.step(p, seqs, &picked, seed)
        })?;
        Ok((loss, grads, count))
    }

    fn step(
        &self,
        p: &Params,
        seqs: &[&[u32]],
        picked: &[(usize, u32)],
        seed: u64,
    ) -> Result<(f32, BTreeMap<String, Vec<f32>>)> {
        let (h, v, m) = (self.enc.h, self.enc.vocab, picked.len());
        let fw = self.enc.forward(p, seqs, seed)?;
        let last = &fw.hidden[self.enc.layers];
        let mut xm = vec![0f32; m * h];
        for (row, &(i, _)) in xm.chunks_exact_mut(h).zip(picked) {
            row.copy_from_slice(&last[i * h..(i + 1) * h]);
        }
        // y = LN(gelu(x W_tᵀ + b_t)); logits = y Eᵀ + b, E the word embeddings
        let pre = "cls.predictions.transform.";
        let wt = p.get(&format!("{pre}dense.weight"))?;
        let (mut u, mut g) = (vec![0f32; m * h], vec![0f32; m * h]);
        matmul(&mut u, &xm, wt, m, h, h, false, true, false);
        k::bias_gelu_forward(
            &mut u,
            &mut g,
            p.get(&format!("{pre}dense.bias"))?,
            self.enc.gelu,
        );
        let ln_w = p.get(&format!("{pre}LayerNorm.weight"))?;
        let (mut mean, mut rstd, mut y) = (vec![0f32; m], vec![0f32; m], vec![0f32; m * h]);
        k::layernorm_forward(
            &mut y,
            &mut mean,
            &mut rstd,
            &g,
            ln_w,
            p.get(&format!("{pre}LayerNorm.bias"))?,
            h,
            self.enc.eps,
        );
        let wte = p.get("bert.embeddings.word_embeddings.weight")?;
        let mut logits = vec![0f32; m * v];
        linear(
            &mut logits,
            &y,
            wte,
            p.get("cls.predictions.bias")?,
            m,
            v,
            h,
        );
        let targets: Vec<u32> = picked.iter().map(|&(_, l)| l).collect();
        // The logits become the gradient of the mean loss.
        let loss = k::softmax_xent(&mut logits, &targets, v);
        let mut grads = Grads::default();
        let (mut dwte, mut db) = (vec![0f32; v * h], vec![0f32; v]);
        let mut dy = vec![0f32; m * h];
        let dyo = Some((&mut dy[..], false));
        linear_back(dyo, &mut dwte, &mut db, &logits, &y, wte, m, v, h);
        grads.insert("bert.embeddings.word_embeddings.weight", dwte);
        grads.insert("cls.predictions.bias", db);
        let mut dg = vec![0f32; m * h];
        let ln = format!("{pre}LayerNorm");
        grads.layernorm(p, &ln, &mut dg, &dy, &g, &mean, &rstd, h)?;
        let mut du = vec![0f32; m * h];
        k::gelu_backward(&mut du, &u, &dg, self.enc.gelu);
        let mut dxm = vec![0f32; m * h];
        let dense = format!("{pre}dense");
        grads.linear(p, &dense, Some((&mut dxm, false)), &du, &xm, m, h, h)?;
        let mut dx = vec![0f32; fw.packed.rows() * h];
        for (row, &(i, _)) in dxm.chunks_exact(h).zip(picked) {
            dx[i * h..(i + 1) * h].copy_from_slice(row);
        }
        self.enc.backward(p, &fw, dx, &mut grads)?;
        Ok((loss, grads.0))
    }
}

/// The weighted, label-smoothed cross-entropy of `logits` (B, K) and its gradient.
fn classification_loss(
    logits: &[f32],
    y: &[usize],
    kc: usize,
    opts: LossOptions,
) -> (f32, Vec<f32>) {
    let eps = opts.smoothing;
    let w: Vec<f32> = y
        .iter()
        .map(|&c| {
            opts.class_weights
                .map_or(1.0, |w| w.get(c).copied().unwrap_or(1.0))
        })
        .collect();
    let total: f32 = w.iter().sum();
    let mut loss = 0f64;
    let mut d = vec![0f32; logits.len()];
    for (((row, dr), &c), &wi) in logits
        .chunks_exact(kc)
        .zip(d.chunks_exact_mut(kc))
        .zip(y)
        .zip(&w)
    {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let lse = max + row.iter().map(|v| (v - max).exp()).sum::<f32>().ln();
        let nll = lse - row[c];
        let smooth = lse - row.iter().sum::<f32>() / kc as f32;
        loss += f64::from(wi * ((1.0 - eps) * nll + eps * smooth));
        let scale = wi / total;
        for (j, (dj, &v)) in dr.iter_mut().zip(row).enumerate() {
            let pj = (v - lse).exp();
            let onehot = if j == c { 1.0 } else { 0.0 };
            *dj = scale * ((1.0 - eps) * (pj - onehot) + eps * (pj - 1.0 / kc as f32));
        }
    }
    ((loss / f64::from(total)) as f32, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use duet_model::bert::BertForSequenceClassification;
    use duet_model::init::VarInit;
    use duet_model::nn::Dropout;

    fn tiny(p: f64) -> Config {
        let mut cfg = Config::tiny();
        cfg.hidden_dropout_prob = p;
        cfg.attention_probs_dropout_prob = p;
        cfg
    }

    /// A tiny classifier with weights large enough that every path carries signal.
    fn model(cfg: &Config) -> VarMap {
        let vm = VarMap::new();
        BertForSequenceClassification::load(
            VarInit::new(&vm, 7, None).var_builder(&Device::Cpu),
            cfg,
            3,
        )
        .unwrap();
        for (_, var) in vm.data().lock().unwrap().iter() {
            let t = var.as_tensor();
            let scaled = if t.rank() == 2 {
                (t * 5.0).unwrap()
            } else {
                // LayerNorm weights and biases away from 1 and 0.
                (t + t.randn_like(0.0, 0.3).unwrap()).unwrap()
            };
            var.set(&scaled).unwrap();
        }
        vm
    }

    fn batch() -> (Vec<Vec<u32>>, Vec<usize>) {
        let seqs = vec![
            vec![2, 17, 40, 5, 9, 3],
            vec![2, 33, 3],
            vec![2, 8, 12, 60, 61, 62, 63, 7, 3],
            vec![2, 44, 45, 3],
        ];
        (seqs, vec![0, 2, 1, 2])
    }

    #[test]
    fn loss_and_gradients_equal_candle_autograd_on_the_padded_model() {
        let cfg = tiny(0.0);
        let vm = model(&cfg);
        let (seqs, y) = batch();
        let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
        let weights = [0.5f32, 2.0, 1.5];
        let opts = LossOptions {
            class_weights: Some(&weights),
            smoothing: 0.1,
        };
        let step = BertClassifierStep::new(&cfg, 3).unwrap();
        let (got, fast) = step
            .loss_and_grads(&vm, &BTreeMap::new(), &refs, &y, opts, 0)
            .unwrap();
        // candle: pad, mask, the same loss written with tensors.
        let m = BertForSequenceClassification::load(
            candle_nn::VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu),
            &cfg,
            3,
        )
        .unwrap();
        let (ids, mask) = duet_model::predict::windows::pad(&refs, 0, &Device::Cpu).unwrap();
        let logits = m
            .forward(
                &ids,
                &ids.zeros_like().unwrap(),
                &mask,
                Some(&Dropout::new(0)),
            )
            .unwrap();
        let logp = candle_nn::ops::log_softmax(&logits, 1).unwrap();
        let yt = Tensor::from_vec(
            y.iter().map(|&c| c as u32).collect::<Vec<_>>(),
            (y.len(), 1),
            &Device::Cpu,
        )
        .unwrap();
        let nll = logp
            .gather(&yt, 1)
            .unwrap()
            .squeeze(1)
            .unwrap()
            .neg()
            .unwrap();
        let smooth = logp.mean(1).unwrap().neg().unwrap();
        let per = ((nll * 0.9).unwrap() + (smooth * 0.1).unwrap()).unwrap();
        let wv: Vec<f32> = y.iter().map(|&c| weights[c]).collect();
        let total: f32 = wv.iter().sum();
        let loss = (per
            .mul(&Tensor::from_vec(wv, y.len(), &Device::Cpu).unwrap())
            .unwrap()
            .sum_all()
            .unwrap()
            / f64::from(total))
        .unwrap();
        let want = loss.to_scalar::<f32>().unwrap();
        assert!((got - want).abs() < 1e-4, "loss {got} vs {want}");
        let grads = loss.backward().unwrap();
        let data = vm.data().lock().unwrap();
        assert_eq!(fast.len(), data.len());
        for (name, var) in data.iter() {
            let g = grads.get(var.as_tensor()).unwrap();
            let d = max_abs(&(g - &fast[name]).unwrap());
            let scale = max_abs(g).max(1e-3);
            assert!(d / scale < 2e-3, "{name}: max diff {d} (scale {scale})");
        }
    }

    #[test]
    fn tagger_loss_and_gradients_equal_candle_autograd_on_the_padded_model() {
        let cfg = tiny(0.0);
        let vm = VarMap::new();
        duet_model::bert::BertForTokenClassification::load(
            VarInit::new(&vm, 11, None).var_builder(&Device::Cpu),
            &cfg,
            4,
        )
        .unwrap();
        for (_, var) in vm.data().lock().unwrap().iter() {
            let t = var.as_tensor();
            if t.rank() == 2 {
                var.set(&(t * 5.0).unwrap()).unwrap();
            }
        }
        let (seqs, _) = batch();
        let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
        // Tags on some positions only; the second row is shorter than its sequence.
        let tags: Vec<Vec<Option<u32>>> = vec![
            vec![None, Some(1), Some(2), None, Some(0), None],
            vec![None, Some(3)],
            vec![
                None,
                Some(0),
                Some(0),
                Some(1),
                None,
                Some(2),
                Some(3),
                Some(0),
                None,
            ],
            vec![None, Some(2), None, None],
        ];
        let step = BertTaggerStep::new(&cfg, 4).unwrap();
        let (got, fast) = step
            .loss_and_grads(&vm, &BTreeMap::new(), &refs, &tags, 0)
            .unwrap();
        let m = duet_model::bert::BertForTokenClassification::load(
            candle_nn::VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu),
            &cfg,
            4,
        )
        .unwrap();
        let (ids, mask) = duet_model::predict::windows::pad(&refs, 0, &Device::Cpu).unwrap();
        let logits = m
            .forward(
                &ids,
                &ids.zeros_like().unwrap(),
                &mask,
                Some(&Dropout::new(0)),
            )
            .unwrap();
        let loss = crate::tokens::task::masked_loss(&logits, &tags, &Device::Cpu).unwrap();
        let want = loss.to_scalar::<f32>().unwrap();
        assert!((got - want).abs() < 1e-4, "loss {got} vs {want}");
        let grads = loss.backward().unwrap();
        let data = vm.data().lock().unwrap();
        assert_eq!(fast.len(), data.len());
        for (name, var) in data.iter() {
            let g = grads.get(var.as_tensor()).unwrap();
            let d = max_abs(&(g - &fast[name]).unwrap());
            let scale = max_abs(g).max(1e-3);
            assert!(d / scale < 2e-3, "{name}: max diff {d} (scale {scale})");
        }
    }

    fn max_abs(t: &Tensor) -> f32 {
        t.abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn mlm_loss_and_gradients_equal_candle_autograd() {
        let cfg = tiny(0.0);
        let vm = VarMap::new();
        duet_model::bert::BertForMaskedLm::load(
            VarInit::new(&vm, 13, None).var_builder(&Device::Cpu),
            &cfg,
        )
        .unwrap();
        for (_, var) in vm.data().lock().unwrap().iter() {
            let t = var.as_tensor();
            if t.rank() == 2 {
                var.set(&(t * 5.0).unwrap()).unwrap();
            }
        }
        // Two windows of 6 tokens, four positions predicted.
        let ids: Vec<u32> = vec![2, 17, 4, 5, 9, 3, 2, 33, 40, 4, 12, 3];
        let labels: Vec<i64> = vec![
            -100, -100, 21, -100, 9, -100, -100, 33, -100, 50, -100, -100,
        ];
        let refs: Vec<&[u32]> = ids.chunks(6).collect();
        let step = BertMlmStep::new(&cfg).unwrap();
        let (got, fast, count) = step.loss_and_grads(&vm, &refs, &labels, 0).unwrap();
        assert_eq!(count, 4);
        let m = duet_model::bert::BertForMaskedLm::load(
            candle_nn::VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu),
            &cfg,
        )
        .unwrap();
        let x = Tensor::from_vec(ids.clone(), (2, 6), &Device::Cpu).unwrap();
        let logits = m
            .forward(
                &x,
                &x.zeros_like().unwrap(),
                &x.ones_like().unwrap(),
                Some(&Dropout::new(0)),
            )
            .unwrap()
            .reshape((12, cfg.vocab_size))
            .unwrap();
        let pos = Tensor::new(&[2u32, 4, 7, 9], &Device::Cpu).unwrap();
        let target = Tensor::new(&[21u32, 9, 33, 50], &Device::Cpu).unwrap();
        let loss = candle_nn::loss::cross_entropy(&logits.index_select(&pos, 0).unwrap(), &target)
            .unwrap();
        let want = loss.to_scalar::<f32>().unwrap();
        assert!((got - want).abs() < 1e-4, "loss {got} vs {want}");
        let grads = loss.backward().unwrap();
        let data = vm.data().lock().unwrap();
        assert_eq!(fast.len(), data.len());
        for (name, var) in data.iter() {
            let g = grads.get(var.as_tensor()).unwrap();
            let d = max_abs(&(g - &fast[name]).unwrap());
            let scale = max_abs(g).max(1e-3);
            assert!(d / scale < 2e-3, "{name}: max diff {d} (scale {scale})");
        }
    }

    #[test]
    fn frozen_weights_are_read_but_get_no_gradient() {
        let cfg = tiny(0.0);
        let vm = model(&cfg);
        let (seqs, y) = batch();
        let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
        let step = BertClassifierStep::new(&cfg, 3).unwrap();
        let (want, _) = step
            .loss_and_grads(&vm, &BTreeMap::new(), &refs, &y, LossOptions::default(), 0)
            .unwrap();
        // Move the embeddings out of the trained variables.
        let mut fixed = BTreeMap::new();
        let trained = VarMap::new();
        for (name, var) in vm.data().lock().unwrap().iter() {
            if name.starts_with("bert.embeddings.") {
                fixed.insert(name.clone(), var.as_tensor().clone());
            } else {
                trained
                    .data()
                    .lock()
                    .unwrap()
                    .insert(name.clone(), var.clone());
            }
        }
        let (got, grads) = step
            .loss_and_grads(&trained, &fixed, &refs, &y, LossOptions::default(), 0)
            .unwrap();
        assert_eq!(got, want);
        assert!(grads.keys().all(|n| !n.starts_with("bert.embeddings.")));
        assert_eq!(grads.len(), trained.data().lock().unwrap().len());
    }

    #[test]
    fn gradients_with_dropout_match_finite_differences_under_fixed_masks() {
        let cfg = tiny(0.2);
        let vm = model(&cfg);
        let (seqs, y) = batch();
        let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
        let step = BertClassifierStep::new(&cfg, 3).unwrap();
        let opts = LossOptions::default();
        let none = BTreeMap::new();
        let loss_at = || step.loss_and_grads(&vm, &none, &refs, &y, opts, 9).unwrap();
        let (loss, grads) = loss_at();
        assert_eq!(loss, loss_at().0);
        let other = step
            .loss_and_grads(&vm, &none, &refs, &y, opts, 10)
            .unwrap()
            .0;
        assert_ne!(loss, other);
        let eps = 1e-2f32;
        let vars: Vec<(String, candle_core::Var)> = vm
            .data()
            .lock()
            .unwrap()
            .iter()
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        for (name, var) in &vars {
            let g: Vec<f32> = grads[name].flatten_all().unwrap().to_vec1().unwrap();
            let i = (0..g.len())
                .max_by(|&i, &j| g[i].abs().total_cmp(&g[j].abs()))
                .unwrap();
            let base: Vec<f32> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
            let at = |delta: f32| {
                let mut w = base.clone();
                w[i] += delta;
                var.set(&Tensor::from_vec(w, var.shape(), &Device::Cpu).unwrap())
                    .unwrap();
                loss_at().0
            };
            let fd = (at(eps) - at(-eps)) / (2.0 * eps);
            at(0.0);
            let tol = 0.03 * g[i].abs() + 2e-3;
            assert!(
                (fd - g[i]).abs() < tol,
                "{name}[{i}]: finite difference {fd}, gradient {}",
                g[i]
            );
        }
    }
}

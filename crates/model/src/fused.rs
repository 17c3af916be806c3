//! Fused CPU kernels for inference: attention (scores, mask, softmax, × V, head merge in one
//! pass, grouped-query aware), bias + activation, and residual add + LayerNorm. Each sits beside
//! the plain composition of candle ops it replaces ([`crate::ops`]) and a test holds them equal.
//! They run on rayon (the pool candle's matmul uses), so on a small machine they do not compete
//! with it, and they replace many small allocations by one.
//!
//! Used when no gradient is tracked; training takes the differentiable composition.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

/// `e^x` for f32, vectorisable: range reduction `x = n ln 2 + r`, a degree-6 polynomial for
/// `e^r`, and `2^n` put into the exponent bits. Relative error below 2e-7 on [-87, 88].
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.3, 88.7);
    // Round to nearest by adding and subtracting 1.5 * 2^23 (no libm call, so it vectorises).
    const MAGIC: f32 = 12_582_912.0;
    let n = (x * std::f32::consts::LOG2_E + MAGIC) - MAGIC;
    let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (0.166_666_67 + r * (0.041_666_6 + r * (0.008_333_55 + r * 0.001_394_3)))));
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// Dot product with sixteen independent accumulators, so the compiler can vectorise it (a
/// plain `sum()` is a sequential chain of dependent adds).
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..16 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = 0.0;
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    acc.iter().sum::<f32>() + s
}

/// The error function, Abramowitz & Stegun 7.1.26 (absolute error below 3e-7 in f32), vectorisable.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let s = x.signum();
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let y = 1.0
        - t * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))))
            * exp(-a * a);
    s * y
}

/// Activations the fused kernels apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// None.
    Identity,
    /// GELU with erf (BERT).
    GeluErf,
    /// GELU with tanh (GPT-2).
    GeluTanh,
    /// ReLU.
    Relu,
    /// SiLU.
    Silu,
}

impl Act {
    /// The activation a Hugging Face config names, if the kernels have it.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "gelu" | "gelu_python" => Self::GeluErf,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Self::GeluTanh,
            "relu" => Self::Relu,
            "silu" | "swish" => Self::Silu,
            _ => return None,
        })
    }

    #[inline(always)]
    fn apply(self, x: f32) -> f32 {
        match self {
            Self::Identity => x,
            Self::GeluErf => 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2)),
            Self::GeluTanh => {
                let u = 0.797_884_6 * (x + 0.044_715 * x * x * x);
                // tanh(u) = 1 - 2 / (e^{2u} + 1)
                0.5 * x * (2.0 - 2.0 / (exp(2.0 * u) + 1.0))
            }
            Self::Relu => x.max(0.0),
            Self::Silu => x / (1.0 + exp(-x)),
        }
    }
}

fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        bail!("{what}: expected f32")
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => bail!("{what}: expected a contiguous tensor"),
    }
}

/// Targets the kernels are compiled for, chosen at run time (plain x86-64 has only SSE2).
macro_rules! simd {
    ($($item:item)*) => {
        $(
            #[allow(clippy::too_many_arguments)]
            #[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
            $item
        )*
    };
}

simd! {
    /// `o = act(x + b)` for rows of `x` with the width of `b`.
    fn bias_act_block(o: &mut [f32], x: &[f32], b: &[f32], act: Act) {
        let n = b.len();
        for (o, x) in o.chunks_exact_mut(n).zip(x.chunks_exact(n)) {
            match act {
                Act::Identity => o.iter_mut().zip(x).zip(b).for_each(|((o, &x), &b)| *o = x + b),
                Act::GeluErf => o.iter_mut().zip(x).zip(b).for_each(|((o, &x), &b)| *o = Act::GeluErf.apply(x + b)),
                Act::GeluTanh => o.iter_mut().zip(x).zip(b).for_each(|((o, &x), &b)| *o = Act::GeluTanh.apply(x + b)),
                Act::Relu => o.iter_mut().zip(x).zip(b).for_each(|((o, &x), &b)| *o = (x + b).max(0.0)),
                Act::Silu => o.iter_mut().zip(x).zip(b).for_each(|((o, &x), &b)| *o = Act::Silu.apply(x + b)),
            }
        }
    }

    /// Attention for one batch row: every head, every query. `q` (T, nh·hs), `k` and `v`
    /// (S, nkv·hs) in row-major order, output `o` (T, nh·hs). Keys are transposed once per head
    /// so that the score loop runs over keys, contiguous in memory.
    fn attend_row(o: &mut [f32], q: &[f32], k: &[f32], v: &[f32], nh: usize, nkv: usize, hs: usize, causal: bool, past: usize, mask: Option<&[u8]>, scale: f32) {
        let (c, kv_row) = (nh * hs, nkv * hs);
        let tk = k.len() / kv_row;
        let group = nh / nkv;
        if q.len() == c {
            // One query (decoding): dot products against the keys in place, no transposes.
            let limit = if causal { (past + 1).min(tk) } else { tk };
            let mut scores = vec![0f32; limit];
            for h in 0..nh {
                let off = (h / group) * hs;
                let qh = &q[h * hs..(h + 1) * hs];
                for ((s, kj), j) in scores.iter_mut().zip(k.chunks_exact(kv_row)).zip(0..) {
                    *s = if mask.is_some_and(|m| m[j] == 0) { f32::NEG_INFINITY } else { dot(qh, &kj[off..off + hs]) * scale };
                }
                let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                if max == f32::NEG_INFINITY {
                    continue;
                }
                let mut sum = 0.0;
                for x in scores.iter_mut() {
                    *x = exp(*x - max);
                    sum += *x;
                }
                let inv = 1.0 / sum;
                let oh = &mut o[h * hs..(h + 1) * hs];
                for (&p, vj) in scores.iter().zip(v.chunks_exact(kv_row)) {
                    let w = p * inv;
                    oh.iter_mut().zip(&vj[off..off + hs]).for_each(|(o, &x)| *o += w * x);
                }
            }
            return;
        }
        let mut kt = vec![0f32; hs * tk];
        let mut vv = vec![0f32; tk * hs];
        let mut scores = vec![0f32; tk];
        let mut acc = vec![0f32; hs];
        for h in 0..nh {
            if h % group == 0 {
                let kvh = h / group;
                for (j, (kj, vj)) in k.chunks_exact(kv_row).zip(v.chunks_exact(kv_row)).enumerate() {
                    for (d, &x) in kj[kvh * hs..(kvh + 1) * hs].iter().enumerate() {
                        kt[d * tk + j] = x;
                    }
                    vv[j * hs..(j + 1) * hs].copy_from_slice(&vj[kvh * hs..(kvh + 1) * hs]);
                }
            }
            for (i, (qrow, orow)) in q.chunks_exact(c).zip(o.chunks_exact_mut(c)).enumerate() {
                let limit = if causal { (past + i + 1).min(tk) } else { tk };
                let s = &mut scores[..limit];
                s.fill(0.0);
                for (&qd, ktd) in qrow[h * hs..(h + 1) * hs].iter().zip(kt.chunks_exact(tk)) {
                    let qd = qd * scale;
                    for (s, &kv) in s.iter_mut().zip(&ktd[..limit]) {
                        *s += qd * kv;
                    }
                }
                if let Some(m) = mask {
                    for (s, &m) in s.iter_mut().zip(m) {
                        if m == 0 {
                            *s = f32::NEG_INFINITY;
                        }
                    }
                }
                let max = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                if max == f32::NEG_INFINITY {
                    continue; // every key masked: zeros, as softmax over nothing
                }
                let mut sum = 0.0;
                for x in s.iter_mut() {
                    *x = exp(*x - max);
                    sum += *x;
                }
                let inv = 1.0 / sum;
                acc.fill(0.0);
                for (&p, vj) in s.iter().zip(vv.chunks_exact(hs)) {
                    for (a, &x) in acc.iter_mut().zip(vj) {
                        *a += p * x;
                    }
                }
                for (o, &a) in orow[h * hs..(h + 1) * hs].iter_mut().zip(&acc) {
                    *o = a * inv;
                }
            }
        }
    }
}

simd! {
    /// `y += x · W[k0..k1]` for `W` stored (K, N): each row of `W` is read once, in order,
    /// for all `M` rows of `x`.
    fn gemv_kn_block(y: &mut [f32], x: &[f32], w: &[f32], m: usize, k: usize, n: usize, k0: usize, k1: usize) {
        // Four rows of W per pass over y: y is read and written a quarter as often.
        let mut kk = k0;
        while kk + 4 <= k1 {
            let (w0, w1, w2, w3) = (&w[kk * n..(kk + 1) * n], &w[(kk + 1) * n..(kk + 2) * n], &w[(kk + 2) * n..(kk + 3) * n], &w[(kk + 3) * n..(kk + 4) * n]);
            for mi in 0..m {
                let a = &x[mi * k + kk..mi * k + kk + 4];
                let (a0, a1, a2, a3) = (a[0], a[1], a[2], a[3]);
                for ((((y, &v0), &v1), &v2), &v3) in y[mi * n..(mi + 1) * n].iter_mut().zip(w0).zip(w1).zip(w2).zip(w3) {
                    *y += a0 * v0 + a1 * v1 + a2 * v2 + a3 * v3;
                }
            }
            kk += 4;
        }
        for kk in kk..k1 {
            let wrow = &w[kk * n..(kk + 1) * n];
            for mi in 0..m {
                let a = x[mi * k + kk];
                y[mi * n..(mi + 1) * n].iter_mut().zip(wrow).for_each(|(y, &w)| *y += a * w);
            }
        }
    }

    /// `yt[n][mi] = x[mi] · W[n]` for `W` stored (N, K), rows `n0..n0 + yt.len() / m`.
    fn gemv_nk_block(yt: &mut [f32], x: &[f32], w: &[f32], m: usize, k: usize, n0: usize) {
        for (j, out) in yt.chunks_exact_mut(m).enumerate() {
            let wrow = &w[(n0 + j) * k..(n0 + j + 1) * k];
            for (mi, o) in out.iter_mut().enumerate() {
                *o = dot(&x[mi * k..(mi + 1) * k], wrow);
            }
        }
    }
}

/// Most rows for which the small-batch matrix–vector kernels beat a general matmul.
pub const GEMV_MAX_ROWS: usize = 8;

/// `x W` (or `x Wᵀ`) for a few rows of `x`, streaming the weights once: decoding is bound by
/// memory bandwidth, and a general matmul re-reads or packs them.
struct Gemv {
    /// Whether `W` is stored (N, K) (`torch.nn.Linear`) rather than (K, N) (`Conv1D`).
    transposed: bool,
}

impl CustomOp2 for Gemv {
    fn name(&self) -> &'static str {
        "duet-gemv"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, "gemv x")?;
        let w = f32_slice(s2, l2, "gemv w")?;
        let [m, k] = *l1.dims() else {
            bail!("gemv: x must be (M, K), got {:?}", l1.dims())
        };
        let [a, b] = *l2.dims() else {
            bail!("gemv: w must be 2-d, got {:?}", l2.dims())
        };
        let n = if self.transposed { a } else { b };
        if (if self.transposed { b } else { a }) != k {
            bail!("gemv: x {:?} and w {:?} do not fit", l1.dims(), l2.dims());
        }
        let threads = rayon::current_num_threads().max(1);
        let out = if self.transposed {
            // Split the output rows: each task streams its own rows of W.
            let per = n.div_ceil(threads * 4).max(16);
            let mut yt = vec![0f32; n * m];
            yt.par_chunks_mut(per * m)
                .enumerate()
                .for_each(|(c, yt)| gemv_nk_block(yt, x, w, m, k, c * per));
            let mut y = vec![0f32; m * n];
            for (j, row) in yt.chunks_exact(m).enumerate() {
                for (mi, &v) in row.iter().enumerate() {
                    y[mi * n + j] = v;
                }
            }
            y
        } else {
            // Split the rows of W: each task streams a contiguous block and keeps partial sums.
            let per = k.div_ceil(threads).max(1);
            let partial: Vec<Vec<f32>> = (0..k.div_ceil(per))
                .into_par_iter()
                .map(|c| {
                    let mut y = vec![0f32; m * n];
                    gemv_kn_block(&mut y, x, w, m, k, n, c * per, ((c + 1) * per).min(k));
                    y
                })
                .collect();
            let mut y = vec![0f32; m * n];
            for p in partial {
                y.iter_mut().zip(p).for_each(|(y, p)| *y += p);
            }
            y
        };
        Ok((CpuStorage::F32(out), Shape::from((m, n))))
    }
}

/// `x W` with `W` stored (K, N), for `x` (M, K) with few rows.
pub fn gemv(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    x.contiguous()?
        .apply_op2_no_bwd(&w.contiguous()?, &Gemv { transposed: false })
}

/// `x Wᵀ` with `W` stored (N, K), for `x` (M, K) with few rows.
pub fn gemv_t(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    x.contiguous()?
        .apply_op2_no_bwd(&w.contiguous()?, &Gemv { transposed: true })
}

/// `act(x + b)` over the last dimension.
struct BiasAct(Act);

impl CustomOp2 for BiasAct {
    fn name(&self) -> &'static str {
        "duet-bias-act"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, "bias_act x")?;
        let b = f32_slice(s2, l2, "bias_act b")?;
        let n = b.len();
        if l1.dims().last() != Some(&n) {
            bail!("bias_act: bias of {n} for input {:?}", l1.dims());
        }
        let act = self.0;
        let mut out = vec![0f32; x.len()];
        let rows = (16_384 / n.max(1)).max(1);
        out.par_chunks_mut(n * rows)
            .zip(x.par_chunks(n * rows))
            .for_each(|(o, x)| bias_act_block(o, x, b, act));
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// `act(x + b)`: the bias add and activation after a matmul, in one pass.
pub fn bias_act(x: &Tensor, b: &Tensor, act: Act) -> Result<Tensor> {
    x.contiguous()?
        .apply_op2_no_bwd(&b.contiguous()?, &BiasAct(act))
}

/// `LayerNorm(x + r)` over the last dimension.
struct AddLayerNorm {
    rb: Option<Vec<f32>>,
    w: Vec<f32>,
    b: Vec<f32>,
    eps: f32,
}

impl CustomOp2 for AddLayerNorm {
    fn name(&self) -> &'static str {
        "duet-add-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, "add_layer_norm x")?;
        let r = f32_slice(s2, l2, "add_layer_norm r")?;
        let n = self.w.len();
        if x.len() != r.len() || l1.dims().last() != Some(&n) {
            bail!(
                "add_layer_norm: shapes {:?} and {:?} for width {n}",
                l1.dims(),
                l2.dims()
            );
        }
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(n)
            .zip(x.par_chunks(n).zip(r.par_chunks(n)))
            .for_each(|(o, (x, r))| {
                for ((o, &x), &r) in o.iter_mut().zip(x).zip(r) {
                    *o = x + r;
                }
                if let Some(rb) = &self.rb {
                    o.iter_mut().zip(rb).for_each(|(o, b)| *o += b);
                }
                let mean = o.iter().sum::<f32>() / n as f32;
                let var = o.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n as f32;
                let inv = 1.0 / (var + self.eps).sqrt();
                for ((o, w), b) in o.iter_mut().zip(&self.w).zip(&self.b) {
                    *o = (*o - mean) * inv * w + b;
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// `LayerNorm(x + r + r_bias)` with weight `w` and bias `b`: a residual branch's output bias,
/// the residual add and the norm in one pass.
pub fn add_layer_norm(
    x: &Tensor,
    r: &Tensor,
    r_bias: Option<&Tensor>,
    w: &Tensor,
    b: &Tensor,
    eps: f64,
) -> Result<Tensor> {
    let op = AddLayerNorm {
        rb: r_bias.map(Tensor::to_vec1).transpose()?,
        w: w.to_vec1()?,
        b: b.to_vec1()?,
        eps: eps as f32,
    };
    x.contiguous()?.apply_op2_no_bwd(&r.contiguous()?, &op)
}

/// Scaled dot-product attention of every head in one pass.
struct Attention {
    /// Per batch row, which key positions are real (padding masked out).
    key_mask: Option<Vec<u8>>,
    /// Queries may not look at later keys (query `i` sits at position `past + i`).
    causal: bool,
    past: usize,
    scale: f32,
}

impl CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "duet-attention"
    }

    fn cpu_fwd(
        &self,
        sq: &CpuStorage,
        lq: &Layout,
        sk: &CpuStorage,
        lk: &Layout,
        sv: &CpuStorage,
        lv: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (q, k, v) = (
            f32_slice(sq, lq, "attention q")?,
            f32_slice(sk, lk, "attention k")?,
            f32_slice(sv, lv, "attention v")?,
        );
        let [b, tq, nh, hs] = *lq.dims() else {
            bail!("attention: q must be (B, T, nh, hs), got {:?}", lq.dims())
        };
        let [bk, tk, nkv, hsk] = *lk.dims() else {
            bail!("attention: k must be (B, S, nkv, hs), got {:?}", lk.dims())
        };
        if bk != b || hsk != hs || lv.dims() != lk.dims() || nkv == 0 || nh % nkv != 0 {
            bail!(
                "attention: q {:?}, k {:?}, v {:?} do not fit",
                lq.dims(),
                lk.dims(),
                lv.dims()
            );
        }
        if let Some(m) = &self.key_mask
            && m.len() != b * tk
        {
            bail!("attention: key mask of {} for {b} x {tk} keys", m.len());
        }
        let c = nh * hs;
        let kv_row = nkv * hs;
        // Output (B, T, nh·hs): heads merged, ready for the output projection.
        let mut out = vec![0f32; b * tq * c];
        out.par_chunks_mut(tq * c).enumerate().for_each(|(bi, ob)| {
            let mask = self.key_mask.as_ref().map(|m| &m[bi * tk..(bi + 1) * tk]);
            let qb = &q[bi * tq * c..(bi + 1) * tq * c];
            let kb = &k[bi * tk * kv_row..(bi + 1) * tk * kv_row];
            let vb = &v[bi * tk * kv_row..(bi + 1) * tk * kv_row];
            attend_row(
                ob,
                qb,
                kb,
                vb,
                nh,
                nkv,
                hs,
                self.causal,
                self.past,
                mask,
                self.scale,
            );
        });
        Ok((CpuStorage::F32(out), Shape::from((b, tq, c))))
    }
}

/// Attention of queries `q` (B, T, nh, hs) over keys and values (B, S, nkv, hs) — the layout
/// the projections produce, so no transposes are needed — returning (B, T, nh·hs).
/// `key_mask` (B·S, 1 = real) masks padding; `causal` hides later keys from each query, query
/// `i` being at position `past + i`.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    key_mask: Option<Vec<u8>>,
    causal: bool,
    past: usize,
) -> Result<Tensor> {
    let hs = q.dim(3)?;
    let op = Attention {
        key_mask,
        causal,
        past,
        scale: 1.0 / (hs as f32).sqrt(),
    };
    q.contiguous()?
        .apply_op3_no_bwd(&k.contiguous()?, &v.contiguous()?, &op)
}

/// Attention over packed variable-length sequences (no padding): `q` (N, nh, hs) and `k`, `v`
/// (N, nkv, hs) hold the tokens of every sequence back to back, sequence `s` being rows
/// `offsets[s]..offsets[s + 1]`; returns (N, nh·hs). Each sequence attends only to itself.
pub fn attention_varlen(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    offsets: &[usize],
    causal: bool,
) -> Result<Tensor> {
    let hs = q.dim(2)?;
    let op = AttentionVarlen {
        offsets: offsets.to_vec(),
        causal,
        scale: 1.0 / (hs as f32).sqrt(),
    };
    q.contiguous()?
        .apply_op3_no_bwd(&k.contiguous()?, &v.contiguous()?, &op)
}

/// See [`attention_varlen`].
struct AttentionVarlen {
    offsets: Vec<usize>,
    causal: bool,
    scale: f32,
}

impl CustomOp3 for AttentionVarlen {
    fn name(&self) -> &'static str {
        "duet-attention-varlen"
    }

    fn cpu_fwd(
        &self,
        sq: &CpuStorage,
        lq: &Layout,
        sk: &CpuStorage,
        lk: &Layout,
        sv: &CpuStorage,
        lv: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (q, k, v) = (
            f32_slice(sq, lq, "attention q")?,
            f32_slice(sk, lk, "attention k")?,
            f32_slice(sv, lv, "attention v")?,
        );
        let [n, nh, hs] = *lq.dims() else {
            bail!(
                "attention_varlen: q must be (N, nh, hs), got {:?}",
                lq.dims()
            )
        };
        let [nk, nkv, hsk] = *lk.dims() else {
            bail!(
                "attention_varlen: k must be (N, nkv, hs), got {:?}",
                lk.dims()
            )
        };
        if nk != n || hsk != hs || lv.dims() != lk.dims() || nkv == 0 || nh % nkv != 0 {
            bail!(
                "attention_varlen: q {:?}, k {:?}, v {:?} do not fit",
                lq.dims(),
                lk.dims(),
                lv.dims()
            );
        }
        if self.offsets.first() != Some(&0)
            || self.offsets.last() != Some(&n)
            || self.offsets.windows(2).any(|w| w[0] > w[1])
        {
            bail!(
                "attention_varlen: offsets {:?} do not cover {n} rows",
                self.offsets
            );
        }
        let (c, kv_row) = (nh * hs, nkv * hs);
        let mut out = vec![0f32; n * c];
        // Split the output at sequence boundaries so each sequence is one parallel task.
        let mut chunks = Vec::with_capacity(self.offsets.len());
        let mut rest: &mut [f32] = &mut out;
        for w in self.offsets.windows(2) {
            let (head, tail) = rest.split_at_mut((w[1] - w[0]) * c);
            chunks.push((w[0], w[1], head));
            rest = tail;
        }
        chunks.into_par_iter().for_each(|(a, b, o)| {
            attend_row(
                o,
                &q[a * c..b * c],
                &k[a * kv_row..b * kv_row],
                &v[a * kv_row..b * kv_row],
                nh,
                nkv,
                hs,
                self.causal,
                0,
                None,
                self.scale,
            );
        });
        Ok((CpuStorage::F32(out), Shape::from((n, c))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{D, Device};

    fn rand(shape: &[usize], seed: u64) -> Tensor {
        let n: usize = shape.iter().product();
        let mut s = seed;
        let v: Vec<f32> = (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
            })
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn exp_and_erf_are_accurate() {
        for i in -2000..2000 {
            let x = i as f32 * 0.04;
            let (a, b) = (exp(x), x.exp());
            assert!(((a - b) / b).abs() < 3e-7, "exp({x}) = {a}, want {b}");
            let e = libm_erf(x);
            assert!((erf(x) - e).abs() < 3e-7, "erf({x}) = {}, want {e}", erf(x));
        }
    }

    /// erf by its Taylor series in f64 (exact to ~1e-9 for |x| < 4; beyond, ±1 to 1e-8).
    fn libm_erf(x: f32) -> f32 {
        let x = f64::from(x);
        if x.abs() >= 4.0 {
            return x.signum() as f32;
        }
        let (mut term, mut sum, mut n) = (x, x, 0.0);
        while term.abs() > 1e-17 {
            n += 1.0;
            term *= -x * x / n;
            sum += term / (2.0 * n + 1.0);
        }
        (sum * 2.0 / std::f64::consts::PI.sqrt()) as f32
    }

    #[test]
    fn bias_act_matches_candle() {
        let x = rand(&[3, 5, 64], 1);
        let b = rand(&[64], 2);
        let xb = x.broadcast_add(&b).unwrap();
        assert!(
            max_diff(
                &bias_act(&x, &b, Act::GeluErf).unwrap(),
                &xb.gelu_erf().unwrap()
            ) < 1e-6
        );
        assert!(
            max_diff(
                &bias_act(&x, &b, Act::GeluTanh).unwrap(),
                &xb.gelu().unwrap()
            ) < 1e-6
        );
        assert!(
            max_diff(
                &bias_act(&x, &b, Act::Silu).unwrap(),
                &candle_nn::ops::silu(&xb).unwrap()
            ) < 1e-6
        );
        assert!(max_diff(&bias_act(&x, &b, Act::Identity).unwrap(), &xb) < 1e-7);
    }

    #[test]
    fn add_layer_norm_matches_candle() {
        let x = rand(&[4, 7, 32], 3);
        let r = rand(&[4, 7, 32], 4);
        let (w, b) = (rand(&[32], 5), rand(&[32], 6));
        let rb = rand(&[32], 7);
        let want = crate::ops::layer_norm_reference(
            &(&x + &r).unwrap().broadcast_add(&rb).unwrap(),
            &w,
            &b,
            1e-12,
        )
        .unwrap();
        assert!(
            max_diff(
                &add_layer_norm(&x, &r, Some(&rb), &w, &b, 1e-12).unwrap(),
                &want
            ) < 1e-5
        );
    }

    /// The plain composition: scores, mask, softmax, × V, merge heads.
    fn reference(q: &Tensor, k: &Tensor, v: &Tensor, bias: Option<&Tensor>) -> Tensor {
        let (b, nh, t, hs) = q.dims4().unwrap();
        let rep = nh / k.dim(1).unwrap();
        let k = k.repeat_interleave_heads(rep);
        let v = v.repeat_interleave_heads(rep);
        let mut att = (q.matmul(&k.t().unwrap()).unwrap() * (1.0 / (hs as f64).sqrt())).unwrap();
        if let Some(bias) = bias {
            att = att.broadcast_add(bias).unwrap();
        }
        let att = candle_nn::ops::softmax(&att, D::Minus1).unwrap();
        att.matmul(&v)
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .reshape((b, t, nh * hs))
            .unwrap()
    }

    /// (B, nh, T, hs) -> (B, T, nh, hs)
    fn bthd(t: &Tensor) -> Tensor {
        t.transpose(1, 2).unwrap().contiguous().unwrap()
    }

    trait Heads {
        fn repeat_interleave_heads(&self, rep: usize) -> Tensor;
    }

    impl Heads for Tensor {
        fn repeat_interleave_heads(&self, rep: usize) -> Tensor {
            let (b, n, t, hs) = self.dims4().unwrap();
            self.unsqueeze(2)
                .unwrap()
                .expand((b, n, rep, t, hs))
                .unwrap()
                .reshape((b, n * rep, t, hs))
                .unwrap()
        }
    }

    #[test]
    fn gemv_matches_matmul() {
        for m in [1, 3] {
            let x = rand(&[m, 40], 31);
            let w = rand(&[40, 70], 32);
            assert!(max_diff(&gemv(&x, &w).unwrap(), &x.matmul(&w).unwrap()) < 1e-4);
            let wt = rand(&[70, 40], 33);
            assert!(
                max_diff(
                    &gemv_t(&x, &wt).unwrap(),
                    &x.matmul(&wt.t().unwrap()).unwrap()
                ) < 1e-4
            );
        }
    }

    #[test]
    fn packed_sequences_equal_padded_ones() {
        // Two sequences of 5 and 2 tokens, packed, against the padded batch with a key mask.
        let (q, k, v) = (
            rand(&[2, 5, 4, 8], 21),
            rand(&[2, 5, 4, 8], 22),
            rand(&[2, 5, 4, 8], 23),
        );
        let mask = vec![1, 1, 1, 1, 1, 1, 1, 0, 0, 0];
        let padded = attention(&q, &k, &v, Some(mask), false, 0).unwrap();
        let pack = |t: &Tensor| {
            Tensor::cat(
                &[
                    t.get(0).unwrap(),
                    t.get(1).unwrap().narrow(0, 0, 2).unwrap(),
                ],
                0,
            )
            .unwrap()
        };
        let packed = attention_varlen(&pack(&q), &pack(&k), &pack(&v), &[0, 5, 7], false).unwrap();
        let want = Tensor::cat(
            &[
                padded.get(0).unwrap(),
                padded.get(1).unwrap().narrow(0, 0, 2).unwrap(),
            ],
            0,
        )
        .unwrap();
        assert!(max_diff(&packed, &want) < 1e-6);
        assert!(attention_varlen(&pack(&q), &pack(&k), &pack(&v), &[0, 5, 6], false).is_err());
    }

    #[test]
    fn attention_matches_the_composition() {
        // Padding mask (BERT).
        let (q, k, v) = (
            rand(&[2, 4, 6, 8], 7),
            rand(&[2, 4, 6, 8], 8),
            rand(&[2, 4, 6, 8], 9),
        );
        let mask: Vec<u8> = vec![1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0];
        let bias: Vec<f32> = mask
            .iter()
            .map(|&m| if m == 1 { 0.0 } else { f32::NEG_INFINITY })
            .collect();
        let bias = Tensor::from_vec(bias, (2, 1, 1, 6), &Device::Cpu).unwrap();
        let got = attention(&bthd(&q), &bthd(&k), &bthd(&v), Some(mask), false, 0).unwrap();
        assert!(max_diff(&got, &reference(&q, &k, &v, Some(&bias))) < 1e-5);
        // Causal with a cache and grouped-query heads (Llama).
        let (q, k, v) = (
            rand(&[1, 4, 3, 8], 10),
            rand(&[1, 2, 7, 8], 11),
            rand(&[1, 2, 7, 8], 12),
        );
        let causal = crate::ops::causal_mask(3, 4, &Device::Cpu).unwrap();
        let got = attention(&bthd(&q), &bthd(&k), &bthd(&v), None, true, 4).unwrap();
        assert!(max_diff(&got, &reference(&q, &k, &v, Some(&causal))) < 1e-5);
    }
}

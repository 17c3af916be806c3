//! Forward and backward kernels of a GPT-2 training step, on plain slices (after llm.c's
//! `train_gpt2.c`): embeddings, LayerNorm, bias, GELU, causal attention, residual, and softmax
//! with cross-entropy. Rows run in parallel on rayon; inner loops are written so the compiler
//! vectorises them, compiled for AVX-512 and AVX2 and chosen at run time.

use rand::Rng;
use rand_pcg::Pcg32;
use rayon::prelude::*;

use super::matmul::matmul_serial;

/// Rows per parallel task for row-wise kernels.
const ROWS: usize = 16;

macro_rules! simd {
    ($($item:item)*) => {
        $(
            #[allow(clippy::too_many_arguments)]
            #[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
            $item
        )*
    };
}

/// `out[b,t] = wte[ids[b,t]] + wpe[t]`.
pub fn encoder_forward(out: &mut [f32], ids: &[u32], wte: &[f32], wpe: &[f32], t: usize, c: usize) {
    out.par_chunks_mut(c)
        .zip(ids.par_iter())
        .enumerate()
        .for_each(|(row, (o, &id))| {
            let pos = row % t;
            let (w, p) = (
                &wte[id as usize * c..(id as usize + 1) * c],
                &wpe[pos * c..(pos + 1) * c],
            );
            o.iter_mut()
                .zip(w)
                .zip(p)
                .for_each(|((o, &w), &p)| *o = w + p);
        });
}

/// Gradients of the embeddings: `dwte[ids] += dout`, `dwpe[t] += dout`.
pub fn encoder_backward(
    dwte: &mut [f32],
    dwpe: &mut [f32],
    dout: &[f32],
    ids: &[u32],
    t: usize,
    c: usize,
) {
    for (row, (d, &id)) in dout.chunks_exact(c).zip(ids).enumerate() {
        let pos = row % t;
        dwte[id as usize * c..(id as usize + 1) * c]
            .iter_mut()
            .zip(d)
            .for_each(|(w, &g)| *w += g);
        dwpe[pos * c..(pos + 1) * c]
            .iter_mut()
            .zip(d)
            .for_each(|(w, &g)| *w += g);
    }
}

simd! {
    fn layernorm_rows(out: &mut [f32], mean: &mut [f32], rstd: &mut [f32], inp: &[f32], w: &[f32], b: &[f32], c: usize, eps: f32) {
        for (((o, x), m), r) in out.chunks_exact_mut(c).zip(inp.chunks_exact(c)).zip(mean.iter_mut()).zip(rstd.iter_mut()) {
            let mu = lanes_sum(x) / c as f32;
            let var = lanes_sum_sq_dev(x, mu) / c as f32;
            let rs = 1.0 / (var + eps).sqrt();
            for (((o, &x), &w), &b) in o.iter_mut().zip(x).zip(w).zip(b) {
                *o = (x - mu) * rs * w + b;
            }
            *m = mu;
            *r = rs;
        }
    }

    fn layernorm_back_rows(dinp: &mut [f32], dw: &mut [f32], db: &mut [f32], dout: &[f32], inp: &[f32], w: &[f32], mean: &[f32], rstd: &[f32], c: usize) {
        for ((((di, d), x), &mu), &rs) in dinp.chunks_exact_mut(c).zip(dout.chunks_exact(c)).zip(inp.chunks_exact(c)).zip(mean).zip(rstd) {
            let (dnorm_mean, dnorm_norm_mean) = lanes_dnorm(d, x, w, mu, rs);
            let (dnorm_mean, dnorm_norm_mean) = (dnorm_mean / c as f32, dnorm_norm_mean / c as f32);
            for (((((di, &d), &x), &w), dw), db) in di.iter_mut().zip(d).zip(x).zip(w).zip(dw.iter_mut()).zip(db.iter_mut()) {
                let norm = (x - mu) * rs;
                *db += d;
                *dw += norm * d;
                *di += (w * d - dnorm_mean - norm * dnorm_norm_mean) * rs;
            }
        }
    }
}

/// LayerNorm of `n` rows of width `c`; saves each row's mean and reciprocal std for backward.
#[allow(clippy::too_many_arguments)]
pub fn layernorm_forward(
    out: &mut [f32],
    mean: &mut [f32],
    rstd: &mut [f32],
    inp: &[f32],
    w: &[f32],
    b: &[f32],
    c: usize,
    eps: f32,
) {
    out.par_chunks_mut(c * ROWS)
        .zip(mean.par_chunks_mut(ROWS).zip(rstd.par_chunks_mut(ROWS)))
        .zip(inp.par_chunks(c * ROWS))
        .for_each(|((o, (m, r)), x)| layernorm_rows(o, m, r, x, w, b, c, eps));
}

/// LayerNorm backward: `dinp += …`, and `dw`, `db` accumulated (per-task partial sums, then
/// reduced, so the result does not depend on scheduling).
#[allow(clippy::too_many_arguments)]
pub fn layernorm_backward(
    dinp: &mut [f32],
    dw: &mut [f32],
    db: &mut [f32],
    dout: &[f32],
    inp: &[f32],
    w: &[f32],
    mean: &[f32],
    rstd: &[f32],
    c: usize,
) {
    let chunk = ROWS * 4;
    let partials: Vec<(Vec<f32>, Vec<f32>)> = dinp
        .par_chunks_mut(c * chunk)
        .zip(dout.par_chunks(c * chunk).zip(inp.par_chunks(c * chunk)))
        .zip(mean.par_chunks(chunk).zip(rstd.par_chunks(chunk)))
        .map(|((di, (d, x)), (m, r))| {
            let (mut pw, mut pb) = (vec![0f32; c], vec![0f32; c]);
            layernorm_back_rows(di, &mut pw, &mut pb, d, x, w, m, r, c);
            (pw, pb)
        })
        .collect();
    for (pw, pb) in partials {
        dw.iter_mut().zip(pw).for_each(|(a, b)| *a += b);
        db.iter_mut().zip(pb).for_each(|(a, b)| *a += b);
    }
}

/// Adds `bias` to every row.
pub fn bias_forward(out: &mut [f32], bias: &[f32]) {
    let c = bias.len();
    out.par_chunks_mut(c * ROWS).for_each(|o| {
        for o in o.chunks_exact_mut(c) {
            o.iter_mut().zip(bias).for_each(|(o, &b)| *o += b);
        }
    });
}

/// `dbias += column sums of dout`.
pub fn bias_backward(dbias: &mut [f32], dout: &[f32]) {
    let c = dbias.len();
    let partials: Vec<Vec<f32>> = dout
        .par_chunks(c * ROWS * 4)
        .map(|d| {
            let mut p = vec![0f32; c];
            for row in d.chunks_exact(c) {
                p.iter_mut().zip(row).for_each(|(p, &g)| *p += g);
            }
            p
        })
        .collect();
    for p in partials {
        dbias.iter_mut().zip(p).for_each(|(a, b)| *a += b);
    }
}

const GELU_SCALE: f32 = 0.797_884_6; // sqrt(2 / pi)

/// tanh via the vectorisable exp.
#[inline(always)]
fn tanh(u: f32) -> f32 {
    1.0 - 2.0 / (duet_model::fused::exp(2.0 * u) + 1.0)
}

simd! {
    fn gelu_rows(out: &mut [f32], inp: &[f32]) {
        for (o, &x) in out.iter_mut().zip(inp) {
            *o = 0.5 * x * (1.0 + tanh(GELU_SCALE * (x + 0.044_715 * x * x * x)));
        }
    }

    fn gelu_back_rows(dinp: &mut [f32], inp: &[f32], dout: &[f32]) {
        for ((di, &x), &d) in dinp.iter_mut().zip(inp).zip(dout) {
            let cube = 0.044_715 * x * x * x;
            let th = tanh(GELU_SCALE * (x + cube));
            let sech2 = 1.0 - th * th;
            let local = 0.5 * (1.0 + th) + x * 0.5 * sech2 * GELU_SCALE * (1.0 + 3.0 * 0.044_715 * x * x);
            *di += local * d;
        }
    }
}

simd! {
    fn bias_gelu_rows(pre: &mut [f32], out: &mut [f32], bias: &[f32]) {
        let c = bias.len();
        for (p, o) in pre.chunks_exact_mut(c).zip(out.chunks_exact_mut(c)) {
            for ((p, o), &b) in p.iter_mut().zip(o.iter_mut()).zip(bias) {
                let x = *p + b;
                *p = x;
                *o = 0.5 * x * (1.0 + tanh(GELU_SCALE * (x + 0.044_715 * x * x * x)));
            }
        }
    }
}

simd! {
    fn bias_gelu_erf_rows(pre: &mut [f32], out: &mut [f32], bias: &[f32]) {
        let c = bias.len();
        for (p, o) in pre.chunks_exact_mut(c).zip(out.chunks_exact_mut(c)) {
            for ((p, o), &b) in p.iter_mut().zip(o.iter_mut()).zip(bias) {
                let x = *p + b;
                *p = x;
                *o = 0.5 * x * (1.0 + duet_model::fused::erf(x * std::f32::consts::FRAC_1_SQRT_2));
            }
        }
    }

    fn gelu_erf_back_rows(dinp: &mut [f32], inp: &[f32], dout: &[f32]) {
        // gelu'(x) = Φ(x) + x φ(x)
        const INV_SQRT_2PI: f32 = 0.398_942_3;
        for ((di, &x), &d) in dinp.iter_mut().zip(inp).zip(dout) {
            let cdf = 0.5 * (1.0 + duet_model::fused::erf(x * std::f32::consts::FRAC_1_SQRT_2));
            let pdf = INV_SQRT_2PI * duet_model::fused::exp(-0.5 * x * x);
            *di += (cdf + x * pdf) * d;
        }
    }
}

/// Which GELU: the tanh approximation (GPT-2's `gelu_new`) or the exact one with erf (BERT's
/// `gelu`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gelu {
    /// `0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))`.
    Tanh,
    /// `0.5 x (1 + erf(x / √2))`.
    Erf,
}

/// `pre += bias` (kept for backward) and `out = gelu(pre)`, in one pass.
pub fn bias_gelu_forward(pre: &mut [f32], out: &mut [f32], bias: &[f32], kind: Gelu) {
    let rows = (ROWS * 4) * bias.len();
    pre.par_chunks_mut(rows)
        .zip(out.par_chunks_mut(rows))
        .for_each(|(p, o)| match kind {
            Gelu::Tanh => bias_gelu_rows(p, o, bias),
            Gelu::Erf => bias_gelu_erf_rows(p, o, bias),
        });
}

/// GELU (tanh approximation, GPT-2's `gelu_new`).
pub fn gelu_forward(out: &mut [f32], inp: &[f32]) {
    out.par_chunks_mut(1 << 14)
        .zip(inp.par_chunks(1 << 14))
        .for_each(|(o, x)| gelu_rows(o, x));
}

/// GELU backward: `dinp += gelu'(inp) · dout`.
pub fn gelu_backward(dinp: &mut [f32], inp: &[f32], dout: &[f32], kind: Gelu) {
    dinp.par_chunks_mut(1 << 14)
        .zip(inp.par_chunks(1 << 14).zip(dout.par_chunks(1 << 14)))
        .for_each(|(di, (x, d))| match kind {
            Gelu::Tanh => gelu_back_rows(di, x, d),
            Gelu::Erf => gelu_erf_back_rows(di, x, d),
        });
}

/// `out = a + b`.
pub fn residual_forward(out: &mut [f32], a: &[f32], b: &[f32]) {
    out.par_chunks_mut(1 << 14)
        .zip(a.par_chunks(1 << 14).zip(b.par_chunks(1 << 14)))
        .for_each(|(o, (a, b))| {
            o.iter_mut()
                .zip(a)
                .zip(b)
                .for_each(|((o, &a), &b)| *o = a + b);
        });
}

/// `out += a`.
pub fn add_into(out: &mut [f32], a: &[f32]) {
    out.par_chunks_mut(1 << 14)
        .zip(a.par_chunks(1 << 14))
        .for_each(|(o, a)| o.iter_mut().zip(a).for_each(|(o, &a)| *o += a));
}

/// Elements per random stream of [`dropout_mask`].
const MASK_CHUNK: usize = 1 << 14;

/// Mixes a step seed with a site number (splitmix64), so that every dropout site of a step
/// draws from its own stream.
pub fn site_seed(seed: u64, site: u64) -> u64 {
    let mut z = seed.wrapping_add(site.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Fills `mask` with inverted-dropout multipliers: 0 with probability `p`, otherwise
/// `1 / (1 − p)`. Each chunk of the mask draws from its own stream of `seed`, so the mask is
/// the same on any number of threads.
pub fn dropout_mask(mask: &mut [f32], p: f32, seed: u64) {
    mask.par_chunks_mut(MASK_CHUNK)
        .enumerate()
        .for_each(|(i, m)| fill_mask(m, p, seed, i as u64));
}

/// One stream's share of [`dropout_mask`].
fn fill_mask(m: &mut [f32], p: f32, seed: u64, stream: u64) {
    let keep = 1.0 - f64::from(p);
    let scale = (1.0 / keep) as f32;
    // A uniform u32 below keep·2³² keeps the element.
    let threshold = (keep * 4_294_967_296.0) as u64;
    let mut rng = Pcg32::new(seed, stream);
    m.iter_mut().for_each(|x| {
        *x = if u64::from(rng.next_u32()) < threshold {
            scale
        } else {
            0.0
        }
    });
}

/// `out ∘= mask`, element by element.
pub fn mul_into(out: &mut [f32], mask: &[f32]) {
    out.par_chunks_mut(1 << 14)
        .zip(mask.par_chunks(1 << 14))
        .for_each(|(o, m)| o.iter_mut().zip(m).for_each(|(o, &m)| *o *= m));
}

/// `out = a ∘ mask`, element by element.
pub fn mul(out: &mut [f32], a: &[f32], mask: &[f32]) {
    out.par_chunks_mut(1 << 14)
        .zip(a.par_chunks(1 << 14).zip(mask.par_chunks(1 << 14)))
        .for_each(|(o, (a, m))| {
            o.iter_mut()
                .zip(a.iter().zip(m))
                .for_each(|(o, (&a, &m))| *o = a * m)
        });
}

/// Dropout on attention probabilities: the probability of dropping, and the layer's seed.
#[derive(Clone, Copy, Debug)]
pub struct AttnDropout {
    /// Probability of zeroing a weight.
    pub p: f32,
    /// The layer's seed; (sequence, head) pair `i` draws from stream `i`.
    pub seed: u64,
}

impl AttnDropout {
    /// The (T, T) mask of one (sequence, head) pair; the same in forward and backward.
    pub(crate) fn mask(&self, pair: usize, t: usize) -> Vec<f32> {
        let mut m = vec![0f32; t * t];
        fill_mask(&mut m, self.p, self.seed, pair as u64);
        m
    }
}

/// The maximum of `x`, over sixteen independent lanes so that it vectorises (a plain fold is
/// one dependent chain).
#[inline(always)]
fn lanes_max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 16];
    let chunks = x.chunks_exact(16);
    let rest = chunks.remainder();
    for c in chunks {
        for l in 0..16 {
            acc[l] = acc[l].max(c[l]);
        }
    }
    rest.iter()
        .chain(&acc)
        .copied()
        .fold(f32::NEG_INFINITY, f32::max)
}

/// The sum of `x`, over sixteen independent lanes (see [`lanes_max`]).
#[inline(always)]
fn lanes_sum(x: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let chunks = x.chunks_exact(16);
    let rest = chunks.remainder();
    for c in chunks {
        for l in 0..16 {
            acc[l] += c[l];
        }
    }
    acc.iter().chain(rest).sum()
}

/// `Σ (x − mu)²` over sixteen lanes (see [`lanes_max`]).
#[inline(always)]
fn lanes_sum_sq_dev(x: &[f32], mu: f32) -> f32 {
    let mut acc = [0f32; 16];
    let chunks = x.chunks_exact(16);
    let rest = chunks.remainder();
    for c in chunks {
        for l in 0..16 {
            let d = c[l] - mu;
            acc[l] += d * d;
        }
    }
    acc.iter().sum::<f32>() + rest.iter().map(|v| (v - mu) * (v - mu)).sum::<f32>()
}

/// LayerNorm backward's two row sums, `Σ w·d` and `Σ w·d·x̂`, over sixteen lanes.
#[inline(always)]
fn lanes_dnorm(d: &[f32], x: &[f32], w: &[f32], mu: f32, rs: f32) -> (f32, f32) {
    let (mut a, mut b) = ([0f32; 16], [0f32; 16]);
    let (dc, xc, wc) = (d.chunks_exact(16), x.chunks_exact(16), w.chunks_exact(16));
    let (dr, xr, wr) = (dc.remainder(), xc.remainder(), wc.remainder());
    for ((d, x), w) in dc.zip(xc).zip(wc) {
        for l in 0..16 {
            let wd = w[l] * d[l];
            a[l] += wd;
            b[l] += wd * (x[l] - mu) * rs;
        }
    }
    let (mut sa, mut sb) = (a.iter().sum::<f32>(), b.iter().sum::<f32>());
    for ((&d, &x), &w) in dr.iter().zip(xr).zip(wr) {
        sa += w * d;
        sb += w * d * (x - mu) * rs;
    }
    (sa, sb)
}

simd! {
    /// Causal softmax of scaled scores, rows of `t`, in place (row `i` keeps columns `..=i`).
    fn causal_softmax(s: &mut [f32], t: usize, scale: f32) {
        for (i, row) in s.chunks_exact_mut(t).enumerate() {
            let live = &mut row[..=i];
            live.iter_mut().for_each(|x| *x *= scale);
            let max = lanes_max(live);
            live.iter_mut().for_each(|x| *x = duet_model::fused::exp(*x - max));
            let inv = 1.0 / lanes_sum(live);
            live.iter_mut().for_each(|x| *x *= inv);
            row[i + 1..].fill(0.0);
        }
    }

    /// Softmax of scaled scores, rows of `t`, in place (no mask: bidirectional attention).
    fn softmax_rows(s: &mut [f32], t: usize, scale: f32) {
        for row in s.chunks_exact_mut(t) {
            row.iter_mut().for_each(|x| *x *= scale);
            let max = lanes_max(row);
            row.iter_mut().for_each(|x| *x = duet_model::fused::exp(*x - max));
            let inv = 1.0 / lanes_sum(row);
            row.iter_mut().for_each(|x| *x *= inv);
        }
    }

    /// `ds = p ∘ (dp − rowsum(dp ∘ p)) · scale`, in place in `dp`.
    fn softmax_back(dp: &mut [f32], p: &[f32], t: usize, scale: f32) {
        for (d, p) in dp.chunks_exact_mut(t).zip(p.chunks_exact(t)) {
            let s = duet_model::fused::dot(d, p);
            d.iter_mut().zip(p).for_each(|(d, &p)| *d = p * (*d - s) * scale);
        }
    }
}

/// One (sequence, head) pair of attention over `l` positions: `p = softmax(q kᵀ · scale)`
/// (causal or not) kept for backward, and the output `drop(p) v` (`mask` holds the dropout
/// multipliers).
#[allow(clippy::too_many_arguments)]
fn head_forward(
    p: &mut [f32],
    q: &[f32],
    k: &[f32],
    v: &[f32],
    l: usize,
    hs: usize,
    scale: f32,
    causal: bool,
    mask: Option<Vec<f32>>,
) -> Vec<f32> {
    matmul_serial(p, q, k, l, l, hs, false, true, false);
    if causal {
        causal_softmax(p, l, scale);
    } else {
        softmax_rows(p, l, scale);
    }
    let mut o = vec![0f32; l * hs];
    match mask {
        Some(mut pd) => {
            pd.iter_mut().zip(p.iter()).for_each(|(m, &p)| *m *= p);
            matmul_serial(&mut o, &pd, v, l, hs, l, false, false, false);
        }
        None => matmul_serial(&mut o, p, v, l, hs, l, false, false, false),
    }
    o
}

/// Backward of [`head_forward`] given `d`, the output's gradient: `[dq, dk, dv]`. With dropout
/// `P' = P ∘ M`: `dV = P'ᵀ dO`, `dP = (dO Vᵀ) ∘ M`, `dS = softmax'(dP)`, `dQ = dS K`,
/// `dK = dSᵀ Q` (masked-out entries of a causal `P` are 0, so the same formulas hold).
#[allow(clippy::too_many_arguments)]
fn head_backward(
    p: &[f32],
    q: &[f32],
    k: &[f32],
    v: &[f32],
    d: &[f32],
    l: usize,
    hs: usize,
    scale: f32,
    mask: Option<&[f32]>,
) -> [Vec<f32>; 3] {
    let mut dv = vec![0f32; l * hs];
    let mut dp = vec![0f32; l * l];
    match mask {
        Some(m) => {
            let pd: Vec<f32> = p.iter().zip(m).map(|(p, m)| p * m).collect();
            matmul_serial(&mut dv, &pd, d, l, hs, l, true, false, false);
            matmul_serial(&mut dp, d, v, l, l, hs, false, true, false);
            dp.iter_mut().zip(m).for_each(|(g, m)| *g *= m);
        }
        None => {
            matmul_serial(&mut dv, p, d, l, hs, l, true, false, false);
            matmul_serial(&mut dp, d, v, l, l, hs, false, true, false);
        }
    }
    softmax_back(&mut dp, p, l, scale);
    let mut dq = vec![0f32; l * hs];
    matmul_serial(&mut dq, &dp, k, l, hs, l, false, false, false);
    let mut dk = vec![0f32; l * hs];
    matmul_serial(&mut dk, &dp, q, l, hs, l, true, false, false);
    [dq, dk, dv]
}

/// Causal multi-head attention over `b` sequences: `qkv` (B·T, 3C) -> `out` (B·T, C), keeping
/// the probabilities `att` (B, NH, T, T) for backward (before dropout, which `drop` applies to
/// them and backward makes again from its seed). Each (sequence, head) pair is gathered into
/// contiguous buffers and multiplied with `gemm`.
pub fn attention_forward(
    out: &mut [f32],
    att: &mut [f32],
    qkv: &[f32],
    t: usize,
    c: usize,
    nh: usize,
    drop: Option<AttnDropout>,
) {
    let hs = c / nh;
    let scale = 1.0 / (hs as f32).sqrt();
    let heads: Vec<Vec<f32>> = att
        .par_chunks_mut(t * t)
        .enumerate()
        .map(|(pair, p)| {
            let (b, h) = (pair / nh, pair % nh);
            let (q, k, v) = (
                gather(qkv, b * t, t, 3 * c, h, hs),
                gather(qkv, b * t, t, 3 * c, nh + h, hs),
                gather(qkv, b * t, t, 3 * c, 2 * nh + h, hs),
            );
            let mask = drop.map(|d| d.mask(pair, t));
            head_forward(p, &q, &k, &v, t, hs, scale, true, mask)
        })
        .collect();
    for (pair, o) in heads.iter().enumerate() {
        let (b, h) = (pair / nh, pair % nh);
        for i in 0..t {
            out[(b * t + i) * c + h * hs..(b * t + i) * c + (h + 1) * hs]
                .copy_from_slice(&o[i * hs..(i + 1) * hs]);
        }
    }
}

/// Attention backward: accumulates into `dqkv` (B·T, 3C).
#[allow(clippy::too_many_arguments)]
pub fn attention_backward(
    dqkv: &mut [f32],
    dout: &[f32],
    qkv: &[f32],
    att: &[f32],
    t: usize,
    c: usize,
    nh: usize,
    drop: Option<AttnDropout>,
) {
    let hs = c / nh;
    let scale = 1.0 / (hs as f32).sqrt();
    let grads: Vec<[Vec<f32>; 3]> = att
        .par_chunks(t * t)
        .enumerate()
        .map(|(pair, p)| {
            let (b, h) = (pair / nh, pair % nh);
            let (q, k, v) = (
                gather(qkv, b * t, t, 3 * c, h, hs),
                gather(qkv, b * t, t, 3 * c, nh + h, hs),
                gather(qkv, b * t, t, 3 * c, 2 * nh + h, hs),
            );
            let d = gather(dout, b * t, t, c, h, hs);
            let mask = drop.map(|d| d.mask(pair, t));
            head_backward(p, &q, &k, &v, &d, t, hs, scale, mask.as_deref())
        })
        .collect();
    // dqkv rows hold [q | k | v]: head h of k is column block nh + h, of v 2·nh + h.
    for (pair, [dq, dk, dv]) in grads.iter().enumerate() {
        let (b, h) = (pair / nh, pair % nh);
        scatter_add(dqkv, dq, b * t, 3 * c, h, hs);
        scatter_add(dqkv, dk, b * t, 3 * c, nh + h, hs);
        scatter_add(dqkv, dv, b * t, 3 * c, 2 * nh + h, hs);
    }
}

simd! {
    fn xent_rows(logits: &mut [f32], losses: &mut [f32], targets: &[u32], v: usize, scale: f32) {
        for ((row, loss), &y) in logits.chunks_exact_mut(v).zip(losses.iter_mut()).zip(targets) {
            let max = lanes_max(row);
            row.iter_mut().for_each(|x| *x = duet_model::fused::exp(*x - max));
            let inv = 1.0 / lanes_sum(row);
            let py = row[y as usize] * inv;
            *loss = -py.max(1e-30).ln();
            // d loss / d logits = (p - onehot) / N
            for x in row.iter_mut() {
                *x *= inv * scale;
            }
            row[y as usize] -= scale;
        }
    }
}

/// Softmax cross-entropy of `logits` (N, V) against `targets`, in place: returns the mean loss
/// and leaves `logits` holding the gradient of the mean loss.
pub fn softmax_xent(logits: &mut [f32], targets: &[u32], v: usize) -> f32 {
    let n = targets.len();
    let mut losses = vec![0f32; n];
    let scale = 1.0 / n as f32;
    logits
        .par_chunks_mut(v * 4)
        .zip(losses.par_chunks_mut(4).zip(targets.par_chunks(4)))
        .for_each(|(l, (loss, y))| xent_rows(l, loss, y, v, scale));
    (losses.iter().map(|&x| f64::from(x)).sum::<f64>() / n as f64) as f32
}

/// Sequences packed back to back without padding: sequence `s` holds rows
/// `offsets[s]..offsets[s + 1]` of every (N, ·) buffer.
#[derive(Clone, Debug)]
pub struct Packed {
    /// Row offsets, one more than the sequences.
    pub offsets: Vec<usize>,
}

impl Packed {
    /// The layout of sequences of these lengths.
    pub fn new(lengths: impl IntoIterator<Item = usize>) -> Self {
        let mut offsets = vec![0];
        for l in lengths {
            offsets.push(offsets[offsets.len() - 1] + l);
        }
        Self { offsets }
    }

    /// Rows in all.
    pub fn rows(&self) -> usize {
        self.offsets[self.offsets.len() - 1]
    }

    /// Sequences.
    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Whether there are no sequences.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Attention probabilities of all (sequence, head) pairs: `nh · L²` per sequence.
    pub fn probs_len(&self, nh: usize) -> usize {
        self.offsets
            .windows(2)
            .map(|w| nh * (w[1] - w[0]).pow(2))
            .sum()
    }

    /// Each (sequence, head) pair in pair order (`pair = s · nh + h`): its first row, its
    /// length, and where its (L, L) probabilities start.
    fn pairs(&self, nh: usize) -> Vec<(usize, usize, usize)> {
        let mut out = Vec::with_capacity(self.len() * nh);
        let mut at = 0;
        for w in self.offsets.windows(2) {
            let l = w[1] - w[0];
            for _ in 0..nh {
                out.push((w[0], l, at));
                at += l * l;
            }
        }
        out
    }

    /// Splits a probability buffer into one (L, L) slice per pair (see [`Packed::pairs`]).
    fn split_probs<'a>(
        &self,
        mut probs: &'a mut [f32],
        nh: usize,
    ) -> Vec<(usize, usize, &'a mut [f32])> {
        self.pairs(nh)
            .into_iter()
            .map(|(r0, l, _)| {
                let (head, rest) = std::mem::take(&mut probs).split_at_mut(l * l);
                probs = rest;
                (r0, l, head)
            })
            .collect()
    }
}

/// Copies head `h` of rows `r0..r0 + l` of an (N, C) buffer into a contiguous (l, hs) one.
fn gather(x: &[f32], r0: usize, l: usize, c: usize, h: usize, hs: usize) -> Vec<f32> {
    let mut out = vec![0f32; l * hs];
    for i in 0..l {
        let row = (r0 + i) * c + h * hs;
        out[i * hs..(i + 1) * hs].copy_from_slice(&x[row..row + hs]);
    }
    out
}

/// Adds a contiguous (l, hs) block into head `h` of rows `r0..` of an (N, C) buffer.
fn scatter_add(x: &mut [f32], block: &[f32], r0: usize, c: usize, h: usize, hs: usize) {
    for (i, b) in block.chunks_exact(hs).enumerate() {
        let row = (r0 + i) * c + h * hs;
        x[row..row + hs]
            .iter_mut()
            .zip(b)
            .for_each(|(x, &b)| *x += b);
    }
}

/// Bidirectional multi-head attention over packed sequences (BERT): `q`, `k`, `v` (N, C) ->
/// `out` (N, C), which must be zero; keeps the probabilities (before dropout) in `probs`
/// ([`Packed::probs_len`]) for backward.
#[allow(clippy::too_many_arguments)]
pub fn attention_packed_forward(
    out: &mut [f32],
    probs: &mut [f32],
    q: &[f32],
    k: &[f32],
    v: &[f32],
    packed: &Packed,
    c: usize,
    nh: usize,
    drop: Option<AttnDropout>,
) {
    let hs = c / nh;
    let scale = 1.0 / (hs as f32).sqrt();
    let blocks: Vec<(usize, usize, usize, Vec<f32>)> = packed
        .split_probs(probs, nh)
        .into_par_iter()
        .enumerate()
        .map(|(pair, (r0, l, p))| {
            let h = pair % nh;
            let (qh, kh, vh) = (
                gather(q, r0, l, c, h, hs),
                gather(k, r0, l, c, h, hs),
                gather(v, r0, l, c, h, hs),
            );
            let mask = drop.map(|d| d.mask(pair, l));
            (
                r0,
                h,
                l,
                head_forward(p, &qh, &kh, &vh, l, hs, scale, false, mask),
            )
        })
        .collect();
    for (r0, h, _, o) in &blocks {
        scatter_add(out, o, *r0, c, *h, hs);
    }
}

/// Backward of [`attention_packed_forward`]: `dq`, `dk`, `dv` (N, C) accumulate.
#[allow(clippy::too_many_arguments)]
pub fn attention_packed_backward(
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
    dout: &[f32],
    probs: &[f32],
    q: &[f32],
    k: &[f32],
    v: &[f32],
    packed: &Packed,
    c: usize,
    nh: usize,
    drop: Option<AttnDropout>,
) {
    let hs = c / nh;
    let scale = 1.0 / (hs as f32).sqrt();
    let grads: Vec<(usize, usize, [Vec<f32>; 3])> = packed
        .pairs(nh)
        .into_par_iter()
        .enumerate()
        .map(|(pair, (r0, l, at))| {
            let h = pair % nh;
            let p = &probs[at..at + l * l];
            let (qh, kh, vh, d) = (
                gather(q, r0, l, c, h, hs),
                gather(k, r0, l, c, h, hs),
                gather(v, r0, l, c, h, hs),
                gather(dout, r0, l, c, h, hs),
            );
            let mask = drop.map(|d| d.mask(pair, l));
            let grads = head_backward(p, &qh, &kh, &vh, &d, l, hs, scale, mask.as_deref());
            (r0, h, grads)
        })
        .collect();
    for (r0, h, [dqh, dkh, dvh]) in &grads {
        scatter_add(dq, dqh, *r0, c, *h, hs);
        scatter_add(dk, dkh, *r0, c, *h, hs);
        scatter_add(dv, dvh, *r0, c, *h, hs);
    }
}

//! Decoders run from GGUF files with their weights left quantized: Llama (and Mistral,
//! SmolLM, TinyLlama), Qwen 2 and 3, Phi-3, Gemma and GPT-2, matching llama.cpp's graphs
//! (`llama-model.cpp`, `llm_build_llama` and relatives) operation for operation.
//!
//! A block reads as the paper: `x = x + attn(norm(x))`, `x = x + mlp(norm(x))`. Every
//! projection is a [`QMatrix`] product over 8-bit activations; the projections that read the
//! same input (query, key and value; gate and up) run as one parallel job. A forward pass
//! takes any mix of sequences — a prompt of many tokens, or one new token for each of many
//! sequences — and each token attends over its own sequence's [`Cache`] (keys and values in
//! f16, grouped-query heads shared), so prompts are processed as matrix products and only
//! decoding goes one token at a time.

pub mod config;
mod ops;

use std::sync::Arc;

use half::f16;

pub use config::{Arch, Config, RopeConfig};

use crate::gguf::GgufFile;
use crate::quant::pool::{Disjoint, Pool};
use crate::quant::{Acts, QMatrix, ggml, matmul_many};
use crate::{Error, Result};

/// A norm's weight (and bias, for LayerNorm).
#[derive(Debug, Clone)]
struct Norm {
    w: Vec<f32>,
    b: Option<Vec<f32>>,
}

/// The attention projections: separate, or one fused matrix (GPT-2, Phi-3).
#[derive(Debug, Clone)]
enum Qkv {
    Split { q: QMatrix, k: QMatrix, v: QMatrix },
    Fused(QMatrix),
}

/// The MLP.
#[derive(Debug, Clone)]
enum Ffn {
    /// `down(act(gate(x)) · up(x))` (Llama, Qwen: SiLU; Gemma: GELU).
    Gated {
        gate: QMatrix,
        up: QMatrix,
        down: QMatrix,
        gelu: bool,
    },
    /// Phi-3: gate and up stacked in one matrix, gate first.
    FusedGated { gate_up: QMatrix, down: QMatrix },
    /// GPT-2: `down(gelu(up(x) + b) ) + b`.
    Plain {
        up: QMatrix,
        up_b: Vec<f32>,
        down: QMatrix,
        down_b: Vec<f32>,
    },
}

#[derive(Debug, Clone)]
struct Layer {
    attn_norm: Norm,
    qkv: Qkv,
    /// Biases of the query, key and value (Qwen 2; GPT-2's fused bias is split in three).
    qkv_bias: Option<[Vec<f32>; 3]>,
    /// Per-head RMSNorm of queries and keys (Qwen 3).
    qk_norm: Option<(Vec<f32>, Vec<f32>)>,
    wo: QMatrix,
    wo_b: Option<Vec<f32>>,
    ffn_norm: Norm,
    ffn: Ffn,
}

/// The element type of a key/value cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KvType {
    /// Half precision, llama.cpp's default: half the memory.
    #[default]
    F16,
    /// Single precision (llama.cpp's `--cache-type-k f32`): what `transformers` computes.
    F32,
}

/// One layer's keys or values in the cache's element type.
#[derive(Debug, Clone)]
enum KvVec {
    F16(Vec<f16>),
    F32(Vec<f32>),
}

impl KvVec {
    fn new(t: KvType) -> Self {
        match t {
            KvType::F16 => Self::F16(Vec::new()),
            KvType::F32 => Self::F32(Vec::new()),
        }
    }

    fn len(&self) -> usize {
        match self {
            Self::F16(v) => v.len(),
            Self::F32(v) => v.len(),
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Self::F16(v) => v.capacity() * 2,
            Self::F32(v) => v.capacity() * 4,
        }
    }

    fn set(&mut self, i: usize, x: f32) {
        match self {
            Self::F16(v) => v[i] = f16::from_f32(x),
            Self::F32(v) => v[i] = x,
        }
    }

    /// Resized to `len` values, keeping `keep` runs of `run` values that start at multiples
    /// of `old_stride` and move to multiples of `new_stride` (a transposed cache's rows).
    fn regrid(
        &mut self,
        len: usize,
        runs: usize,
        run: usize,
        old_stride: usize,
        new_stride: usize,
    ) {
        fn go<T: Copy + Default>(
            v: &mut Vec<T>,
            len: usize,
            runs: usize,
            run: usize,
            os: usize,
            ns: usize,
        ) {
            let mut t = vec![T::default(); len];
            for r in 0..runs {
                t[r * ns..r * ns + run].copy_from_slice(&v[r * os..r * os + run]);
            }
            *v = t;
        }
        match self {
            Self::F16(v) => go(v, len, runs, run, old_stride, new_stride),
            Self::F32(v) => go(v, len, runs, run, old_stride, new_stride),
        }
    }
}

/// One sequence's keys and values for every layer. Keys are stored a position at a time;
/// values transposed (each value dimension's positions contiguous), as llama.cpp stores
/// them, so that attention reads both in order.
#[derive(Debug, Clone)]
pub struct Cache {
    /// Per layer: `cap × kv_dim` keys.
    k: Vec<KvVec>,
    /// Per layer: `kv_dim × cap` values.
    v: Vec<KvVec>,
    /// Positions allocated.
    cap: usize,
    len: usize,
}

impl Cache {
    /// Positions held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets every position from `len` on (a shorter prefix stays usable).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.k.iter().chain(&self.v).map(KvVec::bytes).sum()
    }

    /// Makes room for `len` positions (in steps of 256, as llama.cpp pads its caches).
    fn reserve(&mut self, len: usize, kv_dim: usize) {
        if len <= self.cap {
            return;
        }
        let cap = len.max(2 * self.cap).div_ceil(256) * 256;
        for k in &mut self.k {
            let n = k.len();
            k.regrid(cap * kv_dim, 1, n, 0, 0);
        }
        for v in &mut self.v {
            v.regrid(kv_dim * cap, kv_dim, self.len, self.cap, cap);
        }
        self.cap = cap;
    }
}

/// A decoder with quantized weights.
#[derive(Debug, Clone)]
pub struct Model {
    cfg: Config,
    token_embd: QMatrix,
    pos_embd: Option<QMatrix>,
    layers: Vec<Layer>,
    out_norm: Norm,
    output: QMatrix,
    /// Llama 3's per-pair RoPE divisors (`rope_freqs.weight`).
    rope_factors: Option<Vec<f32>>,
    max_context: usize,
    kv_type: KvType,
}

/// Finds tensors of a file by name and checks their shapes.
struct Tensors<'a> {
    file: &'a Arc<GgufFile>,
}

impl Tensors<'_> {
    fn index(&self, name: &str) -> Option<usize> {
        self.file.tensors.iter().position(|t| t.name == name)
    }

    fn dims(&self, name: &str, want: &[usize]) -> Result<usize> {
        let i = self
            .index(name)
            .ok_or_else(|| self.file.error(format!("tensor {name} is missing")))?;
        let got = &self.file.tensors[i].dims;
        if got.as_slice() != want {
            return Err(self.file.error(format!(
                "tensor {name} has dimensions {got:?}, expected {want:?} (ggml order, innermost \
                 first)"
            )));
        }
        Ok(i)
    }

    /// A `[cols, rows]` matrix.
    fn matrix(&self, name: &str, cols: usize, rows: usize) -> Result<QMatrix> {
        let i = self.dims(name, &[cols, rows])?;
        QMatrix::from_gguf(self.file, i)
    }

    /// A vector of `n` values, as f32.
    fn vector(&self, name: &str, n: usize) -> Result<Vec<f32>> {
        let i = self.dims(name, &[n])?;
        let t = &self.file.tensors[i];
        if !t.dtype.is_supported() {
            return Err(self
                .file
                .error(format!("tensor {name}: type {} is not supported", t.dtype)));
        }
        let mut out = vec![0f32; n];
        crate::quant::blocks::dequantize_row(t.dtype, self.file.data(t), &mut out);
        Ok(out)
    }

    fn opt_vector(&self, name: &str, n: usize) -> Result<Option<Vec<f32>>> {
        match self.index(name) {
            Some(_) => self.vector(name, n).map(Some),
            None => Ok(None),
        }
    }

    fn norm(&self, prefix: &str, n: usize) -> Result<Norm> {
        Ok(Norm {
            w: self.vector(&format!("{prefix}.weight"), n)?,
            b: self.opt_vector(&format!("{prefix}.bias"), n)?,
        })
    }
}

impl Model {
    /// Builds the decoder of `file`, checking every tensor's name, shape and type.
    pub fn load(file: &Arc<GgufFile>) -> Result<Self> {
        let cfg = Config::from_gguf(file)?;
        let t = Tensors { file };
        let (c, hd) = (cfg.embd, cfg.head_dim);
        let (q_dim, kv_dim) = (cfg.heads * hd, cfg.kv_heads * hd);
        let token_embd = t.matrix("token_embd.weight", c, cfg.vocab)?;
        let pos_embd = match cfg.arch {
            Arch::Gpt2 => Some(t.matrix("position_embd.weight", c, cfg.context)?),
            _ => None,
        };
        let mut layers = Vec::with_capacity(cfg.layers);
        for l in 0..cfg.layers {
            let p = |s: &str| format!("blk.{l}.{s}");
            let qkv = match cfg.arch {
                Arch::Gpt2 | Arch::Phi3 => {
                    Qkv::Fused(t.matrix(&p("attn_qkv.weight"), c, q_dim + 2 * kv_dim)?)
                }
                _ => Qkv::Split {
                    q: t.matrix(&p("attn_q.weight"), c, q_dim)?,
                    k: t.matrix(&p("attn_k.weight"), c, kv_dim)?,
                    v: t.matrix(&p("attn_v.weight"), c, kv_dim)?,
                },
            };
            let qkv_bias = match cfg.arch {
                Arch::Gpt2 => {
                    let b = t.vector(&p("attn_qkv.bias"), q_dim + 2 * kv_dim)?;
                    Some([
                        b[..q_dim].to_vec(),
                        b[q_dim..q_dim + kv_dim].to_vec(),
                        b[q_dim + kv_dim..].to_vec(),
                    ])
                }
                _ => match (
                    t.opt_vector(&p("attn_q.bias"), q_dim)?,
                    t.opt_vector(&p("attn_k.bias"), kv_dim)?,
                    t.opt_vector(&p("attn_v.bias"), kv_dim)?,
                ) {
                    (Some(q), Some(k), Some(v)) => Some([q, k, v]),
                    (None, None, None) => None,
                    _ => {
                        return Err(file.error(format!(
                            "layer {l}: some of attn_q/k/v have a bias and some not"
                        )));
                    }
                },
            };
            let qk_norm = match cfg.arch {
                Arch::Qwen3 => Some((
                    t.vector(&p("attn_q_norm.weight"), hd)?,
                    t.vector(&p("attn_k_norm.weight"), hd)?,
                )),
                _ => None,
            };
            let ffn = match cfg.arch {
                Arch::Gpt2 => Ffn::Plain {
                    up: t.matrix(&p("ffn_up.weight"), c, cfg.ff)?,
                    up_b: t.vector(&p("ffn_up.bias"), cfg.ff)?,
                    down: t.matrix(&p("ffn_down.weight"), cfg.ff, c)?,
                    down_b: t.vector(&p("ffn_down.bias"), c)?,
                },
                Arch::Phi3 => Ffn::FusedGated {
                    gate_up: t.matrix(&p("ffn_up.weight"), c, 2 * cfg.ff)?,
                    down: t.matrix(&p("ffn_down.weight"), cfg.ff, c)?,
                },
                _ => Ffn::Gated {
                    gate: t.matrix(&p("ffn_gate.weight"), c, cfg.ff)?,
                    up: t.matrix(&p("ffn_up.weight"), c, cfg.ff)?,
                    down: t.matrix(&p("ffn_down.weight"), cfg.ff, c)?,
                    gelu: cfg.arch == Arch::Gemma,
                },
            };
            layers.push(Layer {
                attn_norm: t.norm(&p("attn_norm"), c)?,
                qkv,
                qkv_bias,
                qk_norm,
                wo: t.matrix(&p("attn_output.weight"), q_dim, c)?,
                wo_b: t.opt_vector(&p("attn_output.bias"), c)?,
                ffn_norm: t.norm(&p("ffn_norm"), c)?,
                ffn,
            });
        }
        let out_norm = t.norm("output_norm", c)?;
        let output = match t.index("output.weight") {
            Some(_) => t.matrix("output.weight", c, cfg.vocab)?,
            None => token_embd.clone(),
        };
        let rope_factors = match &cfg.rope {
            Some(r) => t.opt_vector("rope_freqs.weight", r.dims / 2)?,
            None => None,
        };
        let max_context = cfg.context;
        Ok(Self {
            cfg,
            token_embd,
            pos_embd,
            layers,
            out_norm,
            output,
            rope_factors,
            max_context,
            kv_type: KvType::F16,
        })
    }

    /// The same model with every matrix converted to `dtype` (e.g. F32: a reference without
    /// quantized activations).
    pub fn converted(&self, dtype: crate::quant::GgmlType) -> Result<Self> {
        let conv = |m: &QMatrix| QMatrix::quantize(dtype, m.rows, m.cols, &m.dequantize());
        let mut out = self.clone();
        out.token_embd = conv(&self.token_embd)?;
        out.output = conv(&self.output)?;
        for l in &mut out.layers {
            l.qkv = match &l.qkv {
                Qkv::Split { q, k, v } => Qkv::Split {
                    q: conv(q)?,
                    k: conv(k)?,
                    v: conv(v)?,
                },
                Qkv::Fused(w) => Qkv::Fused(conv(w)?),
            };
            l.wo = conv(&l.wo)?;
            l.ffn = match &l.ffn {
                Ffn::Gated {
                    gate,
                    up,
                    down,
                    gelu,
                } => Ffn::Gated {
                    gate: conv(gate)?,
                    up: conv(up)?,
                    down: conv(down)?,
                    gelu: *gelu,
                },
                Ffn::FusedGated { gate_up, down } => Ffn::FusedGated {
                    gate_up: conv(gate_up)?,
                    down: conv(down)?,
                },
                Ffn::Plain {
                    up,
                    up_b,
                    down,
                    down_b,
                } => Ffn::Plain {
                    up: conv(up)?,
                    up_b: up_b.clone(),
                    down: conv(down)?,
                    down_b: down_b.clone(),
                },
            };
        }
        Ok(out)
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The longest sequence a cache may hold (the training context unless lowered).
    pub fn max_context(&self) -> usize {
        self.max_context
    }

    /// Caps the context (memory of the caches grows with it).
    pub fn set_max_context(&mut self, n: usize) {
        self.max_context = n.clamp(1, self.cfg.context.max(1));
    }

    /// An empty cache for one sequence.
    pub fn new_cache(&self) -> Cache {
        Cache {
            k: vec![KvVec::new(self.kv_type); self.cfg.layers],
            v: vec![KvVec::new(self.kv_type); self.cfg.layers],
            cap: 0,
            len: 0,
        }
    }

    /// The element type of new caches.
    pub fn kv_type(&self) -> KvType {
        self.kv_type
    }

    /// Sets the element type of new caches.
    pub fn set_kv_type(&mut self, t: KvType) {
        self.kv_type = t;
    }

    /// Width of the keys (and values) of one position.
    pub fn kv_dim(&self) -> usize {
        self.cfg.kv_heads * self.cfg.head_dim
    }

    /// Runs `tokens` through the decoder. Token `i` continues sequence `seqs[i]` (an index
    /// into `caches`), after that cache's positions and the earlier tokens of the same
    /// sequence in this call. Returns the logits of the tokens listed in `want`, one row of
    /// `vocab` each, in that order.
    pub fn forward(
        &self,
        tokens: &[u32],
        seqs: &[usize],
        caches: &mut [&mut Cache],
        want: &[usize],
        pool: &Pool,
    ) -> Result<Vec<f32>> {
        let cfg = &self.cfg;
        let n = tokens.len();
        if seqs.len() != n || n == 0 {
            return Err(Error::Invalid(format!(
                "{n} tokens for {} sequence indices",
                seqs.len()
            )));
        }
        if let Some(&w) = want.iter().find(|&&w| w >= n) {
            return Err(Error::Invalid(format!("logits asked for token {w} of {n}")));
        }
        // 0) positions: after each sequence's cache and its earlier tokens here.
        let mut next: Vec<usize> = caches.iter().map(|c| c.len).collect();
        let mut pos = Vec::with_capacity(n);
        for (&t, &s) in tokens.iter().zip(seqs) {
            if s >= caches.len() {
                return Err(Error::Invalid(format!(
                    "sequence {s} of {} caches",
                    caches.len()
                )));
            }
            if t as usize >= cfg.vocab {
                return Err(Error::Invalid(format!(
                    "token id {t} is outside the vocabulary of {}",
                    cfg.vocab
                )));
            }
            if next[s] >= self.max_context {
                return Err(Error::Invalid(format!(
                    "the sequence is longer than the model's context of {}",
                    self.max_context
                )));
            }
            pos.push(next[s]);
            next[s] += 1;
        }
        for (c, &len) in caches.iter_mut().zip(&next) {
            c.reserve(len, self.kv_dim());
        }
        // 1) embeddings (scaled for Gemma, plus learned positions for GPT-2).
        let c = cfg.embd;
        let mut x = vec![0f32; n * c];
        for (i, &t) in tokens.iter().enumerate() {
            let row = &mut x[i * c..(i + 1) * c];
            self.token_embd.dequantize_row(t as usize, row);
            if cfg.arch == Arch::Gemma {
                let s = (c as f32).sqrt();
                row.iter_mut().for_each(|v| *v *= s);
            }
            if let Some(pe) = &self.pos_embd {
                let mut p = vec![0f32; c];
                pe.dequantize_row(pos[i], &mut p);
                row.iter_mut().zip(&p).for_each(|(a, b)| *a += b);
            }
        }
        // 2) the blocks.
        let mut h = vec![0f32; n * c];
        for (l, layer) in self.layers.iter().enumerate() {
            // x = x + attn(norm(x))
            self.norm(&layer.attn_norm, &x, &mut h);
            let att = self.attention(l, layer, &h, &pos, seqs, caches, pool)?;
            let mut o = vec![0f32; n * c];
            matmul(&mut [(&layer.wo, &mut o)], &att, n, pool);
            if let Some(b) = &layer.wo_b {
                ops::add_bias(&mut o, b);
            }
            x.iter_mut().zip(&o).for_each(|(a, b)| *a += b);
            // x = x + mlp(norm(x))
            self.norm(&layer.ffn_norm, &x, &mut h);
            let m = self.mlp(&layer.ffn, &h, n, pool);
            x.iter_mut().zip(&m).for_each(|(a, b)| *a += b);
        }
        for (cache, len) in caches.iter_mut().zip(next) {
            cache.len = len;
        }
        // 3) final norm and the output layer, for the rows asked for.
        let mut last = vec![0f32; want.len() * c];
        for (j, &w) in want.iter().enumerate() {
            last[j * c..(j + 1) * c].copy_from_slice(&x[w * c..(w + 1) * c]);
        }
        let mut normed = vec![0f32; last.len()];
        self.norm(&self.out_norm, &last, &mut normed);
        let mut logits = vec![0f32; want.len() * cfg.vocab];
        if !want.is_empty() {
            matmul(
                &mut [(&self.output, &mut logits)],
                &normed,
                want.len(),
                pool,
            );
        }
        Ok(logits)
    }

    fn norm(&self, norm: &Norm, src: &[f32], dst: &mut [f32]) {
        match &norm.b {
            Some(b) => ops::layer_norm_into(src, dst, &norm.w, b, self.cfg.eps),
            None => ops::rms_norm_into(src, dst, &norm.w, self.cfg.eps),
        }
    }

    /// Projects `h` to queries, keys and values, stores keys and values in the caches, and
    /// returns each token's attention output (`n × heads·head_dim`).
    #[allow(clippy::too_many_arguments)]
    fn attention(
        &self,
        l: usize,
        layer: &Layer,
        h: &[f32],
        pos: &[usize],
        seqs: &[usize],
        caches: &mut [&mut Cache],
        pool: &Pool,
    ) -> Result<Vec<f32>> {
        let cfg = &self.cfg;
        let n = pos.len();
        let hd = cfg.head_dim;
        let (q_dim, kv_dim) = (cfg.heads * hd, cfg.kv_heads * hd);
        let (mut q, mut k, mut v) = (
            vec![0f32; n * q_dim],
            vec![0f32; n * kv_dim],
            vec![0f32; n * kv_dim],
        );
        match &layer.qkv {
            Qkv::Split {
                q: wq,
                k: wk,
                v: wv,
            } => {
                matmul(&mut [(wq, &mut q), (wk, &mut k), (wv, &mut v)], h, n, pool);
            }
            Qkv::Fused(w) => {
                let mut all = vec![0f32; n * (q_dim + 2 * kv_dim)];
                matmul(&mut [(w, &mut all)], h, n, pool);
                for (i, row) in all.chunks_exact(q_dim + 2 * kv_dim).enumerate() {
                    q[i * q_dim..(i + 1) * q_dim].copy_from_slice(&row[..q_dim]);
                    k[i * kv_dim..(i + 1) * kv_dim].copy_from_slice(&row[q_dim..q_dim + kv_dim]);
                    v[i * kv_dim..(i + 1) * kv_dim].copy_from_slice(&row[q_dim + kv_dim..]);
                }
            }
        }
        if let Some([bq, bk, bv]) = &layer.qkv_bias {
            ops::add_bias(&mut q, bq);
            ops::add_bias(&mut k, bk);
            ops::add_bias(&mut v, bv);
        }
        if let Some((qn, kn)) = &layer.qk_norm {
            ops::rms_norm(&mut q, qn, cfg.eps);
            ops::rms_norm(&mut k, kn, cfg.eps);
        }
        if let Some(r) = &cfg.rope {
            for i in 0..n {
                let angles = ops::rope_angles(r, self.rope_factors.as_deref(), pos[i]);
                ops::rope(&mut q[i * q_dim..(i + 1) * q_dim], hd, r, &angles);
                ops::rope(&mut k[i * kv_dim..(i + 1) * kv_dim], hd, r, &angles);
            }
        }
        for i in 0..n {
            let c = &mut caches[seqs[i]];
            let (at, cap) = (pos[i] * kv_dim, c.cap);
            for (d, &x) in k[i * kv_dim..(i + 1) * kv_dim].iter().enumerate() {
                c.k[l].set(at + d, x);
            }
            for (d, &x) in v[i * kv_dim..(i + 1) * kv_dim].iter().enumerate() {
                c.v[l].set(d * cap + pos[i], x);
            }
        }
        // Each (token, head) attends over its sequence's positions 0..=pos, with llama.cpp's
        // arithmetic: queries and probabilities rounded to f16 (keys and values are f16), and
        // the dot products of `ggml_vec_dot_f16` for one token, tinyBLAS's for a batch.
        let mut out = vec![0f32; n * q_dim];
        let group = cfg.heads / cfg.kv_heads;
        let scale = 1.0 / (hd as f32).sqrt();
        let batched = n >= 2;
        let dst = Disjoint::new(&mut out);
        let caches: &[&mut Cache] = caches;
        pool.run(n * cfg.heads, &|task| {
            let (i, head) = (task / cfg.heads, task % cfg.heads);
            let kvh = head / group;
            let cache = &caches[seqs[i]];
            let (len, cap) = (pos[i] + 1, cache.cap);
            let query = &q[i * q_dim + head * hd..i * q_dim + (head + 1) * hd];
            // SAFETY: task (i, head) alone writes this head's slice of row i.
            #[allow(unsafe_code)]
            let o = unsafe { dst.part(i * q_dim + head * hd, hd) };
            match (&cache.k[l], &cache.v[l]) {
                (KvVec::F16(keys), KvVec::F16(values)) => {
                    let qh: Vec<f16> = query.iter().map(|&v| f16::from_f32(v)).collect();
                    let mut probs: Vec<f32> = (0..len)
                        .map(|p| {
                            let key = &keys[p * kv_dim + kvh * hd..p * kv_dim + (kvh + 1) * hd];
                            let s = if batched {
                                ggml::dot_f16_tiled_h(key, &qh)
                            } else if hd.is_multiple_of(64) {
                                ggml::dot_f16_padded(key, &qh)
                            } else {
                                let f =
                                    |v: &[f16]| v.iter().map(|h| h.to_f32()).collect::<Vec<f32>>();
                                ggml::dot_f16(&f(key), &f(&qh))
                            };
                            s * scale
                        })
                        .collect();
                    ggml::softmax(&mut probs);
                    let probs: Vec<f16> = probs.iter().map(|&p| f16::from_f32(p)).collect();
                    for (d, o) in o.iter_mut().enumerate() {
                        let column = &values[(kvh * hd + d) * cap..(kvh * hd + d) * cap + len];
                        *o = if batched {
                            ggml::dot_f16_tiled_h(column, &probs)
                        } else {
                            ggml::dot_f16_padded(column, &probs)
                        };
                    }
                }
                (KvVec::F32(keys), KvVec::F32(values)) => {
                    // f32 caches: ggml_vec_dot_f32 for one token, tinyBLAS for a batch; no
                    // rounding to f16.
                    let dot = |x: &[f32], y: &[f32]| {
                        if batched {
                            ggml::dot_f16_tiled(x, y)
                        } else {
                            ggml::dot_f16(x, y)
                        }
                    };
                    let mut probs: Vec<f32> = (0..len)
                        .map(|p| {
                            dot(
                                &keys[p * kv_dim + kvh * hd..p * kv_dim + (kvh + 1) * hd],
                                query,
                            ) * scale
                        })
                        .collect();
                    ggml::softmax(&mut probs);
                    let padded = if batched { len } else { len.div_ceil(64) * 64 };
                    probs.resize(padded, 0.0);
                    let mut column = vec![0f32; padded];
                    for (d, o) in o.iter_mut().enumerate() {
                        column[..len].copy_from_slice(
                            &values[(kvh * hd + d) * cap..(kvh * hd + d) * cap + len],
                        );
                        *o = dot(&column, &probs);
                    }
                }
                _ => unreachable!("a cache's keys and values share one element type"),
            }
        });
        Ok(out)
    }

    fn mlp(&self, ffn: &Ffn, h: &[f32], n: usize, pool: &Pool) -> Vec<f32> {
        let (c, ff) = (self.cfg.embd, self.cfg.ff);
        let mut out = vec![0f32; n * c];
        match ffn {
            Ffn::Gated {
                gate,
                up,
                down,
                gelu,
            } => {
                let (mut g, mut u) = (vec![0f32; n * ff], vec![0f32; n * ff]);
                matmul(&mut [(gate, &mut g), (up, &mut u)], h, n, pool);
                if *gelu {
                    ops::geglu(&mut g, &u);
                } else {
                    ops::swiglu(&mut g, &u);
                }
                matmul(&mut [(down, &mut out)], &g, n, pool);
            }
            Ffn::FusedGated { gate_up, down } => {
                let mut gu = vec![0f32; n * 2 * ff];
                matmul(&mut [(gate_up, &mut gu)], h, n, pool);
                let mut g = vec![0f32; n * ff];
                for (i, row) in gu.chunks_exact(2 * ff).enumerate() {
                    let gi = &mut g[i * ff..(i + 1) * ff];
                    gi.copy_from_slice(&row[..ff]);
                    ops::swiglu(gi, &row[ff..]);
                }
                matmul(&mut [(down, &mut out)], &g, n, pool);
            }
            Ffn::Plain {
                up,
                up_b,
                down,
                down_b,
            } => {
                let mut u = vec![0f32; n * ff];
                matmul(&mut [(up, &mut u)], h, n, pool);
                ops::add_bias(&mut u, up_b);
                ops::gelu(&mut u);
                matmul(&mut [(down, &mut out)], &u, n, pool);
                ops::add_bias(&mut out, down_b);
            }
        }
        out
    }
}

/// Products of several matrices with the same input `x` (`n × cols`), run as one parallel
/// job; `x` is quantized once for each activation format the matrices need.
fn matmul(items: &mut [(&QMatrix, &mut [f32])], x: &[f32], n: usize, pool: &Pool) {
    let cols = x.len() / n.max(1);
    let mut acts: Vec<Acts> = Vec::new();
    for (w, _) in items.iter() {
        if !acts.iter().any(|a| a.kind() == w.act_kind()) {
            acts.push(Acts::quantize(w.act_kind(), x, cols));
        }
    }
    let mut jobs: Vec<(&QMatrix, &Acts, &mut [f32])> = items
        .iter_mut()
        .map(|(w, out)| {
            let a = acts
                .iter()
                .find(|a| a.kind() == w.act_kind())
                .unwrap_or(&acts[0]);
            (*w, a, &mut **out)
        })
        .collect();
    matmul_many(&mut jobs, pool);
}

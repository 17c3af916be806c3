//! Between the Hugging Face layout and GGUF, as llama.cpp's `convert_hf_to_gguf.py` maps
//! them: tensor names (`model.layers.3.self_attn.q_proj.weight` ↔ `blk.3.attn_q.weight`),
//! Llama's query and key rows permuted for RoPE on adjacent pairs, GPT-2's `Conv1D` weights
//! transposed, hyper-parameters in `<arch>.*` keys, and the tokenizer in `tokenizer.ggml.*`.
//!
//! - [`from_hf`]: a model directory to metadata and f32 tensors (then
//!   [`super::quantize::write_quantized`]).
//! - [`from_gguf`]: a GGUF file's tensors dequantized to f32 (re-quantizing).
//! - [`export_hf`]: a GGUF file to a model directory (dequantized), loadable by `transformers`
//!   and by duet's trainer.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::quantize::F32Tensor;
use super::read::GgufFile;
use super::value::{Metadata, Value, ValueType};
use crate::qlm::{Arch, Config as QConfig};
use crate::quant::blocks;
use crate::{Error, Result};

fn cfg_err(path: &Path, message: impl Into<String>) -> Error {
    Error::Config {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Rows of each head reordered from halves to adjacent pairs (`convert_hf_to_gguf`'s
/// `permute`): row `half·(d/2) + j` of a head goes to row `2j + half`.
fn permute_rows(w: &[f32], heads: usize, cols: usize, inverse: bool) -> Vec<f32> {
    let rows = w.len() / cols;
    let hd = rows / heads;
    let mut out = vec![0f32; w.len()];
    for h in 0..heads {
        for half in 0..2 {
            for j in 0..hd / 2 {
                let hf = h * hd + half * (hd / 2) + j;
                let gg = h * hd + 2 * j + half;
                let (src, dst) = if inverse { (gg, hf) } else { (hf, gg) };
                out[dst * cols..(dst + 1) * cols].copy_from_slice(&w[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

fn transpose(w: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; w.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = w[r * cols + c];
        }
    }
    out
}

fn s(v: &str) -> Value {
    Value::String(v.to_owned())
}

fn u32v(v: usize) -> Value {
    Value::U32(v as u32)
}

/// The tokenizer of a model directory as `tokenizer.ggml.*` metadata.
fn tokenizer_metadata(dir: &Path, md: &mut Metadata) -> Result<()> {
    let path = dir.join("tokenizer.json");
    let tj: serde_json::Value = crate::hub::read_json(&path)?;
    let model = &tj["model"];
    if model["type"] != "BPE" || model["byte_fallback"] == true {
        return Err(cfg_err(
            &path,
            "only byte-level BPE tokenizers convert (SentencePiece vocabularies need the \
             tokenizer.model that llama.cpp's converter reads)",
        ));
    }
    let vocab = model["vocab"]
        .as_object()
        .ok_or_else(|| cfg_err(&path, "model.vocab is not an object"))?;
    let mut tokens: Vec<(u32, String, i32)> = vocab
        .iter()
        .filter_map(|(t, id)| id.as_u64().map(|i| (i as u32, t.clone(), 1)))
        .collect();
    for a in tj["added_tokens"].as_array().into_iter().flatten() {
        let (Some(id), Some(content)) = (a["id"].as_u64(), a["content"].as_str()) else {
            continue;
        };
        let ty = if a["special"] == true { 3 } else { 4 };
        match tokens.iter_mut().find(|t| t.0 == id as u32) {
            Some(t) => t.2 = ty,
            None => tokens.push((id as u32, content.to_owned(), ty)),
        }
    }
    tokens.sort_by_key(|t| t.0);
    for (i, t) in tokens.iter().enumerate() {
        if t.0 as usize != i {
            return Err(cfg_err(
                &path,
                format!("token ids skip from {} to {}", i, t.0),
            ));
        }
    }
    let merges: Vec<Value> = model["merges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| match m {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Array(p) => {
                Some(format!("{} {}", p.first()?.as_str()?, p.get(1)?.as_str()?))
            }
            _ => None,
        })
        .map(Value::String)
        .collect();
    let pre = pre_tokenizer_name(&tj).ok_or_else(|| {
        cfg_err(
            &path,
            "its pre-tokenizer is none llama.cpp names (GPT-2's byte-level split, SmolLM's \
             digits then GPT-2, Llama 3's or Qwen 2's split)",
        )
    })?;
    md.insert("tokenizer.ggml.model", s("gpt2"));
    md.insert("tokenizer.ggml.pre", s(pre));
    md.insert(
        "tokenizer.ggml.tokens",
        Value::Array(ValueType::String, tokens.iter().map(|t| s(&t.1)).collect()),
    );
    md.insert(
        "tokenizer.ggml.token_type",
        Value::Array(
            ValueType::I32,
            tokens.iter().map(|t| Value::I32(t.2)).collect(),
        ),
    );
    md.insert(
        "tokenizer.ggml.merges",
        Value::Array(ValueType::String, merges),
    );
    let cfg: serde_json::Value =
        crate::hub::read_json(&dir.join("tokenizer_config.json")).unwrap_or_default();
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => {
            o.get("content").and_then(|c| c.as_str()).map(str::to_owned)
        }
        _ => None,
    };
    let id_of = |t: &str| tokens.iter().find(|x| x.1 == t).map(|x| x.0);
    if let Some(id) = text(&cfg["bos_token"]).as_deref().and_then(id_of) {
        md.insert("tokenizer.ggml.bos_token_id", Value::U32(id));
    }
    let eos = text(&cfg["eos_token"])
        .as_deref()
        .and_then(id_of)
        .or_else(|| id_of("<|endoftext|>"));
    if let Some(id) = eos {
        md.insert("tokenizer.ggml.eos_token_id", Value::U32(id));
    }
    md.insert(
        "tokenizer.ggml.add_bos_token",
        Value::Bool(cfg["add_bos_token"] == true),
    );
    let template = std::fs::read_to_string(dir.join("chat_template.jinja"))
        .ok()
        .or_else(|| cfg["chat_template"].as_str().map(str::to_owned));
    if let Some(t) = template {
        md.insert("tokenizer.chat_template", Value::String(t));
    }
    Ok(())
}

/// The `tokenizer.ggml.pre` name of a `tokenizer.json`'s pre-tokenization, if llama.cpp
/// has one for it.
fn pre_tokenizer_name(tj: &serde_json::Value) -> Option<&'static str> {
    if !tj["normalizer"].is_null() {
        return None;
    }
    let pt = &tj["pre_tokenizer"];
    let byte_level = |p: &serde_json::Value, regex: bool| {
        p["type"] == "ByteLevel" && p["use_regex"] == regex && p["add_prefix_space"] != true
    };
    if byte_level(pt, true) {
        return Some("gpt-2");
    }
    let steps = pt["pretokenizers"].as_array()?;
    match steps.as_slice() {
        [d, b]
            if d["type"] == "Digits" && d["individual_digits"] == true && byte_level(b, true) =>
        {
            Some("smollm")
        }
        [sp, b] if sp["type"] == "Split" && byte_level(b, false) => {
            let re = sp["pattern"]["Regex"].as_str()?;
            if re.contains(r"\p{N}{1,3}") {
                Some("llama-bpe")
            } else if re.contains(r"\p{N}|") {
                Some("qwen2")
            } else {
                None
            }
        }
        _ => None,
    }
}

/// A model directory (`llama`, `mistral`, `qwen2` or `gpt2`) as GGUF metadata and f32 tensors
/// with GGUF names; also the number of blocks.
pub fn from_hf(dir: &Path) -> Result<(Metadata, Vec<F32Tensor>, usize)> {
    let cfg_path = dir.join("config.json");
    let cfg = crate::gpt::Config::load(&cfg_path)?;
    let arch = match cfg.model_type.as_str() {
        "llama" | "mistral" => Arch::Llama,
        "qwen2" => Arch::Qwen2,
        "gpt2" => Arch::Gpt2,
        other => {
            return Err(cfg_err(
                &cfg_path,
                format!(
                    "model_type {other:?} does not convert to GGUF (llama, mistral, qwen2, gpt2 do)"
                ),
            ));
        }
    };
    if cfg.rope_scaling.as_ref().is_some_and(|v| !v.is_null()) {
        return Err(cfg_err(&cfg_path, "rope_scaling is not converted"));
    }
    let name = arch.name();
    let mut md = Metadata::new();
    md.insert("general.architecture", s(name));
    md.insert(
        "general.name",
        s(dir.file_name().and_then(|n| n.to_str()).unwrap_or("model")),
    );
    md.insert("general.alignment", Value::U32(32));
    let k = |key: &str| format!("{name}.{key}");
    md.insert(k("context_length"), u32v(cfg.max_position_embeddings));
    md.insert(k("embedding_length"), u32v(cfg.hidden_size));
    md.insert(k("block_count"), u32v(cfg.num_hidden_layers));
    md.insert(k("feed_forward_length"), u32v(cfg.mlp_dim()));
    md.insert(k("attention.head_count"), u32v(cfg.num_attention_heads));
    md.insert(k("attention.head_count_kv"), u32v(cfg.kv_heads()));
    if arch == Arch::Gpt2 {
        md.insert(
            k("attention.layer_norm_epsilon"),
            Value::F32(cfg.eps() as f32),
        );
    } else {
        md.insert(
            k("attention.layer_norm_rms_epsilon"),
            Value::F32(cfg.eps() as f32),
        );
        md.insert(k("rope.freq_base"), Value::F32(cfg.theta() as f32));
        md.insert(k("rope.dimension_count"), u32v(cfg.head_dim()));
        if cfg.head_dim() != cfg.hidden_size / cfg.num_attention_heads {
            md.insert(k("attention.key_length"), u32v(cfg.head_dim()));
            md.insert(k("attention.value_length"), u32v(cfg.head_dim()));
        }
    }
    tokenizer_metadata(dir, &mut md)?;
    // The tensors, by their Hugging Face names (prefixes resolved by the checkpoint).
    let dev = Device::Cpu;
    let ck = crate::hub::Checkpoint::load(dir, &dev)?;
    let stored: BTreeMap<String, Tensor> = ck
        .stored()
        .map(|(n, t)| (n.to_owned(), t.clone()))
        .collect();
    let get = |hf: &str| -> Result<(Vec<usize>, Vec<f32>)> {
        let t = stored
            .get(hf)
            .or_else(|| stored.get(&format!("model.{hf}")))
            .or_else(|| stored.get(&format!("transformer.{hf}")))
            .ok_or_else(|| cfg_err(dir, format!("tensor {hf} is missing")))?;
        Ok((
            t.dims().to_vec(),
            t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?,
        ))
    };
    let mut out = Vec::new();
    let mut push = |gguf: &str, shape: Vec<usize>, data: Vec<f32>| {
        out.push(F32Tensor {
            name: gguf.to_owned(),
            dims: shape.into_iter().rev().collect(),
            data,
        });
    };
    let (q_heads, kv_heads) = (cfg.num_attention_heads, cfg.kv_heads());
    match arch {
        Arch::Gpt2 => {
            let (sh, d) = get("wte.weight")?;
            push("token_embd.weight", sh, d);
            let (sh, d) = get("wpe.weight")?;
            push("position_embd.weight", sh, d);
            for l in 0..cfg.num_hidden_layers {
                let h = |n: &str| format!("h.{l}.{n}");
                let b = |n: &str| format!("blk.{l}.{n}");
                for (hf, gg) in [("ln_1", "attn_norm"), ("ln_2", "ffn_norm")] {
                    for p in ["weight", "bias"] {
                        let (sh, d) = get(&h(&format!("{hf}.{p}")))?;
                        push(&b(&format!("{gg}.{p}")), sh, d);
                    }
                }
                for (hf, gg) in [
                    ("attn.c_attn", "attn_qkv"),
                    ("attn.c_proj", "attn_output"),
                    ("mlp.c_fc", "ffn_up"),
                    ("mlp.c_proj", "ffn_down"),
                ] {
                    // Conv1D stores (in, out); GGUF wants rows of the output.
                    let (sh, d) = get(&h(&format!("{hf}.weight")))?;
                    push(
                        &b(&format!("{gg}.weight")),
                        vec![sh[1], sh[0]],
                        transpose(&d, sh[0], sh[1]),
                    );
                    let (sh, d) = get(&h(&format!("{hf}.bias")))?;
                    push(&b(&format!("{gg}.bias")), sh, d);
                }
            }
            for p in ["weight", "bias"] {
                let (sh, d) = get(&format!("ln_f.{p}"))?;
                push(&format!("output_norm.{p}"), sh, d);
            }
        }
        _ => {
            let (sh, d) = get("embed_tokens.weight")?;
            push("token_embd.weight", sh, d);
            for l in 0..cfg.num_hidden_layers {
                let h = |n: &str| format!("layers.{l}.{n}");
                let b = |n: &str| format!("blk.{l}.{n}");
                let (sh, d) = get(&h("input_layernorm.weight"))?;
                push(&b("attn_norm.weight"), sh, d);
                for (hf, gg, heads) in [
                    ("q_proj", "attn_q", q_heads),
                    ("k_proj", "attn_k", kv_heads),
                    ("v_proj", "attn_v", 0),
                ] {
                    let (sh, mut d) = get(&h(&format!("self_attn.{hf}.weight")))?;
                    if arch == Arch::Llama && heads > 0 {
                        d = permute_rows(&d, heads, sh[1], false);
                    }
                    push(&b(&format!("{gg}.weight")), sh, d);
                    if arch == Arch::Qwen2 {
                        let (sh, d) = get(&h(&format!("self_attn.{hf}.bias")))?;
                        push(&b(&format!("{gg}.bias")), sh, d);
                    }
                }
                let (sh, d) = get(&h("self_attn.o_proj.weight"))?;
                push(&b("attn_output.weight"), sh, d);
                let (sh, d) = get(&h("post_attention_layernorm.weight"))?;
                push(&b("ffn_norm.weight"), sh, d);
                for (hf, gg) in [
                    ("gate_proj", "ffn_gate"),
                    ("up_proj", "ffn_up"),
                    ("down_proj", "ffn_down"),
                ] {
                    let (sh, d) = get(&h(&format!("mlp.{hf}.weight")))?;
                    push(&b(&format!("{gg}.weight")), sh, d);
                }
            }
            let (sh, d) = get("norm.weight")?;
            push("output_norm.weight", sh, d);
            if !cfg.tied() {
                let (sh, d) = get("lm_head.weight")?;
                push("output.weight", sh, d);
            }
        }
    }
    Ok((md, out, cfg.num_hidden_layers))
}

/// Every tensor of a GGUF file dequantized to f32, with its metadata (for re-quantizing).
pub fn from_gguf(file: &GgufFile) -> Result<(Metadata, Vec<F32Tensor>, usize)> {
    let cfg = QConfig::from_gguf(file)?;
    let mut md = Metadata::new();
    for (k, v) in file.metadata.iter() {
        if k != "general.file_type" && k != "general.quantization_version" {
            md.insert(k.clone(), v.clone());
        }
    }
    let tensors = file
        .tensors
        .iter()
        .map(|t| {
            if !t.dtype.is_supported() {
                return Err(file.error(format!(
                    "tensor {}: type {} cannot be dequantized",
                    t.name, t.dtype
                )));
            }
            let mut data = vec![0f32; t.elements()];
            let cols = t.dims[0];
            let rb = t.dtype.row_bytes(cols).unwrap_or(0);
            for (r, row) in data.chunks_mut(cols.max(1)).enumerate() {
                blocks::dequantize_row(t.dtype, &file.data(t)[r * rb..(r + 1) * rb], row);
            }
            Ok(F32Tensor {
                name: t.name.clone(),
                dims: t.dims.clone(),
                data,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((md, tensors, cfg.layers))
}

/// Writes a GGUF decoder as a Hugging Face model directory with f32 weights: `config.json`,
/// `model.safetensors`, `tokenizer.json` (the tokenizer rebuilt from the metadata),
/// `tokenizer_config.json` with the chat template, `generation_config.json`.
pub fn export_hf(file: &GgufFile, dir: &Path) -> Result<()> {
    let cfg = QConfig::from_gguf(file)?;
    if !matches!(cfg.arch, Arch::Llama | Arch::Qwen2 | Arch::Gpt2) {
        return Err(file.error(format!(
            "exporting {} to the Hugging Face layout is not supported (llama, qwen2, gpt2 are)",
            cfg.arch.name()
        )));
    }
    let (_, tensors, _) = from_gguf(file)?;
    let by_name: BTreeMap<&str, &F32Tensor> =
        tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    let dev = Device::Cpu;
    let mut out: BTreeMap<String, Tensor> = BTreeMap::new();
    let mut put = |hf: String,
                   t: &F32Tensor,
                   data: Option<Vec<f32>>,
                   shape: Option<Vec<usize>>|
     -> Result<()> {
        let shape = shape.unwrap_or_else(|| t.dims.iter().rev().copied().collect());
        let data = data.unwrap_or_else(|| t.data.clone());
        out.insert(hf, Tensor::from_vec(data, shape, &dev)?);
        Ok(())
    };
    let need = |n: &str| {
        by_name
            .get(n)
            .copied()
            .ok_or_else(|| file.error(format!("tensor {n} is missing")))
    };
    let tied = !by_name.contains_key("output.weight");
    match cfg.arch {
        Arch::Gpt2 => {
            put(
                "transformer.wte.weight".into(),
                need("token_embd.weight")?,
                None,
                None,
            )?;
            put(
                "transformer.wpe.weight".into(),
                need("position_embd.weight")?,
                None,
                None,
            )?;
            for l in 0..cfg.layers {
                for (gg, hf) in [("attn_norm", "ln_1"), ("ffn_norm", "ln_2")] {
                    for p in ["weight", "bias"] {
                        put(
                            format!("transformer.h.{l}.{hf}.{p}"),
                            need(&format!("blk.{l}.{gg}.{p}"))?,
                            None,
                            None,
                        )?;
                    }
                }
                for (gg, hf) in [
                    ("attn_qkv", "attn.c_attn"),
                    ("attn_output", "attn.c_proj"),
                    ("ffn_up", "mlp.c_fc"),
                    ("ffn_down", "mlp.c_proj"),
                ] {
                    let w = need(&format!("blk.{l}.{gg}.weight"))?;
                    let (cols, rows) = (w.dims[0], w.dims[1]);
                    put(
                        format!("transformer.h.{l}.{hf}.weight"),
                        w,
                        Some(transpose(&w.data, rows, cols)),
                        Some(vec![cols, rows]),
                    )?;
                    put(
                        format!("transformer.h.{l}.{hf}.bias"),
                        need(&format!("blk.{l}.{gg}.bias"))?,
                        None,
                        None,
                    )?;
                }
            }
            for p in ["weight", "bias"] {
                put(
                    format!("transformer.ln_f.{p}"),
                    need(&format!("output_norm.{p}"))?,
                    None,
                    None,
                )?;
            }
        }
        _ => {
            put(
                "model.embed_tokens.weight".into(),
                need("token_embd.weight")?,
                None,
                None,
            )?;
            for l in 0..cfg.layers {
                let p = |s: &str| format!("model.layers.{l}.{s}");
                let b = |s: &str| format!("blk.{l}.{s}");
                put(
                    p("input_layernorm.weight"),
                    need(&b("attn_norm.weight"))?,
                    None,
                    None,
                )?;
                for (gg, hf, heads) in [
                    ("attn_q", "q_proj", cfg.heads),
                    ("attn_k", "k_proj", cfg.kv_heads),
                    ("attn_v", "v_proj", 0),
                ] {
                    let w = need(&b(&format!("{gg}.weight")))?;
                    let data = (cfg.arch == Arch::Llama && heads > 0)
                        .then(|| permute_rows(&w.data, heads, w.dims[0], true));
                    put(p(&format!("self_attn.{hf}.weight")), w, data, None)?;
                    if let Some(bias) = by_name.get(b(&format!("{gg}.bias")).as_str()) {
                        put(p(&format!("self_attn.{hf}.bias")), bias, None, None)?;
                    }
                }
                put(
                    p("self_attn.o_proj.weight"),
                    need(&b("attn_output.weight"))?,
                    None,
                    None,
                )?;
                put(
                    p("post_attention_layernorm.weight"),
                    need(&b("ffn_norm.weight"))?,
                    None,
                    None,
                )?;
                for (gg, hf) in [
                    ("ffn_gate", "gate_proj"),
                    ("ffn_up", "up_proj"),
                    ("ffn_down", "down_proj"),
                ] {
                    put(
                        p(&format!("mlp.{hf}.weight")),
                        need(&b(&format!("{gg}.weight")))?,
                        None,
                        None,
                    )?;
                }
            }
            put(
                "model.norm.weight".into(),
                need("output_norm.weight")?,
                None,
                None,
            )?;
            if !tied {
                put("lm_head.weight".into(), need("output.weight")?, None, None)?;
            }
        }
    }
    let special = super::tokenizer::special_tokens(&file.metadata)?;
    let rope = cfg.rope.as_ref();
    let config = match cfg.arch {
        Arch::Gpt2 => serde_json::json!({
            "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"],
            "vocab_size": cfg.vocab, "n_embd": cfg.embd, "n_layer": cfg.layers, "n_head": cfg.heads,
            "n_inner": cfg.ff, "n_positions": cfg.context, "n_ctx": cfg.context,
            "layer_norm_epsilon": cfg.eps, "activation_function": "gelu_new",
            "tie_word_embeddings": true, "bos_token_id": special.bos, "eos_token_id": special.eos,
        }),
        arch => serde_json::json!({
            "model_type": if arch == Arch::Qwen2 { "qwen2" } else { "llama" },
            "architectures": [if arch == Arch::Qwen2 { "Qwen2ForCausalLM" } else { "LlamaForCausalLM" }],
            "vocab_size": cfg.vocab, "hidden_size": cfg.embd, "num_hidden_layers": cfg.layers,
            "num_attention_heads": cfg.heads, "num_key_value_heads": cfg.kv_heads,
            "head_dim": cfg.head_dim, "intermediate_size": cfg.ff,
            "max_position_embeddings": cfg.context, "rms_norm_eps": cfg.eps,
            "rope_theta": rope.map_or(10000.0, |r| r.base), "hidden_act": "silu",
            "tie_word_embeddings": tied, "attention_bias": arch == Arch::Qwen2,
            "bos_token_id": special.bos, "eos_token_id": special.eos, "torch_dtype": "float32",
        }),
    };
    crate::hub::save_safetensors(dir, &out)?;
    crate::hub::write_json(&dir.join("config.json"), &config)?;
    let tok = super::tokenizer::from_metadata(&file.metadata)?;
    tok.save(dir.join("tokenizer.json"), false)
        .map_err(|e| Error::Tokenizer(format!("{}: {e}", dir.join("tokenizer.json").display())))?;
    let name = |id: Option<u32>| id.and_then(|i| tok.id_to_token(i));
    let mut tc = serde_json::json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": name(special.bos), "eos_token": name(special.eos),
        "add_bos_token": special.add_bos, "model_max_length": cfg.context,
    });
    if let Some(t) = file
        .metadata
        .get("tokenizer.chat_template")
        .and_then(|v| v.as_str())
    {
        tc["chat_template"] = t.into();
    }
    crate::hub::write_json(&dir.join("tokenizer_config.json"), &tc)?;
    crate::hub::write_json(
        &dir.join("generation_config.json"),
        &serde_json::json!({"bos_token_id": special.bos, "eos_token_id": special.end_of_generation}),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rope_permutation_inverts() {
        let w: Vec<f32> = (0..8 * 3).map(|v| v as f32).collect();
        let p = permute_rows(&w, 2, 3, false);
        // Head 0 rows 0..4: halves [0,1 | 2,3] → pairs [0,2,1,3].
        assert_eq!(
            &p[..12],
            &[0., 1., 2., 6., 7., 8., 3., 4., 5., 9., 10., 11.]
        );
        assert_eq!(permute_rows(&p, 2, 3, true), w);
    }
}

//! Tiny random checkpoints of every architecture duet runs from GGUF (llama with a BPE and a
//! SentencePiece vocabulary, Llama 3 RoPE scaling, mistral, qwen2, qwen3, phi3, gemma, gpt2),
//! made by `transformers` and converted by llama.cpp's own `convert_hf_to_gguf.py`
//! (`testdata/gguf/tiny/make.py`): duet's logits against `transformers`' and its greedy tokens
//! against both `transformers`' and llama.cpp's, and the GGUF tokenizers against the Hugging
//! Face ones. Also the errors a broken file gives.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use candle_core::Device;
use duet_model::generate::argmax;
use duet_model::gguf::{GgufFile, TensorBlob, encode};
use duet_model::lm::{Lm, LoadedLm};
use duet_model::qlm::KvType;

fn tiny() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/gguf/tiny")
}

fn archs() -> Result<Vec<String>> {
    let mut v: Vec<String> = std::fs::read_dir(tiny())?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("golden.json").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    Ok(v)
}

fn golden(arch: &str) -> Result<serde_json::Value> {
    let p = tiny().join(arch).join("golden.json");
    Ok(serde_json::from_str(
        &std::fs::read_to_string(&p).with_context(|| p.display().to_string())?,
    )?)
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_u64())
        .map(|x| x as u32)
        .collect()
}

/// The model of `arch` at `ty`, with caches of `kv`.
fn load(arch: &str, ty: &str, kv: KvType) -> Result<LoadedLm> {
    let mut l = LoadedLm::load(
        &tiny().join(arch).join(format!("{arch}-{ty}.gguf")),
        &Device::Cpu,
    )?;
    if let Lm::Gguf(m) = &l.lm {
        let mut m = (**m).clone();
        m.set_kv_type(kv);
        l.lm = Lm::Gguf(Arc::new(m));
    }
    Ok(l)
}

fn greedy(lm: &Lm, prompt: &[u32], n: usize) -> Result<Vec<u32>> {
    Ok(duet_model::generate::greedy(lm, prompt, n)?)
}

/// Architectures whose feed-forward uses GELU (llama.cpp's f16 lookup table).
const GELU_TABLE: [&str; 2] = ["gemma", "gpt2"];

#[test]
fn f32_files_match_transformers_logits_and_greedy_tokens() -> Result<()> {
    let names = archs()?;
    assert!(names.len() >= 8, "tiny checkpoints: {names:?}");
    for arch in &names {
        let g = golden(arch)?;
        let input = ids(&g["input_ids"]);
        let want = candle_core::safetensors::load(
            tiny().join(arch).join("golden.safetensors"),
            &Device::Cpu,
        )?;
        let want: Vec<f32> = want["logits"].flatten_all()?.to_vec1()?;
        let l = load(arch, "f32", KvType::F32)?;
        let got = l.lm.score(&input)?;
        assert_eq!(got.len(), want.len(), "{arch}: logits shape");
        let diff = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        // llama.cpp computes GELU through a table of f16 inputs even in f32
        // files, as duet does; there the bound is what llama.cpp's own f32 run
        // of the same file is from transformers (recorded in the golden file).
        let tol = if GELU_TABLE.contains(&arch.as_str()) {
            g["llama_cpp"]["f32"]["kv_f16"]["max_abs_diff_vs_transformers_per_position"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_f64())
                .fold(0f64, f64::max) as f32
                * 1.5
        } else {
            1e-4
        };
        assert!(
            diff < tol,
            "{arch}: f32 logits differ from transformers' by {diff} (bound {tol})"
        );
        let theirs = ids(&g["transformers"]["greedy_ids"]);
        assert_eq!(
            greedy(&l.lm, &input, theirs.len())?,
            theirs,
            "{arch}: greedy tokens"
        );
    }
    Ok(())
}

#[test]
fn quantized_files_continue_as_llama_cpp_does() -> Result<()> {
    let mut failures = Vec::new();
    for arch in archs()? {
        let g = golden(&arch)?;
        let input = ids(&g["input_ids"]);
        for ty in ["f16", "q8_0"] {
            let gg = &g["llama_cpp"][ty]["kv_f16"];
            let l = load(&arch, ty, KvType::F16)?;
            let mut cache = l.lm.new_cache();
            let logits = l.lm.prefill(&input, &mut cache)?;
            // llama.cpp's ten best next tokens and their logits.
            for pair in gg["last_top10"].as_array().into_iter().flatten() {
                let (id, want) = (
                    pair[0].as_u64().unwrap_or(0) as usize,
                    pair[1].as_f64().unwrap_or(0.0) as f32,
                );
                let tol = if ty == "q8_0" { 2e-3 } else { 2e-2 };
                if (logits[id] - want).abs() >= tol {
                    failures.push(format!(
                        "{arch} {ty}: token {id} at {} where llama.cpp has {want}",
                        logits[id]
                    ));
                }
            }
            let theirs = ids(&gg["greedy_ids"]);
            let mut ours = vec![argmax(&logits)];
            while ours.len() < theirs.len() {
                let l2 =
                    l.lm.decode(&[*ours.last().unwrap_or(&0)], &mut [&mut cache])?;
                ours.push(argmax(&l2));
            }
            if ours != theirs {
                failures.push(format!(
                    "{arch} {ty}: greedy tokens {ours:?}, llama.cpp's {theirs:?}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

#[test]
fn gguf_tokenizers_split_as_the_hugging_face_ones() -> Result<()> {
    for arch in archs()? {
        let g = golden(&arch)?;
        let l = load(&arch, "f32", KvType::F16)?;
        for case in g["tokenize"].as_array().into_iter().flatten() {
            let text = case["text"].as_str().unwrap_or_default();
            let want = ids(&case["llama_cpp_f32_gguf"]["add_bos_special_true"]);
            let got = l
                .tokenizer
                .encode(text, true)
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .get_ids()
                .to_vec();
            assert_eq!(got, want, "{arch}: {text:?}");
        }
    }
    Ok(())
}

/// Re-encodes `file` after `edit` changes its metadata or tensors.
fn edited(
    file: &GgufFile,
    edit: impl FnOnce(&mut duet_model::gguf::Metadata, &mut Vec<TensorBlob>),
) -> Result<Vec<u8>> {
    let mut md = file.metadata.clone();
    let mut tensors: Vec<TensorBlob> = file
        .tensors
        .iter()
        .map(|t| TensorBlob {
            name: t.name.clone(),
            dims: t.dims.clone(),
            dtype: t.dtype,
            data: file.data(t).to_vec(),
        })
        .collect();
    edit(&mut md, &mut tensors);
    Ok(encode(&md, &tensors)?)
}

fn load_err(bytes: Vec<u8>) -> String {
    let f = match GgufFile::from_bytes(Path::new("bad.gguf"), bytes) {
        Ok(f) => f,
        Err(e) => return e.to_string(),
    };
    duet_model::qlm::Model::load(&f)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
}

#[test]
fn broken_files_are_errors_that_name_the_key_or_tensor() -> Result<()> {
    let f = GgufFile::open(&tiny().join("llama-bpe/llama-bpe-q8_0.gguf"))?;
    let e = load_err(edited(&f, |md, _| {
        md.insert(
            "general.architecture",
            duet_model::gguf::Value::String("mamba".into()),
        )
    })?);
    assert!(
        e.contains("general.architecture \"mamba\" is not supported"),
        "{e}"
    );
    let e = load_err(edited(&f, |md, _| {
        md.insert(
            "llama.block_count",
            duet_model::gguf::Value::String("two".into()),
        )
    })?);
    assert!(e.contains("llama.block_count"), "{e}");
    let e = load_err(edited(&f, |_, t| {
        let q = t
            .iter_mut()
            .find(|t| t.name == "blk.0.ffn_down.weight")
            .expect("ffn_down");
        q.dims.swap(0, 1);
    })?);
    assert!(
        e.contains("tensor blk.0.ffn_down.weight has dimensions"),
        "{e}"
    );
    let e = load_err(edited(&f, |_, t| {
        let q = t
            .iter_mut()
            .find(|t| t.name == "blk.1.ffn_up.weight")
            .expect("ffn_up");
        // IQ4_NL: blocks of 32 in 18 bytes, a type duet does not compute with.
        q.dtype = duet_model::quant::GgmlType::from_u32(20).expect("IQ4_NL");
        q.data = vec![0; q.dims[1] * q.dims[0] / 32 * 18];
    })?);
    assert!(
        e.contains("tensor blk.1.ffn_up.weight: type IQ4_NL is not supported"),
        "{e}"
    );
    let e = load_err(edited(&f, |_, t| {
        t.retain(|t| t.name != "output_norm.weight")
    })?);
    assert!(e.contains("tensor output_norm.weight is missing"), "{e}");
    // Random bytes after a valid magic number.
    let mut junk = b"GGUF\x03\x00\x00\x00".to_vec();
    junk.extend((0..4000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    let e = load_err(junk);
    assert!(e.starts_with("bad.gguf: "), "{e}");
    Ok(())
}

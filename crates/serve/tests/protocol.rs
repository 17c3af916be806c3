//! OpenAI protocol details that clients rely on, each a regression test of a defect seen with
//! real clients: fresh seeds when none is given (and the seed that reproduces a choice), token
//! ids outside the vocabulary refused, prompt scoring with `echo`, and served embeddings that
//! are the sentence embedder's own.

mod util;

use anyhow::Result;
use axum::body::Body;
use axum::http::StatusCode;
use duet_serve::engine::EngineConfig;
use serde_json::{Value, json};
use util::{chat, post, send, server};

/// POSTs and also returns the `x-duet-seed` header.
async fn post_seeded(app: &axum::Router, path: &str, body: Value) -> Result<(Value, String)> {
    let (st, headers, v) = send(app, "POST", path, Body::from(body.to_string()), None).await?;
    assert_eq!(st, StatusCode::OK, "{v}");
    let seeds = headers
        .get("x-duet-seed")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Ok((v, seeds))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_without_a_seed_differs_and_its_recorded_seed_reproduces_it() -> Result<()> {
    let s = server(vec![], EngineConfig::default())?;
    let body = chat("the cat", json!({"temperature": 1.0, "max_tokens": 16}));
    let (a, seed_a) = post_seeded(&s.app, "/v1/chat/completions", body.clone()).await?;
    let (b, seed_b) = post_seeded(&s.app, "/v1/chat/completions", body.clone()).await?;
    // Two draws of 16 tokens from a random tiny model: equal only if the seed is fixed.
    assert_ne!(seed_a, seed_b);
    assert_ne!(
        a["choices"][0]["message"]["content"],
        b["choices"][0]["message"]["content"]
    );
    let fp = a["system_fingerprint"].as_str().unwrap_or_default();
    assert!(fp.starts_with("fp_") && fp.len() == 15, "{fp}");
    assert_eq!(a["system_fingerprint"], b["system_fingerprint"]);
    // The recorded seed, sent back, gives the same text.
    let mut again = body.clone();
    again["seed"] = json!(seed_a.parse::<u64>()?);
    let (c, seed_c) = post_seeded(&s.app, "/v1/chat/completions", again).await?;
    assert_eq!(seed_c, seed_a);
    assert_eq!(
        c["choices"][0]["message"]["content"],
        a["choices"][0]["message"]["content"]
    );
    // n choices without a seed differ from each other too; with a seed, choice i uses seed + i.
    let mut n3 = body.clone();
    n3["n"] = json!(3);
    let (v, seeds) = post_seeded(&s.app, "/v1/chat/completions", n3.clone()).await?;
    let texts: Vec<&Value> = (0..3)
        .map(|i| &v["choices"][i]["message"]["content"])
        .collect();
    assert!(texts[0] != texts[1] && texts[1] != texts[2], "{texts:?}");
    assert_eq!(seeds.split(',').count(), 3);
    n3["seed"] = json!(41);
    let (_, seeds) = post_seeded(&s.app, "/v1/chat/completions", n3).await?;
    assert_eq!(seeds, "41,42,43");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedding_token_ids_outside_the_vocabulary_are_refused() -> Result<()> {
    let s = server(vec![], EngineConfig::default())?;
    for (input, field) in [
        (json!([[100000, 5]]), "input[0]"),
        (json!([[5], [99999999]]), "input[1]"),
        (json!([99999999]), "input"),
    ] {
        let (st, v) = post(
            &s.app,
            "/v1/embeddings",
            json!({"model": "bert", "input": input}),
        )
        .await?;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{input}: {v}");
        assert_eq!(v["error"]["param"], field, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("outside the vocabulary")),
            "{v}"
        );
    }
    let (st, v) = post(
        &s.app,
        "/v1/embeddings",
        json!({"model": "bert", "input": [[5, 6]]}),
    )
    .await?;
    assert_eq!(st, StatusCode::OK, "{v}");
    Ok(())
}

/// The legacy `logprobs` of the one choice of a completion.
fn token_logprobs(v: &Value) -> Vec<Option<f64>> {
    v["choices"][0]["logprobs"]["token_logprobs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(Value::as_f64)
        .collect()
}

/// log p(ids[i] | ids[..i]) for i >= 1, computed here from the model's logits.
fn direct_logprobs(s: &util::Server, ids: &[u32]) -> Result<Vec<f64>> {
    let lm = duet_model::lm::LoadedLm::load(&s.dir().join("llama"), &candle_core::Device::Cpu)?.lm;
    let logits = lm.score(ids)?;
    let vocab = lm.vocab();
    Ok((1..ids.len())
        .map(|i| {
            let row = &logits[(i - 1) * vocab..i * vocab];
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let lse = max + row.iter().map(|&x| (x - max).exp()).sum::<f32>().ln();
            f64::from(row[ids[i] as usize] - lse)
        })
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_with_logprobs_scores_the_prompt_and_max_tokens_zero_only_scores() -> Result<()> {
    let s = server(vec![], EngineConfig::default())?;
    let ids = [5u32, 17, 42, 9, 120];
    let want = direct_logprobs(&s, &ids)?;
    // Scoring only: the prompt back, each token's log-probability under the ones before it.
    let (scored, _) = post_seeded(
        &s.app,
        "/v1/completions",
        json!({"model": "llama", "prompt": ids, "max_tokens": 0, "echo": true, "logprobs": 2}),
    )
    .await?;
    let got = token_logprobs(&scored);
    assert_eq!(got.len(), ids.len(), "{scored}");
    assert_eq!(got[0], None);
    for (g, w) in got[1..].iter().zip(&want) {
        assert!(
            g.is_some_and(|g| (g - w).abs() < 1e-4),
            "{got:?} vs {want:?}"
        );
    }
    let lp = &scored["choices"][0]["logprobs"];
    assert!(lp["top_logprobs"][0].is_null());
    assert_eq!(lp["top_logprobs"][1].as_object().map(|o| o.len()), Some(2));
    assert_eq!(scored["usage"]["completion_tokens"], 0);
    assert_eq!(scored["choices"][0]["finish_reason"], "length");
    // With generation: the prompt's entries, then the generated tokens'.
    let (one, _) = post_seeded(
        &s.app,
        "/v1/completions",
        json!({"model": "llama", "prompt": ids, "max_tokens": 2, "temperature": 0,
               "echo": true, "logprobs": 1}),
    )
    .await?;
    let both = token_logprobs(&one);
    assert_eq!(both.len(), ids.len() + 2, "{one}");
    assert_eq!(&both[..ids.len()], &got[..], "{one}");
    // Streamed, the echoed prompt comes with its log-probabilities.
    let (st, _, text) = send(
        &s.app,
        "POST",
        "/v1/completions",
        Body::from(
            json!({"model": "llama", "prompt": ids, "max_tokens": 0, "echo": true,
                   "logprobs": 0, "stream": true})
            .to_string(),
        ),
        None,
    )
    .await?;
    assert_eq!(st, StatusCode::OK);
    let first: Value = text
        .as_str()
        .and_then(|t| t.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(serde_json::from_str)
        .transpose()?
        .unwrap_or_default();
    assert_eq!(
        first["choices"][0]["logprobs"]["token_logprobs"]
            .as_array()
            .map(Vec::len),
        Some(ids.len()),
        "{first}"
    );
    // max_tokens 0 needs echo; chat needs at least one token.
    let (st, v) = post(
        &s.app,
        "/v1/completions",
        json!({"model": "llama", "prompt": "the cat", "max_tokens": 0}),
    )
    .await?;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["param"], "max_tokens");
    let (st, v) = post(
        &s.app,
        "/v1/chat/completions",
        chat("the cat", json!({"max_tokens": 0})),
    )
    .await?;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_embeddings_are_the_sentence_embedders() -> Result<()> {
    let s = server(vec![], EngineConfig::default())?;
    let texts = ["the cat sat on the mat", "a dog", "the end of the story"];
    let (st, v) = post(
        &s.app,
        "/v1/embeddings",
        json!({"model": "bert", "input": texts}),
    )
    .await?;
    assert_eq!(st, StatusCode::OK, "{v}");
    let local = duet_model::embed::SentenceEmbedder::load(
        &s.dir().join("bert"),
        &candle_core::Device::Cpu,
    )?;
    let want = local.embed(&texts, 32)?;
    for (i, w) in want.iter().enumerate() {
        let got: Vec<f32> = serde_json::from_value(v["data"][i]["embedding"].clone())?;
        assert_eq!(got.len(), w.len());
        let worst = got
            .iter()
            .zip(w)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst <= 1e-6, "input {i}: {worst}");
    }
    Ok(())
}

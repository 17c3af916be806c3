//! The prefix cache: a conversation whose turns share a long system prompt answers the same
//! with the cache on and off (tokens and log-probabilities), and the cache is used.

mod util;

use anyhow::{Result, anyhow};
use axum::body::Body;
use axum::http::StatusCode;
use duet_serve::engine::EngineConfig;
use serde_json::{Value, json};
use util::{call, post, server};

/// `duet_prefix_cache_<name>_total` from `/metrics`.
async fn counter(app: &axum::Router, name: &str) -> Result<u64> {
    let (_, m) = call(app, "GET", "/metrics", Body::empty(), None).await?;
    let key = format!("duet_prefix_cache_{name}_total ");
    m.as_str()
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| anyhow!("no {key} in /metrics"))
}

/// Runs a 4-turn conversation (each answer fed back), greedy with log-probabilities; the
/// answers and their log-probabilities.
async fn conversation(app: &axum::Router) -> Result<Vec<(Value, Value)>> {
    let system = "the cat sat on the mat and a dog and a cat ".repeat(12);
    let mut messages = vec![json!({"role": "system", "content": system})];
    let mut out = Vec::new();
    for user in ["the cat", "a dog", "the end of the story", "the mat"] {
        messages.push(json!({"role": "user", "content": user}));
        let (st, v) = post(
            app,
            "/v1/chat/completions",
            json!({"model": "llama", "messages": messages, "max_tokens": 12, "temperature": 0,
                   "logprobs": true}),
        )
        .await?;
        assert_eq!(st, StatusCode::OK, "{v}");
        let answer = v["choices"][0]["message"]["content"].clone();
        messages.push(json!({"role": "assistant", "content": answer}));
        out.push((answer, v["choices"][0]["logprobs"]["content"].clone()));
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_answers_the_same_with_the_prefix_cache_on_and_off() -> Result<()> {
    let on = server(vec![], EngineConfig::default())?;
    let off = server(
        vec![],
        EngineConfig {
            prefix_cache_bytes: 0,
            ..EngineConfig::default()
        },
    )?;
    let with = conversation(&on.app).await?;
    let without = conversation(&off.app).await?;
    for (turn, ((a, la), (b, lb))) in with.iter().zip(&without).enumerate() {
        assert_eq!(a, b, "turn {turn}");
        let (la, lb) = (la.as_array(), lb.as_array());
        assert_eq!(la.map(Vec::len), lb.map(Vec::len), "turn {turn}");
        for (x, y) in la.into_iter().flatten().zip(lb.into_iter().flatten()) {
            assert_eq!(x["token"], y["token"], "turn {turn}");
            let (x, y) = (x["logprob"].as_f64(), y["logprob"].as_f64());
            assert!(
                x.zip(y).is_some_and(|(x, y)| (x - y).abs() < 1e-4),
                "turn {turn}: {x:?} vs {y:?}"
            );
        }
    }
    // Every turn after the first starts with the system prompt and the turns before it.
    assert!(counter(&on.app, "hits").await? >= 3);
    // Another conversation's first turn shares only the system prompt: it is found too.
    let before = counter(&on.app, "tokens").await?;
    let system = "the cat sat on the mat and a dog and a cat ".repeat(12);
    let (st, v) = post(
        &on.app,
        "/v1/chat/completions",
        json!({"model": "llama", "max_tokens": 2, "messages": [
            {"role": "system", "content": system}, {"role": "user", "content": "something else"}]}),
    )
    .await?;
    assert_eq!(st, StatusCode::OK, "{v}");
    let reused = counter(&on.app, "tokens").await? - before;
    let prompt = v["usage"]["prompt_tokens"].as_u64().unwrap_or(0);
    assert!(reused >= 64 && reused < prompt, "{reused} of {prompt}");
    assert!(counter(&on.app, "tokens").await? > 3 * 32);
    assert_eq!(counter(&off.app, "hits").await?, 0);
    Ok(())
}

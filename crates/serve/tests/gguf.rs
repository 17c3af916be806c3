//! GGUF models behind the OpenAI API: a tiny converted checkpoint, and — when
//! `scripts/fetch-data.sh smollm2` has fetched it — SmolLM2-135M-Instruct, whose served greedy
//! answer must be llama.cpp's own greedy continuation (`testdata/gguf/smollm2/golden.jsonl`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use duet_serve::ServeConfig;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

async fn post(app: &axum::Router, path: &str, body: Value) -> Result<(StatusCode, Value)> {
    let req = Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))?;
    let resp = app.clone().oneshot(req).await?;
    let status = resp.status();
    let bytes = resp.into_body().collect().await?.to_bytes();
    Ok((status, serde_json::from_slice(&bytes)?))
}

fn app(models: Vec<(String, PathBuf)>) -> Result<axum::Router> {
    let state = duet_serve::load(&ServeConfig {
        models,
        request_timeout: Duration::from_secs(120),
        blocking_jobs: 2,
        ..ServeConfig::default()
    })?;
    Ok(duet_serve::router(state))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gguf_model_serves_completions_and_chats() -> Result<()> {
    let file = root().join("testdata/gguf/tiny/llama-bpe/llama-bpe-q8_0.gguf");
    let app = app(vec![("tiny".into(), file.clone())])?;
    let (st, v) = post(
        &app,
        "/v1/completions",
        json!({"model": "tiny", "prompt": "Hello world", "max_tokens": 6, "temperature": 0}),
    )
    .await?;
    assert_eq!(st, StatusCode::OK, "{v}");
    let served = v["choices"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(v["usage"]["completion_tokens"], 6, "{v}");
    // The same greedy tokens as duet's own generation on the file.
    let loaded = duet_model::lm::LoadedLm::load(&file, &candle_core::Device::Cpu)?;
    let ids = loaded
        .tokenizer
        .encode("Hello world", true)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .get_ids()
        .to_vec();
    let want = duet_model::generate::greedy(&loaded.lm, &ids, 6)?;
    assert_eq!(
        served,
        loaded
            .tokenizer
            .decode(&want, false)
            .map_err(|e| anyhow::anyhow!("{e}"))?
    );
    let (st, v) = post(
        &app,
        "/v1/chat/completions",
        json!({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}),
    )
    .await?;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["object"], "chat.completion");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smollm2_answers_a_chat_as_llama_cpp_does() -> Result<()> {
    let file = root().join("data/external/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    if !file.is_file() {
        eprintln!("skipped: run scripts/fetch-data.sh smollm2");
        return Ok(());
    }
    let prompts = std::fs::read_to_string(root().join("testdata/gguf/smollm2/prompts.jsonl"))?;
    let golden = std::fs::read_to_string(root().join("testdata/gguf/smollm2/golden.jsonl"))?;
    let app = app(vec![("smollm2".into(), file)])?;
    let mut checked = 0;
    for (p, g) in prompts.lines().zip(golden.lines()) {
        let (p, g): (Value, Value) = (serde_json::from_str(p)?, serde_json::from_str(g)?);
        // Continuations that end with an end-of-generation token are whole answers.
        let ids = g["greedy_ids"].as_array().cloned().unwrap_or_default();
        if ids
            .last()
            .and_then(|v| v.as_u64())
            .is_none_or(|t| ![0, 2, 4].contains(&t))
        {
            continue;
        }
        let (st, v) = post(
            &app,
            "/v1/chat/completions",
            json!({"model": "smollm2", "messages": p["messages"], "max_tokens": 32, "temperature": 0}),
        )
        .await?;
        assert_eq!(st, StatusCode::OK, "{v}");
        let want = g["greedy_text"].as_str().unwrap_or_default();
        let want = want
            .trim_end_matches("<|im_end|>")
            .trim_end_matches("<|endoftext|>");
        assert_eq!(
            v["choices"][0]["message"]["content"]
                .as_str()
                .unwrap_or_default(),
            want,
            "{}",
            g["id"]
        );
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        checked += 1;
        if checked == 4 {
            break;
        }
    }
    assert_eq!(checked, 4, "answers checked");
    Ok(())
}

/// A weather lookup, an order status and a calculator, as an assistant would offer them.
fn assistant_tools() -> Value {
    json!([
        {"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}}},
        {"type": "function", "function": {"name": "order_status", "description": "The delivery status of an order",
            "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}}},
        {"type": "function", "function": {"name": "calculate", "description": "Evaluate an arithmetic expression",
            "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]}}}
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smollm2_forced_tool_calls_parse_and_carry_their_required_arguments() -> Result<()> {
    let file = root().join("data/external/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    if !file.is_file() {
        eprintln!("skipped: run scripts/fetch-data.sh smollm2");
        return Ok(());
    }
    let app = app(vec![("smollm2".into(), file)])?;
    let tools = assistant_tools();
    let questions = [
        "What's the weather in Paris?",
        "Where is my order A-1043?",
        "What is 17 times 23?",
        "Is it cold in Oslo today?",
        "Has order 99812 shipped yet?",
    ];
    let mut called = 0;
    let n = 10u64;
    for seed in 0..n {
        let q = questions[seed as usize % questions.len()];
        let (st, v) = post(
            &app,
            "/v1/chat/completions",
            json!({"model": "smollm2", "messages": [{"role": "user", "content": q}], "tools": tools,
                   "tool_choice": "required", "temperature": 0.7, "seed": seed, "max_tokens": 96,
                   "parallel_tool_calls": false}),
        )
        .await?;
        assert_eq!(st, StatusCode::OK, "{v}");
        let choice = &v["choices"][0];
        if choice["finish_reason"] != "tool_calls" {
            // Only running out of tokens inside an argument string stops a forced call.
            assert_eq!(choice["finish_reason"], "length", "{q}: {v}");
            eprintln!(
                "{q} (seed {seed}): no call within 96 tokens: {}",
                choice["message"]["content"]
            );
            continue;
        }
        let call = &choice["message"]["tool_calls"][0]["function"];
        let name = call["name"].as_str().unwrap_or_default();
        let spec = tools
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["function"]["name"] == name)
            .unwrap_or_else(|| panic!("{q}: no such function: {v}"));
        let args: serde_json::Map<String, Value> = call["arguments"]
            .as_str()
            .and_then(|a| serde_json::from_str(a).ok())
            .unwrap_or_else(|| panic!("{q}: arguments are not an object: {v}"));
        for r in spec["function"]["parameters"]["required"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let r = r.as_str().unwrap_or_default();
            assert!(args.get(r).is_some_and(Value::is_string), "{q}: {r}: {v}");
        }
        eprintln!("{q} (seed {seed}): {name} {}", call["arguments"]);
        called += 1;
    }
    // How many finish is the model's skill (5 of 10 when written, on an Intel Xeon); that
    // every call returned is whole and valid is the grammar's doing.
    eprintln!("{called} of {n} forced requests returned a call");
    assert!(called > 0, "no call in {n} forced requests");
    Ok(())
}

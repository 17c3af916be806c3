//! What the serve crate's integration tests share: tiny models in a temporary directory, a
//! server over them in process, and requests to it.

// Each test file builds this module on its own and uses a part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, anyhow};
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use duet_serve::api::Limits;
use duet_serve::engine::EngineConfig;
use duet_serve::{AppState, ServeConfig};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A tokenizer trained on a few sentences, saved into `dir`.
fn tokenizer(dir: &Path, kind: duet_tokenizer::Kind) -> Result<()> {
    let texts = [
        "the cat sat on the mat",
        "a dog and a cat",
        "the end of the story",
    ]
    .repeat(20);
    let tok = duet_tokenizer::train(texts.iter(), &duet_tokenizer::TrainOptions::new(kind, 300))?;
    tok.save(dir.join("tokenizer.json"), false)
        .map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

/// A decoder (the tiny Llama, 1024 positions), an embedder and a TF-IDF classifier.
pub fn models(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let llama = dir.join("llama");
    std::fs::create_dir_all(&llama)?;
    for f in ["config.json", "model.safetensors", "generation_config.json"] {
        std::fs::copy(
            root().join("testdata/model/tiny-llama").join(f),
            llama.join(f),
        )?;
    }
    // A long context, so that a stream (with `ignore_eos`) runs long enough to be left mid-way.
    // The end token of the tokenizer trained here (the fixture's id 2 is `"` in it).
    let cfg = std::fs::read_to_string(llama.join("config.json"))?
        .replace(
            "\"max_position_embeddings\": 64",
            "\"max_position_embeddings\": 1024",
        )
        .replace("\"eos_token_id\": 2", "\"eos_token_id\": 0");
    std::fs::write(llama.join("config.json"), cfg)?;
    tokenizer(&llama, duet_tokenizer::Kind::Bpe)?;
    let bert = dir.join("bert");
    std::fs::create_dir_all(&bert)?;
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(
            root().join("testdata/model/tiny-bert-mlm").join(f),
            bert.join(f),
        )?;
    }
    tokenizer(&bert, duet_tokenizer::Kind::Wordpiece)?;
    let cls = dir.join("cls");
    let texts = [
        "free prize call now",
        "win cash now",
        "see you at lunch",
        "meet at home",
    ];
    let labels = vec!["ham".to_owned(), "spam".to_owned()];
    let m = duet_train::classify::tfidf::fit(
        &duet_model::predict::tfidf::TfidfConfig::default(),
        &texts,
        &[1, 1, 0, 0],
        &labels,
    )?;
    m.save(&cls)?;
    Ok(vec![
        ("llama".into(), llama),
        ("bert".into(), bert),
        ("cls".into(), cls),
    ])
}

/// A server in process and the directory of its models.
pub struct Server {
    pub state: Arc<AppState>,
    pub app: axum::Router,
    dir: tempfile::TempDir,
}

impl Server {
    /// Where the models are (`llama/`, `bert/`, `cls/`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// A server over the tiny models, with these API keys and engine settings.
pub fn server(keys: Vec<String>, engine: EngineConfig) -> Result<Server> {
    let dir = tempfile::tempdir()?;
    let cfg = ServeConfig {
        models: models(dir.path())?,
        limits: Limits {
            max_body: 256 << 10,
            ..Limits::default()
        },
        engine,
        request_timeout: Duration::from_secs(60),
        api_keys: keys,
        blocking_jobs: 2,
        ..ServeConfig::default()
    };
    let state = duet_serve::load(&cfg)?;
    Ok(Server {
        app: duet_serve::router(state.clone()),
        state,
        dir,
    })
}

/// Sends a request; the status and body.
pub async fn call(
    app: &axum::Router,
    method: &str,
    path: &str,
    body: Body,
    key: Option<&str>,
) -> Result<(StatusCode, Value)> {
    let (status, _, v) = send(app, method, path, body, key).await?;
    Ok((status, v))
}

/// Sends a request; the status, headers and body (JSON, or the text as a JSON string).
pub async fn send(
    app: &axum::Router,
    method: &str,
    path: &str,
    body: Body,
    key: Option<&str>,
) -> Result<(StatusCode, HeaderMap, Value)> {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json");
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    let resp = app.clone().oneshot(req.body(body)?).await?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await?.to_bytes();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Ok((status, headers, v))
}

/// POSTs JSON; the status and body.
pub async fn post(app: &axum::Router, path: &str, body: Value) -> Result<(StatusCode, Value)> {
    call(app, "POST", path, Body::from(body.to_string()), None).await
}

/// A chat request to the tiny Llama (greedy, 5 tokens) with `extra` fields.
pub fn chat(content: &str, extra: Value) -> Value {
    let mut v = json!({"model": "llama", "messages": [{"role": "user", "content": content}], "max_tokens": 5, "temperature": 0});
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    v
}

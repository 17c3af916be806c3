//! The server end to end, in process: tiny models, real routes, real engine threads.

mod util;

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use duet_serve::engine::EngineConfig;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use util::{call, chat, post, server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_chat_completions_embeddings_and_classify() -> Result<()> {
    let s = server(vec![], EngineConfig::default())?;
    let (st, v) = call(&s.app, "GET", "/v1/models", Body::empty(), None).await?;
    assert_eq!(st, StatusCode::OK);
    let ids: Vec<&str> = v["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, ["bert", "cls", "llama"]);

    let (st, v) = post(&s.app, "/v1/chat/completions", chat("the cat", json!({}))).await?;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(v["usage"]["completion_tokens"], 5);
    let usage = &v["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(usage["prompt_tokens"].as_u64().unwrap_or(0) + 5)
    );
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    // Greedy is deterministic; n choices with a seed are each reproducible.
    let (_, again) = post(&s.app, "/v1/chat/completions", chat("the cat", json!({}))).await?;
    assert_eq!(again["choices"][0]["message"], v["choices"][0]["message"]);
    let body = chat(
        "the cat",
        json!({"n": 3, "temperature": 1.0, "seed": 7, "logprobs": true, "top_logprobs": 2}),
    );
    let (st, a) = post(&s.app, "/v1/chat/completions", body.clone()).await?;
    assert_eq!(st, StatusCode::OK, "{a}");
    let (_, b) = post(&s.app, "/v1/chat/completions", body).await?;
    assert_eq!(a["choices"].as_array().map(Vec::len), Some(3));
    assert_eq!(a["choices"], b["choices"]);
    let lp = &a["choices"][0]["logprobs"]["content"];
    assert_eq!(lp.as_array().map(Vec::len), Some(5), "{lp}");
    assert_eq!(lp[0]["top_logprobs"].as_array().map(Vec::len), Some(2));
    assert!(lp[0]["logprob"].as_f64().is_some_and(|x| x <= 0.0));

    let (st, v) = post(&s.app, "/v1/completions", json!({"model": "llama", "prompt": ["the cat", "a dog"], "max_tokens": 3, "temperature": 0, "echo": true, "logprobs": 1})).await?;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["choices"].as_array().map(Vec::len), Some(2));
    assert!(
        v["choices"][1]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("a dog")),
        "{v}"
    );
    // With echo, the prompt's tokens come first (the first without a log-probability), then
    // the three generated ones; offsets count from the start of the text.
    let prompt_tokens = v["usage"]["prompt_tokens"].as_u64().unwrap_or(0) as usize / 2;
    let lp = &v["choices"][0]["logprobs"];
    assert_eq!(
        lp["tokens"].as_array().map(Vec::len),
        Some(prompt_tokens + 3),
        "{v}"
    );
    assert!(lp["token_logprobs"][0].is_null(), "{v}");
    assert_eq!(lp["text_offset"][0], 0);
    let prompt_len = "the cat".len() as u64;
    assert!(
        lp["text_offset"][prompt_tokens]
            .as_u64()
            .is_some_and(|o| o >= prompt_len),
        "{v}"
    );

    let (st, v) = post(
        &s.app,
        "/v1/embeddings",
        json!({"model": "bert", "input": ["the cat", "a dog"]}),
    )
    .await?;
    assert_eq!(st, StatusCode::OK, "{v}");
    let e: Vec<f64> = serde_json::from_value(v["data"][1]["embedding"].clone())?;
    assert_eq!(e.len(), 32);
    assert!(e.iter().all(|x| x.is_finite()));
    assert!(v["usage"]["prompt_tokens"].as_u64().is_some_and(|n| n > 0));
    let (st, v) = post(
        &s.app,
        "/v1/embeddings",
        json!({"model": "bert", "input": "the cat", "encoding_format": "base64", "dimensions": 8}),
    )
    .await?;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert!(
        v["data"][0]["embedding"]
            .as_str()
            .is_some_and(|b| b.len() == 44),
        "{v}"
    );

    let (st, v) = post(
        &s.app,
        "/v1/classify",
        json!({"model": "cls", "input": ["win a free prize", "lunch at home"]}),
    )
    .await?;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["data"][0]["label"], "spam");
    assert_eq!(v["data"][1]["label"], "ham");

    // Structured output: the schema is followed to the end.
    let schema = json!({"type": "object", "properties": {"ok": {"type": "boolean"}, "n": {"type": "integer", "minimum": 0, "maximum": 9}}, "required": ["ok", "n"], "additionalProperties": false});
    for seed in 0..3 {
        let body = chat(
            "the cat",
            json!({"max_tokens": 40, "temperature": 1.0, "seed": seed, "response_format": {"type": "json_schema", "json_schema": {"name": "t", "schema": schema}}}),
        );
        let (st, v) = post(&s.app, "/v1/chat/completions", body).await?;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["choices"][0]["finish_reason"], "stop", "{v}");
        let out: Value = serde_json::from_str(
            v["choices"][0]["message"]["content"]
                .as_str()
                .unwrap_or_default(),
        )
        .map_err(|e| anyhow!("{e}: {v}"))?;
        assert!(
            out["ok"].is_boolean() && out["n"].as_u64().is_some_and(|n| n <= 9),
            "{out}"
        );
        assert_eq!(out.as_object().map(|o| o.len()), Some(2), "{out}");
    }
    // duet's /v1/extract: JSON under the same schema, and keywords (re-ranked by an encoder).
    let (st, v) = post(
        &s.app,
        "/v1/extract",
        json!({"task": "json", "model": "llama", "schema": schema, "input": ["the cat", "a dog"], "max_tokens": 40}),
    )
    .await?;
    assert_eq!(st, StatusCode::OK, "{v}");
    for i in 0..2 {
        let out = &v["data"][i]["json"];
        assert!(
            out["ok"].is_boolean() && out["n"].as_u64().is_some_and(|n| n <= 9),
            "{v}"
        );
    }
    let text = "Kaggle hosts data science competitions. Google is acquiring Kaggle, the data science community.";
    for model in [Value::Null, json!("bert")] {
        let (st, v) = post(
            &s.app,
            "/v1/extract",
            json!({"task": "keywords", "model": model, "input": text, "top": 3}),
        )
        .await?;
        assert_eq!(st, StatusCode::OK, "{v}");
        let k = v["data"][0]["keywords"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(k.len(), 3, "{v}");
        // Every keyword is a phrase of the text. Which ones rank first with the tiny random
        // encoder depends on its tokenizer (trained here, not byte-for-byte stable), so only the
        // statistical ranking is held to finding "Kaggle".
        assert!(
            k.iter()
                .all(|k| k["keyword"].as_str().is_some_and(|w| text.contains(w))),
            "{v}"
        );
        if model.is_null() {
            assert!(
                k.iter()
                    .any(|k| k["keyword"].as_str().is_some_and(|w| w.contains("Kaggle"))),
                "{v}"
            );
        }
    }
    for (body, param) in [
        (json!({"task": "summary", "input": "x"}), "task"),
        (
            json!({"task": "json", "model": "llama", "input": "x"}),
            "schema",
        ),
        (
            json!({"task": "keywords", "model": "cls", "input": "x"}),
            "model",
        ),
        (json!({"task": "keywords", "input": []}), "input"),
    ] {
        let (st, v) = post(&s.app, "/v1/extract", body.clone()).await?;
        assert!(st.is_client_error(), "{body}: {st} {v}");
        assert!(v["error"]["message"].is_string(), "{v}");
        if st == StatusCode::BAD_REQUEST && param != "model" {
            assert_eq!(v["error"]["param"], param, "{v}");
        }
    }
    let body = json!({"model": "llama", "prompt": "the", "max_tokens": 40, "temperature": 1.0, "response_format": {"type": "json_object"}});
    let (st, v) = post(&s.app, "/v1/completions", body).await?;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert!(
        v["choices"][0]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with('{')),
        "{v}"
    );
    let bad = chat(
        "x",
        json!({"response_format": {"type": "json_schema", "json_schema": {"name": "t", "schema": {"type": "bogus"}}}}),
    );
    let (st, v) = post(&s.app, "/v1/chat/completions", bad).await?;
    assert_eq!(
        (st, &v["error"]["param"]),
        (StatusCode::BAD_REQUEST, &json!("response_format")),
        "{v}"
    );

    let (st, v) = call(&s.app, "GET", "/health", Body::empty(), None).await?;
    assert_eq!((st, &v["status"]), (StatusCode::OK, &json!("ok")));
    let (_, m) = call(&s.app, "GET", "/metrics", Body::empty(), None).await?;
    let m = m.as_str().unwrap_or_default().to_owned();
    for name in [
        "duet_requests_total",
        "duet_time_to_first_token_seconds",
        "duet_generated_tokens_total",
        "duet_queue_depth",
    ] {
        assert!(m.contains(name), "{name} missing from\n{m}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_4xx_and_the_server_keeps_serving() -> Result<()> {
    let s = server(vec![], EngineConfig::default())?;
    let many_stops: Vec<String> = (0..10_000).map(|i| format!("s{i}")).collect();
    let cases: Vec<(Body, u16, &str)> = vec![
        (Body::from("{not json"), 400, "body"),
        (Body::from("[1, 2]"), 400, "body"),
        (Body::from(vec![0xff, 0xfe, 0x00]), 400, "body"),
        (
            Body::from(json!({"model": "llama"}).to_string()),
            400,
            "body",
        ),
        (
            Body::from(json!({"model": 5, "messages": []}).to_string()),
            400,
            "model",
        ),
        (
            Body::from(chat("x", json!({"temperature": "hot"})).to_string()),
            400,
            "temperature",
        ),
        (
            Body::from(chat("x", json!({"max_tokens": -3})).to_string()),
            400,
            "max_tokens",
        ),
        (
            Body::from(chat("x", json!({"max_tokens": 1e12})).to_string()),
            400,
            "max_tokens",
        ),
        (
            Body::from(chat("x", json!({"n": 1_000_000})).to_string()),
            400,
            "n",
        ),
        (
            Body::from(chat("x", json!({"top_p": -1})).to_string()),
            400,
            "top_p",
        ),
        (
            Body::from(chat("x", json!({"stop": many_stops})).to_string()),
            400,
            "stop",
        ),
        (
            Body::from(json!({"model": "llama", "messages": []}).to_string()),
            400,
            "messages",
        ),
        (
            Body::from(
                json!({"model": "llama", "messages": [{"role": "wizard", "content": "x"}]})
                    .to_string(),
            ),
            400,
            "messages[0].role",
        ),
        (
            Body::from(chat("x", json!({"model": "nope"})).to_string()),
            404,
            "model",
        ),
        (
            Body::from(chat("x", json!({"model": "bert"})).to_string()),
            400,
            "model",
        ),
        (
            Body::from(chat(&"the cat ".repeat(600), json!({})).to_string()),
            400,
            "messages",
        ),
        (
            Body::from(chat("x", json!({"max_tokens": 1020})).to_string()),
            400,
            "max_tokens",
        ),
        (Body::from(vec![b'a'; 300 << 10]), 413, ""),
    ];
    for (i, (body, status, param)) in cases.into_iter().enumerate() {
        let (st, v) = call(&s.app, "POST", "/v1/chat/completions", body, None).await?;
        assert_eq!(st.as_u16(), status, "case {i}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "case {i}: {v}"
        );
        if !param.is_empty() {
            assert_eq!(v["error"]["param"], param, "case {i}: {v}");
        }
    }
    // The context error says by how much.
    let (_, v) = post(
        &s.app,
        "/v1/chat/completions",
        chat("x", json!({"max_tokens": 1020})),
    )
    .await?;
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("over")),
        "{v}"
    );
    let (st, v) = post(
        &s.app,
        "/v1/embeddings",
        json!({"model": "bert", "input": []}),
    )
    .await?;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    let (st, v) = post(
        &s.app,
        "/v1/embeddings",
        json!({"model": "bert", "input": "x", "dimensions": -4}),
    )
    .await?;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    let (st, _) = call(&s.app, "GET", "/v1/models/nope", Body::empty(), None).await?;
    assert_eq!(st, StatusCode::NOT_FOUND);
    // Still serving.
    let (st, v) = post(&s.app, "/v1/chat/completions", chat("the cat", json!({}))).await?;
    assert_eq!(st, StatusCode::OK, "{v}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_guard_v1_routes() -> Result<()> {
    let s = server(vec!["sesame".into()], EngineConfig::default())?;
    let (st, v) = call(&s.app, "GET", "/v1/models", Body::empty(), None).await?;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{v}");
    assert_eq!(v["error"]["code"], "invalid_api_key");
    let (st, _) = call(&s.app, "GET", "/v1/models", Body::empty(), Some("wrong")).await?;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _) = call(&s.app, "GET", "/v1/models", Body::empty(), Some("sesame")).await?;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = call(&s.app, "GET", "/health", Body::empty(), None).await?;
    assert_eq!(st, StatusCode::OK);
    Ok(())
}

/// The engine's decode steps so far, from `/metrics`.
async fn decode_steps(app: &axum::Router) -> Result<u64> {
    let (_, m) = call(app, "GET", "/metrics", Body::empty(), None).await?;
    m.as_str()
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("duet_decode_steps_total "))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| anyhow!("no duet_decode_steps_total in /metrics"))
}

/// Reads SSE frames until `n` `data:` lines have come.
async fn read_events(body: &mut Body, n: usize) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut buf = String::new();
    while out.len() < n {
        let frame = body
            .frame()
            .await
            .ok_or_else(|| anyhow!("stream ended after {out:?}"))??;
        if let Ok(data) = frame.into_data() {
            buf.push_str(&String::from_utf8_lossy(&data));
            while let Some(end) = buf.find("\n\n") {
                let ev: String = buf.drain(..end + 2).collect();
                if let Some(d) = ev.trim().strip_prefix("data: ") {
                    out.push(d.to_owned());
                }
            }
        }
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_with_usage_and_a_client_that_leaves_frees_its_slot() -> Result<()> {
    let s = server(vec![], EngineConfig::default())?;
    let body = chat(
        "the cat",
        json!({"stream": true, "stream_options": {"include_usage": true}, "max_tokens": 4}),
    );
    let resp = s
        .app
        .clone()
        .oneshot(
            Request::post("/v1/chat/completions")
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))?,
        )
        .await?;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()?
            .starts_with("text/event-stream")
    );
    let all = String::from_utf8(resp.into_body().collect().await?.to_bytes().to_vec())?;
    let data: Vec<&str> = all
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(data.last(), Some(&"[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d))
        .collect::<std::result::Result<_, _>>()?;
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let usage = &chunks[chunks.len() - 1];
    assert_eq!(usage["choices"].as_array().map(Vec::len), Some(0));
    assert_eq!(usage["usage"]["completion_tokens"], 4);
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "length")
    );

    // A long stream, dropped after two events: the engine lets go within a decode step.
    let body = json!({"model": "llama", "prompt": "the cat", "stream": true, "max_tokens": 1000, "ignore_eos": true});
    let resp = s
        .app
        .clone()
        .oneshot(
            Request::post("/v1/completions")
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))?,
        )
        .await?;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut b = resp.into_body();
    read_events(&mut b, 2).await?;
    let steps_at_drop = decode_steps(&s.app).await?;
    drop(b);
    let t = Instant::now();
    while s.state.load_counts().1 != 0 && t.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(s.state.load_counts(), (0, 0), "the slot was not freed");
    // The step in flight when the client left, and a few more at most: on a loaded 2-core
    // machine the engine's thread can run steps while this one waits to drop the body (seen
    // once with a benchmark running beside the tests). The stream asked for 1,000 tokens.
    let after = decode_steps(&s.app).await? - steps_at_drop;
    assert!(after <= 8, "{after} decode steps ran after the client left");
    let (_, m) = call(&s.app, "GET", "/metrics", Body::empty(), None).await?;
    assert!(
        m.as_str()
            .is_some_and(|m| m.contains("duet_cancelled_sequences_total 1")),
        "{m}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_429_with_retry_after() -> Result<()> {
    let s = server(
        vec![],
        EngineConfig {
            max_batch: 1,
            queue: 1,
            ..EngineConfig::default()
        },
    )?;
    // Occupy the one slot and the one queue place with long streams.
    let long = chat(
        "the cat",
        json!({"stream": true, "max_tokens": 1000, "ignore_eos": true}),
    );
    let mut held = Vec::new();
    for _ in 0..2 {
        let r = s
            .app
            .clone()
            .oneshot(
                Request::post("/v1/chat/completions")
                    .header("content-type", "application/json")
                    .body(Body::from(long.to_string()))?,
            )
            .await?;
        assert_eq!(r.status(), StatusCode::OK);
        held.push(r);
        // Wait for the engine to take the first into its slot.
        let t = Instant::now();
        while s.state.load_counts().1 == 0 && t.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let mut saw_429 = false;
    for _ in 0..20 {
        let r = s
            .app
            .clone()
            .oneshot(
                Request::post("/v1/chat/completions")
                    .header("content-type", "application/json")
                    .body(Body::from(chat("the cat", json!({})).to_string()))?,
            )
            .await?;
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(r.headers().contains_key("retry-after"));
            saw_429 = true;
            break;
        }
    }
    assert!(saw_429, "no 429 with a queue of one");
    drop(held);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_a_running_stream_finish() -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = server(vec![], EngineConfig::default())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(duet_serve::serve(listener, s.state.clone(), async {
        let _ = stopped.await;
    }));
    let body = json!({"model": "llama", "prompt": "the cat", "stream": true, "max_tokens": 1000, "ignore_eos": true}).to_string();
    let mut conn = tokio::net::TcpStream::connect(addr).await?;
    conn.write_all(
        format!(
            "POST /v1/completions HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await?;
    // Shut down as soon as the stream has started.
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("data: {") {
        let n = conn.read(&mut buf).await?;
        anyhow::ensure!(
            n > 0,
            "closed before streaming: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    let _ = stop.send(());
    conn.read_to_end(&mut seen).await?;
    let text = String::from_utf8_lossy(&seen);
    assert!(
        text.contains("data: [DONE]"),
        "the stream was cut: {}",
        &text[text.len().saturating_sub(300)..]
    );
    assert!(text.contains("\"finish_reason\":\"length\""));
    tokio::time::timeout(Duration::from_secs(10), served).await???;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
    Ok(())
}

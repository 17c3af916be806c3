//! `POST /v1/responses` (OpenAI's Responses API, stateless) with the tiny model: text and
//! item inputs, function calls under `tool_choice`, JSON-schema text, and the named events of
//! a stream.

mod util;

use anyhow::Result;
use axum::body::Body;
use axum::http::StatusCode;
use duet_serve::engine::EngineConfig;
use serde_json::{Value, json};
use util::{post, send, server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_and_items_answer_with_a_message() -> Result<()> {
    let s = server(vec![], EngineConfig::default())?;
    let (st, v) = post(
        &s.app,
        "/v1/responses",
        json!({"model": "llama", "input": "the cat", "max_output_tokens": 5, "temperature": 0}),
    )
    .await?;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "incomplete", "{v}");
    assert_eq!(v["incomplete_details"]["reason"], "max_output_tokens");
    assert_eq!(v["output"][0]["type"], "message");
    assert_eq!(v["output"][0]["role"], "assistant");
    assert_eq!(v["output"][0]["content"][0]["type"], "output_text");
    assert!(v["output"][0]["content"][0]["text"].is_string());
    assert_eq!(v["usage"]["output_tokens"], 5);
    assert_eq!(
        v["usage"]["total_tokens"].as_u64(),
        Some(v["usage"]["input_tokens"].as_u64().unwrap_or(0) + 5)
    );
    // The same answer as the chat route gives for the same conversation.
    let (_, chat) = post(
        &s.app,
        "/v1/chat/completions",
        json!({"model": "llama", "messages": [{"role": "system", "content": "Be brief."},
               {"role": "user", "content": "the cat"}], "max_tokens": 5, "temperature": 0}),
    )
    .await?;
    let (st, v) = post(
        &s.app,
        "/v1/responses",
        json!({"model": "llama", "instructions": "Be brief.", "max_output_tokens": 5, "temperature": 0,
               "input": [{"role": "user", "content": [{"type": "input_text", "text": "the cat"}]}]}),
    )
    .await?;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        v["output"][0]["content"][0]["text"],
        chat["choices"][0]["message"]["content"]
    );
    // A history with a call and its output.
    let (st, v) = post(
        &s.app,
        "/v1/responses",
        json!({"model": "llama", "max_output_tokens": 3, "input": [
            {"role": "user", "content": "the cat"},
            {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "sat"}]}),
    )
    .await?;
    assert_eq!(st, StatusCode::OK, "{v}");
    for (body, field) in [
        (
            json!({"input": "x", "previous_response_id": "resp_1"}),
            "previous_response_id",
        ),
        (json!({"input": [{"type": "reasoning"}]}), "input[0].type"),
        (
            json!({"input": [{"role": "user", "content": [{"type": "input_image"}]}]}),
            "input[0].content[0].type",
        ),
        (
            json!({"input": "x", "text": {"format": {"type": "grammar"}}}),
            "text.format.type",
        ),
    ] {
        let mut b = body.clone();
        b["model"] = json!("llama");
        let (st, v) = post(&s.app, "/v1/responses", b).await?;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert_eq!(v["error"]["param"], field, "{v}");
    }
    Ok(())
}

fn weather() -> Value {
    json!([{"type": "function", "name": "get_weather", "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 8}},
            "required": ["city"], "additionalProperties": false}}])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_calls_and_json_schema_text_follow_their_schemas() -> Result<()> {
    let s = server(vec![], EngineConfig::default())?;
    for seed in 0..5 {
        let (st, v) = post(
            &s.app,
            "/v1/responses",
            json!({"model": "llama", "input": "the cat", "tools": weather(), "tool_choice": "required",
                   "parallel_tool_calls": false, "temperature": 1.0, "max_output_tokens": 150,
                   "instructions": format!("seed {seed}")}),
        )
        .await?;
        assert_eq!(st, StatusCode::OK, "{v}");
        let item = &v["output"][0];
        assert_eq!(item["type"], "function_call", "{v}");
        assert_eq!(item["name"], "get_weather");
        assert!(
            item["call_id"]
                .as_str()
                .is_some_and(|c| c.starts_with("call_"))
        );
        let args: Value = serde_json::from_str(item["arguments"].as_str().unwrap_or_default())?;
        assert!(args["city"].is_string(), "{v}");
        assert_eq!(v["status"], "completed");
    }
    let (st, v) = post(
        &s.app,
        "/v1/responses",
        json!({"model": "llama", "input": "the cat", "max_output_tokens": 200, "temperature": 1.0,
               "text": {"format": {"type": "json_schema", "name": "pet", "strict": true, "schema":
                   {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"],
                    "additionalProperties": false}}}}),
    )
    .await?;
    assert_eq!(st, StatusCode::OK, "{v}");
    let text = v["output"][0]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    let parsed: Value = serde_json::from_str(text)?;
    assert!(parsed["ok"].is_boolean(), "{v}");
    Ok(())
}

/// `(event name, data)` of each event of a stream.
fn events(text: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let name = block.lines().find_map(|l| l.strip_prefix("event: "));
        let data = block.lines().find_map(|l| l.strip_prefix("data: "));
        if let (Some(n), Some(d)) = (name, data) {
            out.push((n.to_owned(), serde_json::from_str(d).unwrap_or_default()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_sends_openais_events_in_order() -> Result<()> {
    let s = server(vec![], EngineConfig::default())?;
    let body =
        json!({"model": "llama", "input": "the cat", "max_output_tokens": 6, "temperature": 0});
    let (_, whole) = post(&s.app, "/v1/responses", body.clone()).await?;
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let (st, _, text) = send(
        &s.app,
        "POST",
        "/v1/responses",
        Body::from(streamed.to_string()),
        None,
    )
    .await?;
    assert_eq!(st, StatusCode::OK);
    let evs = events(text.as_str().unwrap_or_default());
    let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"response.created"), "{names:?}");
    assert_eq!(names.last(), Some(&"response.incomplete"), "{names:?}");
    for (i, (n, d)) in evs.iter().enumerate() {
        assert_eq!(&d["type"], n);
        assert_eq!(d["sequence_number"], i, "{n}");
    }
    for want in [
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    let deltas: String = evs
        .iter()
        .filter(|(n, _)| n == "response.output_text.delta")
        .filter_map(|(_, d)| d["delta"].as_str())
        .collect();
    assert_eq!(json!(deltas), whole["output"][0]["content"][0]["text"]);
    let last = &evs[evs.len() - 1].1["response"];
    assert_eq!(last["output"][0]["content"][0]["text"], json!(deltas));
    assert_eq!(last["usage"]["output_tokens"], 6);
    Ok(())
}

//! Tool calling end to end with a tiny random model, where only the grammar can make the
//! output a call: forced calls (`required`, a named function) always parse and validate
//! against their function's schema, `auto` gives text or valid calls, streamed calls
//! concatenate to the same JSON, and a history with calls and tool results renders.

mod util;

use anyhow::Result;
use axum::body::Body;
use axum::http::StatusCode;
use duet_serve::engine::EngineConfig;
use serde_json::{Map, Value, json};
use util::{post, send, server};

/// Two functions whose arguments are bounded (enums, short strings, no extra properties), so a
/// random model under the grammar finishes its call within the token budget.
fn tools() -> Value {
    json!([
        {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
            "parameters": {"type": "object", "additionalProperties": false,
                "properties": {"city": {"type": "string", "maxLength": 8},
                               "unit": {"type": "string", "enum": ["c", "f"]}},
                "required": ["city", "unit"]}}},
        {"type": "function", "function": {"name": "order_status", "description": "Where an order is",
            "parameters": {"type": "object", "additionalProperties": false,
                "properties": {"order": {"type": "integer", "minimum": 1, "maximum": 99999}},
                "required": ["order"]}}}
    ])
}

/// Checks `args` against the subset of JSON schema `tools()` uses; the reason when it fails.
fn validate(name: &str, args: &Map<String, Value>) -> Result<(), String> {
    let spec = tools()
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["function"]["name"] == name)
        .map(|t| t["function"]["parameters"].clone())
        .ok_or_else(|| format!("unknown function {name:?}"))?;
    let props = spec["properties"].as_object().cloned().unwrap_or_default();
    for r in spec["required"].as_array().into_iter().flatten() {
        let r = r.as_str().unwrap_or_default();
        if !args.contains_key(r) {
            return Err(format!("{name}: {r} missing"));
        }
    }
    for (k, v) in args {
        let p = props.get(k).ok_or_else(|| format!("{name}: extra {k}"))?;
        let ok = match p["type"].as_str() {
            Some("string") => v.as_str().is_some_and(|s| {
                p["maxLength"]
                    .as_u64()
                    .is_none_or(|m| s.chars().count() as u64 <= m)
                    && p["enum"].as_array().is_none_or(|e| e.contains(v))
            }),
            Some("integer") => v.as_i64().is_some_and(|i| {
                p["minimum"].as_i64().is_none_or(|m| i >= m)
                    && p["maximum"].as_i64().is_none_or(|m| i <= m)
            }),
            _ => false,
        };
        if !ok {
            return Err(format!("{name}: {k} = {v} does not follow {p}"));
        }
    }
    Ok(())
}

/// The calls of a chat completion's first choice, each checked: `(name, arguments)`.
fn checked_calls(v: &Value) -> Vec<(String, Map<String, Value>)> {
    let calls = v["choices"][0]["message"]["tool_calls"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    calls
        .iter()
        .map(|c| {
            assert_eq!(c["type"], "function", "{v}");
            assert!(
                c["id"].as_str().is_some_and(|i| i.starts_with("call_")),
                "{v}"
            );
            let name = c["function"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let args: Map<String, Value> = c["function"]["arguments"]
                .as_str()
                .and_then(|a| serde_json::from_str(a).ok())
                .unwrap_or_else(|| panic!("arguments are not a JSON object: {v}"));
            if let Err(e) = validate(&name, &args) {
                panic!("{e}: {v}");
            }
            (name, args)
        })
        .collect()
}

/// A sampled request with the tools (the prompt that describes them takes 870 of the tiny
/// model's 1,024 positions; one call of either function fits in the 150 tokens left).
fn request(choice: Value, seed: u64) -> Value {
    json!({"model": "llama", "messages": [{"role": "user", "content": "the cat"}],
           "tools": tools(), "tool_choice": choice, "temperature": 1.0, "seed": seed,
           "parallel_tool_calls": false, "max_tokens": 150})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_calls_always_parse_and_validate() -> Result<()> {
    let s = server(vec![], EngineConfig::default())?;
    let mut names = std::collections::BTreeSet::new();
    for seed in 0..100 {
        let (st, v) = post(
            &s.app,
            "/v1/chat/completions",
            request(json!("required"), seed),
        )
        .await?;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls", "{v}");
        assert!(v["choices"][0]["message"]["content"].is_null(), "{v}");
        let calls = checked_calls(&v);
        assert!(!calls.is_empty(), "{v}");
        names.extend(calls.into_iter().map(|c| c.0));
    }
    // A random model picks either function somewhere in 100 draws.
    assert_eq!(names.len(), 2, "{names:?}");
    let named = json!({"type": "function", "function": {"name": "order_status"}});
    for seed in 0..20 {
        let (st, v) = post(&s.app, "/v1/chat/completions", request(named.clone(), seed)).await?;
        assert_eq!(st, StatusCode::OK, "{v}");
        let calls = checked_calls(&v);
        assert_eq!(calls.len(), 1, "{v}");
        assert_eq!(calls[0].0, "order_status");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_gives_text_or_valid_calls_and_none_gives_text() -> Result<()> {
    let s = server(vec![], EngineConfig::default())?;
    for seed in 0..20 {
        let (st, v) = post(&s.app, "/v1/chat/completions", request(json!("auto"), seed)).await?;
        assert_eq!(st, StatusCode::OK, "{v}");
        let m = &v["choices"][0]["message"];
        if m["tool_calls"].is_array() {
            assert!(!checked_calls(&v).is_empty());
            assert_eq!(v["choices"][0]["finish_reason"], "tool_calls", "{v}");
        } else {
            let text = m["content"].as_str().unwrap_or_default();
            assert!(!text.trim_start().starts_with("<tool_call>"), "{v}");
        }
    }
    let (st, v) = post(&s.app, "/v1/chat/completions", request(json!("none"), 1)).await?;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert!(v["choices"][0]["message"]["tool_calls"].is_null(), "{v}");
    assert!(v["choices"][0]["message"]["content"].is_string(), "{v}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_calls_concatenate_to_the_same_call() -> Result<()> {
    let s = server(vec![], EngineConfig::default())?;
    let mut body = request(json!("required"), 3);
    let (_, whole) = post(&s.app, "/v1/chat/completions", body.clone()).await?;
    body["stream"] = json!(true);
    let (st, _, text) = send(
        &s.app,
        "POST",
        "/v1/chat/completions",
        Body::from(body.to_string()),
        None,
    )
    .await?;
    assert_eq!(st, StatusCode::OK);
    let mut calls: Vec<(String, String)> = Vec::new();
    let mut finish = Value::Null;
    for line in text.as_str().unwrap_or_default().lines() {
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        if data == "[DONE]" {
            break;
        }
        let chunk: Value = serde_json::from_str(data)?;
        let c = &chunk["choices"][0];
        if !c["finish_reason"].is_null() {
            finish = c["finish_reason"].clone();
        }
        for d in c["delta"]["tool_calls"].as_array().into_iter().flatten() {
            let i = d["index"].as_u64().unwrap_or(0) as usize;
            if i == calls.len() {
                assert!(
                    d["id"].is_string() && d["function"]["name"].is_string(),
                    "{d}"
                );
                calls.push((
                    d["function"]["name"].as_str().unwrap_or_default().into(),
                    String::new(),
                ));
            }
            calls[i]
                .1
                .push_str(d["function"]["arguments"].as_str().unwrap_or_default());
        }
    }
    assert_eq!(finish, "tool_calls");
    let want: Vec<(String, String)> = whole["choices"][0]["message"]["tool_calls"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c["function"]["name"].as_str().unwrap_or_default().into(),
                c["function"]["arguments"]
                    .as_str()
                    .unwrap_or_default()
                    .into(),
            )
        })
        .collect();
    assert!(!want.is_empty());
    assert_eq!(calls, want);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_with_calls_and_results_renders_and_bad_tools_are_400s() -> Result<()> {
    let s = server(vec![], EngineConfig::default())?;
    let body = json!({"model": "llama", "max_tokens": 3, "tools": tools(), "messages": [
        {"role": "user", "content": "the cat"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "order_status", "arguments": "{\"order\": 12}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "shipped"}]});
    let (st, v) = post(&s.app, "/v1/chat/completions", body).await?;
    assert_eq!(st, StatusCode::OK, "{v}");
    for (extra, field) in [
        (
            json!({"tools": tools(), "tool_choice": {"type": "function", "function": {"name": "nope"}}}),
            "tool_choice",
        ),
        (json!({"tool_choice": "required"}), "tool_choice"),
        (
            json!({"tools": tools(), "response_format": {"type": "json_object"}}),
            "response_format",
        ),
        (
            json!({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "frobnicate"}}}}}], "tool_choice": "required"}),
            "tools",
        ),
    ] {
        let mut body = json!({"model": "llama", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3});
        for (k, x) in extra.as_object().into_iter().flatten() {
            body[k] = x.clone();
        }
        let (st, v) = post(&s.app, "/v1/chat/completions", body).await?;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{extra}: {v}");
        assert_eq!(v["error"]["param"], field, "{v}");
    }
    Ok(())
}

//! `POST /v1/responses`: OpenAI's Responses API, stateless. The request's items become a chat
//! (instructions as the system message, function calls and their outputs as tool turns), which
//! runs exactly as `/v1/chat/completions` runs it; the answer comes back as output items — a
//! message, or function calls — whole or as the named events OpenAI streams.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use duet_model::generate::FinishReason;
use serde_json::{Value, json};

use crate::api::{ChatRequest, ResponsesInput, ResponsesRequest};
use crate::body::parse;
use crate::engine::Event;
use crate::error::ApiError;
use crate::generate::{Submitted, collect};
use crate::middleware::KeyUse;
use crate::response::{
    IncompleteDetails, OutputItem, OutputText, ResponseEvent, ResponseObject, ResponseUsage,
    ToolCall,
};
use crate::sse::{self, SseSender};
use crate::state::{AppState, now_secs};
use crate::tools::{self, CallReader, Piece};

/// The text of an item's `content`: a string, or the text of its parts.
fn content_text(v: &Value, field: &str) -> Result<String, ApiError> {
    match v {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) => {
            let mut out = String::new();
            for (j, p) in parts.iter().enumerate() {
                match p["type"].as_str() {
                    Some("input_text" | "output_text" | "text") => {
                        out.push_str(p["text"].as_str().unwrap_or_default());
                    }
                    other => {
                        return Err(ApiError::invalid(
                            &format!("{field}[{j}].type"),
                            format!("content of type {other:?} is not supported (input_text)"),
                        ));
                    }
                }
            }
            Ok(out)
        }
        _ => Err(ApiError::invalid(
            field,
            "content is a string or a list of parts",
        )),
    }
}

/// The chat messages of a Responses request.
fn messages(req: &ResponsesRequest) -> Result<Vec<Value>, ApiError> {
    let mut out = Vec::new();
    if let Some(i) = &req.instructions {
        out.push(json!({"role": "system", "content": i}));
    }
    let items = match &req.input {
        ResponsesInput::Text(t) => {
            return Ok([out, vec![json!({"role": "user", "content": t})]].concat());
        }
        ResponsesInput::Items(items) => items,
    };
    for (i, item) in items.iter().enumerate() {
        let field = format!("input[{i}]");
        match item["type"].as_str() {
            None | Some("message") => {
                let role = item["role"].as_str().unwrap_or_default();
                if !["system", "developer", "user", "assistant"].contains(&role) {
                    return Err(ApiError::invalid(
                        &format!("{field}.role"),
                        format!("unknown role {role:?} (system, developer, user, assistant)"),
                    ));
                }
                let content = content_text(&item["content"], &format!("{field}.content"))?;
                out.push(json!({"role": role, "content": content}));
            }
            Some("function_call") => {
                let call = json!({"id": item["call_id"], "type": "function",
                    "function": {"name": item["name"], "arguments": item["arguments"]}});
                // Calls in a row are one assistant turn.
                match out.last_mut() {
                    Some(last) if last["role"] == "assistant" && last["tool_calls"].is_array() => {
                        if let Some(calls) = last["tool_calls"].as_array_mut() {
                            calls.push(call);
                        }
                    }
                    _ => out
                        .push(json!({"role": "assistant", "content": null, "tool_calls": [call]})),
                }
            }
            Some("function_call_output") => {
                let output = match &item["output"] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                out.push(
                    json!({"role": "tool", "tool_call_id": item["call_id"], "content": output}),
                );
            }
            Some(other) => {
                return Err(ApiError::invalid(
                    &format!("{field}.type"),
                    format!(
                        "input items of type {other:?} are not supported (message, function_call, function_call_output)"
                    ),
                ));
            }
        }
    }
    Ok(out)
}

/// The chat request a Responses request runs as.
fn chat_request(req: &ResponsesRequest) -> Result<ChatRequest, ApiError> {
    if req.previous_response_id.is_some() {
        return Err(ApiError::invalid(
            "previous_response_id",
            "this server keeps no responses: send the whole conversation in `input`",
        ));
    }
    let mut body = json!({"model": req.model, "messages": messages(req)?});
    if let Some(tools) = &req.tools {
        let mut chat_tools = Vec::new();
        for (i, t) in tools.iter().enumerate() {
            if t["type"] != "function" {
                return Err(ApiError::invalid(
                    &format!("tools[{i}].type"),
                    format!("tool type {} is not supported (function)", t["type"]),
                ));
            }
            let mut f = json!({"name": t["name"], "parameters": t["parameters"]});
            if let Some(d) = t["description"].as_str() {
                f["description"] = json!(d);
            }
            chat_tools.push(json!({"type": "function", "function": f}));
        }
        body["tools"] = json!(chat_tools);
    }
    match &req.tool_choice {
        Some(Value::Object(o)) => {
            body["tool_choice"] = json!({"type": "function", "function": {"name": o.get("name")}});
        }
        Some(v) => body["tool_choice"] = v.clone(),
        None => {}
    }
    if let Some(p) = req.parallel_tool_calls {
        body["parallel_tool_calls"] = json!(p);
    }
    if let Some(f) = req
        .text
        .as_ref()
        .map(|t| &t["format"])
        .filter(|f| !f.is_null())
    {
        body["response_format"] = match f["type"].as_str() {
            Some("json_schema") => json!({"type": "json_schema", "json_schema": {
                "name": f["name"], "schema": f["schema"], "strict": f["strict"]}}),
            Some(kind @ ("text" | "json_object")) => json!({"type": kind}),
            other => {
                return Err(ApiError::invalid(
                    "text.format.type",
                    format!(
                        "text format {other:?} is not supported (text, json_object, json_schema)"
                    ),
                ));
            }
        };
    }
    if let Some(m) = req.max_output_tokens {
        body["max_tokens"] = json!(m);
    }
    if let Some(t) = req.temperature {
        body["temperature"] = json!(t);
    }
    if let Some(p) = req.top_p {
        body["top_p"] = json!(p);
    }
    serde_json::from_value(body).map_err(|e| ApiError::invalid("input", e.to_string()))
}

/// The response object around `output`.
fn response_object(
    req: &ResponsesRequest,
    id: &str,
    created_at: u64,
    status: &'static str,
    output: Vec<OutputItem>,
    usage: Option<ResponseUsage>,
) -> ResponseObject {
    ResponseObject {
        id: id.to_owned(),
        object: "response",
        created_at,
        status,
        error: None,
        incomplete_details: (status == "incomplete").then_some(IncompleteDetails {
            reason: "max_output_tokens",
        }),
        instructions: req.instructions.clone(),
        max_output_tokens: req.max_output_tokens,
        model: req.model.clone(),
        output,
        parallel_tool_calls: req.parallel_tool_calls.unwrap_or(true),
        previous_response_id: None,
        temperature: req.temperature,
        top_p: req.top_p,
        tool_choice: req.tool_choice.clone().unwrap_or_else(|| json!("auto")),
        tools: req.tools.clone().unwrap_or_default(),
        text: req
            .text
            .clone()
            .unwrap_or_else(|| json!({"format": {"type": "text"}})),
        truncation: "disabled",
        usage,
        metadata: req.metadata.clone().unwrap_or_else(|| json!({})),
        store: false,
    }
}

fn usage(input: usize, output: usize) -> ResponseUsage {
    ResponseUsage {
        input_tokens: input,
        input_tokens_details: json!({"cached_tokens": 0}),
        output_tokens: output,
        output_tokens_details: json!({"reasoning_tokens": 0}),
        total_tokens: input + output,
    }
}

fn text_part(text: String) -> OutputText {
    OutputText {
        kind: "output_text",
        text,
        annotations: Vec::new(),
    }
}

fn call_item(c: ToolCall, status: &'static str) -> OutputItem {
    OutputItem::FunctionCall {
        id: format!("fc_{}", c.id.trim_start_matches("call_")),
        call_id: c.id,
        name: c.function.name,
        arguments: c.function.arguments,
        status,
    }
}

/// Whether an answer that ended with `finish` is complete.
fn status(finish: Option<FinishReason>) -> &'static str {
    match finish {
        Some(FinishReason::Stop) => "completed",
        _ => "incomplete",
    }
}

/// The route.
pub(crate) async fn responses(
    State(s): State<Arc<AppState>>,
    Extension(key): Extension<KeyUse>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: ResponsesRequest = parse(body)?;
    let chat = chat_request(&req)?;
    let started = super::chat::start(&s, &chat)?;
    let calls = started.plan.is_some();
    let id = s.id("resp");
    let created = now_secs();
    let seeds = started.sub.seeds.clone();
    if req.stream.unwrap_or(false) {
        let resp = stream(s.clone(), key, req, id, created, started.sub, calls);
        return Ok(Submitted::with_seeds(&seeds, resp));
    }
    let (choices, u) = collect(started.sub).await?;
    s.keys.spend(key.0, u.total_tokens);
    let c = choices
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::internal("no choice came back"))?;
    let found = if calls {
        tools::parse_calls(&c.text).filter(|calls| !calls.is_empty())
    } else {
        None
    };
    let output = match found {
        Some(calls) => calls
            .into_iter()
            .map(|c| call_item(c, "completed"))
            .collect(),
        None => vec![OutputItem::Message {
            id: format!("msg_{}", id.trim_start_matches("resp-")),
            status: status(c.finish),
            role: "assistant",
            content: vec![text_part(c.text.trim_start().to_owned())],
        }],
    };
    let body = response_object(
        &req,
        &id,
        created,
        status(c.finish),
        output,
        Some(usage(u.prompt_tokens, u.completion_tokens)),
    );
    Ok(Submitted::with_seeds(&seeds, Json(body).into_response()))
}

/// Sends events with their sequence numbers.
struct Emitter {
    tx: SseSender,
    next: u64,
}

impl Emitter {
    /// Sends the event `make` builds with the next sequence number; `false` when the client
    /// has gone away.
    async fn send(&mut self, make: impl FnOnce(u64) -> ResponseEvent) -> bool {
        let ev = make(self.next);
        self.next += 1;
        self.tx.named(ev.name(), &ev).await
    }
}

/// Streams a response as OpenAI's named events.
fn stream(
    s: Arc<AppState>,
    key: KeyUse,
    req: ResponsesRequest,
    id: String,
    created: u64,
    sub: Submitted,
    calls: bool,
) -> Response {
    sse::stream(move |tx| async move {
        let mut out = Emitter { tx, next: 0 };
        let snapshot =
            |status, output, usage| response_object(&req, &id, created, status, output, usage);
        if !out
            .send(|n| ResponseEvent::Created {
                sequence_number: n,
                response: snapshot("in_progress", Vec::new(), None),
            })
            .await
            || !out
                .send(|n| ResponseEvent::InProgress {
                    sequence_number: n,
                    response: snapshot("in_progress", Vec::new(), None),
                })
                .await
        {
            return;
        }
        let msg_id = format!("msg_{}", id.trim_start_matches("resp-"));
        let mut reader = CallReader::new();
        let mut text: Option<String> = None;
        let mut output: Vec<OutputItem> = Vec::new();
        let mut started = false;
        let mut finish = None;
        let mut completion_tokens = 0;
        let mut events = sse::merged(sub.receivers);
        while let Some((_, ev)) = out.tx.next_event(&mut events).await {
            let pieces = match ev {
                Event::Prompt { .. } => continue,
                Event::Delta { text: t, .. } if calls => reader.push(&t),
                Event::Delta { text: t, .. } => {
                    let t = if started {
                        t
                    } else {
                        t.trim_start().to_owned()
                    };
                    started |= !t.is_empty();
                    vec![Piece::Text(t)]
                }
                Event::Done {
                    finish: f,
                    completion_tokens: c,
                    ..
                } => {
                    finish = Some(f);
                    completion_tokens = c;
                    if calls { reader.finish() } else { Vec::new() }
                }
                Event::Failed(m) => {
                    let _ = out.tx.json(&ApiError::internal(m).body()).await;
                    return;
                }
            };
            for p in pieces {
                let sent = match p {
                    Piece::Text(t) if t.is_empty() => true,
                    Piece::Text(t) => {
                        let index = output.len();
                        let mut ok = true;
                        if text.is_none() {
                            ok = out
                                .send(|n| ResponseEvent::ItemAdded {
                                    sequence_number: n,
                                    output_index: index,
                                    item: OutputItem::Message {
                                        id: msg_id.clone(),
                                        status: "in_progress",
                                        role: "assistant",
                                        content: Vec::new(),
                                    },
                                })
                                .await
                                && out
                                    .send(|n| ResponseEvent::PartAdded {
                                        sequence_number: n,
                                        item_id: msg_id.clone(),
                                        output_index: index,
                                        content_index: 0,
                                        part: text_part(String::new()),
                                    })
                                    .await;
                        }
                        text.get_or_insert_with(String::new).push_str(&t);
                        ok && out
                            .send(|n| ResponseEvent::TextDelta {
                                sequence_number: n,
                                item_id: msg_id.clone(),
                                output_index: index,
                                content_index: 0,
                                delta: t,
                                logprobs: Vec::new(),
                            })
                            .await
                    }
                    Piece::Call(c) => {
                        let index = output.len();
                        let added = call_item(
                            ToolCall {
                                function: crate::response::FunctionCall {
                                    arguments: String::new(),
                                    ..c.function.clone()
                                },
                                ..c.clone()
                            },
                            "in_progress",
                        );
                        let done = call_item(c.clone(), "completed");
                        let item_id = done.id().to_owned();
                        let args = c.function.arguments.clone();
                        let ok = out
                            .send(|n| ResponseEvent::ItemAdded {
                                sequence_number: n,
                                output_index: index,
                                item: added,
                            })
                            .await
                            && out
                                .send(|n| ResponseEvent::ArgumentsDelta {
                                    sequence_number: n,
                                    item_id: item_id.clone(),
                                    output_index: index,
                                    delta: args.clone(),
                                })
                                .await
                            && out
                                .send(|n| ResponseEvent::ArgumentsDone {
                                    sequence_number: n,
                                    item_id: item_id.clone(),
                                    output_index: index,
                                    arguments: args,
                                })
                                .await
                            && out
                                .send(|n| ResponseEvent::ItemDone {
                                    sequence_number: n,
                                    output_index: index,
                                    item: done.clone(),
                                })
                                .await;
                        output.push(done);
                        ok
                    }
                };
                if !sent {
                    return;
                }
            }
        }
        let status = status(finish);
        if let Some(t) = text {
            let index = output.len();
            let item = OutputItem::Message {
                id: msg_id.clone(),
                status,
                role: "assistant",
                content: vec![text_part(t.clone())],
            };
            let ok = out
                .send(|n| ResponseEvent::TextDone {
                    sequence_number: n,
                    item_id: msg_id.clone(),
                    output_index: index,
                    content_index: 0,
                    text: t.clone(),
                    logprobs: Vec::new(),
                })
                .await
                && out
                    .send(|n| ResponseEvent::PartDone {
                        sequence_number: n,
                        item_id: msg_id.clone(),
                        output_index: index,
                        content_index: 0,
                        part: text_part(t),
                    })
                    .await
                && out
                    .send(|n| ResponseEvent::ItemDone {
                        sequence_number: n,
                        output_index: index,
                        item: item.clone(),
                    })
                    .await;
            if !ok {
                return;
            }
            output.push(item);
        }
        s.keys.spend(key.0, sub.prompt_tokens + completion_tokens);
        let whole = snapshot(
            status,
            output,
            Some(usage(sub.prompt_tokens, completion_tokens)),
        );
        out.send(|n| {
            if status == "completed" {
                ResponseEvent::Completed {
                    sequence_number: n,
                    response: whole,
                }
            } else {
                ResponseEvent::Incomplete {
                    sequence_number: n,
                    response: whole,
                }
            }
        })
        .await;
    })
}

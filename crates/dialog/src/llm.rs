//! The language model behind the assistant: when no rule, story or policy knows what to do, the
//! Dialog Manager asks an OpenAI-compatible `/v1/chat/completions` endpoint (duet's own server or
//! any other) with the recent turns, personal data redacted first. A slow or absent model gets
//! bounded retries within a deadline, then the configured fallback response.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::tracker::{Event, Tracker};

pub use crate::project::LlmEndpoint;

const SYSTEM: &str = "You are a helpful assistant. Answer briefly and politely.";

/// The chat messages for the latest turns of `t`, the system prompt carrying `context`.
pub fn messages(
    ep: &LlmEndpoint,
    t: &Tracker,
    context: &[crate::knowledge::Passage],
) -> Result<Vec<Value>> {
    let redactor = if ep.redact.unwrap_or(true) {
        Some(
            duet_corpus::pii::Redactor::new(&[])
                .map_err(|e| Error::Model(format!("the PII redactor: {e}")))?,
        )
    } else {
        None
    };
    let clean = |s: &str| match &redactor {
        Some(r) => r.redact(s).0,
        None => s.to_owned(),
    };
    let mut turns: Vec<Value> = t
        .session_events()
        .iter()
        .filter_map(|e| match e {
            Event::User { text, .. } => Some(json!({"role": "user", "content": clean(text)})),
            Event::Bot {
                text: Some(text), ..
            } => Some(json!({"role": "assistant", "content": clean(text)})),
            _ => None,
        })
        .collect();
    let keep = ep.history.unwrap_or(6).max(1);
    if turns.len() > keep {
        turns.drain(..turns.len() - keep);
    }
    let mut system = ep.system_prompt.as_deref().unwrap_or(SYSTEM).to_owned();
    if !context.is_empty() {
        system.push_str("\n\nAnswer from these passages of our documents:\n");
        for (i, p) in context.iter().enumerate() {
            system.push_str(&format!("[{}] {}: {}\n", i + 1, p.heading, clean(&p.text)));
        }
    }
    let mut out = vec![json!({"role": "system", "content": system})];
    out.extend(turns);
    Ok(out)
}

/// Asks the model for the next bot message, grounded in `context`. With a `sink`, the answer
/// is requested as a stream (`"stream": true`, server-sent events) and each piece is passed to
/// the sink as it arrives; the whole answer is returned either way.
pub fn answer<'s>(
    ep: &LlmEndpoint,
    t: &Tracker,
    context: &[crate::knowledge::Passage],
    mut sink: Option<&mut (dyn FnMut(&str) + 's)>,
) -> Result<String> {
    let deadline =
        Instant::now() + Duration::from_secs_f64(ep.timeout.unwrap_or(10.0).clamp(0.1, 600.0));
    let url = format!("{}/chat/completions", ep.url.trim_end_matches('/'));
    let mut msgs = messages(ep, t, context)?;
    let mut max_tokens = ep.max_tokens.unwrap_or(128);
    let key = ep
        .api_key_env
        .as_deref()
        .and_then(|v| std::env::var(v).ok());
    let fail = |why: String| Error::Model(format!("language model at {url}: {why}"));
    let mut last = String::new();
    let mut tries = 0;
    while tries <= ep.retries.unwrap_or(1) {
        tries += 1;
        let body = json!({
            "model": ep.model,
            "messages": msgs,
            "max_tokens": max_tokens,
            "temperature": ep.temperature.unwrap_or(0.7),
            "stream": sink.is_some(),
        })
        .to_string();
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .timeout_global(Some(left))
                .http_status_as_error(false)
                .build(),
        );
        let mut req = agent.post(&url).header("Content-Type", "application/json");
        if let Some(k) = &key {
            req = req.header("Authorization", &format!("Bearer {k}"));
        }
        let mut resp = match req.send(body.as_str()) {
            Ok(r) => r,
            Err(e) => {
                last = format!("no answer ({e})");
                continue;
            }
        };
        let status = resp.status().as_u16();
        if status == 200
            && let Some(sink) = sink.as_deref_mut()
        {
            return read_stream(resp.into_body().into_reader(), sink).map_err(fail);
        }
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        if status == 429 || status >= 500 {
            last = format!("HTTP {status}: {text}");
            continue;
        }
        // A model with a short context: ask again for a shorter answer, or with less of the
        // conversation, as the error's `param` says.
        if status == 400 && text.contains("context_length_exceeded") {
            let param = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["error"]["param"].as_str().map(str::to_owned));
            let shorter = if param.as_deref() == Some("max_tokens") && max_tokens > 8 {
                max_tokens /= 2;
                true
            } else {
                shrink(&mut msgs)
            };
            if shorter {
                tries -= 1;
                continue;
            }
        }
        if status != 200 {
            return Err(fail(format!("HTTP {status}: {text}")));
        }
        let v: Value = serde_json::from_str(&text).map_err(|e| fail(format!("not JSON: {e}")))?;
        return v["choices"][0]["message"]["content"]
            .as_str()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| fail(format!("no message in the answer: {text}")));
    }
    Err(fail(if last.is_empty() {
        "timed out".into()
    } else {
        last
    }))
}

/// Makes the prompt shorter for a model whose context it overflows: the oldest turn goes first,
/// then the documents' passages, then the system prompt; `false` when only the user's last
/// message is left.
fn shrink(msgs: &mut Vec<Value>) -> bool {
    let system = msgs.first().is_some_and(|m| m["role"] == "system");
    let first_turn = usize::from(system);
    if msgs.len() > first_turn + 1 {
        msgs.remove(first_turn);
        return true;
    }
    if system {
        if msgs[0]["content"].as_str().is_some_and(|c| c != SYSTEM) {
            msgs[0]["content"] = json!(SYSTEM);
        } else {
            msgs.remove(0);
        }
        return true;
    }
    false
}

/// Reads an OpenAI chat-completion stream (server-sent events), passing each content delta to
/// `sink`; the whole text.
fn read_stream(
    body: impl std::io::Read,
    sink: &mut dyn FnMut(&str),
) -> std::result::Result<String, String> {
    use std::io::BufRead;
    let mut all = String::new();
    for line in std::io::BufReader::new(body).lines() {
        let line = line.map_err(|e| format!("reading the stream: {e}"))?;
        let Some(data) = line.strip_prefix("data:").map(str::trim) else {
            continue;
        };
        if data == "[DONE]" {
            break;
        }
        let v: Value =
            serde_json::from_str(data).map_err(|e| format!("a stream event is not JSON: {e}"))?;
        if let Some(piece) = v["choices"][0]["delta"]["content"].as_str()
            && !piece.is_empty()
        {
            sink(piece);
            all.push_str(piece);
        }
    }
    let all = all.trim().to_owned();
    if all.is_empty() {
        return Err("the stream carried no text".into());
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prompt_shrinks_turns_first_then_passages_then_the_system_prompt() {
        let mut m = vec![
            json!({"role": "system", "content": format!("{SYSTEM}\n\n[1] Delivery: two days")}),
            json!({"role": "user", "content": "hi"}),
            json!({"role": "assistant", "content": "hello"}),
            json!({"role": "user", "content": "where is the moon?"}),
        ];
        let mut steps = Vec::new();
        while shrink(&mut m) {
            steps.push(m.len());
        }
        assert_eq!(steps, [3, 2, 2, 1]);
        assert_eq!(
            m,
            [json!({"role": "user", "content": "where is the moon?"})]
        );
    }
}

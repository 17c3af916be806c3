//! Custom actions on an action server, through Rasa's webhook protocol (what `rasa-sdk`
//! serves): `POST {url}` with `next_action`, `sender_id`, `tracker`, `domain` and `version`;
//! the answer's `events` are applied to the tracker and its `responses` sent to the user.

use std::time::Duration;

use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::tracker::{Event, Tracker};

/// The Rasa version duet speaks for (the SDK checks compatibility against it).
pub const RASA_VERSION: &str = "3.6.21";

pub use crate::project::{ActionEndpoint, Endpoints};

/// What an action server answered.
#[derive(Debug, Clone, Default)]
pub struct ActionResult {
    /// Events to apply.
    pub events: Vec<Event>,
    /// Messages: a `response` name to render, or text/buttons/image/custom as given.
    pub responses: Vec<Value>,
}

/// The tracker as the SDK reads it.
pub fn tracker_json(t: &Tracker) -> Value {
    // Rasa sends an empty message, not `null`, before the user has spoken.
    let latest = t.latest_message.as_ref().map_or_else(
        || json!({"intent": {}, "entities": [], "text": null, "message_id": null, "metadata": {}}),
        |m| json!(m),
    );
    let latest_action = t
        .latest_action_name
        .as_ref()
        .map_or_else(|| json!({}), |n| json!({"action_name": n}));
    json!({
        "sender_id": t.sender_id,
        "slots": t.slots,
        "latest_message": latest,
        "latest_action": latest_action,
        "latest_event_time": t.last_timestamp(),
        "events": t.events,
        "paused": false,
        "followup_action": t.followup_action,
        "active_loop": t.active_loop.as_ref().map_or_else(|| json!({}), |n| json!({"name": n})),
        "latest_action_name": t.latest_action_name,
    })
}

/// Calls `action` on the action server; the server being down, slow or refusing is an error
/// naming the action and the URL.
pub fn call(
    ep: &ActionEndpoint,
    action: &str,
    t: &Tracker,
    domain: &Value,
) -> Result<ActionResult> {
    let timeout = Duration::from_secs_f64(ep.timeout.unwrap_or(10.0).clamp(0.1, 600.0));
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build(),
    );
    let body = json!({
        "next_action": action,
        "sender_id": t.sender_id,
        "tracker": tracker_json(t),
        "domain": domain,
        "version": RASA_VERSION,
    });
    let fail = |why: String| Error::Model(format!("custom action {action} at {}: {why}", ep.url));
    let mut resp = agent
        .post(&ep.url)
        .header("Content-Type", "application/json")
        .send(body.to_string())
        .map_err(|e| fail(format!("the action server did not answer ({e})")))?;
    let status = resp.status().as_u16();
    let text = resp
        .body_mut()
        .read_to_string()
        .map_err(|e| fail(format!("reading the answer: {e}")))?;
    if status != 200 {
        let why = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or(text);
        return Err(fail(format!("HTTP {status}: {why}")));
    }
    let v: Value =
        serde_json::from_str(&text).map_err(|e| fail(format!("the answer is not JSON: {e}")))?;
    let mut out = ActionResult::default();
    for e in v
        .get("events")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match serde_json::from_value::<Event>(e.clone()) {
            Ok(ev) => out.events.push(ev),
            Err(err) => tracing::warn!("custom action {action}: event {e} ignored: {err}"),
        }
    }
    out.responses = v
        .get("responses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    Ok(out)
}

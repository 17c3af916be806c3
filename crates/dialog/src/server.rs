//! The assistant over HTTP, as Rasa serves it: the REST channel
//! (`POST /webhooks/rest/webhook`), `GET /conversations/{id}/tracker`, `POST /model/parse`,
//! `GET /status`, a web chat page at `/chat`, and duet's streaming variant of the REST channel
//! (`POST /webhooks/rest/stream`, server-sent events). Messages of one conversation are handled one at a time (in arrival order);
//! different conversations run in parallel. Bad requests get a JSON error naming the field.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::assistant::Assistant;
use crate::store::TrackerStore;
use crate::tracker::Tracker;

/// Longest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;
/// Longest conversation id accepted.
pub const MAX_SENDER: usize = 256;

/// What the routes share.
pub struct AppState {
    /// The assistant.
    pub assistant: Assistant,
    /// Where conversations are kept.
    pub store: Box<dyn TrackerStore>,
    /// One lock per conversation.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// `/status` body.
    status: Value,
}

impl AppState {
    /// Shared state for [`router`].
    pub fn new(assistant: Assistant, store: Box<dyn TrackerStore>, status: Value) -> Arc<Self> {
        Arc::new(Self {
            assistant,
            store,
            locks: Mutex::new(HashMap::new()),
            status,
        })
    }

    fn lock_for(&self, sender: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut m = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() > 100_000 {
            m.retain(|_, l| Arc::strong_count(l) > 1);
        }
        m.entry(sender.to_owned()).or_default().clone()
    }

    /// The conversation `sender` as stored, or a new one.
    fn tracker(&self, sender: &str) -> crate::Result<(Tracker, usize)> {
        let events = self.store.events(sender)?;
        if events.is_empty() {
            let t = self.assistant.new_tracker(sender);
            return Ok((t, 0));
        }
        let n = events.len();
        Ok((
            Tracker::from_events(sender, self.assistant.initial_slots(), events),
            n,
        ))
    }
}

/// An error answered as `{"error": ..., "field": ...}` with a status.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.0,
            Json(json!({"error": self.1, "status": self.0.as_u16()})),
        )
            .into_response()
    }
}

impl From<crate::Error> for ApiError {
    fn from(e: crate::Error) -> Self {
        tracing::error!("{e}");
        Self(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

fn body<T: for<'de> Deserialize<'de>>(
    b: Result<Json<Value>, JsonRejection>,
) -> Result<T, ApiError> {
    let Json(v) = b.map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("the body is not JSON: {}", e.body_text()),
        )
    })?;
    serde_json::from_value(v)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("invalid request: {e}")))
}

/// The REST channel's request.
#[derive(Debug, Deserialize)]
struct RestMessage {
    sender: String,
    message: String,
}

/// The REST channel's request, its sender checked.
fn rest_message(b: Result<Json<Value>, JsonRejection>) -> Result<RestMessage, ApiError> {
    let m: RestMessage = body(b)?;
    if m.sender.is_empty() || m.sender.len() > MAX_SENDER {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("field `sender` must be 1 to {MAX_SENDER} bytes"),
        ));
    }
    Ok(m)
}

async fn webhook(
    State(s): State<Arc<AppState>>,
    b: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let m = rest_message(b)?;
    let lock = s.lock_for(&m.sender);
    let _guard = lock.lock().await;
    let s2 = s.clone();
    let msgs = tokio::task::spawn_blocking(move || -> crate::Result<_> {
        let (mut t, stored) = s2.tracker(&m.sender)?;
        let before = if stored == 0 { 0 } else { t.events.len() };
        let msgs = s2.assistant.handle(&mut t, &m.message, Some("rest"));
        s2.store
            .append(&m.sender, &t.events[before.min(t.events.len())..])?;
        Ok(msgs)
    })
    .await
    .map_err(|e| {
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the handler failed: {e}"),
        )
    })??;
    Ok(Json(msgs).into_response())
}

/// duet's streaming REST channel: the same request as the webhook; the answer is server-sent
/// events — `delta` (`{"text"}`: a piece of a language model's answer as it is generated),
/// `message` (each bot message, as the webhook would answer it), then `done` (or `error`).
async fn webhook_stream(
    State(s): State<Arc<AppState>>,
    b: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    use axum::response::sse::{Event as Sse, KeepAlive};
    use tokio_stream::StreamExt;
    let m = rest_message(b)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Sse>(256);
    tokio::spawn(async move {
        let lock = s.lock_for(&m.sender);
        let _guard = lock.lock().await;
        let s2 = s.clone();
        let deltas = tx.clone();
        let done = tokio::task::spawn_blocking(move || -> crate::Result<_> {
            let (mut t, stored) = s2.tracker(&m.sender)?;
            let before = if stored == 0 { 0 } else { t.events.len() };
            let mut sink = |piece: &str| {
                let _ = deltas.blocking_send(
                    Sse::default()
                        .event("delta")
                        .data(json!({ "text": piece }).to_string()),
                );
            };
            let msgs = s2
                .assistant
                .handle_streaming(&mut t, &m.message, Some("rest"), &mut sink);
            s2.store
                .append(&m.sender, &t.events[before.min(t.events.len())..])?;
            Ok(msgs)
        })
        .await;
        match done {
            Ok(Ok(msgs)) => {
                for msg in msgs {
                    let data = serde_json::to_string(&msg).unwrap_or_default();
                    let _ = tx.send(Sse::default().event("message").data(data)).await;
                }
                let _ = tx.send(Sse::default().event("done").data("{}")).await;
            }
            Ok(Err(e)) => {
                tracing::error!("{e}");
                let err = json!({ "error": e.to_string() }).to_string();
                let _ = tx.send(Sse::default().event("error").data(err)).await;
            }
            Err(e) => {
                let err = json!({ "error": format!("the handler failed: {e}") }).to_string();
                let _ = tx.send(Sse::default().event("error").data(err)).await;
            }
        }
    });
    let stream =
        tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok::<_, std::convert::Infallible>);
    Ok(axum::response::sse::Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

async fn tracker(
    State(s): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let s2 = s.clone();
    let (t, _) = tokio::task::spawn_blocking(move || s2.tracker(&id))
        .await
        .map_err(|e| {
            ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the handler failed: {e}"),
            )
        })??;
    Ok(Json(json!({
        "sender_id": t.sender_id,
        "slots": t.slots,
        "latest_message": t.latest_message,
        "latest_action_name": t.latest_action_name,
        "active_loop": {"name": t.active_loop},
        "followup_action": t.followup_action,
        "events": t.events,
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
struct ParseRequest {
    text: String,
}

async fn parse(
    State(s): State<Arc<AppState>>,
    b: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let r: ParseRequest = body(b)?;
    let parsed = tokio::task::spawn_blocking(move || s.assistant.nlu.parse(&r.text))
        .await
        .map_err(|e| {
            ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the handler failed: {e}"),
            )
        })?;
    Ok(Json(parsed).into_response())
}

async fn status(State(s): State<Arc<AppState>>) -> Json<Value> {
    Json(s.status.clone())
}

/// The web chat page: messages, buttons and images over the REST channel; the conversation id
/// is kept in the browser's local storage and the history reloads from the tracker.
async fn chat_page() -> axum::response::Html<&'static str> {
    axum::response::Html(include_str!("../assets/chat.html"))
}

async fn hello() -> &'static str {
    concat!("Hello from duet: ", env!("CARGO_PKG_VERSION"))
}

/// The routes.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(hello))
        .route("/chat", get(chat_page))
        .route("/webhooks/rest/webhook", post(webhook))
        .route("/webhooks/rest/stream", post(webhook_stream))
        .route("/conversations/{id}/tracker", get(tracker))
        .route("/model/parse", post(parse))
        .route("/status", get(status))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .with_state(state)
}

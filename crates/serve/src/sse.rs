//! Server-sent events, one way for every streaming route: a task writes JSON events into an
//! [`SseSender`]; when the client goes away the channel closes, the task's next send fails and
//! it returns, dropping the engine's receivers so the engine frees the sequences.

use std::convert::Infallible;
use std::future::Future;

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, UnboundedReceiverStream};

use crate::engine::Event;

/// Where a streaming route writes its events.
pub(crate) struct SseSender(mpsc::Sender<Result<SseEvent, Infallible>>);

impl SseSender {
    /// Sends `v` as one `data:` line; `false` when the client has gone away.
    pub(crate) async fn json(&self, v: &impl Serialize) -> bool {
        let data = serde_json::to_string(v).unwrap_or_else(|e| {
            crate::error::ApiError::internal(format!("encoding an event: {e}"))
                .body()
                .to_string()
        });
        self.0
            .send(Ok(SseEvent::default().data(data)))
            .await
            .is_ok()
    }

    /// Sends `v` as an event named `name` (`event:` and `data:` lines, as the Responses API
    /// streams); `false` when the client has gone away.
    pub(crate) async fn named(&self, name: &str, v: &impl Serialize) -> bool {
        let data = serde_json::to_string(v).unwrap_or_default();
        self.0
            .send(Ok(SseEvent::default().event(name).data(data)))
            .await
            .is_ok()
    }

    /// Sends OpenAI's closing `data: [DONE]`.
    pub(crate) async fn done(&self) {
        let _ = self.0.send(Ok(SseEvent::default().data("[DONE]"))).await;
    }

    /// The next engine event, or `None` as soon as the client has gone away.
    pub(crate) async fn next_event(
        &self,
        events: &mut (impl futures_util::Stream<Item = (usize, Event)> + Unpin),
    ) -> Option<(usize, Event)> {
        tokio::select! {
            ev = events.next() => ev,
            () = self.0.closed() => None,
        }
    }
}

/// Runs `task` on its own and answers with the event stream it writes.
pub(crate) fn stream<F, Fut>(task: F) -> Response
where
    F: FnOnce(SseSender) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(task(SseSender(tx)));
    Sse::new(ReceiverStream::new(rx))
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// Merges the choices' events into one stream, tagged with the choice index.
pub(crate) fn merged(
    receivers: Vec<mpsc::UnboundedReceiver<Event>>,
) -> impl futures_util::Stream<Item = (usize, Event)> + Send + Unpin {
    futures_util::stream::select_all(receivers.into_iter().enumerate().map(|(i, rx)| {
        UnboundedReceiverStream::new(rx)
            .map(move |e| (i, e))
            .boxed()
    }))
}

//! `GET /health`: the served models and the load on their engines.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;

use crate::response::{Health, HealthModel};
use crate::state::AppState;

/// The server's models and how many sequences wait and decode.
pub(crate) async fn health(State(s): State<Arc<AppState>>) -> Json<Health> {
    let (queued, active) = s.load_counts();
    Json(Health {
        status: "ok",
        models: s
            .model_list()
            .into_iter()
            .map(|(id, kind)| HealthModel { id, kind })
            .collect(),
        queued,
        active,
    })
}

//! `GET /v1/models` and `GET /v1/models/{id}`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};

use crate::error::ApiError;
use crate::response::{ModelList, ModelObject};
use crate::state::AppState;

fn model_object(s: &AppState, name: &str, kind: &'static str) -> ModelObject {
    ModelObject {
        id: name.to_owned(),
        object: "model",
        created: s.started,
        owned_by: "duet",
        kind,
    }
}

/// Every served model.
pub(crate) async fn list(State(s): State<Arc<AppState>>) -> Json<ModelList> {
    let data = s
        .model_list()
        .into_iter()
        .map(|(n, k)| model_object(&s, &n, k))
        .collect();
    Json(ModelList {
        object: "list",
        data,
    })
}

/// One model, or 404.
pub(crate) async fn get(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<ModelObject>, ApiError> {
    let m = s.model(&id)?;
    Ok(Json(model_object(&s, &id, m.kind())))
}

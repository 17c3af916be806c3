//! The layers every request passes: authentication by API key, counting by route and status,
//! and the JSON 404 for routes that do not exist.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::Refusal;
use crate::error::ApiError;
use crate::metrics::RouteLabels;
use crate::state::AppState;

/// The key a request authenticated with (its index in [`crate::auth::Keys`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyUse(pub(crate) Option<usize>);

/// 404 in OpenAI's error shape.
pub(crate) async fn not_found(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route {} {}", req.method(), req.uri().path()),
    )
}

/// Counts every request by matched route and status.
pub(crate) async fn track(State(s): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let resp = next.run(req).await;
    s.metrics
        .requests
        .get_or_create(&RouteLabels {
            route,
            status: resp.status().as_u16(),
        })
        .inc();
    resp
}

/// Checks the bearer token on `/v1` routes.
pub(crate) async fn authenticate(
    State(s): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match s.keys.check(bearer) {
        Ok(k) => {
            req.extensions_mut().insert(KeyUse(k));
            next.run(req).await
        }
        Err(Refusal::Unauthorized) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            if bearer.is_some() {
                "Incorrect API key provided"
            } else {
                "No API key provided: send `Authorization: Bearer KEY`"
            },
        )
        .with_code("invalid_api_key")
        .into_response(),
        Err(Refusal::OverBudget(m, retry)) => ApiError::busy(m, retry).into_response(),
    }
}

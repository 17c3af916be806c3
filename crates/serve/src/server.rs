//! The router: every route under its path, with authentication on `/v1`, request counting,
//! the body limit, CORS and a catch-panic layer. Every failure answers in OpenAI's error
//! shape; nothing a client sends can stop the server.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Method, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::error::ApiError;
use crate::middleware;
use crate::routes;
use crate::state::AppState;

/// The router with every route and layer.
pub fn router(state: Arc<AppState>) -> Router {
    let v1 = Router::new()
        .route("/v1/models", get(routes::models::list))
        .route("/v1/models/{id}", get(routes::models::get))
        .route("/v1/chat/completions", post(routes::chat::chat))
        .route("/v1/completions", post(routes::completions::completions))
        .route("/v1/embeddings", post(routes::embeddings::embeddings))
        .route("/v1/responses", post(routes::responses::responses))
        .route("/v1/classify", post(routes::classify::classify))
        .route("/v1/extract", post(routes::extract::extract))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::authenticate,
        ));
    let mut app = Router::new()
        .merge(v1)
        .route("/health", get(routes::health::health))
        .route("/metrics", get(routes::metrics::metrics))
        .fallback(middleware::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::track,
        ))
        .layer(DefaultBodyLimit::max(state.limits.max_body))
        .layer(CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| ApiError::internal("internal error").into_response(),
        ));
    if !state.cors.is_empty() {
        let origins = if state.cors.iter().any(|o| o == "*") {
            AllowOrigin::any()
        } else {
            AllowOrigin::list(
                state
                    .cors
                    .iter()
                    .filter_map(|o| HeaderValue::from_str(o).ok()),
            )
        };
        app = app.layer(
            CorsLayer::new()
                .allow_origin(origins)
                .allow_methods([Method::GET, Method::POST])
                .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE]),
        );
    }
    app.with_state(state)
}

/// Serves `state` on `listener` until `shutdown` resolves; then stops accepting connections and
/// lets the requests in flight, streams included, finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

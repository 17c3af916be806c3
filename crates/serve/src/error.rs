//! Errors: what loading a server can fail with, and API errors answered in OpenAI's JSON shape
//! (`{"error": {"message", "type", "param", "code"}}`) with the right HTTP status.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// What starting a server can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A model failed to load.
    #[error("model {name:?}: {source}")]
    Model {
        /// The name it was to be served under.
        name: String,
        /// Why.
        #[source]
        source: duet_model::Error,
    },
    /// A classifier failed to load.
    #[error("classifier {name:?}: {source}")]
    Classifier {
        /// The name it was to be served under.
        name: String,
        /// Why.
        #[source]
        source: duet_model::Error,
    },
    /// A chat template does not compile.
    #[error("{path}: the chat template does not compile: {message}")]
    Template {
        /// Where the template came from.
        path: String,
        /// The template engine's message.
        message: String,
    },
    /// A file could not be read or a socket not bound.
    #[error("{what}: {source}")]
    Io {
        /// The file or address.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A setting is wrong.
    #[error("{0}")]
    Config(String),
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// An error answered to a client.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// What went wrong, for a person.
    pub message: String,
    /// The request field at fault.
    pub param: Option<String>,
    /// A machine-readable code (`model_not_found`, `context_length_exceeded`, ...).
    pub code: Option<&'static str>,
    /// Seconds to wait before retrying (429, 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with a status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            param: None,
            code: None,
            retry_after: None,
        }
    }

    /// 400: the request is wrong; `param` names the field.
    pub fn invalid(param: &str, message: impl Into<String>) -> Self {
        Self {
            param: Some(param.to_owned()),
            ..Self::new(StatusCode::BAD_REQUEST, message)
        }
    }

    /// 404: no model of that name.
    pub fn model_not_found(name: &str, served: &[String]) -> Self {
        Self {
            param: Some("model".into()),
            code: Some("model_not_found"),
            ..Self::new(
                StatusCode::NOT_FOUND,
                format!(
                    "The model `{name}` does not exist; this server has: {}",
                    served.join(", ")
                ),
            )
        }
    }

    /// 429: the queue is full or a key's budget is spent.
    pub fn busy(message: impl Into<String>, retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            code: Some("rate_limit_exceeded"),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, message)
        }
    }

    /// 500: something failed inside the server.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// Adds a machine-readable code.
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// OpenAI's `type` for the status.
    fn kind(&self) -> &'static str {
        match self.status.as_u16() {
            400 | 404 | 413 | 422 => "invalid_request_error",
            401 | 403 => "authentication_error",
            429 => "rate_limit_error",
            503 => "service_unavailable",
            _ => "server_error",
        }
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind(),
            "param": self.param,
            "code": self.code,
        }})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, axum::Json(self.body())).into_response();
        if let Some(s) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        r
    }
}

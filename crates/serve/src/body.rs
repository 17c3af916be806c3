//! Request bodies: JSON parsed into a request type, with the field at fault named.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ApiError;

/// Parses a JSON body; the error names the field at fault.
pub(crate) fn parse<T: DeserializeOwned>(
    body: std::result::Result<Bytes, BytesRejection>,
) -> std::result::Result<T, ApiError> {
    let bytes = body.map_err(|r| {
        let status = r.status();
        let msg = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "the request body is larger than the server accepts".to_owned()
        } else {
            r.body_text()
        };
        ApiError::new(status, msg)
    })?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        ApiError::invalid("body", format!("the request body is not valid UTF-8: {e}"))
    })?;
    let value: Value = serde_json::from_str(text)
        .map_err(|e| ApiError::invalid("body", format!("the request body is not JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::invalid(
            "body",
            "the request body must be a JSON object",
        ));
    }
    let located = |e: serde_path_to_error::Error<serde_json::Error>| {
        let path = e.path().to_string();
        (path, e.into_inner())
    };
    match serde_path_to_error::deserialize::<_, T>(&value) {
        Ok(v) => Ok(v),
        Err(e) => {
            let (mut path, inner) = located(e);
            if path.is_empty() || path == "." || path == "?" {
                // Fields flattened into the request (the sampling ones) lose their path;
                // find it by reading those fields alone.
                if let Err(e) = serde_path_to_error::deserialize::<_, crate::api::Sampling>(&value)
                {
                    path = located(e).0;
                }
            }
            if path.is_empty() || path == "." || path == "?" {
                Err(ApiError::invalid(
                    "body",
                    format!("the request body is not valid: {inner}"),
                ))
            } else {
                Err(ApiError::invalid(&path, format!("`{path}`: {inner}")))
            }
        }
    }
}

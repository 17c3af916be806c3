//! `POST /v1/embeddings`: sentence vectors from an encoder, as floats or base64, optionally
//! shortened to `dimensions` and re-normalised.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::{Extension, Json};
use base64::Engine as _;

use crate::api::EmbeddingRequest;
use crate::body::parse;
use crate::error::ApiError;
use crate::metrics::ModelLabel;
use crate::middleware::KeyUse;
use crate::response::{Embedding, EmbeddingData, EmbeddingList, InputUsage};
use crate::state::{AppState, Served, wrong_kind};

/// The route.
pub(crate) async fn embeddings(
    State(s): State<Arc<AppState>>,
    Extension(key): Extension<KeyUse>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<EmbeddingList>, ApiError> {
    let req: EmbeddingRequest = parse(body)?;
    let emb = match s.model(&req.model)? {
        Served::Embedder(e) => e.clone(),
        other => {
            return Err(wrong_kind(&req.model, other, "embed"));
        }
    };
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(f) => {
            return Err(ApiError::invalid(
                "encoding_format",
                format!("`encoding_format` is `float` or `base64`; got {f:?}"),
            ));
        }
    };
    let dims = match req.dimensions {
        None => None,
        Some(d) if d >= 1 && d as usize <= emb.dim() => Some(d as usize),
        Some(d) => {
            return Err(ApiError::invalid(
                "dimensions",
                format!("`dimensions` must be between 1 and {}; got {d}", emb.dim()),
            ));
        }
    };
    let texts = req.input.texts(Some(emb.tokenizer()), &s.limits)?;
    let (vectors, tokens) = s
        .blocking(move || {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let tokens: usize = emb
                .tokenize(&refs)
                .map_err(|e| e.to_string())?
                .iter()
                .map(Vec::len)
                .sum();
            let v = emb.embed(&refs, 32).map_err(|e| e.to_string())?;
            Ok((v, tokens))
        })
        .await?;
    s.metrics
        .tokens_in
        .get_or_create(&ModelLabel::new(&req.model))
        .inc_by(tokens as u64);
    s.keys.spend(key.0, tokens);
    let data = vectors
        .into_iter()
        .enumerate()
        .map(|(index, mut v)| {
            if let Some(d) = dims {
                v.truncate(d);
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                v.iter_mut().for_each(|x| *x /= norm);
            }
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                Embedding::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                Embedding::Floats(v)
            };
            EmbeddingData {
                object: "embedding",
                index,
                embedding,
            }
        })
        .collect();
    Ok(Json(EmbeddingList {
        object: "list",
        data,
        model: req.model,
        usage: InputUsage::new(tokens),
    }))
}

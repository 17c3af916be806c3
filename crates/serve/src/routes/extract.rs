//! `POST /v1/extract` (duet's own route): the keywords of each text (YAKE, re-ranked when
//! `model` names a sentence encoder), or JSON that a decoder writes under the constraint of
//! `schema`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::Value;

use crate::api::{ChatRequest, ExtractRequest, finish_name};
use crate::body::parse;
use crate::error::ApiError;
use crate::generate::collect;
use crate::middleware::KeyUse;
use crate::response::{ExtractList, Extracted};
use crate::state::{AppState, Served, wrong_kind};

/// The route.
pub(crate) async fn extract(
    State(s): State<Arc<AppState>>,
    Extension(key): Extension<KeyUse>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ExtractList>, ApiError> {
    let req: ExtractRequest = parse(body)?;
    let texts = req.input.texts(None, &s.limits)?;
    let data = match req.task.as_str() {
        "keywords" => keywords(&s, key, &req, texts).await?,
        "json" => json(&s, key, &req, &texts).await?,
        other => {
            return Err(ApiError::invalid(
                "task",
                format!("unknown task {other:?}; expected keywords or json"),
            ));
        }
    };
    Ok(Json(ExtractList {
        object: "list",
        task: req.task,
        model: req.model,
        data,
    }))
}

/// `task: keywords`.
async fn keywords(
    s: &AppState,
    key: KeyUse,
    req: &ExtractRequest,
    texts: Vec<String>,
) -> Result<Vec<Extracted>, ApiError> {
    let cfg = duet_extract::KeywordConfig {
        top: req.top.unwrap_or(10).clamp(1, 100),
        ngrams: req.ngrams.unwrap_or(3).clamp(1, 6),
        lang: req.lang.clone(),
        ..Default::default()
    };
    let mut x = duet_extract::KeywordExtractor::new(cfg)
        .map_err(|e| ApiError::invalid("lang", e.to_string()))?;
    if let Some(name) = &req.model {
        match s.model(name)? {
            Served::Embedder(e) => x = x.with_embedder(e.as_ref().clone()),
            other => return Err(wrong_kind(name, other, "extract keywords")),
        }
    }
    let words: usize = texts.iter().map(|t| t.split_whitespace().count()).sum();
    let found = s
        .blocking(move || {
            texts
                .iter()
                .map(|t| x.extract(t).map_err(|e| e.to_string()))
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
    s.keys.spend(key.0, words);
    Ok(found
        .into_iter()
        .enumerate()
        .map(|(index, keywords)| Extracted::Keywords { index, keywords })
        .collect())
}

/// `task: json`: one constrained chat request per text.
async fn json(
    s: &AppState,
    key: KeyUse,
    req: &ExtractRequest,
    texts: &[String],
) -> Result<Vec<Extracted>, ApiError> {
    let model = req
        .model
        .clone()
        .ok_or_else(|| ApiError::invalid("model", "`json` needs a decoder in `model`"))?;
    let schema = match &req.schema {
        Some(v @ Value::Object(_)) => v.clone(),
        _ => {
            return Err(ApiError::invalid(
                "schema",
                "`json` needs `schema`, a JSON schema object",
            ));
        }
    };
    let instruction = req
        .instruction
        .clone()
        .unwrap_or_else(|| duet_extract::json::default_instruction(&schema));
    let mut out = Vec::new();
    for (index, t) in texts.iter().enumerate() {
        let body = duet_extract::json::chat_request(
            &model,
            &instruction,
            &schema,
            t,
            req.max_tokens.unwrap_or(256),
        );
        let chat: ChatRequest = serde_json::from_value(body)
            .map_err(|e| ApiError::internal(format!("building the request: {e}")))?;
        let started = super::chat::start(s, &chat)?;
        let (choices, usage) = collect(started.sub).await?;
        s.keys.spend(key.0, usage.total_tokens);
        let c = choices
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::internal("no choice came back"))?;
        let text = c.text.trim();
        let json: Value = serde_json::from_str(text).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "input[{index}]: the answer is not complete JSON ({e}; finish: {}); raise max_tokens",
                    c.finish.map(finish_name).unwrap_or("none")
                ),
            )
        })?;
        out.push(Extracted::Json { index, json });
    }
    Ok(out)
}

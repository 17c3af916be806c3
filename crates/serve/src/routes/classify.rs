//! `POST /v1/classify` (duet's own route): class probabilities of texts from a fine-tuned
//! encoder or a TF-IDF model.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::{Extension, Json};
use duet_model::predict::Classifier;
use serde_json::json;

use crate::api::ClassifyRequest;
use crate::body::parse;
use crate::error::ApiError;
use crate::middleware::KeyUse;
use crate::response::{Classified, ClassifyList, InputUsage};
use crate::state::{AppState, Served, wrong_kind};

/// The route.
pub(crate) async fn classify(
    State(s): State<Arc<AppState>>,
    Extension(key): Extension<KeyUse>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ClassifyList>, ApiError> {
    let req: ClassifyRequest = parse(body)?;
    let c = match s.model(&req.model)? {
        Served::Classifier(c) => c.clone(),
        other => {
            return Err(wrong_kind(&req.model, other, "classify"));
        }
    };
    let tok = match c.as_ref() {
        Classifier::Bert { tokenizer, .. } => Some(tokenizer.as_ref()),
        Classifier::Tfidf(_) => None,
    };
    let texts = req.input.texts(tok, &s.limits)?;
    let c2 = c.clone();
    let (probs, tokens) = s
        .blocking(move || {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let tokens = match c2.as_ref() {
                Classifier::Bert { tokenizer, .. } => tokenizer
                    .encode_batch(refs.clone(), true)
                    .map_err(|e| e.to_string())?
                    .iter()
                    .map(|e| e.len())
                    .sum(),
                Classifier::Tfidf(_) => refs.iter().map(|t| t.split_whitespace().count()).sum(),
            };
            let p = c2.predict_proba(&refs, 16).map_err(|e| e.to_string())?;
            Ok((p, tokens))
        })
        .await?;
    s.keys.spend(key.0, tokens);
    let labels = c.labels();
    let data = probs
        .iter()
        .enumerate()
        .map(|(index, p)| {
            let best = duet_model::predict::argmax(p);
            Classified {
                index,
                label: labels[best].clone(),
                score: p[best],
                probs: labels
                    .iter()
                    .zip(p)
                    .map(|(l, &x)| (l.clone(), json!(x)))
                    .collect(),
            }
        })
        .collect();
    Ok(Json(ClassifyList {
        object: "list",
        model: req.model,
        data,
        usage: InputUsage::new(tokens),
    }))
}

//! One file per HTTP route. Each handler parses its body ([`crate::body`]), checks it, and
//! answers with a typed body from [`crate::response`] or an [`crate::ApiError`].

pub(crate) mod chat;
pub(crate) mod classify;
pub(crate) mod completions;
pub(crate) mod embeddings;
pub(crate) mod extract;
pub(crate) mod health;
pub(crate) mod metrics;
pub(crate) mod models;
pub(crate) mod responses;

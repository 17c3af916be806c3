//! `duet serve`: language models behind an OpenAI-compatible HTTP API.
//!
//! The [`engine`] owns a decoder on its own thread and batches decode steps across every
//! active request (continuous batching, one KV cache per sequence, cancellation when a client
//! goes away, a bounded queue). The [`server`] holds generators, embedding models and
//! classifiers side by side and answers `/v1/models`, `/v1/completions`,
//! `/v1/chat/completions` (with the model's chat template, `duet_model::chat`), `/v1/embeddings`,
//! `/v1/classify`, `/health` and `/metrics`, with API keys ([`auth`]), limits and OpenAI-shaped
//! errors ([`error`]).

pub mod api;
pub mod auth;
pub mod engine;
pub mod error;
pub mod metrics;
pub mod server;

pub use error::{ApiError, Error, Result};
pub use server::{AppState, ServeConfig, load, router, serve};

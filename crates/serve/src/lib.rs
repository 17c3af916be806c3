//! `duet serve`: language models behind an OpenAI-compatible HTTP API.
//!
//! The [`engine`] owns a decoder on its own thread and batches decode steps across every
//! active request (continuous batching, one KV cache per sequence, cancellation when a client
//! goes away, a bounded queue). The [`state`] holds generators, embedding models and
//! classifiers side by side; the [`server`] routes `/v1/models`, `/v1/completions`,
//! `/v1/chat/completions` (with the model's chat template, `duet_model::chat`), `/v1/embeddings`,
//! `/v1/classify`, `/v1/extract`, `/health` and `/metrics` to one file each under `routes/`,
//! with API keys ([`auth`]), limits and OpenAI-shaped errors ([`error`]). Request bodies are
//! in [`api`], response bodies in [`response`].

pub mod api;
pub mod auth;
mod body;
pub mod engine;
pub mod error;
mod generate;
pub mod metrics;
mod middleware;
pub mod prefix;
pub mod response;
mod routes;
pub mod server;
mod sse;
pub mod state;
mod tools;

pub use error::{ApiError, Error, Result};
pub use server::{router, serve};
pub use state::{AppState, ServeConfig, load};

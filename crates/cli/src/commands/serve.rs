//! `duet serve`: models behind an OpenAI-compatible HTTP API.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use duet_serve::ServeConfig;
use duet_serve::api::Limits;
use duet_serve::engine::EngineConfig;

/// Arguments of `duet serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A model to serve as NAME=DIR (repeatable): a decoder (chat, completions), a sentence
    /// encoder (embeddings) or a classifier (/v1/classify); the request's `model` picks one.
    #[arg(long = "model", value_name = "NAME=DIR", required = true)]
    pub models: Vec<String>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port (0: any free port; the startup line says which).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Accept this API key (repeatable); without keys, /v1 routes are open.
    #[arg(long, env = "DUET_API_KEY", hide_env_values = true)]
    pub api_key: Vec<String>,
    /// A file of API keys, one per line: `KEY [rpm=N] [tpm=N]` or `sha256:HEX [rpm=N] [tpm=N]`.
    #[arg(long)]
    pub api_keys_file: Option<PathBuf>,
    /// Sequences decoded together per generator.
    #[arg(long, default_value_t = 64)]
    pub max_batch: usize,
    /// Requests waiting per generator before the server answers 429.
    #[arg(long, default_value_t = 256)]
    pub queue: usize,
    /// Prompt tokens run between two decode steps while others decode (a longer prompt runs in
    /// chunks of this size over several steps, which bounds the stall new requests cause
    /// running streams).
    #[arg(long, default_value_t = 128)]
    pub prefill_budget: usize,
    /// Megabytes of keys and values each generator keeps for prompt prefixes it has run (a
    /// shared system prompt, the earlier turns of a conversation) so that later requests skip
    /// them; 0 turns the prefix cache off.
    #[arg(long, default_value_t = 256)]
    pub prefix_cache_mb: usize,
    /// Largest `max_tokens` a request may ask for.
    #[arg(long, default_value_t = 4096)]
    pub max_tokens: usize,
    /// Largest `n` (choices per request).
    #[arg(long, default_value_t = 8)]
    pub max_n: usize,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 4 << 20)]
    pub max_body: usize,
    /// Seconds a request may run (0: no limit).
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Allow browser requests from this origin (repeatable; `*` for any). CORS is off without it.
    #[arg(long)]
    pub cors_origin: Vec<String>,
}

/// Runs the server until Ctrl-C or SIGTERM; in-flight streams finish first.
pub fn run(a: ServeArgs) -> Result<()> {
    let mut models = Vec::new();
    for m in &a.models {
        let Some((name, dir)) = m.split_once('=') else {
            bail!("--model {m:?}: expected NAME=DIR, e.g. --model gpt=runs/lm/final");
        };
        if name.is_empty() {
            bail!("--model {m:?}: the name is empty");
        }
        models.push((name.to_owned(), PathBuf::from(dir)));
    }
    let cfg = ServeConfig {
        models,
        limits: Limits {
            max_tokens: a.max_tokens,
            max_n: a.max_n,
            max_body: a.max_body,
            ..Limits::default()
        },
        engine: EngineConfig {
            max_batch: a.max_batch,
            queue: a.queue,
            prefill_budget: a.prefill_budget,
            prefix_cache_bytes: a.prefix_cache_mb << 20,
        },
        request_timeout: Duration::from_secs(a.timeout),
        api_keys: a.api_key.clone(),
        api_keys_file: a.api_keys_file.clone(),
        cors_origins: a.cors_origin.clone(),
        blocking_jobs: 2,
    };
    let state = duet_serve::load(&cfg)?;
    super::runtime()?.block_on(async move {
        let addr = format!("{}:{}", a.host, a.port);
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let local = listener.local_addr()?;
        let names: Vec<String> = state
            .model_list()
            .into_iter()
            .map(|(n, k)| format!("{n} ({k})"))
            .collect();
        let auth = if a.api_key.is_empty() && a.api_keys_file.is_none() {
            "no API key"
        } else {
            "API keys required"
        };
        say!(
            "duet serve: http://{local}/v1 — models: {} — {auth}",
            names.join(", ")
        );
        duet_serve::serve(listener, state, shutdown())
            .await
            .context("serving")?;
        eprintln!("duet serve: stopped");
        Ok(())
    })
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    eprintln!("duet serve: shutting down; finishing in-flight requests");
}

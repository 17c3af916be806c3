//! What a server holds: its configuration, the models it loaded (generators behind engines,
//! embedders, classifiers) and the state every route shares.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use duet_model::ModelKind;
use duet_model::chat::ChatTemplate;
use duet_model::constrain::Grammars;
use duet_model::embed::SentenceEmbedder;
use duet_model::lm::LoadedLm;
use duet_model::predict::Classifier;
use tokenizers::Tokenizer;
use tokio::sync::Semaphore;

use crate::api::Limits;
use crate::auth::Keys;
use crate::engine::{Engine, EngineConfig};
use crate::error::{ApiError, Error, Result};
use crate::metrics::Metrics;

/// Everything `duet serve` is configured with.
#[derive(Debug, Clone, Default)]
pub struct ServeConfig {
    /// `(name, directory)` of each model to serve.
    pub models: Vec<(String, PathBuf)>,
    /// Bounds on requests.
    pub limits: Limits,
    /// Batching and queue of each generator.
    pub engine: EngineConfig,
    /// A request that runs longer fails (0: no limit).
    pub request_timeout: Duration,
    /// Accepted API keys (none: no authentication).
    pub api_keys: Vec<String>,
    /// A file of keys with budgets (see [`crate::auth`]).
    pub api_keys_file: Option<PathBuf>,
    /// Origins allowed by CORS (none: CORS off; `*`: any).
    pub cors_origins: Vec<String>,
    /// Embedding and classification batches run at once at most.
    pub blocking_jobs: usize,
}

/// A decoder behind an engine.
pub struct Generator {
    pub(crate) engine: Engine,
    pub(crate) tokenizer: Arc<Tokenizer>,
    pub(crate) template: ChatTemplate,
    pub(crate) context: usize,
    pub(crate) vocab: usize,
    pub(crate) stop_ids: Vec<u32>,
    /// Structured output, or why this model cannot do it.
    pub(crate) grammars: std::result::Result<Grammars, String>,
    /// `system_fingerprint`: this build and these weights, which with a choice's seed
    /// reproduce its output.
    pub(crate) fingerprint: String,
}

/// A model the server holds.
pub enum Served {
    /// Text generation (completions, chat).
    Generator(Box<Generator>),
    /// Sentence embeddings.
    Embedder(Arc<SentenceEmbedder>),
    /// A classifier (`/v1/classify`).
    Classifier(Arc<Classifier>),
}

impl Served {
    /// The kind `/v1/models` reports.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Generator(_) => "generator",
            Self::Embedder(_) => "embeddings",
            Self::Classifier(_) => "classifier",
        }
    }
}

/// The server's shared state.
pub struct AppState {
    pub(crate) models: BTreeMap<String, Served>,
    pub(crate) limits: Limits,
    pub(crate) timeout: Option<Duration>,
    pub(crate) keys: Keys,
    pub(crate) metrics: Arc<Metrics>,
    blocking: Semaphore,
    pub(crate) cors: Vec<String>,
    pub(crate) started: u64,
    ids: AtomicU64,
}

/// Seconds since the Unix epoch (OpenAI's `created`).
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A chat template that does not compile, as a configuration error.
fn template_err(e: duet_model::Error) -> Error {
    match e {
        duet_model::Error::Template { path, message } => Error::Template { path, message },
        other => Error::Template {
            path: "chat template".into(),
            message: other.to_string(),
        },
    }
}

/// `fp_` and 12 hexadecimal digits of a hash of duet's version and the model's files (their
/// names, sizes and modification times), so it changes when either does.
fn fingerprint(path: &std::path::Path) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(env!("CARGO_PKG_VERSION"));
    let mut files: Vec<std::path::PathBuf> = if path.is_dir() {
        std::fs::read_dir(path)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default()
    } else {
        vec![path.to_path_buf()]
    };
    files.sort();
    for f in files {
        h.update(
            f.file_name()
                .map(|n| n.as_encoded_bytes())
                .unwrap_or_default(),
        );
        if let Ok(m) = f.metadata() {
            h.update(m.len().to_le_bytes());
            let t = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            h.update(t.to_le_bytes());
        }
    }
    let d = h.finalize();
    format!(
        "fp_{}",
        d[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

/// Loads every model of `cfg` and starts the engines.
pub fn load(cfg: &ServeConfig) -> Result<Arc<AppState>> {
    if cfg.models.is_empty() {
        return Err(Error::Config(
            "no model to serve: give --model NAME=DIR".into(),
        ));
    }
    let metrics = Arc::new(Metrics::new());
    let mut models = BTreeMap::new();
    for (name, dir) in &cfg.models {
        if models.contains_key(name) {
            return Err(Error::Config(format!(
                "the model name {name:?} is given twice"
            )));
        }
        let model_err = |source| Error::Model {
            name: name.clone(),
            source,
        };
        let served = if dir.join("tfidf.json").is_file() {
            Served::Classifier(Arc::new(Classifier::load(dir).map_err(|source| {
                Error::Classifier {
                    name: name.clone(),
                    source,
                }
            })?))
        } else {
            let kind = if duet_model::lm::is_gguf(dir) {
                ModelKind::Decoder
            } else {
                duet_model::model_kind(dir).map_err(model_err)?
            };
            match kind {
                ModelKind::Decoder => {
                    let dev = candle_core::Device::Cpu;
                    let loaded = LoadedLm::load(dir, &dev).map_err(model_err)?;
                    let tokenizer = Arc::new(loaded.tokenizer.clone());
                    let template = match &loaded.gguf {
                        Some(g) => match &g.chat_template {
                            Some(src) => {
                                let text = |id: Option<u32>| {
                                    id.and_then(|i| tokenizer.id_to_token(i))
                                        .unwrap_or_default()
                                };
                                ChatTemplate::new(
                                    src.clone(),
                                    &format!("{}: tokenizer.chat_template", dir.display()),
                                    text(g.special.bos),
                                    text(g.special.eos),
                                )
                                .map_err(template_err)?
                            }
                            None => ChatTemplate::builtin().map_err(template_err)?,
                        },
                        None => ChatTemplate::load(dir).map_err(template_err)?,
                    };
                    let mut stop_ids = loaded.stop_ids();
                    stop_ids.extend(
                        ["<|endoftext|>", "</s>", "<|im_end|>", "<|eot_id|>"]
                            .iter()
                            .filter_map(|t| tokenizer.token_to_id(t)),
                    );
                    stop_ids.sort_unstable();
                    stop_ids.dedup();
                    let model = loaded.lm;
                    let context = model.context();
                    let vocab = model.vocab();
                    let grammars = match stop_ids.first() {
                        Some(&eos) => Grammars::new(tokenizer.clone(), vocab, eos),
                        None => Err("the model has no end-of-sequence token".to_owned()),
                    };
                    if let Err(why) = &grammars {
                        tracing::warn!(model = %name, "no structured output: {why}");
                    }
                    let engine = Engine::start(
                        name,
                        model,
                        tokenizer.clone(),
                        cfg.engine.clone(),
                        metrics.clone(),
                    )
                    .map_err(|source| Error::Io {
                        what: format!("starting the engine of {name}"),
                        source,
                    })?;
                    Served::Generator(Box::new(Generator {
                        engine,
                        tokenizer,
                        template,
                        context,
                        vocab,
                        stop_ids,
                        grammars,
                        fingerprint: fingerprint(dir),
                    }))
                }
                ModelKind::Encoder { architecture } if architecture.contains("Classification") => {
                    Served::Classifier(Arc::new(Classifier::load(dir).map_err(|source| {
                        Error::Classifier {
                            name: name.clone(),
                            source,
                        }
                    })?))
                }
                ModelKind::Encoder { .. } => Served::Embedder(
                    SentenceEmbedder::load(dir, &candle_core::Device::Cpu)
                        .map_err(model_err)?
                        .into_shared(),
                ),
            }
        };
        tracing::info!(model = %name, kind = served.kind(), dir = %dir.display(), "loaded");
        models.insert(name.clone(), served);
    }
    Ok(Arc::new(AppState {
        models,
        limits: cfg.limits.clone(),
        timeout: (!cfg.request_timeout.is_zero()).then_some(cfg.request_timeout),
        keys: Keys::load(&cfg.api_keys, cfg.api_keys_file.as_deref())?,
        metrics,
        blocking: Semaphore::new(cfg.blocking_jobs.max(1)),
        cors: cfg.cors_origins.clone(),
        started: now_secs(),
        ids: AtomicU64::new(0),
    }))
}

/// 400: the model `name` exists but does not do what the route asks (`what`).
pub(crate) fn wrong_kind(name: &str, served: &Served, what: &str) -> ApiError {
    ApiError::invalid(
        "model",
        format!(
            "`{name}` is a model of kind `{}`; it does not {what}",
            served.kind()
        ),
    )
}

impl AppState {
    /// `(name, kind)` of each served model.
    pub fn model_list(&self) -> Vec<(String, &'static str)> {
        self.models
            .iter()
            .map(|(n, m)| (n.clone(), m.kind()))
            .collect()
    }

    /// Sequences waiting and decoding over every generator (for tests and health).
    pub fn load_counts(&self) -> (usize, usize) {
        self.models
            .values()
            .filter_map(|m| match m {
                Served::Generator(g) => Some((g.engine.queued(), g.engine.active())),
                _ => None,
            })
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    }

    /// The model called `name`, or 404.
    pub(crate) fn model(&self, name: &str) -> std::result::Result<&Served, ApiError> {
        self.models.get(name).ok_or_else(|| {
            ApiError::model_not_found(name, &self.models.keys().cloned().collect::<Vec<_>>())
        })
    }

    /// The generator called `name`, or 404/400.
    pub(crate) fn generator(&self, name: &str) -> std::result::Result<&Generator, ApiError> {
        match self.model(name)? {
            Served::Generator(g) => Ok(g),
            other => Err(wrong_kind(name, other, "generate text")),
        }
    }

    /// A fresh response id such as `chatcmpl-…`.
    pub(crate) fn id(&self, prefix: &str) -> String {
        let n = self.ids.fetch_add(1, Ordering::Relaxed);
        format!("{prefix}-{:x}{n:06x}", self.started)
    }

    /// Runs blocking model work on the blocking pool, a bounded number at a time.
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> std::result::Result<T, String> + Send + 'static,
    ) -> std::result::Result<T, ApiError> {
        let _permit = self.blocking.acquire().await.map_err(|_| {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the server is stopping")
        })?;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|_| ApiError::internal("internal error"))?
            .map_err(ApiError::internal)
    }
}

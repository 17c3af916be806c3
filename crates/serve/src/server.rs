//! The HTTP layer: the models a server holds, the OpenAI routes, authentication, metrics and
//! limits. Every failure answers in OpenAI's error shape; nothing a client sends can stop the
//! server.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path as UrlPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use base64::Engine as _;
use duet_model::ModelKind;
use duet_model::embed::SentenceEmbedder;
use duet_model::generate::{FinishReason, SamplingParams};
use duet_model::lm::LoadedLm;
use duet_model::predict::Classifier;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokenizers::Tokenizer;
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::{ReceiverStream, UnboundedReceiverStream};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::api::{
    ChatLogprobs, ChatRequest, Checked, ClassifyRequest, CompletionRequest, EmbeddingRequest,
    ExtractRequest, Input, Limits, Prompt, ResponseFormat, Usage, finish_name,
};
use crate::auth::{Keys, Refusal};
use crate::engine::{Engine, EngineConfig, Event, Job, SubmitError, TokenLogprob};
use crate::error::{ApiError, Error, Result};
use crate::metrics::{Metrics, ModelLabel, RouteLabels};
use duet_model::chat::{BUILTIN_STOPS, ChatTemplate};
use duet_model::constrain::{Constraint, Grammars};

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
    engine: Engine,
    tokenizer: Arc<Tokenizer>,
    template: ChatTemplate,
    context: usize,
    vocab: usize,
    stop_ids: Vec<u32>,
    /// Structured output, or why this model cannot do it.
    grammars: std::result::Result<Grammars, String>,
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
    fn kind(&self) -> &'static str {
        match self {
            Self::Generator(_) => "generator",
            Self::Embedder(_) => "embeddings",
            Self::Classifier(_) => "classifier",
        }
    }
}

/// The server's shared state.
pub struct AppState {
    models: BTreeMap<String, Served>,
    limits: Limits,
    timeout: Option<Duration>,
    keys: Keys,
    metrics: Arc<Metrics>,
    blocking: Semaphore,
    cors: Vec<String>,
    started: u64,
    ids: AtomicU64,
}

/// The key a request authenticated with (its index in [`Keys`]).
#[derive(Debug, Clone, Copy)]
struct KeyUse(Option<usize>);

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What a `response_format` asks of the output, as the decoder's constraint (`None` for text).
fn constraint_of(f: &ResponseFormat) -> std::result::Result<Option<Constraint>, ApiError> {
    Ok(match f {
        ResponseFormat::Text => None,
        ResponseFormat::JsonObject => Some(Constraint::JsonSchema(json!({"type": "object"}))),
        ResponseFormat::JsonSchema { json_schema } => match json_schema.get("schema") {
            Some(s) => Some(Constraint::JsonSchema(s.clone())),
            None => {
                return Err(ApiError::invalid(
                    "response_format",
                    "`response_format.json_schema.schema` is missing",
                ));
            }
        },
    })
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
fn wrong_kind(name: &str, served: &Served, what: &str) -> ApiError {
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

    fn model(&self, name: &str) -> std::result::Result<&Served, ApiError> {
        self.models.get(name).ok_or_else(|| {
            ApiError::model_not_found(name, &self.models.keys().cloned().collect::<Vec<_>>())
        })
    }

    fn generator(&self, name: &str) -> std::result::Result<&Generator, ApiError> {
        match self.model(name)? {
            Served::Generator(g) => Ok(g),
            other => Err(wrong_kind(name, other, "generate text")),
        }
    }

    fn id(&self, prefix: &str) -> String {
        let n = self.ids.fetch_add(1, Ordering::Relaxed);
        format!("{prefix}-{:x}{n:06x}", self.started)
    }
}

/// The router with every route and layer.
pub fn router(state: Arc<AppState>) -> Router {
    let v1 = Router::new()
        .route("/v1/models", get(list_models))
        .route("/v1/models/{id}", get(get_model))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/classify", post(classify))
        .route("/v1/extract", post(extract))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    let mut app = Router::new()
        .merge(v1)
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .layer(DefaultBodyLimit::max(state.limits.max_body))
        .layer(CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| ApiError::internal("internal error").into_response(),
        ));
    if !state.cors.is_empty() {
        let origins = if state.cors.iter().any(|o| o == "*") {
            AllowOrigin::any()
        } else {
            AllowOrigin::list(
                state
                    .cors
                    .iter()
                    .filter_map(|o| HeaderValue::from_str(o).ok()),
            )
        };
        app = app.layer(
            CorsLayer::new()
                .allow_origin(origins)
                .allow_methods([Method::GET, Method::POST])
                .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE]),
        );
    }
    app.with_state(state)
}

/// Serves `state` on `listener` until `shutdown` resolves; then stops accepting connections and
/// lets the requests in flight, streams included, finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn not_found(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route {} {}", req.method(), req.uri().path()),
    )
}

/// Counts every request by matched route and status.
async fn track(State(s): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let resp = next.run(req).await;
    s.metrics
        .requests
        .get_or_create(&RouteLabels {
            route,
            status: resp.status().as_u16(),
        })
        .inc();
    resp
}

/// Checks the bearer token on `/v1` routes.
async fn authenticate(State(s): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match s.keys.check(bearer) {
        Ok(k) => {
            req.extensions_mut().insert(KeyUse(k));
            next.run(req).await
        }
        Err(Refusal::Unauthorized) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            if bearer.is_some() {
                "Incorrect API key provided"
            } else {
                "No API key provided: send `Authorization: Bearer KEY`"
            },
        )
        .with_code("invalid_api_key")
        .into_response(),
        Err(Refusal::OverBudget(m, retry)) => ApiError::busy(m, retry).into_response(),
    }
}

/// Parses a JSON body; the error names the field at fault.
fn parse<T: DeserializeOwned>(
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

async fn health(State(s): State<Arc<AppState>>) -> Json<Value> {
    let (queued, active) = s.load_counts();
    Json(json!({
        "status": "ok",
        "models": s.model_list().into_iter().map(|(n, k)| json!({"id": n, "kind": k})).collect::<Vec<_>>(),
        "queued": queued,
        "active": active,
    }))
}

async fn metrics(State(s): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(),
    )
        .into_response()
}

fn model_object(s: &AppState, name: &str, kind: &str) -> Value {
    json!({"id": name, "object": "model", "created": s.started, "owned_by": "duet", "kind": kind})
}

async fn list_models(State(s): State<Arc<AppState>>) -> Json<Value> {
    let data: Vec<Value> = s
        .model_list()
        .into_iter()
        .map(|(n, k)| model_object(&s, &n, k))
        .collect();
    Json(json!({"object": "list", "data": data}))
}

async fn get_model(
    State(s): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
) -> std::result::Result<Json<Value>, ApiError> {
    let m = s.model(&id)?;
    Ok(Json(model_object(&s, &id, m.kind())))
}

/// What every choice of a generation collected.
#[derive(Debug, Default)]
struct Choice {
    text: String,
    logprobs: Vec<TokenLogprob>,
    finish: Option<FinishReason>,
    completion_tokens: usize,
}

/// The jobs of one request, one receiver per choice.
struct Submitted {
    receivers: Vec<mpsc::UnboundedReceiver<Event>>,
    prompt_tokens: usize,
}

impl Generator {
    /// Checks the prompt against the context and sets the token budget.
    fn fit(
        &self,
        prompt: &[u32],
        checked: &Checked,
    ) -> std::result::Result<SamplingParams, ApiError> {
        if prompt.is_empty() {
            return Err(ApiError::invalid(
                "prompt",
                "the prompt encodes to no tokens",
            ));
        }
        if let Some(&bad) = prompt.iter().find(|&&t| t as usize >= self.vocab) {
            return Err(ApiError::invalid(
                "prompt",
                format!("token id {bad} is outside the vocabulary of {}", self.vocab),
            ));
        }
        let mut p = checked.params.clone();
        let room = self.context.saturating_sub(prompt.len());
        if room == 0 {
            return Err(ApiError::invalid(
                "messages",
                format!(
                    "This model's maximum context length is {} tokens; the prompt has {} tokens, {} over (and leaves no room to generate)",
                    self.context,
                    prompt.len(),
                    prompt.len() + 1 - self.context,
                ),
            )
            .with_code("context_length_exceeded"));
        }
        if checked.explicit_max && prompt.len() + p.max_new_tokens > self.context {
            return Err(ApiError::invalid(
                "max_tokens",
                format!(
                    "This model's maximum context length is {} tokens; you asked for {} ({} in the prompt + {} to generate), {} over",
                    self.context,
                    prompt.len() + p.max_new_tokens,
                    prompt.len(),
                    p.max_new_tokens,
                    prompt.len() + p.max_new_tokens - self.context
                ),
            )
            .with_code("context_length_exceeded"));
        }
        p.max_new_tokens = p.max_new_tokens.min(room);
        if !checked.ignore_eos {
            p.stop_token_ids = self.stop_ids.clone();
        }
        Ok(p)
    }

    fn encode(&self, text: &str, special: bool) -> std::result::Result<Vec<u32>, ApiError> {
        self.tokenizer
            .encode(text, special)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| ApiError::internal(format!("tokenizing the prompt: {e}")))
    }
}

/// Queues `n` choices for each prompt.
fn submit(
    s: &AppState,
    name: &str,
    g: &Generator,
    prompts: &[(Vec<u32>, SamplingParams)],
    n: usize,
    logprobs: Option<usize>,
    format: Option<&ResponseFormat>,
) -> std::result::Result<Submitted, ApiError> {
    let deadline = s.timeout.map(|t| Instant::now() + t);
    let grammar = || -> std::result::Result<Option<llguidance::Matcher>, ApiError> {
        let Some(c) = format.map(constraint_of).transpose()?.flatten() else {
            return Ok(None);
        };
        let grammars = g.grammars.as_ref().map_err(|why| {
            ApiError::invalid(
                "response_format",
                format!("this model cannot do structured output: {why}"),
            )
        })?;
        grammars
            .matcher(&c)
            .map(Some)
            .map_err(|e| ApiError::invalid("response_format", e))
    };
    let mut receivers = Vec::new();
    let mut prompt_tokens = 0;
    for (prompt, params) in prompts {
        prompt_tokens += prompt.len();
        for i in 0..n {
            let (tx, rx) = mpsc::unbounded_channel();
            let mut params = params.clone();
            params.seed = params.seed.wrapping_add(i as u64);
            let job = Job {
                prompt: prompt.clone(),
                params,
                logprobs,
                deadline,
                events: tx,
                grammar: grammar()?,
            };
            match g.engine.submit(job) {
                Ok(()) => receivers.push(rx),
                Err(SubmitError::Full) => {
                    return Err(ApiError::busy(
                        format!("the server is busy ({name}'s queue is full); retry shortly"),
                        1,
                    ));
                }
                Err(SubmitError::Stopped) => {
                    return Err(ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the model's engine has stopped",
                    ));
                }
            }
        }
    }
    s.metrics
        .tokens_in
        .get_or_create(&ModelLabel::new(name))
        .inc_by(prompt_tokens as u64);
    Ok(Submitted {
        receivers,
        prompt_tokens,
    })
}

/// Waits for every choice to finish.
async fn collect(sub: Submitted) -> std::result::Result<(Vec<Choice>, Usage), ApiError> {
    let mut choices = Vec::new();
    let mut usage = Usage {
        prompt_tokens: sub.prompt_tokens,
        ..Usage::default()
    };
    for mut rx in sub.receivers {
        let mut c = Choice::default();
        while let Some(ev) = rx.recv().await {
            match ev {
                Event::Delta { text, logprobs } => {
                    c.text.push_str(&text);
                    c.logprobs.extend(logprobs);
                }
                Event::Done {
                    finish,
                    completion_tokens,
                    ..
                } => {
                    c.finish = Some(finish);
                    c.completion_tokens = completion_tokens;
                    usage.add(0, completion_tokens);
                    break;
                }
                Event::Failed(m) => return Err(ApiError::internal(m)),
            }
        }
        if c.finish.is_none() {
            return Err(ApiError::internal("the engine dropped the request"));
        }
        choices.push(c);
    }
    Ok((choices, usage))
}

/// A chat request checked, rendered through the model's template and submitted.
struct StartedChat {
    sub: Submitted,
    /// `top_logprobs` when log-probabilities were asked for.
    top: Option<usize>,
    stream: bool,
    include_usage: bool,
}

/// Checks a chat request, renders it with the model's chat template and submits it.
fn start_chat(s: &AppState, req: &ChatRequest) -> std::result::Result<StartedChat, ApiError> {
    let g = s.generator(&req.model)?;
    let checked = req.sampling.check(&s.limits)?;
    if req.messages.is_empty() {
        return Err(ApiError::invalid(
            "messages",
            "`messages` must not be empty",
        ));
    }
    let top = match (req.logprobs.unwrap_or(false), req.top_logprobs) {
        (_, Some(k)) if !(0..=20).contains(&k) => {
            return Err(ApiError::invalid(
                "top_logprobs",
                format!("`top_logprobs` must be between 0 and 20; got {k}"),
            ));
        }
        (true, k) => Some(k.unwrap_or(0) as usize),
        (false, Some(_)) => {
            return Err(ApiError::invalid(
                "top_logprobs",
                "`top_logprobs` needs `logprobs: true`",
            ));
        }
        (false, None) => None,
    };
    let mut msgs = Vec::with_capacity(req.messages.len());
    for (i, m) in req.messages.iter().enumerate() {
        if !["system", "developer", "user", "assistant", "tool"].contains(&m.role.as_str()) {
            return Err(ApiError::invalid(
                &format!("messages[{i}].role"),
                format!(
                    "unknown role {:?} (system, developer, user, assistant, tool)",
                    m.role
                ),
            ));
        }
        let role = if m.role == "developer" {
            "system"
        } else {
            m.role.as_str()
        };
        msgs.push(json!({"role": role, "content": m.text()?, "name": m.name}));
    }
    let text = g.template.render(&msgs).map_err(|e| {
        ApiError::invalid(
            "messages",
            format!("the chat template refused the messages: {e}"),
        )
    })?;
    let prompt = g.encode(&text, false)?;
    let mut params = g.fit(&prompt, &checked)?;
    if g.template.is_builtin() {
        params
            .stop
            .extend(BUILTIN_STOPS.iter().map(|s| (*s).to_owned()));
    }
    let sub = submit(
        s,
        &req.model,
        g,
        &[(prompt, params)],
        checked.n,
        top,
        checked.format.as_ref(),
    )?;
    Ok(StartedChat {
        sub,
        top,
        stream: checked.stream,
        include_usage: checked.include_usage,
    })
}

async fn chat(
    State(s): State<Arc<AppState>>,
    Extension(key): Extension<KeyUse>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> std::result::Result<Response, ApiError> {
    let req: ChatRequest = parse(body)?;
    let StartedChat {
        sub,
        top,
        stream,
        include_usage,
    } = start_chat(&s, &req)?;
    let id = s.id("chatcmpl");
    let created = now_secs();
    if stream {
        return Ok(stream_chat(
            s.clone(),
            key,
            id,
            created,
            req.model,
            sub,
            include_usage,
        ));
    }
    let (choices, usage) = collect(sub).await?;
    s.keys.spend(key.0, usage.total_tokens);
    let choices: Vec<Value> = choices
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            json!({
                "index": i,
                "message": {"role": "assistant", "content": c.text.trim_start(), "refusal": null},
                "logprobs": top.map(|_| ChatLogprobs { content: c.logprobs }),
                "finish_reason": c.finish.map(finish_name),
            })
        })
        .collect();
    Ok(Json(json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": req.model,
        "choices": choices,
        "usage": usage,
        "system_fingerprint": null,
    }))
    .into_response())
}

/// One SSE `data:` line.
fn sse_json(v: &Value) -> std::result::Result<SseEvent, Infallible> {
    Ok(SseEvent::default().data(v.to_string()))
}

/// Merges the choices' events into one stream, tagged with the choice index.
fn merged(
    receivers: Vec<mpsc::UnboundedReceiver<Event>>,
) -> impl futures_util::Stream<Item = (usize, Event)> + Send + Unpin {
    futures_util::stream::select_all(receivers.into_iter().enumerate().map(|(i, rx)| {
        UnboundedReceiverStream::new(rx)
            .map(move |e| (i, e))
            .boxed()
    }))
}

/// The next engine event, or `None` as soon as the client has gone away: returning drops the
/// receivers, so the engine frees the sequence before its next decode step.
async fn next_event<T>(
    events: &mut (impl futures_util::Stream<Item = (usize, Event)> + Unpin),
    client: &mpsc::Sender<T>,
) -> Option<(usize, Event)> {
    tokio::select! {
        ev = events.next() => ev,
        () = client.closed() => None,
    }
}

/// Streams a chat completion as server-sent events. A forwarding task turns engine events
/// into chunks; when the client goes away the channel closes, the task ends and the engine
/// sees its receivers dropped.
fn stream_chat(
    s: Arc<AppState>,
    key: KeyUse,
    id: String,
    created: u64,
    model: String,
    sub: Submitted,
    include_usage: bool,
) -> Response {
    let (tx, rx) = mpsc::channel::<std::result::Result<SseEvent, Infallible>>(64);
    let n = sub.receivers.len();
    let prompt_tokens = sub.prompt_tokens;
    tokio::spawn(async move {
        let chunk = |choices: Value, usage: Option<Value>| {
            let mut v = json!({
                "id": id, "object": "chat.completion.chunk", "created": created,
                "model": model, "system_fingerprint": null, "choices": choices,
            });
            if include_usage {
                v["usage"] = usage.unwrap_or(Value::Null);
            }
            v
        };
        for i in 0..n {
            let c = chunk(
                json!([{"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null}]),
                None,
            );
            if tx.send(sse_json(&c)).await.is_err() {
                return;
            }
        }
        let mut usage = Usage {
            prompt_tokens,
            ..Usage::default()
        };
        let mut started = vec![false; n];
        let mut events = merged(sub.receivers);
        while let Some((i, ev)) = next_event(&mut events, &tx).await {
            let v = match ev {
                Event::Delta { text, logprobs } => {
                    let text = if started[i] {
                        text
                    } else {
                        text.trim_start().to_owned()
                    };
                    if text.is_empty() && logprobs.is_empty() {
                        continue;
                    }
                    started[i] = true;
                    let lp = (!logprobs.is_empty()).then(|| json!({"content": logprobs}));
                    chunk(
                        json!([{"index": i, "delta": {"content": text}, "logprobs": lp, "finish_reason": null}]),
                        None,
                    )
                }
                Event::Done {
                    finish,
                    completion_tokens,
                    ..
                } => {
                    usage.add(0, completion_tokens);
                    chunk(
                        json!([{"index": i, "delta": {}, "logprobs": null, "finish_reason": finish_name(finish)}]),
                        None,
                    )
                }
                Event::Failed(m) => ApiError::internal(m).body(),
            };
            if tx.send(sse_json(&v)).await.is_err() {
                return;
            }
        }
        s.keys.spend(key.0, usage.total_tokens);
        if include_usage {
            let _ = tx
                .send(sse_json(&chunk(json!([]), Some(json!(usage)))))
                .await;
        }
        let _ = tx.send(Ok(SseEvent::default().data("[DONE]"))).await;
    });
    Sse::new(ReceiverStream::new(rx))
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// Legacy completions `logprobs` of one choice.
/// `start`: where the first token's text begins in the choice's text (after an echoed prompt
/// and earlier chunks).
fn completion_logprobs(lps: &[TokenLogprob], start: usize) -> Value {
    let mut offset = start;
    let mut offsets = Vec::new();
    for l in lps {
        offsets.push(offset);
        offset += l.token.len();
    }
    json!({
        "tokens": lps.iter().map(|l| l.token.clone()).collect::<Vec<_>>(),
        "token_logprobs": lps.iter().map(|l| l.logprob).collect::<Vec<_>>(),
        "top_logprobs": lps.iter().map(|l| {
            l.top_logprobs.iter().map(|t| (t.token.clone(), json!(t.logprob))).collect::<serde_json::Map<_, _>>()
        }).collect::<Vec<_>>(),
        "text_offset": offsets,
    })
}

async fn completions(
    State(s): State<Arc<AppState>>,
    Extension(key): Extension<KeyUse>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> std::result::Result<Response, ApiError> {
    let req: CompletionRequest = parse(body)?;
    let g = s.generator(&req.model)?;
    let mut sampling = req.sampling.clone();
    if sampling.max_tokens.is_none() && sampling.max_completion_tokens.is_none() {
        // OpenAI's default for completions.
        sampling.max_tokens = Some(16);
    }
    let checked = sampling.check(&s.limits)?;
    let top = match req.logprobs {
        None => None,
        Some(k) if (0..=5).contains(&k) => Some(k as usize),
        Some(k) => {
            return Err(ApiError::invalid(
                "logprobs",
                format!("`logprobs` must be between 0 and 5; got {k}"),
            ));
        }
    };
    let prompts: Vec<Vec<u32>> = match &req.prompt {
        Prompt::Text(t) => vec![g.encode(t, true)?],
        Prompt::Texts(ts) => ts
            .iter()
            .map(|t| g.encode(t, true))
            .collect::<std::result::Result<_, _>>()?,
        Prompt::Tokens(ids) => vec![ids.clone()],
        Prompt::TokenLists(l) => l.clone(),
    };
    if prompts.is_empty() || prompts.len() * checked.n > s.limits.max_inputs {
        return Err(ApiError::invalid(
            "prompt",
            format!(
                "give between 1 and {} prompts (times n)",
                s.limits.max_inputs
            ),
        ));
    }
    let mut fitted = Vec::with_capacity(prompts.len());
    for p in prompts {
        let params = g.fit(&p, &checked).map_err(|mut e| {
            if e.param.as_deref() == Some("messages") {
                e.param = Some("prompt".into());
            }
            e
        })?;
        fitted.push((p, params));
    }
    let echo: Vec<String> = if req.echo.unwrap_or(false) {
        fitted
            .iter()
            .map(|(p, _)| g.tokenizer.decode(p, true).unwrap_or_default())
            .collect()
    } else {
        Vec::new()
    };
    let n = checked.n;
    let sub = submit(&s, &req.model, g, &fitted, n, top, checked.format.as_ref())?;
    let id = s.id("cmpl");
    let created = now_secs();
    if checked.stream {
        return Ok(stream_completion(
            s.clone(),
            key,
            id,
            created,
            req.model,
            sub,
            checked.include_usage,
            echo,
            n,
            top.is_some(),
        ));
    }
    let (choices, usage) = collect(sub).await?;
    s.keys.spend(key.0, usage.total_tokens);
    let choices: Vec<Value> = choices
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let prefix = echo.get(i / n).cloned().unwrap_or_default();
            let start = prefix.len();
            json!({
                "index": i,
                "text": prefix + &c.text,
                "logprobs": top.map(|_| completion_logprobs(&c.logprobs, start)),
                "finish_reason": c.finish.map(finish_name),
            })
        })
        .collect();
    Ok(Json(json!({
        "id": id,
        "object": "text_completion",
        "created": created,
        "model": req.model,
        "choices": choices,
        "usage": usage,
        "system_fingerprint": null,
    }))
    .into_response())
}

/// Streams a completion as server-sent events.
#[allow(clippy::too_many_arguments)]
fn stream_completion(
    s: Arc<AppState>,
    key: KeyUse,
    id: String,
    created: u64,
    model: String,
    sub: Submitted,
    include_usage: bool,
    echo: Vec<String>,
    n: usize,
    logprobs: bool,
) -> Response {
    let (tx, rx) = mpsc::channel::<std::result::Result<SseEvent, Infallible>>(64);
    let prompt_tokens = sub.prompt_tokens;
    tokio::spawn(async move {
        let chunk = |i: usize, text: &str, lp: Value, finish: Value| {
            let mut v = json!({
                "id": id, "object": "text_completion", "created": created, "model": model,
                "system_fingerprint": null,
                "choices": [{"index": i, "text": text, "logprobs": lp, "finish_reason": finish}],
            });
            if include_usage {
                v["usage"] = Value::Null;
            }
            v
        };
        for (i, e) in (0..sub.receivers.len()).filter_map(|i| echo.get(i / n).map(|e| (i, e))) {
            if tx
                .send(sse_json(&chunk(i, e, Value::Null, Value::Null)))
                .await
                .is_err()
            {
                return;
            }
        }
        let mut usage = Usage {
            prompt_tokens,
            ..Usage::default()
        };
        // Where each choice's next text begins (after its echoed prompt).
        let mut offsets: Vec<usize> = (0..sub.receivers.len())
            .map(|i| echo.get(i / n).map_or(0, String::len))
            .collect();
        let mut events = merged(sub.receivers);
        while let Some((i, ev)) = next_event(&mut events, &tx).await {
            let v = match ev {
                Event::Delta {
                    text,
                    logprobs: lps,
                } => {
                    let lp = if logprobs {
                        completion_logprobs(&lps, offsets[i])
                    } else {
                        Value::Null
                    };
                    offsets[i] += lps.iter().map(|l| l.token.len()).sum::<usize>();
                    chunk(i, &text, lp, Value::Null)
                }
                Event::Done {
                    finish,
                    completion_tokens,
                    ..
                } => {
                    usage.add(0, completion_tokens);
                    chunk(i, "", Value::Null, json!(finish_name(finish)))
                }
                Event::Failed(m) => ApiError::internal(m).body(),
            };
            if tx.send(sse_json(&v)).await.is_err() {
                return;
            }
        }
        s.keys.spend(key.0, usage.total_tokens);
        if include_usage {
            let v = json!({
                "id": id, "object": "text_completion", "created": created, "model": model,
                "choices": [], "usage": usage,
            });
            let _ = tx.send(sse_json(&v)).await;
        }
        let _ = tx.send(Ok(SseEvent::default().data("[DONE]"))).await;
    });
    Sse::new(ReceiverStream::new(rx))
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// The texts of an embeddings or classify input, checked against the limits.
fn input_texts(
    input: &Input,
    tok: Option<&Tokenizer>,
    limits: &Limits,
) -> std::result::Result<Vec<String>, ApiError> {
    let decode = |ids: &[u32]| -> std::result::Result<String, ApiError> {
        let t =
            tok.ok_or_else(|| ApiError::invalid("input", "this model takes text, not token ids"))?;
        t.decode(ids, true)
            .map_err(|e| ApiError::invalid("input", format!("token ids do not decode: {e}")))
    };
    let texts = match input {
        Input::Text(t) => vec![t.clone()],
        Input::Texts(ts) => ts.clone(),
        Input::Tokens(ids) => vec![decode(ids)?],
        Input::TokenLists(l) => l
            .iter()
            .map(|ids| decode(ids))
            .collect::<std::result::Result<_, _>>()?,
    };
    if texts.is_empty() || texts.len() > limits.max_inputs {
        return Err(ApiError::invalid(
            "input",
            format!(
                "give between 1 and {} inputs; got {}",
                limits.max_inputs,
                texts.len()
            ),
        ));
    }
    if let Some(i) = texts.iter().position(String::is_empty) {
        return Err(ApiError::invalid(
            &format!("input[{i}]"),
            "inputs must not be empty strings",
        ));
    }
    Ok(texts)
}

/// Runs blocking model work on the blocking pool, a bounded number at a time.
async fn blocking<T: Send + 'static>(
    s: &AppState,
    f: impl FnOnce() -> std::result::Result<T, String> + Send + 'static,
) -> std::result::Result<T, ApiError> {
    let _permit =
        s.blocking.acquire().await.map_err(|_| {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the server is stopping")
        })?;
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ApiError::internal("internal error"))?
        .map_err(ApiError::internal)
}

async fn embeddings(
    State(s): State<Arc<AppState>>,
    Extension(key): Extension<KeyUse>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> std::result::Result<Response, ApiError> {
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
    let texts = input_texts(&req.input, Some(emb.tokenizer()), &s.limits)?;
    let (vectors, tokens) = blocking(&s, move || {
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
    let data: Vec<Value> = vectors
        .into_iter()
        .enumerate()
        .map(|(i, mut v)| {
            if let Some(d) = dims {
                v.truncate(d);
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                v.iter_mut().for_each(|x| *x /= norm);
            }
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "model": req.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
    .into_response())
}

async fn classify(
    State(s): State<Arc<AppState>>,
    Extension(key): Extension<KeyUse>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> std::result::Result<Response, ApiError> {
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
    let texts = input_texts(&req.input, tok, &s.limits)?;
    let c2 = c.clone();
    let (probs, tokens) = blocking(&s, move || {
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
    let data: Vec<Value> = probs
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let best = duet_model::predict::argmax(p);
            let map: serde_json::Map<String, Value> = labels
                .iter()
                .zip(p)
                .map(|(l, &x)| (l.clone(), json!(x)))
                .collect();
            json!({"index": i, "label": labels[best], "score": p[best], "probs": map})
        })
        .collect();
    Ok(Json(json!({
        "object": "list",
        "model": req.model,
        "data": data,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
    .into_response())
}

/// `POST /v1/extract`: the keywords of each text (YAKE, re-ranked when `model` names a sentence
/// encoder), or JSON that a decoder writes under the constraint of `schema`.
async fn extract(
    State(s): State<Arc<AppState>>,
    Extension(key): Extension<KeyUse>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> std::result::Result<Response, ApiError> {
    let req: ExtractRequest = parse(body)?;
    let texts = input_texts(&req.input, None, &s.limits)?;
    let data: Vec<Value> = match req.task.as_str() {
        "keywords" => {
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
            let found = blocking(&s, move || {
                texts
                    .iter()
                    .map(|t| x.extract(t).map_err(|e| e.to_string()))
                    .collect::<std::result::Result<Vec<_>, _>>()
            })
            .await?;
            s.keys.spend(key.0, words);
            found
                .into_iter()
                .enumerate()
                .map(|(i, k)| json!({"index": i, "keywords": k}))
                .collect()
        }
        "json" => {
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
            for (i, t) in texts.iter().enumerate() {
                let body = duet_extract::json::chat_request(
                    &model,
                    &instruction,
                    &schema,
                    t,
                    req.max_tokens.unwrap_or(256),
                );
                let chat: ChatRequest = serde_json::from_value(body)
                    .map_err(|e| ApiError::internal(format!("building the request: {e}")))?;
                let started = start_chat(&s, &chat)?;
                let (choices, usage) = collect(started.sub).await?;
                s.keys.spend(key.0, usage.total_tokens);
                let c = choices
                    .into_iter()
                    .next()
                    .ok_or_else(|| ApiError::internal("no choice came back"))?;
                let text = c.text.trim();
                let value: Value = serde_json::from_str(text).map_err(|e| {
                    ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        format!(
                            "input[{i}]: the answer is not complete JSON ({e}; finish: {}); raise max_tokens",
                            c.finish.map(finish_name).unwrap_or("none")
                        ),
                    )
                })?;
                out.push(json!({"index": i, "json": value}));
            }
            out
        }
        other => {
            return Err(ApiError::invalid(
                "task",
                format!("unknown task {other:?}; expected keywords or json"),
            ));
        }
    };
    Ok(
        Json(json!({"object": "list", "task": req.task, "model": req.model, "data": data}))
            .into_response(),
    )
}

//! Generation requests on their way to a generator's engine: the prompt fitted to the
//! context, one job per choice (with its grammar, when the output is constrained), and the
//! choices collected when a response is not streamed.

use std::time::Instant;

use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use duet_model::constrain::Constraint;
use duet_model::generate::{FinishReason, SamplingParams};
use serde_json::json;
use tokio::sync::mpsc;

use crate::api::{Checked, ResponseFormat, Usage};
use crate::engine::{Event, Job, SubmitError, TokenLogprob};
use crate::error::ApiError;
use crate::metrics::ModelLabel;
use crate::state::{AppState, Generator};

/// What a `response_format` asks of the output, as the decoder's constraint tagged with the
/// field it came from (`None` for text or no format).
pub(crate) fn constraint_of(
    f: Option<&ResponseFormat>,
) -> std::result::Result<Option<(Constraint, &'static str)>, ApiError> {
    let c = match f {
        None | Some(ResponseFormat::Text) => return Ok(None),
        Some(ResponseFormat::JsonObject) => Constraint::JsonSchema(json!({"type": "object"})),
        Some(ResponseFormat::JsonSchema { json_schema }) => match json_schema.get("schema") {
            Some(s) => Constraint::JsonSchema(s.clone()),
            None => {
                return Err(ApiError::invalid(
                    "response_format",
                    "`response_format.json_schema.schema` is missing",
                ));
            }
        },
    };
    Ok(Some((c, "response_format")))
}

/// What every choice of a generation collected.
#[derive(Debug, Default)]
pub(crate) struct Choice {
    /// The text generated.
    pub(crate) text: String,
    /// Log-probabilities of the tokens, when asked for.
    pub(crate) logprobs: Vec<TokenLogprob>,
    /// Log-probabilities of the prompt's tokens after the first, when asked for.
    pub(crate) prompt_logprobs: Vec<TokenLogprob>,
    /// Why it ended.
    pub(crate) finish: Option<FinishReason>,
    /// Tokens generated.
    pub(crate) completion_tokens: usize,
}

/// The jobs of one request, one receiver per choice.
pub(crate) struct Submitted {
    /// Each choice's events.
    pub(crate) receivers: Vec<mpsc::UnboundedReceiver<Event>>,
    /// Tokens over every prompt.
    pub(crate) prompt_tokens: usize,
    /// The seed each choice samples with (drawn afresh when the request gave none), so that
    /// the seed and [`Submitted::fingerprint`] reproduce a choice.
    pub(crate) seeds: Vec<u64>,
    /// The model's `system_fingerprint`.
    pub(crate) fingerprint: String,
}

impl Generator {
    /// Checks the prompt against the context and sets the token budget.
    pub(crate) fn fit(
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

    /// The tokens of `text` (`special`: add the tokenizer's special tokens).
    pub(crate) fn encode(
        &self,
        text: &str,
        special: bool,
    ) -> std::result::Result<Vec<u32>, ApiError> {
        self.tokenizer
            .encode(text, special)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| ApiError::internal(format!("tokenizing the prompt: {e}")))
    }
}

/// A generation request, checked and tokenized, on its way to the engine.
pub(crate) struct Generation {
    /// Each prompt with its sampling.
    pub(crate) prompts: Vec<(Vec<u32>, SamplingParams)>,
    /// Choices per prompt.
    pub(crate) n: usize,
    /// Log-probabilities of this many alternatives per token, when asked for.
    pub(crate) logprobs: Option<usize>,
    /// Also the log-probabilities of the prompt's tokens (`echo` with `logprobs`).
    pub(crate) prompt_logprobs: bool,
    /// The grammar of the output, with the request field it came from.
    pub(crate) constraint: Option<(Constraint, &'static str)>,
    /// The request's seed: choice `i` samples with `seed + i`; without one, each choice
    /// draws a fresh seed.
    pub(crate) seed: Option<u64>,
}

/// Queues `n` choices for each prompt.
pub(crate) fn submit(
    s: &AppState,
    name: &str,
    g: &Generator,
    r: Generation,
) -> std::result::Result<Submitted, ApiError> {
    let deadline = s.timeout.map(|t| Instant::now() + t);
    let grammar = || -> std::result::Result<Option<llguidance::Matcher>, ApiError> {
        let Some((c, field)) = &r.constraint else {
            return Ok(None);
        };
        let grammars = g.grammars.as_ref().map_err(|why| {
            ApiError::invalid(
                field,
                format!("this model cannot do structured output: {why}"),
            )
        })?;
        grammars
            .matcher(c)
            .map(Some)
            .map_err(|e| ApiError::invalid(field, e))
    };
    let mut receivers = Vec::new();
    let mut seeds = Vec::new();
    let mut prompt_tokens = 0;
    for (prompt, params) in &r.prompts {
        prompt_tokens += prompt.len();
        for i in 0..r.n {
            let (tx, rx) = mpsc::unbounded_channel();
            let mut params = params.clone();
            params.seed = match r.seed {
                Some(seed) => seed.wrapping_add(i as u64),
                // Within i64, so that it can be sent back as `seed`.
                None => rand::random::<u64>() & i64::MAX as u64,
            };
            seeds.push(params.seed);
            let job = Job {
                prompt: prompt.clone(),
                params,
                logprobs: r.logprobs,
                prompt_logprobs: r.prompt_logprobs,
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
    tracing::debug!(model = %name, ?seeds, "submitted");
    s.metrics
        .tokens_in
        .get_or_create(&ModelLabel::new(name))
        .inc_by(prompt_tokens as u64);
    Ok(Submitted {
        receivers,
        prompt_tokens,
        seeds,
        fingerprint: g.fingerprint.clone(),
    })
}

impl Submitted {
    /// Adds the `x-duet-seed` header (each choice's seed, comma-separated) to `resp`.
    pub(crate) fn with_seeds(seeds: &[u64], mut resp: Response) -> Response {
        let list = seeds
            .iter()
            .map(|&s| (s as i64).to_string())
            .collect::<Vec<_>>()
            .join(",");
        if let Ok(v) = HeaderValue::from_str(&list) {
            resp.headers_mut().insert(SEED_HEADER, v);
        }
        resp
    }
}

/// The response header that records the seed of each choice.
pub const SEED_HEADER: &str = "x-duet-seed";

/// Waits for every choice to finish.
pub(crate) async fn collect(sub: Submitted) -> std::result::Result<(Vec<Choice>, Usage), ApiError> {
    let mut choices = Vec::new();
    let mut usage = Usage {
        prompt_tokens: sub.prompt_tokens,
        ..Usage::default()
    };
    for mut rx in sub.receivers {
        let mut c = Choice::default();
        while let Some(ev) = rx.recv().await {
            match ev {
                Event::Prompt { logprobs } => c.prompt_logprobs = logprobs,
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

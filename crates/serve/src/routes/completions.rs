//! `POST /v1/completions`: text (or token ids) in, the continuation out, whole or streamed,
//! with `echo` and the legacy `logprobs` object.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;

use crate::api::{CompletionRequest, Prompt, Usage, finish_name};
use crate::body::parse;
use crate::engine::{Event, TokenLogprob};
use crate::error::ApiError;
use crate::generate::{Generation, Submitted, collect, constraint_of, submit};
use crate::middleware::KeyUse;
use crate::response::{Completion, CompletionChoice, CompletionLogprobs};
use crate::sse;
use crate::state::{AppState, now_secs};

/// Legacy completions `logprobs` of generated tokens.
/// `start`: where the first token's text begins in the choice's text (after an echoed prompt
/// and earlier chunks).
fn completion_logprobs(lps: &[TokenLogprob], start: usize) -> CompletionLogprobs {
    let mut out = CompletionLogprobs::default();
    let mut offset = start;
    for l in lps {
        out.tokens.push(l.token.clone());
        out.token_logprobs.push(Some(l.logprob));
        out.top_logprobs.push(Some(
            l.top_logprobs
                .iter()
                .map(|t| (t.token.clone(), json!(t.logprob)))
                .collect(),
        ));
        out.text_offset.push(offset);
        offset += l.token.len();
    }
    out
}

/// The legacy `logprobs` of an echoed prompt: its first token with `null` (nothing comes
/// before it), then each token under the ones before it.
fn prompt_logprobs(first: String, lps: &[TokenLogprob]) -> CompletionLogprobs {
    let start = first.len();
    let mut out = CompletionLogprobs {
        tokens: vec![first],
        token_logprobs: vec![None],
        top_logprobs: vec![None],
        text_offset: vec![0],
    };
    out.append(completion_logprobs(lps, start));
    out
}

impl CompletionLogprobs {
    /// Adds `other`'s tokens after these.
    fn append(&mut self, other: CompletionLogprobs) {
        self.tokens.extend(other.tokens);
        self.token_logprobs.extend(other.token_logprobs);
        self.top_logprobs.extend(other.top_logprobs);
        self.text_offset.extend(other.text_offset);
    }
}

/// What every chunk and the whole response repeat.
struct Head {
    id: String,
    created: u64,
    model: String,
    fingerprint: String,
}

impl Head {
    fn body(&self, choices: Vec<CompletionChoice>, usage: Option<Option<Usage>>) -> Completion {
        Completion {
            id: self.id.clone(),
            object: "text_completion",
            created: self.created,
            model: self.model.clone(),
            system_fingerprint: Some(Some(self.fingerprint.clone())),
            choices,
            usage,
        }
    }
}

/// The route.
pub(crate) async fn completions(
    State(s): State<Arc<AppState>>,
    Extension(key): Extension<KeyUse>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
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
            .collect::<Result<_, _>>()?,
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
    let echoing = req.echo.unwrap_or(false);
    if checked.params.max_new_tokens == 0 && !echoing {
        return Err(ApiError::invalid(
            "max_tokens",
            "`max_tokens: 0` only scores the prompt: it needs `echo: true`",
        ));
    }
    // With `echo` and `logprobs`: the first token of each prompt, which heads its logprobs.
    let scoring = echoing && top.is_some();
    let firsts: Vec<String> = if scoring {
        fitted
            .iter()
            .map(|(p, _)| {
                p.first()
                    .and_then(|&t| g.tokenizer.decode(&[t], false).ok())
                    .unwrap_or_default()
            })
            .collect()
    } else {
        Vec::new()
    };
    let echo: Vec<String> = if echoing {
        fitted
            .iter()
            .map(|(p, _)| g.tokenizer.decode(p, true).unwrap_or_default())
            .collect()
    } else {
        Vec::new()
    };
    let n = checked.n;
    let constraint = constraint_of(checked.format.as_ref())?;
    let sub = submit(
        &s,
        &req.model,
        g,
        Generation {
            prompts: fitted,
            n,
            logprobs: top,
            prompt_logprobs: scoring,
            constraint,
            seed: checked.seed,
        },
    )?;
    let head = Head {
        id: s.id("cmpl"),
        created: now_secs(),
        model: req.model,
        fingerprint: sub.fingerprint.clone(),
    };
    let seeds = sub.seeds.clone();
    if checked.stream {
        let resp = stream_completion(
            s.clone(),
            key,
            head,
            sub,
            Streamed {
                include_usage: checked.include_usage,
                echo,
                firsts,
                n,
                logprobs: top.is_some(),
            },
        );
        return Ok(Submitted::with_seeds(&seeds, resp));
    }
    let (choices, usage) = collect(sub).await?;
    s.keys.spend(key.0, usage.total_tokens);
    let choices = choices
        .into_iter()
        .enumerate()
        .map(|(index, c)| {
            let prefix = echo.get(index / n).cloned().unwrap_or_default();
            let start = prefix.len();
            let logprobs = top.map(|_| {
                let generated = completion_logprobs(&c.logprobs, start);
                if scoring {
                    let mut all = prompt_logprobs(firsts[index / n].clone(), &c.prompt_logprobs);
                    all.append(generated);
                    all
                } else {
                    generated
                }
            });
            CompletionChoice {
                index,
                text: prefix + &c.text,
                logprobs,
                finish_reason: c.finish.map(finish_name),
            }
        })
        .collect();
    let resp = Json(head.body(choices, Some(Some(usage)))).into_response();
    Ok(Submitted::with_seeds(&seeds, resp))
}

/// How a completion is streamed.
struct Streamed {
    include_usage: bool,
    /// The decoded prompt of each prompt, with `echo`.
    echo: Vec<String>,
    /// The first token of each prompt.
    firsts: Vec<String>,
    /// Choices per prompt.
    n: usize,
    logprobs: bool,
}

/// Streams a completion as server-sent events.
fn stream_completion(
    s: Arc<AppState>,
    key: KeyUse,
    head: Head,
    sub: Submitted,
    how: Streamed,
) -> Response {
    let Streamed {
        include_usage,
        echo,
        firsts,
        n,
        logprobs,
    } = how;
    // With `echo` and `logprobs`, each prompt goes out with its log-probabilities when the
    // engine has scored it; with `echo` alone, at once.
    let scoring = logprobs && !echo.is_empty();
    let no_usage = include_usage.then_some(None);
    sse::stream(move |tx| async move {
        let choice = |index: usize, text: String, lp, finish| CompletionChoice {
            index,
            text,
            logprobs: lp,
            finish_reason: finish,
        };
        let choices = sub.receivers.len();
        if !scoring {
            for (i, e) in (0..choices).filter_map(|i| echo.get(i / n).map(|e| (i, e))) {
                let c = choice(i, e.clone(), None, None);
                if !tx.json(&head.body(vec![c], no_usage)).await {
                    return;
                }
            }
        }
        let mut usage = Usage {
            prompt_tokens: sub.prompt_tokens,
            ..Usage::default()
        };
        // Where each choice's next text begins (after its echoed prompt).
        let mut offsets: Vec<usize> = (0..choices)
            .map(|i| echo.get(i / n).map_or(0, String::len))
            .collect();
        let mut events = sse::merged(sub.receivers);
        while let Some((i, ev)) = tx.next_event(&mut events).await {
            let sent = match ev {
                Event::Prompt { logprobs: lps } => {
                    let lp = prompt_logprobs(firsts[i / n].clone(), &lps);
                    let text = echo.get(i / n).cloned().unwrap_or_default();
                    tx.json(&head.body(vec![choice(i, text, Some(lp), None)], no_usage))
                        .await
                }
                Event::Delta {
                    text,
                    logprobs: lps,
                } => {
                    let lp = logprobs.then(|| completion_logprobs(&lps, offsets[i]));
                    offsets[i] += lps.iter().map(|l| l.token.len()).sum::<usize>();
                    tx.json(&head.body(vec![choice(i, text, lp, None)], no_usage))
                        .await
                }
                Event::Done {
                    finish,
                    completion_tokens,
                    ..
                } => {
                    usage.add(0, completion_tokens);
                    let c = choice(i, String::new(), None, Some(finish_name(finish)));
                    tx.json(&head.body(vec![c], no_usage)).await
                }
                Event::Failed(m) => tx.json(&ApiError::internal(m).body()).await,
            };
            if !sent {
                return;
            }
        }
        s.keys.spend(key.0, usage.total_tokens);
        if include_usage {
            let mut last = head.body(Vec::new(), Some(Some(usage)));
            last.system_fingerprint = None;
            tx.json(&last).await;
        }
        tx.done().await;
    })
}

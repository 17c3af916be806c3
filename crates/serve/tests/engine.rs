//! The engine's continuous batching: a request that joins a batch already decoding gets the
//! tokens (and log-probabilities) it gets alone, wherever it joins, and the running request
//! is not disturbed by it.

mod util;

use std::sync::Arc;

use anyhow::{Result, anyhow, bail};
use duet_model::generate::SamplingParams;
use duet_serve::engine::{Engine, EngineConfig, Event, Job};
use duet_serve::metrics::Metrics;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

/// The tiny Llama behind an engine.
fn engine(dir: &std::path::Path) -> Result<Engine> {
    let models = util::models(dir)?;
    let (_, llama) = models
        .iter()
        .find(|(n, _)| n == "llama")
        .ok_or_else(|| anyhow!("no llama fixture"))?;
    let loaded = duet_model::lm::LoadedLm::load(llama, &candle_core::Device::Cpu)?;
    Ok(Engine::start(
        "llama",
        loaded.lm,
        Arc::new(loaded.tokenizer),
        EngineConfig::default(),
        Arc::new(Metrics::new()),
    )?)
}

/// Submits a greedy job of `max` tokens (no stop token) with log-probabilities.
fn submit(e: &Engine, prompt: &[u32], max: usize) -> Result<UnboundedReceiver<Event>> {
    let (tx, rx) = unbounded_channel();
    let params = SamplingParams {
        max_new_tokens: max,
        temperature: 0.0,
        ..SamplingParams::default()
    };
    e.submit(Job {
        prompt: prompt.to_vec(),
        params,
        logprobs: Some(0),
        prompt_logprobs: false,
        deadline: None,
        events: tx,
        grammar: None,
    })
    .map_err(|e| anyhow!("{e:?}"))?;
    Ok(rx)
}

/// What a job produced: its text and each token's `(text, logprob)`.
#[derive(Debug, Default)]
struct Output {
    text: String,
    tokens: Vec<(String, f32)>,
}

/// Adds an event to `out`; whether it ended the job (an error when the job failed).
fn add(ev: Event, out: &mut Output) -> Result<bool> {
    match ev {
        Event::Delta { text, logprobs } => {
            out.text.push_str(&text);
            out.tokens
                .extend(logprobs.into_iter().map(|l| (l.token, l.logprob)));
            Ok(false)
        }
        Event::Done { .. } => Ok(true),
        Event::Failed(m) => bail!("{m}"),
        Event::Prompt { .. } => Ok(false),
    }
}

/// Reads events until `n` tokens have come (or the end), returning whether it ended.
async fn read(rx: &mut UnboundedReceiver<Event>, out: &mut Output, n: usize) -> Result<bool> {
    while out.tokens.len() < n {
        let ev = rx
            .recv()
            .await
            .ok_or_else(|| anyhow!("the engine dropped the job"))?;
        if add(ev, out)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Takes the events already there; whether the job has ended.
fn ended(rx: &mut UnboundedReceiver<Event>, out: &mut Output) -> bool {
    while let Ok(ev) = rx.try_recv() {
        if add(ev, out).unwrap_or(true) {
            return true;
        }
    }
    false
}

async fn alone(e: &Engine, prompt: &[u32], max: usize) -> Result<Output> {
    let mut rx = submit(e, prompt, max)?;
    let mut out = Output::default();
    read(&mut rx, &mut out, usize::MAX).await?;
    Ok(out)
}

fn assert_same(got: &Output, want: &Output, what: &str) {
    assert_eq!(got.text, want.text, "{what}");
    assert_eq!(got.tokens.len(), want.tokens.len(), "{what}");
    for (i, (g, w)) in got.tokens.iter().zip(&want.tokens).enumerate() {
        assert_eq!(g.0, w.0, "{what}: token {i}");
        assert!(
            (g.1 - w.1).abs() < 1e-4,
            "{what}: token {i}: {} vs {}",
            g.1,
            w.1
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_joining_a_running_batch_gets_what_it_gets_alone() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let e = engine(dir.path())?;
    let (long, short) = ([9u32, 8, 7, 31], [5u32, 17, 42]);
    // Long enough to be still decoding when the short one has finished.
    let n = 900;
    let long_alone = alone(&e, &long, n).await?;
    let short_alone = alone(&e, &short, 16).await?;
    assert_eq!(long_alone.tokens.len(), n);
    for join_after in [1, 7, 20] {
        let mut a = submit(&e, &long, n)?;
        let mut a_out = Output::default();
        assert!(!read(&mut a, &mut a_out, join_after).await?);
        // The short request joins while the long one decodes.
        let mut b = submit(&e, &short, 16)?;
        let mut b_out = Output::default();
        read(&mut b, &mut b_out, usize::MAX).await?;
        // Else the two never shared a batch and this checks nothing.
        assert!(!ended(&mut a, &mut a_out), "the long request ended first");
        read(&mut a, &mut a_out, usize::MAX).await?;
        assert_same(
            &b_out,
            &short_alone,
            &format!("joined after {join_after} tokens"),
        );
        assert_same(
            &a_out,
            &long_alone,
            &format!("running, joined after {join_after}"),
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_prompt_runs_in_chunks_beside_a_stream_and_answers_as_whole() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let models = util::models(dir.path())?;
    let llama = &models
        .iter()
        .find(|(n, _)| n == "llama")
        .ok_or_else(|| anyhow!("no llama fixture"))?
        .1;
    let loaded = duet_model::lm::LoadedLm::load(llama, &candle_core::Device::Cpu)?;
    let metrics = Arc::new(Metrics::new());
    let chunked = Engine::start(
        "llama",
        loaded.lm.clone(),
        Arc::new(loaded.tokenizer.clone()),
        EngineConfig {
            prefill_budget: 32,
            prefix_cache_bytes: 0,
            ..EngineConfig::default()
        },
        metrics.clone(),
    )?;
    let whole = engine(dir.path())?;
    let long_prompt: Vec<u32> = (0..600).map(|i| (i * 7 % 250) as u32 + 3).collect();
    let (stream, n) = ([9u32, 8, 7, 31], 400);
    let want_long = alone(&whole, &long_prompt, 8).await?;
    let want_stream = alone(&whole, &stream, n).await?;
    // A stream runs; the long prompt arrives and is run 32 tokens per step beside it.
    let mut a = submit(&chunked, &stream, n)?;
    let mut a_out = Output::default();
    assert!(!read(&mut a, &mut a_out, 2).await?);
    let mut b = submit(&chunked, &long_prompt, 8)?;
    let mut b_out = Output::default();
    read(&mut b, &mut b_out, usize::MAX).await?;
    assert!(
        !ended(&mut a, &mut a_out),
        "the stream ended before the long prompt was run"
    );
    read(&mut a, &mut a_out, usize::MAX).await?;
    assert_same(&b_out, &want_long, "the chunked prompt");
    assert_same(&a_out, &want_stream, "the stream beside it");
    let chunks = metrics.prefill_chunks.get();
    assert!(chunks >= 600 / 32 - 1, "{chunks} chunks");
    Ok(())
}

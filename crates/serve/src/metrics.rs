//! Prometheus metrics: requests by route and status, tokens in and out, time to first token,
//! inter-token latency, queue depth and active sequences.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The matched route, e.g. `/v1/chat/completions`.
    pub route: String,
    /// The HTTP status answered.
    pub status: u16,
}

/// A model name label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabel {
    /// The served model's name.
    pub model: String,
}

impl ModelLabel {
    /// The label for `model`.
    pub fn new(model: &str) -> Self {
        Self {
            model: model.to_owned(),
        }
    }
}

/// Every metric the server keeps, registered in one registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Requests by route and status.
    pub requests: Family<RouteLabels, Counter>,
    /// Prompt (and embedding/classification input) tokens by model.
    pub tokens_in: Family<ModelLabel, Counter>,
    /// Generated tokens by model.
    pub tokens_out: Family<ModelLabel, Counter>,
    /// Seconds from admission to the first token (prefill).
    pub ttft: Histogram,
    /// Seconds between two streamed pieces of a sequence.
    pub itl: Histogram,
    /// Requests waiting for a decode slot, by model.
    pub queue_depth: Family<ModelLabel, Gauge>,
    /// Sequences being decoded, by model.
    pub active: Family<ModelLabel, Gauge>,
    /// Sequences dropped because their client went away.
    pub cancelled: Counter,
    /// Requests that ran past the time limit.
    pub timeouts: Counter,
    /// Batched decode steps run.
    pub decode_steps: Counter,
    /// Chunks of long prompts run between decode steps.
    pub prefill_chunks: Counter,
    /// Prompts that began with a cached prefix.
    pub prefix_hits: Counter,
    /// Prompt tokens not run again because their prefix was cached.
    pub prefix_tokens: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh set of metrics.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("duet");
        let requests = Family::<RouteLabels, Counter>::default();
        let tokens_in = Family::<ModelLabel, Counter>::default();
        let tokens_out = Family::<ModelLabel, Counter>::default();
        let ttft = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        let itl = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        let queue_depth = Family::<ModelLabel, Gauge>::default();
        let active = Family::<ModelLabel, Gauge>::default();
        let cancelled = Counter::default();
        let timeouts = Counter::default();
        let decode_steps = Counter::default();
        let prefill_chunks = Counter::default();
        let prefix_hits = Counter::default();
        let prefix_tokens = Counter::default();
        registry.register(
            "requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        registry.register("prompt_tokens", "Input tokens by model", tokens_in.clone());
        registry.register(
            "generated_tokens",
            "Generated tokens by model",
            tokens_out.clone(),
        );
        registry.register(
            "time_to_first_token_seconds",
            "Prefill time: admission to the first token",
            ttft.clone(),
        );
        registry.register(
            "inter_token_latency_seconds",
            "Time between streamed pieces of one sequence",
            itl.clone(),
        );
        registry.register(
            "queue_depth",
            "Requests waiting for a decode slot",
            queue_depth.clone(),
        );
        registry.register(
            "active_sequences",
            "Sequences being decoded",
            active.clone(),
        );
        registry.register(
            "cancelled_sequences",
            "Sequences whose client went away",
            cancelled.clone(),
        );
        registry.register(
            "timeouts",
            "Requests past the server's time limit",
            timeouts.clone(),
        );
        registry.register(
            "decode_steps",
            "Batched decode steps run",
            decode_steps.clone(),
        );
        registry.register(
            "prefill_chunks",
            "Chunks of long prompts run between decode steps",
            prefill_chunks.clone(),
        );
        registry.register(
            "prefix_cache_hits",
            "Prompts that began with a cached prefix",
            prefix_hits.clone(),
        );
        registry.register(
            "prefix_cache_tokens",
            "Prompt tokens taken from the prefix cache instead of run",
            prefix_tokens.clone(),
        );
        Self {
            registry,
            requests,
            tokens_in,
            tokens_out,
            ttft,
            itl,
            queue_depth,
            active,
            cancelled,
            timeouts,
            decode_steps,
            prefill_chunks,
            prefix_hits,
            prefix_tokens,
        }
    }

    /// Records an engine's queue depth and active sequences.
    pub fn set_load(&self, model: &str, queued: usize, active: usize) {
        let l = ModelLabel::new(model);
        self.queue_depth.get_or_create(&l).set(queued as i64);
        self.active.get_or_create(&l).set(active as i64);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

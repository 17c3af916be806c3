//! The OpenAI request bodies, and the checks that turn a request into sampling
//! parameters (every out-of-range value is a 400 naming its field).

use duet_model::generate::{FinishReason, SamplingParams};
use serde::{Deserialize, Serialize};

use tokenizers::Tokenizer;

use crate::engine::TokenLogprob;
use crate::error::ApiError;

/// Server-wide bounds on what one request may ask for.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest `max_tokens`.
    pub max_tokens: usize,
    /// Largest `n`.
    pub max_n: usize,
    /// Most stop sequences (OpenAI allows 4).
    pub max_stop: usize,
    /// Most inputs in one embeddings or classify request.
    pub max_inputs: usize,
    /// Largest request body in bytes.
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_tokens: 4096,
            max_n: 8,
            max_stop: 4,
            max_inputs: 2048,
            max_body: 4 << 20,
        }
    }
}

/// `stop`: one string or a list.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    /// One stop sequence.
    One(String),
    /// Several.
    Many(Vec<String>),
}

/// `stream_options`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamOptions {
    /// Send a last chunk with the usage counts.
    #[serde(default)]
    pub include_usage: bool,
}

/// `response_format`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    /// Free text.
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON valid under a schema.
    JsonSchema {
        /// `{"name", "schema", "strict"}`.
        json_schema: serde_json::Value,
    },
}

/// The sampling fields chat and completions share.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Sampling {
    /// Most tokens to generate.
    pub max_tokens: Option<i64>,
    /// Newer name of `max_tokens` (chat).
    pub max_completion_tokens: Option<i64>,
    /// Softmax temperature, 0..=2 (default 1).
    pub temperature: Option<f64>,
    /// Nucleus sampling, (0, 1].
    pub top_p: Option<f64>,
    /// Choices to generate.
    pub n: Option<i64>,
    /// Stop sequences.
    pub stop: Option<Stop>,
    /// Seed of the sampler.
    pub seed: Option<i64>,
    /// -2..=2.
    pub presence_penalty: Option<f64>,
    /// -2..=2.
    pub frequency_penalty: Option<f64>,
    /// Stream server-sent events.
    pub stream: Option<bool>,
    /// Streaming options.
    pub stream_options: Option<StreamOptions>,
    /// The end user (logged, not used).
    pub user: Option<String>,
    /// llama.cpp / vLLM: keep the k most likely tokens (0 or -1: off).
    pub top_k: Option<i64>,
    /// llama.cpp / vLLM: drop tokens below this share of the most likely.
    pub min_p: Option<f64>,
    /// llama.cpp / vLLM: penalty on tokens already seen (1: off).
    pub repetition_penalty: Option<f64>,
    /// vLLM: keep generating past the end-of-sequence token (for benchmarks).
    pub ignore_eos: Option<bool>,
    /// Structured output.
    pub response_format: Option<ResponseFormat>,
}

/// The parts of a message's content.
#[derive(Debug, Clone, Deserialize)]
pub struct ContentPart {
    /// `text` (other part types are refused).
    #[serde(rename = "type")]
    pub kind: String,
    /// The text.
    #[serde(default)]
    pub text: Option<String>,
}

/// A message's content: a string or a list of parts.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Parts (only text parts are supported).
    Parts(Vec<ContentPart>),
}

/// A chat message.
#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    /// `system`, `developer`, `user`, `assistant` or `tool`.
    pub role: String,
    /// The content.
    #[serde(default)]
    pub content: Option<Content>,
    /// A participant name.
    #[serde(default)]
    pub name: Option<String>,
    /// An assistant message's calls of functions.
    #[serde(default)]
    pub tool_calls: Option<Vec<MessageToolCall>>,
    /// A `tool` message: the call it answers.
    #[serde(default)]
    pub tool_call_id: Option<String>,
}

/// A function call in the history (an earlier assistant message's `tool_calls`).
#[derive(Debug, Clone, Deserialize)]
pub struct MessageToolCall {
    /// The call's id.
    #[serde(default)]
    pub id: Option<String>,
    /// The function and its arguments.
    pub function: CalledFunction,
}

/// The function of a [`MessageToolCall`].
#[derive(Debug, Clone, Deserialize)]
pub struct CalledFunction {
    /// The function's name.
    pub name: String,
    /// The arguments as a JSON text.
    #[serde(default)]
    pub arguments: String,
}

/// A tool the model may call (`tools[i]`).
#[derive(Debug, Clone, Deserialize)]
pub struct Tool {
    /// `function`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The function.
    pub function: FunctionDef,
}

/// A function the model may call.
#[derive(Debug, Clone, Deserialize)]
pub struct FunctionDef {
    /// Its name.
    pub name: String,
    /// What it does, for the model.
    #[serde(default)]
    pub description: Option<String>,
    /// The JSON schema of its arguments.
    #[serde(default)]
    pub parameters: Option<serde_json::Value>,
    /// OpenAI's strict mode (calls always follow the schema here, strict or not).
    #[serde(default)]
    pub strict: Option<bool>,
}

/// `tool_choice`: a mode, or a function to call.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ToolChoiceParam {
    /// `auto`, `none` or `required`.
    Mode(String),
    /// `{"type": "function", "function": {"name": ...}}`.
    Named {
        /// `function`.
        #[serde(rename = "type")]
        kind: String,
        /// The function.
        function: NamedFunction,
    },
}

/// The function a named `tool_choice` forces.
#[derive(Debug, Clone, Deserialize)]
pub struct NamedFunction {
    /// Its name.
    pub name: String,
}

/// `POST /v1/chat/completions`.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatRequest {
    /// The model name.
    pub model: String,
    /// The conversation.
    pub messages: Vec<Message>,
    /// Return log-probabilities of the sampled tokens.
    #[serde(default)]
    pub logprobs: Option<bool>,
    /// With `logprobs`: how many alternatives per position (0..=20).
    #[serde(default)]
    pub top_logprobs: Option<i64>,
    /// Functions the model may call.
    #[serde(default)]
    pub tools: Option<Vec<Tool>>,
    /// Whether and which function to call.
    #[serde(default)]
    pub tool_choice: Option<ToolChoiceParam>,
    /// Whether several calls may come in one message (default true).
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    /// Sampling.
    #[serde(flatten)]
    pub sampling: Sampling,
}

/// `prompt`: a string, strings, token ids, or lists of token ids.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    /// One prompt.
    Text(String),
    /// Several prompts.
    Texts(Vec<String>),
    /// One prompt as token ids.
    Tokens(Vec<u32>),
    /// Several prompts as token ids.
    TokenLists(Vec<Vec<u32>>),
}

/// `POST /v1/completions`.
#[derive(Debug, Clone, Deserialize)]
pub struct CompletionRequest {
    /// The model name.
    pub model: String,
    /// The prompt(s).
    pub prompt: Prompt,
    /// Return the log-probabilities of this many most likely tokens per position (0..=5).
    #[serde(default)]
    pub logprobs: Option<i64>,
    /// Put the prompt in front of the completion.
    #[serde(default)]
    pub echo: Option<bool>,
    /// Sampling.
    #[serde(flatten)]
    pub sampling: Sampling,
}

/// `POST /v1/responses` (stateless: every request carries its whole conversation).
#[derive(Debug, Clone, Deserialize)]
pub struct ResponsesRequest {
    /// The model name.
    pub model: String,
    /// A user message, or the conversation as items (messages, function calls and their
    /// outputs).
    pub input: ResponsesInput,
    /// A system message put first.
    #[serde(default)]
    pub instructions: Option<String>,
    /// Functions the model may call (`{"type": "function", "name", "description",
    /// "parameters", "strict"}`).
    #[serde(default)]
    pub tools: Option<Vec<serde_json::Value>>,
    /// `auto`, `none`, `required` or `{"type": "function", "name"}`.
    #[serde(default)]
    pub tool_choice: Option<serde_json::Value>,
    /// Whether several calls may come in one answer.
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    /// `{"format": {"type": "text" | "json_object" | "json_schema", ...}}`.
    #[serde(default)]
    pub text: Option<serde_json::Value>,
    /// Most tokens to generate.
    #[serde(default)]
    pub max_output_tokens: Option<i64>,
    /// Softmax temperature.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default)]
    pub top_p: Option<f64>,
    /// Stream events.
    #[serde(default)]
    pub stream: Option<bool>,
    /// Refused: this server keeps no responses.
    #[serde(default)]
    pub previous_response_id: Option<String>,
    /// Accepted and returned.
    #[serde(default)]
    pub metadata: Option<serde_json::Value>,
}

/// The `input` of a Responses request.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ResponsesInput {
    /// One user message.
    Text(String),
    /// Items.
    Items(Vec<serde_json::Value>),
}

/// Inputs of embeddings and classify.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Input {
    /// One text.
    Text(String),
    /// Several texts.
    Texts(Vec<String>),
    /// One text as token ids.
    Tokens(Vec<u32>),
    /// Several texts as token ids.
    TokenLists(Vec<Vec<u32>>),
}

/// `POST /v1/embeddings`.
#[derive(Debug, Clone, Deserialize)]
pub struct EmbeddingRequest {
    /// The model name.
    pub model: String,
    /// Text(s) to embed.
    pub input: Input,
    /// `float` (default) or `base64` (little-endian f32).
    #[serde(default)]
    pub encoding_format: Option<String>,
    /// Truncate each vector to this many dimensions (then re-normalise).
    #[serde(default)]
    pub dimensions: Option<i64>,
    /// The end user.
    #[serde(default)]
    pub user: Option<String>,
}

/// `POST /v1/classify` (duet's route): class probabilities for texts.
#[derive(Debug, Clone, Deserialize)]
pub struct ClassifyRequest {
    /// The classifier's name.
    pub model: String,
    /// Text(s) to classify.
    pub input: Input,
}

/// `POST /v1/extract` (duet's route): keywords of texts, or JSON that fills a schema.
#[derive(Debug, Clone, Deserialize)]
pub struct ExtractRequest {
    /// `keywords` or `json`.
    pub task: String,
    /// Text(s) to extract from.
    pub input: Input,
    /// `json`: the decoder that fills the schema. `keywords`: optionally a sentence encoder
    /// that re-ranks the candidates.
    #[serde(default)]
    pub model: Option<String>,
    /// `json`: the JSON schema the answer must follow.
    #[serde(default)]
    pub schema: Option<serde_json::Value>,
    /// `json`: an instruction before the text (default: extract as JSON following the schema).
    #[serde(default)]
    pub instruction: Option<String>,
    /// `json`: most tokens to generate per text (default 256).
    #[serde(default)]
    pub max_tokens: Option<i64>,
    /// `keywords`: how many per text (default 10).
    #[serde(default)]
    pub top: Option<usize>,
    /// `keywords`: the longest phrase in words (default 3).
    #[serde(default)]
    pub ngrams: Option<usize>,
    /// `keywords`: the language (default: detected).
    #[serde(default)]
    pub lang: Option<String>,
}

/// Token counts of a response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Tokens in the prompt(s).
    pub prompt_tokens: usize,
    /// Tokens generated.
    pub completion_tokens: usize,
    /// Both.
    pub total_tokens: usize,
}

impl Usage {
    /// Adds one sequence's counts (the prompt counted once per prompt by the caller).
    pub fn add(&mut self, prompt: usize, completion: usize) {
        self.prompt_tokens += prompt;
        self.completion_tokens += completion;
        self.total_tokens = self.prompt_tokens + self.completion_tokens;
    }
}

/// OpenAI's name for a finish reason.
pub fn finish_name(f: FinishReason) -> &'static str {
    match f {
        FinishReason::Stop => "stop",
        FinishReason::Length | FinishReason::Cancelled => "length",
    }
}

/// Chat `logprobs` of one choice.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChatLogprobs {
    /// One entry per generated token.
    pub content: Vec<TokenLogprob>,
}

/// What a generation request asks for, checked.
#[derive(Debug, Clone)]
pub struct Checked {
    /// Sampling (the seed is [`Checked::seed`]'s, set per choice).
    pub params: SamplingParams,
    /// The request's seed (choice `i` samples with `seed + i`); `None`: a fresh one per choice.
    pub seed: Option<u64>,
    /// Whether `max_tokens` was given (else it is what the context leaves).
    pub explicit_max: bool,
    /// Choices.
    pub n: usize,
    /// Stream the answer.
    pub stream: bool,
    /// Send a last usage chunk when streaming.
    pub include_usage: bool,
    /// Structured output asked for.
    pub format: Option<ResponseFormat>,
    /// Do not stop at the end-of-sequence token.
    pub ignore_eos: bool,
}

fn range(param: &str, v: Option<f64>, lo: f64, hi: f64) -> Result<Option<f64>, ApiError> {
    match v {
        Some(x) if !(lo..=hi).contains(&x) || x.is_nan() => Err(ApiError::invalid(
            param,
            format!("`{param}` must be between {lo} and {hi}; got {x}"),
        )),
        other => Ok(other),
    }
}

impl Sampling {
    /// Checks every field and builds the sampling parameters.
    pub fn check(&self, limits: &Limits) -> Result<Checked, ApiError> {
        let temperature = range("temperature", self.temperature, 0.0, 2.0)?.unwrap_or(1.0);
        let top_p = range("top_p", self.top_p, 0.0, 1.0)?;
        if top_p == Some(0.0) {
            return Err(ApiError::invalid("top_p", "`top_p` must be above 0"));
        }
        let presence = range("presence_penalty", self.presence_penalty, -2.0, 2.0)?;
        let frequency = range("frequency_penalty", self.frequency_penalty, -2.0, 2.0)?;
        let min_p = range("min_p", self.min_p, 0.0, 1.0)?;
        let repetition = range("repetition_penalty", self.repetition_penalty, 0.01, 10.0)?;
        let top_k = match self.top_k {
            Some(k) if k < -1 => {
                return Err(ApiError::invalid(
                    "top_k",
                    format!("`top_k` must be -1 (off), 0 (off) or positive; got {k}"),
                ));
            }
            Some(k) if k > 0 => Some(k as usize),
            _ => None,
        };
        let n = match self.n {
            None => 1,
            Some(n) if n >= 1 && n as usize <= limits.max_n => n as usize,
            Some(n) => {
                return Err(ApiError::invalid(
                    "n",
                    format!("`n` must be between 1 and {}; got {n}", limits.max_n),
                ));
            }
        };
        let (max_name, max) = match (self.max_completion_tokens, self.max_tokens) {
            (Some(m), _) => ("max_completion_tokens", Some(m)),
            (None, m) => ("max_tokens", m),
        };
        // 0 is only for scoring a prompt (completions with `echo`); the routes check that.
        let max_new_tokens = match max {
            None => limits.max_tokens,
            Some(m) if m >= 0 && m as usize <= limits.max_tokens => m as usize,
            Some(m) => {
                return Err(ApiError::invalid(
                    max_name,
                    format!(
                        "`{max_name}` must be between 1 and {}; got {m}",
                        limits.max_tokens
                    ),
                ));
            }
        };
        let stop = match &self.stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s.clone()],
            Some(Stop::Many(v)) => v.clone(),
        };
        if stop.len() > limits.max_stop {
            return Err(ApiError::invalid(
                "stop",
                format!(
                    "`stop` takes at most {} sequences; got {}",
                    limits.max_stop,
                    stop.len()
                ),
            ));
        }
        if let Some(s) = stop.iter().find(|s| s.len() > 256) {
            return Err(ApiError::invalid(
                "stop",
                format!("a stop sequence is at most 256 bytes; one has {}", s.len()),
            ));
        }
        let params = SamplingParams {
            max_new_tokens,
            temperature,
            top_k,
            top_p,
            min_p,
            repetition_penalty: repetition.unwrap_or(1.0),
            presence_penalty: presence.unwrap_or(0.0),
            frequency_penalty: frequency.unwrap_or(0.0),
            seed: 0,
            stop,
            stop_token_ids: Vec::new(),
        };
        Ok(Checked {
            params,
            seed: self.seed.map(|s| s as u64),
            explicit_max: max.is_some(),
            n,
            stream: self.stream.unwrap_or(false),
            include_usage: self
                .stream_options
                .as_ref()
                .is_some_and(|o| o.include_usage),
            ignore_eos: self.ignore_eos.unwrap_or(false),
            format: match &self.response_format {
                Some(ResponseFormat::Text) | None => None,
                Some(f) => Some(f.clone()),
            },
        })
    }
}

impl Input {
    /// The texts of an embeddings, classify or extract input, checked against the limits.
    pub fn texts(&self, tok: Option<&Tokenizer>, limits: &Limits) -> Result<Vec<String>, ApiError> {
        let decode = |field: &str, ids: &[u32]| -> Result<String, ApiError> {
            let t = tok
                .ok_or_else(|| ApiError::invalid(field, "this model takes text, not token ids"))?;
            let vocab = t.get_vocab_size(true);
            if let Some(bad) = ids.iter().find(|&&id| id as usize >= vocab) {
                return Err(ApiError::invalid(
                    field,
                    format!("token id {bad} is outside the vocabulary of {vocab}"),
                ));
            }
            t.decode(ids, true)
                .map_err(|e| ApiError::invalid(field, format!("token ids do not decode: {e}")))
        };
        let texts = match self {
            Self::Text(t) => vec![t.clone()],
            Self::Texts(ts) => ts.clone(),
            Self::Tokens(ids) => vec![decode("input", ids)?],
            Self::TokenLists(l) => l
                .iter()
                .enumerate()
                .map(|(i, ids)| decode(&format!("input[{i}]"), ids))
                .collect::<Result<_, _>>()?,
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
}

impl Message {
    /// The content as text (parts joined).
    pub fn text(&self) -> Result<String, ApiError> {
        match &self.content {
            None => Ok(String::new()),
            Some(Content::Text(s)) => Ok(s.clone()),
            Some(Content::Parts(parts)) => {
                let mut out = String::new();
                for p in parts {
                    if p.kind != "text" {
                        return Err(ApiError::invalid(
                            "messages",
                            format!(
                                "content parts of type `{}` are not supported (text only)",
                                p.kind
                            ),
                        ));
                    }
                    out.push_str(p.text.as_deref().unwrap_or_default());
                }
                Ok(out)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampling(v: serde_json::Value) -> Sampling {
        serde_json::from_value(v).unwrap_or_default()
    }

    #[test]
    fn defaults_follow_openai() {
        let c = sampling(serde_json::json!({})).check(&Limits::default());
        let c = c.map_err(|e| e.message).unwrap_or_else(|m| panic!("{m}"));
        assert_eq!(c.params.temperature, 1.0);
        assert_eq!(c.n, 1);
        assert!(!c.stream && !c.explicit_max);
        assert_eq!(c.params.max_new_tokens, 4096);
    }

    #[test]
    fn out_of_range_values_name_their_field() {
        let l = Limits::default();
        for (body, field) in [
            (serde_json::json!({"temperature": 3.0}), "temperature"),
            (serde_json::json!({"top_p": 0.0}), "top_p"),
            (serde_json::json!({"n": 0}), "n"),
            (serde_json::json!({"n": 1000}), "n"),
            (serde_json::json!({"max_tokens": -5}), "max_tokens"),
            (
                serde_json::json!({"max_completion_tokens": 1_000_000_000}),
                "max_completion_tokens",
            ),
            (
                serde_json::json!({"presence_penalty": 9}),
                "presence_penalty",
            ),
            (serde_json::json!({"top_k": -7}), "top_k"),
            (
                serde_json::json!({"stop": ["a", "b", "c", "d", "e"]}),
                "stop",
            ),
        ] {
            let e = sampling(body.clone()).check(&l).err();
            assert_eq!(
                e.as_ref().and_then(|e| e.param.as_deref()),
                Some(field),
                "{body}"
            );
            assert_eq!(e.map(|e| e.status.as_u16()), Some(400));
        }
    }

    #[test]
    fn content_parts_join_and_refuse_images() {
        let m: Message = serde_json::from_value(serde_json::json!({
            "role": "user",
            "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.text().ok().as_deref(), Some("ab"));
        let m: Message = serde_json::from_value(serde_json::json!({
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "x"}}]
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(m.text().is_err());
    }
}

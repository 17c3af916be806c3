//! The OpenAI response bodies (and duet's own routes'), as typed structs: every route answers
//! with one of these, so a field's name and shape are written once.

use serde::Serialize;
use serde_json::Value;

use crate::api::{ChatLogprobs, Usage};

/// `POST /v1/chat/completions`, not streamed.
#[derive(Debug, Serialize)]
pub struct ChatCompletion {
    /// `chatcmpl-…`.
    pub id: String,
    /// `chat.completion`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    /// The model asked for.
    pub model: String,
    /// One per `n`.
    pub choices: Vec<ChatChoice>,
    /// Token counts.
    pub usage: Usage,
    /// The build and settings that, with the seed, reproduce the output.
    pub system_fingerprint: Option<String>,
}

/// One choice of a chat completion.
#[derive(Debug, Serialize)]
pub struct ChatChoice {
    /// Its place among the choices.
    pub index: usize,
    /// The assistant's message.
    pub message: AssistantMessage,
    /// Log-probabilities, when asked for.
    pub logprobs: Option<ChatLogprobs>,
    /// `stop`, `length` or `tool_calls`.
    pub finish_reason: Option<&'static str>,
}

/// The assistant's message of a chat choice.
#[derive(Debug, Serialize)]
pub struct AssistantMessage {
    /// `assistant`.
    pub role: &'static str,
    /// The text (`null` when the message is only tool calls).
    pub content: Option<String>,
    /// Always `null`: duet does not refuse.
    pub refusal: Option<String>,
    /// The functions the model called, when it called any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
}

/// A function call the model made.
#[derive(Debug, Clone, Serialize)]
pub struct ToolCall {
    /// `call_…`, which the `tool` message answering it names.
    pub id: String,
    /// `function`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Which function, with what arguments.
    pub function: FunctionCall,
}

/// The function and arguments of a [`ToolCall`].
#[derive(Debug, Clone, Serialize)]
pub struct FunctionCall {
    /// The function's name.
    pub name: String,
    /// The arguments as a JSON text.
    pub arguments: String,
}

/// One server-sent chunk of a streamed chat completion.
#[derive(Debug, Serialize)]
pub struct ChatChunk {
    /// The completion's id (the same on every chunk).
    pub id: String,
    /// `chat.completion.chunk`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    /// The model asked for.
    pub model: String,
    /// See [`ChatCompletion::system_fingerprint`].
    pub system_fingerprint: Option<String>,
    /// The choices this chunk carries (none in the last, usage-only chunk).
    pub choices: Vec<ChunkChoice>,
    /// With `stream_options.include_usage`: `null` on every chunk but the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Option<Usage>>,
}

/// One choice's part of a [`ChatChunk`].
#[derive(Debug, Serialize)]
pub struct ChunkChoice {
    /// The choice.
    pub index: usize,
    /// What is new.
    pub delta: Delta,
    /// Log-probabilities of the new tokens, when asked for.
    pub logprobs: Option<ChatLogprobs>,
    /// Set on the choice's last chunk.
    pub finish_reason: Option<&'static str>,
}

/// What a chunk adds to a choice's message.
#[derive(Debug, Default, Serialize)]
pub struct Delta {
    /// `assistant`, on the first chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    /// New text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// New parts of tool calls: the first fragment of a call has its id and name, later ones
    /// add to its arguments.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCallDelta>,
}

/// A fragment of a streamed tool call.
#[derive(Debug, Serialize)]
pub struct ToolCallDelta {
    /// Which call of the message.
    pub index: usize,
    /// The call's id (first fragment only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `function` (first fragment only).
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    /// The name (first fragment) and a piece of the arguments.
    pub function: FunctionDelta,
}

/// The function part of a [`ToolCallDelta`].
#[derive(Debug, Serialize)]
pub struct FunctionDelta {
    /// The function's name (first fragment only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The next piece of the arguments' JSON text.
    pub arguments: String,
}

/// `POST /v1/completions`, and each chunk of it when streamed.
#[derive(Debug, Serialize)]
pub struct Completion {
    /// `cmpl-…`.
    pub id: String,
    /// `text_completion`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    /// The model asked for.
    pub model: String,
    /// See [`ChatCompletion::system_fingerprint`] (left out of the usage-only chunk).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_fingerprint: Option<Option<String>>,
    /// One per prompt and `n`.
    pub choices: Vec<CompletionChoice>,
    /// Token counts (`null` on streamed chunks with `include_usage`, absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Option<Usage>>,
}

/// One choice of a completion.
#[derive(Debug, Serialize)]
pub struct CompletionChoice {
    /// Its place among the choices.
    pub index: usize,
    /// The text (after the prompt, with `echo`).
    pub text: String,
    /// Log-probabilities, when asked for.
    pub logprobs: Option<CompletionLogprobs>,
    /// `stop` or `length`; `null` until the last chunk.
    pub finish_reason: Option<&'static str>,
}

/// The legacy completions `logprobs` object: one entry per token.
#[derive(Debug, Default, Serialize)]
pub struct CompletionLogprobs {
    /// The tokens' texts.
    pub tokens: Vec<String>,
    /// Each token's log-probability (`null` for the first token of an echoed prompt).
    pub token_logprobs: Vec<Option<f32>>,
    /// The most likely tokens at each position (`null` where the first has no context).
    pub top_logprobs: Vec<Option<serde_json::Map<String, Value>>>,
    /// Where each token's text begins in the choice's text.
    pub text_offset: Vec<usize>,
}

/// `POST /v1/embeddings`.
#[derive(Debug, Serialize)]
pub struct EmbeddingList {
    /// `list`.
    pub object: &'static str,
    /// One per input.
    pub data: Vec<EmbeddingData>,
    /// The model asked for.
    pub model: String,
    /// Tokens read.
    pub usage: InputUsage,
}

/// One embedding.
#[derive(Debug, Serialize)]
pub struct EmbeddingData {
    /// `embedding`.
    pub object: &'static str,
    /// The input's place.
    pub index: usize,
    /// The vector.
    pub embedding: Embedding,
}

/// A vector as floats, or as base64 of little-endian f32.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Embedding {
    /// `encoding_format: float`.
    Floats(Vec<f32>),
    /// `encoding_format: base64`.
    Base64(String),
}

/// Token counts of a route that only reads (embeddings, classify).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct InputUsage {
    /// Tokens read.
    pub prompt_tokens: usize,
    /// The same.
    pub total_tokens: usize,
}

impl InputUsage {
    /// `tokens` read, nothing generated.
    pub fn new(tokens: usize) -> Self {
        Self {
            prompt_tokens: tokens,
            total_tokens: tokens,
        }
    }
}

/// `POST /v1/classify`.
#[derive(Debug, Serialize)]
pub struct ClassifyList {
    /// `list`.
    pub object: &'static str,
    /// The classifier.
    pub model: String,
    /// One per input.
    pub data: Vec<Classified>,
    /// Tokens read.
    pub usage: InputUsage,
}

/// One text's classes.
#[derive(Debug, Serialize)]
pub struct Classified {
    /// The input's place.
    pub index: usize,
    /// The most probable label.
    pub label: String,
    /// Its probability.
    pub score: f32,
    /// Every label's probability.
    pub probs: serde_json::Map<String, Value>,
}

/// `POST /v1/extract`.
#[derive(Debug, Serialize)]
pub struct ExtractList {
    /// `list`.
    pub object: &'static str,
    /// `keywords` or `json`.
    pub task: String,
    /// The model used, if any.
    pub model: Option<String>,
    /// One per input.
    pub data: Vec<Extracted>,
}

/// What was extracted from one input.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Extracted {
    /// `task: keywords`.
    Keywords {
        /// The input's place.
        index: usize,
        /// The keywords, best first.
        keywords: Vec<duet_extract::Keyword>,
    },
    /// `task: json`.
    Json {
        /// The input's place.
        index: usize,
        /// The JSON the model wrote.
        json: Value,
    },
}

/// A model as `/v1/models` lists it.
#[derive(Debug, Serialize)]
pub struct ModelObject {
    /// Its name.
    pub id: String,
    /// `model`.
    pub object: &'static str,
    /// When the server started.
    pub created: u64,
    /// `duet`.
    pub owned_by: &'static str,
    /// `generator`, `embeddings` or `classifier`.
    pub kind: &'static str,
}

/// `GET /v1/models`.
#[derive(Debug, Serialize)]
pub struct ModelList {
    /// `list`.
    pub object: &'static str,
    /// Every served model.
    pub data: Vec<ModelObject>,
}

/// `GET /health`.
#[derive(Debug, Serialize)]
pub struct Health {
    /// `ok`.
    pub status: &'static str,
    /// Every served model.
    pub models: Vec<HealthModel>,
    /// Sequences waiting over every generator.
    pub queued: usize,
    /// Sequences decoding over every generator.
    pub active: usize,
}

/// A model in [`Health`].
#[derive(Debug, Serialize)]
pub struct HealthModel {
    /// Its name.
    pub id: String,
    /// Its kind.
    pub kind: &'static str,
}

/// `POST /v1/responses`: a Responses API response object.
#[derive(Debug, Clone, Serialize)]
pub struct ResponseObject {
    /// `resp_…`.
    pub id: String,
    /// `response`.
    pub object: &'static str,
    /// Unix seconds.
    pub created_at: u64,
    /// `in_progress`, `completed` or `incomplete`.
    pub status: &'static str,
    /// Always `null` (failures answer with an error instead).
    pub error: Option<Value>,
    /// Why the answer is incomplete.
    pub incomplete_details: Option<IncompleteDetails>,
    /// The request's instructions.
    pub instructions: Option<String>,
    /// The request's token limit.
    pub max_output_tokens: Option<i64>,
    /// The model asked for.
    pub model: String,
    /// The message, or the function calls.
    pub output: Vec<OutputItem>,
    /// Whether several calls were allowed.
    pub parallel_tool_calls: bool,
    /// Always `null`: this server keeps no responses.
    pub previous_response_id: Option<String>,
    /// The request's temperature.
    pub temperature: Option<f64>,
    /// The request's `top_p`.
    pub top_p: Option<f64>,
    /// The request's `tool_choice` (`auto` by default).
    pub tool_choice: Value,
    /// The request's tools.
    pub tools: Vec<Value>,
    /// The request's text format.
    pub text: Value,
    /// `disabled`.
    pub truncation: &'static str,
    /// Token counts (`null` while in progress).
    pub usage: Option<ResponseUsage>,
    /// The request's metadata.
    pub metadata: Value,
    /// Always `false`: nothing is stored.
    pub store: bool,
}

/// Why a response is incomplete.
#[derive(Debug, Clone, Serialize)]
pub struct IncompleteDetails {
    /// `max_output_tokens`.
    pub reason: &'static str,
}

/// An item of a response's output.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputItem {
    /// The assistant's message.
    Message {
        /// `msg_…`.
        id: String,
        /// `in_progress` or `completed`.
        status: &'static str,
        /// `assistant`.
        role: &'static str,
        /// Its text.
        content: Vec<OutputText>,
    },
    /// A function call.
    FunctionCall {
        /// `fc_…`.
        id: String,
        /// The id a `function_call_output` item answers.
        call_id: String,
        /// The function.
        name: String,
        /// Its arguments as a JSON text.
        arguments: String,
        /// `in_progress` or `completed`.
        status: &'static str,
    },
}

impl OutputItem {
    /// The item's id (`msg_…` or `fc_…`).
    pub fn id(&self) -> &str {
        match self {
            Self::Message { id, .. } | Self::FunctionCall { id, .. } => id,
        }
    }
}

/// The text of an output message.
#[derive(Debug, Clone, Serialize)]
pub struct OutputText {
    /// `output_text`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The text.
    pub text: String,
    /// Always empty.
    pub annotations: Vec<Value>,
}

/// Token counts of a Responses answer.
#[derive(Debug, Clone, Serialize)]
pub struct ResponseUsage {
    /// Tokens in the prompt.
    pub input_tokens: usize,
    /// `{"cached_tokens": 0}`.
    pub input_tokens_details: Value,
    /// Tokens generated.
    pub output_tokens: usize,
    /// `{"reasoning_tokens": 0}`.
    pub output_tokens_details: Value,
    /// Both.
    pub total_tokens: usize,
}

/// A streamed Responses event; `type` is also the SSE event name.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type")]
pub enum ResponseEvent {
    /// The response exists.
    #[serde(rename = "response.created")]
    Created {
        /// Its place in the stream.
        sequence_number: u64,
        /// The response so far.
        response: ResponseObject,
    },
    /// Generation has begun.
    #[serde(rename = "response.in_progress")]
    InProgress {
        /// Its place in the stream.
        sequence_number: u64,
        /// The response so far.
        response: ResponseObject,
    },
    /// An output item begins.
    #[serde(rename = "response.output_item.added")]
    ItemAdded {
        /// Its place in the stream.
        sequence_number: u64,
        /// The item's place in the output.
        output_index: usize,
        /// The item so far.
        item: OutputItem,
    },
    /// A message's text part begins.
    #[serde(rename = "response.content_part.added")]
    PartAdded {
        /// Its place in the stream.
        sequence_number: u64,
        /// The message.
        item_id: String,
        /// The message's place in the output.
        output_index: usize,
        /// The part's place in the message.
        content_index: usize,
        /// The part so far.
        part: OutputText,
    },
    /// New text.
    #[serde(rename = "response.output_text.delta")]
    TextDelta {
        /// Its place in the stream.
        sequence_number: u64,
        /// The message.
        item_id: String,
        /// The message's place in the output.
        output_index: usize,
        /// The part's place in the message.
        content_index: usize,
        /// The new text.
        delta: String,
        /// Always empty.
        logprobs: Vec<Value>,
    },
    /// The text is whole.
    #[serde(rename = "response.output_text.done")]
    TextDone {
        /// Its place in the stream.
        sequence_number: u64,
        /// The message.
        item_id: String,
        /// The message's place in the output.
        output_index: usize,
        /// The part's place in the message.
        content_index: usize,
        /// All of it.
        text: String,
        /// Always empty.
        logprobs: Vec<Value>,
    },
    /// A message's text part is whole.
    #[serde(rename = "response.content_part.done")]
    PartDone {
        /// Its place in the stream.
        sequence_number: u64,
        /// The message.
        item_id: String,
        /// The message's place in the output.
        output_index: usize,
        /// The part's place in the message.
        content_index: usize,
        /// The part.
        part: OutputText,
    },
    /// More of a call's arguments.
    #[serde(rename = "response.function_call_arguments.delta")]
    ArgumentsDelta {
        /// Its place in the stream.
        sequence_number: u64,
        /// The call.
        item_id: String,
        /// The call's place in the output.
        output_index: usize,
        /// The next piece.
        delta: String,
    },
    /// A call's arguments are whole.
    #[serde(rename = "response.function_call_arguments.done")]
    ArgumentsDone {
        /// Its place in the stream.
        sequence_number: u64,
        /// The call.
        item_id: String,
        /// The call's place in the output.
        output_index: usize,
        /// All of them.
        arguments: String,
    },
    /// An output item is whole.
    #[serde(rename = "response.output_item.done")]
    ItemDone {
        /// Its place in the stream.
        sequence_number: u64,
        /// The item's place in the output.
        output_index: usize,
        /// The item.
        item: OutputItem,
    },
    /// The response is complete.
    #[serde(rename = "response.completed")]
    Completed {
        /// Its place in the stream.
        sequence_number: u64,
        /// The whole response.
        response: ResponseObject,
    },
    /// The response ended early (the token limit).
    #[serde(rename = "response.incomplete")]
    Incomplete {
        /// Its place in the stream.
        sequence_number: u64,
        /// The whole response.
        response: ResponseObject,
    },
}

impl ResponseEvent {
    /// The event's name (its `type`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Created { .. } => "response.created",
            Self::InProgress { .. } => "response.in_progress",
            Self::ItemAdded { .. } => "response.output_item.added",
            Self::PartAdded { .. } => "response.content_part.added",
            Self::TextDelta { .. } => "response.output_text.delta",
            Self::TextDone { .. } => "response.output_text.done",
            Self::PartDone { .. } => "response.content_part.done",
            Self::ArgumentsDelta { .. } => "response.function_call_arguments.delta",
            Self::ArgumentsDone { .. } => "response.function_call_arguments.done",
            Self::ItemDone { .. } => "response.output_item.done",
            Self::Completed { .. } => "response.completed",
            Self::Incomplete { .. } => "response.incomplete",
        }
    }
}

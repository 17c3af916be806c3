//! Tool calling: OpenAI's `tools` and `tool_choice` turned into a prompt the model was taught
//! (its own chat template when that renders tools, a system message otherwise), a grammar that
//! holds every call to its function's JSON schema, and the calls read back out of the text.
//!
//! Calls are written in the Hermes format that Qwen 2.5 and Hermes models are trained on:
//! `<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>`, one block per call. Under
//! `tool_choice: required` or a named function the output is one or more such blocks; under
//! `auto` it is either plain text or such blocks, and once the model opens a block the grammar
//! holds the rest of it to the schema, so every call that comes back parses and validates.

use serde_json::{Value, json};

use crate::api::{ChatRequest, Message, Tool, ToolChoiceParam};
use crate::error::ApiError;
use crate::response::{FunctionCall, ToolCall};
use duet_model::constrain::Constraint;

/// What opens a call.
pub(crate) const OPEN: &str = "<tool_call>";
/// What closes a call.
pub(crate) const CLOSE: &str = "</tool_call>";

/// Whether and how the model must call tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ToolChoice {
    /// Never: plain text.
    None,
    /// The model decides: text, or calls.
    Auto,
    /// At least one call.
    Required,
    /// A call of this function.
    Named(String),
}

/// The tools of a chat request, checked.
#[derive(Debug, Clone)]
pub(crate) struct ToolPlan {
    /// The functions, as the request gave them.
    pub(crate) tools: Vec<Tool>,
    /// `tool_choice`.
    pub(crate) choice: ToolChoice,
    /// Whether several calls may come in one message.
    pub(crate) parallel: bool,
}

impl ToolPlan {
    /// The tools of `req`, checked; `None` when it has none.
    pub(crate) fn of(req: &ChatRequest) -> Result<Option<Self>, ApiError> {
        let tools = req.tools.clone().unwrap_or_default();
        if tools.is_empty() {
            return match &req.tool_choice {
                None | Some(ToolChoiceParam::Mode(_)) if !is_forcing(req) => Ok(None),
                _ => Err(ApiError::invalid(
                    "tool_choice",
                    "`tool_choice` needs `tools`",
                )),
            };
        }
        for (i, t) in tools.iter().enumerate() {
            if t.kind != "function" {
                return Err(ApiError::invalid(
                    &format!("tools[{i}].type"),
                    format!("tool type {:?} is not supported (function)", t.kind),
                ));
            }
            let name = &t.function.name;
            if name.is_empty()
                || name.len() > 64
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(ApiError::invalid(
                    &format!("tools[{i}].function.name"),
                    format!("a function name is 1 to 64 letters, digits, `_` or `-`; got {name:?}"),
                ));
            }
            if tools[..i].iter().any(|u| &u.function.name == name) {
                return Err(ApiError::invalid(
                    &format!("tools[{i}].function.name"),
                    format!("the function {name:?} is given twice"),
                ));
            }
            if let Some(p) = &t.function.parameters
                && !p.is_object()
            {
                return Err(ApiError::invalid(
                    &format!("tools[{i}].function.parameters"),
                    "`parameters` must be a JSON schema object",
                ));
            }
        }
        let choice = match &req.tool_choice {
            None => ToolChoice::Auto,
            Some(ToolChoiceParam::Mode(m)) => match m.as_str() {
                "auto" => ToolChoice::Auto,
                "none" => ToolChoice::None,
                "required" => ToolChoice::Required,
                other => {
                    return Err(ApiError::invalid(
                        "tool_choice",
                        format!(
                            "`tool_choice` is `auto`, `none`, `required` or a function; got {other:?}"
                        ),
                    ));
                }
            },
            Some(ToolChoiceParam::Named { function, .. }) => {
                if !tools.iter().any(|t| t.function.name == function.name) {
                    return Err(ApiError::invalid(
                        "tool_choice",
                        format!(
                            "`tool_choice` names {:?}, which is not among `tools`",
                            function.name
                        ),
                    ));
                }
                ToolChoice::Named(function.name.clone())
            }
        };
        Ok(Some(Self {
            tools,
            choice,
            parallel: req.parallel_tool_calls.unwrap_or(true),
        }))
    }

    /// Whether the output may hold calls (and is read for them).
    pub(crate) fn calls(&self) -> bool {
        self.choice != ToolChoice::None
    }

    /// The tools as `transformers` passes them to a chat template.
    pub(crate) fn template_tools(&self) -> Vec<Value> {
        self.tools
            .iter()
            .map(|t| json!({"type": "function", "function": function_json(t)}))
            .collect()
    }

    /// The system message that teaches the tools to a model whose template does not render
    /// them (the Hermes prompt).
    pub(crate) fn system_prompt(&self) -> String {
        let mut s = String::from(
            "You may call one or more functions to assist with the user query.\n\n\
             You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n",
        );
        for t in self.template_tools() {
            s.push_str(&t.to_string());
            s.push('\n');
        }
        s.push_str(
            "</tools>\n\nFor each function call, return a json object with function name and \
             arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n\
             {\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>",
        );
        s
    }

    /// The grammar of the output, or `None` when it is free text (`tool_choice: none`).
    pub(crate) fn constraint(&self) -> Option<Constraint> {
        let wanted: Vec<&Tool> = match &self.choice {
            ToolChoice::None => return None,
            ToolChoice::Named(n) => self
                .tools
                .iter()
                .filter(|t| &t.function.name == n)
                .collect(),
            ToolChoice::Auto | ToolChoice::Required => self.tools.iter().collect(),
        };
        let schemas: Vec<Value> = wanted
            .iter()
            .map(|t| {
                json!({
                    "type": "object",
                    "properties": {
                        "name": {"const": t.function.name},
                        "arguments": closed(t.function.parameters.as_ref()),
                    },
                    "required": ["name", "arguments"],
                    "additionalProperties": false,
                })
            })
            .collect();
        let mut body = match schemas.as_slice() {
            [one] => one.clone(),
            many => json!({"anyOf": many}),
        };
        // Compact JSON, as the models are trained to write calls.
        body["x-guidance"] = json!({
            "whitespace_flexible": false,
            "item_separator": ", ",
            "key_separator": ": ",
        });
        let calls = if self.parallel && !matches!(self.choice, ToolChoice::Named(_)) {
            "call (\"\\n\" call)*"
        } else {
            "call"
        };
        let start = match self.choice {
            // Text that does not open a call, or calls.
            ToolChoice::Auto => {
                "start: TEXT | calls\nTEXT: /(.|\\n)*/ & ~/[ \\t\\n]*<tool_call>(.|\\n)*/\n"
            }
            _ => "start: calls\n",
        };
        Some(Constraint::Lark(format!(
            "{start}calls: {calls}\ncall: \"{OPEN}\\n\" body \"\\n{CLOSE}\"\nbody: %json {body}\n"
        )))
    }
}

/// The schema of a function's arguments as the grammar holds them: an object with no
/// properties beyond those listed unless the schema allows more (`additionalProperties`), so
/// that a call can be made as `f(**arguments)`.
fn closed(parameters: Option<&Value>) -> Value {
    let mut p = parameters
        .cloned()
        .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
    if let Some(o) = p.as_object_mut()
        && o.get("type").is_some_and(|t| t == "object")
    {
        o.entry("additionalProperties").or_insert(json!(false));
    }
    p
}

/// Whether `req` forces a call without tools (a named `tool_choice`, or `required`).
fn is_forcing(req: &ChatRequest) -> bool {
    match &req.tool_choice {
        Some(ToolChoiceParam::Named { .. }) => true,
        Some(ToolChoiceParam::Mode(m)) => m == "required",
        None => false,
    }
}

/// A function's definition as JSON.
fn function_json(t: &Tool) -> Value {
    let mut f = json!({"name": t.function.name});
    if let Some(d) = &t.function.description {
        f["description"] = json!(d);
    }
    f["parameters"] = t
        .function
        .parameters
        .clone()
        .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
    f
}

/// The arguments of a call in the history as the template wants them: the parsed object when
/// the text is JSON (as vLLM and `transformers` pass them), else the text.
fn arguments_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// The messages in the form the template renders: OpenAI's `tool_calls` and `tool` messages as
/// `transformers` passes them when the template renders tools, as Hermes text otherwise.
pub(crate) fn template_messages(
    messages: &[Message],
    native: bool,
    system: Option<String>,
) -> Result<Vec<Value>, ApiError> {
    let mut out = Vec::with_capacity(messages.len() + 1);
    let mut system = system;
    for (i, m) in messages.iter().enumerate() {
        let role = match m.role.as_str() {
            "developer" => "system",
            r @ ("system" | "user" | "assistant" | "tool") => r,
            other => {
                return Err(ApiError::invalid(
                    &format!("messages[{i}].role"),
                    format!("unknown role {other:?} (system, developer, user, assistant, tool)"),
                ));
            }
        };
        let mut content = m.text()?;
        if role == "system"
            && let Some(s) = system.take()
        {
            content = format!("{content}\n\n{s}");
        }
        let calls = m.tool_calls.as_deref().unwrap_or_default();
        if role == "tool" && !native {
            out.push(json!({
                "role": "user",
                "content": format!("<tool_response>\n{content}\n</tool_response>"),
            }));
            continue;
        }
        if role == "assistant" && !calls.is_empty() && !native {
            for c in calls {
                let call = format!(
                    "{{\"name\": {}, \"arguments\": {}}}",
                    json!(c.function.name),
                    arguments_value(&c.function.arguments)
                );
                if !content.is_empty() {
                    content.push('\n');
                }
                content.push_str(&format!("{OPEN}\n{call}\n{CLOSE}"));
            }
            out.push(json!({"role": "assistant", "content": content}));
            continue;
        }
        let mut v = json!({"role": role, "content": content, "name": m.name});
        if !calls.is_empty() {
            v["tool_calls"] = calls
                .iter()
                .map(|c| {
                    json!({
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.function.name, "arguments": arguments_value(&c.function.arguments)},
                    })
                })
                .collect();
        }
        if let Some(id) = &m.tool_call_id {
            v["tool_call_id"] = json!(id);
        }
        out.push(v);
    }
    if let Some(s) = system {
        out.insert(0, json!({"role": "system", "content": s}));
    }
    Ok(out)
}

/// A fresh call id (`call_` and 24 hexadecimal digits).
pub(crate) fn call_id() -> String {
    format!(
        "call_{:016x}{:08x}",
        rand::random::<u64>(),
        rand::random::<u32>()
    )
}

/// Reads the calls of a generated text: `Some` when it opens with a call, with every complete
/// call; `None` when it is plain text.
pub(crate) fn parse_calls(text: &str) -> Option<Vec<ToolCall>> {
    let mut rest = text.trim_start();
    if !rest.starts_with(OPEN) {
        return None;
    }
    let mut calls = Vec::new();
    while let Some(after) = rest.trim_start().strip_prefix(OPEN) {
        let Some(end) = after.find(CLOSE) else { break };
        if let Some(call) = parse_call(&after[..end]) {
            calls.push(call);
        }
        rest = &after[end + CLOSE.len()..];
    }
    Some(calls)
}

/// One call's JSON (`{"name", "arguments"}`) as a [`ToolCall`].
pub(crate) fn parse_call(body: &str) -> Option<ToolCall> {
    let v: Value = serde_json::from_str(body.trim()).ok()?;
    let name = v.get("name")?.as_str()?.to_owned();
    let arguments = v.get("arguments").cloned().unwrap_or_else(|| json!({}));
    Some(ToolCall {
        id: call_id(),
        kind: "function",
        function: FunctionCall {
            name,
            arguments: arguments.to_string(),
        },
    })
}

/// A piece of a streamed answer, once it is known what it is.
#[derive(Debug, Clone)]
pub(crate) enum Piece {
    /// Text of the message.
    Text(String),
    /// A complete call.
    Call(ToolCall),
}

/// What a streamed answer has turned out to be so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Nothing, or only a beginning of [`OPEN`].
    Undecided,
    /// Plain text.
    Text,
    /// Calls.
    Calls,
}

/// Reads a streamed answer into text or calls: text is passed on as soon as it cannot be the
/// opening of a call; a call is passed on when its block closes.
#[derive(Debug)]
pub(crate) struct CallReader {
    buf: String,
    mode: Mode,
}

impl CallReader {
    /// A reader at the start of an answer.
    pub(crate) fn new() -> Self {
        Self {
            buf: String::new(),
            mode: Mode::Undecided,
        }
    }

    /// Takes the next piece of text; returns what it completes.
    pub(crate) fn push(&mut self, text: &str) -> Vec<Piece> {
        match self.mode {
            Mode::Text => return vec![Piece::Text(text.to_owned())],
            Mode::Undecided => {
                self.buf.push_str(text);
                let t = self.buf.trim_start();
                if t.starts_with(OPEN) {
                    self.mode = Mode::Calls;
                } else if OPEN.starts_with(t) {
                    return Vec::new();
                } else {
                    self.mode = Mode::Text;
                    let t = t.to_owned();
                    self.buf.clear();
                    return vec![Piece::Text(t)];
                }
            }
            Mode::Calls => self.buf.push_str(text),
        }
        let mut out = Vec::new();
        while let Some(open) = self.buf.find(OPEN) {
            let body = open + OPEN.len();
            let Some(close) = self.buf[body..].find(CLOSE) else {
                break;
            };
            if let Some(call) = parse_call(&self.buf[body..body + close]) {
                out.push(Piece::Call(call));
            }
            self.buf.drain(..body + close + CLOSE.len());
        }
        out
    }

    /// The end of the answer: text held back while it could still have opened a call.
    pub(crate) fn finish(&mut self) -> Vec<Piece> {
        match self.mode {
            Mode::Undecided if !self.buf.trim().is_empty() => {
                self.mode = Mode::Text;
                vec![Piece::Text(
                    std::mem::take(&mut self.buf).trim_start().to_owned(),
                )]
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(v: Value) -> ChatRequest {
        serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
    }

    fn weather() -> Value {
        json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])
    }

    #[test]
    fn calls_are_read_back_with_their_arguments() {
        let text = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>";
        let calls = parse_calls(text).unwrap_or_default();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].function.name, "get_weather");
        assert_eq!(calls[0].function.arguments, "{\"city\":\"Oslo\"}");
        assert!(calls[0].id.starts_with("call_") && calls[0].id != calls[1].id);
        assert!(parse_calls("The weather is fine.").is_none());
    }

    #[test]
    fn a_stream_is_read_into_text_or_calls_whatever_the_cut() {
        let calls = "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": \"x\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"g\", \"arguments\": {}}\n</tool_call>";
        for text in [calls, " <tool and more", "plain answer"] {
            for cut in 1..text.len() {
                if !text.is_char_boundary(cut) {
                    continue;
                }
                let mut r = CallReader::new();
                let mut pieces = r.push(&text[..cut]);
                pieces.extend(r.push(&text[cut..]));
                pieces.extend(r.finish());
                let mut said = String::new();
                let mut names = Vec::new();
                for p in pieces {
                    match p {
                        Piece::Text(t) => said.push_str(&t),
                        Piece::Call(c) => names.push(c.function.name),
                    }
                }
                if text == calls {
                    assert_eq!(names, ["f", "g"], "cut at {cut}");
                    assert!(said.is_empty());
                } else {
                    assert_eq!(said, text.trim_start(), "cut at {cut}");
                    assert!(names.is_empty());
                }
            }
        }
    }

    #[test]
    fn bad_tools_and_choices_name_their_field() {
        for (body, field) in [
            (
                json!({"tools": [{"type": "retrieval", "function": {"name": "f"}}]}),
                "tools[0].type",
            ),
            (
                json!({"tools": [{"type": "function", "function": {"name": "a b"}}]}),
                "tools[0].function.name",
            ),
            (
                json!({"tools": [{"type": "function", "function": {"name": "f"}}, {"type": "function", "function": {"name": "f"}}]}),
                "tools[1].function.name",
            ),
            (
                json!({"tools": weather(), "tool_choice": {"type": "function", "function": {"name": "g"}}}),
                "tool_choice",
            ),
            (
                json!({"tools": weather(), "tool_choice": "sometimes"}),
                "tool_choice",
            ),
            (json!({"tool_choice": "required"}), "tool_choice"),
        ] {
            let mut v = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
            for (k, x) in body.as_object().into_iter().flatten() {
                v[k] = x.clone();
            }
            let e = ToolPlan::of(&request(v)).err();
            assert_eq!(e.and_then(|e| e.param), Some(field.to_owned()), "{body}");
        }
    }

    #[test]
    fn the_grammar_forces_calls_unless_auto_and_none_is_free() {
        let mut v = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": weather()});
        let auto = ToolPlan::of(&request(v.clone())).ok().flatten();
        let g = auto.and_then(|p| p.constraint());
        assert!(matches!(&g, Some(Constraint::Lark(s)) if s.starts_with("start: TEXT | calls")));
        v["tool_choice"] = json!("required");
        let req = ToolPlan::of(&request(v.clone())).ok().flatten();
        assert!(
            matches!(req.and_then(|p| p.constraint()), Some(Constraint::Lark(s)) if s.starts_with("start: calls"))
        );
        v["tool_choice"] = json!("none");
        let none = ToolPlan::of(&request(v)).ok().flatten();
        assert!(none.is_some_and(|p| p.constraint().is_none() && !p.calls()));
    }

    #[test]
    fn history_calls_become_hermes_text_for_templates_without_tools() {
        let msgs: Vec<Message> = serde_json::from_value(json!([
            {"role": "user", "content": "Weather in Oslo?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "12 C"},
        ]))
        .unwrap_or_else(|e| panic!("{e}"));
        let out = template_messages(&msgs, false, Some("TOOLS".into())).unwrap_or_default();
        assert_eq!(out[0]["role"], "system");
        assert_eq!(out[0]["content"], "TOOLS");
        assert_eq!(
            out[2]["content"],
            "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\":\"Oslo\"}}\n</tool_call>"
        );
        assert_eq!(out[3]["role"], "user");
        assert_eq!(out[3]["content"], "<tool_response>\n12 C\n</tool_response>");
        let native = template_messages(&msgs, true, None).unwrap_or_default();
        assert_eq!(
            native[1]["tool_calls"][0]["function"]["arguments"]["city"],
            "Oslo"
        );
        assert_eq!(native[2]["tool_call_id"], "call_1");
    }
}

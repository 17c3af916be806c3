//! JSON that fills a schema, written by a language model behind an OpenAI-compatible API
//! (`duet serve`, llama.cpp's server, vLLM, OpenAI) with `response_format: json_schema`, so the
//! server's constrained decoding guarantees the shape and the model supplies the content.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{Error, Result};

/// Asks a served model to fill a JSON schema from a text.
#[derive(Debug, Clone)]
pub struct JsonExtractor {
    /// The API's base URL (`http://127.0.0.1:8080/v1`).
    pub url: String,
    /// The model to ask.
    pub model: String,
    /// A bearer token, if the server wants one.
    pub api_key: Option<String>,
    /// The schema every answer follows.
    pub schema: Value,
    /// The instruction sent before each text.
    pub instruction: String,
    /// Most tokens per answer.
    pub max_tokens: u32,
    /// Time for one answer.
    pub timeout: Duration,
}

impl JsonExtractor {
    /// An extractor for `schema` (a JSON object) with the default instruction.
    pub fn new(url: &str, model: &str, schema: Value) -> Result<Self> {
        if !schema.is_object() {
            return Err(Error::Config(
                "the schema must be a JSON object (a JSON Schema)".into(),
            ));
        }
        let instruction = default_instruction(&schema);
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            model: model.to_owned(),
            api_key: None,
            schema,
            instruction,
            max_tokens: 256,
            timeout: Duration::from_secs(120),
        })
    }

    /// The request body for `text`.
    pub fn request(&self, text: &str) -> Value {
        chat_request(
            &self.model,
            &self.instruction,
            &self.schema,
            text,
            i64::from(self.max_tokens),
        )
    }

    /// The JSON the model wrote for `text`.
    pub fn extract(&self, text: &str) -> Result<Value> {
        let url = format!("{}/chat/completions", self.url);
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .timeout_global(Some(self.timeout))
                .http_status_as_error(false)
                .build(),
        );
        let mut req = agent.post(&url).header("Content-Type", "application/json");
        if let Some(k) = &self.api_key {
            req = req.header("Authorization", &format!("Bearer {k}"));
        }
        let fail = |why: String| Error::Remote(format!("{url}: {why}"));
        let mut resp = req
            .send(self.request(text).to_string().as_str())
            .map_err(|e| fail(format!("no answer ({e})")))?;
        let status = resp.status().as_u16();
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        if status != 200 {
            return Err(fail(format!("HTTP {status}: {body}")));
        }
        let v: Value = serde_json::from_str(&body).map_err(|e| fail(format!("not JSON: {e}")))?;
        let content = v["choices"][0]["message"]["content"]
            .as_str()
            .ok_or_else(|| fail(format!("no message in the answer: {body}")))?;
        serde_json::from_str(content.trim()).map_err(|e| {
            fail(format!(
                "the answer is not complete JSON ({e}; finish: {}): raise max_tokens",
                v["choices"][0]["finish_reason"]
            ))
        })
    }
}

/// The instruction sent before each text when none is given: extract as JSON, quoting the schema.
pub fn default_instruction(schema: &Value) -> String {
    format!("Extract the information in the user's text as JSON following this schema: {schema}")
}

/// The `/v1/chat/completions` body that asks `model` to fill `schema` from `text`: the
/// instruction as the system message, greedy decoding, `response_format: json_schema`.
pub fn chat_request(
    model: &str,
    instruction: &str,
    schema: &Value,
    text: &str,
    max_tokens: i64,
) -> Value {
    json!({
        "model": model,
        "messages": [
            {"role": "system", "content": instruction},
            {"role": "user", "content": text},
        ],
        "temperature": 0,
        "max_tokens": max_tokens,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "extraction", "schema": schema, "strict": true},
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_carries_the_schema_as_response_format() {
        let schema = json!({"type": "object", "properties": {"city": {"type": "string"}}});
        let x = JsonExtractor::new("http://h/v1/", "gpt", schema.clone()).unwrap();
        assert_eq!(x.url, "http://h/v1");
        let r = x.request("I live in Berlin");
        assert_eq!(r["response_format"]["json_schema"]["schema"], schema);
        assert_eq!(r["messages"][1]["content"], "I live in Berlin");
        assert!(JsonExtractor::new("http://h/v1", "gpt", json!([1])).is_err());
    }

    #[test]
    fn an_unreachable_server_is_a_clear_error() {
        let schema = json!({"type": "object"});
        let mut x = JsonExtractor::new("http://127.0.0.1:9/v1", "gpt", schema).unwrap();
        x.timeout = Duration::from_secs(2);
        let e = x.extract("text").unwrap_err().to_string();
        assert!(e.contains("127.0.0.1:9/v1/chat/completions"), "{e}");
    }
}

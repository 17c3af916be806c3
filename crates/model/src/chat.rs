//! Chat templates (shared by `duet serve`, `duet chat` and training on chats, so that what a
//! model is trained on and what it is served with cannot disagree): the model's own Jinja template (`chat_template.jinja`, as `transformers` 5
//! saves it, or `chat_template` in `tokenizer_config.json`), rendered with `minijinja` and
//! Python-compatible string methods; a plain built-in template for models without one.

use std::path::Path;

use minijinja::{Environment, ErrorKind, Value, context};

use crate::{Error, Result};

/// The template of models that bring none: one `role: content` line per message, then
/// `assistant:`. Generation stops where the model starts the user's next line.
pub const BUILTIN: &str = "{%- for m in messages %}{{ m.role }}: {{ m.content | trim }}\n{% endfor -%}\
{%- if add_generation_prompt %}assistant:{% endif %}";

/// Stop sequences that go with [`BUILTIN`].
pub const BUILTIN_STOPS: [&str; 2] = ["\nuser:", "\nsystem:"];

/// A compiled chat template.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    /// Where it came from (`chat_template.jinja`, `tokenizer_config.json`, or `built-in`).
    pub source: String,
    bos: String,
    eos: String,
    /// The template's text.
    text: String,
}

fn raise_exception(msg: String) -> std::result::Result<Value, minijinja::Error> {
    Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
}

/// A token's text from `tokenizer_config.json` (a string or `{"content": ...}`).
fn token_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Object(o) => o
            .get("content")
            .and_then(|c| c.as_str())
            .unwrap_or_default()
            .to_owned(),
        _ => String::new(),
    }
}

impl ChatTemplate {
    /// Compiles `source` (named `origin` in errors).
    pub fn new(source: String, origin: &str, bos: String, eos: String) -> Result<Self> {
        let mut env = Environment::new();
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        let text = source.clone();
        env.add_template_owned("chat", source)
            .map_err(|e| Error::Template {
                path: origin.to_owned(),
                message: e.to_string(),
            })?;
        Ok(Self {
            env,
            source: origin.to_owned(),
            bos,
            eos,
            text,
        })
    }

    /// The template of the model in `dir`, or the built-in one.
    pub fn load(dir: &Path) -> Result<Self> {
        let cfg_path = dir.join("tokenizer_config.json");
        let cfg: serde_json::Value = match std::fs::read_to_string(&cfg_path) {
            Ok(s) => serde_json::from_str(&s).map_err(|e| Error::Template {
                path: cfg_path.display().to_string(),
                message: format!("not JSON: {e}"),
            })?,
            Err(_) => serde_json::Value::Null,
        };
        let bos = token_text(&cfg["bos_token"]);
        let eos = token_text(&cfg["eos_token"]);
        let file = dir.join("chat_template.jinja");
        if let Ok(src) = std::fs::read_to_string(&file) {
            return Self::new(src, &file.display().to_string(), bos, eos);
        }
        let origin = cfg_path.display().to_string();
        match &cfg["chat_template"] {
            serde_json::Value::String(s) => Self::new(s.clone(), &origin, bos, eos),
            serde_json::Value::Array(named) => {
                let pick = named
                    .iter()
                    .find(|t| t["name"] == "default")
                    .or_else(|| named.first())
                    .and_then(|t| t["template"].as_str());
                match pick {
                    Some(s) => Self::new(s.to_owned(), &origin, bos, eos),
                    None => Self::builtin(),
                }
            }
            _ => Self::builtin(),
        }
    }

    /// The built-in template.
    pub fn builtin() -> Result<Self> {
        Self::new(BUILTIN.to_owned(), "built-in", String::new(), String::new())
    }

    /// Whether this is the built-in template (which needs [`BUILTIN_STOPS`]).
    pub fn is_builtin(&self) -> bool {
        self.source == "built-in"
    }

    /// Whether the template itself renders tools (`tools` in its source), as the templates of
    /// models trained for tool calling do; others need the tools described in a message.
    pub fn supports_tools(&self) -> bool {
        self.text.contains("tools")
    }

    /// The template's Jinja text (to tell, say, which tool-call format it teaches).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Renders `messages` (`[{"role", "content"}]`) with the generation prompt.
    pub fn render(
        &self,
        messages: &[serde_json::Value],
    ) -> std::result::Result<String, minijinja::Error> {
        self.env.get_template("chat")?.render(context! {
            messages => messages,
            add_generation_prompt => true,
            bos_token => self.bos,
            eos_token => self.eos,
        })
    }

    /// Renders `messages` with `tools` (OpenAI's `[{"type": "function", "function": {...}}]`,
    /// as `transformers`' `apply_chat_template(tools=...)` passes them) and the generation
    /// prompt.
    pub fn render_with_tools(
        &self,
        messages: &[serde_json::Value],
        tools: &[serde_json::Value],
    ) -> std::result::Result<String, minijinja::Error> {
        self.env.get_template("chat")?.render(context! {
            messages => messages,
            tools => tools,
            add_generation_prompt => true,
            bos_token => self.bos,
            eos_token => self.eos,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builtin_template_renders_roles_and_prompt() {
        let t = ChatTemplate::builtin().unwrap_or_else(|e| panic!("{e}"));
        let s = t
            .render(&[
                json!({"role": "system", "content": "Be brief."}),
                json!({"role": "user", "content": "Hi "}),
            ])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s, "system: Be brief.\nuser: Hi\nassistant:");
    }

    #[test]
    fn chatml_template_with_python_methods() {
        // The shape of Qwen2's template: Python string methods and raise_exception.
        let src = "{%- for m in messages %}{%- if m.role not in ['system','user','assistant'] %}\
            {{ raise_exception('bad role ' + m.role) }}{%- endif %}\
            <|im_start|>{{ m.role }}\n{{ m.content.strip() }}<|im_end|>\n{% endfor %}\
            {%- if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
        let t = ChatTemplate::new(src.into(), "test", String::new(), "<|im_end|>".into())
            .unwrap_or_else(|e| panic!("{e}"));
        let s = t
            .render(&[json!({"role": "user", "content": "  hello  "})])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            s,
            "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"
        );
        let e = t.render(&[json!({"role": "robot", "content": "x"})]);
        assert!(e.is_err_and(|e| e.to_string().contains("bad role robot")));
    }

    #[test]
    fn a_broken_template_is_an_error_naming_its_file() {
        let e = ChatTemplate::new(
            "{% for %}".into(),
            "x/chat_template.jinja",
            String::new(),
            String::new(),
        );
        assert!(e.is_err_and(|e| e.to_string().contains("x/chat_template.jinja")));
    }
}

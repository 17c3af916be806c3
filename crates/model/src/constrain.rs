//! Constrained decoding: a [`Constraint`] — a JSON schema (OpenAI's `response_format`, a
//! tool's parameters), a regular expression or a Lark grammar — compiled by `llguidance` into a
//! grammar over the tokenizer's vocabulary. Before each token is sampled, the tokens the
//! grammar forbids are masked out, so the output always parses and validates. Serving, the CLI
//! and the dialog manager share this one implementation; none of them passes it a wire type.

use std::sync::Arc;

use crate::generate::FinishReason;
pub use llguidance::Matcher;
use llguidance::ParserFactory;
use llguidance::api::TopLevelGrammar;
use llguidance::toktrie::{TokEnv, TokRxInfo, TokTrie, TokenId, TokenizerEnv};
use tokenizers::Tokenizer;

/// The tokenizer as `llguidance` sees it: every token's bytes in a trie.
struct Env {
    trie: TokTrie,
    tokenizer: Arc<Tokenizer>,
}

impl TokenizerEnv for Env {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    fn tokenize_bytes(&self, s: &[u8]) -> Vec<TokenId> {
        let text = String::from_utf8_lossy(s);
        self.tokenizer
            .encode(text.as_ref(), false)
            .map(|e| e.get_ids().to_vec())
            .unwrap_or_else(|_| self.trie.greedy_tokenize(s))
    }
}

/// The bytes of token `id` decoded on its own; a special token is marked as llguidance
/// expects, so that grammars never produce it as text.
fn token_bytes(tokenizer: &Tokenizer, id: u32) -> Vec<u8> {
    let special = tokenizer
        .get_added_tokens_decoder()
        .get(&id)
        .filter(|t| t.special)
        .map(|t| t.content.clone());
    match special {
        Some(name) => {
            let mut b = vec![TokTrie::SPECIAL_TOKEN_MARKER];
            b.extend_from_slice(name.as_bytes());
            b
        }
        None => tokenizer
            .decode(&[id], false)
            .map(String::into_bytes)
            .unwrap_or_default(),
    }
}

/// What a generation's output must be.
#[derive(Debug, Clone, PartialEq)]
pub enum Constraint {
    /// JSON valid under this schema (`{"type": "object"}` for any object).
    JsonSchema(serde_json::Value),
    /// Text matching this regular expression as a whole.
    Regex(String),
    /// Text that this Lark grammar (llguidance's dialect) derives.
    Lark(String),
}

/// Compiles constraints for one model's vocabulary.
pub struct Grammars {
    factory: ParserFactory,
}

impl std::fmt::Debug for Grammars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Grammars")
    }
}

impl Grammars {
    /// Builds the token trie of `tokenizer` for a model with `vocab` logits; `eos` is the
    /// token that ends a complete output.
    pub fn new(tokenizer: Arc<Tokenizer>, vocab: usize, eos: u32) -> Result<Self, String> {
        let json: serde_json::Value = tokenizer
            .to_string(false)
            .map_err(|e| e.to_string())
            .and_then(|s| serde_json::from_str(&s).map_err(|e| e.to_string()))?;
        let mut words = match llguidance::token_bytes_from_tokenizer_json(&json) {
            Ok(w) => w,
            // Layouts llguidance does not read (a character-level vocabulary with a Fuse
            // decoder): each token's text as the tokenizer decodes it alone.
            Err(_) => (0..tokenizer.get_vocab_size(true) as u32)
                .map(|id| token_bytes(&tokenizer, id))
                .collect(),
        };
        words.resize(vocab, Vec::new());
        // Ids the tokenizer does not use (a model's vocabulary is often padded) must never be
        // allowed: as special tokens with a name of their own, the grammar forbids them.
        for (i, w) in words.iter_mut().enumerate() {
            if w.is_empty() {
                w.push(TokTrie::SPECIAL_TOKEN_MARKER);
                w.extend_from_slice(format!("<[unused{i}]>").as_bytes());
            }
        }
        let trie = TokTrie::from(&TokRxInfo::new(vocab as u32, eos), &words);
        let env: TokEnv = Arc::new(Env { trie, tokenizer });
        let mut factory = ParserFactory::new_simple(&env)
            .map_err(|e| format!("building the grammar engine: {e}"))?;
        factory.quiet();
        Ok(Self { factory })
    }

    /// A matcher for one sequence; an unusable constraint is an error naming what is wrong.
    pub fn matcher(&self, c: &Constraint) -> Result<Matcher, String> {
        match c {
            Constraint::JsonSchema(schema) => self.json(schema),
            Constraint::Regex(r) => self.regex(r),
            Constraint::Lark(l) => self.lark(l),
        }
    }

    /// A matcher for JSON valid under `schema`.
    pub fn json(&self, schema: &serde_json::Value) -> Result<Matcher, String> {
        let mut schema = schema.clone();
        if let Some(o) = schema.as_object_mut() {
            // Compact JSON, as hosted models write it, unless the schema says otherwise.
            o.entry("x-guidance").or_insert_with(|| {
                serde_json::json!({
                    "whitespace_flexible": false,
                    "item_separator": ", ",
                    "key_separator": ": ",
                })
            });
        }
        self.compile(TopLevelGrammar::from_json_schema(schema), "the JSON schema")
    }

    /// A matcher for output that matches the regular expression `pattern` as a whole.
    pub fn regex(&self, pattern: &str) -> Result<Matcher, String> {
        self.compile(
            TopLevelGrammar::from_regex(pattern),
            "the regular expression",
        )
    }

    /// A matcher for output that the Lark grammar `lark` derives (llguidance's dialect).
    pub fn lark(&self, lark: &str) -> Result<Matcher, String> {
        self.compile(TopLevelGrammar::from_lark(lark.to_owned()), "the grammar")
    }

    fn compile(&self, grammar: TopLevelGrammar, what: &str) -> Result<Matcher, String> {
        let parser = self
            .factory
            .create_parser(grammar)
            .map_err(|e| format!("{what} cannot be used: {e}"))?;
        let m = Matcher::new(Ok(parser));
        match m.get_error() {
            Some(e) => Err(format!("{what} cannot be used: {e}")),
            None => Ok(m),
        }
    }
}

/// Sets the logits of every token the grammar forbids to −∞.
pub fn mask(m: &mut Matcher, logits: &mut [f32]) -> crate::Result<()> {
    let allowed = m
        .compute_mask()
        .map_err(|e| crate::Error::Invalid(format!("structured output: {e}")))?;
    let mut any = false;
    for (i, l) in logits.iter_mut().enumerate() {
        if allowed.is_allowed(i as u32) {
            any = any || l.is_finite();
        } else {
            *l = f32::NEG_INFINITY;
        }
    }
    if any {
        Ok(())
    } else {
        Err(crate::Error::Invalid(
            "structured output: the grammar allows no token here".into(),
        ))
    }
}

/// Feeds the token just sampled to the grammar; `Some(Stop)` when the output is complete.
pub fn advance(m: &mut Matcher, token: u32) -> Result<Option<FinishReason>, String> {
    m.consume_token(token)
        .map_err(|e| format!("structured output: {e}"))?;
    Ok(m.is_stopped().then_some(FinishReason::Stop))
}

//! The unit of a corpus: one document with its provenance.

use serde::{Deserialize, Serialize};

/// One document as written to a corpus shard: a line of `shard-NNNNN.jsonl.zst`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// Stable identifier: the input's own id field, or `<source>#<n>`.
    pub id: String,
    /// The cleaned, redacted text.
    pub text: String,
    /// The input file (relative to the input root) the document came from.
    pub source: String,
    /// ISO 639-1 language code (`en`, `zh`, ...) or `und` when unknown.
    pub lang: String,
    /// Extra facts: the language confidence, redaction counts, input fields kept.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub meta: serde_json::Map<String, serde_json::Value>,
}

//! Information extraction over plain text: the key phrases of a document.
//!
//! Entities come from a fine-tuned tagger (`duet_train::tokens`); this crate holds the rest:
//! statistical keyword extraction (YAKE; jieba's TF-IDF for Chinese), optionally re-ranked by
//! how close each phrase is to the whole document in a sentence-embedding space, and JSON that
//! fills a schema, written by a served language model under constrained decoding.

pub mod error;
pub mod json;
pub mod keywords;

pub use error::{Error, Result};
pub use json::JsonExtractor;
pub use keywords::{Keyword, KeywordConfig, KeywordExtractor};

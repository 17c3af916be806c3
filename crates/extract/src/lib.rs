//! Information extraction over plain text: the key phrases of a document.
//!
//! Entities come from a fine-tuned tagger (`duet_train::tokens`) and JSON from a language model
//! constrained by a schema (`duet_serve`); this crate holds what needs neither: statistical
//! keyword extraction (YAKE), optionally re-ranked by how close each phrase is to the whole
//! document in a sentence-embedding space, with Chinese text segmented into words first.

pub mod error;
pub mod keywords;

pub use error::{Error, Result};
pub use keywords::{Keyword, KeywordConfig, KeywordExtractor};

//! Token classification (named entities, slots): tagged data in CoNLL, Rasa and JSON-lines
//! form, fine-tuning `BertForTokenClassification` with sub-word alignment, entity-level scores,
//! and extraction from raw text.

pub mod config;
pub mod data;
pub mod predict;
pub mod run;
pub mod task;

//! Token classification (named entities, slots): tagged data in CoNLL, Rasa and JSON-lines
//! form, fine-tuning `BertForTokenClassification` with sub-word alignment, entity-level scores
//! (loading a tagger and extraction from raw text are `duet_model::predict::tagger`).

pub mod config;
pub mod data;
pub mod run;
pub mod task;

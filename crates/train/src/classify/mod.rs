//! Text classification: labelled data, the TF-IDF + logistic-regression baseline, fine-tuning
//! BERT, evaluation (prediction itself is `duet_model::predict`).

pub mod config;
pub mod data;
pub mod evaluate;
pub mod run;
pub mod task;
pub mod tfidf;

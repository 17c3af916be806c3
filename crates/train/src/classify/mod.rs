//! Text classification: labelled data, the TF-IDF + logistic-regression baseline, fine-tuning
//! BERT, and one interface to predict with either.

pub mod config;
pub mod data;
pub mod evaluate;
pub mod predict;
pub mod run;
pub mod task;
pub mod tfidf;

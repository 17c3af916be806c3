//! Inference with the encoders duet fine-tunes: text classifiers (TF-IDF + logistic regression,
//! or a BERT sequence classifier) and BERT entity taggers, loaded from their directories.
//! Training them lives in `duet-train`; the server and the dialog manager need only this.

pub mod classifier;
pub mod tagger;
pub mod tfidf;
pub mod windows;

pub use classifier::{Classifier, argmax};
pub use tagger::{Entity, EntityTagger};

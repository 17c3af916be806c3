//! `duet-eval`: measuring models honestly.
//!
//! - [`classification`]: accuracy; precision, recall and F1 per class and macro, micro and
//!   weighted; the confusion matrix; ROC-AUC, PR-AUC (average precision) and a threshold sweep
//!   for binary tasks; expected calibration error.
//! - [`entities`]: entity-level precision, recall and F1 from BIO tags (as seqeval counts).
//! - [`folds`]: stratified k-fold splits and mean ± std over folds.
//! - [`slices`]: the same metrics per slice of the data and the largest gap between slices.
//! - [`report`]: `metrics.json`, `report.md` and `confusion.png`.
//!
//! ```
//! use duet_eval::classification::Metrics;
//!
//! let labels = vec!["ham".to_owned(), "spam".to_owned()];
//! let m = Metrics::compute(&[0, 0, 1, 1], &[0, 1, 1, 1], None, &labels);
//! assert_eq!(m.accuracy, 0.75);
//! assert_eq!(m.per_class["spam"].recall, 1.0);
//! ```

pub mod classification;
pub mod entities;
mod error;
pub mod folds;
pub mod report;
pub mod slices;

pub use error::{Error, Result};

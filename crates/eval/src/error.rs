//! The one error type of `duet-eval`.

use std::path::PathBuf;

/// What can go wrong while evaluating or writing reports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// Inputs that do not fit together.
    #[error("{0}")]
    Invalid(String),
    /// Drawing a chart failed.
    #[error("plot: {0}")]
    Plot(String),
    /// JSON serialisation failed.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

//! The one error type of `duet-train`.

use std::path::PathBuf;

/// Everything that can stop a training run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The configuration is invalid; the message names the key.
    #[error("config: {0}")]
    Config(String),
    /// The loss became NaN or infinite; the last good checkpoint stays.
    #[error(
        "the loss became {value} at step {step}; stopping (the last checkpoint before it is kept; try a lower train.lr or train.grad_clip)"
    )]
    NonFinite {
        /// The optimizer step at which it happened.
        step: usize,
        /// The value.
        value: f32,
    },
    /// A checkpoint is missing, incomplete or does not fit.
    #[error("{path}: {reason}")]
    Checkpoint {
        /// The checkpoint directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The model crate failed.
    #[error(transparent)]
    Model(#[from] duet_model::Error),
    /// The tokenizer crate failed.
    #[error(transparent)]
    Tokenizer(#[from] duet_tokenizer::Error),
    /// The corpus crate failed.
    #[error(transparent)]
    Corpus(#[from] duet_corpus::Error),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// Computing or writing an evaluation report failed.
    #[error(transparent)]
    Eval(#[from] duet_eval::Error),
    /// JSON (de)serialisation failed.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// Plotting failed.
    #[error("plot: {0}")]
    Plot(String),
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Attaches a path to an I/O error.
pub(crate) trait IoContext<T> {
    /// Maps the error to [`Error::Io`] naming `path`.
    fn at(self, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T> {
        self.map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

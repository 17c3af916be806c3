//! The one error type of `duet-tokenizer`.

use std::path::PathBuf;

/// Everything that can go wrong while training tokenizers, encoding or batching.
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
    /// The `tokenizers` library failed.
    #[error("tokenizer: {0}")]
    Tokenizers(String),
    /// A token shard is not what duet writes.
    #[error("{path}: {reason}")]
    BadShard {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Invalid options; the message names the option.
    #[error("{0}")]
    Invalid(String),
    /// Reading the corpus failed.
    #[error(transparent)]
    Corpus(#[from] duet_corpus::Error),
    /// JSON (de)serialisation failed.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
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

/// Converts the `tokenizers` crate's boxed error.
pub(crate) fn tk(e: tokenizers::Error) -> Error {
    Error::Tokenizers(e.to_string())
}

//! The one error type of `duet-corpus`.

use std::path::PathBuf;

/// Everything that can go wrong while building, merging or reading a corpus.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A line of an input or artefact file could not be parsed.
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What was expected and what was found.
        message: String,
    },
    /// The configuration is invalid; the message names the key.
    #[error("config: {0}")]
    Config(String),
    /// The output directory exists and `force` was not given.
    #[error("{0} already exists; pass --force to replace it")]
    OutputExists(PathBuf),
    /// A directory given as a corpus is not a finished duet corpus.
    #[error("{path}: not a finished duet corpus ({reason})")]
    NotACorpus {
        /// The directory.
        path: PathBuf,
        /// Why it was rejected.
        reason: String,
    },
    /// An input could not be read and the run is strict.
    #[error("{0}")]
    Strict(String),
    /// JSON (de)serialisation of an artefact failed.
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

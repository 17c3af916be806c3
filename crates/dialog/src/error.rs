//! The one error type of `duet-dialog`.

use std::path::PathBuf;

/// Everything that can go wrong loading, training or running an assistant.
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
    /// A project file is not valid YAML of the expected shape.
    #[error("{file}: {message}")]
    Yaml {
        /// The file.
        file: PathBuf,
        /// The parser's message (with line and column).
        message: String,
    },
    /// The project is inconsistent; each problem names its file and line.
    #[error("the project has {} error(s):\n{}", .0.len(), .0.join("\n"))]
    Invalid(Vec<String>),
    /// The trained assistant is missing or was trained on other data.
    #[error("{0}")]
    Model(String),
    /// Training the NLU failed.
    #[error(transparent)]
    Train(#[from] duet_train::Error),
    /// Loading or running the NLU's classifier or tagger failed.
    #[error(transparent)]
    Predict(#[from] duet_model::Error),
    /// JSON (de)serialisation failed.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Attaches a path to an I/O error.
pub(crate) fn io(path: &std::path::Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

//! The one error type of `duet-extract`.

/// What can go wrong extracting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The sentence encoder failed to load or run.
    #[error("sentence encoder: {0}")]
    Model(#[from] duet_model::Error),
    /// The language-model server failed or answered something unusable.
    #[error("language model at {0}")]
    Remote(String),
    /// A setting is out of range.
    #[error("{0}")]
    Config(String),
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

//! Training data: token shards given directly, or a corpus encoded with a tokenizer into the
//! run directory (reused when the corpus and tokenizer are the same as last time).

use std::path::{Path, PathBuf};

use duet_tokenizer::{EncodeOptions, TokenManifest};

use crate::config::DataSection;
use crate::{Error, Result};

/// Token shards and the tokenizer that made them.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// The token directory.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: TokenManifest,
    /// The tokenizer, when known (saved beside the model).
    pub tokenizer: Option<PathBuf>,
}

/// Resolves `data` into token shards, encoding the corpus into `run/tokens` when needed.
pub fn prepare(data: &DataSection, run: &Path) -> Result<Tokens> {
    if let Some(dir) = &data.tokens {
        let manifest = TokenManifest::load(dir)?;
        let tokenizer = match &data.tokenizer {
            Some(t) => {
                let sha = duet_tokenizer::encode::sha256_file(t)?;
                if sha != manifest.tokenizer_sha256 {
                    return Err(Error::Config(format!(
                        "data.tokenizer {} is not the tokenizer that encoded {} (its SHA-256 is \
                         {sha}, the manifest's {}): pass the tokenizer given to `tokenizer \
                         encode`, or leave --tokenizer out to use the copy in the token directory",
                        t.display(),
                        dir.display(),
                        manifest.tokenizer_sha256
                    )));
                }
                Some(t.clone())
            }
            None => Some(dir.join(duet_tokenizer::encode::TOKENIZER_COPY)).filter(|p| p.is_file()),
        };
        return Ok(Tokens {
            dir: dir.clone(),
            manifest,
            tokenizer,
        });
    }
    let (Some(corpus), Some(tokenizer)) = (&data.corpus, &data.tokenizer) else {
        return Err(Error::Config(
            "set data.tokens, or data.corpus and data.tokenizer (--corpus DIR --tokenizer FILE)"
                .into(),
        ));
    };
    let dir = run.join("tokens");
    if let Ok(m) = TokenManifest::load(&dir) {
        let same_tok = duet_tokenizer::encode::sha256_file(tokenizer)? == m.tokenizer_sha256;
        let same_corpus = duet_tokenizer::encode::sha256_file(&corpus.join("manifest.json"))?
            == m.corpus_manifest_sha256;
        if same_tok && same_corpus {
            return Ok(Tokens {
                dir,
                manifest: m,
                tokenizer: Some(tokenizer.clone()),
            });
        }
    }
    let opts = EncodeOptions {
        force: true,
        ..Default::default()
    };
    let manifest = duet_tokenizer::encode_corpus(
        tokenizer,
        corpus,
        &dir,
        &opts,
        &indicatif::ProgressBar::hidden(),
    )?;
    Ok(Tokens {
        dir,
        manifest,
        tokenizer: Some(tokenizer.clone()),
    })
}

/// Provenance of the inputs for `duet.json`.
pub fn provenance(t: &Tokens) -> serde_json::Value {
    serde_json::json!({
        "tokens": t.dir.display().to_string(),
        "tokenizer_sha256": t.manifest.tokenizer_sha256,
        "corpus_manifest_sha256": t.manifest.corpus_manifest_sha256,
        "train_tokens": t.manifest.splits.get("train").map(|s| s.tokens),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    /// A token directory with no splits whose manifest names `tokenizer`'s hash.
    fn token_dir(dir: &Path, tokenizer: &Path) -> TestResult {
        std::fs::create_dir_all(dir)?;
        let m = TokenManifest {
            tokenizer_sha256: duet_tokenizer::encode::sha256_file(tokenizer)?,
            corpus_manifest_sha256: "c".into(),
            vocab_size: 3,
            width: 2,
            separator: None,
            splits: Default::default(),
        };
        std::fs::write(dir.join("manifest.json"), serde_json::to_vec(&m)?)?;
        Ok(())
    }

    #[test]
    fn a_token_directory_brings_its_tokenizer_and_refuses_another() -> TestResult {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path().join("tokens");
        let mine = tmp.path().join("mine.json");
        std::fs::write(&mine, r#"{"model":"mine"}"#)?;
        token_dir(&dir, &mine)?;
        let tokens = |tokenizer: Option<PathBuf>| {
            let data = DataSection {
                tokens: Some(dir.clone()),
                tokenizer,
                ..Default::default()
            };
            prepare(&data, tmp.path())
        };
        // An old token directory without the copy: no tokenizer to save.
        assert_eq!(tokens(None)?.tokenizer, None);
        std::fs::copy(&mine, dir.join("tokenizer.json"))?;
        assert_eq!(tokens(None)?.tokenizer, Some(dir.join("tokenizer.json")));
        assert_eq!(tokens(Some(mine.clone()))?.tokenizer, Some(mine));
        let other = tmp.path().join("other.json");
        std::fs::write(&other, r#"{"model":"other"}"#)?;
        let Err(Error::Config(msg)) = tokens(Some(other.clone())) else {
            panic!("a different tokenizer was accepted");
        };
        assert!(
            msg.contains("other.json") && msg.contains("is not the tokenizer"),
            "{msg}"
        );
        Ok(())
    }
}

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
        return Ok(Tokens {
            dir: dir.clone(),
            manifest,
            tokenizer: data.tokenizer.clone(),
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

//! A causal language model ready for generation, whichever way it was stored: a Hugging Face
//! directory (f32 safetensors, run by [`crate::gpt`] on candle) or a GGUF file (weights kept
//! quantized, run by [`crate::qlm`]). Generation, serving and evaluation take an [`Lm`] and
//! never ask which.

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use tokenizers::Tokenizer;

use crate::gguf::{GgufFile, tokenizer::SpecialTokens};
use crate::gpt::{self, Gpt};
use crate::qlm;
use crate::quant::pool::{self, Pool};
use crate::{Error, Result};

/// Tokens a GGUF prompt is processed in at most at once (llama.cpp's default `n_ubatch`).
pub const UBATCH: usize = 512;

/// A decoder of either kind.
#[derive(Debug, Clone)]
pub enum Lm {
    /// f32 weights on candle.
    Candle(Box<Gpt>),
    /// Quantized weights from a GGUF file, and the threads that run them.
    Gguf(Arc<qlm::Model>),
}

/// One sequence's cache, of the kind its model needs.
#[derive(Debug, Clone)]
pub enum LmCache {
    /// For [`Lm::Candle`].
    Candle(gpt::Cache),
    /// For [`Lm::Gguf`].
    Gguf(qlm::Cache),
}

impl LmCache {
    /// Positions held.
    pub fn len(&self) -> usize {
        match self {
            Self::Candle(c) => c.seq_len,
            Self::Gguf(c) => c.len(),
        }
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every position from `len` on, so that the cache holds the first `len`
    /// positions of its sequence (to continue a shared prefix differently).
    pub fn truncate(&mut self, len: usize) -> Result<()> {
        match self {
            Self::Candle(c) => c.truncate(len)?,
            Self::Gguf(c) => c.truncate(len),
        }
        Ok(())
    }

    /// Bytes of keys and values it holds.
    pub fn bytes(&self) -> usize {
        match self {
            Self::Candle(c) => c.bytes(),
            Self::Gguf(c) => c.bytes(),
        }
    }
}

/// Everything a GGUF file brings besides its weights.
#[derive(Debug, Clone)]
pub struct GgufExtras {
    /// The file.
    pub file: Arc<GgufFile>,
    /// `tokenizer.chat_template`, when the file has one.
    pub chat_template: Option<String>,
    /// BOS, EOS and end-of-generation tokens.
    pub special: SpecialTokens,
}

/// A model with its tokenizer, as loaded from disk.
#[derive(Debug, Clone)]
pub struct LoadedLm {
    /// The network.
    pub lm: Lm,
    /// Its tokenizer.
    pub tokenizer: Tokenizer,
    /// For GGUF files: template and special tokens from the metadata.
    pub gguf: Option<GgufExtras>,
}

/// Whether `path` names a GGUF file (by its extension or its magic number).
pub fn is_gguf(path: &Path) -> bool {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
    {
        return true;
    }
    path.is_file()
        && std::fs::File::open(path)
            .and_then(|mut f| {
                let mut m = [0u8; 4];
                std::io::Read::read_exact(&mut f, &mut m).map(|_| m)
            })
            .is_ok_and(|m| u32::from_le_bytes(m) == crate::gguf::MAGIC)
}

impl LoadedLm {
    /// Loads a Hugging Face model directory or a `.gguf` file.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        if is_gguf(path) {
            let file = GgufFile::open(path)?;
            let tokenizer =
                crate::gguf::tokenizer::from_metadata(&file.metadata).map_err(|e| Error::Gguf {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })?;
            let special = crate::gguf::tokenizer::special_tokens(&file.metadata)?;
            let chat_template = file
                .metadata
                .get("tokenizer.chat_template")
                .and_then(|v| v.as_str())
                .map(str::to_owned);
            let model = qlm::Model::load(&file)?;
            Ok(Self {
                lm: Lm::Gguf(Arc::new(model)),
                tokenizer,
                gguf: Some(GgufExtras {
                    file,
                    chat_template,
                    special,
                }),
            })
        } else {
            Ok(Self {
                lm: Lm::Candle(Box::new(crate::load_gpt(path, device)?)),
                tokenizer: crate::load_tokenizer(path)?,
                gguf: None,
            })
        }
    }

    /// Token ids that end a generation: the model's end-of-generation tokens.
    pub fn stop_ids(&self) -> Vec<u32> {
        match (&self.gguf, &self.lm) {
            (Some(g), _) => g.special.end_of_generation.clone(),
            (None, Lm::Candle(m)) => m.config().eos_ids(),
            (None, Lm::Gguf(_)) => Vec::new(),
        }
    }
}

impl Lm {
    /// An empty cache for one sequence.
    pub fn new_cache(&self) -> LmCache {
        match self {
            Self::Candle(m) => LmCache::Candle(m.new_cache()),
            Self::Gguf(m) => LmCache::Gguf(m.new_cache()),
        }
    }

    /// The longest sequence the model takes.
    pub fn context(&self) -> usize {
        match self {
            Self::Candle(m) => m.config().max_position_embeddings,
            Self::Gguf(m) => m.max_context(),
        }
    }

    /// Tokens in the vocabulary (the width of a row of logits).
    pub fn vocab(&self) -> usize {
        match self {
            Self::Candle(m) => m.config().vocab_size,
            Self::Gguf(m) => m.config().vocab,
        }
    }

    /// A one-line description (`gpt2 on candle`, `llama Q4_1 GGUF`).
    pub fn describe(&self) -> String {
        match self {
            Self::Candle(m) => format!("{} (f32, candle)", m.config().model_type),
            Self::Gguf(m) => format!("{} (GGUF, quantized)", m.config().arch.name()),
        }
    }

    fn pool() -> &'static Pool {
        pool::global()
    }

    /// Runs a prompt (continuing whatever `cache` holds) and returns the logits of its last
    /// position.
    pub fn prefill(&self, ids: &[u32], cache: &mut LmCache) -> Result<Vec<f32>> {
        if ids.is_empty() {
            return Err(Error::Invalid("the prompt is empty".into()));
        }
        match (self, cache) {
            (Self::Candle(m), LmCache::Candle(c)) => {
                let t = Tensor::new(ids, m.device())?.unsqueeze(0)?;
                let l = m.forward_last(&t, Some(c))?.squeeze(0)?;
                Ok(l.to_dtype(DType::F32)?.to_vec1()?)
            }
            (Self::Gguf(m), LmCache::Gguf(c)) => {
                let mut last = Vec::new();
                let chunks: Vec<&[u32]> = ids.chunks(UBATCH).collect();
                for (i, chunk) in chunks.iter().enumerate() {
                    let want: &[usize] = if i + 1 == chunks.len() {
                        &[chunk.len() - 1]
                    } else {
                        &[]
                    };
                    let seqs = vec![0; chunk.len()];
                    last = m.forward(chunk, &seqs, &mut [c], want, Self::pool())?;
                }
                Ok(last)
            }
            _ => Err(Error::Invalid("a cache of the other kind of model".into())),
        }
    }

    /// One decoding step for several sequences: `tokens[i]` continues `caches[i]`. Returns
    /// the logits, one row of [`Lm::vocab`] per sequence.
    pub fn decode(&self, tokens: &[u32], caches: &mut [&mut LmCache]) -> Result<Vec<f32>> {
        if tokens.len() != caches.len() {
            return Err(Error::Invalid(format!(
                "{} tokens for {} caches",
                tokens.len(),
                caches.len()
            )));
        }
        match self {
            Self::Candle(m) => {
                let mut cs = caches
                    .iter_mut()
                    .map(|c| match &mut **c {
                        LmCache::Candle(c) => Ok(c),
                        LmCache::Gguf(_) => {
                            Err(Error::Invalid("a GGUF cache for a candle model".into()))
                        }
                    })
                    .collect::<Result<Vec<_>>>()?;
                let l = m.decode_step(tokens, &mut cs)?;
                Ok(l.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?)
            }
            Self::Gguf(m) => {
                let mut cs = caches
                    .iter_mut()
                    .map(|c| match &mut **c {
                        LmCache::Gguf(c) => Ok(c),
                        LmCache::Candle(_) => {
                            Err(Error::Invalid("a candle cache for a GGUF model".into()))
                        }
                    })
                    .collect::<Result<Vec<_>>>()?;
                let seqs: Vec<usize> = (0..tokens.len()).collect();
                let want: Vec<usize> = (0..tokens.len()).collect();
                m.forward(tokens, &seqs, &mut cs, &want, Self::pool())
            }
        }
    }

    /// Logits of every position of `ids` from an empty cache (`ids.len() × vocab`), for
    /// perplexity and prompt scoring.
    pub fn score(&self, ids: &[u32]) -> Result<Vec<f32>> {
        match self {
            Self::Candle(m) => {
                let t = Tensor::new(ids, m.device())?.unsqueeze(0)?;
                let l = m.forward(&t, None, None)?.squeeze(0)?;
                Ok(l.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?)
            }
            Self::Gguf(m) => {
                let mut c = m.new_cache();
                let mut out = Vec::with_capacity(ids.len() * m.config().vocab);
                for chunk in ids.chunks(UBATCH) {
                    let want: Vec<usize> = (0..chunk.len()).collect();
                    let seqs = vec![0; chunk.len()];
                    out.extend(m.forward(chunk, &seqs, &mut [&mut c], &want, Self::pool())?);
                }
                Ok(out)
            }
        }
    }
}

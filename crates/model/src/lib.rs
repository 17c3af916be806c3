//! `duet-model`: the networks on candle.
//!
//! - [`gpt`]: a decoder for GPT-2 and the Llama family (Qwen2 included), with a KV cache.
//! - [`bert`]: the BERT encoder and its masked-LM, sequence- and token-classification heads.
//! - [`hub`]: the Hugging Face layout in and out, with errors that list every missing or
//!   mis-shaped tensor.
//! - [`generate`]: sampling, stop sequences, streaming and batched decoding.
//! - [`embed`]: sentence embeddings as sentence-transformers computes them.
//! - [`predict`]: the fine-tuned classifiers and entity taggers, loaded for inference.
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use candle_nn::{VarBuilder, VarMap};
//! use duet_model::gpt::{Config, Gpt};
//!
//! let vm = VarMap::new();
//! let model = Gpt::load(VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu), &Config::tiny()).unwrap();
//! let ids = Tensor::new(&[[1u32, 2, 3]], &Device::Cpu).unwrap();
//! let logits = model.forward(&ids, None, None).unwrap();
//! assert_eq!(logits.dims(), [1, 3, 64]);
//! ```

pub mod bert;
pub mod chat;
pub mod constrain;
pub mod embed;
mod error;
pub mod fused;
pub mod generate;
pub mod gguf;
pub mod gpt;
pub mod hub;
pub mod init;
pub mod lm;
pub mod nn;
pub mod ops;
pub mod predict;
pub mod qlm;
pub mod quant;

use std::path::Path;

pub use error::{Error, Result};

/// Loads `tokenizer.json` from a model directory.
pub fn load_tokenizer(dir: &Path) -> Result<tokenizers::Tokenizer> {
    let path = dir.join("tokenizer.json");
    tokenizers::Tokenizer::from_file(&path)
        .map_err(|e| Error::Tokenizer(format!("{}: {e}", path.display())))
}

/// Loads a decoder from a Hugging Face directory (`config.json` + safetensors).
pub fn load_gpt(dir: &Path, device: &candle_core::Device) -> Result<gpt::Gpt> {
    let cfg = gpt::Config::load(&dir.join("config.json"))?;
    let ck = hub::Checkpoint::load(dir, device)?;
    let model = gpt::Gpt::load(ck.var_builder(device), &cfg)?;
    ck.finish()?;
    Ok(model)
}

/// What kind of model a directory holds, from its `config.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelKind {
    /// A decoder (`gpt2`, `llama`, `qwen2`, `mistral`).
    Decoder,
    /// A BERT encoder, with the `transformers` class it was saved as.
    Encoder {
        /// `BertModel`, `BertForMaskedLM`, `BertForSequenceClassification`, ...
        architecture: String,
    },
}

/// Reads `config.json` and says what kind of model it describes.
pub fn model_kind(dir: &Path) -> Result<ModelKind> {
    let path = dir.join("config.json");
    let v: serde_json::Value = hub::read_json(&path)?;
    match v["model_type"].as_str() {
        Some("gpt2" | "llama" | "qwen2" | "mistral") => Ok(ModelKind::Decoder),
        Some("bert") => Ok(ModelKind::Encoder {
            architecture: v["architectures"][0]
                .as_str()
                .unwrap_or("BertModel")
                .to_owned(),
        }),
        other => Err(Error::Config {
            path,
            message: format!(
                "model_type {other:?} is not supported (gpt2, llama, qwen2, mistral, bert)"
            ),
        }),
    }
}

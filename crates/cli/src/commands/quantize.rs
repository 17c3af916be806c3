//! `duet quantize`: a model directory (Hugging Face layout) or a GGUF file to a GGUF file of
//! another type, with llama.cpp's per-tensor type rules.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use duet_model::gguf::GgufFile;
use duet_model::gguf::convert::{from_gguf, from_hf};
use duet_model::gguf::quantize::{FileType, write_quantized};

/// The file types `duet quantize` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QuantType {
    /// 8-bit blocks of 32.
    #[value(name = "q8_0")]
    Q8_0,
    /// llama.cpp's mix around 4-bit k-quants (`Q4_K`, `Q6_K` for the sensitive tensors).
    #[value(name = "q4_k_m")]
    Q4KM,
    /// 4-bit blocks of 32.
    #[value(name = "q4_0")]
    Q4_0,
    /// Half precision.
    #[value(name = "f16")]
    F16,
}

impl QuantType {
    fn file_type(self) -> FileType {
        match self {
            Self::Q8_0 => FileType::Q8_0,
            Self::Q4KM => FileType::Q4KM,
            Self::Q4_0 => FileType::Q4_0,
            Self::F16 => FileType::F16,
        }
    }
}

/// Arguments of `duet quantize`.
#[derive(Debug, Args)]
pub struct QuantizeArgs {
    /// A model directory (llama, mistral, qwen2 or gpt2, with tokenizer.json) or a GGUF file
    /// (re-quantized from its dequantized weights).
    #[arg(long)]
    pub model: PathBuf,
    /// The type to write.
    #[arg(long = "type", value_enum)]
    pub kind: QuantType,
    /// The GGUF file to write.
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs `duet quantize`.
pub fn run(a: QuantizeArgs) -> Result<()> {
    let start = std::time::Instant::now();
    let (md, tensors, layers) = if duet_model::lm::is_gguf(&a.model) {
        let f = GgufFile::open(&a.model)?;
        from_gguf(&f)?
    } else {
        from_hf(&a.model).with_context(|| format!("reading {}", a.model.display()))?
    };
    let ft = a.kind.file_type();
    let w = write_quantized(&a.out, md, &tensors, ft, layers)
        .with_context(|| format!("writing {}", a.out.display()))?;
    say!(
        "{}: {} tensors as {} ({}) in {:.1} s, {:.1} MB of weights",
        a.out.display(),
        tensors.len(),
        ft.name(),
        w.types
            .iter()
            .map(|(t, n)| format!("{t} ×{n}"))
            .collect::<Vec<_>>()
            .join(", "),
        start.elapsed().as_secs_f64(),
        w.bytes as f64 / 1e6
    );
    Ok(())
}

//! `duet export`: a GGUF decoder to the Hugging Face layout (weights dequantized to f32), so
//! that duet's trainer and `transformers` can take it.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use duet_model::gguf::GgufFile;

/// Arguments of `duet export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The GGUF file.
    #[arg(long)]
    pub model: PathBuf,
    /// The model directory to write.
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs `duet export`.
pub fn run(a: ExportArgs) -> Result<()> {
    let f = GgufFile::open(&a.model)?;
    duet_model::gguf::convert::export_hf(&f, &a.out)
        .with_context(|| format!("exporting {} to {}", a.model.display(), a.out.display()))?;
    say!(
        "{}: config.json, model.safetensors (f32), tokenizer.json, tokenizer_config.json",
        a.out.display()
    );
    Ok(())
}

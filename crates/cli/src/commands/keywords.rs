//! `duet extract keywords` (key phrases of documents) and `duet extract json` (a schema filled
//! by a served language model), one JSON line per document.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use duet_extract::{JsonExtractor, KeywordConfig, KeywordExtractor};

/// Arguments of `duet extract keywords`.
#[derive(Debug, Args)]
pub struct KeywordsArgs {
    /// Documents: files, or folders whose `.txt` and `.md` files are read (sorted); `-` or
    /// nothing reads standard input as one document (or one per line with --lines).
    pub inputs: Vec<PathBuf>,
    /// Keywords per document.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// The longest key phrase, in words.
    #[arg(long, default_value_t = 3)]
    pub ngrams: usize,
    /// The language (en, de, es, fr, it, nl, pt, ru, zh); detected per document if absent.
    #[arg(long)]
    pub lang: Option<String>,
    /// A sentence encoder directory (e.g. data/external/minilm) that re-ranks the candidates by
    /// similarity to the document.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Candidates the encoder re-ranks.
    #[arg(long, default_value_t = 30)]
    pub pool: usize,
    /// Standard input holds one document per line.
    #[arg(long)]
    pub lines: bool,
}

/// Runs `duet extract keywords`: `{"source", "lang", "keywords": [{"keyword", "score", "yake",
/// "similarity"}]}` per document.
pub fn run(a: KeywordsArgs) -> Result<()> {
    let mut x = KeywordExtractor::new(KeywordConfig {
        top: a.top,
        ngrams: a.ngrams,
        lang: a.lang.clone(),
        pool: a.pool,
    })?;
    if let Some(dir) = &a.model {
        let e = duet_model::embed::SentenceEmbedder::load(dir, &candle_core::Device::Cpu)
            .with_context(|| format!("loading the sentence encoder {}", dir.display()))?;
        x = x.with_embedder(e);
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut emit = |source: String, text: &str| -> Result<()> {
        let keywords = x
            .extract(text)
            .with_context(|| format!("extracting keywords of {source}"))?;
        let line =
            serde_json::json!({"source": source, "lang": x.language(text), "keywords": keywords});
        writeln!(out, "{line}")?;
        out.flush()?;
        Ok(())
    };
    let stdin_only = a.inputs.is_empty() || a.inputs.iter().all(|p| p.as_os_str() == "-");
    if stdin_only {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading standard input (expected UTF-8 text)")?;
        if a.lines {
            for (i, line) in text.lines().enumerate() {
                if !line.trim().is_empty() {
                    emit(format!("stdin:{}", i + 1), line)?;
                }
            }
            return Ok(());
        }
        return emit("stdin".into(), &text);
    }
    for path in documents(&a.inputs)? {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {} (expected UTF-8 text)", path.display()))?;
        emit(path.display().to_string(), &text)?;
    }
    Ok(())
}

/// The files named, with folders expanded to their `.txt` and `.md` files, sorted.
fn documents(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in inputs {
        if p.as_os_str() == "-" {
            bail!("`-` (standard input) cannot be mixed with files");
        }
        if p.is_dir() {
            let mut found = Vec::new();
            collect(p, &mut found)?;
            found.sort();
            out.extend(found);
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            bail!("{}: no such file or folder", p.display());
        }
    }
    Ok(out)
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry
            .with_context(|| format!("reading {}", dir.display()))?
            .path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "txt" || e == "md") {
            out.push(path);
        }
    }
    Ok(())
}

/// Arguments of `duet extract json`.
#[derive(Debug, Args)]
pub struct JsonArgs {
    /// A JSON Schema file; every answer follows it.
    #[arg(long)]
    pub schema: PathBuf,
    /// The OpenAI-compatible API (`duet serve`, llama.cpp's server, vLLM, OpenAI).
    #[arg(long, default_value = "http://127.0.0.1:8080/v1")]
    pub url: String,
    /// The model to ask.
    #[arg(long)]
    pub model: String,
    /// The environment variable holding the API key, if the server wants one.
    #[arg(long)]
    pub api_key_env: Option<String>,
    /// An instruction sent before each text (default: extract as JSON following the schema).
    #[arg(long)]
    pub instruction: Option<String>,
    /// Most tokens per answer.
    #[arg(long, default_value_t = 256)]
    pub max_tokens: u32,
    /// The text; `-` or nothing reads one text per line from standard input.
    pub text: Option<String>,
}

/// Runs `duet extract json`: `{"text", "json"}` per text.
pub fn json(a: JsonArgs) -> Result<()> {
    let raw = std::fs::read_to_string(&a.schema)
        .with_context(|| format!("reading the schema {}", a.schema.display()))?;
    let schema: serde_json::Value =
        serde_json::from_str(&raw).with_context(|| format!("{}: not JSON", a.schema.display()))?;
    let mut x = JsonExtractor::new(&a.url, &a.model, schema)
        .with_context(|| format!("{}", a.schema.display()))?;
    x.max_tokens = a.max_tokens;
    if let Some(i) = a.instruction {
        x.instruction = i;
    }
    if let Some(var) = &a.api_key_env {
        x.api_key = Some(
            std::env::var(var)
                .with_context(|| format!("--api-key-env {var}: the variable is not set"))?,
        );
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    super::for_each_batch(a.text.as_deref(), 1, |texts| {
        for t in texts {
            let v = x.extract(t)?;
            writeln!(out, "{}", serde_json::json!({"text": t, "json": v}))?;
        }
        out.flush()?;
        Ok(())
    })
}

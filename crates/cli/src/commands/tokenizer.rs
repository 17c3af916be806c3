//! `duet tokenizer train|encode`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use duet_corpus::Split;
use duet_tokenizer::{EncodeOptions, Kind, TrainOptions};

/// Tokenizer commands.
#[derive(Debug, Subcommand)]
pub enum TokenizerCommand {
    /// Train a tokenizer on a corpus's train split and save it as tokenizer.json.
    Train(TrainArgs),
    /// Encode every split of a corpus into memory-mappable token shards.
    Encode(EncodeArgs),
}

/// Tokenizer models.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KindArg {
    /// Byte-level BPE (GPT-2).
    Bpe,
    /// WordPiece (BERT).
    Wordpiece,
    /// Unigram (SentencePiece).
    Unigram,
    /// One token per character.
    Char,
}

/// Arguments of `duet tokenizer train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// A corpus directory made by `duet corpus build`.
    #[arg(long)]
    pub corpus: PathBuf,
    /// The tokenizer model.
    #[arg(long, value_enum, default_value = "bpe")]
    pub kind: KindArg,
    /// Vocabulary size, special tokens included.
    #[arg(long, default_value_t = 8192)]
    pub vocab_size: usize,
    /// Merges (BPE) or words (WordPiece) seen fewer times are not learned.
    #[arg(long, default_value_t = 2)]
    pub min_frequency: u64,
    /// Special tokens (repeatable); default: the model's usual ones.
    #[arg(long = "special", value_name = "TOKEN")]
    pub special: Vec<String>,
    /// WordPiece: keep case and accents.
    #[arg(long)]
    pub cased: bool,
    /// Train on at most this many documents (0: all).
    #[arg(long, default_value_t = 0)]
    pub max_docs: usize,
    /// Where to write tokenizer.json.
    #[arg(long)]
    pub out: PathBuf,
}

/// Arguments of `duet tokenizer encode`.
#[derive(Debug, Args)]
pub struct EncodeArgs {
    /// A corpus directory.
    #[arg(long)]
    pub corpus: PathBuf,
    /// The tokenizer.json to encode with.
    #[arg(long)]
    pub tokenizer: PathBuf,
    /// The token directory to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Token placed after each document (default: <|endoftext|>, </s> or [SEP]).
    #[arg(long)]
    pub separator: Option<String>,
    /// Tokens per shard file.
    #[arg(long, default_value_t = 1 << 27)]
    pub shard_tokens: u64,
    /// Replace the output directory if it exists.
    #[arg(long)]
    pub force: bool,
}

/// Runs a tokenizer command.
pub fn run(cmd: TokenizerCommand) -> Result<()> {
    match cmd {
        TokenizerCommand::Train(a) => train(a),
        TokenizerCommand::Encode(a) => encode(a),
    }
}

fn train(a: TrainArgs) -> Result<()> {
    let kind = match a.kind {
        KindArg::Bpe => Kind::Bpe,
        KindArg::Wordpiece => Kind::Wordpiece,
        KindArg::Unigram => Kind::Unigram,
        KindArg::Char => Kind::Char,
    };
    let opts = TrainOptions {
        kind,
        vocab_size: a.vocab_size,
        min_frequency: a.min_frequency,
        special_tokens: a.special,
        lowercase: !a.cased,
        max_docs: a.max_docs,
    };
    let bar = super::count_bar(0);
    bar.set_message("training");
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let tok = duet_tokenizer::train_on_corpus(&a.corpus, &opts)
        .with_context(|| format!("training on {}", a.corpus.display()))?;
    bar.finish_and_clear();
    if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    tok.save(&a.out, true)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", a.out.display()))?;
    // Bytes per token on held-out text when there is some.
    let manifest = duet_corpus::Manifest::load(&a.corpus)?;
    let split = if manifest.splits.get("valid").copied().unwrap_or(0) > 0 {
        Split::Valid
    } else {
        Split::Train
    };
    let c = duet_tokenizer::measure(&tok, &a.corpus, split, 5000)?;
    say!(
        "wrote {} ({} tokens)",
        a.out.display(),
        tok.get_vocab_size(true)
    );
    for (lang, (bytes, tokens)) in &c.by_lang {
        if *tokens > 0 {
            say!(
                "  {lang}: {:.2} bytes per token ({} bytes, {} tokens, {} split)",
                *bytes as f64 / *tokens as f64,
                bytes,
                tokens,
                split.name()
            );
        }
    }
    let stats = a.out.with_extension("stats.json");
    std::fs::write(
        &stats,
        serde_json::to_vec_pretty(
            &serde_json::json!({"options": opts, "split": split.name(), "compression": c}),
        )?,
    )
    .with_context(|| format!("writing {}", stats.display()))?;
    Ok(())
}

fn encode(a: EncodeArgs) -> Result<()> {
    let opts = EncodeOptions {
        shard_tokens: a.shard_tokens,
        separator: a.separator,
        force: a.force,
        ..Default::default()
    };
    let manifest = duet_corpus::Manifest::load(&a.corpus)?;
    let bar = super::count_bar(manifest.docs_out);
    let m = duet_tokenizer::encode_corpus(&a.tokenizer, &a.corpus, &a.out, &opts, &bar)
        .with_context(|| format!("encoding {} into {}", a.corpus.display(), a.out.display()))?;
    for (name, s) in &m.splits {
        say!(
            "{name}: {} documents, {} tokens in {} shards ({:.2} bytes per token)",
            s.docs,
            s.tokens,
            s.shards.len(),
            s.text_bytes as f64 / s.tokens.max(1) as f64
        );
    }
    Ok(())
}

//! `duet`: collect text, train tokenizers and Transformers, evaluate, serve, and run dialog
//! assistants — one binary, no Python at run time.

mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// duet: the whole life of a language model in one binary.
#[derive(Debug, Parser)]
#[command(name = "duet", version, about, propagate_version = true)]
struct Cli {
    /// More log output (-v: debug, -vv: trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The whole system from data in the repository: corpus, tokenizer, GPT, assistant,
    /// evaluation, then the LM API and the web chat on one port.
    Quickstart(commands::quickstart::QuickstartArgs),
    /// Collect and clean text into a corpus directory.
    #[command(subcommand)]
    Corpus(commands::corpus::CorpusCommand),
    /// Train tokenizers and encode corpora into token shards.
    #[command(subcommand)]
    Tokenizer(commands::tokenizer::TokenizerCommand),
    /// Generate text with a decoder model, streaming to the terminal.
    Generate(commands::model::GenerateArgs),
    /// Embed lines of text with a sentence-embedding model (JSON arrays out).
    Embed(commands::model::EmbedArgs),
    /// Describe a model directory or GGUF file: architecture, parameters, types, tokenizer.
    Inspect(commands::model::InspectArgs),
    /// Quantize a model directory or GGUF file to GGUF (q8_0, q4_k_m, q4_0, f16).
    Quantize(commands::quantize::QuantizeArgs),
    /// Export a GGUF decoder to the Hugging Face layout (f32).
    Export(commands::export::ExportArgs),
    /// Train models: a decoder (lm) or an encoder (mlm).
    #[command(subcommand)]
    Train(commands::train::TrainCommand),
    /// Evaluate models.
    #[command(subcommand)]
    Eval(EvalCommand),
    /// Classify texts with a trained classifier (JSON lines with probabilities).
    Classify(commands::classify::ClassifyArgs),
    /// Extract information from text: entities (a trained tagger) or keywords.
    #[command(subcommand)]
    Extract(commands::tokens::ExtractCommand),
    /// Build, check and test dialog assistants (Rasa 3.x projects).
    #[command(subcommand)]
    Dialog(commands::dialog::DialogCommand),
    /// Talk in the terminal: to a chat model (`--model FILE.gguf` or a model directory), or to
    /// a trained assistant (`--project DIR`).
    Chat(commands::dialog::ChatArgs),
    /// Serve models over an OpenAI-compatible HTTP API.
    Serve(commands::serve::ServeArgs),
}

#[derive(Debug, Subcommand)]
enum EvalCommand {
    /// Perplexity and bits per byte of a decoder on a corpus or token shards.
    Lm(commands::train::EvalLmArgs),
    /// Accuracy, precision, recall, F1, confusion matrix, ROC/PR-AUC and calibration of a
    /// classifier; k-fold cross-validation; per-slice bias report.
    Classify(commands::classify::EvalClassifyArgs),
    /// Entity-level precision, recall and F1 of a token classifier on tagged sentences.
    Tokens(commands::tokens::EvalTokensArgs),
    /// Write a seeded, stratified test split of labelled data as a JSON file of ids.
    Split(commands::classify::SplitArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default = match cli.verbose {
        0 => "warn,duet=info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Quickstart(a) => commands::quickstart::run(a),
        Command::Corpus(c) => commands::corpus::run(c),
        Command::Tokenizer(c) => commands::tokenizer::run(c),
        Command::Generate(a) => commands::model::generate(a),
        Command::Embed(a) => commands::model::embed(a),
        Command::Inspect(a) => commands::model::inspect(a),
        Command::Quantize(a) => commands::quantize::run(a),
        Command::Export(a) => commands::export::run(a),
        Command::Train(c) => commands::train::run(c),
        Command::Eval(EvalCommand::Lm(a)) => commands::train::eval_lm(a),
        Command::Eval(EvalCommand::Classify(a)) => commands::classify::eval(a),
        Command::Eval(EvalCommand::Split(a)) => commands::classify::split(a),
        Command::Classify(a) => commands::classify::classify(a),
        Command::Extract(c) => commands::tokens::extract(c),
        Command::Eval(EvalCommand::Tokens(a)) => commands::tokens::eval(a),
        Command::Serve(a) => commands::serve::run(a),
        Command::Dialog(c) => commands::dialog::run(c),
        Command::Chat(a) => commands::dialog::chat(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// A closed pipe (`duet ... | head`) is not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

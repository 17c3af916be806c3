//! `duet chat --model FILE.gguf`: an interactive terminal chat with a language model, in its
//! own chat template, streaming the answer as it is generated. (`duet chat --project DIR`
//! talks to a trained assistant instead; see `dialog.rs`.)

use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};
use clap::Args;
use duet_model::chat::{BUILTIN_STOPS, ChatTemplate};
use duet_model::generate::{self, SamplingParams};
use duet_model::lm::LoadedLm;
use serde_json::json;

/// Options of a chat with a language model.
#[derive(Debug, Clone, Args)]
pub struct LmChatOptions {
    /// A system message opening the conversation.
    #[arg(long)]
    pub system: Option<String>,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.7)]
    pub temperature: f64,
    /// Nucleus sampling threshold.
    #[arg(long, default_value_t = 0.9)]
    pub top_p: f64,
    /// Most tokens per answer.
    #[arg(long, default_value_t = 512)]
    pub max_new_tokens: usize,
    /// Random seed of the first answer (each later answer adds one).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Whether `path` is a model to chat with directly: a GGUF file or a decoder directory.
pub fn is_chat_model(path: &Path) -> bool {
    duet_model::lm::is_gguf(path)
        || (path.join("config.json").is_file()
            && matches!(
                duet_model::model_kind(path),
                Ok(duet_model::ModelKind::Decoder)
            ))
}

/// The chat template of a loaded model: the GGUF file's, the directory's, or the built-in one.
pub fn template_of(loaded: &LoadedLm, path: &Path) -> Result<ChatTemplate> {
    Ok(match &loaded.gguf {
        Some(g) => match &g.chat_template {
            Some(src) => {
                let text = |id: Option<u32>| {
                    id.and_then(|i| loaded.tokenizer.id_to_token(i))
                        .unwrap_or_default()
                };
                ChatTemplate::new(
                    src.clone(),
                    &format!("{}: tokenizer.chat_template", path.display()),
                    text(g.special.bos),
                    text(g.special.eos),
                )?
            }
            None => ChatTemplate::builtin()?,
        },
        None => ChatTemplate::load(path)?,
    })
}

/// Chats with the model at `path` on standard input and output (`/reset` starts over,
/// `/quit` or end of input leaves).
pub fn run(path: &Path, o: &LmChatOptions) -> Result<()> {
    let loaded = LoadedLm::load(path, &candle_core::Device::Cpu)
        .with_context(|| format!("loading {}", path.display()))?;
    let template = template_of(&loaded, path)?;
    let mut stop_ids = loaded.stop_ids();
    stop_ids.extend(
        ["<|im_end|>", "<|eot_id|>", "</s>", "<|endoftext|>"]
            .iter()
            .filter_map(|t| loaded.tokenizer.token_to_id(t)),
    );
    let stops: Vec<String> = if template.is_builtin() {
        BUILTIN_STOPS.iter().map(|s| (*s).to_owned()).collect()
    } else {
        Vec::new()
    };
    let opening = || {
        o.system
            .iter()
            .map(|s| json!({"role": "system", "content": s}))
            .collect::<Vec<_>>()
    };
    let mut messages = opening();
    let mut out = std::io::stdout();
    eprintln!(
        "{} — {}; /reset starts over, /quit leaves",
        path.display(),
        loaded.lm.describe()
    );
    write!(out, "you> ")?;
    out.flush()?;
    let mut turn = 0u64;
    for line in std::io::stdin().lock().lines() {
        let line = line.context("reading standard input")?;
        let text = line.trim();
        match text {
            "/quit" | "/exit" => break,
            "/reset" => {
                messages = opening();
                write!(out, "you> ")?;
                out.flush()?;
                continue;
            }
            "" => {
                write!(out, "you> ")?;
                out.flush()?;
                continue;
            }
            _ => {}
        }
        messages.push(json!({"role": "user", "content": text}));
        // Forget the oldest turns when the conversation outgrows the context.
        let ids = loop {
            let prompt = template
                .render(&messages)
                .map_err(|e| anyhow::anyhow!("chat template: {e}"))?;
            let ids = loaded
                .tokenizer
                .encode(prompt.as_str(), loaded.gguf.is_some())
                .map_err(|e| anyhow::anyhow!("tokenizing: {e}"))?
                .get_ids()
                .to_vec();
            let first_turn = usize::from(o.system.is_some());
            if ids.len() + o.max_new_tokens <= loaded.lm.context()
                || messages.len() <= first_turn + 1
            {
                break ids;
            }
            messages.remove(first_turn);
        };
        if ids.len() >= loaded.lm.context() {
            bail!(
                "the message alone is longer than the model's context of {}",
                loaded.lm.context()
            );
        }
        let params = SamplingParams {
            max_new_tokens: o.max_new_tokens,
            temperature: o.temperature,
            top_p: Some(o.top_p),
            seed: o.seed + turn,
            stop: stops.clone(),
            stop_token_ids: stop_ids.clone(),
            ..Default::default()
        };
        turn += 1;
        write!(out, "bot> ")?;
        out.flush()?;
        let mut io_err = None;
        let g =
            generate::generate(
                &loaded.lm,
                &loaded.tokenizer,
                &ids,
                &params,
                &mut |t| match write!(std::io::stdout(), "{t}")
                    .and_then(|_| std::io::stdout().flush())
                {
                    Ok(()) => true,
                    Err(e) => {
                        io_err = Some(e);
                        false
                    }
                },
            )?;
        if let Some(e) = io_err {
            return Err(e.into());
        }
        writeln!(out)?;
        messages.push(json!({"role": "assistant", "content": g.text.trim()}));
        write!(out, "you> ")?;
        out.flush()?;
    }
    writeln!(out)?;
    Ok(())
}

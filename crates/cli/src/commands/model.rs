//! `duet generate`, `duet embed`, `duet inspect`: run and describe models in the Hugging Face
//! layout.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use duet_model::generate::{self, SamplingParams};
use duet_model::lm::{Lm, LoadedLm};
use duet_model::{ModelKind, embed::SentenceEmbedder};

/// Arguments of `duet generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// A model directory (config.json, model.safetensors, tokenizer.json) or a GGUF file.
    #[arg(long)]
    pub model: PathBuf,
    /// The prompt; `-` reads it from standard input.
    #[arg(long)]
    pub prompt: String,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 128)]
    pub max_new_tokens: usize,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.8)]
    pub temperature: f64,
    /// Keep the k most likely tokens.
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Nucleus sampling threshold.
    #[arg(long)]
    pub top_p: Option<f64>,
    /// Drop tokens less likely than this share of the most likely one.
    #[arg(long)]
    pub min_p: Option<f64>,
    /// Penalty on tokens already seen (1 = none).
    #[arg(long, default_value_t = 1.0)]
    pub repetition_penalty: f64,
    /// Stop at this text (repeatable).
    #[arg(long)]
    pub stop: Vec<String>,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Constrain the output to match this regular expression as a whole (e.g. a fixed verse
    /// form); generation ends when the match is complete.
    #[arg(long, conflicts_with = "grammar")]
    pub regex: Option<String>,
    /// Constrain the output to a Lark grammar in this file (llguidance's dialect, as in
    /// llama.cpp's and vLLM's structured output).
    #[arg(long)]
    pub grammar: Option<PathBuf>,
}

/// Arguments of `duet embed`.
#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// A sentence-embedding model directory (e.g. all-MiniLM-L6-v2).
    #[arg(long)]
    pub model: PathBuf,
    /// Sentences per batch.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// A file with one text per line (default: standard input).
    pub input: Option<PathBuf>,
}

/// Arguments of `duet inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A model directory or a GGUF file.
    #[arg(long)]
    pub model: PathBuf,
}

/// The grammar `--regex` or `--grammar` asks for, if any.
fn constraint(
    a: &GenerateArgs,
    loaded: &LoadedLm,
) -> Result<Option<duet_model::constrain::Matcher>> {
    if a.regex.is_none() && a.grammar.is_none() {
        return Ok(None);
    }
    let tok = &loaded.tokenizer;
    let eos = loaded
        .stop_ids()
        .first()
        .copied()
        .or_else(|| tok.token_to_id("<|endoftext|>"))
        .unwrap_or(0);
    let grammars = duet_model::constrain::Grammars::new(
        std::sync::Arc::new(tok.clone()),
        loaded.lm.vocab(),
        eos,
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    let m = match (&a.regex, &a.grammar) {
        (Some(r), _) => grammars.regex(r),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            grammars
                .lark(&text)
                .map_err(|e| format!("{}: {e}", path.display()))
        }
        (None, None) => return Ok(None),
    };
    Ok(Some(m.map_err(|e| anyhow::anyhow!(e))?))
}

/// [`generate::generate`] with every token drawn from those the grammar allows; ends when the
/// grammar is complete.
fn constrained(
    model: &Lm,
    tok: &tokenizers::Tokenizer,
    ids: &[u32],
    params: &SamplingParams,
    m: &mut duet_model::constrain::Matcher,
    on_text: &mut dyn FnMut(&str) -> bool,
) -> Result<generate::Generation> {
    use duet_model::constrain::{advance, mask};
    let (mut seq, mut delta) =
        generate::Sequence::start_with(model, tok, ids, params, Some(&mut |l| mask(m, l)))?;
    loop {
        if let Some(t) = seq.last_token()
            && seq.finish.is_none()
            && let Some(reason) = advance(m, t).map_err(|e| anyhow::anyhow!(e))?
            && let Some(rest) = seq.finish_now(reason)
        {
            delta.get_or_insert_with(String::new).push_str(&rest);
        }
        if let Some(d) = delta.take()
            && !on_text(&d)
        {
            seq.cancel();
        }
        if seq.finish.is_some() {
            return Ok(seq.result());
        }
        let Some(last) = seq.last_token() else {
            return Ok(seq.result());
        };
        let logits = model.decode(&[last], &mut [&mut seq.cache])?;
        delta = seq.accept_with(model, tok, &logits, Some(&mut |l| mask(m, l)))?;
    }
}

/// Streams a generation to standard output.
pub fn generate(a: GenerateArgs) -> Result<()> {
    let dev = candle_core::Device::Cpu;
    let loaded =
        LoadedLm::load(&a.model, &dev).with_context(|| format!("loading {}", a.model.display()))?;
    let (model, tok) = (&loaded.lm, &loaded.tokenizer);
    let prompt = if a.prompt == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
        s
    } else {
        a.prompt.clone()
    };
    // GGUF vocabularies say whether a prompt starts with BOS; the encoder adds it then.
    let ids = tok
        .encode(prompt.as_str(), loaded.gguf.is_some())
        .map_err(|e| anyhow::anyhow!("tokenizing the prompt: {e}"))?
        .get_ids()
        .to_vec();
    if ids.is_empty() {
        bail!("the prompt encodes to no tokens");
    }
    let mut stop_ids = loaded.stop_ids();
    stop_ids.extend(
        ["<|endoftext|>", "</s>", "<|im_end|>"]
            .iter()
            .filter_map(|t| tok.token_to_id(t)),
    );
    let params = SamplingParams {
        max_new_tokens: a.max_new_tokens,
        temperature: a.temperature,
        top_k: a.top_k,
        top_p: a.top_p,
        min_p: a.min_p,
        repetition_penalty: a.repetition_penalty,
        seed: a.seed,
        stop: a.stop.clone(),
        stop_token_ids: stop_ids,
        ..Default::default()
    };
    let mut matcher = constraint(&a, &loaded)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    write!(out, "{prompt}")?;
    out.flush()?;
    let start = std::time::Instant::now();
    let mut io_err = None;
    let mut on_text = |text: &str| match write!(out, "{text}").and_then(|_| out.flush()) {
        Ok(()) => true,
        Err(e) => {
            io_err = Some(e);
            false
        }
    };
    let g = match matcher.as_mut() {
        None => generate::generate(model, tok, &ids, &params, &mut on_text)?,
        Some(m) => constrained(model, tok, &ids, &params, m, &mut on_text)?,
    };
    if let Some(e) = io_err {
        return Err(e.into());
    }
    writeln!(out)?;
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "[{} prompt tokens, {} generated in {:.2} s, {:.1} tokens/s, finish: {:?}]",
        g.prompt_tokens,
        g.tokens.len(),
        secs,
        g.tokens.len() as f64 / secs.max(1e-9),
        g.finish
    );
    Ok(())
}

/// Prints one JSON array per input line.
pub fn embed(a: EmbedArgs) -> Result<()> {
    let dev = candle_core::Device::Cpu;
    let embedder = SentenceEmbedder::load(&a.model, &dev)
        .with_context(|| format!("loading {}", a.model.display()))?;
    let reader: Box<dyn BufRead> = match &a.input {
        Some(p) => Box::new(std::io::BufReader::new(
            std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?,
        )),
        None => Box::new(std::io::stdin().lock()),
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut batch: Vec<String> = Vec::new();
    let flush = |batch: &mut Vec<String>, out: &mut dyn Write| -> Result<()> {
        let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
        for v in embedder.embed(&refs, a.batch_size)? {
            serde_json::to_writer(&mut *out, &v)?;
            out.write_all(b"\n")?;
        }
        batch.clear();
        Ok(())
    };
    for line in reader.lines() {
        batch.push(line?);
        if batch.len() >= 1024 {
            flush(&mut batch, &mut out)?;
        }
    }
    flush(&mut batch, &mut out)?;
    out.flush()?;
    Ok(())
}

/// Describes a GGUF file: architecture, shape, the mix of tensor types, size, context, chat
/// template and tokenizer.
fn inspect_gguf(path: &std::path::Path) -> Result<()> {
    let f = duet_model::gguf::GgufFile::open(path)?;
    let cfg = duet_model::qlm::Config::from_gguf(&f)?;
    let md = &f.metadata;
    say!("model:        {} (GGUF v{})", path.display(), f.version);
    if let Some(n) = md.get("general.name").and_then(|v| v.as_str()) {
        say!("name:         {n}");
    }
    say!("architecture: {} decoder", cfg.arch.name());
    say!(
        "shape:        {} layers, {} hidden, {} heads ({} key/value, width {}), mlp {}, context {}, vocab {}",
        cfg.layers,
        cfg.embd,
        cfg.heads,
        cfg.kv_heads,
        cfg.head_dim,
        cfg.ff,
        cfg.context,
        cfg.vocab
    );
    if let Some(r) = &cfg.rope {
        say!(
            "rope:         base {}, {} dims, {}",
            r.base,
            r.dims,
            if r.halves {
                "halves (neox)"
            } else {
                "adjacent pairs"
            }
        );
    }
    let mut mix: std::collections::BTreeMap<String, (usize, usize, usize)> = Default::default();
    let mut params = 0usize;
    for t in &f.tensors {
        let e = mix.entry(t.dtype.name()).or_default();
        e.0 += 1;
        e.1 += t.elements();
        e.2 += t.size;
        params += t.elements();
    }
    say!(
        "parameters:   {params} ({:.1} M) in {} tensors, {:.1} MB of weights ({:.2} bits a weight)",
        params as f64 / 1e6,
        f.tensors.len(),
        f.data_bytes() as f64 / 1e6,
        f.data_bytes() as f64 * 8.0 / params.max(1) as f64
    );
    say!(
        "types:        {}",
        mix.iter()
            .map(|(t, (n, _, b))| format!("{t} ×{n} ({:.1} MB)", *b as f64 / 1e6))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(ft) = md.get("general.file_type").and_then(|v| v.as_u64()) {
        say!("file type:    {ft} (llama.cpp's llama_ftype)");
    }
    let tok = duet_model::gguf::tokenizer::from_metadata(md);
    let special = duet_model::gguf::tokenizer::special_tokens(md)?;
    match &tok {
        Ok(t) => {
            let name = |id: Option<u32>| {
                id.and_then(|i| t.id_to_token(i))
                    .unwrap_or_else(|| "-".into())
            };
            say!(
                "tokenizer:    {} tokens, {} (pre-tokenizer {}), BOS {} {}, EOS {}, end of generation {:?}",
                t.get_vocab_size(true),
                md.get("tokenizer.ggml.model")
                    .and_then(|v| v.as_str())
                    .unwrap_or("?"),
                md.get("tokenizer.ggml.pre")
                    .and_then(|v| v.as_str())
                    .unwrap_or("default"),
                name(special.bos),
                if special.add_bos {
                    "(added)"
                } else {
                    "(not added)"
                },
                name(special.eos),
                special.end_of_generation
            );
        }
        Err(e) => say!("tokenizer:    unusable ({e})"),
    }
    match md.get("tokenizer.chat_template").and_then(|v| v.as_str()) {
        Some(t) => say!(
            "chat template: {} characters: {}",
            t.len(),
            t.chars().take(100).collect::<String>().replace('\n', "\\n")
        ),
        None => say!("chat template: none (duet uses its built-in one)"),
    }
    Ok(())
}

/// Describes a model directory or a GGUF file.
pub fn inspect(a: InspectArgs) -> Result<()> {
    if duet_model::lm::is_gguf(&a.model) {
        return inspect_gguf(&a.model);
    }
    let dev = candle_core::Device::Cpu;
    let dir = &a.model;
    let kind = duet_model::model_kind(dir)?;
    let ck = duet_model::hub::Checkpoint::load(dir, &dev)
        .with_context(|| format!("loading {}", dir.display()))?;
    let mut dtypes = std::collections::BTreeMap::new();
    let mut params = 0usize;
    for (_, t) in ck.stored() {
        params += t.elem_count();
        *dtypes
            .entry(format!("{:?}", t.dtype()).to_lowercase())
            .or_insert(0usize) += t.elem_count();
    }
    say!("model:       {}", dir.display());
    match &kind {
        ModelKind::Decoder => {
            let cfg = duet_model::gpt::Config::load(&dir.join("config.json"))?;
            say!(
                "architecture: {} ({:?} family) decoder",
                cfg.model_type,
                cfg.family()
            );
            say!(
                "shape:       {} layers, {} hidden, {} heads ({} key/value), mlp {}, context {}, vocab {}",
                cfg.num_hidden_layers,
                cfg.hidden_size,
                cfg.num_attention_heads,
                cfg.kv_heads(),
                cfg.mlp_dim(),
                cfg.max_position_embeddings,
                cfg.vocab_size
            );
            say!("tied head:   {}", cfg.tied());
        }
        ModelKind::Encoder { architecture } => {
            let cfg = duet_model::bert::Config::load(&dir.join("config.json"))?;
            say!("architecture: {architecture} (bert) encoder");
            say!(
                "shape:       {} layers, {} hidden, {} heads, ffn {}, positions {}, vocab {}",
                cfg.num_hidden_layers,
                cfg.hidden_size,
                cfg.num_attention_heads,
                cfg.intermediate_size,
                cfg.max_position_embeddings,
                cfg.vocab_size
            );
            if !cfg.labels().is_empty() {
                say!("labels:      {}", cfg.labels().join(", "));
            }
        }
    }
    say!(
        "parameters:  {params} ({:.1} M) in {} tensors",
        params as f64 / 1e6,
        ck.names().count()
    );
    say!(
        "dtypes:      {} (parameters per stored dtype; duet computes in f32)",
        dtypes
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    match duet_model::load_tokenizer(dir) {
        Ok(t) => say!(
            "tokenizer:   {} tokens ({})",
            t.get_vocab_size(true),
            tokenizer_model(&t)
        ),
        Err(e) => say!("tokenizer:   none ({e})"),
    }
    Ok(())
}

/// The tokenizer's model family.
fn tokenizer_model(t: &tokenizers::Tokenizer) -> &'static str {
    match t.get_model() {
        tokenizers::models::ModelWrapper::BPE(_) => "BPE",
        tokenizers::models::ModelWrapper::WordPiece(_) => "WordPiece",
        tokenizers::models::ModelWrapper::Unigram(_) => "Unigram",
        tokenizers::models::ModelWrapper::WordLevel(_) => "WordLevel",
    }
}

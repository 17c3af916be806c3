//! The tokenizer a GGUF file carries (`tokenizer.ggml.*`), rebuilt as a Hugging Face
//! `tokenizers::Tokenizer` that splits text as llama.cpp's `llama-vocab.cpp` does:
//!
//! - `gpt2` vocabularies (byte-level BPE): the merges as stored, and the pre-tokenizer that
//!   `tokenizer.ggml.pre` names — llama.cpp applies a list of regular expressions one after
//!   the other, each splitting the pieces the previous one left, which is a sequence of
//!   `Split(…, Isolated)` pre-tokenizers followed by the byte-to-unicode mapping.
//! - `llama` vocabularies (SentencePiece BPE): pieces with scores; merges are derived from the
//!   scores as `transformers`' `SentencePieceExtractor` does (a merge ranks by the score of the
//!   piece it makes), unknown characters fall back to `<0xNN>` byte tokens, and a space is
//!   prepended when `tokenizer.ggml.add_space_prefix` says so.
//! - Token types 3 (control) become special added tokens (parsed in text, skipped when
//!   decoding with `skip_special_tokens`), type 4 (user-defined) plain added tokens.

use std::collections::HashMap;

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::{Prepend, Replace};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{
    AddedToken, DecoderWrapper, NormalizerWrapper, PreTokenizerWrapper, SplitDelimiterBehavior,
    Tokenizer,
};

use super::value::Metadata;
use crate::{Error, Result};

/// GPT-2's split: contractions, letters, numbers, other symbols, spaces.
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
/// Llama 3's split (numbers in groups of up to three).
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen 2's split (single digits).
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The token types of `tokenizer.ggml.token_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenType {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl TokenType {
    fn from_code(c: i64) -> Self {
        match c {
            2 => Self::Unknown,
            3 => Self::Control,
            4 => Self::UserDefined,
            5 => Self::Unused,
            6 => Self::Byte,
            _ => Self::Normal,
        }
    }
}

/// The regular expressions llama.cpp splits with for a `tokenizer.ggml.pre` value, in order;
/// `None` for a name it does not know.
fn pre_regexes(pre: &str) -> Option<Vec<&'static str>> {
    Some(match pre {
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "dbrx" | "smaug-bpe" | "pixtral" => {
            vec![LLAMA3]
        }
        "qwen2" | "stablelm2" | "deepseek-r1-qwen" | "hunyuan" | "megrez" | "grok-2" => {
            vec![QWEN2]
        }
        "gpt-2" | "gpt2" | "mpt" | "olmo" | "jais" | "trillion" | "granite-docling" | "phi-2" => {
            vec![GPT2]
        }
        "starcoder" | "refact" | "command-r" | "smollm" | "codeshell" | "exaone" | "minerva-7b" => {
            vec![r"\p{N}", GPT2]
        }
        "falcon" => vec![r"[\p{P}\$\+<=>\^~\|`]+", GPT2, "[0-9][0-9][0-9]"],
        "chatglm-bpe" => vec![LLAMA3],
        "default" => vec![r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", "[0-9][0-9][0-9]"],
        _ => return None,
    })
}

/// The vocabulary in the map type `tokenizers`' BPE takes.
fn ahash_vocab(v: &HashMap<String, u32>) -> tokenizers::models::bpe::Vocab {
    v.iter().map(|(k, i)| (k.clone(), *i)).collect()
}

fn tok_err(message: impl Into<String>) -> Error {
    Error::Tokenizer(message.into())
}

/// Builds the tokenizer described by `md`.
pub fn from_metadata(md: &Metadata) -> Result<Tokenizer> {
    let model = md
        .str("tokenizer.ggml.model")
        .map_err(|e| tok_err(e.to_string()))?;
    let tokens = md
        .opt_strings("tokenizer.ggml.tokens")
        .map_err(|e| tok_err(e.to_string()))?
        .ok_or_else(|| tok_err("metadata key tokenizer.ggml.tokens is missing"))?;
    let types: Vec<TokenType> = match md.get("tokenizer.ggml.token_type") {
        None => vec![TokenType::Normal; tokens.len()],
        Some(v) => v
            .as_array()
            .and_then(|a| {
                a.iter()
                    .map(|x| x.as_i64().map(TokenType::from_code))
                    .collect()
            })
            .ok_or_else(|| tok_err("tokenizer.ggml.token_type: expected an array of integers"))?,
    };
    if types.len() != tokens.len() {
        return Err(tok_err(format!(
            "tokenizer.ggml.token_type has {} entries for {} tokens",
            types.len(),
            tokens.len()
        )));
    }
    let vocab: HashMap<String, u32> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| ((*t).to_owned(), i as u32))
        .collect();
    let mut tk = match model {
        "gpt2" => byte_level_bpe(md, &vocab)?,
        "llama" => sentencepiece_bpe(md, &tokens, &types, &vocab)?,
        other => {
            return Err(tok_err(format!(
                "tokenizer.ggml.model {other:?} is not supported (gpt2 and llama are)"
            )));
        }
    };
    // llama.cpp strips the whitespace after Phi-3's special tokens (its `RSTRIP` attribute,
    // set by model name in `llama-vocab.cpp`), as Phi-3's own tokenizer does.
    let name = md
        .get("general.name")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_lowercase();
    let phi3 = name.contains("phi-3") || name.contains("phi3");
    let added: Vec<AddedToken> = tokens
        .iter()
        .zip(&types)
        .filter(|(_, t)| {
            matches!(
                t,
                TokenType::Control | TokenType::UserDefined | TokenType::Unknown
            )
        })
        .filter(|(text, _)| !text.is_empty())
        .map(|(text, t)| {
            let rstrip = phi3 && !matches!(*text, "<unk>" | "<s>" | "<|endoftext|>");
            AddedToken::from((*text).to_owned(), *t != TokenType::UserDefined)
                .normalized(false)
                .rstrip(rstrip)
        })
        .collect();
    tk.add_tokens(added)
        .map_err(|e| tok_err(format!("added tokens: {e}")))?;
    // llama.cpp puts BOS (and EOS) around a prompt when the vocabulary asks for it.
    let special = special_tokens(md)?;
    let add_eos = md
        .opt_bool("tokenizer.ggml.add_eos_token")
        .map_err(|e| tok_err(e.to_string()))?
        .unwrap_or(false);
    let named =
        |id: Option<u32>| id.and_then(|i| tokens.get(i as usize).map(|t| ((*t).to_owned(), i)));
    let (bos, eos) = (
        named(special.bos).filter(|_| special.add_bos),
        named(special.eos).filter(|_| add_eos),
    );
    if bos.is_some() || eos.is_some() {
        let mut single = String::new();
        let mut specials = Vec::new();
        if let Some((t, id)) = &bos {
            single.push_str(&format!("{t}:0 "));
            specials.push((t.clone(), *id));
        }
        single.push_str("$A:0");
        if let Some((t, id)) = &eos {
            single.push_str(&format!(" {t}:0"));
            specials.push((t.clone(), *id));
        }
        let post = TemplateProcessing::builder()
            .try_single(single.as_str())
            .map_err(|e| tok_err(format!("BOS/EOS template: {e}")))?
            .special_tokens(specials)
            .build()
            .map_err(|e| tok_err(format!("BOS/EOS template: {e}")))?;
        tk.with_post_processor(Some(post));
    }
    Ok(tk)
}

fn merges(md: &Metadata) -> Result<Vec<(String, String)>> {
    let list = md
        .opt_strings("tokenizer.ggml.merges")
        .map_err(|e| tok_err(e.to_string()))?
        .unwrap_or_default();
    list.iter()
        .enumerate()
        .map(|(i, m)| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .ok_or_else(|| tok_err(format!("tokenizer.ggml.merges[{i}] {m:?} has no space")))
        })
        .collect()
}

fn byte_level_bpe(md: &Metadata, vocab: &HashMap<String, u32>) -> Result<Tokenizer> {
    let pre = md
        .get("tokenizer.ggml.pre")
        .and_then(|v| v.as_str())
        .unwrap_or("default");
    let regexes = pre_regexes(pre).ok_or_else(|| {
        tok_err(format!(
            "tokenizer.ggml.pre {pre:?} is not a pre-tokenizer duet knows (llama3, qwen2, gpt-2, \
             smollm, starcoder, falcon, default, …)"
        ))
    })?;
    let ignore_merges = matches!(pre, "llama3" | "llama-v3" | "llama-bpe" | "falcon3");
    let bpe = BPE::builder()
        .vocab_and_merges(ahash_vocab(vocab), merges(md)?)
        .ignore_merges(ignore_merges)
        .build()
        .map_err(|e| tok_err(format!("BPE from tokenizer.ggml.tokens/merges: {e}")))?;
    let mut tk = Tokenizer::new(bpe);
    let mut steps: Vec<PreTokenizerWrapper> = Vec::new();
    // GPT-2's own regex is ByteLevel's built-in one; others split first, then map bytes.
    let gpt2_last = regexes.last() == Some(&GPT2);
    let splits = if gpt2_last {
        &regexes[..regexes.len() - 1]
    } else {
        &regexes[..]
    };
    for r in splits {
        let split = Split::new(
            SplitPattern::Regex((*r).to_owned()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(|e| tok_err(format!("pre-tokenizer regex {r:?}: {e}")))?;
        steps.push(split.into());
    }
    steps.push(ByteLevel::new(false, false, gpt2_last).into());
    tk.with_pre_tokenizer(Some(Sequence::new(steps)));
    tk.with_decoder(Some(ByteLevelDecoder::default()));
    Ok(tk)
}

/// Merges of a SentencePiece BPE vocabulary from its scores: every split of a piece into two
/// pieces of the vocabulary is a merge, ranked by the score of the piece it makes.
fn merges_from_scores(
    tokens: &[&str],
    scores: &[f64],
    vocab: &HashMap<String, u32>,
) -> Vec<(String, String)> {
    let mut found: Vec<(f64, u32, u32, String, String)> = Vec::new();
    for (i, piece) in tokens.iter().enumerate() {
        let score = scores.get(i).copied().unwrap_or(0.0);
        for (cut, _) in piece.char_indices().skip(1) {
            let (l, r) = piece.split_at(cut);
            if let (Some(&li), Some(&ri)) = (vocab.get(l), vocab.get(r)) {
                found.push((score, li, ri, l.to_owned(), r.to_owned()));
            }
        }
    }
    // By score, best first; pieces of equal score by the ids of their parts.
    found.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    found.into_iter().map(|(_, _, _, l, r)| (l, r)).collect()
}

fn sentencepiece_bpe(
    md: &Metadata,
    tokens: &[&str],
    types: &[TokenType],
    vocab: &HashMap<String, u32>,
) -> Result<Tokenizer> {
    let scores = md
        .opt_numbers("tokenizer.ggml.scores")
        .map_err(|e| tok_err(e.to_string()))?
        .unwrap_or_else(|| vec![0.0; tokens.len()]);
    // Control, byte and unused pieces are never produced by merging.
    let mergeable: Vec<&str> = tokens
        .iter()
        .zip(types)
        .map(|(t, ty)| match ty {
            TokenType::Normal | TokenType::UserDefined => *t,
            _ => "",
        })
        .collect();
    let merges = merges_from_scores(&mergeable, &scores, vocab);
    let unk = md
        .opt_usize("tokenizer.ggml.unknown_token_id")
        .map_err(|e| tok_err(e.to_string()))?
        .and_then(|i| tokens.get(i))
        .map(|s| (*s).to_owned());
    let mut builder = BPE::builder()
        .vocab_and_merges(ahash_vocab(vocab), merges)
        .byte_fallback(true)
        .fuse_unk(true);
    if let Some(u) = unk {
        builder = builder.unk_token(u);
    }
    let bpe = builder
        .build()
        .map_err(|e| tok_err(format!("BPE from the SentencePiece vocabulary: {e}")))?;
    let mut tk = Tokenizer::new(bpe);
    let prefix = md
        .opt_bool("tokenizer.ggml.add_space_prefix")
        .map_err(|e| tok_err(e.to_string()))?
        .unwrap_or(true);
    let replace = Replace::new(" ", "▁").map_err(|e| tok_err(e.to_string()))?;
    let mut norms: Vec<NormalizerWrapper> = Vec::new();
    if prefix {
        norms.push(Prepend::new("▁".into()).into());
    }
    norms.push(replace.into());
    tk.with_normalizer(Some(tokenizers::normalizers::Sequence::new(norms)))
        .map_err(|e| tok_err(format!("normalizer: {e}")))?;
    let mut decoders: Vec<DecoderWrapper> = vec![
        tokenizers::decoders::DecoderWrapper::Replace(
            Replace::new("▁", " ").map_err(|e| tok_err(e.to_string()))?,
        ),
        ByteFallback::new().into(),
        Fuse::new().into(),
    ];
    if prefix {
        decoders.push(Strip::new(' ', 1, 0).into());
    }
    tk.with_decoder(Some(DecoderSequence::new(decoders)));
    Ok(tk)
}

/// The ids of special tokens the model names: BOS, EOS, and every end-of-generation token
/// (EOS, EOT, `<|im_end|>`, `<|eot_id|>`, `<|end|>`, …) that generation stops at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecialTokens {
    /// Beginning of sequence.
    pub bos: Option<u32>,
    /// End of sequence.
    pub eos: Option<u32>,
    /// Whether llama.cpp puts BOS before a prompt (`tokenizer.ggml.add_bos_token`).
    pub add_bos: bool,
    /// Tokens that end a generation.
    pub end_of_generation: Vec<u32>,
}

/// Tokens llama.cpp ends a generation at by their text (`llama-vocab.cpp`): end-of-turn
/// markers of the chat formats it knows, and the fill-in-the-middle pad, repository and file
/// separators.
const EOG_NAMES: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "<|fim_pad|>",
    "<fim-pad>",
    "<fim_pad>",
    "<PAD>",
    "[PAD]",
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
    "<|file_sep|>",
];

/// The special tokens of `md`'s vocabulary.
pub fn special_tokens(md: &Metadata) -> Result<SpecialTokens> {
    let id = |k: &str| {
        md.opt_usize(k)
            .map(|v| v.map(|v| v as u32))
            .map_err(|e| tok_err(e.to_string()))
    };
    let bos = id("tokenizer.ggml.bos_token_id")?;
    let eos = id("tokenizer.ggml.eos_token_id")?;
    let eot = id("tokenizer.ggml.eot_token_id")?;
    let eom = id("tokenizer.ggml.eom_token_id")?;
    let model = md.get("tokenizer.ggml.model").and_then(|v| v.as_str());
    let add_bos = md
        .opt_bool("tokenizer.ggml.add_bos_token")
        .map_err(|e| tok_err(e.to_string()))?
        .unwrap_or(model == Some("llama"));
    let mut eog: Vec<u32> = [eos, eot, eom].into_iter().flatten().collect();
    eog.dedup();
    if let Some(tokens) = md
        .opt_strings("tokenizer.ggml.tokens")
        .map_err(|e| tok_err(e.to_string()))?
    {
        for (i, t) in tokens.iter().enumerate() {
            if EOG_NAMES.contains(t) && !eog.contains(&(i as u32)) {
                eog.push(i as u32);
            }
        }
    }
    Ok(SpecialTokens {
        bos,
        eos,
        add_bos,
        end_of_generation: eog,
    })
}

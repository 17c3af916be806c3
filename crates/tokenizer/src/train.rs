//! Training tokenizers with Hugging Face `tokenizers`: byte-level BPE (GPT-2), WordPiece
//! (BERT, with its special tokens and post-processor) and Unigram (SentencePiece-style).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tokenizers::decoders::DecoderWrapper;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::models::unigram::{Unigram, UnigramTrainerBuilder};
use tokenizers::models::wordlevel::{WordLevel, WordLevelTrainerBuilder};
use tokenizers::models::wordpiece::{WordPiece, WordPieceTrainerBuilder};
use tokenizers::models::{ModelWrapper, TrainerWrapper};
use tokenizers::normalizers::{NormalizerWrapper, bert::BertNormalizer, unicode::NFKC};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::pre_tokenizers::split::{Split as SplitPre, SplitPattern};
use tokenizers::processors::PostProcessorWrapper;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer};
use tokenizers::{SplitDelimiterBehavior, decoders::fuse::Fuse};

use duet_corpus::{Split, SplitReader};

use crate::error::tk;
use crate::{Error, Result};

/// The tokenizer models duet trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Byte-level BPE as in GPT-2: every string encodes, nothing is unknown.
    Bpe,
    /// WordPiece as in BERT: `[CLS] ... [SEP]`, `##` continuations, lower-cased by default.
    Wordpiece,
    /// Unigram language model as in SentencePiece/T5, with `▁` marking word starts.
    Unigram,
    /// One token per character (small models of poetry, code, Chinese); characters seen fewer
    /// than `min_frequency` times become `[UNK]`.
    Char,
}

/// How to train.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    /// The model.
    pub kind: Kind,
    /// Target vocabulary size, special tokens included.
    pub vocab_size: usize,
    /// Pairs (BPE) or words (WordPiece) seen fewer times are not merged.
    pub min_frequency: u64,
    /// Special tokens added before the learned vocabulary; empty: the model's usual ones.
    pub special_tokens: Vec<String>,
    /// WordPiece only: lower-case and strip accents.
    pub lowercase: bool,
    /// Read at most this many training documents (0: all).
    pub max_docs: usize,
}

impl TrainOptions {
    /// The usual options for a kind.
    pub fn new(kind: Kind, vocab_size: usize) -> Self {
        Self {
            kind,
            vocab_size,
            min_frequency: 2,
            special_tokens: Vec::new(),
            lowercase: true,
            max_docs: 0,
        }
    }

    /// The special tokens in use: the given ones, or the model's usual ones.
    pub fn specials(&self) -> Vec<String> {
        if !self.special_tokens.is_empty() {
            return self.special_tokens.clone();
        }
        let v: &[&str] = match self.kind {
            Kind::Bpe => &["<|endoftext|>"],
            Kind::Wordpiece => &["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
            Kind::Unigram => &["<pad>", "<unk>", "<s>", "</s>", "<mask>"],
            Kind::Char => &["<|endoftext|>", "[UNK]"],
        };
        v.iter().map(|s| (*s).to_owned()).collect()
    }
}

/// An empty tokenizer of the right shape, and its trainer.
fn untrained(opts: &TrainOptions) -> Result<(Tokenizer, TrainerWrapper)> {
    if opts.vocab_size < 2 {
        return Err(Error::Invalid(format!(
            "--vocab-size must be at least 2, found {}",
            opts.vocab_size
        )));
    }
    let specials: Vec<AddedToken> = opts
        .specials()
        .into_iter()
        .map(|s| AddedToken::from(s, true))
        .collect();
    Ok(match opts.kind {
        Kind::Bpe => {
            let trainer = BpeTrainerBuilder::new()
                .vocab_size(opts.vocab_size)
                .min_frequency(opts.min_frequency)
                .special_tokens(specials)
                .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
                .show_progress(false)
                .build();
            let mut t = Tokenizer::new(ModelWrapper::BPE(BPE::default()));
            let bl = ByteLevel::new(false, true, true);
            t.with_pre_tokenizer(Some(PreTokenizerWrapper::ByteLevel(bl)));
            t.with_decoder(Some(DecoderWrapper::ByteLevel(ByteLevelDecoder::new(
                false, true, true,
            ))));
            t.with_post_processor(Some(PostProcessorWrapper::ByteLevel(bl)));
            (t, TrainerWrapper::BpeTrainer(trainer))
        }
        Kind::Wordpiece => {
            let trainer = WordPieceTrainerBuilder::new()
                .vocab_size(opts.vocab_size)
                .min_frequency(opts.min_frequency)
                .special_tokens(specials)
                .show_progress(false)
                .build();
            let wp = WordPiece::builder()
                .unk_token("[UNK]".into())
                .build()
                .map_err(tk)?;
            let mut t = Tokenizer::new(ModelWrapper::WordPiece(wp));
            t.with_normalizer(Some(NormalizerWrapper::BertNormalizer(
                BertNormalizer::new(true, true, Some(opts.lowercase), opts.lowercase),
            )))
            .map_err(tk)?;
            t.with_pre_tokenizer(Some(PreTokenizerWrapper::BertPreTokenizer(
                BertPreTokenizer,
            )));
            t.with_decoder(Some(DecoderWrapper::WordPiece(
                tokenizers::decoders::wordpiece::WordPiece::default(),
            )));
            (t, TrainerWrapper::WordPieceTrainer(trainer))
        }
        Kind::Unigram => {
            let unk = opts.specials().into_iter().find(|s| s.contains("unk"));
            let trainer = UnigramTrainerBuilder::default()
                .vocab_size(
                    u32::try_from(opts.vocab_size)
                        .map_err(|_| Error::Invalid("--vocab-size too large".into()))?,
                )
                .special_tokens(specials)
                .unk_token(unk)
                .show_progress(false)
                .build()
                .map_err(|e| Error::Tokenizers(e.to_string()))?;
            let mut t = Tokenizer::new(ModelWrapper::Unigram(Unigram::default()));
            t.with_normalizer(Some(NormalizerWrapper::NFKC(NFKC)))
                .map_err(tk)?;
            let ms = Metaspace::new('▁', PrependScheme::Always, true);
            t.with_pre_tokenizer(Some(PreTokenizerWrapper::Metaspace(ms.clone())));
            t.with_decoder(Some(DecoderWrapper::Metaspace(ms)));
            (t, TrainerWrapper::UnigramTrainer(trainer))
        }
        Kind::Char => {
            let trainer = WordLevelTrainerBuilder::default()
                .vocab_size(opts.vocab_size)
                .min_frequency(opts.min_frequency)
                .special_tokens(specials)
                .show_progress(false)
                .build()
                .map_err(|e| Error::Tokenizers(e.to_string()))?;
            let model = WordLevel::builder()
                .unk_token("[UNK]".into())
                .build()
                .map_err(tk)?;
            let mut t = Tokenizer::new(ModelWrapper::WordLevel(model));
            let split = SplitPre::new(
                SplitPattern::Regex("(?s).".into()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .map_err(tk)?;
            t.with_pre_tokenizer(Some(PreTokenizerWrapper::Split(split)));
            t.with_decoder(Some(DecoderWrapper::Fuse(Fuse::new())));
            (t, TrainerWrapper::WordLevelTrainer(trainer))
        }
    })
}

/// Trains a tokenizer on texts.
pub fn train<I, S>(texts: I, opts: &TrainOptions) -> Result<Tokenizer>
where
    I: Iterator<Item = S> + Send,
    S: AsRef<str> + Send,
{
    let (mut t, mut trainer) = untrained(opts)?;
    t.train(&mut trainer, texts).map_err(|e| {
        let msg = e.to_string();
        if msg.contains("not large enough") {
            Error::Invalid(format!(
                "--vocab-size {} is smaller than the number of distinct characters in the corpus \
                 ({msg}); Chinese text needs several thousand",
                opts.vocab_size
            ))
        } else {
            Error::Tokenizers(msg)
        }
    })?;
    if opts.kind == Kind::Wordpiece {
        let id = |s: &str| {
            t.token_to_id(s)
                .ok_or_else(|| Error::Invalid(format!("special token {s} missing after training")))
        };
        let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
        let post = TemplateProcessing::builder()
            .try_single("[CLS] $A [SEP]")
            .map_err(|e| Error::Tokenizers(e.to_string()))?
            .try_pair("[CLS] $A [SEP] $B:1 [SEP]:1")
            .map_err(|e| Error::Tokenizers(e.to_string()))?
            .special_tokens(vec![("[CLS]", cls), ("[SEP]", sep)])
            .build()
            .map_err(|e| Error::Tokenizers(e.to_string()))?;
        t.with_post_processor(Some(PostProcessorWrapper::Template(post)));
    }
    Ok(t)
}

/// Trains on the `train` split of a corpus directory.
pub fn train_on_corpus(corpus: &Path, opts: &TrainOptions) -> Result<Tokenizer> {
    let reader = SplitReader::open(corpus, Split::Train)?;
    let limit = if opts.max_docs == 0 {
        usize::MAX
    } else {
        opts.max_docs
    };
    // The trainer wants plain strings; a read error ends the stream and is reported after.
    let failure = std::sync::Mutex::new(None);
    let texts = reader.take(limit).map_while(|d| match d {
        Ok(d) => Some(d.text),
        Err(e) => {
            if let Ok(mut f) = failure.lock() {
                *f = Some(e);
            }
            None
        }
    });
    let t = train(texts, opts)?;
    if let Some(e) = failure.into_inner().ok().flatten() {
        return Err(e.into());
    }
    Ok(t)
}

/// Bytes of UTF-8 text per token, by language, over up to `max_docs` documents of a split.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Compression {
    /// Per language: (bytes, tokens).
    pub by_lang: BTreeMap<String, (u64, u64)>,
}

impl Compression {
    /// Bytes per token for one language.
    pub fn bytes_per_token(&self, lang: &str) -> Option<f64> {
        self.by_lang
            .get(lang)
            .filter(|(_, t)| *t > 0)
            .map(|(b, t)| *b as f64 / *t as f64)
    }
}

/// Measures how many bytes a token carries, per language, on a corpus split.
pub fn measure(t: &Tokenizer, corpus: &Path, split: Split, max_docs: usize) -> Result<Compression> {
    let mut c = Compression::default();
    let docs: Vec<_> = SplitReader::open(corpus, split)?
        .take(max_docs)
        .collect::<std::result::Result<_, _>>()?;
    let texts: Vec<&str> = docs.iter().map(|d| d.text.as_str()).collect();
    let enc = t.encode_batch(texts, false).map_err(tk)?;
    for (d, e) in docs.iter().zip(enc) {
        let entry = c.by_lang.entry(d.lang.clone()).or_default();
        entry.0 += d.text.len() as u64;
        entry.1 += e.len() as u64;
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXTS: &[&str] = &[
        "The quick brown fox jumps over the lazy dog.",
        "A fool and his money are soon parted.",
        "床前明月光，疑是地上霜。举头望明月，低头思故乡。",
        "Ünïcödé and emoji 🦀 survive byte-level BPE.",
    ];

    #[test]
    fn bpe_round_trips_every_string() {
        let corpus: Vec<String> = TEXTS
            .iter()
            .cycle()
            .take(200)
            .map(|s| (*s).to_owned())
            .collect();
        let t = train(corpus.iter(), &TrainOptions::new(Kind::Bpe, 400)).unwrap();
        for s in TEXTS.iter().chain(&["never seen: ₿ 𝄞 中文字符 \t\n end"]) {
            let ids = t.encode(*s, false).unwrap().get_ids().to_vec();
            assert_eq!(t.decode(&ids, false).unwrap(), *s);
        }
        assert_eq!(t.token_to_id("<|endoftext|>"), Some(0));
    }

    #[test]
    fn wordpiece_adds_cls_and_sep() {
        let corpus: Vec<String> = TEXTS
            .iter()
            .cycle()
            .take(200)
            .map(|s| (*s).to_owned())
            .collect();
        let t = train(corpus.iter(), &TrainOptions::new(Kind::Wordpiece, 300)).unwrap();
        let e = t.encode("the quick fox", true).unwrap();
        assert_eq!(e.get_tokens().first().map(String::as_str), Some("[CLS]"));
        assert_eq!(e.get_tokens().last().map(String::as_str), Some("[SEP]"));
        // Chinese characters are split one by one by BERT's normaliser.
        let zh = t.encode("明月", false).unwrap();
        assert_eq!(zh.get_tokens(), ["明", "月"]);
    }

    #[test]
    fn char_tokens_are_characters() {
        let corpus: Vec<String> = TEXTS
            .iter()
            .cycle()
            .take(20)
            .map(|s| format!("{s}\n"))
            .collect();
        let mut o = TrainOptions::new(Kind::Char, 1000);
        o.min_frequency = 1;
        let t = train(corpus.iter(), &o).unwrap();
        let e = t.encode("床前明月\nok", false).unwrap();
        assert_eq!(e.get_tokens(), ["床", "前", "明", "月", "\n", "o", "k"]);
        assert_eq!(t.decode(e.get_ids(), false).unwrap(), "床前明月\nok");
        assert_eq!(t.token_to_id("<|endoftext|>"), Some(0));
        assert_eq!(
            t.encode("€", false).unwrap().get_tokens(),
            ["[UNK]"],
            "unseen characters are unknown"
        );
    }

    #[test]
    fn unigram_trains_and_decodes() {
        let corpus: Vec<String> = TEXTS
            .iter()
            .cycle()
            .take(200)
            .map(|s| (*s).to_owned())
            .collect();
        let t = train(corpus.iter(), &TrainOptions::new(Kind::Unigram, 120)).unwrap();
        let ids = t.encode("the lazy dog", false).unwrap().get_ids().to_vec();
        assert_eq!(t.decode(&ids, false).unwrap(), "the lazy dog");
    }
}

//! Keyword extraction: YAKE (Campos et al., 2020) picks and scores candidate phrases from the
//! document alone — term frequency, position, casing, spread over sentences and how varied a
//! term's neighbours are — and, when a sentence encoder is given, the best candidates are
//! re-ranked by their cosine similarity to the document (as KeyBERT does), fusing both rankings.
//!
//! YAKE's tokenizer splits on spaces, so Chinese takes the road its users know instead: `jieba`
//! segments the text and ranks the words by TF-IDF against jieba's IDF table.

use std::sync::OnceLock;

use duet_model::embed::SentenceEmbedder;
use jieba_rs::{Jieba, KeywordExtract, TfIdf};
use serde::Serialize;
use yake_rust::{Config, StopWords, get_n_best};

use crate::{Error, Result};

/// How keywords are chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct KeywordConfig {
    /// How many keywords to return.
    pub top: usize,
    /// The longest phrase, in words (Chinese keywords are single words).
    pub ngrams: usize,
    /// The document's language (ISO 639-1, e.g. `en`, `zh`); `None` detects it.
    pub lang: Option<String>,
    /// How many of YAKE's best candidates are considered (at least `top`): the encoder
    /// re-ranks them, and phrases that add no new word are skipped.
    pub pool: usize,
}

impl Default for KeywordConfig {
    fn default() -> Self {
        Self {
            top: 10,
            ngrams: 3,
            lang: None,
            pool: 30,
        }
    }
}

/// One key phrase of a document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Keyword {
    /// The phrase as it first appears in the text.
    pub keyword: String,
    /// Importance in (0, 1], higher first: from the statistical rank alone, or the fused rank
    /// when an encoder re-ranked the candidates.
    pub score: f64,
    /// The statistical method's own figure: YAKE's score (lower is more important) or, for
    /// Chinese, the TF-IDF weight (higher is more important).
    pub statistic: f64,
    /// Cosine similarity to the document, when an encoder re-ranked the candidates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub similarity: Option<f32>,
}

/// Extracts keywords; holds the optional sentence encoder and, once needed, the Chinese
/// segmenter.
#[derive(Default)]
pub struct KeywordExtractor {
    cfg: KeywordConfig,
    embedder: Option<SentenceEmbedder>,
    jieba: OnceLock<Jieba>,
    tfidf: OnceLock<TfIdf>,
}

impl std::fmt::Debug for KeywordExtractor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeywordExtractor")
            .field("cfg", &self.cfg)
            .field("embedder", &self.embedder.is_some())
            .finish()
    }
}

/// Languages whose stop words YAKE ships in this build.
const LANGS: &[&str] = &["en", "de", "es", "fr", "it", "nl", "pt", "ru", "zh"];

impl KeywordExtractor {
    /// An extractor with `cfg`; YAKE alone until [`with_embedder`](Self::with_embedder).
    pub fn new(cfg: KeywordConfig) -> Result<Self> {
        if cfg.top == 0 || cfg.ngrams == 0 {
            return Err(Error::Config(
                "keywords: top and ngrams must be at least 1".into(),
            ));
        }
        if let Some(l) = &cfg.lang
            && !LANGS.contains(&l.as_str())
        {
            return Err(Error::Config(format!(
                "keywords: no stop words for language {l:?}; expected one of {}",
                LANGS.join(", ")
            )));
        }
        Ok(Self {
            cfg,
            embedder: None,
            jieba: OnceLock::new(),
            tfidf: OnceLock::new(),
        })
    }

    /// Re-ranks YAKE's candidates by similarity to the document under `embedder`.
    pub fn with_embedder(mut self, embedder: SentenceEmbedder) -> Self {
        self.embedder = Some(embedder);
        self
    }

    /// The language used for `text`: the configured one, else a detected one YAKE has stop
    /// words for (English otherwise).
    pub fn language(&self, text: &str) -> &'static str {
        let code = match &self.cfg.lang {
            Some(l) => l.as_str(),
            None => duet_corpus::filter::lang::identify(text).code,
        };
        LANGS.iter().copied().find(|l| *l == code).unwrap_or("en")
    }

    /// The keywords of one document, most important first.
    pub fn extract(&self, text: &str) -> Result<Vec<Keyword>> {
        let lang = self.language(text);
        // More candidates than asked for: the encoder re-ranks them, and phrases that add no
        // new word to better ones are dropped.
        let want = self.cfg.pool.max(self.cfg.top);
        let config = Config {
            ngrams: self.cfg.ngrams,
            ..Config::default()
        };
        let found: Vec<(String, f64)> = if lang == "zh" {
            self.chinese(text, want)
        } else {
            let stop = StopWords::predefined(lang).unwrap_or_default();
            get_n_best(want, text, &stop, &config)
                .into_iter()
                .map(|r| (r.raw, r.score))
                .collect()
        };
        match &self.embedder {
            Some(e) if found.len() > 1 => self.rerank(e, text, found),
            _ => {
                let n = found.len().max(1) as f64;
                Ok(self.distinct(
                    found
                        .into_iter()
                        .enumerate()
                        .map(|(i, (keyword, statistic))| Keyword {
                            keyword,
                            score: 1.0 - i as f64 / n,
                            statistic,
                            similarity: None,
                        }),
                ))
            }
        }
    }

    /// The first `top` keywords of a ranked list, leaving out each phrase whose words all
    /// appear in the phrases already taken ("Virginia" after "Virginia State").
    fn distinct(&self, ranked: impl Iterator<Item = Keyword>) -> Vec<Keyword> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for k in ranked {
            let lower = k.keyword.to_lowercase();
            let words: Vec<&str> = lower.split_whitespace().collect();
            if words.iter().all(|w| seen.contains(*w)) {
                continue;
            }
            seen.extend(words.iter().map(|w| w.to_string()));
            out.push(k);
            if out.len() == self.cfg.top {
                break;
            }
        }
        out
    }

    /// Chinese: jieba's segmentation and its TF-IDF keyword extraction (IDF from a large
    /// Chinese corpus, shipped in the crate), single words, highest weight first.
    fn chinese(&self, text: &str, want: usize) -> Vec<(String, f64)> {
        let jieba = self.jieba.get_or_init(Jieba::new);
        let tfidf = self.tfidf.get_or_init(TfIdf::default);
        tfidf
            .extract_keywords(jieba, text, want, Vec::new())
            .into_iter()
            .map(|k| (k.keyword, k.weight))
            .collect()
    }

    /// Orders `found` by the mean of its YAKE rank and its rank by cosine similarity to the
    /// document (the mean of the normalised embeddings of its chunks).
    fn rerank(
        &self,
        e: &SentenceEmbedder,
        text: &str,
        found: Vec<(String, f64)>,
    ) -> Result<Vec<Keyword>> {
        let chunks = chunks(text, e.max_len());
        let chunk_refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
        let doc = mean_unit(&e.embed(&chunk_refs, 16)?);
        let phrases: Vec<&str> = found.iter().map(|(k, _)| k.as_str()).collect();
        let sims: Vec<f32> = e
            .embed(&phrases, 32)?
            .iter()
            .map(|v| cosine(v, &doc))
            .collect();
        let mut by_sim: Vec<usize> = (0..found.len()).collect();
        by_sim.sort_by(|&a, &b| sims[b].total_cmp(&sims[a]));
        let mut sim_rank = vec![0usize; found.len()];
        for (r, &i) in by_sim.iter().enumerate() {
            sim_rank[i] = r;
        }
        let n = found.len() as f64;
        // Ties go to the statistical rank (the index), which the stable sort keeps.
        let mut out: Vec<(f64, Keyword)> = found
            .into_iter()
            .enumerate()
            .map(|(i, (keyword, statistic))| {
                let fused = (i + sim_rank[i]) as f64 / 2.0;
                (
                    fused,
                    Keyword {
                        keyword,
                        score: 1.0 - fused / n,
                        statistic,
                        similarity: Some(sims[i]),
                    },
                )
            })
            .collect();
        out.sort_by(|a, b| a.0.total_cmp(&b.0));
        Ok(self.distinct(out.into_iter().map(|(_, k)| k)))
    }
}

/// The text cut into pieces the encoder reads whole: about `max_len / 2` words (or characters
/// of Chinese) each, since a word is often more than one word piece.
fn chunks(text: &str, max_len: usize) -> Vec<String> {
    let size = (max_len / 2).max(16);
    let words: Vec<&str> = text.split_whitespace().collect();
    let pieces: Vec<String> = if words.len() * 4 < text.chars().count() / 2 {
        // Little white space: Chinese or Japanese, cut by characters.
        let chars: Vec<char> = text.chars().filter(|c| !c.is_whitespace()).collect();
        chars.chunks(size).map(|c| c.iter().collect()).collect()
    } else {
        words.chunks(size).map(|c| c.join(" ")).collect()
    };
    if pieces.is_empty() {
        vec![text.to_owned()]
    } else {
        pieces
    }
}

/// The mean of the unit-length versions of `vs`.
fn mean_unit(vs: &[Vec<f32>]) -> Vec<f32> {
    let dim = vs.first().map_or(0, Vec::len);
    let mut m = vec![0f32; dim];
    for v in vs {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        for (a, x) in m.iter_mut().zip(v) {
            *a += x / norm;
        }
    }
    m
}

/// Cosine similarity.
fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb).max(1e-12)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EN: &str = "Google is acquiring data science community Kaggle. Sources tell us that \
        Google is acquiring Kaggle, a platform that hosts data science and machine learning \
        competitions. Details about the transaction remain somewhat vague, but given that Google \
        is hosting its Cloud Next conference in San Francisco this week, the official \
        announcement could come as early as tomorrow. Kaggle co-founder CEO Anthony Goldbloom \
        declined to deny that the acquisition is happening. Google itself declined to comment \
        on rumors. Kaggle, which has about half a million data scientists on its platform, was \
        founded by Goldbloom and Ben Hamner in 2010.";

    #[test]
    fn english_keywords_name_the_subject() {
        let x = KeywordExtractor::new(KeywordConfig::default()).unwrap();
        assert_eq!(x.language(EN), "en");
        let k = x.extract(EN).unwrap();
        assert_eq!(k.len(), 10);
        let words: Vec<String> = k.iter().map(|k| k.keyword.to_lowercase()).collect();
        assert!(words.iter().any(|w| w.contains("google")), "{words:?}");
        assert!(words.iter().any(|w| w.contains("kaggle")), "{words:?}");
        assert!(k.windows(2).all(|w| w[0].score > w[1].score));
        assert!(k.windows(2).all(|w| w[0].statistic <= w[1].statistic));
        for (i, kw) in words.iter().enumerate() {
            let earlier: Vec<&str> = words[..i].iter().flat_map(|w| w.split(' ')).collect();
            assert!(
                kw.split(' ').any(|w| !earlier.contains(&w)),
                "{kw} repeats {words:?}"
            );
        }
    }

    #[test]
    fn chinese_is_segmented_into_words() {
        let text = "人工智能是计算机科学的一个分支。人工智能研究如何让计算机模拟人类的智能。\
            机器学习是人工智能的核心方法，深度学习是机器学习的一种。";
        let x = KeywordExtractor::new(KeywordConfig {
            top: 5,
            ..KeywordConfig::default()
        })
        .unwrap();
        assert_eq!(x.language(text), "zh");
        let k = x.extract(text).unwrap();
        assert!(!k.is_empty());
        let words: Vec<&str> = k.iter().map(|k| k.keyword.as_str()).collect();
        assert!(
            words
                .iter()
                .any(|w| w.contains("人工智能") || w.contains("机器学习")),
            "{words:?}"
        );
        assert!(k.windows(2).all(|w| w[0].statistic >= w[1].statistic));
    }

    #[test]
    fn documents_are_cut_into_encoder_sized_chunks() {
        let words = vec!["word"; 300].join(" ");
        let c = chunks(&words, 256);
        assert_eq!(c.len(), 3);
        assert!(c.iter().all(|c| c.split(' ').count() <= 128));
        let zh = "字".repeat(300);
        assert_eq!(chunks(&zh, 256).len(), 3);
        assert_eq!(chunks("", 256), [""]);
    }

    #[test]
    fn bad_settings_are_named() {
        let e = KeywordExtractor::new(KeywordConfig {
            lang: Some("xx".into()),
            ..KeywordConfig::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("\"xx\""), "{e}");
        assert!(
            KeywordExtractor::new(KeywordConfig {
                top: 0,
                ..KeywordConfig::default()
            })
            .is_err()
        );
    }

    /// The tiny random BERT of the model fixtures with the word-level tokenizer that
    /// testdata/extract/make_tokenizer.py made for kaggle.txt (committed, so byte-for-byte
    /// stable), and that document.
    fn tiny_embedder_and_text() -> (SentenceEmbedder, String) {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata");
        let dev = candle_core::Device::Cpu;
        let model_dir = root.join("model/tiny-bert-mlm");
        let cfg = duet_model::bert::Config::load(&model_dir.join("config.json")).unwrap();
        let ck = duet_model::hub::Checkpoint::load(&model_dir, &dev).unwrap();
        let model = duet_model::bert::BertModel::load(ck.var_builder(&dev), &cfg, false).unwrap();
        let tok = duet_model::load_tokenizer(&root.join("extract")).unwrap();
        let e =
            SentenceEmbedder::new(model, tok, duet_model::bert::Pooling::Mean, false, 64).unwrap();
        let text = std::fs::read_to_string(root.join("extract/kaggle.txt")).unwrap();
        (e, text)
    }

    #[test]
    fn the_encoder_re_ranks_yakes_candidates_by_similarity_to_the_document() {
        let (e, text) = tiny_embedder_and_text();
        let cfg = KeywordConfig {
            top: 6,
            pool: 12,
            lang: Some("en".into()),
            ..KeywordConfig::default()
        };
        let alone = KeywordExtractor::new(cfg.clone())
            .unwrap()
            .extract(&text)
            .unwrap();
        let x = KeywordExtractor::new(cfg.clone())
            .unwrap()
            .with_embedder(e.clone());
        let k = x.extract(&text).unwrap();
        let got: Vec<&str> = k.iter().map(|k| k.keyword.as_str()).collect();
        let yake: Vec<&str> = alone.iter().map(|k| k.keyword.as_str()).collect();
        // 1) The re-ranked order, fixed by the committed encoder and tokenizer.
        assert_eq!(got, RERANKED, "YAKE alone: {yake:?}");
        assert_ne!(got, yake, "the encoder changed nothing");
        // 2) Each similarity is the phrase's cosine to the mean of the document's unit chunk
        // vectors.
        let chunks = chunks(&text, e.max_len());
        let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
        let doc = mean_unit(&e.embed(&refs, 16).unwrap());
        for kw in &k {
            let v = e.embed(&[kw.keyword.as_str()], 1).unwrap();
            let sim = kw.similarity.unwrap();
            assert!((cosine(&v[0], &doc) - sim).abs() < 1e-5, "{kw:?}");
        }
        // 3) The order is the mean of the YAKE rank and the similarity rank over the pool, the
        // YAKE rank breaking ties; the similarity ranks are not near ties (a stable order).
        let stop = StopWords::predefined("en").unwrap_or_default();
        let config = Config {
            ngrams: cfg.ngrams,
            ..Config::default()
        };
        let pool: Vec<String> = get_n_best(cfg.pool, &text, &stop, &config)
            .into_iter()
            .map(|r| r.raw)
            .collect();
        let refs: Vec<&str> = pool.iter().map(String::as_str).collect();
        let sims: Vec<f32> = e
            .embed(&refs, 32)
            .unwrap()
            .iter()
            .map(|v| cosine(v, &doc))
            .collect();
        let mut sorted = sims.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        assert!(sorted.windows(2).all(|w| w[0] - w[1] > 1e-4), "{sorted:?}");
        let fused = |p: &str| {
            let i = pool.iter().position(|q| q == p).unwrap();
            let sim_rank = sorted.iter().position(|s| *s == sims[i]).unwrap();
            (i + sim_rank) as f64 / 2.0
        };
        assert!(
            got.windows(2)
                .all(|w| (fused(w[0]), pool.iter().position(|q| q == w[0]))
                    < (fused(w[1]), pool.iter().position(|q| q == w[1]))),
            "{got:?} against the pool {pool:?} with similarities {sims:?}"
        );
    }

    /// What the tiny encoder's re-ranking puts first in kaggle.txt (YAKE alone: "science
    /// community Kaggle", "data science community", "Google", "Google is acquiring", "CEO
    /// Anthony Goldbloom", "San Francisco").
    const RERANKED: &[&str] = &[
        "science community Kaggle",
        "acquiring data science",
        "Google is acquiring",
        "hosts data science",
        "CEO Anthony Goldbloom",
        "San Francisco",
    ];

    #[test]
    fn empty_text_has_no_keywords() {
        let x = KeywordExtractor::new(KeywordConfig::default()).unwrap();
        assert!(x.extract("").unwrap().is_empty());
        assert!(x.extract("。，！").unwrap().is_empty());
    }
}

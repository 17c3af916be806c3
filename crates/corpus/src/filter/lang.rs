//! Language identification: script statistics for CJK, `whatlang` (trigrams) for the rest,
//! with an English stop-word check that rescues short English texts.

use crate::text::is_cjk;

/// A language guess.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LangGuess {
    /// ISO 639-1 code where one exists (`en`, `zh`, `ja`, ...), else ISO 639-3; `und` if unknown.
    pub code: &'static str,
    /// Confidence in [0, 1].
    pub confidence: f64,
}

/// Frequent English function words; a short text full of them is English.
const EN_FUNCTION_WORDS: &[&str] = &[
    "the", "be", "to", "of", "and", "a", "in", "that", "have", "i", "it", "for", "not", "on",
    "with", "he", "as", "you", "do", "at", "this", "but", "his", "by", "from", "they", "we", "her",
    "she", "or", "an", "will", "my", "one", "all", "would", "there", "their", "what", "so", "is",
    "are", "was", "were", "if", "me", "your", "can", "no", "when", "who", "which",
];

/// Identifies the language of `text`.
pub fn identify(text: &str) -> LangGuess {
    let (mut letters, mut han, mut kana, mut hangul) = (0usize, 0usize, 0usize, 0usize);
    for c in text.chars() {
        if is_cjk(c) {
            match c as u32 {
                0x3040..=0x30ff => kana += 1,
                0xac00..=0xd7af => hangul += 1,
                _ => han += 1,
            }
        } else if c.is_alphabetic() {
            letters += 1;
        }
    }
    let cjk = han + kana + hangul;
    // A CJK character carries about as much as an English word: weigh it like 4 letters.
    if cjk > 0 && cjk * 4 >= letters {
        let confidence = (cjk * 4) as f64 / (cjk * 4 + letters) as f64;
        let code = if hangul > han + kana {
            "ko"
        } else if kana * 5 > cjk {
            "ja"
        } else {
            "zh"
        };
        return LangGuess { code, confidence };
    }
    if letters == 0 {
        return LangGuess {
            code: "und",
            confidence: 0.0,
        };
    }
    let english = english_share(text);
    // Ordinary English prose (a fifth of its words or more are function words) needs no
    // trigram model; this is also most of the work saved on English corpora.
    if english >= 0.8 {
        return LangGuess {
            code: "en",
            confidence: english,
        };
    }
    let guess = whatlang::detect(text);
    match guess {
        Some(info) if info.lang() == whatlang::Lang::Eng => LangGuess {
            code: "en",
            confidence: info.confidence().max(english),
        },
        // Short English text often reads as Afrikaans, Javanese or Latin to trigram models; a
        // text rich in English function words is English unless the model is sure otherwise.
        Some(info) if english >= 0.4 && (!info.is_reliable() || english >= 0.8) => LangGuess {
            code: "en",
            confidence: english,
        },
        None if english >= 0.4 => LangGuess {
            code: "en",
            confidence: english,
        },
        Some(info) => LangGuess {
            code: iso639_1(info.lang()),
            confidence: info.confidence(),
        },
        None => LangGuess {
            code: "und",
            confidence: 0.0,
        },
    }
}

/// How English a text looks from its function words, mapped into [0, 1]: a share of 25% or more
/// function words (typical English prose has 40-50%) gives 1.
fn english_share(text: &str) -> f64 {
    let mut total = 0usize;
    let mut hits = 0usize;
    for w in text.split_whitespace() {
        let w = w
            .trim_matches(|c: char| !c.is_alphabetic())
            .to_ascii_lowercase();
        if w.is_empty() {
            continue;
        }
        total += 1;
        if EN_FUNCTION_WORDS.contains(&w.as_str()) {
            hits += 1;
        }
    }
    if total < 4 {
        return 0.0;
    }
    (hits as f64 / total as f64 / 0.25).min(1.0)
}

/// ISO 639-1 for the languages whatlang knows, ISO 639-3 otherwise.
fn iso639_1(lang: whatlang::Lang) -> &'static str {
    use whatlang::Lang::*;
    match lang {
        Eng => "en",
        Cmn => "zh",
        Jpn => "ja",
        Kor => "ko",
        Spa => "es",
        Por => "pt",
        Ita => "it",
        Fra => "fr",
        Deu => "de",
        Nld => "nl",
        Rus => "ru",
        Ukr => "uk",
        Pol => "pl",
        Swe => "sv",
        Dan => "da",
        Nob => "nb",
        Fin => "fi",
        Tur => "tr",
        Ara => "ar",
        Heb => "he",
        Hin => "hi",
        Ell => "el",
        Ces => "cs",
        Hun => "hu",
        Ron => "ro",
        Vie => "vi",
        Tha => "th",
        Ind => "id",
        Lat => "la",
        Epo => "eo",
        other => other.code(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_and_english_are_told_apart() {
        let zh = identify("床前明月光，疑是地上霜。举头望明月，低头思故乡。");
        assert_eq!(zh.code, "zh");
        assert!(zh.confidence > 0.9);
        let en = identify("A fool and his money are soon parted.");
        assert_eq!(en.code, "en");
        assert!(en.confidence >= 0.5, "{en:?}");
    }

    #[test]
    fn other_languages_are_named() {
        assert_eq!(identify("Der schnelle braune Fuchs springt über den faulen Hund und läuft weiter in den Wald.").code, "de");
        assert_eq!(
            identify("これは日本語の文章です。ひらがなとカタカナがあります。").code,
            "ja"
        );
        assert_eq!(identify("12345 !!!").code, "und");
    }

    #[test]
    fn english_with_some_chinese_stays_english() {
        let g =
            identify("The word for moon is 月 and the word for light is 光 in Chinese writing.");
        assert_eq!(g.code, "en");
    }
}

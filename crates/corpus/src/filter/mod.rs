//! Document filters: length, language, quality and repetition, each named and counted.

pub mod lang;
pub mod quality;
pub mod repetition;

use crate::config::{FiltersConfig, LanguageConfig, LengthConfig};

pub use lang::{LangGuess, identify};

/// Length bounds; returns the failed check's name.
pub fn length(text: &str, words: &[&str], cfg: &LengthConfig) -> Option<&'static str> {
    if !cfg.enabled {
        return None;
    }
    let chars = text.chars().count();
    if chars < cfg.min_chars {
        Some("length.too_few_chars")
    } else if chars > cfg.max_chars {
        Some("length.too_many_chars")
    } else if words.len() < cfg.min_words {
        Some("length.too_few_words")
    } else if words.len() > cfg.max_words {
        Some("length.too_many_words")
    } else {
        None
    }
}

/// The language allow-list and confidence threshold; returns the failed check's name.
pub fn language(guess: &LangGuess, cfg: &LanguageConfig) -> Option<&'static str> {
    if !cfg.enabled {
        return None;
    }
    if !cfg.allow.is_empty() && !cfg.allow.iter().any(|a| a == guess.code) {
        Some("language.not_allowed")
    } else if guess.confidence < cfg.min_confidence {
        Some("language.uncertain")
    } else {
        None
    }
}

/// Characters of a document that language identification looks at: enough for a confident
/// guess, and it keeps the cost of long documents bounded.
const LANG_ID_CHARS: usize = 2000;

/// What the filters concluded about a document.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// The language, when the document got as far as identification (the length filter runs
    /// first, because it is cheap and identification is not).
    pub lang: Option<LangGuess>,
    /// The name of the filter that drops the document, if any.
    pub reason: Option<&'static str>,
}

/// Runs every filter in order (length, language, quality, repetition); the first that fails
/// names the drop.
pub fn apply(text: &str, words: &[&str], cfg: &FiltersConfig) -> Verdict {
    if let Some(reason) = length(text, words, &cfg.length) {
        return Verdict {
            lang: None,
            reason: Some(reason),
        };
    }
    let head = text
        .char_indices()
        .nth(LANG_ID_CHARS)
        .map_or(text, |(i, _)| &text[..i]);
    let guess = identify(head);
    let reason = language(&guess, &cfg.language)
        .or_else(|| quality::check(text, words, guess.code, &cfg.quality))
        .or_else(|| repetition::check(text, words, &cfg.repetition));
    Verdict {
        lang: Some(guess),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::words;

    #[test]
    fn first_failing_filter_names_the_drop() {
        let cfg = FiltersConfig::default();
        let t = "Hi.";
        let v = apply(t, &words(t), &cfg);
        assert_eq!((v.lang, v.reason), (None, Some("length.too_few_chars")));
        let t = "Der schnelle braune Fuchs springt über den faulen Hund.";
        let v = apply(t, &words(t), &cfg);
        assert_eq!(
            (v.lang.map(|l| l.code), v.reason),
            (Some("de"), Some("language.not_allowed"))
        );
        let t = "A fool and his money are soon parted.";
        assert_eq!(apply(t, &words(t), &cfg).reason, None);
    }
}

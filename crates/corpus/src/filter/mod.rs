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

/// Runs every filter in order (length, language, quality, repetition) and returns the name of
/// the first that drops the document.
pub fn apply(
    text: &str,
    words: &[&str],
    guess: &LangGuess,
    cfg: &FiltersConfig,
) -> Option<&'static str> {
    length(text, words, &cfg.length)
        .or_else(|| language(guess, &cfg.language))
        .or_else(|| quality::check(text, words, guess.code, &cfg.quality))
        .or_else(|| repetition::check(text, words, &cfg.repetition))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::words;

    #[test]
    fn first_failing_filter_names_the_drop() {
        let cfg = FiltersConfig::default();
        let t = "Hi.";
        assert_eq!(
            apply(t, &words(t), &identify(t), &cfg),
            Some("length.too_few_chars")
        );
        let t = "Der schnelle braune Fuchs springt über den faulen Hund.";
        assert_eq!(
            apply(t, &words(t), &identify(t), &cfg),
            Some("language.not_allowed")
        );
        let t = "A fool and his money are soon parted.";
        assert_eq!(apply(t, &words(t), &identify(t), &cfg), None);
    }
}

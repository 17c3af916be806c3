//! Quality heuristics after Gopher (Rae et al. 2021, appendix A) and C4 (Raffel et al. 2020).

use crate::config::QualityConfig;
use crate::text::{is_cjk, normalize_word};

/// Gopher's English stop words: a real English text uses at least two of them.
const STOP_WORDS: &[&str] = &["the", "be", "to", "of", "and", "that", "have", "with"];

/// Line starts that make a bullet line.
const BULLETS: &[char] = &[
    '•', '‣', '◦', '▪', '●', '○', '■', '□', '-', '*', '–', '—', '·',
];

/// Returns the name of the first failed check, or `None` if the document passes.
pub fn check(text: &str, words: &[&str], lang: &str, cfg: &QualityConfig) -> Option<&'static str> {
    if !cfg.enabled || words.len() < cfg.min_words_to_apply {
        return None;
    }
    let n = words.len() as f64;
    let spaced = !words.iter().any(|w| w.chars().any(is_cjk));
    // 1) mean word length, for languages that separate words with spaces.
    if spaced {
        let letters: usize = words
            .iter()
            .map(|w| normalize_word(w).chars().count())
            .sum();
        let mean = letters as f64 / n;
        if mean < cfg.min_mean_word_len || mean > cfg.max_mean_word_len {
            return Some("quality.mean_word_length");
        }
    }
    // 2) symbol-to-word ratio: hashes and ellipses.
    let symbols =
        text.matches('#').count() + text.matches("...").count() + text.matches('…').count();
    if symbols as f64 / n > cfg.max_symbol_ratio {
        return Some("quality.symbol_ratio");
    }
    // 3) lines ending in an ellipsis, lines starting with a bullet, code-like lines.
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if !lines.is_empty() {
        let total = lines.len() as f64;
        let ellipsis = lines
            .iter()
            .filter(|l| l.ends_with("...") || l.ends_with('…'))
            .count();
        if ellipsis as f64 / total > cfg.max_ellipsis_line_ratio {
            return Some("quality.ellipsis_lines");
        }
        let bullets = lines.iter().filter(|l| l.starts_with(BULLETS)).count();
        if bullets as f64 / total > cfg.max_bullet_line_ratio {
            return Some("quality.bullet_lines");
        }
        let code = lines
            .iter()
            .filter(|l| {
                let lower = l.to_lowercase();
                lower.contains("lorem ipsum") || lower.contains("javascript") || l.contains('{')
            })
            .count();
        if code as f64 / total > cfg.max_code_line_ratio {
            return Some("quality.code_lines");
        }
    }
    // 4) words with at least one letter.
    let alpha = words
        .iter()
        .filter(|w| w.chars().any(char::is_alphabetic))
        .count();
    if (alpha as f64) / n < cfg.min_alpha_word_ratio {
        return Some("quality.alpha_words");
    }
    // 5) English needs stop words.
    if lang == "en" {
        let stops = words
            .iter()
            .filter(|w| STOP_WORDS.contains(&normalize_word(w).as_str()))
            .take(cfg.min_stop_words)
            .count();
        if stops < cfg.min_stop_words {
            return Some("quality.stop_words");
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::words;

    fn run(text: &str, lang: &str) -> Option<&'static str> {
        let cfg = QualityConfig {
            min_words_to_apply: 10,
            ..Default::default()
        };
        check(text, &words(text), lang, &cfg)
    }

    const PROSE: &str = "The quick brown fox jumps over the lazy dog and then runs into the forest \
        where it hides with the other animals that have lived there for many years of their lives.";

    #[test]
    fn prose_passes() {
        assert_eq!(run(PROSE, "en"), None);
    }

    #[test]
    fn each_check_fires() {
        let hashtags = "#love #life #instagood #photooftheday #fashion #beautiful #happy #cute #tbt #like4like #followme #picoftheday #follow #me #selfie #summer #art #instadaily #friends #repost #nature";
        assert_eq!(run(hashtags, "en"), Some("quality.symbol_ratio"));
        let bullets = (0..25)
            .map(|i| format!("- remember to purchase groceries tomorrow morning {i}"))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(run(&bullets, "en"), Some("quality.bullet_lines"));
        let long = (0..30)
            .map(|i| format!("pneumonoultramicroscopic{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(run(&long, "en"), Some("quality.mean_word_length"));
        let numbers = (0..30)
            .map(|i| format!("{}", i * 7919))
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(run(&numbers, "en"), Some("quality.alpha_words"));
        let no_stops = "Buy cheap watches online today best prices guaranteed fast shipping worldwide \
            discount codes available limited offer click here now free gift included great deals daily";
        assert_eq!(run(no_stops, "en"), Some("quality.stop_words"));
        let ellipses = (0..25)
            .map(|i| {
                format!("and then the long story number {i} went on and on through the night...")
            })
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(run(&ellipses, "en"), Some("quality.ellipsis_lines"));
    }

    #[test]
    fn short_documents_are_not_judged() {
        assert_eq!(run("Buy now!", "en"), None);
        let no_stops =
            "Buy cheap watches online today best prices guaranteed fast shipping worldwide";
        assert_eq!(
            check(no_stops, &words(no_stops), "en", &QualityConfig::default()),
            None
        );
    }

    #[test]
    fn chinese_skips_word_length_and_stop_words() {
        let poem = "床前明月光，疑是地上霜。举头望明月，低头思故乡。白日依山尽，黄河入海流。";
        assert_eq!(run(poem, "zh"), None);
    }
}

//! Repetition heuristics after Gopher (Rae et al. 2021, table A1): duplicated lines and
//! paragraphs, the share of text in the most frequent n-gram, and in duplicated n-grams.

use std::collections::{HashMap, HashSet};

use crate::config::RepetitionConfig;
use crate::text::normalize_word;

/// Returns the name of the first failed check, or `None` if the document passes.
pub fn check(text: &str, words: &[&str], cfg: &RepetitionConfig) -> Option<&'static str> {
    if !cfg.enabled {
        return None;
    }
    let total_chars = text.chars().count().max(1) as f64;
    // 1) duplicated lines and paragraphs, by count and by characters.
    let lines: Vec<&str> = text
        .split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let (dup, dup_chars) = duplicates(&lines);
    if lines.len() >= 3 {
        if dup as f64 / lines.len() as f64 > cfg.max_dup_line_ratio {
            return Some("repetition.dup_lines");
        }
        if dup_chars as f64 / total_chars > cfg.max_dup_line_char_ratio {
            return Some("repetition.dup_line_chars");
        }
    }
    let paras: Vec<&str> = text
        .split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    let (dup, dup_chars) = duplicates(&paras);
    if paras.len() >= 3 {
        if dup as f64 / paras.len() as f64 > cfg.max_dup_para_ratio {
            return Some("repetition.dup_paragraphs");
        }
        if dup_chars as f64 / total_chars > cfg.max_dup_para_char_ratio {
            return Some("repetition.dup_paragraph_chars");
        }
    }
    if words.len() < cfg.min_words_for_ngrams {
        return None;
    }
    let norm: Vec<String> = words.iter().map(|w| normalize_word(w)).collect();
    let word_chars: usize = norm.iter().map(|w| w.chars().count()).sum();
    if word_chars == 0 {
        return None;
    }
    let word_chars = word_chars as f64;
    // 2) the most frequent 2-, 3- and 4-gram.
    for (i, n) in (2..=4).enumerate() {
        if norm.len() < n {
            break;
        }
        let mut counts: HashMap<&[String], usize> = HashMap::new();
        for g in norm.windows(n) {
            *counts.entry(g).or_default() += 1;
        }
        let top = counts
            .iter()
            .filter(|(_, c)| **c > 1)
            .map(|(g, c)| g.iter().map(|w| w.chars().count()).sum::<usize>() * c)
            .max()
            .unwrap_or(0);
        if top as f64 / word_chars > cfg.max_top_ngram_char_ratio[i] {
            return Some(
                [
                    "repetition.top_2gram",
                    "repetition.top_3gram",
                    "repetition.top_4gram",
                ][i],
            );
        }
    }
    // 3) characters covered by n-grams (5..=10) that occur more than once.
    const NAMES: [&str; 6] = [
        "repetition.dup_5gram",
        "repetition.dup_6gram",
        "repetition.dup_7gram",
        "repetition.dup_8gram",
        "repetition.dup_9gram",
        "repetition.dup_10gram",
    ];
    for (i, n) in (5..=10).enumerate() {
        if norm.len() < n {
            break;
        }
        let mut seen: HashSet<&[String]> = HashSet::new();
        let mut covered = vec![false; norm.len()];
        let mut start = 0;
        while start + n <= norm.len() {
            let g = &norm[start..start + n];
            if !seen.insert(g) {
                covered[start..start + n].iter_mut().for_each(|c| *c = true);
                start += n;
            } else {
                start += 1;
            }
        }
        let dup: usize = norm
            .iter()
            .zip(&covered)
            .filter(|(_, c)| **c)
            .map(|(w, _)| w.chars().count())
            .sum();
        if dup as f64 / word_chars > cfg.max_dup_ngram_char_ratio[i] {
            return Some(NAMES[i]);
        }
    }
    None
}

/// How many items repeat an earlier one, and how many characters those repeats hold.
fn duplicates(items: &[&str]) -> (usize, usize) {
    let mut seen = HashSet::new();
    let mut dup = 0;
    let mut chars = 0;
    for item in items {
        if !seen.insert(*item) {
            dup += 1;
            chars += item.chars().count();
        }
    }
    (dup, chars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::words;

    fn run(text: &str) -> Option<&'static str> {
        check(text, &words(text), &RepetitionConfig::default())
    }

    #[test]
    fn varied_prose_passes() {
        let prose = "The committee met on Tuesday to review the budget. Several members raised \
            concerns about rising costs, while others argued that investment in new equipment \
            would pay for itself within three years. A final decision was postponed.";
        assert_eq!(run(prose), None);
    }

    #[test]
    fn repeated_lines_and_ngrams_are_caught() {
        assert_eq!(
            run("buy now\nbuy now\nbuy now\nbuy now\nreal line"),
            Some("repetition.dup_lines")
        );
        let spam = "click here for free money ".repeat(10);
        assert!(run(&spam).is_some());
    }
}

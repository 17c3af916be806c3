//! Repetition heuristics after Gopher (Rae et al. 2021, table A1): duplicated lines and
//! paragraphs, the share of text in the most frequent n-gram, and in duplicated n-grams.

use rustc_hash::{FxHashMap, FxHashSet};
use xxhash_rust::xxh3::xxh3_64;

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
    // Each word becomes a hash and a length once; n-gram hashes are built from the (n-1)-gram
    // hashes, so every n costs one pass.
    let mut hashes = Vec::with_capacity(words.len());
    let mut lens = Vec::with_capacity(words.len());
    for w in words {
        let n = normalize_word(w);
        hashes.push(xxh3_64(n.as_bytes()));
        lens.push(n.chars().count());
    }
    let word_chars: usize = lens.iter().sum();
    if word_chars == 0 {
        return None;
    }
    let word_chars = word_chars as f64;
    let mut grams = hashes.clone();
    const TOP: [&str; 3] = [
        "repetition.top_2gram",
        "repetition.top_3gram",
        "repetition.top_4gram",
    ];
    const DUP: [&str; 6] = [
        "repetition.dup_5gram",
        "repetition.dup_6gram",
        "repetition.dup_7gram",
        "repetition.dup_8gram",
        "repetition.dup_9gram",
        "repetition.dup_10gram",
    ];
    for n in 2..=10 {
        if hashes.len() < n {
            break;
        }
        // grams[i] now covers words i..i+n.
        grams.pop();
        for (i, g) in grams.iter_mut().enumerate() {
            *g = (g.rotate_left(23) ^ hashes[i + n - 1]).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
        let chars = |start: usize| lens[start..start + n].iter().sum::<usize>();
        if n <= 4 {
            // 1) the share of characters in the most frequent n-gram (counted when it repeats).
            let mut counts: FxHashMap<u64, (u32, usize)> = FxHashMap::default();
            for (i, g) in grams.iter().enumerate() {
                counts.entry(*g).or_insert((0, i)).0 += 1;
            }
            let top = counts
                .values()
                .filter(|(c, _)| *c > 1)
                .map(|(c, first)| chars(*first) * *c as usize)
                .max()
                .unwrap_or(0);
            if top as f64 / word_chars > cfg.max_top_ngram_char_ratio[n - 2] {
                return Some(TOP[n - 2]);
            }
        } else {
            // 2) characters covered by n-grams that occur more than once.
            let mut seen: FxHashSet<u64> = FxHashSet::default();
            let mut covered = vec![false; hashes.len()];
            let mut start = 0;
            while start + n <= hashes.len() {
                if !seen.insert(grams[start]) {
                    covered[start..start + n].iter_mut().for_each(|c| *c = true);
                    start += n;
                } else {
                    start += 1;
                }
            }
            let dup: usize = lens
                .iter()
                .zip(&covered)
                .filter(|(_, c)| **c)
                .map(|(l, _)| *l)
                .sum();
            if dup as f64 / word_chars > cfg.max_dup_ngram_char_ratio[n - 5] {
                return Some(DUP[n - 5]);
            }
        }
    }
    None
}

/// How many items repeat an earlier one, and how many characters those repeats hold.
fn duplicates(items: &[&str]) -> (usize, usize) {
    let mut seen = FxHashSet::default();
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

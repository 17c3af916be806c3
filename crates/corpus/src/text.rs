//! Words and CJK: the one tokenisation every filter and de-duplicator shares.

/// Whether a character is written without spaces between words (Han, kana, Hangul syllables).
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30ff      // Hiragana, Katakana
        | 0x3400..=0x4dbf    // CJK Extension A
        | 0x4e00..=0x9fff    // CJK Unified Ideographs
        | 0xac00..=0xd7af    // Hangul syllables
        | 0xf900..=0xfaff    // CJK Compatibility Ideographs
        | 0x20000..=0x2ebef  // Extensions B-F
    )
}

/// Splits text into words: runs of non-space characters, with every CJK character a word of
/// its own (so Chinese text has a word count comparable to English).
pub fn words<'a>(text: &'a str) -> Vec<&'a str> {
    let mut out = Vec::new();
    for token in text.split_whitespace() {
        if !token.chars().any(is_cjk) {
            out.push(token);
            continue;
        }
        // Between CJK characters, keep runs that hold a letter or digit ("Python", "3");
        // punctuation there belongs to no word.
        let mut start = None;
        let mut push = |s: &'a str| {
            if s.chars().any(char::is_alphanumeric) {
                out.push(s);
            }
        };
        for (i, c) in token.char_indices() {
            if is_cjk(c) {
                if let Some(s) = start.take() {
                    push(&token[s..i]);
                }
                push(&token[i..i + c.len_utf8()]);
            } else if start.is_none() {
                start = Some(i);
            }
        }
        if let Some(s) = start {
            push(&token[s..]);
        }
    }
    out
}

/// A word with surrounding punctuation removed and letters lower-cased, for comparisons.
pub fn normalize_word(w: &str) -> String {
    w.trim_matches(|c: char| !c.is_alphanumeric())
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cjk_characters_are_words() {
        assert_eq!(
            words("床前明月光，疑是 地上霜 ok"),
            [
                "床", "前", "明", "月", "光", "疑", "是", "地", "上", "霜", "ok"
            ]
        );
        assert_eq!(words("Hello  world\n"), ["Hello", "world"]);
        assert_eq!(words("Python是一种"), ["Python", "是", "一", "种"]);
    }
}

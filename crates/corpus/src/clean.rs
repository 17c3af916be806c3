//! Cleaning: ANSI escapes, Unicode normalisation, control characters, whitespace.

use unicode_normalization::{UnicodeNormalization, is_nfc_quick, is_nfkc_quick};

use crate::config::{CleanConfig, Normalization};

/// Cleans one document's text as `cfg` says, in this order: 1) ANSI escapes, 2) Unicode
/// normalisation, 3) control characters, 4) whitespace.
pub fn clean(text: &str, cfg: &CleanConfig) -> String {
    let mut s = if cfg.strip_ansi && text.contains('\u{1b}') {
        strip_ansi(text)
    } else {
        text.to_owned()
    };
    s = normalize(s, cfg.normalization);
    if cfg.strip_control {
        s = strip_control(&s);
    }
    if cfg.normalize_whitespace {
        s = normalize_whitespace(&s);
    }
    s
}

/// Applies a Unicode normalisation form, skipping the work when the text already is in it.
pub fn normalize(s: String, form: Normalization) -> String {
    use unicode_normalization::IsNormalized::Yes;
    match form {
        Normalization::None => s,
        Normalization::Nfc if is_nfc_quick(s.chars()) == Yes => s,
        Normalization::Nfc => s.nfc().collect(),
        Normalization::Nfkc if is_nfkc_quick(s.chars()) == Yes => s,
        Normalization::Nfkc => s.nfkc().collect(),
    }
}

/// Removes ANSI escape sequences: CSI (`ESC [ ... final`), OSC (`ESC ] ... BEL|ESC \`),
/// and two-character escapes (`ESC X`).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        match chars.next() {
            // CSI: parameters and intermediates in 0x20..=0x3f, final byte in 0x40..=0x7e.
            Some('[') => {
                for c in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&c) {
                        break;
                    }
                }
            }
            // OSC: up to BEL or ST (ESC \).
            Some(']') => {
                while let Some(c) = chars.next() {
                    if c == '\u{7}' {
                        break;
                    }
                    if c == '\u{1b}' {
                        if chars.peek() == Some(&'\\') {
                            chars.next();
                        }
                        break;
                    }
                }
            }
            // nF escapes (`ESC ( B`): intermediates in 0x20..=0x2f, then one final character.
            Some(c) if ('\u{20}'..='\u{2f}').contains(&c) => {
                for c in chars.by_ref() {
                    if !('\u{20}'..='\u{2f}').contains(&c) {
                        break;
                    }
                }
            }
            // Two-character escape, or a lone ESC at the end.
            Some(_) | None => {}
        }
    }
    out
}

/// Whether a character is removed by [`strip_control`]: C0/C1 controls other than `\n` and
/// `\t`, and invisible format characters (zero-width space, byte-order mark, soft hyphen).
fn is_junk(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t' && c != '\r')
        || matches!(c, '\u{200b}' | '\u{feff}' | '\u{ad}' | '\u{2060}')
}

/// Removes control characters (keeping newlines and tabs) and turns `\r\n` and `\r` into `\n`.
pub fn strip_control(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\r' {
            if chars.peek() == Some(&'\n') {
                chars.next();
            }
            out.push('\n');
        } else if !is_junk(c) {
            out.push(c);
        }
    }
    out
}

/// Normalises whitespace: keeps each line's indentation, collapses other runs of whitespace to
/// one space, drops trailing spaces, keeps at most one blank line between paragraphs, and trims
/// blank lines at both ends.
pub fn normalize_whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0usize;
    for line in text.split('\n') {
        let trimmed = line.trim_end();
        if trimmed.trim_start().is_empty() {
            blank_run += 1;
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
            if blank_run > 0 {
                out.push('\n');
            }
        }
        blank_run = 0;
        let body = trimmed.trim_start();
        out.push_str(&trimmed[..trimmed.len() - body.len()]);
        let mut in_space = false;
        for c in body.chars() {
            if c.is_whitespace() {
                in_space = true;
            } else {
                if in_space {
                    out.push(' ');
                    in_space = false;
                }
                out.push(c);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ansi_colour_codes_are_removed() {
        let s = "\u{1b}[1;31m床前明月光\u{1b}[m，\u{1b}]0;title\u{7}疑是地上霜\u{1b}(B";
        assert_eq!(strip_ansi(s), "床前明月光，疑是地上霜");
    }

    #[test]
    fn nfkc_folds_full_width_letters() {
        let s = normalize("ＡＢＣ１２３　ﬁ".into(), Normalization::Nfkc);
        assert_eq!(s, "ABC123 fi");
    }

    #[test]
    fn control_characters_go_newlines_stay() {
        assert_eq!(strip_control("a\u{0}b\r\nc\rd\te\u{feff}"), "ab\nc\nd\te");
    }

    #[test]
    fn whitespace_keeps_indentation_and_paragraphs() {
        let s = "\n\n  first   line  \nsecond\t\tline\n\n\n\n\tquoted\n\n";
        assert_eq!(
            normalize_whitespace(s),
            "  first line\nsecond line\n\n\tquoted"
        );
    }

    #[test]
    fn clean_runs_every_step() {
        let cfg = CleanConfig::default();
        assert_eq!(
            clean("\u{1b}[32mＨｉ\u{0}  there\u{1b}[0m\r\n", &cfg),
            "Hi there"
        );
    }
}

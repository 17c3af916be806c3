//! PDF: the text layer of every page, through `pdf-extract` (on `lopdf`).
//!
//! 1) The document is loaded; one that needs a password is one malformed record. (An
//!    owner-password-only PDF, readable by anyone, is decrypted and read.)
//! 2) Each page's glyphs are collected with their positions and put in reading order by line:
//!    top to bottom, then left to right, a space where the gap between glyphs is wider than a
//!    tenth of the font size. A page without text (a scanned image) is a malformed record.
//! 3) A first or last line repeated on most pages (page numbers folded) is a running header or
//!    footer and is removed.
//! 4) The pages are joined; a word hyphenated at a line end is joined again, and so is a line
//!    broken between two CJK characters (Chinese has no spaces to break at).
//!
//! The parser is wrapped in `catch_unwind`: a PDF that makes it panic is a malformed record too.

use std::collections::HashMap;
use std::io::BufRead;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use pdf_extract::{MediaBox, OutputDev, OutputError, Transform};

use crate::Result;
use crate::error::IoContext;
use crate::read::{RawDoc, RawItem};
use crate::text::is_cjk;

/// A first or last line counts as running when it is on at least this share of the pages.
const RUNNING_SHARE: f64 = 0.6;
/// ... and on at least this many pages.
const RUNNING_MIN_PAGES: usize = 2;

/// Reads one PDF and emits its document, and a malformed record per page without text.
pub(crate) fn read(
    reader: &mut dyn BufRead,
    path: &Path,
    source: &str,
    emit: &mut dyn FnMut(RawItem) -> Result<()>,
) -> Result<u64> {
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes).at(path)?;
    let pages = catch_unwind(AssertUnwindSafe(|| pages(&bytes))).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(format!("the PDF parser failed: {what}"))
    });
    let pages = match pages {
        Ok(p) => p,
        Err(message) => {
            return emit(RawItem::Malformed {
                id: format!("{source}#0"),
                line: 1,
                message,
            })
            .map(|()| 0);
        }
    };
    let mut kept = Vec::new();
    for (i, page) in pages.into_iter().enumerate() {
        match page {
            Some(lines) => kept.push(lines),
            None => emit(RawItem::Malformed {
                id: format!("{source}#page{}", i + 1),
                line: i as u64 + 1,
                message: format!("page {} has no text layer (a scanned image?)", i + 1),
            })?,
        }
    }
    if kept.is_empty() {
        return Ok(0);
    }
    remove_running_lines(&mut kept);
    let text = kept
        .iter()
        .map(|lines| lines.join("\n"))
        .collect::<Vec<_>>()
        .join("\n\n");
    emit(RawItem::Doc(RawDoc {
        id: source.to_owned(),
        text: join_broken_lines(&text),
        html: false,
        meta: serde_json::Map::new(),
        lossy: false,
    }))?;
    Ok(0)
}

/// 1) and 2): the lines of each page, `None` for a page without text.
fn pages(bytes: &[u8]) -> std::result::Result<Vec<Option<Vec<String>>>, String> {
    let mut doc = pdf_extract::Document::load_mem(bytes).map_err(|e| match e {
        pdf_extract::Error::Decryption(e) => format!("encrypted PDF: {e}"),
        e => format!("not a readable PDF: {e}"),
    })?;
    if doc.is_encrypted() && doc.decrypt("").is_err() {
        return Err("encrypted PDF: a password is needed".into());
    }
    let mut out = Vec::new();
    for &page in doc.get_pages().keys() {
        let mut glyphs = Glyphs::default();
        pdf_extract::output_doc_page(&doc, &mut glyphs, page)
            .map_err(|e| format!("page {page}: {e}"))?;
        let lines = glyphs.lines();
        out.push((!lines.is_empty()).then_some(lines));
    }
    Ok(out)
}

/// A glyph placed on the page: top-down `y`, left `x`, right end, font size, text.
struct Glyph {
    x: f64,
    y: f64,
    end: f64,
    size: f64,
    text: String,
}

/// Collects the glyphs of one page.
#[derive(Default)]
struct Glyphs {
    /// The page's height, to turn PDF's bottom-up coordinates top-down.
    height: f64,
    glyphs: Vec<Glyph>,
}

impl OutputDev for Glyphs {
    fn begin_page(
        &mut self,
        _page: u32,
        media_box: &MediaBox,
        _art_box: Option<(f64, f64, f64, f64)>,
    ) -> std::result::Result<(), OutputError> {
        self.height = media_box.ury - media_box.lly;
        Ok(())
    }

    fn end_page(&mut self) -> std::result::Result<(), OutputError> {
        Ok(())
    }

    fn output_character(
        &mut self,
        trm: &Transform,
        width: f64,
        _spacing: f64,
        font_size: f64,
        text: &str,
    ) -> std::result::Result<(), OutputError> {
        // The font size as drawn: the side of the square with the area of the scaled em box.
        let (vx, vy) = (
            font_size * (trm.m11 + trm.m21),
            font_size * (trm.m12 + trm.m22),
        );
        let size = (vx * vy).abs().sqrt();
        self.glyphs.push(Glyph {
            x: trm.m31,
            y: self.height - trm.m32,
            end: trm.m31 + width * size,
            size,
            text: text.to_owned(),
        });
        Ok(())
    }

    fn begin_word(&mut self) -> std::result::Result<(), OutputError> {
        Ok(())
    }

    fn end_word(&mut self) -> std::result::Result<(), OutputError> {
        Ok(())
    }

    fn end_line(&mut self) -> std::result::Result<(), OutputError> {
        Ok(())
    }
}

impl Glyphs {
    /// The page's lines in reading order; empty when the page has no visible text.
    fn lines(mut self) -> Vec<String> {
        self.glyphs
            .retain(|g| g.x.is_finite() && g.y.is_finite() && g.size.is_finite());
        self.glyphs
            .sort_by(|a, b| a.y.total_cmp(&b.y).then(a.x.total_cmp(&b.x)));
        // Group into lines: a glyph whose baseline is within half its size of the line's.
        let mut lines: Vec<Vec<Glyph>> = Vec::new();
        for g in self.glyphs {
            match lines.last_mut() {
                Some(line) if (g.y - line[0].y).abs() <= 0.5 * g.size.max(line[0].size) => {
                    line.push(g)
                }
                _ => lines.push(vec![g]),
            }
        }
        let mut out = Vec::new();
        for mut line in lines {
            line.sort_by(|a, b| a.x.total_cmp(&b.x));
            let mut text = String::new();
            let mut last_end: Option<f64> = None;
            for g in &line {
                if let Some(end) = last_end
                    && g.x > end + 0.1 * g.size
                    && !text.ends_with(' ')
                {
                    text.push(' ');
                }
                text.push_str(&g.text);
                last_end = Some(g.end);
            }
            let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
            if !text.is_empty() {
                out.push(text);
            }
        }
        out
    }
}

/// 3) Removes first and last lines repeated on most pages (digits folded, so page numbers
///    match).
fn remove_running_lines(pages: &mut [Vec<String>]) {
    // Each run of digits becomes one `#`, so "Page 9" and "Page 10" match.
    let fold = |l: &str| -> String {
        let mut out = String::with_capacity(l.len());
        for c in l.chars() {
            if !c.is_ascii_digit() {
                out.push(c);
            } else if !out.ends_with('#') {
                out.push('#');
            }
        }
        out
    };
    let need = RUNNING_MIN_PAGES.max((pages.len() as f64 * RUNNING_SHARE).ceil() as usize);
    for first in [true, false] {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for p in pages.iter() {
            let line = if first { p.first() } else { p.last() };
            if let Some(l) = line {
                *counts.entry(fold(l)).or_default() += 1;
            }
        }
        for p in pages.iter_mut() {
            let line = if first { p.first() } else { p.last() };
            let running = line.is_some_and(|l| counts.get(&fold(l)).copied().unwrap_or(0) >= need);
            if running {
                if first {
                    p.remove(0);
                } else {
                    p.pop();
                }
            }
        }
    }
}

/// What typesetters put at a line end inside a word: the ASCII hyphen-minus, Unicode's hyphen
/// (weasyprint, LaTeX) and the soft hyphen.
const HYPHENS: &[char] = &['-', '\u{2010}', '\u{ad}'];

/// 4) Joins words hyphenated at a line end: `exam-\nple` becomes `example` (only between
///    letters, and only when the next line starts lower-case, so `e-\nMail` and `2-\n3` stay);
///    and removes a line break between two CJK characters.
fn join_broken_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(p) = rest.find('\n') {
        let line = &rest[..p];
        let next = rest[p + 1..].chars().next();
        let last = line.chars().next_back();
        let stem = line.strip_suffix(HYPHENS);
        let before_hyphen = stem.and_then(|l| l.chars().next_back());
        if let Some(stem) = stem
            && before_hyphen.is_some_and(char::is_alphabetic)
            && next.is_some_and(char::is_lowercase)
        {
            out.push_str(stem);
        } else if last.is_some_and(is_cjk) && next.is_some_and(is_cjk) {
            out.push_str(line);
        } else {
            out.push_str(line);
            out.push('\n');
        }
        rest = &rest[p + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyphens_at_line_ends_are_joined_only_inside_words() {
        assert_eq!(
            join_broken_lines(
                "an exam-\nple of well\u{2010}\nknown e-\nMail 2-\n3\n在电脑上安\n装自由\nok"
            ),
            "an example of wellknown e-\nMail 2-\n3\n在电脑上安装自由\nok"
        );
    }

    #[test]
    fn running_headers_and_page_numbers_are_removed() {
        let page = |n: usize, body: &str| {
            vec![
                "The Debian Handbook".to_owned(),
                body.to_owned(),
                format!("Page {n}"),
            ]
        };
        let mut pages = vec![page(1, "one"), page(2, "two"), page(10, "three")];
        pages.push(vec!["The Debian Handbook".into(), "last".into()]);
        remove_running_lines(&mut pages);
        assert_eq!(pages, [["one"], ["two"], ["three"], ["last"]]);
    }

    #[test]
    fn garbage_is_one_malformed_record() {
        let mut items = Vec::new();
        read(
            &mut &b"%PDF-1.4 garbage"[..],
            Path::new("x.pdf"),
            "x",
            &mut |i| {
                items.push(i);
                Ok(())
            },
        )
        .unwrap();
        assert!(
            matches!(&items[..], [RawItem::Malformed { .. }]),
            "{items:?}"
        );
    }
}

//! E-books made by tools nobody here wrote: pandoc's EPUBs and weasyprint's PDFs of the Debian
//! Administrator's Handbook (testdata/corpus/books/make_books.sh, make_pdfs.sh). The text duet
//! reads from an e-book must match the text it extracts from the chapter's HTML.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;
use duet_corpus::config::{BookUnit, InputConfig};
use duet_corpus::read::{InputFile, RawDoc, RawItem, html, read_file};

fn books() -> PathBuf {
    common::root().join("testdata/corpus/books")
}

fn read(path: &Path, unit: BookUnit) -> Result<(Vec<RawDoc>, Vec<String>)> {
    let (docs, bad, format) = read_any(path, unit)?;
    assert_eq!(format, "epub");
    Ok((docs, bad))
}

fn read_any(path: &Path, unit: BookUnit) -> Result<(Vec<RawDoc>, Vec<String>, String)> {
    let file = InputFile {
        path: path.to_path_buf(),
        source: "book".into(),
        index: None,
    };
    let cfg = InputConfig {
        book_unit: unit,
        ..Default::default()
    };
    let (mut docs, mut bad) = (Vec::new(), Vec::new());
    let summary = read_file(&file, &cfg, &mut |item| {
        match item {
            RawItem::Doc(d) => docs.push(d),
            RawItem::Malformed { message, .. } => bad.push(message),
        }
        Ok(())
    })?;
    Ok((docs, bad, summary.format))
}

/// The whole-book text of an EPUB against duet's extraction of the HTML it was made from.
fn book_f1(epub: &Path, html_page: &Path) -> Result<f64> {
    let (docs, bad) = read(epub, BookUnit::Book)?;
    assert!(bad.is_empty(), "{bad:?}");
    let [book] = &docs[..] else {
        anyhow::bail!(
            "{}: expected one document, found {}",
            epub.display(),
            docs.len()
        )
    };
    let want = html::extract(&std::fs::read_to_string(html_page)?).text;
    Ok(common::token_f1(&book.text, &want))
}

/// Catches: chapters out of spine order or missing, XHTML not run through the extractor
/// (markup left in), Chinese mangled; EPUB 3 (English) and EPUB 2 (Chinese) both.
#[test]
fn epub_text_matches_the_chapter_html() -> Result<()> {
    for lang in ["en", "zh"] {
        let epub = books().join(format!("role-of-distributions.{lang}.epub"));
        let page = books().join(format!("role-of-distributions.{lang}.html"));
        let score = book_f1(&epub, &page)?;
        println!("{lang}: token F1 {score:.3}");
        assert!(score >= 0.95, "{lang}: token F1 {score:.3} < 0.95");
    }
    Ok(())
}

/// Catches: title and authors not taken from the OPF, chapter mode not cutting per spine item,
/// a page's <title> overwriting the book's.
#[test]
fn metadata_and_chapter_mode() -> Result<()> {
    let (docs, _) = read(
        &books().join("role-of-distributions.en.epub"),
        BookUnit::Chapter,
    )?;
    // pandoc's spine: a title page, then the chapter.
    assert_eq!(docs.len(), 2);
    let chapter = &docs[1];
    assert!(chapter.html);
    assert_eq!(chapter.meta["title"], "1.5. The Role of Distributions");
    assert_eq!(chapter.meta["author"], "Raphaël Hertzog; Roland Mas");
    assert_eq!(chapter.meta["chapter"], "EPUB/text/ch001.xhtml");
    let text = html::extract(&chapter.text).text;
    assert!(
        text.contains("A GNU/Linux distribution has two main objectives"),
        "{text}"
    );
    let (docs, _) = read(
        &books().join("role-of-distributions.zh.epub"),
        BookUnit::Book,
    )?;
    assert_eq!(docs[0].meta["title"], "1.5. 发行版的角色");
    assert_eq!(docs[0].meta["book_language"], "zh-CN");
    Ok(())
}

/// Catches: a missing spine item failing the whole book, or being passed over silently.
#[test]
fn missing_spine_items_are_dropped_and_the_rest_read() -> Result<()> {
    let (docs, bad) = read(&books().join("missing-spine-item.epub"), BookUnit::Book)?;
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert!(
        bad[0].contains("EPUB/text/gone.xhtml cannot be read"),
        "{bad:?}"
    );
    assert!(
        bad[1].contains("\"nowhere\" is not in the manifest"),
        "{bad:?}"
    );
    assert!(docs[0].text.contains("two main objectives"));
    Ok(())
}

/// Catches: the same, on every handbook section pandoc can build here (skipped without
/// Debian's pandoc and debian-handbook packages).
#[test]
fn more_handbook_sections_when_pandoc_is_installed() -> Result<()> {
    let src = Path::new("/usr/share/doc/debian-handbook/html");
    let pandoc = Command::new("pandoc").arg("--version").output();
    if !src.is_dir() || pandoc.is_err() {
        println!("skipped: needs apt-get install pandoc debian-handbook");
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    for (lang, folder) in [("en", "en-US"), ("zh", "zh-CN")] {
        for page in [
            "sect.future-of-debian.html",
            "sect.apt-file.html",
            "preface.html",
        ] {
            let html_page = src.join(folder).join(page);
            let epub = dir.path().join(format!("{lang}-{page}.epub"));
            let status = Command::new("pandoc")
                .args(["-f", "html", "-t", "epub3", "--quiet", "-o"])
                .arg(&epub)
                .arg(&html_page)
                .status()?;
            anyhow::ensure!(status.success(), "pandoc failed on {}", html_page.display());
            let score = book_f1(&epub, &html_page)?;
            println!("{lang} {page}: token F1 {score:.3}");
            assert!(score >= 0.95, "{lang} {page}: token F1 {score:.3} < 0.95");
        }
    }
    Ok(())
}

/// Catches: pages out of order or lost, the running header and page numbers left in, words
/// hyphenated at line ends left split, CJK glyphs mangled or spaced apart.
#[test]
fn pdf_text_matches_the_chapter_html() -> Result<()> {
    for lang in ["en", "zh"] {
        let pdf = books().join(format!("role-of-distributions.{lang}.pdf"));
        let page = books().join(format!("role-of-distributions.{lang}.html"));
        let (docs, bad, format) = read_any(&pdf, BookUnit::Book)?;
        assert_eq!(format, "pdf");
        assert!(bad.is_empty(), "{bad:?}");
        let text = &docs[0].text;
        assert!(!text.contains("Page 2"), "{text}");
        // weasyprint breaks words with U+2010 HYPHEN.
        let split = text
            .split(['-', '\u{2010}'])
            .zip(text.split(['-', '\u{2010}']).skip(1))
            .filter(|(a, b)| {
                a.ends_with(char::is_alphabetic)
                    && b.starts_with('\n')
                    && b[1..].starts_with(char::is_lowercase)
            })
            .count();
        assert_eq!(split, 0, "{text}");
        let want = html::extract(&std::fs::read_to_string(&page)?).text;
        let score = common::token_f1(text, &want);
        println!("{lang} pdf: token F1 {score:.3}");
        assert!(score >= 0.95, "{lang}: token F1 {score:.3} < 0.95\n{text}");
    }
    Ok(())
}

/// Catches: an image-only page failing the document or passing silently; an encrypted PDF
/// read as garbage or failing the run.
#[test]
fn scanned_pages_and_encrypted_pdfs_are_dropped_with_the_reason() -> Result<()> {
    let (docs, bad, _) = read_any(&books().join("scanned.pdf"), BookUnit::Book)?;
    assert_eq!(bad, ["page 2 has no text layer (a scanned image?)"]);
    let text = &docs[0].text;
    assert!(text.contains("The first page has a text layer"), "{text}");
    assert!(
        text.contains("The third page has a text layer again"),
        "{text}"
    );
    let (docs, bad, _) = read_any(&books().join("encrypted.pdf"), BookUnit::Book)?;
    assert!(docs.is_empty());
    assert_eq!(bad.len(), 1);
    assert!(bad[0].starts_with("encrypted PDF"), "{bad:?}");
    Ok(())
}

/// Catches: a panic, a hang or a hard error on a damaged e-book (a download cut short). Every
/// prefix of each fixture reads to malformed records or documents, never to an error.
#[test]
fn every_prefix_of_an_ebook_reads_without_error() -> Result<()> {
    let dir = tempfile::tempdir()?;
    for (name, step) in [
        ("role-of-distributions.en.epub", 97),
        ("role-of-distributions.en.pdf", 499),
    ] {
        let bytes = std::fs::read(books().join(name))?;
        let cut = dir.path().join(name);
        for end in (0..bytes.len()).step_by(step) {
            std::fs::write(&cut, &bytes[..end])?;
            read_any(&cut, BookUnit::Book)?;
        }
    }
    Ok(())
}

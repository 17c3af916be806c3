//! EPUB 2 and 3 e-books: a ZIP archive whose `META-INF/container.xml` names the package
//! document (OPF), whose manifest lists the files and whose spine gives the reading order.
//!
//! 1) The archive is opened and `container.xml` read for the package document's path.
//! 2) The package document gives the title, the authors and the language (Dublin Core), the
//!    manifest (id → file and media type) and the spine (the reading order).
//! 3) Each spine item that is XHTML or HTML is read in order: one HTML document per chapter, or
//!    per book the chapters' extracted text joined (`input.book_unit`). A spine item that is
//!    not in the manifest or not in the archive is emitted as malformed and the rest is read; a
//!    book whose archive or package document cannot be read is one malformed record.

use std::io::{BufRead, Cursor, Read};
use std::path::Path;

use crate::Result;
use crate::config::{BookUnit, InputConfig};
use crate::error::IoContext;
use crate::read::{RawDoc, RawItem, decode, html};

/// The Dublin Core namespace of the package document's metadata.
const DC: &str = "http://purl.org/dc/elements/1.1/";

/// Reads one EPUB and emits its documents. Returns how many chapters were cut at
/// `max_doc_bytes`.
pub(crate) fn read(
    reader: &mut dyn BufRead,
    path: &Path,
    source: &str,
    cfg: &InputConfig,
    emit: &mut dyn FnMut(RawItem) -> Result<()>,
) -> Result<u64> {
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes).at(path)?;
    let book = match Book::open(bytes) {
        Ok(book) => book,
        Err(message) => {
            return emit(RawItem::Malformed {
                id: format!("{source}#0"),
                line: 1,
                message,
            })
            .map(|()| 0);
        }
    };
    book.emit(source, cfg, emit)
}

/// An opened book: its archive and what its package document says.
struct Book {
    zip: zip::ZipArchive<Cursor<Vec<u8>>>,
    title: Option<String>,
    authors: Vec<String>,
    language: Option<String>,
    /// The spine: archive paths of the items in reading order, or why one cannot be found.
    spine: Vec<std::result::Result<Item, String>>,
}

/// A spine item found in the manifest.
struct Item {
    /// Its path inside the archive.
    path: String,
    /// Whether its media type is (X)HTML.
    html: bool,
}

impl Book {
    /// 1) and 2): the archive, the container and the package document.
    fn open(bytes: Vec<u8>) -> std::result::Result<Self, String> {
        let mut zip = zip::ZipArchive::new(Cursor::new(bytes))
            .map_err(|e| format!("not an EPUB: the ZIP archive cannot be read ({e})"))?;
        let container = entry_text(&mut zip, "META-INF/container.xml", usize::MAX)?.0;
        let container = roxmltree::Document::parse(&container)
            .map_err(|e| format!("META-INF/container.xml: {e}"))?;
        let opf_path = container
            .descendants()
            .find(|n| n.has_tag_name("rootfile"))
            .and_then(|n| n.attribute("full-path"))
            .ok_or("META-INF/container.xml names no rootfile full-path")?
            .to_owned();
        let opf_text = entry_text(&mut zip, &opf_path, usize::MAX)?.0;
        let opf = roxmltree::Document::parse(&opf_text).map_err(|e| format!("{opf_path}: {e}"))?;
        let dc = |name: &str| -> Vec<String> {
            opf.descendants()
                .filter(|n| n.has_tag_name((DC, name)))
                .filter_map(|n| n.text())
                .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
                .filter(|t| !t.is_empty())
                .collect()
        };
        let title = dc("title").into_iter().next();
        let authors = dc("creator");
        let language = dc("language").into_iter().next();
        let base = opf_path.rsplit_once('/').map_or("", |(dir, _)| dir);
        let manifest: Vec<(&str, &str, &str)> = opf
            .descendants()
            .filter(|n| n.tag_name().name() == "item")
            .filter_map(|n| {
                Some((
                    n.attribute("id")?,
                    n.attribute("href")?,
                    n.attribute("media-type").unwrap_or_default(),
                ))
            })
            .collect();
        let spine = opf
            .descendants()
            .filter(|n| n.tag_name().name() == "itemref")
            .map(|n| {
                let idref = n.attribute("idref").unwrap_or_default();
                let (_, href, media) = manifest
                    .iter()
                    .find(|(id, _, _)| *id == idref)
                    .ok_or_else(|| format!("spine item {idref:?} is not in the manifest"))?;
                Ok(Item {
                    path: join(base, &percent_decode(href)),
                    html: matches!(*media, "application/xhtml+xml" | "text/html"),
                })
            })
            .collect();
        Ok(Self {
            zip,
            title,
            authors,
            language,
            spine,
        })
    }

    /// 3) The chapters in spine order.
    fn emit(
        mut self,
        source: &str,
        cfg: &InputConfig,
        emit: &mut dyn FnMut(RawItem) -> Result<()>,
    ) -> Result<u64> {
        let mut meta = serde_json::Map::new();
        if let Some(t) = &self.title {
            meta.insert("title".into(), t.clone().into());
        }
        if !self.authors.is_empty() {
            meta.insert("author".into(), self.authors.join("; ").into());
        }
        if let Some(l) = &self.language {
            meta.insert("book_language".into(), l.clone().into());
        }
        let (mut truncated, mut lossy) = (0, false);
        let mut book_text = String::new();
        let spine = std::mem::take(&mut self.spine);
        for (i, item) in spine.into_iter().enumerate() {
            let id = format!("{source}#{i}");
            let chapter = item.and_then(|item| {
                let (text, cut, bad) = entry_text(&mut self.zip, &item.path, cfg.max_doc_bytes)
                    .map_err(|e| format!("spine item {e}"))?;
                Ok((item, text, cut, bad))
            });
            let (item, text, cut, bad) = match chapter {
                Ok(c) => c,
                Err(message) => {
                    emit(RawItem::Malformed {
                        id,
                        line: i as u64 + 1,
                        message,
                    })?;
                    continue;
                }
            };
            if !item.html {
                continue;
            }
            truncated += u64::from(cut);
            match cfg.book_unit {
                BookUnit::Chapter => {
                    let mut meta = meta.clone();
                    meta.insert("chapter".into(), item.path.into());
                    emit(RawItem::Doc(RawDoc {
                        id,
                        text,
                        html: true,
                        meta,
                        lossy: bad,
                    }))?;
                }
                BookUnit::Book => {
                    lossy |= bad;
                    let extracted = html::extract(&text).text;
                    if !extracted.trim().is_empty() {
                        if !book_text.is_empty() {
                            book_text.push_str("\n\n");
                        }
                        book_text.push_str(&extracted);
                    }
                }
            }
        }
        if cfg.book_unit == BookUnit::Book {
            emit(RawItem::Doc(RawDoc {
                id: source.to_owned(),
                text: book_text,
                html: false,
                meta,
                lossy,
            }))?;
        }
        Ok(truncated)
    }
}

/// Reads an archive entry as text (at most `max` bytes): the text, whether it was cut, and
/// whether it was decoded lossily.
fn entry_text(
    zip: &mut zip::ZipArchive<Cursor<Vec<u8>>>,
    name: &str,
    max: usize,
) -> std::result::Result<(String, bool, bool), String> {
    let mut file = zip
        .by_name(name)
        .map_err(|e| format!("{name} cannot be read from the archive ({e})"))?;
    let mut bytes = Vec::new();
    (&mut file)
        .take(max as u64)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{name} does not decompress ({e})"))?;
    let cut = bytes.len() == max && file.read(&mut [0u8]).is_ok_and(|n| n > 0);
    let (text, lossy) = decode(bytes);
    Ok((text, cut, lossy))
}

/// Joins an href relative to the package document's folder, resolving `.` and `..`.
fn join(base: &str, href: &str) -> String {
    let href = href.split('#').next().unwrap_or_default();
    let mut parts: Vec<&str> = base.split('/').filter(|p| !p.is_empty()).collect();
    for p in href.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            _ => parts.push(p),
        }
    }
    parts.join("/")
}

/// Undoes `%XX` escapes in an href.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hrefs_resolve_against_the_package_folder() {
        assert_eq!(
            join("OEBPS", "Text/ch%201.xhtml#top"),
            "OEBPS/Text/ch%201.xhtml"
        );
        assert_eq!(percent_decode("Text/ch%201.xhtml"), "Text/ch 1.xhtml");
        assert_eq!(join("OEBPS/pkg", "../Text/a.xhtml"), "OEBPS/Text/a.xhtml");
        assert_eq!(join("", "a.xhtml"), "a.xhtml");
    }

    #[test]
    fn garbage_is_one_malformed_record() {
        let cfg = InputConfig::default();
        let mut items = Vec::new();
        read(
            &mut &b"PK\x03\x04 not really"[..],
            Path::new("x.epub"),
            "x",
            &cfg,
            &mut |i| {
                items.push(i);
                Ok(())
            },
        )
        .unwrap();
        assert!(
            matches!(&items[..], [RawItem::Malformed { message, .. }] if message.starts_with("not an EPUB"))
        );
    }
}

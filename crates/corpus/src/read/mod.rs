//! Readers: finding input files, decompressing them, and cutting them into raw documents.
//!
//! Every format streams: JSONL, CSV/TSV and fortune files are read line by line, so a file's
//! size does not bound memory; whole-file formats (text, Markdown, HTML) are capped at
//! `input.max_doc_bytes` per document.

mod epub;
pub mod html;
mod pdf;
mod warc;

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{Format, InputConfig, TextUnit};
use crate::error::IoContext;
use crate::{Error, Result};

/// File extensions that are never text.
const BINARY_EXTENSIONS: &[&str] = &[
    "png",
    "jpg",
    "jpeg",
    "gif",
    "webp",
    "ico",
    "bmp",
    "tiff",
    "zip",
    "tar",
    "7z",
    "rar",
    "xz",
    "bz2",
    "exe",
    "dll",
    "so",
    "o",
    "a",
    "class",
    "jar",
    "pyc",
    "woff",
    "woff2",
    "ttf",
    "otf",
    "eot",
    "mp3",
    "mp4",
    "wav",
    "ogg",
    "avi",
    "mov",
    "sqlite",
    "db",
    "bin",
    "safetensors",
];

/// Extensions of web assets that are text but never prose.
const ASSET_EXTENSIONS: &[&str] = &["js", "css", "map", "svg", "xml", "inv"];

/// One input file to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    /// Where the file is.
    pub path: PathBuf,
    /// Its name relative to the input it was found under, prefixed by that input's name.
    pub source: String,
    /// For dictd dictionaries: the `.index` file beside the `.dict[.dz]`.
    pub index: Option<PathBuf>,
}

/// A file found while walking the inputs that will not be read, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedFile {
    /// The file's source name.
    pub source: String,
    /// Why it was skipped.
    pub reason: String,
}

/// What reading one file produced, for the manifest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InputSummary {
    /// Source name.
    pub source: String,
    /// Size on disk in bytes.
    pub bytes: u64,
    /// SHA-256 of the bytes on disk, hex.
    pub sha256: String,
    /// The format it was read as.
    pub format: String,
    /// Documents read (including malformed records).
    pub docs: u64,
    /// Records that could not be parsed.
    pub malformed: u64,
    /// Documents whose bytes were not valid UTF-8 (decoded with replacement characters).
    pub lossy_utf8: u64,
    /// Documents cut at `input.max_doc_bytes`.
    pub truncated: u64,
    /// Set when the file was skipped after opening (binary content).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// A document as read, before cleaning.
#[derive(Debug, Clone, PartialEq)]
pub struct RawDoc {
    /// Stable id.
    pub id: String,
    /// Raw text (HTML markup when `html` is set).
    pub text: String,
    /// Whether `text` is HTML to be extracted.
    pub html: bool,
    /// Fields of the record other than text and id.
    pub meta: serde_json::Map<String, serde_json::Value>,
    /// Whether the bytes were not valid UTF-8.
    pub lossy: bool,
}

/// What a reader emits: a document, or a record it could not parse.
#[derive(Debug, Clone, PartialEq)]
pub enum RawItem {
    /// A readable document.
    Doc(RawDoc),
    /// A record that could not be parsed; it is counted as a dropped document.
    Malformed {
        /// Id the record would have had.
        id: String,
        /// 1-based line (or record) number.
        line: u64,
        /// What was expected and what was found.
        message: String,
    },
}

/// Finds the files under `inputs` (directories are walked recursively in sorted order) and
/// pairs dictd `.index` files with their dictionaries. Returns the files to read and the files
/// skipped by name.
pub fn discover(
    inputs: &[PathBuf],
    cfg: &InputConfig,
) -> Result<(Vec<InputFile>, Vec<SkippedFile>)> {
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    for input in inputs {
        let meta = std::fs::metadata(input).at(input)?;
        let root_name = input
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| input.display().to_string());
        if meta.is_file() {
            files.push((input.clone(), root_name));
            continue;
        }
        let mut found = Vec::new();
        for entry in walkdir::WalkDir::new(input)
            .sort_by_file_name()
            .follow_links(true)
        {
            let entry = entry.map_err(|e| Error::Io {
                path: e.path().map_or_else(|| input.clone(), Path::to_path_buf),
                source: e
                    .into_io_error()
                    .unwrap_or_else(|| std::io::Error::other("walk failed")),
            })?;
            if !entry.file_type().is_file() {
                continue;
            }
            let rel = entry.path().strip_prefix(input).unwrap_or(entry.path());
            let rel = rel.to_string_lossy().replace('\\', "/");
            // Hidden files and folders (.git, .complete markers) are not inputs.
            if rel.split('/').any(|p| p.starts_with('.')) {
                continue;
            }
            found.push((entry.into_path(), format!("{root_name}/{rel}")));
        }
        files.extend(found);
    }
    let mut out = Vec::new();
    let paths: std::collections::HashSet<PathBuf> = files.iter().map(|(p, _)| p.clone()).collect();
    for (path, source) in files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        if let Some(suffix) = cfg
            .skip_suffixes
            .iter()
            .find(|s| name.ends_with(s.as_str()))
        {
            skipped.push(SkippedFile {
                source,
                reason: format!("name ends with {suffix}"),
            });
            continue;
        }
        if cfg.format == Format::Auto || cfg.format == Format::Dictd {
            if name.ends_with(".index") {
                let stem = path.with_extension("");
                let paired = ["dict", "dict.dz"]
                    .iter()
                    .any(|ext| paths.contains(&stem.with_extension(ext)));
                if paired {
                    continue; // read through its dictionary
                }
            }
            if name.ends_with(".dict.dz") && paths.contains(&path.with_extension("")) {
                skipped.push(SkippedFile {
                    source,
                    reason: "compressed copy of a .dict beside it".into(),
                });
                continue;
            }
            if name.ends_with(".dict") || name.ends_with(".dict.dz") {
                let base = name.trim_end_matches(".dz").trim_end_matches(".dict");
                let index = path.with_file_name(format!("{base}.index"));
                if index.is_file() {
                    out.push(InputFile {
                        path,
                        source,
                        index: Some(index),
                    });
                    continue;
                }
            }
        }
        let ext = extension(&name);
        if BINARY_EXTENSIONS.contains(&ext) {
            skipped.push(SkippedFile {
                source,
                reason: format!("binary file type .{ext}"),
            });
            continue;
        }
        if cfg.format == Format::Auto && ASSET_EXTENSIONS.contains(&ext) {
            skipped.push(SkippedFile {
                source,
                reason: format!("web asset .{ext}"),
            });
            continue;
        }
        out.push(InputFile {
            path,
            source,
            index: None,
        });
    }
    Ok((out, skipped))
}

/// The extension that decides the format: the one before `.gz`/`.zst`, lower-cased.
fn extension(name: &str) -> &str {
    let name = name
        .strip_suffix(".gz")
        .or_else(|| name.strip_suffix(".zst"))
        .or_else(|| name.strip_suffix(".dz"))
        .unwrap_or(name);
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && !ext.contains('/') => ext,
        _ => "",
    }
}

/// A reader that hashes every byte that passes through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Opens `path`, hashing the bytes on disk; with `decompress`, `.gz`, `.dz` and `.zst` are
/// decompressed (web archives decompress themselves, gzip member by gzip member).
fn open(path: &Path, decompress: bool) -> Result<(Box<dyn BufRead>, SharedHash)> {
    let file = File::open(path).at(path)?;
    let hashing = std::rc::Rc::new(std::cell::RefCell::new(Hashing {
        inner: file,
        hasher: Sha256::new(),
        bytes: 0,
    }));
    let shared = SharedRead(hashing.clone());
    let name = path.to_string_lossy().to_lowercase();
    let reader: Box<dyn BufRead> = if !decompress {
        Box::new(BufReader::with_capacity(1 << 16, shared))
    } else if name.ends_with(".gz") || name.ends_with(".dz") {
        Box::new(BufReader::with_capacity(
            1 << 16,
            flate2::read::MultiGzDecoder::new(shared),
        ))
    } else if name.ends_with(".zst") {
        let dec = zstd::stream::read::Decoder::new(shared).at(path)?;
        Box::new(BufReader::with_capacity(1 << 16, dec))
    } else {
        Box::new(BufReader::with_capacity(1 << 16, shared))
    };
    Ok((reader, hashing))
}

/// The hashing reader under a file's decoders, shared so the hash can be finished.
type SharedHash = std::rc::Rc<std::cell::RefCell<Hashing<File>>>;

/// A `Read` over a shared hashing reader, so the hash can be finished after decoding.
struct SharedRead(SharedHash);

impl Read for SharedRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().read(buf)
    }
}

/// Decodes bytes as UTF-8, replacing invalid sequences; says whether any were replaced.
fn decode(bytes: Vec<u8>) -> (String, bool) {
    match String::from_utf8(bytes) {
        Ok(s) => (s, false),
        Err(e) => (String::from_utf8_lossy(e.as_bytes()).into_owned(), true),
    }
}

/// Whether the first bytes of a stream look binary (NUL bytes, or mostly control bytes).
fn looks_binary(head: &[u8]) -> bool {
    if head.contains(&0) {
        return true;
    }
    let control = head
        .iter()
        .filter(|&&b| b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t' | 0x0c | 0x1b))
        .count();
    !head.is_empty() && control * 10 > head.len()
}

/// Reads one file and emits its documents in order. I/O errors while reading are returned;
/// records that do not parse are emitted as [`RawItem::Malformed`].
pub fn read_file(
    file: &InputFile,
    cfg: &InputConfig,
    emit: &mut dyn FnMut(RawItem) -> Result<()>,
) -> Result<InputSummary> {
    let path = &file.path;
    let lower = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let archive = match cfg.format {
        Format::Warc | Format::Wet | Format::Epub | Format::Pdf => true,
        Format::Auto => {
            file.index.is_none() && matches!(extension(&lower), "warc" | "wet" | "epub" | "pdf")
        }
        _ => false,
    };
    let (mut reader, hashing) = open(path, !archive)?;
    let mut summary = InputSummary {
        source: file.source.clone(),
        ..Default::default()
    };
    let head = reader.fill_buf().at(path)?.to_vec();
    let format = if file.index.is_some() {
        Format::Dictd
    } else if cfg.format != Format::Auto {
        cfg.format
    } else {
        sniff(extension(&lower), &head)
    };
    summary.format = format_name(format).into();
    let binary_ok = matches!(
        format,
        Format::Dictd | Format::Warc | Format::Wet | Format::Epub | Format::Pdf
    );
    if !binary_ok && looks_binary(&head[..head.len().min(8192)]) {
        summary.skipped = Some("binary content".into());
    } else {
        let mut counting = |item: RawItem| {
            summary.docs += 1;
            match &item {
                RawItem::Doc(d) if d.lossy => summary.lossy_utf8 += 1,
                RawItem::Malformed { .. } => summary.malformed += 1,
                RawItem::Doc(_) => {}
            }
            emit(item)
        };
        let src = &file.source;
        summary.truncated = match format {
            Format::Jsonl => read_jsonl(reader.as_mut(), path, src, cfg, &mut counting)?,
            Format::Csv | Format::Tsv => read_csv(
                reader.as_mut(),
                path,
                src,
                cfg,
                format == Format::Tsv,
                &mut counting,
            )?,
            Format::Fortune => read_fortune(reader.as_mut(), path, src, &mut counting)?,
            Format::Dictd => {
                let index = file.index.as_deref().unwrap_or(path);
                read_dictd(reader.as_mut(), path, index, src, &mut counting)?
            }
            Format::Pdf => pdf::read(reader.as_mut(), path, src, &mut counting)?,
            Format::Epub => epub::read(reader.as_mut(), path, src, cfg, &mut counting)?,
            Format::Warc | Format::Wet => {
                warc::read(reader.as_mut(), path, src, cfg.max_doc_bytes, &mut counting)?
            }
            Format::Text | Format::Markdown | Format::Html | Format::Auto => {
                read_whole(reader.as_mut(), path, src, cfg, format, &mut counting)?
            }
        };
    }
    // Finish the hash over the whole file, whatever the reader consumed.
    std::io::copy(&mut SharedRead(hashing.clone()), &mut std::io::sink()).at(path)?;
    drop(reader);
    let h = hashing.borrow();
    summary.bytes = h.bytes;
    summary.sha256 = hex(&h.hasher.clone().finalize());
    Ok(summary)
}

/// Lower-case hex of bytes.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The name a format has in configs and reports.
pub fn format_name(f: Format) -> &'static str {
    match f {
        Format::Auto => "auto",
        Format::Text => "text",
        Format::Markdown => "markdown",
        Format::Html => "html",
        Format::Jsonl => "jsonl",
        Format::Csv => "csv",
        Format::Tsv => "tsv",
        Format::Fortune => "fortune",
        Format::Dictd => "dictd",
        Format::Warc => "warc",
        Format::Wet => "wet",
        Format::Epub => "epub",
        Format::Pdf => "pdf",
    }
}

/// Picks a format from the extension, or from the first bytes when the extension says nothing.
fn sniff(ext: &str, head: &[u8]) -> Format {
    match ext {
        "html" | "htm" | "xhtml" => Format::Html,
        "md" | "markdown" => Format::Markdown,
        "jsonl" | "ndjson" | "json" => Format::Jsonl,
        "csv" => {
            let first = head.split(|&b| b == b'\n').next().unwrap_or_default();
            let tabs = first.iter().filter(|&&b| b == b'\t').count();
            let commas = first.iter().filter(|&&b| b == b',').count();
            if tabs > commas {
                Format::Tsv
            } else {
                Format::Csv
            }
        }
        "tsv" | "tab" => Format::Tsv,
        "txt" | "text" => Format::Text,
        "warc" => Format::Warc,
        "wet" => Format::Wet,
        "epub" => Format::Epub,
        "pdf" => Format::Pdf,
        _ if head.starts_with(b"WARC/1.") => Format::Warc,
        _ => {
            let start = String::from_utf8_lossy(&head[..head.len().min(1024)]).to_lowercase();
            let start = start.trim_start();
            if start.starts_with("<!doctype html") || start.starts_with("<html") {
                Format::Html
            } else if head
                .split(|&b| b == b'\n')
                .any(|l| l == b"%" || l == b"%\r")
            {
                Format::Fortune
            } else {
                Format::Text
            }
        }
    }
}

/// Text, Markdown and HTML: one document per file (or per paragraph/line for text).
fn read_whole(
    reader: &mut dyn BufRead,
    path: &Path,
    source: &str,
    cfg: &InputConfig,
    format: Format,
    emit: &mut dyn FnMut(RawItem) -> Result<()>,
) -> Result<u64> {
    let mut bytes = Vec::new();
    reader
        .take(cfg.max_doc_bytes as u64)
        .read_to_end(&mut bytes)
        .at(path)?;
    let truncated =
        u64::from(bytes.len() == cfg.max_doc_bytes && !reader.fill_buf().at(path)?.is_empty());
    if truncated == 1 {
        // Back off to a character boundary so the cut does not count as invalid UTF-8.
        while let Some(&b) = bytes.last() {
            if b & 0xc0 == 0x80 {
                bytes.pop();
            } else {
                if b >= 0xc0 {
                    bytes.pop();
                }
                break;
            }
        }
    }
    let (text, lossy) = decode(bytes);
    let mut doc = |id: String, text: String| {
        emit(RawItem::Doc(RawDoc {
            id,
            text,
            html: format == Format::Html,
            meta: serde_json::Map::new(),
            lossy,
        }))
    };
    match (format, cfg.text_unit) {
        (Format::Text, TextUnit::Paragraph) => {
            for (i, para) in split_paragraphs(&text).into_iter().enumerate() {
                doc(format!("{source}#{i}"), para.to_owned())?;
            }
        }
        (Format::Text, TextUnit::Line) => {
            for (i, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
                doc(format!("{source}#{i}"), line.to_owned())?;
            }
        }
        (Format::Markdown, _) => doc(source.to_owned(), strip_front_matter(&text).to_owned())?,
        _ => doc(source.to_owned(), text)?,
    }
    Ok(truncated)
}

/// Paragraphs: runs of non-blank lines.
fn split_paragraphs(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut end = 0;
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        if line.trim().is_empty() {
            if let Some(s) = start.take() {
                out.push(&text[s..end]);
            }
        } else {
            start.get_or_insert(pos);
            end = pos + line.trim_end().len();
        }
        pos += line.len();
    }
    if let Some(s) = start {
        out.push(&text[s..end]);
    }
    out
}

/// Removes a YAML front-matter block (`---` ... `---`) at the top of a Markdown file.
fn strip_front_matter(text: &str) -> &str {
    let Some(rest) = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))
    else {
        return text;
    };
    let mut pos = 0;
    for line in rest.split_inclusive('\n') {
        pos += line.len();
        if line.trim_end() == "---" {
            return &rest[pos..];
        }
    }
    text
}

/// Reads lines as raw bytes, so invalid UTF-8 is counted rather than fatal.
fn lines(
    reader: &mut dyn BufRead,
    path: &Path,
    mut f: impl FnMut(u64, Vec<u8>) -> Result<()>,
) -> Result<()> {
    let mut n = 0u64;
    loop {
        let mut buf = Vec::new();
        if reader.read_until(b'\n', &mut buf).at(path)? == 0 {
            return Ok(());
        }
        n += 1;
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        f(n, buf)?;
    }
}

/// JSONL: one object per line; the text and id fields are configurable.
fn read_jsonl(
    reader: &mut dyn BufRead,
    path: &Path,
    source: &str,
    cfg: &InputConfig,
    emit: &mut dyn FnMut(RawItem) -> Result<()>,
) -> Result<u64> {
    lines(reader, path, |n, bytes| {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let (line, lossy) = decode(bytes);
        let fallback_id = format!("{source}#{}", n - 1);
        let value: serde_json::Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                return emit(RawItem::Malformed {
                    id: fallback_id,
                    line: n,
                    message: format!("invalid JSON: {e}"),
                });
            }
        };
        let serde_json::Value::Object(mut obj) = value else {
            return emit(RawItem::Malformed {
                id: fallback_id,
                line: n,
                message: format!("expected a JSON object, found {}", json_kind(&value)),
            });
        };
        let text = match obj.remove(&cfg.text_field) {
            Some(serde_json::Value::String(s)) => s,
            Some(other) => {
                return emit(RawItem::Malformed {
                    id: fallback_id,
                    line: n,
                    message: format!(
                        "field {:?} must be a string, found {}",
                        cfg.text_field,
                        json_kind(&other)
                    ),
                });
            }
            None => {
                return emit(RawItem::Malformed {
                    id: fallback_id,
                    line: n,
                    message: format!("missing text field {:?}", cfg.text_field),
                });
            }
        };
        let id = match obj.remove(&cfg.id_field) {
            Some(serde_json::Value::String(s)) => s,
            Some(serde_json::Value::Number(x)) => x.to_string(),
            _ => fallback_id,
        };
        emit(RawItem::Doc(RawDoc {
            id,
            text,
            html: false,
            meta: obj,
            lossy,
        }))
    })?;
    Ok(0)
}

/// The JSON type of a value, for error messages.
fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// CSV/TSV: the text column by name (with a header) or index; other columns go to `meta`.
fn read_csv(
    reader: &mut dyn BufRead,
    path: &Path,
    source: &str,
    cfg: &InputConfig,
    tab: bool,
    emit: &mut dyn FnMut(RawItem) -> Result<()>,
) -> Result<u64> {
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(if tab { b'\t' } else { b',' })
        .quoting(!tab)
        .has_headers(cfg.has_header)
        .flexible(true)
        .from_reader(reader);
    let headers: Vec<String> = if cfg.has_header {
        rdr.byte_headers()
            .map_err(|e| Error::Parse {
                path: path.to_path_buf(),
                line: 1,
                message: e.to_string(),
            })?
            .iter()
            .map(|h| String::from_utf8_lossy(h).trim().to_owned())
            .collect()
    } else {
        Vec::new()
    };
    let column = match headers.iter().position(|h| *h == cfg.text_column) {
        Some(i) => i,
        None => cfg.text_column.parse::<usize>().map_err(|_| Error::Parse {
            path: path.to_path_buf(),
            line: 1,
            message: format!(
                "no column {:?}; the header has {:?}",
                cfg.text_column, headers
            ),
        })?,
    };
    let mut record = csv::ByteRecord::new();
    let mut n = 0u64;
    loop {
        let line = rdr.position().line();
        match rdr.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                if let csv::ErrorKind::Io(_) = e.kind() {
                    return Err(Error::Io {
                        path: path.to_path_buf(),
                        source: std::io::Error::other(e.to_string()),
                    });
                }
                emit(RawItem::Malformed {
                    id: format!("{source}#{n}"),
                    line,
                    message: e.to_string(),
                })?;
                n += 1;
                continue;
            }
        }
        let id = format!("{source}#{n}");
        n += 1;
        let Some(field) = record.get(column) else {
            emit(RawItem::Malformed {
                id,
                line,
                message: format!(
                    "expected at least {} columns, found {}",
                    column + 1,
                    record.len()
                ),
            })?;
            continue;
        };
        let (text, lossy) = decode(field.to_vec());
        let mut meta = serde_json::Map::new();
        for (i, f) in record.iter().enumerate() {
            if i != column {
                let key = headers.get(i).cloned().unwrap_or_else(|| format!("col{i}"));
                meta.insert(key, String::from_utf8_lossy(f).into_owned().into());
            }
        }
        emit(RawItem::Doc(RawDoc {
            id,
            text,
            html: false,
            meta,
            lossy,
        }))?;
    }
    Ok(0)
}

/// Fortune files: entries separated by lines that hold only `%`.
fn read_fortune(
    reader: &mut dyn BufRead,
    path: &Path,
    source: &str,
    emit: &mut dyn FnMut(RawItem) -> Result<()>,
) -> Result<u64> {
    let mut entry: Vec<u8> = Vec::new();
    let mut n = 0u64;
    let mut flush = |entry: &mut Vec<u8>, n: &mut u64| -> Result<()> {
        if entry.iter().all(u8::is_ascii_whitespace) {
            entry.clear();
            return Ok(());
        }
        let (text, lossy) = decode(std::mem::take(entry));
        let id = format!("{source}#{n}");
        *n += 1;
        emit(RawItem::Doc(RawDoc {
            id,
            text,
            html: false,
            meta: serde_json::Map::new(),
            lossy,
        }))
    };
    lines(reader, path, |_, line| {
        if line == b"%" {
            flush(&mut entry, &mut n)
        } else {
            entry.extend_from_slice(&line);
            entry.push(b'\n');
            Ok(())
        }
    })?;
    flush(&mut entry, &mut n)?;
    Ok(0)
}

/// dictd dictionaries: the `.index` lists `headword<TAB>offset<TAB>length` in dictd's base64;
/// each entry becomes a document. Database meta entries (`00-database-*`) are skipped.
fn read_dictd(
    reader: &mut dyn BufRead,
    path: &Path,
    index: &Path,
    source: &str,
    emit: &mut dyn FnMut(RawItem) -> Result<()>,
) -> Result<u64> {
    let mut dict = Vec::new();
    reader.read_to_end(&mut dict).at(path)?;
    let index_text = std::fs::read(index).at(index)?;
    let index_text = String::from_utf8_lossy(&index_text);
    let mut n = 0u64;
    for (i, line) in index_text.lines().enumerate() {
        let line_no = i as u64 + 1;
        let mut parts = line.split('\t');
        let (Some(word), Some(off), Some(len)) = (parts.next(), parts.next(), parts.next()) else {
            emit(RawItem::Malformed {
                id: format!("{source}#{n}"),
                line: line_no,
                message: format!(
                    "{}: expected headword<TAB>offset<TAB>length",
                    index.display()
                ),
            })?;
            n += 1;
            continue;
        };
        if word.starts_with("00-database") || word.starts_with("00database") {
            continue;
        }
        let id = format!("{source}#{n}");
        n += 1;
        let range = dictd_b64(off).zip(dictd_b64(len)).and_then(|(o, l)| {
            let (o, l) = (usize::try_from(o).ok()?, usize::try_from(l).ok()?);
            (o.checked_add(l)? <= dict.len()).then_some(o..o + l)
        });
        let Some(range) = range else {
            emit(RawItem::Malformed {
                id,
                line: line_no,
                message: format!(
                    "{}: offset {off:?} + length {len:?} is outside the dictionary",
                    index.display()
                ),
            })?;
            continue;
        };
        let (text, lossy) = decode(dict[range].to_vec());
        let mut meta = serde_json::Map::new();
        meta.insert("headword".into(), word.into());
        emit(RawItem::Doc(RawDoc {
            id,
            text,
            html: false,
            meta,
            lossy,
        }))?;
    }
    Ok(0)
}

/// Decodes dictd's big-endian base64 numbers.
fn dictd_b64(s: &str) -> Option<u64> {
    let mut v: u64 = 0;
    for c in s.bytes() {
        let d = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        v = v.checked_mul(64)?.checked_add(u64::from(d))?;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(path: &Path, cfg: &InputConfig) -> (Vec<RawItem>, InputSummary) {
        let file = InputFile {
            path: path.to_path_buf(),
            source: "t".into(),
            index: None,
        };
        let mut items = Vec::new();
        let s = read_file(&file, cfg, &mut |i| {
            items.push(i);
            Ok(())
        })
        .unwrap();
        (items, s)
    }

    fn texts(items: &[RawItem]) -> Vec<&str> {
        items
            .iter()
            .filter_map(|i| match i {
                RawItem::Doc(d) => Some(d.text.as_str()),
                RawItem::Malformed { .. } => None,
            })
            .collect()
    }

    #[test]
    fn fortune_entries_split_on_percent_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("art");
        std::fs::write(&p, "first\nquote\n%\nsecond\n%\n%\nthird\n").unwrap();
        let (items, s) = read_all(&p, &InputConfig::default());
        assert_eq!(texts(&items), ["first\nquote\n", "second\n", "third\n"]);
        assert_eq!(s.format, "fortune");
    }

    #[test]
    fn jsonl_malformed_lines_are_named_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.jsonl");
        std::fs::write(
            &p,
            "{\"id\":7,\"text\":\"ok\",\"k\":1}\n{bad\n[1]\n{\"text\":3}\n\n",
        )
        .unwrap();
        let (items, s) = read_all(&p, &InputConfig::default());
        assert_eq!(s.docs, 4);
        assert_eq!(s.malformed, 3);
        let RawItem::Doc(d) = &items[0] else {
            panic!("{items:?}")
        };
        assert_eq!((d.id.as_str(), d.meta["k"].as_i64()), ("7", Some(1)));
        let RawItem::Malformed { line, message, .. } = &items[3] else {
            panic!()
        };
        assert_eq!(*line, 4);
        assert!(message.contains("must be a string"), "{message}");
    }

    #[test]
    fn gzip_and_zstd_decompress() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let gz = dir.path().join("a.txt.gz");
        let mut enc = flate2::write::GzEncoder::new(
            File::create(&gz).unwrap(),
            flate2::Compression::default(),
        );
        enc.write_all(b"hello gzip").unwrap();
        enc.finish().unwrap();
        let zs = dir.path().join("b.jsonl.zst");
        std::fs::write(
            &zs,
            zstd::encode_all(&b"{\"text\":\"hello zstd\"}\n"[..], 3).unwrap(),
        )
        .unwrap();
        assert_eq!(
            texts(&read_all(&gz, &InputConfig::default()).0),
            ["hello gzip"]
        );
        assert_eq!(
            texts(&read_all(&zs, &InputConfig::default()).0),
            ["hello zstd"]
        );
    }

    #[test]
    fn invalid_utf8_is_lossy_and_counted_binary_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cp1252.txt");
        std::fs::write(&p, b"caf\xe9 au lait").unwrap();
        let (items, s) = read_all(&p, &InputConfig::default());
        assert_eq!(texts(&items), ["caf\u{fffd} au lait"]);
        assert_eq!(s.lossy_utf8, 1);
        let b = dir.path().join("blob");
        std::fs::write(&b, b"\x7fELF\x00\x00\x01").unwrap();
        let (items, s) = read_all(&b, &InputConfig::default());
        assert!(items.is_empty());
        assert_eq!(s.skipped.as_deref(), Some("binary content"));
        assert_eq!(s.bytes, 7);
    }

    #[test]
    fn tsv_with_label_column_keeps_label_in_meta() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("spam.csv");
        std::fs::write(
            &p,
            "label\ttext\nham\tGo until \"jurong\" point\nspam\tWIN now\n",
        )
        .unwrap();
        let (items, _) = read_all(&p, &InputConfig::default());
        assert_eq!(texts(&items), ["Go until \"jurong\" point", "WIN now"]);
        let RawItem::Doc(d) = &items[1] else { panic!() };
        assert_eq!(d.meta["label"], "spam");
    }

    #[test]
    fn dictd_entries_come_from_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let dict = "00-database-info\nApple\nA fruit.\nBee\nAn insect.\n";
        std::fs::write(dir.path().join("d.dict"), dict).unwrap();
        // "Apple\nA fruit.\n" starts at 17 ('R') and is 15 long ('P'); "Bee..." at 32 ('g'), 15.
        std::fs::write(
            dir.path().join("d.index"),
            "00-database-info\tA\tR\nApple\tR\tP\nBee\tg\tP\nBad\tzzzz\tB\n",
        )
        .unwrap();
        let (files, _) = discover(&[dir.path().to_path_buf()], &InputConfig::default()).unwrap();
        assert_eq!(files.len(), 1);
        let mut items = Vec::new();
        read_file(&files[0], &InputConfig::default(), &mut |i| {
            items.push(i);
            Ok(())
        })
        .unwrap();
        assert_eq!(texts(&items), ["Apple\nA fruit.\n", "Bee\nAn insect.\n"]);
        assert!(matches!(items[2], RawItem::Malformed { line: 4, .. }));
    }

    #[test]
    fn discover_skips_binaries_assets_and_hidden_files() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "b.html",
            "a.txt",
            "logo.png",
            "site.js",
            ".complete",
            "art.dat",
        ] {
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        let (files, skipped) =
            discover(&[dir.path().to_path_buf()], &InputConfig::default()).unwrap();
        let root = dir
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let names: Vec<_> = files.iter().map(|f| f.source.clone()).collect();
        assert_eq!(names, [format!("{root}/a.txt"), format!("{root}/b.html")]);
        assert_eq!(skipped.len(), 3);
    }

    #[test]
    fn text_paragraph_unit() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("book.txt");
        std::fs::write(&p, "One a.\nOne b.\n\n\nTwo.\n").unwrap();
        let cfg = InputConfig {
            text_unit: TextUnit::Paragraph,
            ..Default::default()
        };
        assert_eq!(texts(&read_all(&p, &cfg).0), ["One a.\nOne b.", "Two."]);
    }
}

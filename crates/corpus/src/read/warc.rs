//! WARC and WET: web archives as Common Crawl ships them (WARC/1.0 and 1.1, ISO 28500).
//!
//! 1) A stream that starts with the gzip magic is read member by member (one record per member,
//!    as Common Crawl writes them, or one member for the whole file); anything else is read plain.
//! 2) Each record's version line and headers are parsed and its block read by `Content-Length`;
//!    the block must be followed by the blank lines that end a record.
//! 3) `response` records are HTTP messages: the status line and headers are parsed, the body
//!    de-chunked, decompressed and decoded by its charset. `resource` records carry the payload
//!    directly; WET `conversion` records are text. HTML and plain-text payloads become documents
//!    with the record's URL, date and content type in `meta`.
//! 4) Everything else (`warcinfo`, `request`, `metadata`, `revisit` records, redirects, error
//!    pages, images) is not a document and is passed over.
//!
//! A record that cannot be read is emitted as malformed with the reason and reading resumes at
//! the next record: after a broken gzip member at the next member's magic (searched from the
//! broken member's start), after a bad header or a lying `Content-Length` at the next `WARC/`
//! line. No input ends the file early except the end of the file.

use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use crate::error::IoContext;
use crate::read::{RawDoc, RawItem, decode};
use crate::{Error, Result};

/// The first bytes of a gzip member that uses deflate, the only method gzip defines.
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b, 0x08];
/// The longest header line read before a record is judged malformed.
const MAX_LINE: u64 = 64 << 10;
/// Bytes of a broken member kept to search for the next member's start.
const MAX_MEMBER_LOG: usize = 64 << 20;

/// Reads the records of one WARC or WET stream and emits its documents. Returns how many
/// documents were cut at `max_doc_bytes`.
pub(crate) fn read(
    reader: &mut dyn BufRead,
    path: &Path,
    source: &str,
    max_doc_bytes: usize,
    emit: &mut dyn FnMut(RawItem) -> Result<()>,
) -> Result<u64> {
    let mut out = Emitter {
        source,
        max_doc_bytes,
        n: 0,
        truncated: 0,
        emit,
    };
    let gzip = reader.fill_buf().at(path)?.starts_with(&GZIP_MAGIC[..2]);
    if gzip {
        read_members(reader, path, &mut out)?;
    } else {
        let mut records = Pushback::new(reader);
        if let Some(e) = read_records(&mut records, &mut out)? {
            return Err(Error::Io {
                path: path.to_path_buf(),
                source: e,
            });
        }
    }
    Ok(out.truncated)
}

/// Numbers the items of one file and hands them on.
struct Emitter<'a> {
    source: &'a str,
    max_doc_bytes: usize,
    n: u64,
    truncated: u64,
    emit: &'a mut dyn FnMut(RawItem) -> Result<()>,
}

impl Emitter<'_> {
    fn malformed(&mut self, message: String) -> Result<()> {
        let item = RawItem::Malformed {
            id: format!("{}#{}", self.source, self.n),
            line: self.n + 1,
            message,
        };
        self.n += 1;
        (self.emit)(item)
    }

    fn doc(&mut self, text: String, html: bool, lossy: bool, meta: Meta) -> Result<()> {
        let item = RawItem::Doc(RawDoc {
            id: format!("{}#{}", self.source, self.n),
            text,
            html,
            meta,
            lossy,
        });
        self.n += 1;
        (self.emit)(item)
    }
}

type Meta = serde_json::Map<String, serde_json::Value>;

/// 1) Gzip members in turn; a broken one is reported and skipped.
fn read_members(reader: &mut dyn BufRead, path: &Path, out: &mut Emitter<'_>) -> Result<()> {
    let mut raw = Tee {
        inner: Pushback::new(reader),
        log: Vec::new(),
    };
    let mut member = 0u64;
    loop {
        let head = peek(&mut raw.inner, GZIP_MAGIC.len()).at(path)?;
        if head.is_empty() {
            return Ok(());
        }
        if !head.starts_with(GZIP_MAGIC) {
            let skipped = skip_to_magic(&mut raw.inner).at(path)?;
            out.malformed(format!(
                "{skipped} bytes that are not a gzip member after member {member}"
            ))?;
            continue;
        }
        member += 1;
        raw.log.clear();
        let failure = {
            let dec = flate2::bufread::GzDecoder::new(&mut raw);
            let mut records = Pushback::new(BufReader::with_capacity(1 << 16, dec));
            read_records(&mut records, out)?
        };
        let Some(e) = failure else { continue };
        if !matches!(
            e.kind(),
            io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput | io::ErrorKind::UnexpectedEof
        ) {
            return Err(Error::Io {
                path: path.to_path_buf(),
                source: e,
            });
        }
        out.malformed(format!("gzip member {member} is broken: {e}"))?;
        // The decoder may have read into the next member: search again from this one's start.
        let log = std::mem::take(&mut raw.log);
        if let Some(p) = find(log.get(1..).unwrap_or_default(), GZIP_MAGIC) {
            raw.inner.unread(&log[p + 1..]);
        } else if log.is_empty() {
            let n = raw.inner.fill_buf().at(path)?.len().min(1);
            raw.inner.consume(n);
        }
    }
}

/// Up to `n` next bytes, left to be read.
fn peek(r: &mut Pushback<impl BufRead>, n: usize) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(n);
    r.by_ref().take(n as u64).read_to_end(&mut head)?;
    r.unread(&head);
    Ok(head)
}

/// Consumes bytes up to the next gzip magic (or the end); returns how many.
fn skip_to_magic(r: &mut Pushback<impl BufRead>) -> io::Result<u64> {
    let mut skipped = 0u64;
    loop {
        let head = peek(r, GZIP_MAGIC.len())?;
        if head.is_empty() || head.starts_with(GZIP_MAGIC) {
            return Ok(skipped);
        }
        let buf = r.fill_buf()?;
        let n = buf
            .iter()
            .skip(1)
            .position(|&b| b == GZIP_MAGIC[0])
            .map_or(buf.len(), |p| p + 1);
        r.consume(n);
        skipped += n as u64;
    }
}

/// Position of the first `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// 2) Records until the end of the stream. Returns the I/O error that stopped it, if any;
///    errors from `emit` are returned as errors.
fn read_records(
    records: &mut Pushback<impl BufRead>,
    out: &mut Emitter<'_>,
) -> Result<Option<io::Error>> {
    loop {
        match next_record(records, out.max_doc_bytes) {
            Ok(Next::End) => return Ok(None),
            Ok(Next::Malformed(message)) => out.malformed(message)?,
            Ok(Next::Record(record)) => {
                if record.cut {
                    out.truncated += 1;
                }
                match payload(&record) {
                    Ok(Some((text, html, lossy, meta))) => out.doc(text, html, lossy, meta)?,
                    Ok(None) => {}
                    Err(message) => out.malformed(message)?,
                }
            }
            Err(e) => return Ok(Some(e)),
        }
    }
}

/// One record as parsed: its WARC headers and its block (the first `max_doc_bytes` of it).
struct Record {
    headers: Vec<(String, String)>,
    block: Vec<u8>,
    /// Whether the block was longer than `max_doc_bytes`.
    cut: bool,
}

impl Record {
    fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// The value of a header, by case-insensitive name.
fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// What the record parser found next.
enum Next {
    Record(Record),
    Malformed(String),
    End,
}

/// Parses the next record, resynchronising on the next `WARC/` line after a bad one.
fn next_record(r: &mut Pushback<impl BufRead>, max_doc_bytes: usize) -> io::Result<Next> {
    // The version line, after the blank lines that end the previous record.
    let version = loop {
        let Some(line) = read_line(r)? else {
            return Ok(Next::End);
        };
        if !trim_eol(&line).is_empty() {
            break line;
        }
    };
    if !version.starts_with(b"WARC/") {
        resync(r)?;
        return Ok(Next::Malformed(format!(
            "expected a WARC/1.x version line, found {}",
            quote(&version)
        )));
    }
    let mut headers: Vec<(String, String)> = Vec::new();
    loop {
        let Some(line) = read_line(r)? else {
            return Ok(Next::Malformed("the record ends inside its headers".into()));
        };
        let line = trim_eol(&line);
        if line.is_empty() {
            break;
        }
        let text = String::from_utf8_lossy(line);
        if (line[0] == b' ' || line[0] == b'\t')
            && let Some((_, v)) = headers.last_mut()
        {
            v.push(' ');
            v.push_str(text.trim());
            continue;
        }
        let Some((name, value)) = text.split_once(':').filter(|(k, _)| is_token(k)) else {
            let message = format!("bad header line {}", quote(line));
            resync(r)?;
            return Ok(Next::Malformed(message));
        };
        headers.push((name.to_owned(), value.trim().to_owned()));
    }
    let length = match header(&headers, "Content-Length").map(|v| v.parse::<u64>()) {
        Some(Ok(n)) => n,
        Some(Err(_)) | None => {
            let found = header(&headers, "Content-Length").unwrap_or("none");
            resync(r)?;
            return Ok(Next::Malformed(format!(
                "Content-Length must be a number of bytes, found {found:?}"
            )));
        }
    };
    let keep = length.min(max_doc_bytes as u64);
    let mut block = Vec::with_capacity(keep.min(1 << 20) as usize);
    let got = r.by_ref().take(keep).read_to_end(&mut block)? as u64;
    let skipped = io::copy(&mut r.by_ref().take(length - keep), &mut io::sink())?;
    if got + skipped < length {
        return Ok(Next::Malformed(format!(
            "truncated: Content-Length is {length} but the record ends after {} bytes",
            got + skipped
        )));
    }
    // The block ends with CRLF CRLF (or the stream ends).
    let mut tail = Vec::with_capacity(4);
    r.by_ref().take(4).read_to_end(&mut tail)?;
    if tail != b"\r\n\r\n" && !tail.is_empty() {
        r.unread(&tail);
        if let Some(p) = find(&block, b"\r\n\r\nWARC/") {
            r.unread(&block[p + 4..]);
            return Ok(Next::Malformed(format!(
                "Content-Length {length} runs into the next record, which starts {} bytes into the block",
                p + 4
            )));
        }
        resync(r)?;
        return Ok(Next::Malformed(format!(
            "Content-Length {length} does not end at a record boundary"
        )));
    }
    Ok(Next::Record(Record {
        headers,
        block,
        cut: keep < length,
    }))
}

/// Whether a header name is an RFC 9110 token.
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Reads one line of at most [`MAX_LINE`] bytes; `None` at the end of the stream.
fn read_line(r: &mut impl BufRead) -> io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    if r.by_ref().take(MAX_LINE).read_until(b'\n', &mut line)? == 0 {
        return Ok(None);
    }
    Ok(Some(line))
}

/// The line without its CR LF.
fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The start of a line, quoted for a message.
fn quote(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(trim_eol(line));
    let short: String = text.chars().take(60).collect();
    format!("{short:?}")
}

/// Skips lines up to the next `WARC/` version line, which is left to be read.
fn resync(r: &mut Pushback<impl BufRead>) -> io::Result<()> {
    while let Some(line) = read_line(r)? {
        if line.starts_with(b"WARC/") {
            r.unread(&line);
            return Ok(());
        }
    }
    Ok(())
}

/// The text of a document, whether it is HTML, whether it was decoded lossily, and its meta.
type Payload = (String, bool, bool, Meta);

/// 3) and 4): the document a record holds, `None` when it holds none.
fn payload(record: &Record) -> std::result::Result<Option<Payload>, String> {
    let kind = record.header("WARC-Type").unwrap_or_default();
    let (content_type, body) = if kind.eq_ignore_ascii_case("response") {
        let Some(http) = parse_http(&record.block)? else {
            return Ok(None);
        };
        let body = http_body(&http, &record.block[http.body_start..])?;
        (
            header(&http.headers, "Content-Type").map(str::to_owned),
            body,
        )
    } else if kind.eq_ignore_ascii_case("resource") || kind.eq_ignore_ascii_case("conversion") {
        let content_type = record.header("Content-Type").map(str::to_owned);
        (content_type, record.block.clone())
    } else {
        return Ok(None);
    };
    let content_type = content_type.unwrap_or_else(|| "text/plain".into());
    let (mime, charset) = media_type(&content_type);
    let html = match mime.as_str() {
        "text/html" | "application/xhtml+xml" => true,
        "text/plain" => false,
        _ => return Ok(None),
    };
    let charset = charset.or_else(|| html.then(|| meta_charset(&body)).flatten());
    let (text, lossy) = decode_charset(body, charset.as_deref());
    let mut meta = Meta::new();
    for (key, name) in [
        ("url", "WARC-Target-URI"),
        ("date", "WARC-Date"),
        ("warc_type", "WARC-Type"),
        ("warc_record_id", "WARC-Record-ID"),
    ] {
        if let Some(v) = record.header(name) {
            meta.insert(key.into(), v.into());
        }
    }
    meta.insert("content_type".into(), mime.into());
    Ok(Some((text, html, lossy, meta)))
}

/// The head of an HTTP response.
struct HttpHead {
    status: u16,
    headers: Vec<(String, String)>,
    body_start: usize,
}

/// Parses an HTTP response head; `None` for a status other than 2xx (redirects, errors).
fn parse_http(block: &[u8]) -> std::result::Result<Option<HttpHead>, String> {
    let mut pos = 0;
    let mut lines = block.split_inclusive(|&b| b == b'\n');
    let status_line = lines.next().unwrap_or_default();
    pos += status_line.len();
    let status_text = String::from_utf8_lossy(trim_eol(status_line));
    let status = status_text
        .strip_prefix("HTTP/")
        .and_then(|s| s.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| {
            format!("response record without an HTTP status line: {status_text:.60?}")
        })?;
    let mut headers = Vec::new();
    let mut ended = false;
    for line in lines {
        pos += line.len();
        let line = trim_eol(line);
        if line.is_empty() {
            ended = true;
            break;
        }
        if let Some((k, v)) = String::from_utf8_lossy(line).split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    if !ended {
        return Err("response record whose HTTP headers never end".into());
    }
    if !(200..300).contains(&status) {
        return Ok(None);
    }
    Ok(Some(HttpHead {
        status,
        headers,
        body_start: pos,
    }))
}

/// The HTTP body after transfer and content decoding.
fn http_body(http: &HttpHead, body: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let chunked = header(&http.headers, "Transfer-Encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        dechunk(body)
            .ok_or_else(|| format!("HTTP {} body with bad chunked encoding", http.status))?
    } else {
        body.to_vec()
    };
    let encoding = header(&http.headers, "Content-Encoding")
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    let mut out = Vec::new();
    let result = match encoding.as_str() {
        "" | "identity" => return Ok(body),
        "gzip" | "x-gzip" => flate2::read::MultiGzDecoder::new(&body[..]).read_to_end(&mut out),
        "deflate" => flate2::read::ZlibDecoder::new(&body[..]).read_to_end(&mut out),
        other => return Err(format!("unsupported Content-Encoding {other:?}")),
    };
    result.map_err(|e| format!("HTTP body does not decompress as {encoding}: {e}"))?;
    Ok(out)
}

/// Removes HTTP/1.1 chunked transfer coding; `None` when the chunk sizes do not fit.
fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(body.len());
    loop {
        let eol = find(body, b"\n")?;
        let size_text = std::str::from_utf8(&body[..eol]).ok()?;
        let size_text = size_text.split(';').next()?.trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        body = &body[eol + 1..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size..)?;
        body = body
            .strip_prefix(b"\r\n")
            .or_else(|| body.strip_prefix(b"\n"))
            .unwrap_or(body);
    }
}

/// The lower-case media type and the charset parameter of a Content-Type value.
fn media_type(value: &str) -> (String, Option<String>) {
    let mut parts = value.split(';');
    let mime = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    let charset = parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| v.trim().trim_matches('"').to_owned())
    });
    (mime, charset)
}

/// The charset an HTML page declares in a `<meta>` tag near its start.
fn meta_charset(body: &[u8]) -> Option<String> {
    let head = String::from_utf8_lossy(&body[..body.len().min(2048)]).to_ascii_lowercase();
    let at = head.find("charset=")? + "charset=".len();
    let value: String = head[at..]
        .trim_start_matches(['"', '\''])
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.'))
        .collect();
    (!value.is_empty()).then_some(value)
}

/// Decodes a body by its charset (UTF-8 when unknown); says whether bytes were replaced.
fn decode_charset(body: Vec<u8>, charset: Option<&str>) -> (String, bool) {
    match charset.and_then(|c| encoding_rs::Encoding::for_label(c.as_bytes())) {
        Some(enc) if enc != encoding_rs::UTF_8 => {
            let (text, _, lossy) = enc.decode(&body);
            (text.into_owned(), lossy)
        }
        _ => decode(body),
    }
}

/// A reader that bytes can be put back in front of.
struct Pushback<R> {
    front: Vec<u8>,
    pos: usize,
    inner: R,
}

impl<R: BufRead> Pushback<R> {
    fn new(inner: R) -> Self {
        Self {
            front: Vec::new(),
            pos: 0,
            inner,
        }
    }

    /// Puts `bytes` back to be read before anything else.
    fn unread(&mut self, bytes: &[u8]) {
        let mut front = bytes.to_vec();
        front.extend_from_slice(&self.front[self.pos..]);
        self.front = front;
        self.pos = 0;
    }
}

impl<R: BufRead> Read for Pushback<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Pushback<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos < self.front.len() {
            Ok(&self.front[self.pos..])
        } else {
            self.inner.fill_buf()
        }
    }

    fn consume(&mut self, n: usize) {
        if self.pos < self.front.len() {
            self.pos += n;
            if self.pos >= self.front.len() {
                self.front.clear();
                self.pos = 0;
            }
        } else {
            self.inner.consume(n);
        }
    }
}

/// A reader that keeps a copy of the bytes consumed (up to [`MAX_MEMBER_LOG`]).
struct Tee<R> {
    inner: Pushback<R>,
    log: Vec<u8>,
}

impl<R: BufRead> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Tee<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, n: usize) {
        if self.log.len() < MAX_MEMBER_LOG
            && let Ok(buf) = self.inner.fill_buf()
        {
            self.log.extend_from_slice(&buf[..n.min(buf.len())]);
        }
        self.inner.consume(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(bytes: &[u8]) -> (Vec<RawItem>, u64) {
        let mut out = Vec::new();
        let truncated = read(
            &mut &bytes[..],
            Path::new("t.warc"),
            "t",
            1 << 20,
            &mut |i| {
                out.push(i);
                Ok(())
            },
        )
        .unwrap();
        (out, truncated)
    }

    fn record(kind: &str, headers: &str, block: &[u8]) -> Vec<u8> {
        let mut r = format!(
            "WARC/1.0\r\nWARC-Type: {kind}\r\n{headers}Content-Length: {}\r\n\r\n",
            block.len()
        )
        .into_bytes();
        r.extend_from_slice(block);
        r.extend_from_slice(b"\r\n\r\n");
        r
    }

    #[test]
    fn chunked_gzip_response_is_decoded() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"<p>caf\xe9 cr\xe8me</p>").unwrap();
        let body = gz.finish().unwrap();
        let mut http = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=ISO-8859-1\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
            body.len()
        )
        .into_bytes();
        http.extend_from_slice(&body);
        http.extend_from_slice(b"\r\n0\r\n\r\n");
        let (out, _) = items(&record("response", "", &http));
        let [RawItem::Doc(d)] = &out[..] else {
            panic!("{out:?}")
        };
        assert_eq!(d.text, "<p>café crème</p>");
        assert!(d.html && !d.lossy);
    }

    #[test]
    fn skip_to_magic_stops_at_a_magic_split_across_buffers() {
        let data = b"x\x1fx\x1f\x8b\x08rest";
        let mut r = Pushback::new(BufReader::with_capacity(4, &data[..]));
        assert_eq!(skip_to_magic(&mut r).unwrap(), 3);
        assert_eq!(r.fill_buf().unwrap()[0], 0x1f);
    }

    #[test]
    fn redirects_requests_and_images_are_not_documents() {
        let mut warc = record("request", "", b"GET / HTTP/1.1\r\n\r\n");
        warc.extend(record(
            "response",
            "",
            b"HTTP/1.1 301 Moved\r\nLocation: /a\r\n\r\n<p>moved</p>",
        ));
        warc.extend(record(
            "response",
            "",
            b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\n\r\n\x89PNG",
        ));
        assert!(items(&warc).0.is_empty());
    }
}

//! Writing the crawl: WARC/1.1 `response` records, one gzip member each (as Common Crawl and
//! `warcio` write them), appended to a file that is flushed after every record.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::Result;
use crate::error::IoContext;

/// One fetched page as it goes into the archive.
pub struct Fetched<'a> {
    /// The URL requested.
    pub url: &'a str,
    /// HTTP status code.
    pub status: u16,
    /// Response headers as received (framing headers are rewritten).
    pub headers: &'a [(String, String)],
    /// The body as received.
    pub body: &'a [u8],
}

/// An open WARC file.
pub struct WarcWriter {
    path: PathBuf,
    file: File,
}

impl WarcWriter {
    /// Opens `path` for appending.
    pub fn append(path: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .at(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Bytes written so far.
    pub fn len(&self) -> Result<u64> {
        Ok(self.file.metadata().at(&self.path)?.len())
    }

    /// Appends one `response` record and flushes it to disk.
    pub fn write(&mut self, page: &Fetched<'_>) -> Result<()> {
        let mut http = format!("HTTP/1.1 {} {}\r\n", page.status, reason(page.status)).into_bytes();
        for (k, v) in page.headers {
            // The body is stored de-chunked and whole: framing headers would lie.
            if matches!(
                k.to_ascii_lowercase().as_str(),
                "content-length" | "transfer-encoding" | "connection"
            ) {
                continue;
            }
            http.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        http.extend_from_slice(format!("Content-Length: {}\r\n\r\n", page.body.len()).as_bytes());
        http.extend_from_slice(page.body);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let id = record_id(page.url, now.as_nanos());
        let mut record = format!(
            "WARC/1.1\r\nWARC-Type: response\r\nWARC-Record-ID: <urn:uuid:{id}>\r\nWARC-Date: {}\r\nWARC-Target-URI: {}\r\nContent-Type: application/http; msgtype=response\r\nContent-Length: {}\r\n\r\n",
            iso8601(now.as_secs()),
            page.url,
            http.len()
        )
        .into_bytes();
        record.extend_from_slice(&http);
        record.extend_from_slice(b"\r\n\r\n");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&record).at(&self.path)?;
        let member = gz.finish().at(&self.path)?;
        self.file.write_all(&member).at(&self.path)?;
        self.file.sync_data().at(&self.path)
    }
}

/// A record id in UUID form from the URL and the time (unique per record, not random).
fn record_id(url: &str, nanos: u128) -> String {
    let a = xxhash_rust::xxh3::xxh3_64(url.as_bytes());
    let b = xxhash_rust::xxh3::xxh3_64(&nanos.to_le_bytes()) ^ a.rotate_left(17);
    let h = format!("{a:016x}{b:016x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// `YYYY-MM-DDThh:mm:ssZ` for seconds since the epoch (Howard Hinnant's civil-from-days).
fn iso8601(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The reason phrase of a status code.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        404 => "Not Found",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_iso8601() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_709_294_400), "2024-03-01T12:00:00Z");
    }
}

//! WARC and WET files written by `warcio` (testdata/corpus/warc/make_warc.py): every way Common
//! Crawl and other tools ship them, and the broken files a crawl really contains.

mod common;

use anyhow::Result;
use duet_corpus::config::InputConfig;
use duet_corpus::read::{InputFile, InputSummary, RawDoc, RawItem, read_file};

fn read(name: &str) -> Result<(Vec<RawDoc>, Vec<String>, InputSummary)> {
    let path = common::root().join("testdata/corpus/warc").join(name);
    let file = InputFile {
        path,
        source: name.into(),
        index: None,
    };
    let (mut docs, mut bad) = (Vec::new(), Vec::new());
    let summary = read_file(&file, &InputConfig::default(), &mut |item| {
        match item {
            RawItem::Doc(d) => docs.push(d),
            RawItem::Malformed { message, .. } => bad.push(message),
        }
        Ok(())
    })?;
    Ok((docs, bad, summary))
}

fn urls(docs: &[RawDoc]) -> Vec<&str> {
    docs.iter()
        .map(|d| d.meta["url"].as_str().unwrap_or_default())
        .collect()
}

const ALL: [&str; 5] = [
    "https://example.org/en.html",
    "https://example.org/zh.html",
    "https://example.org/gbk.html",
    "https://example.org/notes.txt",
    "https://example.org/gz.html",
];

/// Catches: a gzip layout not handled (only the first member read, or gzip bytes read as text),
/// requests, redirects, images or warcinfo taken for documents, a lost record.
#[test]
fn per_record_whole_file_and_plain_warc_read_the_same_documents() -> Result<()> {
    let (plain, bad, s) = read("pages.warc")?;
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(urls(&plain), ALL);
    assert_eq!(s.format, "warc");
    for name in ["pages.warc.gz", "pages.whole.warc.gz"] {
        let (docs, bad, s) = read(name)?;
        assert!(bad.is_empty(), "{name}: {bad:?}");
        let same = |d: &RawDoc| (d.text.clone(), d.html, d.meta["url"].clone());
        let got: Vec<_> = docs.iter().map(same).collect();
        let want: Vec<_> = plain.iter().map(same).collect();
        assert_eq!(got, want, "{name}");
        assert_eq!((s.format.as_str(), s.docs), ("warc", 5), "{name}");
    }
    Ok(())
}

/// Catches: HTML not marked for extraction, the charset in the HTTP header ignored (GBK read
/// as UTF-8), Content-Encoding gzip not undone, meta fields missing.
#[test]
fn payloads_are_decoded_and_meta_kept() -> Result<()> {
    let (docs, _, _) = read("pages.warc.gz")?;
    let en = &docs[0];
    assert!(en.html && en.text.contains("<p>The apt tool installs packages"));
    assert_eq!(en.meta["date"], "2024-03-01T12:00:00Z");
    assert_eq!(en.meta["content_type"], "text/html");
    assert_eq!(en.meta["warc_type"], "response");
    assert!(
        docs[1]
            .text
            .contains("APT 工具从配置的软件源安装软件包及其依赖")
    );
    assert!(
        docs[2].text.contains("这一页用 GBK 编码") && !docs[2].lossy,
        "{}",
        docs[2].text
    );
    assert!(!docs[3].html && docs[3].text.starts_with("Plain notes stored as a resource"));
    assert_eq!(docs[3].meta["content_type"], "text/plain");
    assert!(docs[4].text.contains("sent with Content-Encoding gzip"));
    let text = duet_corpus::read::html::extract(&en.text).text;
    assert!(text.starts_with("# Package management") && !text.contains("Copyright"));
    Ok(())
}

/// Catches: WET conversion records ignored, or read as HTML.
#[test]
fn wet_conversion_records_are_text() -> Result<()> {
    for name in ["pages.wet", "pages.wet.gz"] {
        let (docs, bad, s) = read(name)?;
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(s.format, "wet");
        assert_eq!(urls(&docs), ALL[..2]);
        assert!(docs.iter().all(|d| !d.html));
        assert!(docs[1].text.starts_with("软件包管理\n"));
    }
    Ok(())
}

/// Catches: a broken gzip member ending the file (records after it lost), or the next member
/// swallowed by the broken one's decoder.
#[test]
fn truncated_gzip_member_is_dropped_and_the_rest_read() -> Result<()> {
    let (docs, bad, s) = read("truncated_member.warc.gz")?;
    assert_eq!(urls(&docs), ALL[1..]);
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(bad[0].starts_with("gzip member 3 is broken"), "{bad:?}");
    assert_eq!((s.docs, s.malformed), (5, 1));
    let (docs, bad, _) = read("truncated_end.warc.gz")?;
    assert_eq!(urls(&docs), ALL[..4]);
    assert_eq!(bad.len(), 1, "{bad:?}");
    Ok(())
}

/// Catches: a lying Content-Length taken at its word (the next record swallowed, or the rest
/// of the file read as garbage).
#[test]
fn lying_content_length_drops_only_its_record() -> Result<()> {
    let (docs, bad, _) = read("lying_length.warc")?;
    assert_eq!(urls(&docs), ALL[2..]);
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert!(bad[0].contains("runs into the next record"), "{bad:?}");
    assert!(
        bad[1].contains("does not end at a record boundary"),
        "{bad:?}"
    );
    Ok(())
}

/// Catches: a bad header line or a non-numeric Content-Length ending the file or panicking.
#[test]
fn bad_headers_drop_only_their_record() -> Result<()> {
    let (docs, bad, _) = read("bad_header.warc")?;
    let want = [ALL[0], ALL[1], ALL[4]];
    assert_eq!(urls(&docs), want);
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert!(bad[0].contains("bad header line \"this is not a header\""));
    assert!(bad[1].contains("found \"12abc\""));
    Ok(())
}

/// Catches: a panic on arbitrary damage. Every prefix of the per-record file reads without
/// error, and never yields more documents than the whole file.
#[test]
fn every_prefix_of_a_warc_reads_without_error() -> Result<()> {
    let bytes = std::fs::read(common::root().join("testdata/corpus/warc/pages.warc.gz"))?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("cut.warc.gz");
    for end in (0..bytes.len()).step_by(7) {
        std::fs::write(&path, &bytes[..end])?;
        let file = InputFile {
            path: path.clone(),
            source: "cut".into(),
            index: None,
        };
        let mut docs = 0;
        read_file(&file, &InputConfig::default(), &mut |item| {
            docs += u32::from(matches!(item, RawItem::Doc(_)));
            Ok(())
        })?;
        assert!(docs <= 5);
    }
    Ok(())
}

/// Catches: web archives not dispatched by `corpus build`, drops without their reason, the
/// report not counting each source kind.
#[test]
fn build_reads_archives_and_counts_each_source_kind() -> Result<()> {
    use duet_corpus::{BuildOptions, Config, build};
    let dir = tempfile::tempdir()?;
    let warc = common::root().join("testdata/corpus/warc");
    let opts = BuildOptions {
        inputs: vec![
            warc.join("truncated_member.warc.gz"),
            warc.join("pages.wet.gz"),
        ],
        out: dir.path().join("corpus"),
        force: false,
        strict: false,
        shard: None,
        dedup_against: vec![],
        decontaminate: vec![],
        progress: indicatif::ProgressBar::hidden(),
    };
    let report = build(&Config::default(), &opts)?;
    assert!(report.balanced());
    let (w, t) = (&report.sources["warc"], &report.sources["wet"]);
    assert_eq!((w.files, w.docs_in, w.malformed), (1, 5, 1));
    assert_eq!((t.files, t.docs_in, t.malformed), (1, 2, 0));
    let duplicates: u64 = report
        .dropped
        .iter()
        .filter(|(k, _)| k.starts_with("dedup."))
        .map(|(_, d)| d.count)
        .sum();
    let kept: u64 = report.sources.values().map(|k| k.kept).sum();
    assert_eq!(kept, report.docs_out + duplicates);
    let malformed = &report.dropped["malformed"];
    assert_eq!(malformed.count, 1);
    assert!(
        malformed.examples[0]
            .detail
            .contains("gzip member 3 is broken")
    );
    assert!(report.to_markdown().contains("| warc | 1 | 5 | 1 |"));
    Ok(())
}

/// The warcio route of the acceptance check: pages of Debian's handbook recorded by warcio
/// (`testdata/corpus/warc/make_handbook_warc.py`), English and Chinese, each held to token
/// F1 ≥ 0.95 against the text duet extracts from the same file of the installed
/// `debian-handbook` package. Catches: HTTP bodies cut, left encoded or mis-decoded, records
/// extracted differently from files. Skipped with a message when the package is not installed.
#[test]
fn warcio_recorded_handbook_pages_read_as_their_html_files() -> Result<()> {
    let root = std::path::Path::new("/usr/share/doc/debian-handbook/html");
    if !root.join("en-US/index.html").is_file() {
        eprintln!("skipped: apt-get install debian-handbook for the handbook pages");
        return Ok(());
    }
    let (docs, bad, _) = read("handbook.warc.gz")?;
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(docs.len(), 4);
    for d in &docs {
        let url = d.meta["url"].as_str().unwrap_or_default();
        let rel = url.trim_start_matches("http://debian-handbook.example/");
        let want = common::html_file_text(&root.join(rel))?;
        assert!(want.chars().count() > 300, "{rel}: {want:?}");
        let f = common::token_f1(&d.text, &want);
        assert!(f >= 0.95, "{url}: token F1 {f:.3} against the file's text");
    }
    Ok(())
}

//! The crawler against a local HTTP server that logs every request: robots.txt, scope,
//! de-duplication, redirects, the rate limit, the page cap, and resuming after `kill -9`.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use duet_corpus::config::InputConfig;
use duet_corpus::crawl::{CrawlConfig, STATE_FILE, State, WARC_FILE, crawl};
use duet_corpus::read::{InputFile, RawItem, read_file};

/// A page the server answers with: status, content type, body.
type Page = (u16, &'static str, String);

/// A test server on a free local port; the log holds (path, time) of every request.
struct Server {
    base: String,
    log: Arc<Mutex<Vec<(String, Instant)>>>,
}

impl Server {
    fn start(pages: HashMap<String, Page>) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let base = format!("http://{}", listener.local_addr()?);
        let log = Arc::new(Mutex::new(Vec::new()));
        let (log2, pages) = (Arc::clone(&log), Arc::new(pages));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let (log, pages) = (Arc::clone(&log2), Arc::clone(&pages));
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                    let mut first = String::new();
                    if reader.read_line(&mut first).is_err() {
                        return;
                    }
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                            break;
                        }
                    }
                    let path = first.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    log.lock()
                        .expect("log")
                        .push((path.clone(), Instant::now()));
                    let (status, ctype, body) = pages.get(&path).cloned().unwrap_or((
                        404,
                        "text/plain",
                        "not found".into(),
                    ));
                    let extra = if (300..400).contains(&status) {
                        format!("Location: {body}\r\n")
                    } else {
                        String::new()
                    };
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                });
            }
        });
        Ok(Self { base, log })
    }

    fn requests(&self) -> Vec<(String, Instant)> {
        self.log.lock().expect("log").clone()
    }

    fn paths(&self) -> Vec<String> {
        self.requests().into_iter().map(|(p, _)| p).collect()
    }
}

fn html(links: &[&str], text: &str) -> Page {
    let a: String = links
        .iter()
        .map(|l| format!("<a href=\"{l}\">link</a> "))
        .collect();
    (
        200,
        "text/html; charset=utf-8",
        format!("<html><body><p>{text}</p><nav>{a}</nav></body></html>"),
    )
}

/// A small site: robots.txt disallows /docs/secret, links leave the /docs/ scope, repeat with
/// fragments, redirect, and point at an image.
fn site() -> HashMap<String, Page> {
    let mut p = HashMap::new();
    p.insert(
        "/robots.txt".into(),
        (
            200,
            "text/plain",
            "User-agent: *\nDisallow: /docs/secret\n".into(),
        ),
    );
    p.insert(
        "/docs/index.html".into(),
        html(
            &[
                "a.html",
                "b.html#part",
                "/docs/b.html",
                "secret.html",
                "/outside.html",
                "old.html",
                "logo.png",
                "http://other.invalid/x.html",
            ],
            "The index page of the documentation.",
        ),
    );
    p.insert(
        "/docs/a.html".into(),
        html(&["index.html", "d.html"], "Page A text."),
    );
    p.insert("/docs/b.html".into(), html(&[], "Page B text."));
    p.insert(
        "/docs/c.html".into(),
        html(&[], "Page C, reached by a redirect."),
    );
    p.insert("/docs/d.html".into(), html(&[], "Page D, two links deep."));
    p.insert(
        "/docs/old.html".into(),
        (301, "text/html", "/docs/c.html".into()),
    );
    p.insert("/docs/logo.png".into(), (200, "image/png", "PNG".into()));
    p.insert("/docs/secret.html".into(), html(&[], "secret"));
    p.insert("/outside.html".into(), html(&[], "outside"));
    p
}

fn recorded_urls(out: &Path) -> Result<Vec<String>> {
    let file = InputFile {
        path: out.join(WARC_FILE),
        source: "crawl".into(),
        index: None,
    };
    let mut urls = Vec::new();
    read_file(&file, &InputConfig::default(), &mut |item| {
        match item {
            RawItem::Doc(d) => urls.push(d.meta["url"].as_str().unwrap_or_default().to_owned()),
            RawItem::Malformed { message, .. } => panic!("malformed record: {message}"),
        }
        Ok(())
    })?;
    Ok(urls)
}

fn quiet() -> indicatif::ProgressBar {
    indicatif::ProgressBar::hidden()
}

/// Catches: a Disallow ignored, links outside the scope or host followed, a page fetched twice
/// (fragments, repeated links), redirects not followed, an image recorded, a WARC that the
/// reader cannot read back.
#[test]
fn obeys_robots_and_scope_and_fetches_each_page_once() -> Result<()> {
    let server = Server::start(site())?;
    let dir = tempfile::tempdir()?;
    let cfg = CrawlConfig {
        delay: 0.0,
        concurrency: 3,
        ..Default::default()
    };
    let seed = format!("{}/docs/index.html", server.base);
    let summary = crawl(&cfg, &[seed], dir.path(), &quiet())?;
    let paths = server.paths();
    let unique: BTreeSet<&String> = paths.iter().collect();
    assert_eq!(
        unique.len(),
        paths.len(),
        "a path was requested twice: {paths:?}"
    );
    for never in ["/docs/secret.html", "/outside.html"] {
        assert!(
            !paths.iter().any(|p| p == never),
            "{never} requested: {paths:?}"
        );
    }
    assert_eq!(summary.disallowed, 1);
    let mut urls = recorded_urls(dir.path())?;
    urls.sort();
    let want: Vec<String> = ["a", "b", "c", "d", "index"]
        .iter()
        .map(|p| format!("{}/docs/{p}.html", server.base))
        .collect();
    assert_eq!(urls, want);
    // warcio reads it back, when it is installed (WARCIO_PYTHON names a python that has it).
    let python = std::env::var("WARCIO_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = "import sys\nfrom warcio.archiveiterator import ArchiveIterator\nprint(sum(1 for r in ArchiveIterator(open(sys.argv[1], 'rb')) if r.rec_type == 'response'))";
    match std::process::Command::new(&python)
        .args(["-c", script])
        .arg(dir.path().join(WARC_FILE))
        .output()
    {
        Ok(o) if o.status.success() => {
            assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "5");
        }
        _ => println!("skipped the warcio check: {python} has no warcio (pip install warcio)"),
    }
    Ok(())
}

/// Catches: two requests to one host closer than the delay (robots.txt included), the
/// concurrency bound taken as a licence to hit one host in parallel.
#[test]
fn keeps_the_per_host_delay() -> Result<()> {
    let server = Server::start(site())?;
    let dir = tempfile::tempdir()?;
    let cfg = CrawlConfig {
        delay: 0.15,
        concurrency: 4,
        ..Default::default()
    };
    crawl(
        &cfg,
        &[format!("{}/docs/index.html", server.base)],
        dir.path(),
        &quiet(),
    )?;
    let times: Vec<Instant> = server.requests().into_iter().map(|(_, t)| t).collect();
    assert!(times.len() >= 7, "{times:?}");
    for w in times.windows(2) {
        let gap = w[1].duration_since(w[0]);
        assert!(gap >= Duration::from_millis(145), "requests {gap:?} apart");
    }
    Ok(())
}

/// Catches: the page cap exceeded (by workers in flight) or not counted over runs.
#[test]
fn stops_at_the_page_cap() -> Result<()> {
    let server = Server::start(site())?;
    let dir = tempfile::tempdir()?;
    let cfg = CrawlConfig {
        delay: 0.0,
        concurrency: 4,
        max_pages: 3,
        ..Default::default()
    };
    let seed = format!("{}/docs/index.html", server.base);
    let summary = crawl(&cfg, std::slice::from_ref(&seed), dir.path(), &quiet())?;
    assert_eq!(summary.fetched, 3);
    let pages = server
        .paths()
        .iter()
        .filter(|p| *p != "/robots.txt")
        .count();
    assert_eq!(pages, 3);
    // A second run over the same directory has nothing left under the cap.
    let again = crawl(&cfg, &[seed], dir.path(), &quiet())?;
    assert_eq!(again.fetched, 0);
    Ok(())
}

/// A chain of pages for the resume test: each links to the next.
fn chain(n: usize) -> HashMap<String, Page> {
    let mut p = HashMap::new();
    p.insert("/robots.txt".into(), (404, "text/plain", String::new()));
    for i in 0..n {
        let next = format!("p{}.html", i + 1);
        let links: Vec<&str> = if i + 1 < n {
            vec![next.as_str()]
        } else {
            vec![]
        };
        p.insert(
            format!("/p{i}.html"),
            html(&links, &format!("Page number {i} of the chain.")),
        );
    }
    p
}

/// Not run alone: the crawl the resume test starts in a child process and kills.
#[test]
#[ignore = "run by resumes_after_kill_9_without_fetching_a_recorded_page_again"]
fn child_crawl() -> Result<()> {
    let (Ok(out), Ok(seed)) = (
        std::env::var("DUET_CRAWL_OUT"),
        std::env::var("DUET_CRAWL_SEED"),
    ) else {
        return Ok(());
    };
    let cfg = CrawlConfig {
        delay: 0.05,
        concurrency: 1,
        max_depth: 100,
        ..Default::default()
    };
    crawl(&cfg, &[seed], Path::new(&out), &quiet())?;
    Ok(())
}

/// Catches: a checkpoint that is not atomic or lags the WARC (pages fetched again, or lost, or
/// recorded twice after a resume).
#[test]
fn resumes_after_kill_9_without_fetching_a_recorded_page_again() -> Result<()> {
    const N: usize = 40;
    let server = Server::start(chain(N))?;
    let dir = tempfile::tempdir()?;
    let seed = format!("{}/p0.html", server.base);
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args(["--exact", "child_crawl", "--ignored", "--quiet"])
        .env("DUET_CRAWL_OUT", dir.path())
        .env("DUET_CRAWL_SEED", &seed)
        .stdout(std::process::Stdio::null())
        .spawn()?;
    let start = Instant::now();
    while !dir.path().join(STATE_FILE).exists()
        || std::fs::read_to_string(dir.path().join(STATE_FILE))?
            .matches("p1")
            .count()
            == 0
        || server.paths().len() < 12
    {
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(30),
            "child crawl made no progress"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill()?; // SIGKILL
    child.wait()?;
    let before: Vec<String> = server.paths();
    // What the checkpoint covers: the WARC up to the length it names.
    let state = State::load(&dir.path().join(STATE_FILE))?.expect("a checkpoint");
    let warc = std::fs::read(dir.path().join(WARC_FILE))?;
    let covered_dir = tempfile::tempdir()?;
    std::fs::write(
        covered_dir.path().join(WARC_FILE),
        &warc[..state.warc_len as usize],
    )?;
    let covered_before = recorded_urls(covered_dir.path())?;
    assert!(covered_before.len() >= 5, "{covered_before:?}");
    let cfg = CrawlConfig {
        delay: 0.0,
        concurrency: 1,
        max_depth: 100,
        ..Default::default()
    };
    crawl(&cfg, &[seed], dir.path(), &quiet())?;
    let after: Vec<String> = server.paths()[before.len()..].to_vec();
    // The WARC is cut back to the checkpoint: only what it covers counts as fetched.
    let covered = recorded_urls(dir.path())?;
    assert!(
        covered.len() == N,
        "{} of {N} pages recorded",
        covered.len()
    );
    let unique: BTreeSet<&String> = covered.iter().collect();
    assert_eq!(unique.len(), N, "a page was recorded twice");
    let covered_paths: BTreeSet<String> = covered_before
        .iter()
        .map(|u| u.trim_start_matches(&server.base).to_owned())
        .collect();
    let refetched: Vec<&String> = after
        .iter()
        .filter(|p| covered_paths.contains(*p))
        .collect();
    assert!(
        refetched.is_empty(),
        "fetched again after resume: {refetched:?}"
    );
    // Only pages in flight at the kill (one, at concurrency 1) may be asked for again.
    let asked_twice = after
        .iter()
        .filter(|p| *p != "/robots.txt" && before.contains(p))
        .count();
    assert!(asked_twice <= 1, "{asked_twice} pages asked for twice");
    println!(
        "killed after {} requests ({} pages in the checkpoint); {} requests after resume",
        before.len(),
        covered_before.len(),
        after.len()
    );
    Ok(())
}

/// The handbook route of the acceptance check: Debian's `debian-handbook` HTML tree served by a
/// local server, crawled, and every recorded page's text held to token F1 ≥ 0.95 against the
/// text duet extracts from the same file on disk, English and Chinese. Catches: bodies cut or
/// mis-decoded on the way through HTTP and WARC, pages extracted differently from files.
/// Skipped with a message when the package is not installed (`apt-get install debian-handbook`).
#[test]
fn a_crawl_of_the_debian_handbook_reads_as_its_html_files() -> Result<()> {
    let root = Path::new("/usr/share/doc/debian-handbook/html");
    if !root.join("en-US/index.html").is_file() {
        eprintln!("skipped: apt-get install debian-handbook for the handbook crawl");
        return Ok(());
    }
    let mut pages = HashMap::new();
    for lang in ["en-US", "zh-CN"] {
        for e in std::fs::read_dir(root.join(lang))? {
            let p = e?.path();
            if p.extension().is_some_and(|x| x == "html") {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                let body = String::from_utf8_lossy(&std::fs::read(&p)?).into_owned();
                pages.insert(
                    format!("/{lang}/{name}"),
                    (200, "text/html; charset=utf-8", body),
                );
            }
        }
    }
    let server = Server::start(pages)?;
    for lang in ["en-US", "zh-CN"] {
        let dir = tempfile::tempdir()?;
        let cfg = CrawlConfig {
            delay: 0.0,
            concurrency: 2,
            max_pages: 25,
            ..Default::default()
        };
        crawl(
            &cfg,
            &[format!("{}/{lang}/index.html", server.base)],
            dir.path(),
            &quiet(),
        )?;
        let mut crawled = Vec::new();
        read_file(
            &InputFile {
                path: dir.path().join(WARC_FILE),
                source: "crawl".into(),
                index: None,
            },
            &InputConfig::default(),
            &mut |item| {
                if let RawItem::Doc(d) = item {
                    crawled.push(d);
                }
                Ok(())
            },
        )?;
        assert!(
            crawled.len() >= 20,
            "{lang}: {} pages recorded",
            crawled.len()
        );
        for d in &crawled {
            let url = d.meta["url"].as_str().unwrap_or_default();
            let rel = url.trim_start_matches(&server.base).trim_start_matches('/');
            let want = common::html_file_text(&root.join(rel))?;
            let f = common::token_f1(&d.text, &want);
            assert!(f >= 0.95, "{url}: token F1 {f:.3} against the file's text");
        }
    }
    Ok(())
}

//! A polite crawler that writes WARC: `duet corpus build` reads its output unchanged.
//!
//! 1) The seeds are canonicalised and queued (or a checkpoint is loaded and the WARC file cut
//!    back to the length it covers). 2) Workers take the first queued URL whose host may be
//!    asked again (one request at a time per host, `delay` apart, or the site's `Crawl-delay`);
//!    a host's robots.txt is fetched first and its rules obeyed. 3) A page is fetched without
//!    following redirects: a redirect's target is queued like a link; an HTML or plain-text
//!    response within the size limit is recorded, and the in-scope links of an HTML page are
//!    queued one level deeper. 4) After every response the record is flushed and the checkpoint
//!    written, so a crawl killed at any moment resumes without fetching a recorded page again.

mod robots;
mod state;
mod warc_out;

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use url::Url;

pub use robots::Robots;
pub use state::State;
use warc_out::{Fetched, WarcWriter};

use crate::error::IoContext;
use crate::{Error, Result};

/// Which links a crawl follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Any page on a seed's host.
    Host,
    /// Pages on a seed's host under the seed's folder (`/docs/` for `/docs/index.html`).
    Prefix,
}

/// How a crawl behaves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CrawlConfig {
    /// Which links are followed.
    pub scope: Scope,
    /// Link depth from the seeds beyond which links are not followed.
    pub max_depth: u32,
    /// Responses to fetch in all (pages, redirects and errors), over every run.
    pub max_pages: u64,
    /// Seconds between two requests to one host (a longer `Crawl-delay` wins).
    pub delay: f64,
    /// Requests in flight at once, over all hosts.
    pub concurrency: usize,
    /// Bodies longer than this many bytes are not recorded.
    pub max_bytes: u64,
    /// Seconds before a request is abandoned.
    pub timeout: f64,
    /// The user agent sent, whose first word robots.txt groups are matched against.
    pub user_agent: String,
}

impl Default for CrawlConfig {
    fn default() -> Self {
        Self {
            scope: Scope::Prefix,
            max_depth: 5,
            max_pages: 1000,
            delay: 1.0,
            concurrency: 4,
            max_bytes: 10 << 20,
            timeout: 30.0,
            user_agent: concat!("duet-crawler/", env!("CARGO_PKG_VERSION")).into(),
        }
    }
}

/// What a crawl run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CrawlSummary {
    /// Responses fetched in this run.
    pub fetched: u64,
    /// Responses recorded in the WARC file in this run.
    pub recorded: u64,
    /// URLs not fetched because robots.txt disallows them.
    pub disallowed: u64,
    /// Responses not recorded: not HTML or text, too large, or an error status.
    pub not_recorded: u64,
    /// Requests that failed (network errors, timeouts).
    pub failed: u64,
}

/// The WARC file a crawl writes in its output directory.
pub const WARC_FILE: &str = "crawl.warc.gz";
/// The checkpoint beside it.
pub const STATE_FILE: &str = "crawl-state.json";

/// Crawls from `seeds` into `out` (created, or resumed when it holds a checkpoint).
pub fn crawl(
    cfg: &CrawlConfig,
    seeds: &[String],
    out: &Path,
    progress: &ProgressBar,
) -> Result<CrawlSummary> {
    if cfg.concurrency == 0 || !cfg.delay.is_finite() || cfg.delay < 0.0 {
        return Err(Error::Config(
            "crawl: concurrency must be at least 1 and delay a number of seconds".into(),
        ));
    }
    let roots = seeds
        .iter()
        .map(|s| {
            canonical(s).ok_or_else(|| Error::Config(format!("crawl: {s:?} is not an http(s) URL")))
        })
        .collect::<Result<Vec<_>>>()?;
    std::fs::create_dir_all(out).at(out)?;
    let state_path = out.join(STATE_FILE);
    let warc_path = out.join(WARC_FILE);
    // 1) A fresh crawl, or the checkpoint and the WARC cut back to it.
    let mut state = match State::load(&state_path)? {
        Some(state) => {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&warc_path)
                .at(&warc_path)?;
            f.set_len(state.warc_len).at(&warc_path)?;
            state
        }
        None => {
            let _ = std::fs::remove_file(&warc_path);
            State::default()
        }
    };
    // Seeds not crawled before (all of them on a fresh crawl) are queued.
    for r in &roots {
        if state.seen.insert(r.to_string()) {
            state.frontier.push_back((r.to_string(), 0));
        }
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs_f64(cfg.timeout.max(0.001))))
        .user_agent(cfg.user_agent.as_str())
        .build()
        .into();
    let shared = Shared {
        inner: Mutex::new(Inner {
            state,
            in_flight: Vec::new(),
            next_ok: HashMap::new(),
            robots: HashMap::new(),
            writer: WarcWriter::append(&warc_path)?,
            summary: CrawlSummary::default(),
            error: None,
        }),
        wake: Condvar::new(),
    };
    let job = Job {
        cfg,
        roots: &roots,
        agent: &agent,
        state_path: &state_path,
        progress,
    };
    progress.set_position(0);
    std::thread::scope(|scope| {
        for _ in 0..cfg.concurrency {
            scope.spawn(|| job.work(&shared));
        }
    });
    let inner = shared
        .inner
        .into_inner()
        .map_err(|_| Error::Strict("a crawl worker panicked".into()))?;
    match inner.error {
        Some(e) => Err(e),
        None => Ok(inner.summary),
    }
}

/// The state workers share.
struct Shared {
    inner: Mutex<Inner>,
    wake: Condvar,
}

struct Inner {
    state: State,
    in_flight: Vec<(String, u32)>,
    /// When each host may be asked again.
    next_ok: HashMap<String, Instant>,
    robots: HashMap<String, Arc<Robots>>,
    writer: WarcWriter,
    summary: CrawlSummary,
    /// The first error that stops the crawl (writing the WARC or the checkpoint).
    error: Option<Error>,
}

/// What every worker reads.
struct Job<'a> {
    cfg: &'a CrawlConfig,
    roots: &'a [Url],
    agent: &'a ureq::Agent,
    state_path: &'a Path,
    progress: &'a ProgressBar,
}

/// What a worker was given to do.
enum Task {
    Robots(Url),
    Page(Url, u32, Arc<Robots>),
}

impl Job<'_> {
    fn work(&self, shared: &Shared) {
        while let Some(task) = self.next_task(shared) {
            match task {
                Task::Robots(url) => {
                    let robots = self.fetch_robots(&url);
                    let mut inner = lock(shared);
                    self.free_host(&mut inner, &url, &robots);
                    inner.robots.insert(host_key(&url), Arc::new(robots));
                    let key = url.to_string();
                    if let Some(i) = inner.in_flight.iter().position(|(u, _)| *u == key) {
                        let page = inner.in_flight.remove(i);
                        inner.state.frontier.push_front(page);
                    }
                }
                Task::Page(url, _, robots) if !robots.allowed(&path_and_query(&url)) => {
                    // Never requested: the host is free at once.
                    let mut inner = lock(shared);
                    let key = url.to_string();
                    inner.in_flight.retain(|(u, _)| *u != key);
                    inner.next_ok.remove(&host_key(&url));
                    inner.summary.disallowed += 1;
                    if let Err(e) = inner.state.save(self.state_path, &inner.in_flight) {
                        inner.error.get_or_insert(e);
                    }
                }
                Task::Page(url, depth, robots) => {
                    let result = self.fetch_page(&url);
                    let mut inner = lock(shared);
                    self.free_host(&mut inner, &url, &robots);
                    if let Err(e) = self.record(&mut inner, &url, depth, result) {
                        inner.error.get_or_insert(e);
                    }
                }
            }
            shared.wake.notify_all();
        }
        shared.wake.notify_all();
    }

    /// 2) The next URL whose host is free, waiting for one; `None` when the crawl is over.
    fn next_task(&self, shared: &Shared) -> Option<Task> {
        let mut inner = lock(shared);
        loop {
            let inner_ref = &mut *inner;
            let busy = inner_ref.state.fetched + inner_ref.in_flight.len() as u64;
            if inner_ref.error.is_some()
                || busy >= self.cfg.max_pages
                || (inner_ref.state.frontier.is_empty() && inner_ref.in_flight.is_empty())
            {
                return None;
            }
            let now = Instant::now();
            let mut earliest: Option<Instant> = None;
            let mut pick = None;
            for (i, (u, _)) in inner_ref.state.frontier.iter().enumerate() {
                let Ok(url) = Url::parse(u) else { continue };
                let key = host_key(&url);
                match inner_ref.next_ok.get(&key) {
                    Some(t) if *t > now => earliest = Some(earliest.map_or(*t, |e| e.min(*t))),
                    _ => {
                        pick = Some((i, url, key));
                        break;
                    }
                }
            }
            if let Some((i, url, key)) = pick {
                let (u, depth) = inner_ref.state.frontier.remove(i)?;
                let robots = inner_ref.robots.get(&key).cloned();
                // Reserved until the response is in, then `delay` more (see `free_host`).
                inner_ref
                    .next_ok
                    .insert(key, now + Duration::from_secs(3600 * 24));
                inner_ref.in_flight.push((u, depth));
                return Some(match robots {
                    Some(r) => Task::Page(url, depth, r),
                    None => Task::Robots(url),
                });
            }
            let wait = earliest.map_or(Duration::from_millis(50), |t| t - now);
            inner = shared
                .wake
                .wait_timeout(inner, wait)
                .map_or_else(|e| e.into_inner().0, |(g, _)| g);
        }
    }

    /// A host's robots.txt: rules on 200, everything allowed on a 4xx, nothing on failure.
    fn fetch_robots(&self, url: &Url) -> Robots {
        let mut robots_url = url.clone();
        robots_url.set_path("/robots.txt");
        robots_url.set_query(None);
        let agent_token = self
            .cfg
            .user_agent
            .split(['/', ' '])
            .next()
            .unwrap_or_default();
        match self.agent.get(robots_url.as_str()).call() {
            Ok(mut r) if r.status().as_u16() == 200 => {
                let body = r
                    .body_mut()
                    .with_config()
                    .limit(500 << 10)
                    .read_to_vec()
                    .unwrap_or_default();
                Robots::parse(&String::from_utf8_lossy(&body), agent_token)
            }
            Ok(r) if r.status().is_client_error() => Robots::default(),
            _ => Robots::parse("User-agent: *\nDisallow: /\n", agent_token),
        }
    }

    /// 3) One request, no redirects followed.
    fn fetch_page(&self, url: &Url) -> std::result::Result<Response, String> {
        let mut r = self
            .agent
            .get(url.as_str())
            .call()
            .map_err(|e| e.to_string())?;
        let status = r.status().as_u16();
        let headers: Vec<(String, String)> = r
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let mut body = Vec::new();
        let reader = r.body_mut().as_reader();
        reader
            .take(self.cfg.max_bytes + 1)
            .read_to_end(&mut body)
            .map_err(|e| e.to_string())?;
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// 3) and 4): records the response, queues its links, writes the checkpoint.
    fn record(
        &self,
        inner: &mut Inner,
        url: &Url,
        depth: u32,
        result: std::result::Result<Response, String>,
    ) -> Result<()> {
        let key = url.to_string();
        inner.in_flight.retain(|(u, _)| *u != key);
        inner.state.fetched += 1;
        inner.summary.fetched += 1;
        self.progress.inc(1);
        match result {
            Err(e) => {
                tracing::warn!("{url}: {e}");
                inner.summary.failed += 1;
            }
            Ok(resp) => {
                let header = |name: &str| {
                    resp.headers
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(name))
                        .map(|(_, v)| v.as_str())
                };
                let mime = header("content-type")
                    .unwrap_or("")
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                let html = matches!(mime.as_str(), "text/html" | "application/xhtml+xml");
                let small = resp.body.len() as u64 <= self.cfg.max_bytes;
                if (300..400).contains(&resp.status)
                    && let Some(target) = header("location").and_then(|l| url.join(l).ok())
                {
                    self.queue(inner, &target, depth);
                }
                if resp.status == 200 && small && (html || mime == "text/plain") {
                    inner.writer.write(&Fetched {
                        url: url.as_str(),
                        status: resp.status,
                        headers: &resp.headers,
                        body: &resp.body,
                    })?;
                    inner.summary.recorded += 1;
                    if html && depth < self.cfg.max_depth {
                        for link in links(url, &resp.body) {
                            self.queue(inner, &link, depth + 1);
                        }
                    }
                } else {
                    inner.summary.not_recorded += 1;
                }
            }
        }
        inner.state.warc_len = inner.writer.len()?;
        inner.state.save(self.state_path, &inner.in_flight)
    }

    /// Queues a URL that is in scope and was never queued.
    fn queue(&self, inner: &mut Inner, url: &Url, depth: u32) {
        let Some(url) = canonical(url.as_str()) else {
            return;
        };
        if self.in_scope(&url) && inner.state.seen.insert(url.to_string()) {
            inner.state.frontier.push_back((url.to_string(), depth));
        }
    }

    fn in_scope(&self, url: &Url) -> bool {
        self.roots.iter().any(|root| {
            host_key(root) == host_key(url)
                && match self.cfg.scope {
                    Scope::Host => true,
                    Scope::Prefix => {
                        let folder = &root.path()[..root.path().rfind('/').map_or(0, |i| i + 1)];
                        url.path().starts_with(folder)
                    }
                }
        })
    }

    /// The host may be asked again `delay` (or its Crawl-delay) from now.
    fn free_host(&self, inner: &mut Inner, url: &Url, robots: &Robots) {
        let delay = robots.crawl_delay.unwrap_or(0.0).max(self.cfg.delay);
        inner.next_ok.insert(
            host_key(url),
            Instant::now() + Duration::from_secs_f64(delay),
        );
    }
}

/// A response as fetched.
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Inner> {
    shared.inner.lock().unwrap_or_else(|e| e.into_inner())
}

/// `scheme://host:port`, the unit of politeness.
fn host_key(url: &Url) -> String {
    format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or(0)
    )
}

/// The path and query a robots.txt rule is matched against.
fn path_and_query(url: &Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    }
}

/// The canonical form of a URL: http(s) only, no fragment (the `url` crate lower-cases the
/// scheme and host, drops the default port and resolves `.` and `..`).
pub fn canonical(s: &str) -> Option<Url> {
    let mut url = Url::parse(s.trim()).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return None;
    }
    url.set_fragment(None);
    Some(url)
}

/// The links of an HTML page, resolved against its URL (or its `<base href>`).
fn links(page: &Url, body: &[u8]) -> Vec<Url> {
    let html = scraper::Html::parse_document(&String::from_utf8_lossy(body));
    let (Ok(a), Ok(base_sel)) = (
        scraper::Selector::parse("a[href]"),
        scraper::Selector::parse("base[href]"),
    ) else {
        return Vec::new();
    };
    let base = html
        .select(&base_sel)
        .next()
        .and_then(|b| b.value().attr("href"))
        .and_then(|h| page.join(h).ok())
        .unwrap_or_else(|| page.clone());
    html.select(&a)
        .filter_map(|e| e.value().attr("href"))
        .filter_map(|h| base.join(h).ok())
        .collect()
}

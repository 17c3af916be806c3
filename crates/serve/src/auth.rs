//! API keys: kept only as SHA-256 hashes, each with optional per-minute budgets of requests
//! and tokens.
//!
//! A keys file has one key per line: `KEY [rpm=N] [tpm=N]`, or `sha256:HEX [rpm=N] [tpm=N]`
//! to avoid keeping the key itself on disk; `#` starts a comment.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// One key and its budgets.
#[derive(Debug)]
struct Key {
    hash: [u8; 32],
    rpm: Option<u64>,
    tpm: Option<u64>,
    window: Mutex<Window>,
}

/// Use within the current minute.
#[derive(Debug)]
struct Window {
    start: Instant,
    requests: u64,
    tokens: u64,
}

/// Why a key was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No key, or an unknown one (401).
    Unauthorized,
    /// The key's budget for this minute is spent (429); retry after this many seconds.
    OverBudget(String, u64),
}

/// The keys a server accepts; empty means no authentication.
#[derive(Debug, Default)]
pub struct Keys {
    keys: Vec<Key>,
}

fn hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

fn parse_hex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Compares without an early exit, so timing does not tell how much of a hash matched.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Keys {
    /// Keys given on the command line (no budgets) plus the lines of `file`.
    pub fn load(plain: &[String], file: Option<&Path>) -> Result<Self> {
        let mut keys: Vec<Key> = plain
            .iter()
            .map(|k| Key {
                hash: hash(k),
                rpm: None,
                tpm: None,
                window: Mutex::new(Window::new()),
            })
            .collect();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
                what: path.display().to_string(),
                source,
            })?;
            for (i, line) in text.lines().enumerate() {
                let line = line.split('#').next().unwrap_or_default().trim();
                if line.is_empty() {
                    continue;
                }
                keys.push(
                    parse_line(line)
                        .map_err(|m| Error::Config(format!("{}:{}: {m}", path.display(), i + 1)))?,
                );
            }
        }
        Ok(Self { keys })
    }

    /// Whether any key is required.
    pub fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Checks a bearer token and counts one request against its budget; returns the key's
    /// index for [`Keys::spend`].
    pub fn check(&self, bearer: Option<&str>) -> std::result::Result<Option<usize>, Refusal> {
        if self.keys.is_empty() {
            return Ok(None);
        }
        let h = hash(bearer.ok_or(Refusal::Unauthorized)?);
        let (i, key) = self
            .keys
            .iter()
            .enumerate()
            .find(|(_, k)| same(&k.hash, &h))
            .ok_or(Refusal::Unauthorized)?;
        let mut w = key.window.lock().unwrap_or_else(|p| p.into_inner());
        w.roll();
        let retry = w.retry_after();
        if key.rpm.is_some_and(|r| w.requests >= r) {
            return Err(Refusal::OverBudget(
                format!(
                    "this key's budget of {} requests per minute is spent",
                    key.rpm.unwrap_or(0)
                ),
                retry,
            ));
        }
        if key.tpm.is_some_and(|t| w.tokens >= t) {
            return Err(Refusal::OverBudget(
                format!(
                    "this key's budget of {} tokens per minute is spent",
                    key.tpm.unwrap_or(0)
                ),
                retry,
            ));
        }
        w.requests += 1;
        Ok(Some(i))
    }

    /// Counts tokens a request used against its key's budget.
    pub fn spend(&self, key: Option<usize>, tokens: usize) {
        if let Some(k) = key.and_then(|i| self.keys.get(i)) {
            let mut w = k.window.lock().unwrap_or_else(|p| p.into_inner());
            w.roll();
            w.tokens += tokens as u64;
        }
    }
}

fn parse_line(line: &str) -> std::result::Result<Key, String> {
    let mut parts = line.split_whitespace();
    let first = parts.next().unwrap_or_default();
    let hash = match first.strip_prefix("sha256:") {
        Some(hex) => parse_hex(hex).ok_or("`sha256:` must be followed by 64 hex digits")?,
        None => hash(first),
    };
    let (mut rpm, mut tpm) = (None, None);
    for p in parts {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| format!("expected `rpm=N` or `tpm=N`, found {p:?}"))?;
        let n: u64 = v
            .parse()
            .map_err(|_| format!("{k}: expected a whole number, found {v:?}"))?;
        match k {
            "rpm" => rpm = Some(n),
            "tpm" => tpm = Some(n),
            _ => return Err(format!("unknown budget {k:?} (rpm, tpm)")),
        }
    }
    Ok(Key {
        hash,
        rpm,
        tpm,
        window: Mutex::new(Window::new()),
    })
}

impl Window {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            requests: 0,
            tokens: 0,
        }
    }

    fn roll(&mut self) {
        if self.start.elapsed() >= Duration::from_secs(60) {
            *self = Self::new();
        }
    }

    fn retry_after(&self) -> u64 {
        60u64.saturating_sub(self.start.elapsed().as_secs()).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked_and_budgets_enforced() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let f = dir.path().join("keys");
        let hashed: String = hash("secret-2")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        std::fs::write(
            &f,
            format!("# keys\nsecret-1 rpm=2\nsha256:{hashed} tpm=10\n"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let keys = Keys::load(&["cli-key".into()], Some(&f)).unwrap_or_else(|e| panic!("{e}"));
        assert!(keys.enabled());
        assert_eq!(keys.check(None), Err(Refusal::Unauthorized));
        assert_eq!(keys.check(Some("nope")), Err(Refusal::Unauthorized));
        assert!(keys.check(Some("cli-key")).is_ok());
        assert!(keys.check(Some("secret-1")).is_ok());
        assert!(keys.check(Some("secret-1")).is_ok());
        assert!(matches!(
            keys.check(Some("secret-1")),
            Err(Refusal::OverBudget(..))
        ));
        let k = keys
            .check(Some("secret-2"))
            .unwrap_or_else(|e| panic!("{e:?}"));
        keys.spend(k, 12);
        assert!(matches!(
            keys.check(Some("secret-2")),
            Err(Refusal::OverBudget(..))
        ));
    }

    #[test]
    fn bad_lines_name_the_line() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let f = dir.path().join("keys");
        std::fs::write(&f, "good\nbad rpm=many\n").unwrap_or_else(|e| panic!("{e}"));
        let e = Keys::load(&[], Some(&f)).err().map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains(":2:") && e.contains("many")));
    }
}

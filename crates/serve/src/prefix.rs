//! The prefix cache: KV caches of prompts already run, kept so that a request that starts
//! with the same tokens (the same system prompt, the earlier turns of a conversation) runs
//! only what follows. Entries cover whole blocks of [`BLOCK`] tokens and are found by the hash
//! of their token prefix; the least recently used go first when the bytes they hold pass the
//! bound.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use duet_model::lm::LmCache;

/// Tokens per block: prefixes are shared in whole blocks.
pub const BLOCK: usize = 32;

/// One cached prefix.
#[derive(Debug)]
struct Entry {
    tokens: Vec<u32>,
    /// The hash of each of its whole-block prefixes (its keys in the index).
    hashes: Vec<u64>,
    cache: LmCache,
    bytes: usize,
    used: u64,
}

/// Cached prefixes under a memory bound.
#[derive(Debug)]
pub struct PrefixCache {
    entries: HashMap<u64, Entry>,
    /// Every whole-block prefix of every entry, by its hash: the newest entry that has it.
    index: HashMap<u64, u64>,
    next_id: u64,
    bytes: usize,
    budget: usize,
    clock: u64,
}

/// The hash of each whole-block prefix of `tokens`: `out[k]` is that of `tokens[..(k + 1) *
/// BLOCK]`.
fn block_hashes(tokens: &[u32]) -> Vec<u64> {
    let mut h = DefaultHasher::new();
    tokens
        .chunks_exact(BLOCK)
        .map(|block| {
            block.hash(&mut h);
            h.finish()
        })
        .collect()
}

impl PrefixCache {
    /// An empty cache holding at most `budget` bytes of keys and values (0: off).
    pub fn new(budget: usize) -> Self {
        Self {
            entries: HashMap::new(),
            index: HashMap::new(),
            next_id: 0,
            bytes: 0,
            budget,
            clock: 0,
        }
    }

    /// The longest cached prefix of `prompt`, in whole blocks, that leaves at least one token
    /// to run: a copy of its cache, holding that many positions.
    pub fn lookup(&mut self, prompt: &[u32]) -> Option<LmCache> {
        if self.budget == 0 || prompt.len() <= BLOCK {
            return None;
        }
        let usable = (prompt.len() - 1) / BLOCK * BLOCK;
        let hashes = block_hashes(&prompt[..usable]);
        self.clock += 1;
        for (k, h) in hashes.iter().enumerate().rev() {
            let len = (k + 1) * BLOCK;
            let Some(e) = self.index.get(h).and_then(|id| self.entries.get_mut(id)) else {
                continue;
            };
            if e.tokens.len() < len || e.tokens[..len] != prompt[..len] {
                continue;
            }
            e.used = self.clock;
            let mut c = e.cache.clone();
            if c.truncate(len).is_ok() && c.len() == len {
                return Some(c);
            }
        }
        None
    }

    /// Keeps `cache`, which holds the KV of `tokens` (at least), for its whole blocks.
    pub fn insert(&mut self, tokens: &[u32], cache: &LmCache) {
        let len = tokens.len().min(cache.len()) / BLOCK * BLOCK;
        if self.budget == 0 || len == 0 {
            return;
        }
        let hashes = block_hashes(&tokens[..len]);
        let covered = hashes
            .last()
            .and_then(|h| self.index.get(h))
            .and_then(|id| self.entries.get(id))
            .is_some_and(|e| e.tokens.len() >= len && e.tokens[..len] == tokens[..len]);
        if covered {
            return;
        }
        let mut c = cache.clone();
        if c.truncate(len).is_err() {
            return;
        }
        let bytes = c.bytes();
        if bytes > self.budget {
            return;
        }
        while self.bytes + bytes > self.budget {
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(&id, _)| id)
            else {
                break;
            };
            self.evict(oldest);
        }
        self.clock += 1;
        self.bytes += bytes;
        let id = self.next_id;
        self.next_id += 1;
        for &h in &hashes {
            self.index.insert(h, id);
        }
        self.entries.insert(
            id,
            Entry {
                tokens: tokens[..len].to_vec(),
                hashes,
                cache: c,
                bytes,
                used: self.clock,
            },
        );
    }

    /// Drops an entry and the index keys that lead to it.
    fn evict(&mut self, id: u64) {
        if let Some(e) = self.entries.remove(&id) {
            self.bytes -= e.bytes;
            for h in e.hashes {
                if self.index.get(&h) == Some(&id) {
                    self.index.remove(&h);
                }
            }
        }
    }
}

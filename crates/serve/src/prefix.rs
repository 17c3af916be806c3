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
    cache: LmCache,
    bytes: usize,
    used: u64,
}

/// Cached prefixes under a memory bound.
#[derive(Debug)]
pub struct PrefixCache {
    /// By the hash of each entry's tokens (whole blocks).
    entries: HashMap<u64, Entry>,
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
            bytes: 0,
            budget,
            clock: 0,
        }
    }

    /// The longest cached prefix of `prompt` that leaves at least one token to run: a copy of
    /// its cache, holding that many positions.
    pub fn lookup(&mut self, prompt: &[u32]) -> Option<LmCache> {
        if self.budget == 0 || prompt.len() <= BLOCK {
            return None;
        }
        let usable = (prompt.len() - 1) / BLOCK * BLOCK;
        let hashes = block_hashes(&prompt[..usable]);
        self.clock += 1;
        for (k, h) in hashes.iter().enumerate().rev() {
            let len = (k + 1) * BLOCK;
            let Some(e) = self.entries.get_mut(h) else {
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
        let Some(&h) = block_hashes(&tokens[..len]).last() else {
            return;
        };
        if self.entries.contains_key(&h) {
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
            let Some((&oldest, _)) = self.entries.iter().min_by_key(|(_, e)| e.used) else {
                break;
            };
            if let Some(e) = self.entries.remove(&oldest) {
                self.bytes -= e.bytes;
            }
        }
        self.clock += 1;
        self.bytes += bytes;
        self.entries.insert(
            h,
            Entry {
                tokens: tokens[..len].to_vec(),
                cache: c,
                bytes,
                used: self.clock,
            },
        );
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

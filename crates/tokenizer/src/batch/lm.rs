//! Random fixed-length windows for causal language modelling, seeded and resumable.

use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg32;
use serde::{Deserialize, Serialize};

use crate::shard::TokenStream;
use crate::{Error, Result};

/// One batch: `inputs[b][t]` predicts `targets[b][t]` (the next token), row-major `B × T`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LmBatch {
    /// Input ids, `batch × seq_len`.
    pub inputs: Vec<u32>,
    /// Target ids (inputs shifted by one), `batch × seq_len`.
    pub targets: Vec<u32>,
    /// Rows.
    pub batch: usize,
    /// Columns.
    pub seq_len: usize,
}

/// Draws windows at uniformly random offsets. The generator's state is serialisable, so a
/// resumed run draws exactly the batches the uninterrupted run would have.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LmBatcher {
    rng: Pcg32,
    /// Rows per batch.
    pub batch: usize,
    /// Tokens per row.
    pub seq_len: usize,
    /// Batches drawn so far.
    pub drawn: u64,
}

impl LmBatcher {
    /// A batcher seeded with `seed`.
    pub fn new(seed: u64, batch: usize, seq_len: usize) -> Self {
        Self {
            rng: Pcg32::seed_from_u64(seed),
            batch,
            seq_len,
            drawn: 0,
        }
    }

    /// The next random batch from `data`.
    pub fn next_batch(&mut self, data: &TokenStream) -> Result<LmBatch> {
        let (b, t) = (self.batch, self.seq_len);
        if data.len() < t + 1 {
            return Err(Error::Invalid(format!(
                "the data holds {} tokens, fewer than one window of {}",
                data.len(),
                t + 1
            )));
        }
        let mut inputs = Vec::with_capacity(b * t);
        let mut targets = Vec::with_capacity(b * t);
        let mut window = vec![0u32; t + 1];
        for _ in 0..b {
            let start = self.rng.random_range(0..=data.len() - t - 1);
            data.read(start, &mut window)?;
            inputs.extend_from_slice(&window[..t]);
            targets.extend_from_slice(&window[1..]);
        }
        self.drawn += 1;
        Ok(LmBatch {
            inputs,
            targets,
            batch: b,
            seq_len: t,
        })
    }
}

/// Consecutive, non-overlapping windows covering `data` once (for evaluation), at most
/// `max_batches` batches.
pub fn eval_batches(
    data: &TokenStream,
    batch: usize,
    seq_len: usize,
    max_batches: usize,
) -> Result<Vec<LmBatch>> {
    let windows = data.len().saturating_sub(1) / seq_len;
    let mut out = Vec::new();
    let mut window = vec![0u32; seq_len + 1];
    let mut w = 0;
    while w < windows && out.len() < max_batches {
        let rows = batch.min(windows - w);
        let mut inputs = Vec::with_capacity(rows * seq_len);
        let mut targets = Vec::with_capacity(rows * seq_len);
        for r in 0..rows {
            data.read((w + r) * seq_len, &mut window)?;
            inputs.extend_from_slice(&window[..seq_len]);
            targets.extend_from_slice(&window[1..]);
        }
        w += rows;
        out.push(LmBatch {
            inputs,
            targets,
            batch: rows,
            seq_len,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::ShardWriter;

    fn stream(dir: &std::path::Path, n: u32) -> TokenStream {
        let p = dir.join("s.bin");
        let mut w = ShardWriter::create(&p, 1000, crate::shard::NO_SEPARATOR).unwrap();
        w.push_doc(&(0..n).collect::<Vec<_>>(), u64::from(n))
            .unwrap();
        w.finish().unwrap();
        TokenStream::open(&[p]).unwrap()
    }

    #[test]
    fn targets_are_inputs_shifted_and_resume_is_exact() {
        let dir = tempfile::tempdir().unwrap();
        let data = stream(dir.path(), 500);
        let mut a = LmBatcher::new(42, 4, 8);
        let first = a.next_batch(&data).unwrap();
        for row in 0..4 {
            let i = &first.inputs[row * 8..row * 8 + 8];
            let t = &first.targets[row * 8..row * 8 + 8];
            assert!(i.iter().zip(t).all(|(x, y)| y == &(x + 1)));
        }
        let saved = serde_json::to_string(&a).unwrap();
        let next = a.next_batch(&data).unwrap();
        let mut resumed: LmBatcher = serde_json::from_str(&saved).unwrap();
        assert_eq!(resumed.next_batch(&data).unwrap(), next);
    }

    #[test]
    fn eval_windows_cover_the_data_once() {
        let dir = tempfile::tempdir().unwrap();
        let data = stream(dir.path(), 101);
        let batches = eval_batches(&data, 3, 10, 100).unwrap();
        let rows: usize = batches.iter().map(|b| b.batch).sum();
        assert_eq!(rows, 10);
        assert_eq!(batches.last().unwrap().targets.last(), Some(&100));
        assert!(LmBatcher::new(0, 1, 200).next_batch(&data).is_err());
    }
}

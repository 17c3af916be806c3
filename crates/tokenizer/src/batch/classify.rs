//! Padded batches for sequence and token classification: truncation, dynamic padding to the
//! longest sequence of the batch, attention masks.

/// A batch of token sequences padded to one length, row-major `batch × seq_len`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaddedBatch {
    /// Token ids, padded with the pad id.
    pub ids: Vec<u32>,
    /// 1 for real tokens, 0 for padding.
    pub attention_mask: Vec<u32>,
    /// Segment ids (all 0 for single sequences).
    pub type_ids: Vec<u32>,
    /// Rows.
    pub batch: usize,
    /// Columns.
    pub seq_len: usize,
}

/// Pads `seqs` to the longest (at most `max_len`), truncating longer ones. When a sequence is
/// truncated and `keep_last` is given, its last position becomes that id (BERT's `[SEP]`).
pub fn pad_batch(
    seqs: &[Vec<u32>],
    max_len: usize,
    pad_id: u32,
    keep_last: Option<u32>,
) -> PaddedBatch {
    let seq_len = seqs.iter().map(Vec::len).max().unwrap_or(0).min(max_len);
    let batch = seqs.len();
    let mut ids = vec![pad_id; batch * seq_len];
    let mut attention_mask = vec![0; batch * seq_len];
    for (row, s) in seqs.iter().enumerate() {
        let n = s.len().min(seq_len);
        let dst = &mut ids[row * seq_len..row * seq_len + n];
        dst.copy_from_slice(&s[..n]);
        if let Some(last) = keep_last.filter(|_| s.len() > seq_len && n > 0) {
            dst[n - 1] = last;
        }
        attention_mask[row * seq_len..row * seq_len + n]
            .iter_mut()
            .for_each(|m| *m = 1);
    }
    PaddedBatch {
        ids,
        attention_mask,
        type_ids: vec![0; batch * seq_len],
        batch,
        seq_len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_truncates_and_masks() {
        let b = pad_batch(
            &[vec![101, 5, 102], vec![101, 6, 7, 8, 9, 102]],
            4,
            0,
            Some(102),
        );
        assert_eq!((b.batch, b.seq_len), (2, 4));
        assert_eq!(b.ids, [101, 5, 102, 0, 101, 6, 7, 102]);
        assert_eq!(b.attention_mask, [1, 1, 1, 0, 1, 1, 1, 1]);
        let empty = pad_batch(&[], 8, 0, None);
        assert_eq!(empty.ids.len(), 0);
    }
}

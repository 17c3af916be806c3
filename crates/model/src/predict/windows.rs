//! Encoder inputs: a text or a sentence's words cut into `[CLS] … [SEP]` windows, padded into
//! batches, and the word splitting BERT's basic tokenizer does.

use std::path::Path;

use candle_core::{Device, Tensor};
use tokenizers::Tokenizer;

use crate::{Error, Result};

/// The tokenizer of an encoder directory, with its own padding and truncation turned off.
pub fn encoder_tokenizer(dir: &Path) -> Result<Tokenizer> {
    let mut t = crate::load_tokenizer(dir)?;
    t.with_padding(None);
    t.with_truncation(None)
        .map_err(|e| Error::Tokenizer(format!("{}: {e}", dir.display())))?;
    Ok(t)
}

/// A fine-tuned encoder directory's `config.json` and its labels (`id2label`), refused when it
/// names none.
pub fn labelled_config(dir: &Path) -> Result<(crate::bert::Config, Vec<String>)> {
    let path = dir.join("config.json");
    let cfg = crate::bert::Config::load(&path)?;
    let labels = cfg.labels();
    if labels.is_empty() {
        return Err(Error::Config {
            path,
            message: "names no labels (id2label)".into(),
        });
    }
    Ok((cfg, labels))
}

/// The window length a fine-tuned encoder was trained with (`duet_max_length` in its config),
/// else its number of positions, at most 512.
pub fn window_len(cfg: &crate::bert::Config) -> usize {
    cfg.extra
        .get("duet_max_length")
        .and_then(|v| v.as_u64())
        .map_or(cfg.max_position_embeddings.min(512), |v| v as usize)
}

/// The id of a special token the encoder needs.
fn special(tok: &Tokenizer, s: &str) -> Result<u32> {
    tok.token_to_id(s)
        .ok_or_else(|| Error::Tokenizer(format!("the encoder's tokenizer has no {s} token")))
}

/// Token windows of a text: `[CLS] … [SEP]` pieces of at most `max_len` tokens, at most
/// `chunks` of them.
pub fn windows(
    tok: &Tokenizer,
    text: &str,
    max_len: usize,
    chunks: usize,
) -> Result<Vec<Vec<u32>>> {
    let enc = tok
        .encode(text, false)
        .map_err(|e| Error::Tokenizer(e.to_string()))?;
    let ids = enc.get_ids();
    let (cls, sep) = (special(tok, "[CLS]")?, special(tok, "[SEP]")?);
    let body = max_len.saturating_sub(2).max(1);
    let mut out: Vec<Vec<u32>> = ids
        .chunks(body)
        .take(chunks.max(1))
        .map(|c| {
            std::iter::once(cls)
                .chain(c.iter().copied())
                .chain(std::iter::once(sep))
                .collect()
        })
        .collect();
    if out.is_empty() {
        out.push(vec![cls, sep]);
    }
    Ok(out)
}

/// A window of one sentence: `[CLS] pieces [SEP]`, and for each word of the window the position
/// of its first piece.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Token ids.
    pub ids: Vec<u32>,
    /// The sentence's word index of the window's first word.
    pub first_word: usize,
    /// Position of each word's first piece in `ids`.
    pub heads: Vec<usize>,
}

/// Cuts a sentence's words into windows of at most `max_len` tokens at word boundaries (a word
/// longer than a whole window keeps only its first pieces).
pub fn word_windows(tok: &Tokenizer, words: &[&str], max_len: usize) -> Result<Vec<Window>> {
    let (cls, sep) = (special(tok, "[CLS]")?, special(tok, "[SEP]")?);
    let body = max_len.saturating_sub(2).max(1);
    // Pieces of every word, in one call (the tokenizer still pre-tokenizes inside a word).
    let enc = tok
        .encode(words.to_vec(), false)
        .map_err(|e| Error::Tokenizer(e.to_string()))?;
    let mut pieces: Vec<Vec<u32>> = vec![Vec::new(); words.len()];
    for (&id, w) in enc.get_ids().iter().zip(enc.get_word_ids()) {
        if let Some(w) = w.and_then(|w| pieces.get_mut(w as usize)) {
            w.push(id);
        }
    }
    let unk = tok.token_to_id("[UNK]").unwrap_or(0);
    let mut out = Vec::new();
    let mut cur = Window {
        ids: vec![cls],
        first_word: 0,
        heads: Vec::new(),
    };
    for (i, p) in pieces.iter_mut().enumerate() {
        if p.is_empty() {
            // A word the tokenizer drops entirely (a control character): one [UNK] keeps it.
            p.push(unk);
        }
        let p = &p[..p.len().min(body)];
        if cur.ids.len() - 1 + p.len() > body && !cur.heads.is_empty() {
            cur.ids.push(sep);
            out.push(std::mem::replace(
                &mut cur,
                Window {
                    ids: vec![cls],
                    first_word: i,
                    heads: Vec::new(),
                },
            ));
        }
        cur.heads.push(cur.ids.len());
        cur.ids.extend_from_slice(p);
    }
    cur.ids.push(sep);
    out.push(cur);
    Ok(out)
}

/// Pads sequences into `(ids, mask)` tensors of the longest length.
pub fn pad(seqs: &[&[u32]], pad_id: u32, dev: &Device) -> Result<(Tensor, Tensor)> {
    let t = seqs.iter().map(|s| s.len()).max().unwrap_or(1).max(1);
    let mut ids = Vec::with_capacity(seqs.len() * t);
    let mut mask = Vec::with_capacity(seqs.len() * t);
    for s in seqs {
        ids.extend_from_slice(s);
        ids.extend(std::iter::repeat_n(pad_id, t - s.len()));
        mask.extend(std::iter::repeat_n(1u32, s.len()));
        mask.extend(std::iter::repeat_n(0u32, t - s.len()));
    }
    Ok((
        Tensor::from_vec(ids, (seqs.len(), t), dev)?,
        Tensor::from_vec(mask, (seqs.len(), t), dev)?,
    ))
}

/// Softmax of one row.
pub fn softmax(l: &[f32]) -> Vec<f32> {
    let m = l.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = l.iter().map(|v| (v - m).exp()).collect();
    let s: f32 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

/// Splits text into words as BERT's basic tokenizer does: runs of letters and digits, and every
/// other visible character (punctuation, a CJK ideograph) on its own. Byte ranges.
pub fn split_words(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    for (i, c) in text.char_indices() {
        let wordy = c.is_alphanumeric() && !is_cjk(c);
        if wordy {
            start.get_or_insert(i);
            continue;
        }
        if let Some(s) = start.take() {
            out.push((s, i));
        }
        if !c.is_whitespace() && !c.is_control() {
            out.push((i, i + c.len_utf8()));
        }
    }
    if let Some(s) = start {
        out.push((s, text.len()));
    }
    out
}

/// CJK ideographs are words of their own, as in BERT.
fn is_cjk(c: char) -> bool {
    matches!(u32::from(c),
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0x2A700..=0x2CEAF
        | 0xF900..=0xFAFF | 0x2F800..=0x2FA1F)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_like_bert() {
        let t = "Hi, I'm in 北京 now.";
        let w: Vec<&str> = split_words(t).iter().map(|&(s, e)| &t[s..e]).collect();
        assert_eq!(w, ["Hi", ",", "I", "'", "m", "in", "北", "京", "now", "."]);
    }

    #[test]
    fn padding_masks_the_tail() {
        let (ids, mask) = pad(&[&[5, 6, 7], &[8]], 0, &Device::Cpu).unwrap();
        assert_eq!(ids.to_vec2::<u32>().unwrap(), [[5, 6, 7], [8, 0, 0]]);
        assert_eq!(mask.to_vec2::<u32>().unwrap(), [[1, 1, 1], [1, 0, 0]]);
    }
}

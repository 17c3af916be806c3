#!/usr/bin/env python3
"""A stand-in token directory in duet's shard format, for testing train_torch.py without duet.

The benchmark proper trains on tokens that *duet* encodes (see README.md). This script only
exists so that the PyTorch side can be exercised before that: it writes the same format
(manifest.json + 64-byte-header shards) from

  --source fortunes  every English fortune (data/external/fortunes/*, entries split on `%`
                     lines), shuffled with seed 0, 5% held out as the valid split, encoded with
                     the 4,000-id byte-level BPE testdata/tokenizer/bpe.json (trained by duet on
                     the fortunes) through the Hugging Face `tokenizers` library, `<|endoftext|>`
                     after each document (what duet's encoder does);
  --source random    seeded uniform random ids (only to test plumbing; nothing to learn).

Usage: data/pyenv/bin/python bench/train-lm/make_test_tokens.py --out data/bench/train-lm/tokens-test
"""
import argparse
import hashlib
import json
import random
import struct
from pathlib import Path

import numpy as np

MAGIC = b"DUETTOK\0"
NO_SEP = 0xFFFFFFFF


def write_shard(path: Path, ids: np.ndarray, docs: int, text_bytes: int, vocab: int, sep: int):
    width = 2 if vocab <= 65536 else 4
    head = MAGIC + struct.pack("<IIQQQII", 1, width, len(ids), docs, text_bytes, vocab, sep)
    head += b"\0" * (64 - len(head))
    assert len(head) == 64
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(head)
        f.write(ids.astype("<u2" if width == 2 else "<u4").tobytes())


def fortunes(root: Path) -> list[str]:
    docs = []
    for f in sorted(p for p in root.iterdir() if p.is_file() and "." not in p.name):
        cur: list[str] = []
        for line in f.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.strip() == "%":
                if cur and "".join(cur).strip():
                    docs.append("\n".join(cur).strip("\n"))
                cur = []
            else:
                cur.append(line)
        if cur and "".join(cur).strip():
            docs.append("\n".join(cur).strip("\n"))
    return docs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--source", choices=["fortunes", "random"], default="fortunes")
    ap.add_argument("--fortunes", default="data/external/fortunes")
    ap.add_argument("--tokenizer", default="testdata/tokenizer/bpe.json")
    ap.add_argument("--valid-share", type=float, default=0.05)
    ap.add_argument("--random-tokens", type=int, default=200_000)
    ap.add_argument("--random-vocab", type=int, default=4000)
    a = ap.parse_args()
    out = Path(a.out)
    splits = {}
    if a.source == "random":
        rng = np.random.default_rng(0)
        vocab, sep, sep_name = a.random_vocab, NO_SEP, None
        for name, n in [("train", a.random_tokens), ("valid", a.random_tokens // 10)]:
            ids = rng.integers(0, vocab, size=n)
            shard = f"{name}/tokens-00000.bin"
            write_shard(out / shard, ids, 1, n, vocab, sep)
            splits[name] = {"docs": 1, "tokens": n, "text_bytes": n, "shards": [shard], "by_lang": {}}
        tok_sha = "random"
    else:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(a.tokenizer)
        vocab = tok.get_vocab_size(with_added_tokens=True)
        sep_name = "<|endoftext|>"
        sep = tok.token_to_id(sep_name)
        docs = fortunes(Path(a.fortunes))
        random.Random(0).shuffle(docs)
        n_valid = max(1, int(len(docs) * a.valid_share))
        parts = {"valid": docs[:n_valid], "train": docs[n_valid:]}
        for name, texts in parts.items():
            encs = tok.encode_batch(texts, add_special_tokens=False)
            chunks = []
            for e in encs:
                chunks.append(np.asarray(e.ids, dtype=np.int64))
                chunks.append(np.asarray([sep], dtype=np.int64))
            ids = np.concatenate(chunks)
            nbytes = sum(len(t.encode("utf-8")) for t in texts)
            shard = f"{name}/tokens-00000.bin"
            write_shard(out / shard, ids, len(texts), nbytes, vocab, sep)
            splits[name] = {"docs": len(texts), "tokens": int(len(ids)), "text_bytes": nbytes,
                            "shards": [shard], "by_lang": {"en": [nbytes, int(len(ids)) - len(texts)]}}
        tok_sha = hashlib.sha256(Path(a.tokenizer).read_bytes()).hexdigest()
    manifest = {
        "tokenizer_sha256": tok_sha,
        "corpus_manifest_sha256": "stand-in (bench/train-lm/make_test_tokens.py, not a duet corpus)",
        "vocab_size": vocab,
        "width": 2 if vocab <= 65536 else 4,
        "separator": [sep_name, sep] if sep_name else None,
        "splits": splits,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    print(json.dumps({"out": str(out), "vocab_size": vocab,
                      **{k: {"docs": v["docs"], "tokens": v["tokens"], "text_bytes": v["text_bytes"]} for k, v in splits.items()}}))


if __name__ == "__main__":
    main()

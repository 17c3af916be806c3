"""Shared by the peers: the two data sets read exactly as duet reads them, their splits, and metrics.

duet (crates/train/src/classify/data.rs) reads
  * SMS Spam: headerless `label<TAB>text`, no quoting, one message a line; id `spam_collection.csv#<row>`
  * BBC News: a folder per label, one file per article, id `<label>/<file>`, text = the whole file
and decodes a file as UTF-8, or as Windows-1252 when it is not UTF-8.
"""

import json
import os
import random

DATASETS = {
    "sms": ("data/external/sms-spam/spam_collection.csv", "testdata/splits/sms-spam.json"),
    # The plain split the bar was measured on: duplicates may straddle it (plain_split.py).
    "sms-plain": ("data/external/sms-spam/spam_collection.csv", "testdata/splits/sms-spam-plain.json"),
    "bbc": ("data/external/bbc-news", "testdata/splits/bbc-news.json"),
}


def decode(raw):
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def load(path):
    """[(id, text, label)] in duet's order."""
    if os.path.isdir(path):
        out = []
        for label in sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d))):
            folder = os.path.join(path, label)
            for name in sorted(f for f in os.listdir(folder) if os.path.isfile(os.path.join(folder, f))):
                with open(os.path.join(folder, name), "rb") as f:
                    out.append((f"{label}/{name}", decode(f.read()), label))
        return out
    with open(path, "rb") as f:
        text = decode(f.read())
    base = os.path.basename(path)
    out = []
    for line in text.split("\n"):
        line = line.rstrip("\r")
        if not line:
            continue
        label, body = line.split("\t")[:2]
        out.append((f"{base}#{len(out)}", body, label.strip()))
    return out


def split(name, valid_share=0.0, seed=0):
    """(train, valid, test) lists of (id, text, label) for data set `name` (sms or bbc): test = the
    split file's test ids; valid = a stratified, seeded `valid_share` of the rest (empty for 0)."""
    data_path, split_path = DATASETS[name]
    examples = load(data_path)
    with open(split_path) as f:
        test_ids = set(json.load(f)["test"])
    test = [e for e in examples if e[0] in test_ids]
    rest = [e for e in examples if e[0] not in test_ids]
    assert len(test) == len(test_ids), f"{len(test_ids) - len(test)} test ids not found in {data_path}"
    held = set()
    if valid_share > 0:
        rng = random.Random(seed)
        by = {}
        for i, e in enumerate(rest):
            by.setdefault(e[2], []).append(i)
        for label in sorted(by):
            idx = by[label]
            rng.shuffle(idx)
            held.update(idx[: round(len(idx) * valid_share)])
    train = [e for i, e in enumerate(rest) if i not in held]
    valid = [e for i, e in enumerate(rest) if i in held]
    return train, valid, test


def write_jsonl(path, examples):
    with open(path, "w", encoding="utf-8") as f:
        for i, t, l in examples:
            f.write(json.dumps({"id": i, "text": t, "label": l}, ensure_ascii=False) + "\n")


def metrics(truth, pred, labels):
    """Accuracy, macro-F1 and per-class precision/recall/F1/support, as duet's metrics.json names them."""
    n = len(truth)
    per = {}
    for c in labels:
        tp = sum(1 for t, p in zip(truth, pred) if t == c and p == c)
        fp = sum(1 for t, p in zip(truth, pred) if t != c and p == c)
        fn = sum(1 for t, p in zip(truth, pred) if t == c and p != c)
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per[c] = {"precision": prec, "recall": rec, "f1": f1, "support": tp + fn}
    return {
        "accuracy": sum(1 for t, p in zip(truth, pred) if t == p) / n,
        "macro_f1": sum(v["f1"] for v in per.values()) / len(labels),
        "per_class": per,
        "examples": n,
    }

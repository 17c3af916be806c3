"""Golden entity-level metrics from seqeval for crates/eval/tests/seqeval_golden.rs.

Seeded random BIO sequences (with I- tags that start entities, as IOB1 and sloppy taggers write
them) and noisy predictions of them, scored by seqeval's default (conlleval) mode.
Run: data/pyenv/bin/python testdata/eval/make_entities_golden.py
"""

import json
import pathlib
import random

import seqeval
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score

rng = random.Random(20261129)
kinds = ["PER", "LOC", "ORG", "MISC"]
tags = ["O"] * 6 + [p + k for k in kinds for p in ("B-", "I-")]
truth, pred = [], []
for _ in range(300):
    n = rng.randint(1, 25)
    t = [rng.choice(tags) for _ in range(n)]
    p = [x if rng.random() < 0.8 else rng.choice(tags) for x in t]
    truth.append(t)
    pred.append(p)
report = classification_report(truth, pred, output_dict=True, zero_division=0)
per_type = {k: {"precision": float(v["precision"]), "recall": float(v["recall"]), "f1": float(v["f1-score"]), "support": int(v["support"])}
            for k, v in report.items() if k in kinds}
out = {
    "seqeval_version": getattr(seqeval, "__version__", "1.2.2"),
    "truth": truth,
    "pred": pred,
    "precision": float(precision_score(truth, pred)),
    "recall": float(recall_score(truth, pred)),
    "f1": float(f1_score(truth, pred)),
    "macro_f1": float(report["macro avg"]["f1-score"]),
    "per_type": per_type,
}
(pathlib.Path(__file__).parent / "entities_golden.json").write_text(json.dumps(out) + "\n")
print("wrote entities_golden.json")

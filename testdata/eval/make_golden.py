"""Golden classification metrics from scikit-learn for crates/eval/tests/sklearn_golden.rs.

Seeded random predictions (binary with probabilities, and 4-class), scored with
scikit-learn; golden.json holds inputs and outputs. Run: data/pyenv/bin/python testdata/eval/make_golden.py
"""

import json
import pathlib

import numpy as np
import sklearn
from sklearn import metrics

rng = np.random.default_rng(20261129)
cases = []
for name, k, n in [("binary", 2, 400), ("four_class", 4, 500)]:
    y_true = rng.integers(0, k, n)
    # Predictions that are right about 70% of the time, probabilities that follow them.
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), y_true] += 1.5
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y_pred = probs.argmax(1)
    p, r, f, s = metrics.precision_recall_fscore_support(y_true, y_pred, labels=list(range(k)), zero_division=0)
    case = {
        "name": name,
        "y_true": y_true.tolist(),
        "y_pred": y_pred.tolist(),
        "probs": probs.astype(np.float32).tolist(),
        "accuracy": metrics.accuracy_score(y_true, y_pred),
        "precision": p.tolist(),
        "recall": r.tolist(),
        "f1": f.tolist(),
        "support": s.tolist(),
        "macro_f1": metrics.f1_score(y_true, y_pred, average="macro", zero_division=0),
        "micro_f1": metrics.f1_score(y_true, y_pred, average="micro", zero_division=0),
        "weighted_f1": metrics.f1_score(y_true, y_pred, average="weighted", zero_division=0),
        "confusion": metrics.confusion_matrix(y_true, y_pred, labels=list(range(k))).tolist(),
    }
    if k == 2:
        case["roc_auc"] = metrics.roc_auc_score(y_true, probs.astype(np.float32)[:, 1])
        case["pr_auc"] = metrics.average_precision_score(y_true, probs.astype(np.float32)[:, 1])
    cases.append(case)
out = {"sklearn_version": sklearn.__version__, "cases": cases}
(pathlib.Path(__file__).parent / "golden.json").write_text(json.dumps(out) + "\n")
print(f"wrote golden.json with scikit-learn {sklearn.__version__}")

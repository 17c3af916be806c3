"""The scikit-learn side of the TF-IDF baseline: the features and classifier duet's
`--model tfidf` documents (crates/train/src/classify/tfidf.rs), fitted on the same training
examples (the train side of testdata/splits/<set>.json, all of it: duet runs with
data.valid_share=0) and scored on the test ids.

  TfidfVectorizer(word, 1-2 grams, sublinear_tf)  +  TfidfVectorizer(char_wb, 2-5 grams, sublinear_tf)
  -> hstack (each part L2-normalised by its own vectorizer) -> LogisticRegression(C, lbfgs, max_iter)

One note on C: duet fits a softmax with one weight row per class and ½‖W‖² over all rows, also for
two classes; scikit-learn fits a binary problem with one weight vector. The two objectives are the
same when scikit-learn's C is twice duet's (w = w_spam − w_ham, ½(‖w_ham‖²+‖w_spam‖²) = ¼‖w‖² at the
optimum), so --match-duet-objective doubles C for two classes.

  tfidf_peer.py --dataset sms --out result.json [--c 10] [--match-duet-objective] [--balanced]
                [--duet-model RUN/best]   (also: agreement with duet's predictions, SMS)
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import metrics, split  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--dataset", choices=["sms", "bbc"], required=True)
ap.add_argument("--out", required=True)
ap.add_argument("--c", type=float, default=10.0)
ap.add_argument("--max-iter", type=int, default=300)
ap.add_argument("--balanced", action="store_true", help="class_weight='balanced' (duet: loss.class_weights=auto)")
ap.add_argument("--match-duet-objective", action="store_true", help="C × 2 for two classes (see the docstring)")
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--duet-model", help="duet's TF-IDF classifier (RUN/best): compare its test predictions "
                "(`duet classify`, one text a line: only for data without line breaks in texts)")
ap.add_argument("--duet", default="data/bench/duet-cls")
a = ap.parse_args()

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, str(a.threads))
import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
import sklearn  # noqa: E402
from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

train, _, test = split(a.dataset, 0.0)
labels = sorted({e[2] for e in train})
x_train, y_train = [e[1] for e in train], [e[2] for e in train]
x_test, y_test = [e[1] for e in test], [e[2] for e in test]
c = a.c * 2 if a.match_duet_objective and len(labels) == 2 else a.c

t0 = time.perf_counter()
word = TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True)
char = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)
xw, xc = word.fit_transform(x_train), char.fit_transform(x_train)
xtr = sp.hstack([xw, xc]).tocsr()
t_feat = time.perf_counter() - t0
clf = LogisticRegression(C=c, solver="lbfgs", max_iter=a.max_iter,
                         class_weight="balanced" if a.balanced else None)
clf.fit(xtr, y_train)
fit_s = time.perf_counter() - t0

t1 = time.perf_counter()
xte = sp.hstack([word.transform(x_test), char.transform(x_test)]).tocsr()
pred = list(clf.predict(xte))
predict_s = time.perf_counter() - t1

m = metrics(y_test, pred, labels)
vs_duet = None
if a.duet_model and not any("\n" in t or "\r" in t for t in x_test):
    import subprocess
    res = subprocess.run([a.duet, "classify", "--model", a.duet_model, "-"], input="\n".join(x_test) + "\n",
                         capture_output=True, text=True, check=True,
                         env=dict(os.environ, RAYON_NUM_THREADS=str(a.threads)))
    duet = [json.loads(l) for l in res.stdout.splitlines() if l.strip()]
    dp = np.array([[d["probs"][l] for l in labels] for d in duet])
    sp_ = clf.predict_proba(xte)  # columns in clf.classes_ order = sorted labels
    vs_duet = {"label_agreement": float(np.mean(dp.argmax(1) == sp_.argmax(1))),
               "max_abs_prob_diff": float(np.abs(dp - sp_).max()),
               "mean_abs_prob_diff": float(np.abs(dp - sp_).mean())}
out = {
    "side": "scikit-learn",
    "dataset": a.dataset,
    "sklearn": sklearn.__version__,
    "c": c,
    "balanced": a.balanced,
    "train_examples": len(train),
    "test_examples": len(test),
    "features": int(xtr.shape[1]),
    "word_features": int(xw.shape[1]),
    "char_features": int(xc.shape[1]),
    "n_iter": int(np.max(clf.n_iter_)),
    "featurize_seconds": t_feat,
    "train_seconds": fit_s,
    "predict_seconds": predict_s,
    "vs_duet": vs_duet,
    **m,
}
with open(a.out, "w") as f:
    json.dump(out, f, indent=1)
print(f"sklearn {a.dataset} C={c}: {out['features']} features, {out['n_iter']} iterations, fit {fit_s:.2f} s, "
      f"accuracy {m['accuracy']:.4f}, macro F1 {m['macro_f1']:.4f}", file=sys.stderr)

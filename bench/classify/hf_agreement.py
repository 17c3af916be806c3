"""Does a classifier duet saved load and predict the same in Hugging Face transformers?

Loads RUN/best with BertForSequenceClassification.from_pretrained and AutoTokenizer, predicts the
test split, and compares with `duet classify --model RUN/best -` (one text a line on stdin, JSON
lines {"label", "probs", "score", "text"} out). Texts are cut to duet's window as duet does:
[CLS] first duet_max_length-2 word pieces [SEP] (config.json's duet_max_length).

  hf_agreement.py --model RUN/best --dataset sms --duet data/bench/duet-cls --out agree.json
"""

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import split  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True, help="a classifier directory duet wrote (RUN/best)")
ap.add_argument("--dataset", choices=["sms", "bbc"], default="sms")
ap.add_argument("--duet", default="data/bench/duet-cls")
ap.add_argument("--out", required=True)
ap.add_argument("--threads", type=int, default=2)
a = ap.parse_args()

import torch  # noqa: E402
from transformers import AutoTokenizer, BertForSequenceClassification  # noqa: E402

torch.set_num_threads(a.threads)
test = split(a.dataset, 0.0)[2]
# duet reads one text a line: a text with a line break would become two inputs.
texts = [e[1] for e in test]
multiline = [e[0] for e in test if "\n" in e[1] or "\r" in e[1]]
if multiline:
    texts = [" ".join(t.split()) for t in texts]

cfg = json.load(open(os.path.join(a.model, "config.json")))
max_len = int(cfg.get("duet_max_length", 512))
tok = AutoTokenizer.from_pretrained(a.model)
model = BertForSequenceClassification.from_pretrained(a.model).eval()
labels = [model.config.id2label[i] for i in range(model.config.num_labels)]

t0 = time.perf_counter()
hf_probs = []
with torch.no_grad():
    for k in range(0, len(texts), 32):
        enc = tok(texts[k:k + 32], truncation=True, max_length=max_len, padding=True, return_tensors="pt")
        hf_probs += torch.softmax(model(**enc).logits, -1).tolist()
hf_s = time.perf_counter() - t0

t0 = time.perf_counter()
env = dict(os.environ, RAYON_NUM_THREADS=str(a.threads))
res = subprocess.run([a.duet, "classify", "--model", a.model, "-"], input="\n".join(texts) + "\n",
                     capture_output=True, text=True, env=env, check=True)
duet_s = time.perf_counter() - t0
duet = [json.loads(l) for l in res.stdout.splitlines() if l.strip()]
assert len(duet) == len(texts), f"duet answered {len(duet)} lines for {len(texts)} texts"

hf_pred = [labels[max(range(len(p)), key=p.__getitem__)] for p in hf_probs]
duet_pred = [d["label"] for d in duet]
duet_probs = [d["probs"] for d in duet]
# `probs` may be a list in label order or a {label: p} map.
if duet_probs and isinstance(duet_probs[0], dict):
    duet_probs = [[p[l] for l in labels] for p in duet_probs]
agree = sum(h == d for h, d in zip(hf_pred, duet_pred))
diff = [max(abs(x - y) for x, y in zip(h, d)) for h, d in zip(hf_probs, duet_probs)]
truth = [e[2] for e in test]
out = {
    "model": a.model,
    "dataset": a.dataset,
    "examples": len(texts),
    "multiline_texts_joined": len(multiline),
    "max_length": max_len,
    "agreement": agree / len(texts),
    "disagreements": [{"id": test[i][0], "hf": hf_pred[i], "duet": duet_pred[i], "hf_probs": hf_probs[i],
                       "duet_probs": duet_probs[i]} for i in range(len(texts)) if hf_pred[i] != duet_pred[i]],
    "max_abs_prob_diff": max(diff),
    "mean_abs_prob_diff": sum(diff) / len(diff),
    "hf_accuracy": sum(p == t for p, t in zip(hf_pred, truth)) / len(truth),
    "duet_accuracy": sum(p == t for p, t in zip(duet_pred, truth)) / len(truth),
    "hf_seconds": hf_s,
    "duet_classify_seconds": duet_s,
}
with open(a.out, "w") as f:
    json.dump(out, f, indent=1)
print(f"agreement {100 * out['agreement']:.2f}% on {len(texts)} texts; max |Δp| {out['max_abs_prob_diff']:.2e}; "
      f"accuracy HF {out['hf_accuracy']:.4f} duet {out['duet_accuracy']:.4f}", file=sys.stderr)

"""The Hugging Face side of the fine-tuning benchmark: transformers'
AutoModelForSequenceClassification on the MiniLM encoder, trained with a plain PyTorch loop on
the same examples with duet's recipe (crates/train/src/classify/{config,task}.rs, trainer.rs,
optim.rs, schedule.rs), so that the samples/s are the training steps alone.

The recipe, as duet's defaults give it:
  * inputs: [CLS] first max_length-2 word pieces [SEP], padded to the longest in the batch
  * batches of 16 drawn from a stream of seeded shuffles of the training set (a batch may span two
    epochs, as duet's sampler); steps = round(epochs × ceil(n / 16))
  * AdamW(β 0.9/0.999, ε 1e-8), lr 5e-5, weight decay 0.01 on tensors of rank ≥ 2 only (no decay
    on biases and LayerNorm weights); gradient norm clipped to 1.0
  * warm-up round(0.1 × steps) steps, lr·(s+1)/warm-up, then linear decay to 0 (duet's schedule.rs)
  * dropout 0.1; cross-entropy, optionally with inverse-frequency class weights (scikit-learn's
    "balanced": n / (k · n_c)), the weighted mean dividing by the sum of the batch's weights
  * evaluated on the validation set after every epoch and at the end; the best validation
    macro-F1 is kept (duet's best/) and scored on the test ids

  finetune_peer.py --dataset sms --split data/bench/classify/split-sms --out DIR [--class-weights auto]
"""

import argparse
import copy
import json
import math
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import DATASETS, metrics, split  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--dataset", choices=sorted(DATASETS), required=True)
ap.add_argument("--split", required=True, help="make_split.py's directory (train.jsonl, valid.jsonl)")
ap.add_argument("--out", required=True)
ap.add_argument("--model", default="data/external/minilm")
ap.add_argument("--class-weights", choices=["none", "auto"], default="none")
ap.add_argument("--max-length", type=int, default=128)
ap.add_argument("--epochs", type=float, default=3.0)
ap.add_argument("--batch-size", type=int, default=16)
ap.add_argument("--lr", type=float, default=5e-5)
ap.add_argument("--weight-decay", type=float, default=0.01)
ap.add_argument("--warmup-ratio", type=float, default=0.1)
ap.add_argument("--grad-clip", type=float, default=1.0)
ap.add_argument("--seed", type=int, default=1337)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--log-every", type=int, default=10)
a = ap.parse_args()

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoModelForSequenceClassification, AutoTokenizer  # noqa: E402

torch.set_num_threads(a.threads)
torch.manual_seed(a.seed)
os.makedirs(a.out, exist_ok=True)


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [(d["id"], d["text"], d["label"]) for d in map(json.loads, f)]


train = read_jsonl(os.path.join(a.split, "train.jsonl"))
valid = read_jsonl(os.path.join(a.split, "valid.jsonl"))
test = split(a.dataset, 0.0)[2]
labels = sorted({e[2] for e in train})
index = {l: i for i, l in enumerate(labels)}

tok = AutoTokenizer.from_pretrained(a.model)


def encode(examples):
    enc = tok([e[1] for e in examples], truncation=True, max_length=a.max_length)
    return enc["input_ids"], [index[e[2]] for e in examples]


def batch_tensors(seqs):
    t = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), t), tok.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), t), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
    return ids, mask


tr_ids, tr_y = encode(train)
va_ids, va_y = encode(valid)
te_ids, te_y = encode(test)

model = AutoModelForSequenceClassification.from_pretrained(
    a.model, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=index)
model.train()

counts = [tr_y.count(c) for c in range(len(labels))]
weight = None
if a.class_weights == "auto":
    weight = torch.tensor([len(tr_y) / (len(labels) * max(n, 1)) for n in counts], dtype=torch.float32)

decay = [p for p in model.parameters() if p.ndim >= 2]
no_decay = [p for p in model.parameters() if p.ndim < 2]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                         {"params": no_decay, "weight_decay": 0.0}],
                        lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
per_epoch = math.ceil(len(tr_ids) / a.batch_size)
total = max(1, round(a.epochs * per_epoch))
warmup = round(a.warmup_ratio * total)


def lr_factor(s):
    if s < warmup:
        return (s + 1) / warmup
    return max(0.0, 1.0 - (s - warmup) / max(1, total - warmup))


sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)


@torch.no_grad()
def predict(ids_list, bs=64):
    """Predicted class per sequence (eval mode, batches of similar lengths as duet)."""
    model.eval()
    order = sorted(range(len(ids_list)), key=lambda i: len(ids_list[i]))
    pred = [0] * len(ids_list)
    for k in range(0, len(order), bs):
        chunk = order[k:k + bs]
        ids, mask = batch_tensors([ids_list[i] for i in chunk])
        logits = model(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).logits
        for i, p in zip(chunk, logits.argmax(-1).tolist()):
            pred[i] = p
    model.train()
    return pred


gen = torch.Generator().manual_seed(a.seed)
order, pos = torch.randperm(len(tr_ids), generator=gen).tolist(), 0
log = open(os.path.join(a.out, "metrics.jsonl"), "w")
train_s, seen, window_s, window_seen, window_rates = 0.0, 0, 0.0, 0, []
best, best_step, best_state = None, 0, None
for step in range(1, total + 1):
    idx = []
    while len(idx) < a.batch_size:
        if pos == len(order):
            order, pos = torch.randperm(len(tr_ids), generator=gen).tolist(), 0
        idx.append(order[pos])
        pos += 1
    t0 = time.perf_counter()
    ids, mask = batch_tensors([tr_ids[i] for i in idx])
    y = torch.tensor([tr_y[i] for i in idx])
    logits = model(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).logits
    loss = F.cross_entropy(logits, y, weight=weight)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), a.grad_clip) if a.grad_clip > 0 else torch.tensor(0.0)
    lr = sched.get_last_lr()[0]
    opt.step()
    sched.step()
    dt = time.perf_counter() - t0
    train_s += dt
    window_s += dt
    seen += len(idx)
    window_seen += len(idx)
    if step % a.log_every == 0 or step == total:
        rate = window_seen / window_s
        window_rates.append(rate)
        log.write(json.dumps({"step": step, "train_loss": loss.item(), "lr": lr, "grad_norm": float(gnorm),
                              "examples_per_sec": rate}) + "\n")
        log.flush()
        window_s, window_seen = 0.0, 0
    if step % per_epoch == 0 or step == total:
        vm = metrics([labels[i] for i in va_y], [labels[i] for i in predict(va_ids)], labels)
        log.write(json.dumps({"step": step, "val_accuracy": vm["accuracy"], "val_macro_f1": vm["macro_f1"]}) + "\n")
        log.flush()
        print(f"step {step}/{total}: val accuracy {vm['accuracy']:.4f} macro F1 {vm['macro_f1']:.4f}, "
              f"{seen / train_s:.1f} examples/s", file=sys.stderr)
        if best is None or vm["macro_f1"] > best:
            best, best_step, best_state = vm["macro_f1"], step, copy.deepcopy(model.state_dict())

final_pred = predict(te_ids)
model.load_state_dict(best_state)
best_pred = predict(te_ids)
with open(os.path.join(a.out, "test_predictions.jsonl"), "w") as f:
    for e, p in zip(test, best_pred):
        f.write(json.dumps({"id": e[0], "label": e[2], "pred": labels[p]}) + "\n")
m = metrics([e[2] for e in test], [labels[p] for p in best_pred], labels)
mf = metrics([e[2] for e in test], [labels[p] for p in final_pred], labels)
out = {
    "side": "transformers",
    "dataset": a.dataset,
    "torch": torch.__version__,
    "transformers": transformers.__version__,
    "threads": torch.get_num_threads(),
    "class_weights": [float(w) for w in weight] if weight is not None else None,
    "max_length": a.max_length,
    "train_examples": len(train),
    "valid_examples": len(valid),
    "steps": total,
    "warmup_steps": warmup,
    "samples": seen,
    "train_seconds": train_s,
    "examples_per_sec": seen / train_s,
    "examples_per_sec_median_window": statistics.median(window_rates),
    "best_step": best_step,
    "best_val_macro_f1": best,
    "final_test_accuracy": mf["accuracy"],
    "final_test_macro_f1": mf["macro_f1"],
    "final": mf,
    **m,
}
with open(os.path.join(a.out, "result.json"), "w") as f:
    json.dump(out, f, indent=1)
print(f"transformers {a.dataset}: test accuracy {m['accuracy']:.4f}, macro F1 {m['macro_f1']:.4f}, "
      f"{out['examples_per_sec']:.1f} examples/s", file=sys.stderr)

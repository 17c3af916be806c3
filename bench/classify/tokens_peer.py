"""The Hugging Face side of the token-classification benchmark: transformers'
AutoModelForTokenClassification on the MiniLM encoder, trained with a plain PyTorch loop on the same
sentences with duet's recipe (crates/train/src/tokens/{config,task}.rs), scored with seqeval.

The recipe, as duet's defaults give it:
  * words split into word pieces (is_split_into_words), [CLS] pieces [SEP], at most max_length
    tokens; the first piece of a word carries its tag, the other pieces are left out of the loss
  * batches of 16 from a stream of seeded shuffles; steps = round(epochs x ceil(n / 16))
  * AdamW(0.9/0.999, eps 1e-8), lr 5e-5, weight decay 0.01 on tensors of rank >= 2 only, gradient
    norm clipped to 1.0, warm-up round(0.1 x steps) then linear decay to 0, dropout 0.1
  * the final model tags the test sentences (a word's tag: the argmax at its first piece)

Data: JSON lines {"tokens": [...], "tags": [...]} or CoNLL columns (tag last, IOB1 or IOB2).

  tokens_peer.py --train data/external/atis/train_dev.jsonl --test data/external/atis/test.jsonl --out DIR
"""

import argparse
import json
import math
import os
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("--train", required=True)
ap.add_argument("--test", required=True)
ap.add_argument("--out", required=True)
ap.add_argument("--model", default="data/external/minilm")
ap.add_argument("--max-length", type=int, default=128)
ap.add_argument("--epochs", type=float, default=3.0)
ap.add_argument("--batch-size", type=int, default=16)
ap.add_argument("--lr", type=float, default=5e-5)
ap.add_argument("--weight-decay", type=float, default=0.01)
ap.add_argument("--warmup-ratio", type=float, default=0.1)
ap.add_argument("--seed", type=int, default=1337)
ap.add_argument("--threads", type=int, default=2)
a = ap.parse_args()

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score  # noqa: E402
from transformers import AutoModelForTokenClassification, AutoTokenizer  # noqa: E402

torch.set_num_threads(a.threads)
torch.manual_seed(a.seed)
os.makedirs(a.out, exist_ok=True)


def iob2(tags):
    out, prev = [], None
    for t in tags:
        if t == "O":
            out.append(t)
            prev = None
            continue
        p, k = t.split("-", 1)
        out.append(("B-" if p in "BSU" or prev != k else "I-") + k)
        prev = None if p in "ESLU" else k
    return out


def read(path):
    if path.endswith(".jsonl"):
        with open(path, encoding="utf-8") as f:
            return [(d["tokens"], iob2(d["tags"])) for d in map(json.loads, f) if d.get("tokens")]
    sents, words, tags = [], [], []
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if not line or line.startswith("-DOCSTART-"):
            if words:
                sents.append((words, iob2(tags)))
            words, tags = [], []
            continue
        cols = line.split()
        words.append(cols[0])
        tags.append(cols[-1])
    if words:
        sents.append((words, iob2(tags)))
    return sents


train, test = read(a.train), read(a.test)
kinds = sorted({t[2:] for _, ts in train for t in ts if t != "O"})
labels = ["O"] + [p + k for k in kinds for p in ("B-", "I-")]
index = {l: i for i, l in enumerate(labels)}
tok = AutoTokenizer.from_pretrained(a.model)


def encode(sents):
    enc = tok([w for w, _ in sents], is_split_into_words=True, truncation=True, max_length=a.max_length)
    ids, targets, heads = [], [], []
    for i, (_, tags) in enumerate(sents):
        wid = enc.word_ids(i)
        tgt, hd, prev = [], [], None
        for pos, w in enumerate(wid):
            if w is not None and w != prev:
                tgt.append(index.get(tags[w], -100))
                hd.append(pos)
            else:
                tgt.append(-100)
            prev = w
        ids.append(enc["input_ids"][i])
        targets.append(tgt)
        heads.append(hd)
    return ids, targets, heads


def pad(seqs, value):
    t = max(len(s) for s in seqs)
    x = torch.full((len(seqs), t), value, dtype=torch.long)
    m = torch.zeros((len(seqs), t), dtype=torch.long)
    for i, s in enumerate(seqs):
        x[i, : len(s)] = torch.tensor(s)
        m[i, : len(s)] = 1
    return x, m


tr_ids, tr_t, _ = encode(train)
te_ids, _, te_heads = encode(test)
model = AutoModelForTokenClassification.from_pretrained(
    a.model, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=index)
model.train()
decay = [p for p in model.parameters() if p.ndim >= 2]
no_decay = [p for p in model.parameters() if p.ndim < 2]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                         {"params": no_decay, "weight_decay": 0.0}], lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
total = max(1, round(a.epochs * math.ceil(len(tr_ids) / a.batch_size)))
warmup = round(a.warmup_ratio * total)
sched = torch.optim.lr_scheduler.LambdaLR(
    opt, lambda s: (s + 1) / warmup if s < warmup else max(0.0, 1.0 - (s - warmup) / max(1, total - warmup)))

gen = torch.Generator().manual_seed(a.seed)
order, pos = torch.randperm(len(tr_ids), generator=gen).tolist(), 0
train_s, seen = 0.0, 0
for step in range(1, total + 1):
    idx = []
    while len(idx) < a.batch_size:
        if pos == len(order):
            order, pos = torch.randperm(len(tr_ids), generator=gen).tolist(), 0
        idx.append(order[pos])
        pos += 1
    t0 = time.perf_counter()
    ids, mask = pad([tr_ids[i] for i in idx], tok.pad_token_id)
    y, _ = pad([tr_t[i] for i in idx], -100)
    logits = model(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).logits
    loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=-100)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    sched.step()
    train_s += time.perf_counter() - t0
    seen += len(idx)
    if step % 50 == 0 or step == total:
        print(f"step {step}/{total} loss {loss.item():.4f} {seen / train_s:.1f} sentences/s", file=sys.stderr)

model.eval()
pred = []
with torch.no_grad():
    for k in range(0, len(te_ids), 64):
        ids, mask = pad(te_ids[k:k + 64], tok.pad_token_id)
        best = model(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).logits.argmax(-1)
        for j, heads in enumerate(te_heads[k:k + 64]):
            tags = [labels[best[j, h]] for h in heads]
            pred.append(tags + ["O"] * (len(test[k + j][1]) - len(tags)))
truth = [t for _, t in test]
out = {
    "side": "transformers", "torch": torch.__version__, "transformers": transformers.__version__,
    "threads": torch.get_num_threads(), "train_sentences": len(train), "test_sentences": len(test),
    "steps": total, "train_seconds": train_s, "sentences_per_sec": seen / train_s,
    "precision": precision_score(truth, pred), "recall": recall_score(truth, pred), "f1": f1_score(truth, pred),
}
json.dump(out, open(os.path.join(a.out, "result.json"), "w"), indent=1)
open(os.path.join(a.out, "report.txt"), "w").write(classification_report(truth, pred, digits=4))
print(json.dumps(out))

"""Does a token classifier duet saved load and tag the same in Hugging Face transformers?

Loads DIR with BertForTokenClassification.from_pretrained and AutoTokenizer, tags the words of
`duet eval tokens`' predictions.jsonl (a word's tag: the argmax at its first word piece, as
duet does), and compares tag by tag.

  tokens_agreement.py --model RUN/final --predictions EVAL/predictions.jsonl --out agree.json
"""

import argparse
import json

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True)
ap.add_argument("--predictions", required=True)
ap.add_argument("--out", required=True)
a = ap.parse_args()

import torch  # noqa: E402
from transformers import AutoTokenizer, BertForTokenClassification  # noqa: E402

torch.set_num_threads(2)
cfg = json.load(open(a.model + "/config.json"))
max_len = int(cfg.get("duet_max_length", 512))
tok = AutoTokenizer.from_pretrained(a.model)
model = BertForTokenClassification.from_pretrained(a.model).eval()
rows = [json.loads(l) for l in open(a.predictions, encoding="utf-8")]
same = words = sentences_same = 0
with torch.no_grad():
    for r in rows:
        enc = tok(r["words"], is_split_into_words=True, truncation=True, max_length=max_len, return_tensors="pt")
        best = model(**enc).logits[0].argmax(-1).tolist()
        heads, prev = [], None
        for pos, w in enumerate(enc.word_ids(0)):
            if w is not None and w != prev:
                heads.append(pos)
            prev = w
        hf = [model.config.id2label[best[h]] for h in heads]
        n = len(hf)
        agree = sum(x == y for x, y in zip(hf, r["pred"][:n]))
        same += agree
        words += n
        sentences_same += agree == n == len(r["pred"])
out = {"sentences": len(rows), "words": words, "word_agreement": same / max(words, 1),
       "sentence_agreement": sentences_same / max(len(rows), 1)}
json.dump(out, open(a.out, "w"), indent=1)
print(json.dumps(out))

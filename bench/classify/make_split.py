"""Writes the fine-tuning split both sides train on: the train side of testdata/splits/<set>.json
minus a stratified, seeded validation holdout (the share duet holds out by default, 10%).

  make_split.py sms OUT   ->  OUT/exclude.json  (test ids + validation ids: duet --exclude)
                              OUT/valid.jsonl   (duet --valid; the peer's validation set)
                              OUT/train.jsonl   (for reference: what both sides train on)

duet draws its own holdout with a Rust RNG the peer cannot reproduce, so the holdout is drawn here
and handed to duet with --valid: both sides then see exactly the same examples.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import DATASETS, split, write_jsonl  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("dataset", choices=sorted(DATASETS))
ap.add_argument("out")
ap.add_argument("--valid-share", type=float, default=0.1)
ap.add_argument("--seed", type=int, default=0)
a = ap.parse_args()
os.makedirs(a.out, exist_ok=True)
train, valid, test = split(a.dataset, a.valid_share, a.seed)
with open(os.path.join(a.out, "exclude.json"), "w") as f:
    json.dump({"test": [e[0] for e in test] + [e[0] for e in valid]}, f)
write_jsonl(os.path.join(a.out, "valid.jsonl"), valid)
write_jsonl(os.path.join(a.out, "train.jsonl"), train)
print(f"{a.dataset}: {len(train)} train, {len(valid)} valid, {len(test)} test -> {a.out}", file=sys.stderr)

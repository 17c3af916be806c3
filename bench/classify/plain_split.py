"""Writes testdata/splits/sms-spam-plain.json: the SMS test split as DATA.md and the classify
issue measured their bar, a plain stratified 80/20 split (scikit-learn's train_test_split,
random_state 42) that does not keep exact duplicates on one side. testdata/splits/sms-spam.json
(`duet eval split`) keeps each group of duplicates together, so no test text is also a training
text; here about a hundred are, and the scores come out higher.

  plain_split.py [OUT]   (default testdata/splits/sms-spam-plain.json)
"""

import json
import os
import sys

from sklearn.model_selection import train_test_split

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import DATASETS, load  # noqa: E402

out = sys.argv[1] if len(sys.argv) > 1 else "testdata/splits/sms-spam-plain.json"
data = DATASETS["sms"][0]
examples = load(data)
train, test = train_test_split(examples, test_size=0.2, random_state=42, stratify=[e[2] for e in examples])
seen = {e[1] for e in train}
overlap = sum(e[1] in seen for e in test)
with open(out, "w") as f:
    json.dump({"data": data, "examples": len(examples), "seed": 42, "share": 0.2,
               "splitter": "sklearn.model_selection.train_test_split(stratify=label, random_state=42)",
               "test_texts_also_in_train": overlap,
               "test": sorted((e[0] for e in test), key=lambda i: int(i.rsplit("#", 1)[1])),
               "train": sorted((e[0] for e in train), key=lambda i: int(i.rsplit("#", 1)[1]))}, f, indent=2)
    f.write("\n")
print(f"{len(test)} test ({sum(e[2] == 'spam' for e in test)} spam), {len(train)} train; "
      f"{overlap} test texts also occur in train -> {out}", file=sys.stderr)

"""Makes tokenizer.json: a word-level WordPiece tokenizer for the keyword re-ranking test in
crates/extract/src/keywords.rs, over the words of kaggle.txt (the test's document).

The test pairs it with the tiny random BERT of testdata/model/tiny-bert-mlm (vocabulary 512), so
the ids must stay below 512: BERT's five special tokens (ids 0-4), then every punctuation mark
and lower-cased word of kaggle.txt in order of first appearance, each a whole-word piece.
A tokenizer trained at test time would not be byte-for-byte stable; this file is, so the test can
hold the re-ranked order to a fixed list. Plain Python, no packages:

  python3 testdata/extract/make_tokenizer.py
"""

import json
import pathlib
import re

here = pathlib.Path(__file__).parent
text = (here / "kaggle.txt").read_text(encoding="utf-8")
specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# BertPreTokenizer splits on white space and punctuation: words and single marks.
pieces = re.findall(r"\w+|[^\w\s]", text.lower())
vocab = {}
for p in specials + pieces:
    vocab.setdefault(p, len(vocab))
assert len(vocab) < 512, len(vocab)
tokenizer = {
    "version": "1.0",
    "truncation": None,
    "padding": None,
    "added_tokens": [
        {"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True}
        for i, s in enumerate(specials)
    ],
    "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                   "strip_accents": None, "lowercase": True},
    "pre_tokenizer": {"type": "BertPreTokenizer"},
    "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]},
    "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
    "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
              "max_input_chars_per_word": 100, "vocab": vocab},
}
out = here / "tokenizer.json"
out.write_text(json.dumps(tokenizer, indent=1) + "\n", encoding="utf-8")
print(f"wrote {out} ({len(vocab)} pieces)")

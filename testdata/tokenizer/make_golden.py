"""Encodes samples.txt with the tokenizer.json files duet wrote, using Hugging Face's Python
`tokenizers`, and writes golden.json: {tokenizer file: [{"text", "ids", "ids_no_special"}]}.
Run by make.sh; the Rust test crates/tokenizer/tests/golden.rs compares duet's ids with these."""

import json
import pathlib

import tokenizers
from tokenizers import Tokenizer

HERE = pathlib.Path(__file__).parent
samples = [line.rstrip("\n").replace("\\n", "\n") for line in (HERE / "samples.txt").open(encoding="utf-8")]
golden = {"tokenizers_version": tokenizers.__version__, "files": {}}
for name in ["bpe.json", "wordpiece.json", "unigram.json"]:
    tok = Tokenizer.from_file(str(HERE / name))
    rows = []
    for text in samples:
        rows.append(
            {
                "text": text,
                "ids": tok.encode(text).ids,
                "ids_no_special": tok.encode(text, add_special_tokens=False).ids,
                "decoded": tok.decode(tok.encode(text, add_special_tokens=False).ids),
            }
        )
    golden["files"][name] = rows
(HERE / "golden.json").write_text(json.dumps(golden, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
print(f"wrote golden.json for {len(samples)} samples with tokenizers {tokenizers.__version__}")

#!/usr/bin/env python3
"""Convert data/bench/model/gpt2-small-random/ to GGUF f32 with llama.cpp's own
convert_hf_to_gguf.py (the copy vendored in the llama-cpp-python sdist), unmodified.

    data/pyenv/bin/python bench/model/convert_gguf.py [--llama-cpp DIR] [--model DIR] [--out FILE]

The one obstacle: the converter names the BPE pre-tokenizer by hashing the token ids of a
fixed test string (TextModel.get_vocab_base_pre) and knows only the hashes of published
tokenizers; ids of a freshly trained vocabulary hash to something it has never seen, so it
raises NotImplementedError("BPE pre-tokenizer was not recognized"). The pre-tokenizer itself
is GPT-2's (ByteLevel, add_prefix_space=false, GPT-2's regex, no normalizer), which llama.cpp
calls "gpt-2". So this wrapper imports the converter, wraps that one method so that, only
when the original raises and the folder's tokenizer.json really has GPT-2's pre-tokenization
(checked field by field), it answers "gpt-2", then runs the converter's main() unchanged
(`<model> --outtype f32 --outfile <out>`). No file of llama.cpp is edited or copied.
The converter imports its vendored gguf-py (its default), not the PyPI `gguf`.
"""
import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LLAMA_CPP_VERSION = "0.3.36"
DEFAULT_LLAMA_CPP = os.path.join(ROOT, f"data/bench/model/sdist/llama_cpp_python-{LLAMA_CPP_VERSION}/vendor/llama.cpp")

GPT2_PRE_TOKENIZER = {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}


def has_gpt2_pretokenization(model_dir: str) -> bool:
    tj = json.load(open(os.path.join(model_dir, "tokenizer.json"), encoding="utf-8"))
    pre = tj.get("pre_tokenizer") or {}
    ok = all(pre.get(k) == v for k, v in GPT2_PRE_TOKENIZER.items())
    ok = ok and tj.get("normalizer") is None
    ok = ok and tj["model"]["type"] == "BPE" and not tj["model"].get("continuing_subword_prefix")
    ok = ok and (tj.get("decoder") or {}).get("type") == "ByteLevel"
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llama-cpp", default=DEFAULT_LLAMA_CPP, help="llama.cpp source tree (vendor/llama.cpp of the sdist)")
    ap.add_argument("--model", default=os.path.join(ROOT, "data/bench/model/gpt2-small-random"))
    ap.add_argument("--out", default=os.path.join(ROOT, "data/bench/model/gpt2-small-random-f32.gguf"))
    args = ap.parse_args()

    sys.path.insert(0, args.llama_cpp)
    sys.argv = ["convert_hf_to_gguf.py", args.model, "--outtype", "f32", "--outfile", args.out]
    import convert_hf_to_gguf  # noqa: E402  (adds gguf-py to sys.path itself)
    from conversion.base import TextModel  # noqa: E402

    original = TextModel.get_vocab_base_pre

    def get_vocab_base_pre(self, tokenizer):
        try:
            return original(self, tokenizer)
        except NotImplementedError:
            if not has_gpt2_pretokenization(args.model):
                raise
            print("convert_gguf.py: pre-tokenizer hash unknown to the converter; tokenizer.json has GPT-2's "
                  "pre-tokenization -> tokenizer.ggml.pre = 'gpt-2'", file=sys.stderr)
            return "gpt-2"

    TextModel.get_vocab_base_pre = get_vocab_base_pre
    convert_hf_to_gguf.main()
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

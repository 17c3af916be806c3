#!/usr/bin/env python3
"""Convert a Hugging Face model folder to GGUF with llama.cpp's own convert_hf_to_gguf.py (the
copy vendored in the llama-cpp-python 0.3.36 sdist that bench/gguf/setup.sh unpacks), unmodified.

    data/pyenv/bin/python bench/gguf/convert.py MODEL_DIR --outtype f32|f16|bf16|q8_0 --outfile FILE.gguf
                                               [--llama-cpp DIR]

Same approach as bench/model/convert_gguf.py, for more pre-tokenizers. The converter names a BPE
pre-tokenizer by hashing the ids that the folder's tokenizer gives for a fixed test string
(TextModel.get_vocab_base_pre) and knows only the hashes of published tokenizers, so a freshly
trained vocabulary makes it raise NotImplementedError("BPE pre-tokenizer was not recognized").
This wrapper imports the converter, wraps that one method so that, only when the original
raises, it looks at the folder's tokenizer.json and, if its normalizer + pre-tokenizer + model +
decoder are field for field those of a known family (below), answers llama.cpp's name for it;
anything else re-raises. Then it runs the converter's main() unchanged. No llama.cpp file is
edited or copied. The converter imports its vendored gguf-py (its default), not the PyPI `gguf`.

Known families (tokenizer.json of the published models):
  gpt-2      GPT-2: ByteLevel(add_prefix_space=false, use_regex=true), no normalizer
  llama-bpe  Llama 3: Split(LLAMA3 regex, isolated) + ByteLevel(use_regex=false), no normalizer
  qwen2      Qwen2/Qwen3: NFC + Split(QWEN2 regex, isolated) + ByteLevel(use_regex=false)
  smollm     SmolLM: Digits(individual_digits=true) + ByteLevel(add_prefix_space=false, use_regex=true)
"""
import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LLAMA_CPP_VERSION = "0.3.36"
DEFAULT_LLAMA_CPP = os.path.join(ROOT, f"data/bench/gguf/sdist/llama_cpp_python-{LLAMA_CPP_VERSION}/vendor/llama.cpp")

LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def _bytelevel(use_regex):
    return {"type": "ByteLevel", "add_prefix_space": False, "use_regex": use_regex}


def _split(regex):
    return {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False}


# name -> (normalizer, pre_tokenizer); a dict value matches when every key given here is equal
FAMILIES = {
    "gpt-2": (None, _bytelevel(True)),
    "llama-bpe": (None, {"type": "Sequence", "pretokenizers": [_split(LLAMA3_REGEX), _bytelevel(False)]}),
    "qwen2": ({"type": "NFC"}, {"type": "Sequence", "pretokenizers": [_split(QWEN2_REGEX), _bytelevel(False)]}),
    "smollm": (None, {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True},
                                                           _bytelevel(True)]}),
}


def _matches(want, got) -> bool:
    if want is None:
        return got is None
    if isinstance(want, dict):
        return isinstance(got, dict) and all(_matches(v, got.get(k)) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(got, list) and len(want) == len(got) and all(_matches(a, b) for a, b in zip(want, got))
    return want == got


def known_family(model_dir: str):
    path = os.path.join(model_dir, "tokenizer.json")
    if not os.path.isfile(path):
        return None
    tj = json.load(open(path, encoding="utf-8"))
    model = tj.get("model") or {}
    if model.get("type") != "BPE" or model.get("continuing_subword_prefix") or model.get("byte_fallback"):
        return None
    if (tj.get("decoder") or {}).get("type") != "ByteLevel":
        return None
    for name, (norm, pre) in FAMILIES.items():
        if _matches(norm, tj.get("normalizer")) and _matches(pre, tj.get("pre_tokenizer")):
            return name
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--outtype", required=True, choices=["f32", "f16", "bf16", "q8_0"])
    ap.add_argument("--outfile", required=True)
    ap.add_argument("--llama-cpp", default=DEFAULT_LLAMA_CPP, help="llama.cpp source tree (vendor/llama.cpp of the sdist)")
    args = ap.parse_args()

    sys.path.insert(0, args.llama_cpp)
    sys.argv = ["convert_hf_to_gguf.py", args.model, "--outtype", args.outtype, "--outfile", args.outfile]
    import convert_hf_to_gguf  # noqa: E402  (adds gguf-py to sys.path itself)
    from conversion.base import TextModel  # noqa: E402

    original = TextModel.get_vocab_base_pre

    def get_vocab_base_pre(self, tokenizer):
        try:
            return original(self, tokenizer)
        except NotImplementedError:
            name = known_family(args.model)
            if name is None:
                raise
            print(f"convert.py: pre-tokenizer hash unknown to the converter; {args.model}/tokenizer.json has "
                  f"the {name!r} pre-tokenization -> tokenizer.ggml.pre = {name!r}", file=sys.stderr)
            return name

    TextModel.get_vocab_base_pre = get_vocab_base_pre
    convert_hf_to_gguf.main()
    print(f"wrote {args.outfile} ({os.path.getsize(args.outfile)} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Check a model directory written by duet against Hugging Face transformers.

    data/pyenv/bin/python testdata/model/check_roundtrip.py DIR [--tol 1e-4]

DIR holds a checkpoint in the Hugging Face layout (config.json,
model.safetensors, maybe tokenizer.json) and duet_outputs.safetensors with
`input_ids` (int64 [B, T]), optional `attention_mask` and `token_type_ids`
(int64 [B, T]) and `logits` (float32, computed by duet). The script loads DIR
with transformers (AutoModelForCausalLM for gpt2/llama/qwen2, else the class
named by config.json `architectures[0]`), runs the same inputs in eval mode,
and prints the largest absolute logit difference.

Exit status: 0 when the difference is within --tol, 1 when it is not, 2 when
the checkpoint does not load cleanly (any missing, unexpected or mismatched
key, or a shape that differs from duet's logits).
"""

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

CAUSAL_LM = {"gpt2", "llama", "qwen2"}
BERT_CLASSES = {"BertForSequenceClassification", "BertForMaskedLM", "BertForTokenClassification", "BertModel"}


def load_model(d):
    config = json.loads((d / "config.json").read_text(encoding="utf-8"))
    model_type = config.get("model_type")
    if model_type in CAUSAL_LM:
        cls = transformers.AutoModelForCausalLM
    else:
        arch = (config.get("architectures") or [None])[0]
        if arch not in BERT_CLASSES:
            raise SystemExit(f"error: {d}/config.json: model_type {model_type!r}, architectures[0] {arch!r} is not supported")
        cls = getattr(transformers, arch)
    model, info = cls.from_pretrained(d, output_loading_info=True, attn_implementation="eager", dtype=torch.float32)
    return model.eval(), info, model_type


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--tol", type=float, default=1e-4, help="largest allowed absolute logit difference")
    args = ap.parse_args()
    torch.set_num_threads(2)

    try:
        model, info, model_type = load_model(args.dir)
    except (OSError, RuntimeError, ValueError) as e:  # mismatched shapes raise here
        print(f"loading {args.dir}: {type(e).__name__}: {e}")
        return 2
    bad = {k: v for k, v in info.items() if v}
    if bad:
        for k, v in bad.items():
            print(f"loading {args.dir}: {k}: {v}")
        return 2

    outs_path = args.dir / "duet_outputs.safetensors"
    if not outs_path.is_file():
        print(f"error: {outs_path} not found")
        return 2
    outs = load_file(outs_path)
    kw = {"input_ids": outs["input_ids"].to(torch.int64)}
    for k in ("attention_mask", "token_type_ids"):
        if k in outs:
            kw[k] = outs[k].to(torch.int64)
    with torch.no_grad():
        out = model(**kw)
    ref = out.last_hidden_state if not hasattr(out, "logits") else out.logits  # BertModel has no logits
    got = outs["logits"].float()
    if got.shape != ref.shape:
        print(f"shape: duet {list(got.shape)}, transformers {list(ref.shape)}")
        return 2
    diff = (got - ref).abs().max().item()
    ok = diff <= args.tol
    print(f"{args.dir} ({model_type}, {type(model).__name__}): logits {list(ref.shape)}, "
          f"max |duet - transformers| = {diff:.3e} ({'ok' if ok else 'FAIL'}, tol {args.tol:g})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

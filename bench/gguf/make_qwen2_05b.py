#!/usr/bin/env python3
"""A random Qwen2-0.5B-shaped model for the speed comparison, made with transformers, converted to
GGUF f16 by llama.cpp's own convert_hf_to_gguf.py (through bench/gguf/convert.py) and quantized to
Q4_K_M by llama.cpp (bench/gguf/quantize_peer.py).

    data/pyenv/bin/python bench/gguf/make_qwen2_05b.py [--force]

Outputs (git-ignored; each step skipped when its output exists, unless --force):
  data/bench/gguf/qwen2-0.5b-random/          config.json, generation_config.json, model.safetensors
                                              (bf16, as Qwen2-0.5B ships), tokenizer.json,
                                              tokenizer_config.json
  data/bench/gguf/qwen2-0.5b-random-f16.gguf  convert_hf_to_gguf.py --outtype f16
  data/bench/gguf/qwen2-0.5b-random-q4_k_m.gguf  llama_model_quantize(Q4_K_M) of the f16 file
  data/bench/gguf/qwen2-0.5b-random.json      sizes, parameter count, hashes, timings

Shape = Qwen2-0.5B's config.json: hidden 896, 24 layers, 14 query heads, 2 KV heads (head dim 64),
intermediate 4864, vocabulary 151936, tied embeddings, RMSNorm eps 1e-6, RoPE theta 1e6, q/k/v
biases, SiLU MLP; 494 M parameters. Weights: transformers' own initialisation (normal, std 0.02)
after torch.manual_seed(0), in bf16. The speed of a dense model does not depend on its values.
Tokenizer: the tiny byte-level BPE with Qwen2's pre-tokenizer that testdata/gguf/tiny/make.py
trains (384 ids + <|endoftext|>, <|im_start|>, <|im_end|>); the converter pads the GGUF vocabulary
to the config's 151936 with [PADn] tokens, as it does for the real Qwen2 (151646 -> 151936), so
pp512's random token ids cover the whole embedding matrix.
"""
import sys
sys.dont_write_bytecode = True  # importing testdata/gguf/tiny/make.py must not leave __pycache__ there
import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent.parent
OUT = ROOT / "data/bench/gguf"
HF_DIR = OUT / "qwen2-0.5b-random"
F16 = OUT / "qwen2-0.5b-random-f16.gguf"
Q4KM = OUT / "qwen2-0.5b-random-q4_k_m.gguf"
INFO = OUT / "qwen2-0.5b-random.json"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def make_hf(force: bool):
    if (HF_DIR / "model.safetensors").exists() and not force:
        log(f"{HF_DIR} present, kept")
        return
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM
    sys.path.insert(0, str(ROOT / "testdata/gguf/tiny"))
    sys.path.insert(0, str(ROOT / "bench/gguf"))
    import make as tiny  # testdata/gguf/tiny/make.py

    HF_DIR.mkdir(parents=True, exist_ok=True)
    tiny.train_bpe(HF_DIR, "qwen2")
    eot = json.loads((HF_DIR / "tokenizer.json").read_text())["added_tokens"][0]
    assert eot["content"] == "<|endoftext|>", eot
    torch.manual_seed(0)
    torch.set_num_threads(2)
    cfg = Qwen2Config(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                      intermediate_size=4864, vocab_size=151936, tie_word_embeddings=True, rms_norm_eps=1e-6,
                      max_position_embeddings=32768, rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                      use_sliding_window=False, hidden_act="silu", bos_token_id=eot["id"], eos_token_id=eot["id"])
    t0 = time.time()
    model = Qwen2ForCausalLM._from_config(cfg, dtype=torch.bfloat16)
    n = sum(p.numel() for p in model.parameters())
    log(f"model: {n:,} parameters, initialised in {time.time() - t0:.1f} s")
    model.save_pretrained(HF_DIR, safe_serialization=True)
    return n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    times = {}

    t0 = time.time()
    make_hf(args.force)
    times["make_hf_s"] = round(time.time() - t0, 1)

    if args.force or not F16.exists():
        t0 = time.time()
        r = subprocess.run(["nice", "-n", "19", py, str(ROOT / "bench/gguf/convert.py"), str(HF_DIR),
                            "--outtype", "f16", "--outfile", str(F16)], capture_output=True, text=True)
        (OUT / "qwen2-0.5b-random-f16.convert.log").write_text(r.stdout + r.stderr)
        if r.returncode:
            log((r.stdout + r.stderr)[-3000:])
            return 1
        times["convert_f16_s"] = round(time.time() - t0, 1)
    if args.force or not Q4KM.exists():
        t0 = time.time()
        r = subprocess.run(["nice", "-n", "19", py, str(ROOT / "bench/gguf/quantize_peer.py"), str(F16), str(Q4KM),
                            "q4_k_m", "--threads", "2"], capture_output=True, text=True)
        (OUT / "qwen2-0.5b-random-q4_k_m.quantize.log").write_text(r.stdout + r.stderr)
        if r.returncode:
            log((r.stdout + r.stderr)[-3000:])
            return 1
        times["quantize_q4_k_m_s"] = round(time.time() - t0, 1)

    cfg = json.loads((HF_DIR / "config.json").read_text())
    info = {
        "config": {k: cfg[k] for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                                      "intermediate_size", "vocab_size", "tie_word_embeddings", "dtype") if k in cfg},
        "files": {p.name: {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
                  for p in (HF_DIR / "model.safetensors", F16, Q4KM)},
        "times": times,
    }
    INFO.write_text(json.dumps(info, indent=1) + "\n")
    print(json.dumps(info, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

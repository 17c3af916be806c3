#!/usr/bin/env python3
"""The PyTorch side of duet's training benchmark: a small GPT-2 trained on duet's token shards
with the settings of duet's TOML presets, logging the same metrics.jsonl fields as
`duet train lm`.

Network (GPT-2 layout, written for this benchmark):
  token embedding wte (V x C, tied with the output layer) + learned positions wpe (T x C);
  per block: x += proj(attn(LN1(x)))  with a fused qkv Linear(C, 3C, bias), causal
             scaled dot-product attention (plain matmul + mask + softmax by default, or
             F.scaled_dot_product_attention with --sdpa), output Linear(C, C, bias);
             x += fc2(gelu_tanh(fc1(LN2(x))))  with Linear(C, 4C) and Linear(4C, C), biases;
  final LayerNorm; logits = x @ wte^T; mean cross-entropy over all positions.
  LayerNorm eps 1e-5. Dropout as the config's model.dropout (embeddings, attention
  probabilities, both residual branches, like GPT-2); 0 in the benchmark presets' fast path.
  Init: N(0, 0.02) for every Linear and Embedding weight, zero biases, LayerNorm ones/zeros.
Optimizer: AdamW(betas (beta1, beta2), eps 1e-8), weight decay on parameters with >= 2 dims
  only; learning rate: linear warm-up lr*(s+1)/warmup, then cosine to min_lr at max_steps;
  global grad-norm clipping at grad_clip.
Data: random windows of block_size+1 tokens at uniform offsets in the concatenated train split
  (numpy PCG64 seeded with train.seed); evaluation on consecutive non-overlapping windows of
  the valid split, batch_size rows per batch, at most eval_batches batches, mean loss over
  every position.

Usage:
  data/pyenv/bin/python bench/train-lm/train_torch.py --config examples/configs/bench-s.toml \
      --tokens data/bench/train-lm/tokens-en --out data/bench/train-lm/torch-s [--max-steps N]
      [--eval-every N] [--compile] [--sdpa] [--set section.key=value ...] [--peak FILE]
Writes OUT/metrics.jsonl and OUT/summary.json, prints the summary as one JSON line.
"""
import argparse
import json
import math
import os
import platform
import statistics
import struct
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
MAGIC = b"DUETTOK\0"


# ---------------------------------------------------------------------------------------------
# configuration


def load_config(path: str, sets: list[str]) -> dict:
    with open(path, "rb") as f:
        cfg = tomllib.load(f)
    for s in sets:
        key, sep, raw = s.partition("=")
        if not sep or not key:
            sys.exit(f"--set expects section.key=value, got {s!r}")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        node = cfg
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    model = {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64, "dropout": 0.0,
             "tie_word_embeddings": True, "model_type": "gpt2"} | cfg.get("model", {})
    train = {"batch_size": 12, "lr": 1e-3, "min_lr": 1e-4, "warmup_steps": 100, "max_steps": 2000,
             "schedule": "cosine", "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8,
             "grad_clip": 1.0, "eval_every": 250, "eval_batches": 50, "seed": 1337, "log_every": 10,
             "grad_accum": 1} | cfg.get("train", {})
    if model["model_type"] != "gpt2" or not model["tie_word_embeddings"]:
        sys.exit("train_torch.py implements the GPT-2 layout with a tied head only")
    if train["schedule"] != "cosine" or train["grad_accum"] != 1:
        sys.exit("train_torch.py implements schedule = cosine and grad_accum = 1 only")
    return {"model": model, "train": train}


# ---------------------------------------------------------------------------------------------
# data: duet token shards


def read_shard(path: Path) -> np.ndarray:
    with open(path, "rb") as f:
        head = f.read(64)
    if len(head) < 64 or head[:8] != MAGIC:
        raise ValueError(f"{path}: not a duet token shard")
    version, width, n = struct.unpack_from("<IIQ", head, 8)
    if version != 1 or width not in (2, 4):
        raise ValueError(f"{path}: shard version {version}, width {width}")
    dtype = "<u2" if width == 2 else "<u4"
    size = path.stat().st_size
    if size != 64 + n * width:
        raise ValueError(f"{path}: {size} bytes, header says {n} tokens of {width} bytes")
    return np.memmap(path, dtype=dtype, mode="r", offset=64, shape=(n,))


class Tokens:
    def __init__(self, directory: str):
        d = Path(directory)
        self.manifest = json.loads((d / "manifest.json").read_text())
        self.vocab_size = int(self.manifest["vocab_size"])
        self.split = {}
        for name in ("train", "valid"):
            shards = [read_shard(d / s) for s in self.manifest["splits"][name]["shards"]]
            # one array per split (the fortunes corpus is ~1M tokens); int64 for torch indexing
            self.split[name] = np.concatenate(shards).astype(np.int64) if shards else np.zeros(0, np.int64)
        v = self.manifest["splits"]["valid"]
        self.valid_bytes_per_token = v["text_bytes"] / max(1, v["tokens"])


class Batches:
    """Random training windows, like duet's LmBatcher (uniform start in [0, len-T-1])."""

    def __init__(self, data: np.ndarray, batch: int, t: int, seed: int):
        if len(data) < t + 1:
            raise ValueError(f"the training split has {len(data)} tokens, fewer than one window of {t + 1}")
        self.data, self.b, self.t = data, batch, t
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.offsets = np.arange(t + 1)

    def next(self):
        starts = self.rng.integers(0, len(self.data) - self.t - 1, size=self.b, endpoint=True)
        w = torch.from_numpy(self.data[starts[:, None] + self.offsets])
        return w[:, :-1], w[:, 1:]


def eval_windows(data: np.ndarray, batch: int, t: int, max_batches: int):
    """Consecutive non-overlapping windows (window w covers tokens [w*T, w*T+T+1))."""
    windows = (len(data) - 1) // t
    out, w = [], 0
    while w < windows and len(out) < max_batches:
        rows = min(batch, windows - w)
        idx = (w + np.arange(rows))[:, None] * t + np.arange(t + 1)
        x = torch.from_numpy(data[idx])
        out.append((x[:, :-1], x[:, 1:]))
        w += rows
    return out


# ---------------------------------------------------------------------------------------------
# the network


class CausalSelfAttention(nn.Module):
    def __init__(self, c: int, heads: int, t: int, dropout: float, sdpa: bool):
        super().__init__()
        assert c % heads == 0
        self.heads, self.sdpa, self.p = heads, sdpa, dropout
        self.qkv = nn.Linear(c, 3 * c)
        self.out = nn.Linear(c, c)
        self.drop_att = nn.Dropout(dropout)
        self.drop_out = nn.Dropout(dropout)
        self.register_buffer("causal", torch.ones(t, t, dtype=torch.bool).tril(), persistent=False)

    def forward(self, x):
        b, t, c = x.shape
        hd = c // self.heads
        q, k, v = (z.view(b, t, self.heads, hd).transpose(1, 2) for z in self.qkv(x).chunk(3, dim=-1))
        if self.sdpa:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.p if self.training else 0.0, is_causal=True)
        else:
            scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(hd)
            scores = scores.masked_fill(~self.causal[:t, :t], float("-inf"))
            y = torch.matmul(self.drop_att(torch.softmax(scores, dim=-1)), v)
        y = y.transpose(1, 2).reshape(b, t, c)
        return self.drop_out(self.out(y))


class Block(nn.Module):
    def __init__(self, c: int, heads: int, t: int, dropout: float, sdpa: bool):
        super().__init__()
        self.ln1 = nn.LayerNorm(c, eps=1e-5)
        self.attn = CausalSelfAttention(c, heads, t, dropout, sdpa)
        self.ln2 = nn.LayerNorm(c, eps=1e-5)
        self.fc1 = nn.Linear(c, 4 * c)
        self.fc2 = nn.Linear(4 * c, c)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.drop(self.fc2(F.gelu(self.fc1(self.ln2(x)), approximate="tanh")))


class GPT(nn.Module):
    def __init__(self, vocab: int, t: int, c: int, layers: int, heads: int, dropout: float, sdpa: bool):
        super().__init__()
        self.t = t
        self.wte = nn.Embedding(vocab, c)
        self.wpe = nn.Embedding(t, c)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(c, heads, t, dropout, sdpa) for _ in range(layers))
        self.ln_f = nn.LayerNorm(c, eps=1e-5)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, 0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, idx, targets):
        _, t = idx.shape
        x = self.drop(self.wte(idx) + self.wpe(torch.arange(t, device=idx.device)))
        for blk in self.blocks:
            x = blk(x)
        logits = F.linear(self.ln_f(x), self.wte.weight)  # tied head: x @ wte^T
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))


def lr_at(step: int, tr: dict) -> float:
    lr, min_lr, warm, total = tr["lr"], tr["min_lr"], tr["warmup_steps"], tr["max_steps"]
    if step < warm:
        return lr * (step + 1) / warm
    if step >= total:
        return min_lr
    progress = (step - warm) / max(1, total - warm)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (lr - min_lr)


# ---------------------------------------------------------------------------------------------


def machine_cpu():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, help="duet TOML preset, e.g. examples/configs/bench-s.toml")
    ap.add_argument("--tokens", required=True, help="duet token directory (manifest.json + shards)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--max-steps", type=int)
    ap.add_argument("--eval-every", type=int)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model (forward + loss)")
    ap.add_argument("--sdpa", action="store_true", help="F.scaled_dot_product_attention instead of matmul+softmax")
    ap.add_argument("--adamw", choices=["default", "foreach", "fused"], default="default",
                    help="AdamW implementation (default: PyTorch's choice, the for-loop on CPU)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steady-after", type=int, default=20, help="median tokens/s over log windows starting at or after this step")
    ap.add_argument("--peak", default="data/bench/train-lm/matmul-peak.json", help="matmul_peak.py output (MFU denominator)")
    ap.add_argument("--quiet", action="store_true", help="do not echo metric lines")
    a = ap.parse_args()

    sets = list(a.set)
    if a.max_steps is not None:
        sets.append(f"train.max_steps={a.max_steps}")
    if a.eval_every is not None:
        sets.append(f"train.eval_every={a.eval_every}")
    cfg = load_config(a.config, sets)
    m, tr = cfg["model"], cfg["train"]

    torch.set_num_threads(a.threads)
    torch.manual_seed(tr["seed"])
    torch.set_default_dtype(torch.float32)

    tokens = Tokens(a.tokens)
    t, b = m["block_size"], tr["batch_size"]
    model = GPT(tokens.vocab_size, t, m["n_embd"], m["n_layer"], m["n_head"], m["dropout"], a.sdpa)
    params = list(model.parameters())
    n_params = sum(p.numel() for p in params)  # the tied wte counted once
    n_wpe = model.wpe.weight.numel()
    n_flop_params = n_params - n_wpe
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    kw = {}
    if a.adamw == "foreach":
        kw["foreach"] = True
    elif a.adamw == "fused":
        kw["fused"] = True
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": tr["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
        lr=tr["lr"], betas=(tr["beta1"], tr["beta2"]), eps=tr.get("eps", 1e-8), **kw)
    step_fn = torch.compile(model) if a.compile else model

    train_batches = Batches(tokens.split["train"], b, t, tr["seed"])
    valid = eval_windows(tokens.split["valid"], b, t, tr["eval_batches"] if tr["eval_batches"] > 0 else 1 << 62)
    if not valid:
        sys.exit(f"the valid split has {len(tokens.split['valid'])} tokens, fewer than one window of {t + 1}")

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    metrics_path = out / "metrics.jsonl"
    metrics = open(metrics_path, "w")

    def log(line: dict):
        metrics.write(json.dumps(line) + "\n")
        metrics.flush()
        if not a.quiet:
            print(json.dumps(line), flush=True)

    def evaluate(step: int) -> float:
        model.eval()
        total, n = 0.0, 0
        with torch.no_grad():
            for x, y in valid:
                loss = step_fn(x, y).item()
                total += loss * y.numel()
                n += y.numel()
        model.train()
        vl = total / n
        log({"step": step, "val_loss": vl, "val_ppl": math.exp(vl),
             "val_bpb": vl / math.log(2) / tokens.valid_bytes_per_token, "val_tokens": n})
        return vl

    max_steps, log_every, eval_every = tr["max_steps"], max(1, tr["log_every"]), tr["eval_every"]
    windows = []  # (first step, last step, tokens, seconds)
    val_curve = []
    cpu0, own0, wall0 = machine_cpu(), os.times(), time.perf_counter()
    train_secs = eval_secs = 0.0
    w_start, w_tokens, w_loss, w_steps, w_first = time.perf_counter(), 0, 0.0, 0, 1
    first_step_secs = None
    last_train_loss = None
    model.train()
    for step in range(max_steps):
        t0 = time.perf_counter()
        lr = lr_at(step, tr)
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = train_batches.next()
        loss = step_fn(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(params, tr["grad_clip"] if tr["grad_clip"] > 0 else float("inf"))
        opt.step()
        lv = loss.item()
        if not math.isfinite(lv):
            sys.exit(f"non-finite loss {lv} at step {step + 1}")
        dt = time.perf_counter() - t0
        train_secs += dt
        if first_step_secs is None:
            first_step_secs = dt
        done = step + 1
        w_tokens += x.numel()
        w_loss += lv
        w_steps += 1
        if done % log_every == 0 or done == max_steps:
            secs = time.perf_counter() - w_start
            windows.append((w_first, done, w_tokens, secs))
            last_train_loss = w_loss / w_steps
            log({"step": done, "train_loss": last_train_loss, "lr": lr, "grad_norm": float(gn),
                 "tokens_per_sec": w_tokens / secs})
            w_tokens, w_loss, w_steps, w_first = 0, 0.0, 0, done + 1
        if (eval_every > 0 and done % eval_every == 0) or done == max_steps:
            e0 = time.perf_counter()
            val_curve.append((done, evaluate(done)))
            eval_secs += time.perf_counter() - e0
        if w_steps == 0:
            w_start = time.perf_counter()  # the next window starts after logging and evaluation
    wall = time.perf_counter() - wall0
    own1 = os.times()
    own_cpu = (own1.user - own0.user) + (own1.system - own0.system)
    hz = os.sysconf("SC_CLK_TCK")
    others_cpu = max(0.0, (machine_cpu() - cpu0) / hz - own_cpu)
    metrics.close()

    steady = [w for w in windows if w[0] > a.steady_after]
    rates = [w[2] / w[3] for w in steady]
    median_tps = statistics.median(rates) if rates else None
    c, layers = m["n_embd"], m["n_layer"]
    flops_per_token = 6 * n_flop_params + 12 * layers * c * t
    peak = None
    try:
        pk = json.loads(Path(a.peak).read_text())
        peak = pk["peak_gflops"]
    except (OSError, KeyError, ValueError):
        pass
    achieved = flops_per_token * median_tps / 1e9 if median_tps else None
    summary = {
        "impl": "torch-compile" if a.compile else "torch-eager",
        "attention": "sdpa" if a.sdpa else "math",
        "adamw": a.adamw,
        "config": a.config,
        "tokens_dir": a.tokens,
        "sets": a.set,
        "model": m,
        "train": {k: tr[k] for k in ("batch_size", "lr", "min_lr", "warmup_steps", "max_steps", "weight_decay",
                                     "beta1", "beta2", "grad_clip", "eval_every", "eval_batches", "seed")},
        "vocab_size": tokens.vocab_size,
        "train_tokens": int(len(tokens.split["train"])),
        "valid_tokens": int(len(tokens.split["valid"])),
        "params": n_params,
        "params_in_flops": n_flop_params,
        "flops_per_token": flops_per_token,
        "flops_note": "6*N + 12*L*C*T; N = all parameters except the position embedding, the tied "
                      "token embedding counted once (as the output layer's matmul)",
        "steps": max_steps,
        "tokens_per_step": b * t,
        "median_tokens_per_sec": median_tps,
        "steady_windows": len(rates),
        "steady_after_step": a.steady_after,
        "tokens_per_sec_windows": [[w[0], w[1], round(w[2] / w[3], 1)] for w in windows],
        "first_step_secs": first_step_secs,
        "train_secs": train_secs,
        "eval_secs": eval_secs,
        "wall_secs": wall,
        "own_cpu_secs": round(own_cpu, 2),
        "others_cpu_secs": round(others_cpu, 2),
        "final_train_loss": last_train_loss,
        "final_val_loss": val_curve[-1][1] if val_curve else None,
        "val_curve": val_curve,
        "achieved_gflops": achieved,
        "peak_gflops": peak,
        "mfu": achieved / peak if achieved and peak else None,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "metrics": str(metrics_path),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: summary[k] for k in ("impl", "config", "steps", "median_tokens_per_sec", "final_val_loss",
                                               "mfu", "first_step_secs", "wall_secs", "others_cpu_secs")}), flush=True)


if __name__ == "__main__":
    main()

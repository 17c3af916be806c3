#!/usr/bin/env python3
"""The f32 matmul peak of this machine as PyTorch reaches it (the MFU denominator).

For n = 256, 512, 1024, 2048: C = A @ B with square f32 matrices (torch.mm into a preallocated
output), torch.set_num_threads(THREADS); each timing repeats the product until >= 0.25 s has
passed, and the best of --reps timings is kept. GFLOP/s = 2 n^3 / seconds per product.
`peak_gflops` = the best over all sizes.

Usage: data/pyenv/bin/python bench/train-lm/matmul_peak.py [--out data/bench/train-lm/matmul-peak.json]
"""
import argparse
import json
import os
import time
from pathlib import Path

import torch


def machine_cpu():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="data/bench/train-lm/matmul-peak.json")
    ap.add_argument("--sizes", default="256,512,1024,2048")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--min-secs", type=float, default=0.25)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cpu0, own0, w0 = machine_cpu(), os.times(), time.perf_counter()
    res = {}
    for n in (int(s) for s in a.sizes.split(",")):
        x, y = torch.randn(n, n), torch.randn(n, n)
        out = torch.empty(n, n)
        for _ in range(3):
            torch.mm(x, y, out=out)
        best = 0.0
        for _ in range(a.reps):
            k, t0 = 0, time.perf_counter()
            while True:
                torch.mm(x, y, out=out)
                k += 1
                dt = time.perf_counter() - t0
                if dt >= a.min_secs:
                    break
            best = max(best, 2 * n**3 * k / dt / 1e9)
        res[str(n)] = round(best, 1)
        print(f"n = {n}: {best:.1f} GFLOP/s", flush=True)
    own1 = os.times()
    own = (own1.user - own0.user) + (own1.system - own0.system)
    others = max(0.0, (machine_cpu() - cpu0) / os.sysconf("SC_CLK_TCK") - own)
    doc = {"threads": a.threads, "dtype": "float32", "torch": torch.__version__, "gflops": res,
           "peak_gflops": max(res.values()), "wall_secs": round(time.perf_counter() - w0, 1),
           "others_cpu_secs": round(others, 2),
           "note": "best of reps; each rep repeats torch.mm until min_secs; 2n^3 FLOP per product"}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(doc, indent=2))
    print(json.dumps(doc))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Quantize a GGUF file with llama.cpp (llama_model_quantize, i.e. what llama-quantize does), through
the llama-cpp-python 0.3.36 build of bench/gguf/setup.sh.

    data/pyenv/bin/python bench/gguf/quantize_peer.py IN.gguf OUT.gguf TYPE [--threads 2] [--allow-requantize]

TYPE: q8_0 | q4_k_m | q4_0 | f16 (also q4_1, q5_0, q5_1, q5_k_m, q6_k, bf16, f32).
Parameters: llama_model_quantize_default_params() (no imatrix, output/embedding tensor types
chosen by llama.cpp's own rules for TYPE) with ftype = TYPE, nthread = --threads, and
allow_requantize set only with --allow-requantize (needed when IN is already quantized, e.g.
the SmolLM2 Q4_1 file; llama.cpp then dequantizes and quantizes again). Prints a JSON line with
the sizes and the time taken.
"""
import argparse
import ctypes
import json
import os
import sys
import time

TYPES = {
    "f32": "LLAMA_FTYPE_ALL_F32", "f16": "LLAMA_FTYPE_MOSTLY_F16", "bf16": "LLAMA_FTYPE_MOSTLY_BF16",
    "q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0", "q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0", "q4_1": "LLAMA_FTYPE_MOSTLY_Q4_1",
    "q5_0": "LLAMA_FTYPE_MOSTLY_Q5_0", "q5_1": "LLAMA_FTYPE_MOSTLY_Q5_1", "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
    "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M", "q6_k": "LLAMA_FTYPE_MOSTLY_Q6_K",
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inp")
    ap.add_argument("out")
    ap.add_argument("type", choices=sorted(TYPES))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--allow-requantize", action="store_true")
    args = ap.parse_args()

    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, TYPES[args.type])
    params.nthread = args.threads
    params.allow_requantize = args.allow_requantize
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    t0 = time.perf_counter()
    rc = llama_cpp.llama_model_quantize(args.inp.encode(), args.out.encode(), ctypes.byref(params))
    dt = time.perf_counter() - t0
    if rc != 0:
        print(f"quantize_peer.py: llama_model_quantize returned {rc}", file=sys.stderr)
        return 1
    print(json.dumps({"in": args.inp, "out": args.out, "type": args.type, "ftype": int(params.ftype),
                      "in_bytes": os.path.getsize(args.inp), "out_bytes": os.path.getsize(args.out),
                      "seconds": round(dt, 2), "threads": args.threads, "allow_requantize": args.allow_requantize,
                      "llama_cpp_python_version": llama_cpp.__version__}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

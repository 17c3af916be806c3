#!/usr/bin/env python3
"""llama.cpp's speed on a GGUF file, measured the way llama-bench measures it (pp512, tg128), through
the llama-cpp-python 0.3.36 build of bench/gguf/setup.sh (GGML_NATIVE=ON, GGML_AMX_INT8=OFF).

    data/pyenv/bin/python bench/gguf/peer_llama.py FILE.gguf [--threads 2] [--reps 5]
        [--n-prompt 512] [--n-gen 128] [--flash-attn auto|on|off] [--no-threadpool] [--wait-quiet S]

Prints one JSON object on stdout (progress and the machine's load on stderr).

What is measured (a transcription of vendor/llama.cpp/tools/llama-bench/llama-bench.cpp of this
sdist, its defaults unless said otherwise; the C++ tool itself is not built by the Python package):
  * the model is loaded once (llama_model_default_params: mmap, CPU); each test gets its own context
    with n_ctx = n_prompt (pp) or n_gen (tg), n_batch = n_ubatch = 512, KV cache f16, flash attention
    AUTO (llama-bench's default; llama-cpp-python's Llama class would turn it off), n_threads =
    n_threads_batch = --threads, and, as llama-bench does, a ggml threadpool of --threads threads
    (poll 50) attached with llama_attach_threadpool (bound here with ctypes; --no-threadpool leaves
    ggml to make a throw-away pool per graph);
  * pp512: 512 tokens in ONE llama_decode batch (llama_batch_get_one, so only the last position's
    logits are computed), the first token BOS when the vocabulary adds one, the others random
    (std::rand()-like, seeded), then llama_synchronize;
  * tg128: from an EMPTY context (llama_memory_clear before each rep), 128 llama_decode calls of one
    token each (the first BOS when the vocabulary adds one, then random tokens), llama_synchronize
    after each;
  * warm-up (not timed): one full pp run for the pp test, one 1-token generation for the tg test;
  * --reps timed repetitions, each preceded by llama_memory_clear; a rep's time is
    time.perf_counter() around the whole test (llama-bench: get_time_ns() around test_prompt /
    test_gen), so Python's ctypes call overhead is inside it (about a microsecond a call);
    tokens/s of a rep = n_tokens / seconds; reported: mean and sample standard deviation of those
    tokens/s (llama-bench's avg_ts / stdev_ts), and the raw samples_ns.
  * As a cross-check, llama.cpp's own counters (llama_perf_context: t_p_eval_ms for a batch of
    more than one token, t_eval_ms for one-token decodes), reset before each rep, give
    `llama_perf_ts` (mean tokens/s by those counters).
  * tg_weight_GBps = llama_model_size (bytes of all tensors) x tg mean tokens/s: the weight bytes a
    decode step must read, per second, a lower bound of the memory traffic (KV cache not counted).
"""
import argparse
import ctypes
import datetime
import glob
import json
import os
import platform
import random
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench/model"))
import machine  # noqa: E402  (bench/model/machine.py: how busy the shared machine is)

GGML_TYPE_F16 = 1
GGML_MAX_N_THREADS = 512
FA = {"auto": -1, "off": 0, "on": 1}
_LOG_CB = None


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


class ThreadpoolParams(ctypes.Structure):
    # ggml.h: struct ggml_threadpool_params
    _fields_ = [("cpumask", ctypes.c_bool * GGML_MAX_N_THREADS), ("n_threads", ctypes.c_int),
                ("prio", ctypes.c_int), ("poll", ctypes.c_uint32), ("strict_cpu", ctypes.c_bool),
                ("paused", ctypes.c_bool)]


def make_threadpool(llama_cpp, ctx, n_threads: int):
    """ggml_threadpool_new(ggml_threadpool_params_default(n)) + llama_attach_threadpool, by ctypes
    (llama-cpp-python does not bind them). Returns (pool, free_fn)."""
    libdir = os.path.join(os.path.dirname(llama_cpp.__file__), "lib")
    def lib(name):
        paths = sorted(glob.glob(os.path.join(libdir, name + "*")))
        if not paths:
            raise FileNotFoundError(f"{name} not found in {libdir}")
        return ctypes.CDLL(paths[0])
    base, cpu, llama = lib("libggml-base.so"), lib("libggml-cpu.so"), lib("libllama.so")
    base.ggml_threadpool_params_default.restype = ThreadpoolParams
    base.ggml_threadpool_params_default.argtypes = [ctypes.c_int]
    cpu.ggml_threadpool_new.restype = ctypes.c_void_p
    cpu.ggml_threadpool_new.argtypes = [ctypes.POINTER(ThreadpoolParams)]
    cpu.ggml_threadpool_free.restype = None
    cpu.ggml_threadpool_free.argtypes = [ctypes.c_void_p]
    llama.llama_attach_threadpool.restype = None
    llama.llama_attach_threadpool.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    llama.llama_detach_threadpool.restype = None
    llama.llama_detach_threadpool.argtypes = [ctypes.c_void_p]
    tpp = base.ggml_threadpool_params_default(n_threads)
    tpp.poll = 50  # llama-bench's default --poll
    pool = cpu.ggml_threadpool_new(ctypes.byref(tpp))
    if not pool:
        raise RuntimeError("ggml_threadpool_new failed")
    ctx_ptr = ctypes.cast(ctx, ctypes.c_void_p)
    llama.llama_attach_threadpool(ctx_ptr, pool, None)

    def free():
        llama.llama_detach_threadpool(ctx_ptr)
        cpu.ggml_threadpool_free(pool)
    return free


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("gguf")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--n-prompt", type=int, default=512)
    ap.add_argument("--n-gen", type=int, default=128)
    ap.add_argument("--n-batch", type=int, default=512)
    ap.add_argument("--flash-attn", choices=list(FA), default="auto")
    ap.add_argument("--no-threadpool", action="store_true")
    ap.add_argument("--wait-quiet", type=float, default=0.0, help="wait up to S seconds for an idle machine")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    import llama_cpp

    llama_cpp.llama_backend_init()
    global _LOG_CB  # kept alive: llama.cpp holds the pointer
    _LOG_CB = llama_cpp.llama_log_callback(lambda level, text, user: None)
    llama_cpp.llama_log_set(_LOG_CB, ctypes.c_void_p(0))
    mparams = llama_cpp.llama_model_default_params()
    model = llama_cpp.llama_model_load_from_file(args.gguf.encode(), mparams)
    if not model:
        raise SystemExit(f"failed to load {args.gguf}")
    vocab = llama_cpp.llama_model_get_vocab(model)
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    add_bos = bool(llama_cpp.llama_vocab_get_add_bos(vocab))
    bos = llama_cpp.llama_vocab_bos(vocab)
    desc = ctypes.create_string_buffer(256)
    llama_cpp.llama_model_desc(model, desc, 256)
    model_size = int(llama_cpp.llama_model_size(model))
    n_params = int(llama_cpp.llama_model_n_params(model))
    rng = random.Random(args.seed)

    def new_ctx(n_ctx):
        cp = llama_cpp.llama_context_default_params()
        cp.n_ctx = n_ctx
        cp.n_batch = args.n_batch
        cp.n_ubatch = args.n_batch
        cp.n_seq_max = 1
        cp.n_threads = args.threads
        cp.n_threads_batch = args.threads
        cp.type_k = GGML_TYPE_F16
        cp.type_v = GGML_TYPE_F16
        cp.flash_attn_type = FA[args.flash_attn]
        cp.no_perf = False
        ctx = llama_cpp.llama_init_from_model(model, cp)
        if not ctx:
            raise SystemExit("llama_init_from_model failed")
        free_pool = None if args.no_threadpool else make_threadpool(llama_cpp, ctx, args.threads)
        return ctx, free_pool

    def decode(ctx, toks):
        arr = (llama_cpp.llama_token * len(toks))(*toks)
        rc = llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(arr, len(toks)))
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc}")

    def test_prompt(ctx, n_prompt):
        done = 0
        while done < n_prompt:
            n = min(n_prompt - done, args.n_batch)
            toks = [bos if (done == 0 and add_bos) else rng.randrange(n_vocab)] + [rng.randrange(n_vocab) for _ in range(n - 1)]
            decode(ctx, toks)
            done += n
        llama_cpp.llama_synchronize(ctx)

    def test_gen(ctx, n_gen):
        tok = bos if add_bos else rng.randrange(n_vocab)
        for _ in range(n_gen):
            decode(ctx, [tok])
            llama_cpp.llama_synchronize(ctx)
            tok = rng.randrange(n_vocab)

    def run(name, n_prompt, n_gen):
        ctx, free_pool = new_ctx(n_prompt + n_gen)
        mem = llama_cpp.llama_get_memory(ctx)
        llama_cpp.llama_memory_clear(mem, False)
        busy = machine.before_timing(f"{name} {os.path.basename(args.gguf)}", args.wait_quiet)
        if n_prompt:
            test_prompt(ctx, n_prompt)  # warm-up
        if n_gen:
            test_gen(ctx, 1)  # warm-up
        samples_ns, perf_ts, others = [], [], []
        for _ in range(args.reps):
            llama_cpp.llama_memory_clear(mem, False)
            llama_cpp.llama_perf_context_reset(ctx)
            with machine.CpuWatch() as w:
                t0 = time.perf_counter_ns()
                if n_prompt:
                    test_prompt(ctx, n_prompt)
                if n_gen:
                    test_gen(ctx, n_gen)
                samples_ns.append(time.perf_counter_ns() - t0)
            others.append(w.others_cpu_s)
            pd = llama_cpp.llama_perf_context(ctx)
            ms = pd.t_p_eval_ms if n_prompt else pd.t_eval_ms
            n = pd.n_p_eval if n_prompt else pd.n_eval
            perf_ts.append(1000.0 * n / ms if ms > 0 else float("nan"))
        if free_pool:
            free_pool()
        llama_cpp.llama_free(ctx)
        n_tok = n_prompt + n_gen
        ts = [n_tok * 1e9 / s for s in samples_ns]
        res = {
            "test": name, "n_prompt": n_prompt, "n_gen": n_gen, "reps": args.reps,
            "avg_ts": round(statistics.mean(ts), 3),
            "stdev_ts": round(statistics.stdev(ts), 3) if len(ts) > 1 else 0.0,
            "samples_ns": samples_ns,
            "samples_ts": [round(x, 3) for x in ts],
            "llama_perf_ts": round(statistics.mean(perf_ts), 3),
            "others_cpu_s_per_rep": others,
            **busy,
        }
        log(f"{name}: {res['avg_ts']:.2f} ± {res['stdev_ts']:.2f} t/s (llama.cpp counters {res['llama_perf_ts']:.2f})")
        return res

    pp = run(f"pp{args.n_prompt}", args.n_prompt, 0)
    tg = run(f"tg{args.n_gen}", 0, args.n_gen)
    out = {
        "tool": "llama.cpp via llama-cpp-python (bench/gguf/peer_llama.py, llama-bench's method)",
        "llama_cpp_python_version": llama_cpp.__version__,
        "build_cmake_args": open(os.path.join(ROOT, "data/pyenv/.llama-cpp-cmake-args")).read().strip()
        if os.path.exists(os.path.join(ROOT, "data/pyenv/.llama-cpp-cmake-args")) else None,
        "system_info": llama_cpp.llama_print_system_info().decode(errors="replace").strip(),
        "cpu_model": cpu_model(),
        "n_cpus": os.cpu_count(),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": os.path.abspath(args.gguf),
        "model_file_bytes": os.path.getsize(args.gguf),
        "model_desc": desc.value.decode(errors="replace"),
        "model_size_bytes": model_size,
        "model_n_params": n_params,
        "n_vocab": n_vocab,
        "threads": args.threads,
        "n_batch": args.n_batch, "n_ubatch": args.n_batch,
        "type_kv": "f16",
        "flash_attn": args.flash_attn,
        "threadpool": not args.no_threadpool,
        "timing": "time.perf_counter_ns around each whole test rep (llama-bench's get_time_ns); llama_perf_ts from llama.cpp's counters",
        "pp": pp,
        "tg": tg,
        "tg_weight_GBps": round(model_size * tg["avg_ts"] / 1e9, 3),
    }
    llama_cpp.llama_model_free(model)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Decode-speed peers for a GPT-2-small-shaped model (124M parameters, random weights):
PyTorch (transformers generate) and llama.cpp (llama-cpp-python), greedy, 16-token prompt,
128 new tokens, batch 1, f32, 2 threads.

    data/pyenv/bin/python bench/model/decode_peers.py [--runs 3] [--peers torch,llama]

Input:  data/bench/model/gpt2-small-random/ (bench/model/make_gpt2_small.py) and its GGUF f32
        conversion data/bench/model/gpt2-small-random-f32.gguf (bench/model/convert_gguf.py).
Output: one JSON line per peer on stdout, and data/bench/model/decode-peers.json.

The prompt: PROMPT below, tokenized by the folder's tokenizer.json (`tokenizers`) = 16 ids;
llama.cpp tokenizes the same text itself and the script checks that it gets the same 16 ids.

* torch: GPT2LMHeadModel.from_pretrained(folder), f32, eval, torch.set_num_threads(2),
  torch.inference_mode(); model.generate(ids, attention_mask, do_sample=False,
  max_new_tokens=128, min_new_tokens=128, use_cache=True). 1 warm-up + --runs timed calls
  (perf_counter around generate). Prefill time = median of 5 timed forwards of the 16-token
  prompt alone (model(ids, use_cache=True), after a warm-up). Reported:
    decode_tokens_per_s = 128 / (generate time - prefill time)   (median over runs)
    total_tokens_per_s  = 128 / generate time
  min_new_tokens=128 makes generate mask <|endoftext|> so that all 128 tokens are produced.
  For reference only, a second entry times the same greedy decode written as a plain loop
  (one forward of the prompt, then 127 forwards of one token with past_key_values, argmax
  with <|endoftext|> masked; checked to give generate's tokens), same formulas.
* llama: llama_cpp.Llama(gguf, n_ctx=512, n_batch=512, n_ubatch=512, n_threads=2,
  n_threads_batch=2), with flash attention off (llama-cpp-python's default) and on: two
  entries. Per run: KV cache cleared, llama_perf_context_reset, then a plain loop:
  llama_decode of the 16-token prompt in one batch, then 127 single-token llama_decode
  calls, each next token chosen by llama.cpp's own sampler chain = logit bias
  (<|endoftext|> -> -inf, the same as min_new_tokens) + greedy; 128 tokens out. Reported from
  llama.cpp's own counters (llama_perf_context): prompt eval ms (n_p_eval = 16) and eval ms
  (n_eval = 127 single-token decodes):
    decode_tokens_per_s = n_eval / eval seconds                  (llama.cpp's "eval" rate)
    prompt_tokens_per_s = n_p_eval / prompt-eval seconds
  and from the wall clock (perf_counter around the loop), as for torch:
    wall_decode_tokens_per_s = 128 / (wall - prompt eval seconds)
    total_tokens_per_s       = 128 / wall
  Note the counting difference: torch's decode figure divides 128 tokens by the time after
  the prefill (127 forwards + 128 argmaxes + generate's overhead); llama.cpp's eval rate
  divides 127 forwards by their own time. wall_decode_tokens_per_s is the like-for-like one.
Before each peer's timed runs the script waits (up to --wait-quiet s) for an idle machine,
logs `top -bn1 | head -15`, and records the busy cores just before and the CPU-seconds other
processes used during the runs (others_cpu_s_during).
The generated ids of all peers are compared (greedy on the same weights: they should agree
for a long prefix; f32 rounding can flip a near-tie later) and reported.
"""
import argparse
import ctypes
import json
import os
import platform
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
THREADS = 2
NEW_TOKENS = 128
PROMPT = "The old lighthouse keeper walked slowly along the shore, watching the grey waves roll in"
PROMPT_TOKENS = 16
EOT_ID = 50256

os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
os.environ.setdefault("MKL_NUM_THREADS", str(THREADS))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from machine import CpuWatch, before_timing, log  # noqa: E402  (bench/model/machine.py)


def prompt_ids(model_dir):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    ids = tok.encode(PROMPT, add_special_tokens=False).ids
    if len(ids) != PROMPT_TOKENS:
        raise SystemExit(f"the prompt is {len(ids)} tokens with this tokenizer, expected {PROMPT_TOKENS}")
    return ids


# ------------------------------------------------------------------------------ torch --

def run_torch(model_dir, ids, runs, wait_quiet_s):
    import torch
    import transformers
    from transformers import GPT2LMHeadModel

    torch.set_num_threads(THREADS)
    torch.set_num_interop_threads(1)
    model = GPT2LMHeadModel.from_pretrained(model_dir, dtype=torch.float32).eval()
    x = torch.tensor([ids], dtype=torch.long)
    mask = torch.ones_like(x)
    kw = dict(attention_mask=mask, do_sample=False, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
              use_cache=True, pad_token_id=EOT_ID, eos_token_id=EOT_ID)

    with torch.inference_mode():
        out = model.generate(x, **kw)  # warm-up
        generated = out[0, len(ids):].tolist()
        assert len(generated) == NEW_TOKENS, len(generated)
        model(x, use_cache=True)  # warm-up of the prefill
        seen = before_timing("torch", wait_quiet_s)
        with CpuWatch() as w:
            prefill = []
            for _ in range(5):
                t0 = time.perf_counter()
                model(x, use_cache=True)
                prefill.append(time.perf_counter() - t0)
            prefill_s = statistics.median(prefill)
            totals = []
            for _ in range(runs):
                t0 = time.perf_counter()
                out = model.generate(x, **kw)
                totals.append(time.perf_counter() - t0)
                assert out[0, len(ids):].tolist() == generated, "generate is not deterministic"
        # Extra, for reference: the same greedy decode as a plain loop of forwards with the KV
        # cache (model(next_id, past_key_values=...), argmax with <|endoftext|> masked), to show
        # how much of generate()'s time is generate's own machinery.
        def loop():
            o = model(x, use_cache=True)
            past, logits = o.past_key_values, o.logits[0, -1]
            toks = []
            while True:
                logits[EOT_ID] = float("-inf")
                t = int(torch.argmax(logits))
                toks.append(t)
                if len(toks) == NEW_TOKENS:
                    return toks
                o = model(torch.tensor([[t]]), past_key_values=past, use_cache=True)
                past, logits = o.past_key_values, o.logits[0, -1]

        assert loop() == generated, "the manual loop does not reproduce generate"
        with CpuWatch() as w2:
            loops = []
            for _ in range(runs):
                t0 = time.perf_counter()
                loop()
                loops.append(time.perf_counter() - t0)
    decode = [NEW_TOKENS / (t - prefill_s) for t in totals]
    loop_decode = [NEW_TOKENS / (t - prefill_s) for t in loops]
    extra = {
        "peer": "torch (manual KV-cache loop, reference)",
        "decode_tokens_per_s": round(statistics.median(loop_decode), 2),
        "total_tokens_per_s": round(statistics.median(NEW_TOKENS / t for t in loops), 2),
        "runs_decode_tokens_per_s": [round(v, 2) for v in loop_decode],
        "runs_total_s": [round(t, 4) for t in loops],
        "prefill_s": round(prefill_s, 5),
        "others_cpu_s_during": w2.others_cpu_s, "own_cpu_s": w2.own_cpu_s,
    }
    return {
        "peer": "torch",
        "decode_tokens_per_s": round(statistics.median(decode), 2),
        "total_tokens_per_s": round(statistics.median(NEW_TOKENS / t for t in totals), 2),
        "runs_decode_tokens_per_s": [round(v, 2) for v in decode],
        "runs_total_s": [round(t, 4) for t in totals],
        "prefill_s": round(prefill_s, 5), "prefill_runs_s": [round(t, 5) for t in prefill],
        **seen, "others_cpu_s_during": w.others_cpu_s, "own_cpu_s": w.own_cpu_s,
        "version": f"torch {torch.__version__}, transformers {transformers.__version__}",
    }, generated, extra


# ------------------------------------------------------------------------------ llama --

def run_llama(gguf_path, ids, runs, flash_attn, wait_quiet_s):
    import llama_cpp
    from llama_cpp import Llama

    llm = Llama(model_path=gguf_path, n_ctx=512, n_batch=512, n_ubatch=512, n_threads=THREADS,
                n_threads_batch=THREADS, flash_attn=flash_attn, logits_all=False, verbose=False)
    ctx = llm._ctx.ctx
    n_vocab = llm.n_vocab()
    assert n_vocab == 50257, n_vocab
    lids = llm.tokenize(PROMPT.encode("utf-8"), add_bos=False, special=False)
    if lids != ids:
        raise SystemExit(f"llama.cpp tokenizes the prompt differently:\n  llama.cpp {lids}\n  tokenizers {ids}")

    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    bias = (llama_cpp.llama_logit_bias * 1)()
    bias[0].token = EOT_ID
    bias[0].bias = float("-inf")
    llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_logit_bias(n_vocab, 1, bias))
    llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_greedy())

    def one_run():
        llm.reset()
        llm._ctx.kv_cache_clear()
        llama_cpp.llama_sampler_reset(chain)
        llama_cpp.llama_perf_context_reset(ctx)
        out = []
        t0 = time.perf_counter()
        llm.eval(ids)  # one llama_decode of the 16 prompt tokens (n_batch 512)
        tok = llama_cpp.llama_sampler_sample(chain, ctx, -1)
        out.append(tok)
        while len(out) < NEW_TOKENS:
            llm.eval([tok])
            tok = llama_cpp.llama_sampler_sample(chain, ctx, -1)
            out.append(tok)
        wall = time.perf_counter() - t0
        p = llama_cpp.llama_perf_context(ctx)
        return out, wall, p

    generated, _, p = one_run()  # warm-up
    assert (p.n_p_eval, p.n_eval) == (PROMPT_TOKENS, NEW_TOKENS - 1), (p.n_p_eval, p.n_eval)
    name = "llama.cpp" + (" flash-attn" if flash_attn else "")
    seen = before_timing(name, wait_quiet_s)
    rows = []
    with CpuWatch() as w:
        for _ in range(runs):
            out, wall, p = one_run()
            assert out == generated, "llama.cpp generation is not deterministic"
            rows.append({"wall_s": wall, "p_eval_ms": p.t_p_eval_ms, "n_p_eval": p.n_p_eval,
                         "eval_ms": p.t_eval_ms, "n_eval": p.n_eval})
    med = statistics.median
    result = {
        "peer": name,
        "decode_tokens_per_s": round(med(r["n_eval"] / (r["eval_ms"] / 1e3) for r in rows), 2),
        "prompt_tokens_per_s": round(med(r["n_p_eval"] / (r["p_eval_ms"] / 1e3) for r in rows), 2),
        "wall_decode_tokens_per_s": round(med(NEW_TOKENS / (r["wall_s"] - r["p_eval_ms"] / 1e3) for r in rows), 2),
        "total_tokens_per_s": round(med(NEW_TOKENS / r["wall_s"] for r in rows), 2),
        "runs": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in rows],
        **seen, "others_cpu_s_during": w.others_cpu_s, "own_cpu_s": w.own_cpu_s,
        "flash_attn": flash_attn,
        "version": f"llama-cpp-python {llama_cpp.__version__}",
        "system_info": llama_cpp.llama_print_system_info().decode(errors="replace").strip(),
    }
    llama_cpp.llama_sampler_free(chain)
    llm.close() if hasattr(llm, "close") else None
    return result, generated


def common_prefix(a, b):
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(ROOT, "data/bench/model/gpt2-small-random"))
    ap.add_argument("--gguf", default=os.path.join(ROOT, "data/bench/model/gpt2-small-random-f32.gguf"))
    ap.add_argument("--out", default=os.path.join(ROOT, "data/bench/model/decode-peers.json"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--peers", default="torch,llama")
    ap.add_argument("--wait-quiet", type=float, default=600.0,
                    help="before each peer's timed runs, wait up to this many seconds for an idle machine")
    args = ap.parse_args()
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]

    ids = prompt_ids(args.model)
    log(f"prompt ({len(ids)} ids): {PROMPT!r} -> {ids}")
    results, gens = [], {}
    if "torch" in peers:
        r, g, extra = run_torch(args.model, ids, args.runs, args.wait_quiet)
        print(json.dumps(r), flush=True)
        print(json.dumps(extra), flush=True)
        results += [r, extra]
        gens["torch"] = g
    if "llama" in peers:
        for fa in (False, True):
            r, g = run_llama(args.gguf, ids, args.runs, fa, args.wait_quiet)
            print(json.dumps({k: v for k, v in r.items() if k != "system_info"}), flush=True)
            results.append(r)
            gens[r["peer"]] = g
    agreement = {}
    names = list(gens)
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            agreement[f"{names[i]} vs {names[j]}"] = common_prefix(gens[names[i]], gens[names[j]])
    if agreement:
        log(f"generated tokens, common prefix length (of {NEW_TOKENS}): {agreement}")

    import tokenizers
    report = {
        "benchmark": "GPT-2 small (124M, random weights) greedy decode",
        "model": os.path.relpath(args.model, ROOT), "gguf": os.path.relpath(args.gguf, ROOT),
        "prompt": PROMPT, "prompt_ids": ids, "new_tokens": NEW_TOKENS, "batch": 1,
        "threads": THREADS, "dtype": "f32", "warmup_runs": 1, "timed_runs": args.runs,
        "statistic": "median over timed runs",
        "python": platform.python_version(), "tokenizers": tokenizers.__version__,
        "generated_common_prefix": agreement,
        "generated": gens,
        "peers": results,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

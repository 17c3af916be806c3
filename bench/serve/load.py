#!/usr/bin/env python3
"""Streaming load client for OpenAI-compatible servers (duet serve, llama-cpp-python's server).

    data/pyenv/bin/python bench/serve/load.py --url http://127.0.0.1:PORT/v1 --model NAME \
        --kind duet|llama --clients 64 --duration 60 --max-tokens 128 [--out FILE.json]

N clients (asyncio + aiohttp, one connection each) loop `POST /v1/completions` with
`stream: true` back to back for --duration seconds. Client c's k-th request uses prompt
(c + k) mod 64 of bench/serve/prompts.txt (64 English sentences, 18-25 tokens) and seed
1000*c + k; temperature --temperature (default 0: greedy).

Generation length. Every request asks for exactly --max-tokens new tokens:
  * duet:  `ignore_eos: true` (vLLM's extension) and `stream_options.include_usage`, so the
           last chunk carries usage.completion_tokens.
  * llama: llama-cpp-python has no ignore_eos; `min_tokens: max_tokens` (its
           MinTokensLogitsProcessor masks the end-of-sequence token until then) and
           `repeat_penalty: 1.0` (its default 1.1; duet has no penalty by default). It does
           not send usage in streams: a request that ends with finish_reason "length" counts
           max_tokens tokens, anything else counts its content chunks.

Measured per request (time.perf_counter, at the client):
  * TTFT: request sent -> first chunk with non-empty text.
  * ITL: gaps between consecutive non-empty text chunks of one request. A chunk normally
    carries one token; a server may hold back a token that ends inside a UTF-8 character and
    send it with the next one (then one gap covers two tokens).
  * tokens: usage.completion_tokens if sent, else as above.
  * errors: HTTP status != 200, exceptions (connection, parse), `error` objects in the stream,
    streams that end without `[DONE]`, and completed requests with fewer than max_tokens
    tokens ("short"); each kind counted, the first few messages kept.

The window: all clients start together at t=0 and stop at t=duration, when requests still in
flight are cancelled (connection closed). Those are not errors; they are reported as
`cut_at_end` (of which `cut_waiting` had no token yet). Throughput counts every token whose
chunk arrived inside the window: aggregate tokens/s = tokens in window / duration (a
completed request's tokens are spread evenly over its non-empty chunks; a cut request counts
its chunks). TTFT percentiles are over requests that got a first token; because a server that
serves one request at a time keeps clients queued for a long time, `ttft_with_waiting_ms`
also counts each cut request that never got a token with its wait so far (a lower bound of
its TTFT).

With --server-pid the server's CPU-seconds during the window are read from /proc; the client's
own CPU-seconds and those of other processes (machine total minus client and server) too; and
the server's CPU-seconds in the 3 s after the window (should be ~0: cut streams abandoned).
Before the window, one untimed warm-up request (prompt 0, seed 1) whose text is kept
(`warmup_text`: with temperature 0 both servers should produce the same greedy text).
"""
import argparse
import asyncio
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "bench", "model"))

import aiohttp  # noqa: E402

from machine import before_timing, log  # noqa: E402  (bench/model/machine.py)


def read_prompts(path):
    with open(path, encoding="utf-8") as f:
        prompts = [line.rstrip("\n") for line in f if line.strip()]
    assert len(prompts) == 64, f"{path}: expected 64 prompts, got {len(prompts)}"
    return prompts


def pct(values, q):
    """Percentile q (0..100) with linear interpolation (numpy's default); None if empty."""
    if not values:
        return None
    v = sorted(values)
    pos = (len(v) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def body_for(kind, model, prompt, max_tokens, temperature, seed):
    b = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": temperature,
         "seed": seed, "stream": True}
    if kind == "duet":
        b["ignore_eos"] = True
        b["stream_options"] = {"include_usage": True}
    elif kind == "llama":
        b["min_tokens"] = max_tokens
        b["repeat_penalty"] = 1.0
    else:
        raise ValueError(kind)
    return b


class Req:
    __slots__ = ("t_send", "t_first", "chunk_times", "tokens", "usage_tokens", "finish", "done",
                 "error", "status", "text")

    def __init__(self, t_send):
        self.t_send = t_send
        self.t_first = None
        self.chunk_times = []  # arrival of each non-empty text chunk
        self.tokens = None
        self.usage_tokens = None
        self.finish = None
        self.done = False
        self.error = None
        self.status = None
        self.text = None  # the generated text, kept only for the warm-up request


async def one_request(session, url, body, req):
    async with session.post(url, json=body) as resp:
        req.status = resp.status
        if resp.status != 200:
            text = (await resp.read())[:300].decode("utf-8", "replace")
            req.error = ("http", f"HTTP {resp.status}: {text}")
            return
        async for raw in resp.content:  # one line per iteration
            line = raw.strip()
            if not line.startswith(b"data:"):
                continue  # blank separators, ': ping' comments, 'event:' lines
            data = line[5:].strip()
            if data == b"[DONE]":
                req.done = True
                break
            now = time.perf_counter()
            obj = json.loads(data)
            if "error" in obj and obj["error"]:
                req.error = ("stream_error", json.dumps(obj["error"])[:300])
                return
            usage = obj.get("usage")
            if usage and usage.get("completion_tokens") is not None:
                req.usage_tokens = int(usage["completion_tokens"])
            for ch in obj.get("choices") or ():
                if ch.get("text"):
                    req.chunk_times.append(now)
                    if req.text is not None:
                        req.text.append(ch["text"])
                    if req.t_first is None:
                        req.t_first = now
                if ch.get("finish_reason"):
                    req.finish = ch["finish_reason"]
        if not req.done:
            req.error = ("no_done", "stream ended without [DONE]")


async def client(cid, session, url, args, prompts, reqs, t_end):
    k = 0
    while time.perf_counter() < t_end:
        body = body_for(args.kind, args.model, prompts[(cid + k) % len(prompts)], args.max_tokens,
                        args.temperature, 1000 * cid + k)
        req = Req(time.perf_counter())
        reqs.append(req)
        k += 1
        try:
            await one_request(session, url, body, req)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001
            req.error = ("exception", f"{type(e).__name__}: {e}"[:300])
        if req.error:
            await asyncio.sleep(0.05)  # do not spin on a failing server


def proc_cpu_s(pid):
    """utime + stime of a process (all its threads), seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_s():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


async def run(args):
    prompts = read_prompts(args.prompts)
    url = args.url.rstrip("/") + "/completions"
    reqs = []
    conn = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=None)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as session:
        if args.warmup:
            # one full request, untimed: first-call costs (allocation, page faults) out of the window
            w = Req(time.perf_counter())
            w.text = []
            await one_request(session, url, body_for(args.kind, args.model, prompts[0],
                                                     args.max_tokens, args.temperature, 1), w)
            if w.error:
                raise SystemExit(f"warm-up request failed: {w.error}")
        warmup_text = "".join(w.text) if args.warmup else None
        seen = before_timing(f"{args.label} x{args.clients}", args.wait_quiet)
        cpu0 = (proc_cpu_s(args.server_pid) if args.server_pid else None, os.times(), machine_busy_s())
        t0 = time.perf_counter()
        t_end = t0 + args.duration
        tasks = [asyncio.create_task(client(c, session, url, args, prompts, reqs, t_end))
                 for c in range(args.clients)]
        await asyncio.sleep(max(0.0, t_end - time.perf_counter()))
        t_stop = time.perf_counter()
        for t in tasks:
            t.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        server_cpu = proc_cpu_s(args.server_pid) - cpu0[0] if args.server_pid else None
        own1 = os.times()
        own_cpu = (own1.user - cpu0[1].user) + (own1.system - cpu0[1].system)
        machine_cpu = machine_busy_s() - cpu0[2]
        for r in results:
            if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError):
                log(f"client task failed: {r!r}")
    # does the server stop working on the streams cut at the end (client disconnected)?
    after = None
    if args.server_pid:
        c0 = proc_cpu_s(args.server_pid)
        await asyncio.sleep(3.0)
        after = round(proc_cpu_s(args.server_pid) - c0, 2)
    out = summarise(args, reqs, t0, t_stop, seen, server_cpu, own_cpu, machine_cpu)
    out["server_cpu_s_in_3s_after"] = after
    out["warmup_prompt"] = prompts[0]
    out["warmup_text"] = warmup_text
    return out


def summarise(args, reqs, t0, t_stop, seen, server_cpu, own_cpu, machine_cpu):
    window = t_stop - t0
    errors, messages = {}, []
    completed, cut, cut_waiting, short = 0, 0, 0, 0
    tokens_in_window, tokens_total = 0.0, 0
    ttft, ttft_wait, itl = [], [], []
    counted_by = {"usage": 0, "finish_length": 0, "chunks": 0}
    for r in reqs:
        n_chunks = len(r.chunk_times)
        if r.error:
            errors[r.error[0]] = errors.get(r.error[0], 0) + 1
            if len(messages) < 5:
                messages.append(r.error[1])
        finished = r.done and not r.error
        if finished:
            completed += 1
            if r.usage_tokens is not None:
                r.tokens, how = r.usage_tokens, "usage"
            elif r.finish == "length":
                r.tokens, how = args.max_tokens, "finish_length"
            else:
                r.tokens, how = n_chunks, "chunks"
            counted_by[how] += 1
            if r.tokens < args.max_tokens:
                short += 1
                errors["short"] = errors.get("short", 0) + 1
                if len(messages) < 5:
                    messages.append(f"only {r.tokens} tokens (finish_reason {r.finish})")
        elif not r.error:
            cut += 1
            r.tokens = n_chunks
            if r.t_first is None:
                cut_waiting += 1
        else:
            r.tokens = n_chunks
        tokens_total += r.tokens
        if n_chunks:
            per_chunk = r.tokens / n_chunks
            tokens_in_window += per_chunk * sum(1 for t in r.chunk_times if t <= t_stop)
        if r.t_first is not None:
            ttft.append((r.t_first - r.t_send) * 1e3)
            ttft_wait.append((r.t_first - r.t_send) * 1e3)
        elif not finished and not r.error:
            ttft_wait.append((t_stop - r.t_send) * 1e3)
        for a, b in zip(r.chunk_times, r.chunk_times[1:]):
            itl.append((b - a) * 1e3)
    n_err = sum(errors.values())
    rnd = lambda x, d=1: None if x is None else round(x, d)  # noqa: E731
    single = [(r.tokens - 1) / (r.chunk_times[-1] - r.t_first) for r in reqs
              if r.done and not r.error and len(r.chunk_times) > 1 and r.tokens > 1]
    out = {
        "server": args.label, "kind": args.kind, "clients": args.clients,
        "duration_s": round(window, 3), "max_tokens": args.max_tokens,
        "temperature": args.temperature,
        "requests_started": len(reqs), "requests_completed": completed,
        "cut_at_end": cut, "cut_waiting": cut_waiting,
        "errors": n_err, "errors_by_kind": errors, "error_messages": messages,
        "tokens_in_window": round(tokens_in_window, 1),
        "aggregate_tokens_per_s": round(tokens_in_window / window, 2),
        "completed_requests_per_s": round(completed / window, 3),
        "ttft_ms": {"p50": rnd(pct(ttft, 50)), "p90": rnd(pct(ttft, 90)), "p99": rnd(pct(ttft, 99)),
                    "max": rnd(max(ttft) if ttft else None), "n": len(ttft)},
        "ttft_with_waiting_ms": {"p50": rnd(pct(ttft_wait, 50)), "p99": rnd(pct(ttft_wait, 99)),
                                 "n": len(ttft_wait)},
        "itl_ms": {"p50": rnd(pct(itl, 50), 2), "p90": rnd(pct(itl, 90), 2),
                   "p99": rnd(pct(itl, 99), 2), "max": rnd(max(itl) if itl else None, 2),
                   "n": len(itl)},
        "per_request_decode_tokens_per_s_p50": rnd(pct(single, 50), 2),
        "tokens_counted_by": counted_by,
        "server_cpu_s": rnd(server_cpu, 2), "client_cpu_s": round(own_cpu, 2),
        "others_cpu_s": None if server_cpu is None else round(max(0.0, machine_cpu - server_cpu - own_cpu), 2),
        **seen,
    }
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True, help="base URL ending in /v1")
    ap.add_argument("--model", required=True)
    ap.add_argument("--kind", choices=["duet", "llama"], required=True)
    ap.add_argument("--label", default=None)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--temperature", type=float, default=0.0)
    ap.add_argument("--prompts", default=os.path.join(HERE, "prompts.txt"))
    ap.add_argument("--server-pid", type=int, default=None)
    ap.add_argument("--wait-quiet", type=float, default=0.0,
                    help="wait up to this many seconds for an idle machine before the window")
    ap.add_argument("--no-warmup", dest="warmup", action="store_false")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    args.label = args.label or args.kind
    out = asyncio.run(run(args))
    line = json.dumps(out)
    print(line, flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)
    log(f"{args.label} x{args.clients}: {out['aggregate_tokens_per_s']} tok/s, "
        f"{out['requests_completed']} done, {out['errors']} errors, "
        f"TTFT p50 {out['ttft_ms']['p50']} ms p99 {out['ttft_ms']['p99']} ms, "
        f"ITL p50 {out['itl_ms']['p50']} ms p99 {out['itl_ms']['p99']} ms")


if __name__ == "__main__":
    main()

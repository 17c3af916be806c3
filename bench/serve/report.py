#!/usr/bin/env python3
"""Collects bench/serve/load.py's outputs (DIR/load-{duet,llama}-c{1,N}.json) into
DIR/results.json and DIR/results.md: a side-by-side table, the ratios duet / llama.cpp and
N clients / 1 client, the issue's checks, and the machine.

    data/pyenv/bin/python bench/serve/report.py data/bench/serve 64
"""
import hashlib
import json
import os
import platform
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
NAMES = {"duet": "duet serve", "llama": "llama.cpp (llama-cpp-python server)"}


def machine():
    info = {"python": platform.python_version(), "kernel": platform.release()}
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        info["cores"] = os.cpu_count()
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                info["memory_gib"] = round(int(line.split()[1]) / 2**20, 1)
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                info["os"] = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    try:
        info["git_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                                            text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        info["git_dirty"] = bool(dirty)
    except OSError:
        pass
    binp = os.path.join(ROOT, "data/bench/duet-serve-bin")
    if os.path.exists(binp):
        h = hashlib.sha256()
        with open(binp, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        info["duet_bin_sha256"] = h.hexdigest()[:16]
    try:
        from importlib.metadata import version
        info["versions"] = {p: version(p) for p in
                            ("llama_cpp_python", "fastapi", "uvicorn", "sse-starlette", "aiohttp")}
    except Exception as e:  # noqa: BLE001
        info["versions"] = f"({e})"
    return info


def load(d, server, clients):
    p = os.path.join(d, f"load-{server}-c{clients}.json")
    return json.load(open(p)) if os.path.exists(p) else None


def fmt(v, nd=1):
    if v is None:
        return "–"
    if isinstance(v, str):
        return v
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    return f"{v:,}"


def ratio(a, b):
    return None if a is None or b in (None, 0) else a / b


def main():
    d, n = sys.argv[1], int(sys.argv[2])
    runs = {(s, c): load(d, s, c) for s in ("duet", "llama") for c in (1, n)}
    servers = [s for s in ("duet", "llama") if runs[(s, 1)] or runs[(s, n)]]
    summary = {}
    for s in servers:
        one, many = runs[(s, 1)], runs[(s, n)]
        summary[s] = {
            "single_tokens_per_s": one and one["aggregate_tokens_per_s"],
            "aggregate_tokens_per_s": many and many["aggregate_tokens_per_s"],
            "batching_ratio": ratio(many and many["aggregate_tokens_per_s"], one and one["aggregate_tokens_per_s"]),
            "errors": (many["errors"] if many else 0) + (one["errors"] if one else 0),
        }
    checks = {}
    if "duet" in summary:
        sd = summary["duet"]
        checks["duet_zero_errors"] = sd["errors"] == 0
        checks["duet_batching_ratio_ge_3"] = sd["batching_ratio"] is not None and sd["batching_ratio"] >= 3
    if "duet" in summary and "llama" in summary:
        r = ratio(summary["duet"]["aggregate_tokens_per_s"], summary["llama"]["aggregate_tokens_per_s"])
        summary["duet_over_llama_aggregate"] = r
        checks["duet_aggregate_ge_llama"] = r is not None and r >= 1
    greedy = None
    if runs[("duet", 1)] and runs[("llama", 1)] and runs[("duet", 1)]["temperature"] == 0:
        a, b = runs[("duet", 1)].get("warmup_text"), runs[("llama", 1)].get("warmup_text")
        if a is not None and b is not None:
            same = 0
            while same < min(len(a), len(b)) and a[same] == b[same]:
                same += 1
            greedy = {"duet": a, "llama": b, "identical": a == b, "common_prefix_chars": same}
    out = {"clients": n, "runs": {f"{s}-c{c}": r for (s, c), r in runs.items() if r},
           "summary": summary, "checks": checks, "greedy_warmup_text": greedy, "machine": machine()}
    with open(os.path.join(d, "results.json"), "w") as f:
        json.dump(out, f, indent=1)

    any_run = next(r for k, r in sorted(runs.items(), key=lambda kv: -kv[0][1]) if r)
    cols = [(s, c) for s in servers for c in (1, n)]
    head = [f"{NAMES[s].split(' (')[0]} ×{c}" for s, c in cols]
    both = "duet" in servers and "llama" in servers
    if both:
        head.append(f"duet / llama.cpp ×{n}")
    for s in servers:
        head.append(f"{s.replace('llama', 'llama.cpp')} ×{n} / ×1")
    rows = [
        ("aggregate tokens/s", lambda r: r["aggregate_tokens_per_s"], 1, "tput"),
        ("completed requests", lambda r: r["requests_completed"], 0, None),
        ("requests cut at end (no token yet)", lambda r: f"{r['cut_at_end']} ({r['cut_waiting']})", 0, None),
        ("errors", lambda r: r["errors"], 0, None),
        ("TTFT p50 ms", lambda r: r["ttft_ms"]["p50"], 1, "lat"),
        ("TTFT p99 ms", lambda r: r["ttft_ms"]["p99"], 1, "lat"),
        ("TTFT p99 ms, counting unserved waits", lambda r: r["ttft_with_waiting_ms"]["p99"], 1, "lat"),
        ("ITL p50 ms", lambda r: r["itl_ms"]["p50"], 2, "lat"),
        ("ITL p99 ms", lambda r: r["itl_ms"]["p99"], 2, "lat"),
        ("per-request decode tokens/s (p50)", lambda r: r["per_request_decode_tokens_per_s_p50"], 1, "tput"),
        ("server CPU-s in window", lambda r: r["server_cpu_s"], 1, None),
        ("client CPU-s / others' CPU-s", lambda r: f"{r['client_cpu_s']} / {r['others_cpu_s']}", 0, None),
        ("busy cores before", lambda r: r["busy_cores_before"], 2, None),
    ]
    md = [f"# Serving under load: duet serve vs llama.cpp's server, {n} streaming clients", ""]
    md.append(f"Command: `CLIENTS={n} DURATION={any_run['duration_s']:.0f} MAX_TOKENS={any_run['max_tokens']} "
              f"bench/serve/run.sh` (window {any_run['duration_s']:.1f} s per run, "
              f"{any_run['max_tokens']} new tokens per request, temperature {any_run['temperature']}, "
              "prompts: bench/serve/prompts.txt, 64 sentences of 18–25 tokens). Ratios of latencies: lower is better.")
    md.append("")
    md.append("| | " + " | ".join(head) + " |")
    md.append("| --- |" + " ---: |" * len(head))
    for name, get, nd, kind in rows:
        cells = []
        for s, c in cols:
            r = runs[(s, c)]
            cells.append(fmt(get(r), nd) if r else "–")
        if both:
            a, b = runs[("duet", n)], runs[("llama", n)]
            cells.append(f"{ratio(get(a), get(b)):.2f}×" if kind and a and b and ratio(get(a), get(b)) else "")
        for s in servers:
            a, b = runs[(s, n)], runs[(s, 1)]
            cells.append(f"{ratio(get(a), get(b)):.2f}×" if kind and a and b and ratio(get(a), get(b)) else "")
        md.append(f"| {name} | " + " | ".join(cells) + " |")
    md.append("")
    md.append("Checks (issue): " + ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in checks.items()))
    if greedy:
        md.append("")
        md.append(f"Greedy warm-up text (prompt 0), duet vs llama.cpp: identical {greedy['identical']}, "
                  f"common prefix {greedy['common_prefix_chars']} of {len(greedy['duet'])} / "
                  f"{len(greedy['llama'])} characters.")
    m = out["machine"]
    md.append("")
    md.append(f"Machine: {m.get('cpu')}, {m.get('cores')} cores, {m.get('memory_gib')} GiB, {m.get('os')}, "
              f"kernel {m.get('kernel')}; git {m.get('git_commit', '')[:12]}{' (dirty)' if m.get('git_dirty') else ''}, "
              f"duet binary sha256 {m.get('duet_bin_sha256')}; Python {m.get('python')}, {m.get('versions')}.")
    for s, c in cols:
        r = runs[(s, c)]
        if r and not r["quiet"]:
            md.append(f"\nWARNING: the machine was busy before {s} ×{c} ({r['busy_cores_before']} cores busy).")
        if r and r["errors"]:
            md.append(f"\n{s} ×{c} errors: {r['errors_by_kind']}; first: {r['error_messages'][:3]}")
    with open(os.path.join(d, "results.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()

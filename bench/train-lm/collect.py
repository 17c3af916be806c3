#!/usr/bin/env python3
"""Helpers of bench/train-lm/run.sh (standard library; matplotlib only for the plot).

  collect.py run --json FILE --log FILE [--wait-quiet S] -- CMD ...
      waits (up to S seconds) for an idle machine, runs CMD under /usr/bin/time -v, writes
      {wall_s, user_s, sys_s, max_rss_mb, rc, busy_cores_before, others_cpu_s, disturbed}
  collect.py summary RUN_DIR --config TOML --tokens DIR [--set K=V ...] [--peak FILE]
      duet's metrics.jsonl -> RUN_DIR/summary.json, the quantities train_torch.py reports
  collect.py table INDEX.jsonl --out results.json
      median over rounds per (config, implementation), ratios, MFU; prints a Markdown table
  collect.py learn --duet RUN --torch RUN --out-json FILE [--png FILE]
      validation losses side by side, relative differences, both loss curves in one PNG
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
import tomllib
from pathlib import Path


def proc_stat():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v), v[3] + v[4]


def busy_cores(seconds=1.0):
    t0, i0 = proc_stat()
    time.sleep(seconds)
    t1, i1 = proc_stat()
    return round(((t1 - t0) - (i1 - i0)) / os.sysconf("SC_CLK_TCK") / seconds, 2)


def top_header(n=12):
    try:
        out = subprocess.run(["top", "-bn1"], capture_output=True, text=True, timeout=10).stdout
        return "\n".join(out.splitlines()[:n])
    except Exception as e:  # noqa: BLE001
        return f"(top failed: {e})"


def parse_time_v(text):
    r = {}
    for line in text.splitlines():
        k, _, v = line.strip().rpartition(": ")
        if k == "User time (seconds)":
            r["user_s"] = float(v)
        elif k == "System time (seconds)":
            r["sys_s"] = float(v)
        elif k == "Maximum resident set size (kbytes)":
            r["max_rss_mb"] = round(int(v) / 1024, 1)
        elif k.startswith("Elapsed (wall clock) time"):
            parts = [float(p) for p in line.rsplit(" ", 1)[1].split(":")]
            s = 0.0
            for p in parts:
                s = s * 60 + p
            r["wall_s"] = s
    return r


def cmd_run(a):
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    t0 = time.time()
    busy = busy_cores(1.0)
    while busy > a.threshold and time.time() - t0 < a.wait_quiet:
        busy = busy_cores(2.0)
    waited = round(time.time() - t0, 1)
    log = open(a.log, "w")
    log.write(f"$ {' '.join(cmd)}\n--- busy cores before: {busy} (waited {waited} s)\n{top_header()}\n---\n")
    log.flush()
    tfile = a.json + ".time"
    s0, i0 = proc_stat()
    rc = subprocess.run(["/usr/bin/time", "-v", "-o", tfile, *cmd], stdout=log, stderr=subprocess.STDOUT).returncode
    s1, i1 = proc_stat()
    log.close()
    tv = parse_time_v(Path(tfile).read_text()) if Path(tfile).exists() else {}
    machine = ((s1 - s0) - (i1 - i0)) / os.sysconf("SC_CLK_TCK")
    own = tv.get("user_s", 0.0) + tv.get("sys_s", 0.0)
    others = round(max(0.0, machine - own), 2)
    wall = tv.get("wall_s", 0.0)
    doc = {"cmd": cmd, "rc": rc, **tv, "cpu_s": round(own, 2), "busy_cores_before": busy, "waited_s": waited,
           "others_cpu_s": others,
           # another process used > 5% of the 2 cores during the run, or the machine was busy before
           "disturbed": busy > a.threshold or others > 0.05 * 2 * max(wall, 1e-9)}
    Path(a.json).write_text(json.dumps(doc, indent=2))
    print(json.dumps({k: doc.get(k) for k in ("rc", "wall_s", "cpu_s", "max_rss_mb", "busy_cores_before", "others_cpu_s", "disturbed")}))
    sys.exit(rc)


def load_cfg(path, sets):
    with open(path, "rb") as f:
        cfg = tomllib.load(f)
    for s in sets:
        key, _, raw = s.partition("=")
        try:
            val = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            val = raw
        node = cfg
        *ps, leaf = key.split(".")
        for p in ps:
            node = node.setdefault(p, {})
        node[leaf] = val
    return cfg


def read_metrics(path):
    train, val = [], []
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        d = json.loads(line)
        if "val_loss" in d:
            val.append((d["step"], d["val_loss"]))
        elif "train_loss" in d:
            train.append(d)
    return train, val


def cmd_summary(a):
    run = Path(a.run)
    cfg = load_cfg(a.config, a.set)
    m, tr = cfg["model"], cfg["train"]
    manifest = json.loads((Path(a.tokens) / "manifest.json").read_text())
    v, c, layers, t = manifest["vocab_size"], m["n_embd"], m["n_layer"], m["block_size"]
    n_params = v * c + t * c + layers * (12 * c * c + 13 * c) + 2 * c
    n_flop = n_params - t * c
    fpt = 6 * n_flop + 12 * layers * c * t
    train, val = read_metrics(run / "metrics.jsonl")
    windows, prev = [], 0
    for d in train:
        windows.append((prev + 1, d["step"], d["tokens_per_sec"]))
        prev = d["step"]
    rates = [w[2] for w in windows if w[0] > a.steady_after]
    med = statistics.median(rates) if rates else None
    peak = None
    try:
        peak = json.loads(Path(a.peak).read_text())["peak_gflops"]
    except (OSError, KeyError, ValueError):
        pass
    ach = fpt * med / 1e9 if med else None
    doc = {"impl": "duet", "config": a.config, "tokens_dir": a.tokens, "sets": a.set, "model": m,
           "vocab_size": v, "params": n_params, "params_in_flops": n_flop, "flops_per_token": fpt,
           "flops_note": "6*N + 12*L*C*T; N = all parameters except the position embedding, the tied "
                         "token embedding counted once (as the output layer's matmul)",
           "steps": train[-1]["step"] if train else 0, "tokens_per_step": tr["batch_size"] * t,
           "median_tokens_per_sec": med, "steady_windows": len(rates), "steady_after_step": a.steady_after,
           "tokens_per_sec_windows": [[w[0], w[1], round(w[2], 1)] for w in windows],
           "final_train_loss": train[-1]["train_loss"] if train else None,
           "final_val_loss": val[-1][1] if val else None, "val_curve": val,
           "achieved_gflops": ach, "peak_gflops": peak, "mfu": ach / peak if ach and peak else None,
           "metrics": str(run / "metrics.jsonl")}
    (run / "summary.json").write_text(json.dumps(doc, indent=2))
    print(json.dumps({k: doc[k] for k in ("impl", "config", "steps", "median_tokens_per_sec", "final_val_loss", "mfu")}))


def fmt(x, nd=0):
    if x is None:
        return "—"
    return f"{x:,.{nd}f}"


def cmd_table(a):
    rows = [json.loads(l) for l in Path(a.index).read_text().splitlines() if l.strip()]
    peak = None
    try:
        peak = json.loads(Path(a.peak).read_text())
    except (OSError, ValueError):
        pass
    groups = {}
    for r in rows:
        s = json.loads(Path(r["summary"]).read_text()) if Path(r["summary"]).exists() else {}
        t = json.loads(Path(r["timing"]).read_text()) if Path(r["timing"]).exists() else {}
        g = groups.setdefault((r["config"], r["impl"]), {"runs": []})
        g["runs"].append({"round": r["round"], "tokens_per_sec": s.get("median_tokens_per_sec"),
                          "final_val_loss": s.get("final_val_loss"), "final_train_loss": s.get("final_train_loss"),
                          "mfu": s.get("mfu"), "wall_s": t.get("wall_s"), "cpu_s": t.get("cpu_s"),
                          "max_rss_mb": t.get("max_rss_mb"), "others_cpu_s": t.get("others_cpu_s"),
                          "disturbed": t.get("disturbed"), "rc": t.get("rc"), "summary": r["summary"],
                          "flops_per_token": s.get("flops_per_token"), "params": s.get("params")})
    out = {"peak": peak, "configs": {}}
    lines = ["| config | implementation | tokens/s (median of rounds) | rounds | MFU | val loss | wall s | peak RSS MB | disturbed rounds |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    ratio_lines = []
    for cfg in sorted({k[0] for k in groups}):
        res = {}
        for impl in ("duet", "torch-eager", "torch-compile"):
            g = groups.get((cfg, impl))
            if not g:
                continue
            ok = [r for r in g["runs"] if r["tokens_per_sec"] and r["rc"] == 0]
            tps = statistics.median([r["tokens_per_sec"] for r in ok]) if ok else None
            fpt = next((r["flops_per_token"] for r in ok if r["flops_per_token"]), None)
            mfu = tps * fpt / 1e9 / peak["peak_gflops"] if tps and fpt and peak else None
            med = lambda k: statistics.median([r[k] for r in ok if r[k] is not None]) if any(r[k] is not None for r in ok) else None  # noqa: E731
            res[impl] = {"tokens_per_sec": tps, "mfu": mfu, "flops_per_token": fpt, "final_val_loss": med("final_val_loss"),
                         "wall_s": med("wall_s"), "max_rss_mb": med("max_rss_mb"),
                         "disturbed_rounds": sum(1 for r in g["runs"] if r["disturbed"]), "runs": g["runs"]}
            lines.append(f"| {cfg} | {impl} | {fmt(tps)} | {len(ok)}/{len(g['runs'])} | {fmt(mfu * 100 if mfu else None, 1)}{'%' if mfu else ''} | "
                         f"{fmt(res[impl]['final_val_loss'], 3)} | {fmt(res[impl]['wall_s'], 1)} | {fmt(res[impl]['max_rss_mb'])} | {res[impl]['disturbed_rounds']} |")
        d = res.get("duet", {}).get("tokens_per_sec")
        ratios = {}
        for impl in ("torch-eager", "torch-compile"):
            tt = res.get(impl, {}).get("tokens_per_sec")
            ratios[f"duet/{impl}"] = d / tt if d and tt else None
        out["configs"][cfg] = {"results": res, "ratios": ratios}
        ratio_lines.append(f"config {cfg}: duet / torch eager = {fmt(ratios['duet/torch-eager'], 2)}×, "
                           f"duet / torch.compile = {fmt(ratios['duet/torch-compile'], 2)}×")
    if peak:
        lines.append("")
        lines.append(f"matmul peak (MFU denominator): {peak['peak_gflops']} GFLOP/s, f32, {peak['threads']} threads; by n: {peak['gflops']}")
    text = "\n".join(lines + [""] + ratio_lines)
    print(text)
    Path(a.out).write_text(json.dumps(out, indent=2))
    if a.markdown:
        Path(a.markdown).write_text(text + "\n")


def cmd_learn(a):
    dt, dv = read_metrics(Path(a.duet) / "metrics.jsonl")
    tt, tv = read_metrics(Path(a.torch) / "metrics.jsonl")
    tmap = dict(tv)
    pairs = []
    for step, l in dv:
        if step in tmap:
            pairs.append({"step": step, "duet": l, "torch": tmap[step], "rel_diff": (l - tmap[step]) / tmap[step]})
    lines = ["| step | duet val loss | PyTorch val loss | (duet − torch) / torch |", "| ---: | ---: | ---: | ---: |"]
    for p in pairs:
        lines.append(f"| {p['step']} | {p['duet']:.4f} | {p['torch']:.4f} | {p['rel_diff'] * 100:+.2f}% |")
    final = pairs[-1] if pairs else None
    doc = {"pairs": pairs, "final": final, "within_2pct_final": abs(final["rel_diff"]) <= 0.02 if final else None,
           "max_abs_rel_diff": max((abs(p["rel_diff"]) for p in pairs), default=None),
           "duet_train": [(d["step"], d["train_loss"]) for d in dt], "torch_train": [(d["step"], d["train_loss"]) for d in tt]}
    print("\n".join(lines))
    if final:
        print(f"\nfinal (step {final['step']}): duet {final['duet']:.4f}, PyTorch {final['torch']:.4f}, "
              f"difference {final['rel_diff'] * 100:+.2f}% ({'within' if doc['within_2pct_final'] else 'NOT within'} 2%)")
    if a.png:
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print("matplotlib not installed: no plot (pip install -r bench/train-lm/requirements.txt)", file=sys.stderr)
        else:
            fig, ax = plt.subplots(figsize=(8, 5))
            for name, tr, va, col in (("duet", dt, dv, "tab:blue"), ("PyTorch", tt, tv, "tab:orange")):
                ax.plot([d["step"] for d in tr], [d["train_loss"] for d in tr], color=col, alpha=0.35, lw=1, label=f"{name} train")
                ax.plot([s for s, _ in va], [l for _, l in va], color=col, marker="o", ms=3, lw=1.5, label=f"{name} validation")
            ax.set_xlabel("step")
            ax.set_ylabel("cross-entropy (nats/token)")
            ax.set_title(a.title)
            ax.grid(alpha=0.3)
            ax.legend()
            fig.tight_layout()
            fig.savefig(a.png, dpi=120)
            doc["png"] = a.png
            print(f"plot: {a.png}")
    Path(a.out_json).write_text(json.dumps(doc, indent=2))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd_name", required=True)
    r = sub.add_parser("run")
    r.add_argument("--json", required=True)
    r.add_argument("--log", required=True)
    r.add_argument("--wait-quiet", type=float, default=0.0)
    r.add_argument("--threshold", type=float, default=0.15)
    r.add_argument("cmd", nargs=argparse.REMAINDER)
    s = sub.add_parser("summary")
    s.add_argument("run")
    s.add_argument("--config", required=True)
    s.add_argument("--tokens", required=True)
    s.add_argument("--set", action="append", default=[])
    s.add_argument("--peak", default="data/bench/train-lm/matmul-peak.json")
    s.add_argument("--steady-after", type=int, default=20)
    t = sub.add_parser("table")
    t.add_argument("index")
    t.add_argument("--out", required=True)
    t.add_argument("--markdown")
    t.add_argument("--peak", default="data/bench/train-lm/matmul-peak.json")
    le = sub.add_parser("learn")
    le.add_argument("--duet", required=True)
    le.add_argument("--torch", required=True)
    le.add_argument("--out-json", required=True)
    le.add_argument("--png")
    le.add_argument("--title", default="config S on English fortunes: duet vs PyTorch")
    a = ap.parse_args()
    {"run": cmd_run, "summary": cmd_summary, "table": cmd_table, "learn": cmd_learn}[a.cmd_name](a)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The table of bench/gguf/run.sh: per file, duet's and llama.cpp's pp512 and tg128 (median of the
rounds' means), the ratios, whether the issue's targets are met (tg128 >= 1.2x, pp512 >= 1.0x,
computed here, never written by hand), and the weight bytes a decode step reads per second on each
side against the machine's measured read bandwidth.

    report.py RUN_DIR FILE.gguf...        writes RUN_DIR/results.json and prints Markdown
"""
import json
import os
import statistics
import sys

TG_TARGET, PP_TARGET = 1.2, 1.0


def gguf_weight_bytes(path):
    """Bytes of tensor data: what one decode step reads."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../../data/bench/gguf/sdist/llama_cpp_python-0.3.36/vendor/llama.cpp/gguf-py"))
    try:
        from gguf import GGUFReader
        return sum(int(t.n_bytes) for t in GGUFReader(path).tensors)
    except Exception:  # the file size is a close upper bound
        return os.path.getsize(path)


def sig3(x):
    return round(x, 3)


def main():
    run, files = sys.argv[1], sys.argv[2:]
    bw = json.load(open(os.path.join(run, "bandwidth.json")))
    cpu = open(os.path.join(run, "cpu.txt")).read().split("\n")
    rows = []
    for f in files:
        name = os.path.basename(f)[: -len(".gguf")]
        duet = sorted(p for p in os.listdir(run) if p.startswith(name + ".duet."))
        peer = sorted(p for p in os.listdir(run) if p.startswith(name + ".llamacpp."))
        if not duet or not peer:
            continue
        d = [json.load(open(os.path.join(run, p))) for p in duet]
        p = [json.load(open(os.path.join(run, q))) for q in peer]
        row = {
            "file": name,
            "rounds": len(d),
            "duet_pp512": statistics.median(x["pp_tokens_per_s"] for x in d),
            "duet_tg128": statistics.median(x["tg_tokens_per_s"] for x in d),
            "llamacpp_pp512": statistics.median(x["pp"]["avg_ts"] for x in p),
            "llamacpp_tg128": statistics.median(x["tg"]["avg_ts"] for x in p),
            "peer_quiet": all(x["pp"].get("quiet", True) and x["tg"].get("quiet", True) for x in p),
        }
        pp, tg = row["duet_pp512"] / row["llamacpp_pp512"], row["duet_tg128"] / row["llamacpp_tg128"]
        # met or not on the unrounded ratios: a rounded 0.9996 must not read as 1.00 and pass
        row["pp_met"], row["tg_met"] = pp >= PP_TARGET, tg >= TG_TARGET
        row["pp_ratio"], row["tg_ratio"] = sig3(pp), sig3(tg)
        wb = gguf_weight_bytes(f)
        row["weight_MB"] = round(wb / 1e6, 1)
        row["duet_tg_GBps"] = round(wb * row["duet_tg128"] / 1e9, 2)
        row["llamacpp_tg_GBps"] = round(wb * row["llamacpp_tg128"] / 1e9, 2)
        rows.append(row)
    out = {"cpu": cpu[0], "flags": cpu[1].split(), "read_bandwidth": bw, "targets": {"tg128": TG_TARGET, "pp512": PP_TARGET}, "rows": rows}
    json.dump(out, open(os.path.join(run, "results.json"), "w"), indent=1)
    print(f"CPU: {cpu[0]} ({cpu[1].strip()}); read bandwidth {bw['gbps_1_thread']:.1f} GB/s on 1 thread, {bw['gbps_2_threads']:.1f} on 2")
    print("| file | duet pp512 | llama.cpp pp512 | ratio | ≥ 1.0× | duet tg128 | llama.cpp tg128 | ratio | ≥ 1.2× | weights read (duet / llama.cpp) |")
    print("| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- | --- |")
    for r in rows:
        print(
            f"| {r['file']} | {r['duet_pp512']:.1f} | {r['llamacpp_pp512']:.1f} | {r['pp_ratio']}× | {'met' if r['pp_met'] else 'not met'} "
            f"| {r['duet_tg128']:.1f} | {r['llamacpp_tg128']:.1f} | {r['tg_ratio']}× | {'met' if r['tg_met'] else 'not met'} "
            f"| {r['duet_tg_GBps']} / {r['llamacpp_tg_GBps']} GB/s of {r['weight_MB']} MB a token |"
        )


if __name__ == "__main__":
    main()

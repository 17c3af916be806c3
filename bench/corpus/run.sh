#!/usr/bin/env bash
# Corpus-stage speed benchmark: `duet corpus build` against datatrove running the
# closest equivalent pipeline (reader, language filter, Gopher quality and
# repetition filters, MinHash dedup) on the same input, same machine, same run.
#
# Usage: bench/corpus/run.sh [--rounds N] [--datatrove-only] [--duet-only]
#
# Steps (each skipped when already done):
#   1. scripts/fetch-data.sh for the sources of the input and the lid.176 model
#   2. the datatrove venv data/bench/venv from bench/corpus/requirements.txt
#   3. bench/corpus/prepare.py -> data/bench/corpus-input.jsonl
# then N rounds (default 3) of A = datatrove, B = duet, alternately (A B A B ...),
# each under /usr/bin/time -v, and a report: wall seconds, docs/s, MB/s (input
# bytes / wall), CPU-seconds, peak RSS, docs out, the ratio of duet's throughput
# to datatrove's (medians over rounds) and the ratio of CPU-seconds. Rounds that
# other processes disturbed (CPU busy just before, or CPU used by others during
# the run, from /proc/stat) are named in a warning. Logs and the report
# (corpus-bench.json) go to data/bench/results/.
#
# Environment: DUET_BIN (default target/release/duet), ROUNDS, PYTHON (the
# python used to make the venv and run prepare.py).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

ROUNDS="${ROUNDS:-3}"
RUN_DT=1
RUN_DUET=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rounds) ROUNDS="$2"; shift 2 ;;
        --datatrove-only) RUN_DUET=0; shift ;;
        --duet-only) RUN_DT=0; shift ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

PYTHON="${PYTHON:-python3}"
DUET_BIN="${DUET_BIN:-target/release/duet}"
BENCH=data/bench
INPUT="$BENCH/corpus-input.jsonl"
VENV="$BENCH/venv"
RESULTS="$BENCH/results"
REQ=bench/corpus/requirements.txt

log() { printf '== %s\n' "$*" >&2; }

# 1. data ---------------------------------------------------------------------
scripts/fetch-data.sh fortunes fortunes-zh dict-gcide bbc-news python3-doc lid176 >&2

# 2. datatrove venv -----------------------------------------------------------
if [[ $RUN_DT == 1 ]]; then
    want="$(sha256sum "$REQ" | cut -d' ' -f1)"
    if [[ ! -x "$VENV/bin/python" || "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$want" ]]; then
        log "creating $VENV from $REQ"
        rm -rf "$VENV"
        "$PYTHON" -m venv "$VENV"
        "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQ"
        echo "$want" >"$VENV/.requirements.sha256"
    fi
fi

# 3. input --------------------------------------------------------------------
if [[ ! -s "$INPUT" || ! -s "$BENCH/corpus-input.stats.json" || bench/corpus/prepare.py -nt "$INPUT" ]]; then
    log "preparing $INPUT"
    "$PYTHON" bench/corpus/prepare.py --out "$INPUT"
fi

if [[ ! -x /usr/bin/time ]]; then
    log "installing GNU time"
    apt-get install -y -qq time >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
fi

if [[ $RUN_DUET == 1 && ! -x "$DUET_BIN" ]]; then
    log "WARNING: $DUET_BIN not found (cargo build --release first); running the datatrove side only"
    RUN_DUET=0
fi

mkdir -p "$RESULTS"
rm -f "$RESULTS"/round-*
if [[ $RUN_DT == 1 ]]; then # shard the input once, outside the timed runs
    "$VENV/bin/python" bench/corpus/datatrove_pipeline.py "$INPUT" --split-only
fi

busy_cores() { # busy_cores SECONDS -> average number of busy cores over that time (whole machine)
    local a b
    a="$(head -n 1 /proc/stat)"; sleep "$1"; b="$(head -n 1 /proc/stat)"
    awk -v a="$a" -v b="$b" -v s="$1" -v hz="$(getconf CLK_TCK)" 'BEGIN {
        n = split(a, x, " "); split(b, y, " "); tot = 0; idle = 0
        for (i = 2; i <= n; i++) tot += y[i] - x[i]
        idle = (y[5] - x[5]) + (y[6] - x[6])
        printf "%.2f", (tot - idle) / hz / s }'
}

timed() { # timed ROUND TOOL CMD... : run CMD under /usr/bin/time -v, record the machine's CPU use around it
    local r="$1" tool="$2" pre; shift 2
    pre="$(busy_cores 2)"
    if awk -v p="$pre" 'BEGIN { exit !(p > 0.15) }'; then
        log "WARNING: machine busy before round $r ($tool): $pre cores in use by other processes; timings are disturbed"
    fi
    { echo "busy_cores_before $pre"; echo "stat0 $(head -n 1 /proc/stat)"; } >"$RESULTS/round-$r-$tool.cpu"
    local rc=0
    /usr/bin/time -v -o "$RESULTS/round-$r-$tool.time" "$@" >"$RESULTS/round-$r-$tool.log" 2>&1 || rc=$?
    echo "stat1 $(head -n 1 /proc/stat)" >>"$RESULTS/round-$r-$tool.cpu"
    return $rc
}

run_datatrove() { # round
    timed "$1" datatrove "$VENV/bin/python" bench/corpus/datatrove_pipeline.py "$INPUT" \
        --out "$BENCH/datatrove-out" --json "$RESULTS/round-$1-datatrove.json"
}

run_duet() { # round
    timed "$1" duet "$DUET_BIN" corpus build "$INPUT" --out "$BENCH/duet-out" --force --config bench/corpus/duet.toml
}

for ((r = 1; r <= ROUNDS; r++)); do
    if [[ $RUN_DT == 1 ]]; then
        log "round $r/$ROUNDS: datatrove"
        run_datatrove "$r" || { tail -n 30 "$RESULTS/round-$r-datatrove.log" >&2; exit 1; }
        tail -n 1 "$RESULTS/round-$r-datatrove.log" >&2
    fi
    if [[ $RUN_DUET == 1 ]]; then
        log "round $r/$ROUNDS: duet"
        run_duet "$r" || { tail -n 30 "$RESULTS/round-$r-duet.log" >&2; exit 1; }
    fi
done

# report ----------------------------------------------------------------------
"$PYTHON" - "$RESULTS" "$BENCH" "$ROUNDS" "$(getconf CLK_TCK)" <<'EOF'
import glob, gzip, json, os, statistics, sys

results, bench, rounds, hz = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ncpu = os.cpu_count() or 1
stats = json.load(open(os.path.join(bench, "corpus-input.stats.json")))
docs_in, mb_in = stats["docs"], stats["file_bytes"] / 1e6

def parse_time(path):
    t = {}
    for line in open(path):
        k, _, v = line.strip().rpartition(": ")
        if k.startswith("Elapsed (wall clock) time"):
            parts = [float(x) for x in v.split(":")]
            t["wall_s"] = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
        elif k == "User time (seconds)":
            t["user_s"] = float(v)
        elif k == "System time (seconds)":
            t["sys_s"] = float(v)
        elif k == "Maximum resident set size (kbytes)":
            t["max_rss_mb"] = round(int(v) / 1024, 1)
    cpu = path[: -len(".time")] + ".cpu"
    if os.path.exists(cpu):
        rows = {}
        for line in open(cpu):
            key, _, rest = line.strip().partition(" ")
            rows[key] = rest
        t["busy_cores_before"] = float(rows.get("busy_cores_before", 0))
        if "stat0" in rows and "stat1" in rows:
            a = [int(x) for x in rows["stat0"].split()[1:]]
            b = [int(x) for x in rows["stat1"].split()[1:]]
            d = [y - x for x, y in zip(a, b)]
            t["machine_cpu_s"] = round((sum(d) - d[3] - d[4]) / hz, 2)  # all but idle and iowait
    return t

def count_docs(folder):
    if not os.path.isdir(folder):
        return None
    manifest = os.path.join(folder, "manifest.json")
    if os.path.isfile(manifest):  # duet: zstd shards; the manifest has the count
        with open(manifest) as f:
            return json.load(f)["docs_out"]
    n = 0
    for p in glob.glob(os.path.join(folder, "**", "*.jsonl*"), recursive=True):
        with (gzip.open if p.endswith(".gz") else open)(p, "rb") as f:
            n += sum(1 for _ in f)
    return n

report = {"input": stats["file"], "docs_in": docs_in, "input_mb": round(mb_in, 3), "rounds": rounds, "tools": {}}
disturbed = []
for tool, out in (("datatrove", "datatrove-out"), ("duet", "duet-out")):
    runs = []
    for p in sorted(glob.glob(os.path.join(results, f"round-*-{tool}.time"))):
        t = parse_time(p)
        if "wall_s" in t:
            t["round"] = int(os.path.basename(p).split("-")[1])
            runs.append(t)
            own = t.get("user_s", 0) + t.get("sys_s", 0)
            t["cpu_s"] = round(own, 2)
            if "machine_cpu_s" in t:
                t["others_cpu_s"] = round(max(0.0, t["machine_cpu_s"] - own), 2)
            if t.get("busy_cores_before", 0) > 0.15:
                disturbed.append(f"{tool} round {t['round']} ({t['busy_cores_before']} cores busy just before it)")
            elif t.get("others_cpu_s", 0) > 0.05 * t["wall_s"] * ncpu:
                disturbed.append(f"{tool} round {t['round']} (other processes used {t['others_cpu_s']:.0f} CPU-s during it)")
    if not runs:
        continue
    walls = [r["wall_s"] for r in runs]
    med = statistics.median(walls)
    entry = {
        "runs": runs, "median_wall_s": med,
        "docs_per_s": round(docs_in / med, 1), "mb_per_s": round(mb_in / med, 3),
        "median_cpu_s": statistics.median(r["cpu_s"] for r in runs),
        "docs_out": count_docs(os.path.join(bench, out)),
    }
    js = sorted(glob.glob(os.path.join(results, f"round-*-{tool}.json")))
    if js:
        j = json.load(open(js[-1]))
        entry["docs_after_filters"] = j.get("docs_after_filters")
        entry["version"] = j.get("version")
    report["tools"][tool] = entry

print()
print(f"input: {stats['file']}  {docs_in} docs  {mb_in:.1f} MB  ({rounds} rounds, A=datatrove B=duet alternately)")
print(f"{'tool':<10} {'median s':>9} {'docs/s':>9} {'MB/s':>7} {'CPU-s':>8} {'docs out':>9}   per round: wall s / own CPU-s / others' CPU-s / peak RSS MB")
for tool, e in report["tools"].items():
    per = "  ".join(f"{r['wall_s']:.1f}/{r['cpu_s']:.0f}/{r.get('others_cpu_s', float('nan')):.0f}/{r.get('max_rss_mb', 0):.0f}"
                    for r in e["runs"])
    print(f"{tool:<10} {e['median_wall_s']:>9.2f} {e['docs_per_s']:>9.0f} {e['mb_per_s']:>7.2f} {e['median_cpu_s']:>8.1f} "
          f"{str(e['docs_out']):>9}   {per}")
t = report["tools"]
if "datatrove" in t and "duet" in t:
    ratio = t["datatrove"]["median_wall_s"] / t["duet"]["median_wall_s"]
    report["speedup_duet_over_datatrove"] = round(ratio, 2)
    print(f"duet / datatrove throughput: {ratio:.1f}x  (target >= 10x: {'PASS' if ratio >= 10 else 'FAIL'})")
    if t["duet"]["median_cpu_s"] > 0:
        cpu_ratio = t["datatrove"]["median_cpu_s"] / t["duet"]["median_cpu_s"]
        report["cpu_ratio_datatrove_over_duet"] = round(cpu_ratio, 2)
        print(f"datatrove / duet CPU-seconds: {cpu_ratio:.1f}x")
else:
    print("duet / datatrove throughput: n/a (only one side ran)")
if disturbed:
    report["disturbed"] = disturbed
    print("WARNING: other processes were using the CPU: " + "; ".join(disturbed))
json.dump(report, open(os.path.join(results, "corpus-bench.json"), "w"), indent=2)
print(f"report: {os.path.join(results, 'corpus-bench.json')}")
EOF

#!/usr/bin/env bash
# WARC reading + main-text extraction: `duet corpus build` against datatrove's WarcReader +
# Trafilatura extractor, on the same two WARC files (every HTML page of Debian's
# debian-handbook package, recorded by warcio; bench/corpus-warc/make_warc.py), same machine,
# same run, rounds alternating which tool goes first. Both get the two CPUs (duet --threads 2,
# datatrove 2 tasks in 2 worker processes). duet runs its reader, HTML extraction, Unicode
# cleaning, length filter and the split and shard writing; its language, quality and repetition
# filters, de-duplication and PII redaction are turned off, since datatrove's side has none.
#
# Usage: bench/corpus-warc/run.sh [--rounds N]     (default 3)
# Needs: apt-get install debian-handbook; a venv data/bench/warc-venv from requirements.txt
# (made here when missing). Results: data/bench/corpus-warc/results.json and a Markdown row.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
ROUNDS=3
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rounds) ROUNDS="$2"; shift 2 ;;
        *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
B=data/bench/corpus-warc
VENV=data/bench/warc-venv
REQ=bench/corpus-warc/requirements.txt
mkdir -p "$B"
[[ -d /usr/share/doc/debian-handbook/html ]] || { echo "run.sh: apt-get install debian-handbook" >&2; exit 1; }
want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [[ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$want" ]]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQ"
    echo "$want" > "$VENV/.requirements.sha256"
fi
[[ -s $B/in/handbook-1.warc.gz ]] || "$VENV/bin/python" bench/corpus-warc/make_warc.py "$B/in" >&2
cargo build --release -p duet-cli >&2

duet() {
    target/release/duet corpus build "$B/in" --out "$B/duet-out" --force --threads 2 \
        --set filters.language.enabled=false --set filters.quality.enabled=false \
        --set filters.repetition.enabled=false --set dedup.exact=false --set dedup.near=false \
        --set pii.enabled=false > "$B/duet.log" 2>&1
}
peer() {
    rm -rf "$B/dt-out"
    "$VENV/bin/python" bench/corpus-warc/datatrove_warc.py "$B/in" "$B/dt-out" --workers 2 > "$B/dt.log" 2>&1
}
timed() { # name, function -> appends "name seconds" to the times file
    local t0 t1
    t0=$(date +%s.%N); "$2"; t1=$(date +%s.%N)
    echo "$1 $(echo "$t1 - $t0" | bc)" >> "$B/times.txt"
}
: > "$B/times.txt"
for r in $(seq 1 "$ROUNDS"); do
    if (( r % 2 == 1 )); then timed duet duet; timed datatrove peer; else timed datatrove peer; timed duet duet; fi
    echo "== round $r: $(tail -n 2 "$B/times.txt" | tr '\n' ' ')" >&2
done
python3 - "$B" <<'PY'
import glob, json, os, statistics, sys
b = sys.argv[1]
t = {"duet": [], "datatrove": []}
for line in open(os.path.join(b, "times.txt")):
    k, v = line.split()
    t[k].append(float(v))
rep = json.load(open(os.path.join(b, "duet-out", "report.json")))
duet_docs = rep.get("docs_out") or rep.get("documents_out") or rep.get("kept")
dt_docs = sum(1 for f in glob.glob(os.path.join(b, "dt-out", "*.jsonl")) for _ in open(f))
pages = sum(1 for _ in glob.iglob("/usr/share/doc/debian-handbook/html/**/*.html", recursive=True))
mb = sum(os.path.getsize(f) for f in glob.glob(os.path.join(b, "in", "*.warc.gz"))) / 1e6
d, p = statistics.median(t["duet"]), statistics.median(t["datatrove"])
out = {"cpu": open("/proc/cpuinfo").read().split("model name")[1].split(":")[1].split("\n")[0].strip(),
       "pages": pages, "warc_MB": round(mb, 1), "rounds": t, "duet_s": d, "datatrove_s": p,
       "duet_pages_per_s": pages / d, "datatrove_pages_per_s": pages / p, "ratio": p / d,
       "duet_docs_out": duet_docs, "datatrove_docs_out": dt_docs}
json.dump(out, open(os.path.join(b, "results.json"), "w"), indent=1)
print(f"CPU {out['cpu']}; {pages} pages, {mb:.1f} MB of gzipped WARC")
print("| | seconds (median) | pages/s | rounds | documents out |")
print("| --- | ---: | ---: | --- | ---: |")
print(f"| datatrove WarcReader + Trafilatura | {p:.2f} | {pages/p:.0f} | {', '.join(f'{x:.2f}' for x in t['datatrove'])} | {dt_docs} |")
print(f"| duet corpus build | {d:.2f} | {pages/d:.0f} | {', '.join(f'{x:.2f}' for x in t['duet'])} | {duet_docs} |")
print(f"| **duet / datatrove** | **{p/d:.2f}×** | | | |")
PY

#!/usr/bin/env bash
# Dialog Manager under load: trains examples/customer-service, serves it with `duet dialog serve`
# (SQLite tracker store), and runs bench/dialog/load.py (100 simultaneous conversations over the
# REST channel) with the venv data/pyenv (aiohttp). Results in data/bench/dialog/.
#
#   DUET_BIN=target/release/duet bench/dialog/run.sh [CONVERSATIONS]
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="${DUET_BIN:-target/release/duet}"
N="${1:-100}"
OUT=data/bench/dialog
rm -rf "$OUT" && mkdir -p "$OUT/shop"
cp -r examples/customer-service/{domain.yml,config.yml,endpoints.yml,commands.yml,data,tests,services} "$OUT/shop/"
"$BIN" dialog train --project "$OUT/shop"
"$BIN" dialog serve --project "$OUT/shop" --port 0 > "$OUT/server.out" 2> "$OUT/server.err" &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q http "$OUT/server.out" 2>/dev/null && break; sleep 0.1; done
URL="$(grep -o 'http://[0-9.:]*' "$OUT/server.out" | head -1)"
data/pyenv/bin/python bench/dialog/load.py --url "$URL" --conversations "$N" --out "$OUT/result.json"
echo "server RSS: $(ps -o rss= -p $PID) KiB" | tee "$OUT/rss.txt"

#!/usr/bin/env bash
# Serving under load, side by side in one run: `duet serve` against llama.cpp's server from
# llama-cpp-python[server], same GPT-2-small-shaped weights (HF safetensors for duet, the same
# tensors as GGUF f32 for llama.cpp), 2 threads each, /v1/completions streaming.
# For each server in turn: start it, wait until /v1/models answers, run a single-stream window
# (1 client) and then a CLIENTS-client window (bench/serve/load.py), stop it. Then
# bench/serve/report.py writes data/bench/serve/results.json and results.md.
#
# Usage: bench/serve/run.sh                      (the issue's load: 64 clients, 60 s, 128 tokens)
#   CLIENTS=4 DURATION=5 MAX_TOKENS=32 WAIT_QUIET=0 bench/serve/run.sh      (smoke test)
# Environment (defaults):
#   CLIENTS=64  DURATION=60  SINGLE_DURATION=$DURATION  MAX_TOKENS=128  TEMPERATURE=0
#   SERVERS="duet llama"   WAIT_QUIET=60 (up to this many seconds waiting for an idle machine
#   before each window; the report warns when it was still busy)
#   DUET_BIN=target/release/duet (copied to data/bench/duet-serve-bin, which is what runs)
#   PORT_DUET=8391  PORT_LLAMA=8392   THREADS=2   MAX_BATCH=64 (duet --max-batch)
# Needs: the model files (bench/model/run_peers.sh makes them) and data/pyenv with
# llama-cpp-python plus bench/serve/requirements.txt.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
CLIENTS="${CLIENTS:-64}"
DURATION="${DURATION:-60}"
SINGLE_DURATION="${SINGLE_DURATION:-$DURATION}"
MAX_TOKENS="${MAX_TOKENS:-128}"
TEMPERATURE="${TEMPERATURE:-0}"
SERVERS="${SERVERS:-duet llama}"
WAIT_QUIET="${WAIT_QUIET:-60}"
DUET_BIN="${DUET_BIN:-target/release/duet}"
PORT_DUET="${PORT_DUET:-8391}"
PORT_LLAMA="${PORT_LLAMA:-8392}"
THREADS="${THREADS:-2}"
MAX_BATCH="${MAX_BATCH:-64}"
PY=data/pyenv/bin/python
MODEL_DIR=data/bench/model/gpt2-small-random
GGUF=data/bench/model/gpt2-small-random-f32.gguf
OUT=data/bench/serve
BIN=data/bench/duet-serve-bin

[[ -f "$MODEL_DIR/model.safetensors" && -f "$GGUF" ]] || {
    echo "missing $MODEL_DIR or $GGUF: run bench/model/run_peers.sh first" >&2; exit 1; }
"$PY" -c "import llama_cpp.server.app, aiohttp" 2>/dev/null || {
    echo "data/pyenv lacks llama-cpp-python[server] or aiohttp:" \
         "data/pyenv/bin/pip install -r bench/serve/requirements.txt" >&2; exit 1; }
mkdir -p "$OUT"
rm -f "$OUT"/load-*.json
if [[ " $SERVERS " == *" duet "* ]]; then
    [[ -x "$DUET_BIN" ]] || { echo "no duet binary at $DUET_BIN (cargo build --release)" >&2; exit 1; }
    # a copy, so that a rebuild of target/ during the run changes nothing
    [[ "$DUET_BIN" -ef "$BIN" ]] || cp -f "$DUET_BIN" "$BIN"
fi
export OMP_NUM_THREADS="$THREADS" RAYON_NUM_THREADS="$THREADS" TOKENIZERS_PARALLELISM=false

SERVER_PID=""
stop_server() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=""
}
trap stop_server EXIT

wait_ready() {  # url log
    for _ in $(seq 1 600); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "the server exited while starting; its log ($2):" >&2; tail -20 "$2" >&2; exit 1
        fi
        if curl -fsS -o /dev/null --max-time 2 "$1/models" 2>/dev/null; then return 0; fi
        sleep 0.5
    done
    echo "the server did not answer $1/models within 300 s; log $2" >&2; exit 1
}

load() {  # label kind url model clients duration
    "$PY" bench/serve/load.py --label "$1" --kind "$2" --url "$3" --model "$4" \
        --clients "$5" --duration "$6" --max-tokens "$MAX_TOKENS" --temperature "$TEMPERATURE" \
        --server-pid "$SERVER_PID" --wait-quiet "$WAIT_QUIET" --out "$OUT/load-$1-c$5.json"
}

for s in $SERVERS; do
    case "$s" in
    duet)
        url="http://127.0.0.1:$PORT_DUET/v1"
        echo "== duet serve (max batch $MAX_BATCH, RAYON_NUM_THREADS=$THREADS)" >&2
        # the tokio runtime of `duet serve` has 2 worker threads (fixed); the model runs on
        # rayon's pool (RAYON_NUM_THREADS) from the engine's own thread.
        "$BIN" serve --model "gpt2=$MODEL_DIR" --port "$PORT_DUET" \
            --max-batch "$MAX_BATCH" --queue 1024 >"$OUT/duet-server.log" 2>&1 &
        SERVER_PID=$!
        wait_ready "$url" "$OUT/duet-server.log"
        load duet duet "$url" gpt2 1 "$SINGLE_DURATION"
        load duet duet "$url" gpt2 "$CLIENTS" "$DURATION"
        stop_server
        ;;
    llama)
        url="http://127.0.0.1:$PORT_LLAMA/v1"
        echo "== llama-cpp-python server (n_threads $THREADS, one request at a time)" >&2
        # interrupt_requests False: by default a new request makes the server end the stream in
        # progress after its next token (it would cut every stream short under load).
        # logits_all False: the server's default True computes the 50,257-wide logits of
        # every prompt token, which completions without logprobs do not need.
        "$PY" -m llama_cpp.server --model "$GGUF" --model_alias gpt2 --host 127.0.0.1 \
            --port "$PORT_LLAMA" --n_ctx 1024 --n_batch 512 --n_ubatch 512 \
            --n_threads "$THREADS" --n_threads_batch "$THREADS" --logits_all False \
            --interrupt_requests False --verbose False >"$OUT/llama-server.log" 2>&1 &
        SERVER_PID=$!
        wait_ready "$url" "$OUT/llama-server.log"
        load llama llama "$url" gpt2 1 "$SINGLE_DURATION"
        load llama llama "$url" gpt2 "$CLIENTS" "$DURATION"
        stop_server
        ;;
    *) echo "unknown server $s" >&2; exit 1 ;;
    esac
done
"$PY" bench/serve/report.py "$OUT" "$CLIENTS"

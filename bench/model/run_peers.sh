#!/usr/bin/env bash
# Model benchmarks, peer side: MiniLM sentence embeddings (sentence-transformers, onnxruntime)
# and GPT-2-small greedy decode (PyTorch generate, llama.cpp via llama-cpp-python), f32,
# 2 threads, on the inputs the duet side uses. See bench/model/README.md.
#
# Usage: bench/model/run_peers.sh [--embed-only | --decode-only] [--runs-embed N] [--runs-decode N]
#                                 [--wait-quiet SECONDS]
#
# Steps (each skipped when already done):
#   1. scripts/fetch-data.sh minilm sms-spam fortunes dict-gcide
#   2. the venv data/pyenv (made from bench/model/requirements-fixtures.txt if missing) gets
#      bench/model/requirements.txt; llama-cpp-python 0.3.36 built from its sdist (GGML_NATIVE)
#   3. data/bench/model/sms256.txt                  (make_sms256.py)
#      data/bench/model/gpt2-small-random/          (make_gpt2_small.py: weights + tokenizer)
#      data/bench/model/gpt2-small-random-f32.gguf  (convert_gguf.py: llama.cpp's converter)
#   4. embed_peers.py  -> data/bench/model/embed-peers.json
#      decode_peers.py -> data/bench/model/decode-peers.json
# Each timing waits (up to --wait-quiet s, default 600) for an idle machine and records how
# busy it was. Logs: data/bench/model/*.log.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

RUN_EMBED=1
RUN_DECODE=1
RUNS_EMBED=5
RUNS_DECODE=3
WAIT_QUIET=600
while [[ $# -gt 0 ]]; do
    case "$1" in
        --embed-only) RUN_DECODE=0; shift ;;
        --decode-only) RUN_EMBED=0; shift ;;
        --runs-embed) RUNS_EMBED="$2"; shift 2 ;;
        --runs-decode) RUNS_DECODE="$2"; shift 2 ;;
        --wait-quiet) WAIT_QUIET="$2"; shift 2 ;;
        -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "run_peers.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

OUT=data/bench/model
VENV=data/pyenv
PY="$VENV/bin/python"
LLAMA_VERSION=0.3.36
LLAMA_SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
SDIST="$OUT/sdist/llama_cpp_python-$LLAMA_VERSION.tar.gz"
mkdir -p "$OUT"

log() { printf '== %s\n' "$*" >&2; }

# 1. data ----------------------------------------------------------------------------
scripts/fetch-data.sh minilm sms-spam fortunes dict-gcide >&2

# 2. venv ----------------------------------------------------------------------------
if [[ ! -x "$PY" ]]; then
    log "creating $VENV from bench/model/requirements-fixtures.txt (torch: ~3 GB)"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r bench/model/requirements-fixtures.txt
fi
want="$(cat bench/model/requirements.txt bench/model/requirements-fixtures.txt | sha256sum | cut -d' ' -f1)"
if [[ "$(cat "$VENV/.bench-model-requirements.sha256" 2>/dev/null)" != "$want" ]]; then
    log "installing bench/model/requirements.txt into $VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r bench/model/requirements.txt
    echo "$want" >"$VENV/.bench-model-requirements.sha256"
fi

if [[ ! -f "$SDIST" ]] || ! echo "$LLAMA_SHA256  $SDIST" | sha256sum -c --quiet - 2>/dev/null; then
    log "downloading the llama-cpp-python $LLAMA_VERSION sdist"
    rm -f "$SDIST"
    "$VENV/bin/pip" download --quiet --no-deps --no-binary llama-cpp-python -d "$OUT/sdist" "llama-cpp-python==$LLAMA_VERSION"
    echo "$LLAMA_SHA256  $SDIST" | sha256sum -c --quiet -
fi
if [[ ! -f "$OUT/sdist/llama_cpp_python-$LLAMA_VERSION/vendor/llama.cpp/convert_hf_to_gguf.py" ]]; then
    tar -xzf "$SDIST" -C "$OUT/sdist"
fi
if ! "$PY" -c "import llama_cpp, sys; sys.exit(llama_cpp.__version__ != '$LLAMA_VERSION')" 2>/dev/null; then
    log "building llama-cpp-python $LLAMA_VERSION from source (GGML_NATIVE=ON; many minutes on 2 cores; log $OUT/llama-build.log)"
    CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAVA_BUILD=OFF -DCMAKE_BUILD_TYPE=Release" CMAKE_BUILD_PARALLEL_LEVEL=2 \
        PATH="$ROOT/$VENV/bin:$PATH" \
        "$VENV/bin/pip" install -v --no-deps --disable-pip-version-check "$SDIST" >"$OUT/llama-build.log" 2>&1 \
        || { tail -n 40 "$OUT/llama-build.log" >&2; exit 1; }
fi

# 3. inputs --------------------------------------------------------------------------
if [[ $RUN_EMBED == 1 && ( ! -s "$OUT/sms256.txt" || bench/model/make_sms256.py -nt "$OUT/sms256.txt" ) ]]; then
    "$PY" bench/model/make_sms256.py
fi
if [[ $RUN_DECODE == 1 ]]; then
    "$PY" bench/model/make_gpt2_small.py 2>&1 | tail -n 3 >&2  # keeps what exists
    GGUF="$OUT/gpt2-small-random-f32.gguf"
    if [[ ! -s "$GGUF" || "$OUT/gpt2-small-random/model.safetensors" -nt "$GGUF" ]]; then
        log "converting to GGUF f32 (llama.cpp's convert_hf_to_gguf.py)"
        "$PY" bench/model/convert_gguf.py >"$OUT/convert-gguf.log" 2>&1 || { tail -n 30 "$OUT/convert-gguf.log" >&2; exit 1; }
    fi
fi

# 4. peers ---------------------------------------------------------------------------
if [[ $RUN_EMBED == 1 ]]; then
    log "embedding peers ($RUNS_EMBED timed passes each; log $OUT/embed-peers.log)"
    "$PY" bench/model/embed_peers.py --runs "$RUNS_EMBED" --wait-quiet "$WAIT_QUIET" 2>"$OUT/embed-peers.log" \
        || { tail -n 30 "$OUT/embed-peers.log" >&2; exit 1; }
fi
if [[ $RUN_DECODE == 1 ]]; then
    log "decode peers ($RUNS_DECODE timed runs each; log $OUT/decode-peers.log)"
    "$PY" bench/model/decode_peers.py --runs "$RUNS_DECODE" --wait-quiet "$WAIT_QUIET" 2>"$OUT/decode-peers.log" \
        || { tail -n 30 "$OUT/decode-peers.log" >&2; exit 1; }
fi
grep -h "WARNING" "$OUT"/embed-peers.log "$OUT"/decode-peers.log 2>/dev/null >&2 || true
log "results: $OUT/embed-peers.json $OUT/decode-peers.json"

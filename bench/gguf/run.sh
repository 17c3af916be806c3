#!/usr/bin/env bash
# GGUF inference, duet against llama.cpp side by side in one run: llama-bench's two measures
# (pp512: a 512-token prompt in one batch; tg128: 128 tokens one at a time from an empty
# context) on every file, each file run by both tools in every round, rounds alternating which
# tool goes first. Both sides get the same two CPUs (taskset) and two threads.
#
# Files: SmolLM2-135M-Instruct Q4_1 as shipped; the same model re-quantized to Q8_0 and Q4_K_M
# by duet and by llama.cpp (both tools' files run by both tools); a random Qwen2-0.5B-shaped
# model at Q4_K_M, quantized by llama.cpp and by duet from the same f16 GGUF.
#
# Usage: bench/gguf/run.sh [--rounds N] [--reps N] [--quick]   (defaults 2 and 5; --quick: SmolLM2 Q4_1 only)
# Needs bench/gguf/setup.sh (venv + llama-cpp-python) and, for the Qwen2 rows,
# data/pyenv/bin/python bench/gguf/make_qwen2_05b.py. Results: data/bench/gguf/run/ and the
# table printed at the end (bench/gguf/report.py).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
ROUNDS=2
REPS=5
QUICK=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rounds) ROUNDS="$2"; shift 2 ;;
        --reps) REPS="$2"; shift 2 ;;
        --quick) QUICK=1; shift ;;
        *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
PY=data/pyenv/bin/python
OUT=data/bench/gguf/run
G=data/bench/gguf
S=data/external/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
mkdir -p "$OUT"
log() { printf '== %s\n' "$*" >&2; }

scripts/fetch-data.sh smollm2 >&2
cargo build --release -p duet-cli -p duet-model --example bench_gguf --example mem_bandwidth >&2
DUET=target/release/duet

# 1. the files (each made once)
FILES=("$S")
if [[ $QUICK == 0 ]]; then
    for t in q8_0 q4_k_m; do
        [[ -s $G/smollm2-duet-$t.gguf ]] || $DUET quantize --model "$S" --type $t --out $G/smollm2-duet-$t.gguf >&2
        [[ -s $G/smollm2-135m-llamacpp-$t.gguf ]] || $PY bench/gguf/quantize_peer.py "$S" $G/smollm2-135m-llamacpp-$t.gguf $t --allow-requantize >&2
        FILES+=("$G/smollm2-duet-$t.gguf" "$G/smollm2-135m-llamacpp-$t.gguf")
    done
    if [[ -s $G/qwen2-0.5b-random-f16.gguf ]]; then
        [[ -s $G/qwen2-0.5b-duet-q4_k_m.gguf ]] || $DUET quantize --model $G/qwen2-0.5b-random-f16.gguf --type q4_k_m --out $G/qwen2-0.5b-duet-q4_k_m.gguf >&2
        FILES+=("$G/qwen2-0.5b-random-q4_k_m.gguf" "$G/qwen2-0.5b-duet-q4_k_m.gguf")
    else
        log "no Qwen2 rows: run $PY bench/gguf/make_qwen2_05b.py first"
    fi
fi

# 2. the machine
{
    grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'
    grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|avx512f|avx512_vnni|avx512_bf16|avx512_fp16|amx_bf16|amx_int8|amx_tile|avx_vnni)$' | tr '\n' ' '
    echo
} > "$OUT/cpu.txt"
taskset -c 0,1 target/release/examples/mem_bandwidth 512 > "$OUT/bandwidth.json"

# 3. rounds: every file by both tools, the first tool alternating
for r in $(seq 1 "$ROUNDS"); do
    for f in "${FILES[@]}"; do
        name="$(basename "$f" .gguf)"
        duet() {
            log "round $r: duet $name"
            DUET_THREADS=2 taskset -c 0,1 target/release/examples/bench_gguf "$f" 512 128 "$REPS" > "$OUT/$name.duet.$r.json"
        }
        peer() {
            log "round $r: llama.cpp $name"
            taskset -c 0,1 $PY bench/gguf/peer_llama.py "$f" --threads 2 --reps "$REPS" --wait-quiet 120 \
                > "$OUT/$name.llamacpp.$r.json" 2>> "$OUT/peer.log"
        }
        if (( r % 2 == 1 )); then duet; peer; else peer; duet; fi
    done
done
$PY bench/gguf/report.py "$OUT" "${FILES[@]}"

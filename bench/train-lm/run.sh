#!/usr/bin/env bash
# Training benchmark: duet against its own PyTorch GPT-2 (train_torch.py), same network, data,
# batch, optimizer and schedule, f32, 2 threads, side by side in one run. See README.md.
#
# Usage (from anywhere; paths are relative to the repository root):
#   bench/train-lm/run.sh [speed]   tokens/s for configs S and M: per round duet, PyTorch eager,
#                                   torch.compile, each under /usr/bin/time -v; MFU against the
#                                   measured matmul peak; table + data/bench/train-lm/results.json
#   bench/train-lm/run.sh learn     config S, 2000 steps, eval every 100, duet and PyTorch eager;
#                                   val losses side by side + data/bench/train-lm/learn-s.png
# Options:
#   --rounds R        rounds per config in speed mode (default 3)
#   --steps-s N       steps of config S (default 300)      --steps-m N   of config M (default 60)
#   --configs "s m"   which configs (speed mode)           --no-compile  skip torch.compile
#   --learn-steps N   (default 2000)  --learn-eval N (default 100)  --learn-config s
#   --torch-only      skip duet (e.g. before target/release/duet exists)
#   --wait-quiet S    before each timing wait up to S s for an idle machine (default 300)
# Environment:
#   TOKENS     duet token directory (default data/bench/train-lm/tokens-en, made with duet: README.md)
#   DUET_BIN   default target/release/duet          PY  default data/pyenv/bin/python
#   EXTRA_SET  space-separated key=value overrides given to both sides (duet --set, train_torch.py
#              --set), e.g. EXTRA_SET="model.dropout=0.0"
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

MODE=speed
if [[ $# -gt 0 && "$1" != --* ]]; then MODE="$1"; shift; fi
ROUNDS=3
STEPS_S=300
STEPS_M=60
CONFIGS="s m"
COMPILE=1
DUET=1
LEARN_STEPS=2000
LEARN_EVAL=100
LEARN_CONFIG=s
WAIT_QUIET=300
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rounds) ROUNDS="$2"; shift 2 ;;
        --steps-s) STEPS_S="$2"; shift 2 ;;
        --steps-m) STEPS_M="$2"; shift 2 ;;
        --configs) CONFIGS="$2"; shift 2 ;;
        --no-compile) COMPILE=0; shift ;;
        --torch-only) DUET=0; shift ;;
        --learn-steps) LEARN_STEPS="$2"; shift 2 ;;
        --learn-eval) LEARN_EVAL="$2"; shift 2 ;;
        --learn-config) LEARN_CONFIG="$2"; shift 2 ;;
        --wait-quiet) WAIT_QUIET="$2"; shift 2 ;;
        -h|--help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

TOKENS="${TOKENS:-data/bench/train-lm/tokens-en}"
DUET_BIN="${DUET_BIN:-target/release/duet}"
PY="${PY:-data/pyenv/bin/python}"
EXTRA_SET="${EXTRA_SET:-}"
OUT=data/bench/train-lm
HERE=bench/train-lm
PEAK="$OUT/matmul-peak.json"
mkdir -p "$OUT/logs"

log() { printf '== %s\n' "$*" >&2; }

[[ -x "$PY" ]] || { echo "run.sh: no $PY (make the venv: bench/model/requirements-fixtures.txt)" >&2; exit 1; }
[[ -f "$TOKENS/manifest.json" ]] || {
    echo "run.sh: no token directory $TOKENS (manifest.json); make it with duet, see bench/train-lm/README.md," >&2
    echo "        or set TOKENS=DIR (bench/train-lm/make_test_tokens.py writes a stand-in for testing)" >&2
    exit 1
}
if [[ $DUET == 1 && ! -x "$DUET_BIN" ]]; then
    echo "run.sh: no $DUET_BIN (cargo build --release -p duet-cli, or --torch-only)" >&2
    exit 1
fi

SETS_DUET=()
SETS_TORCH=()
for kv in $EXTRA_SET; do
    SETS_DUET+=(--set "$kv")
    SETS_TORCH+=(--set "$kv")
done

export RAYON_NUM_THREADS=2 OMP_NUM_THREADS=2 MKL_NUM_THREADS=2

# timed LABEL -- CMD...: runs CMD under /usr/bin/time -v (after waiting for a quiet machine)
timed() {
    local label="$1"; shift; shift
    log "$label"
    "$PY" "$HERE/collect.py" run --json "$OUT/logs/$label.time.json" --log "$OUT/logs/$label.log" \
        --wait-quiet "$WAIT_QUIET" -- "$@" >&2 || {
        echo "run.sh: $label failed; log: $OUT/logs/$label.log" >&2
        tail -20 "$OUT/logs/$label.log" >&2
        return 1
    }
}

duet_run() {  # duet_run CONFIG STEPS EVAL_EVERY RUN_DIR LABEL
    local c="$1" n="$2" ev="$3" dir="$4" label="$5"
    rm -rf "$dir"
    timed "$label" -- "$DUET_BIN" train lm --config "examples/configs/bench-$c.toml" --tokens "$TOKENS" \
        --out "$dir" --max-steps "$n" --set "train.eval_every=$ev" --set train.checkpoint_every=0 \
        ${SETS_DUET[@]+"${SETS_DUET[@]}"}
    "$PY" "$HERE/collect.py" summary "$dir" --config "examples/configs/bench-$c.toml" --tokens "$TOKENS" \
        --peak "$PEAK" ${SETS_TORCH[@]+"${SETS_TORCH[@]}"} >&2
}

torch_run() {  # torch_run CONFIG STEPS EVAL_EVERY RUN_DIR LABEL [--compile]
    local c="$1" n="$2" ev="$3" dir="$4" label="$5"; shift 5
    rm -rf "$dir"
    timed "$label" -- "$PY" "$HERE/train_torch.py" --config "examples/configs/bench-$c.toml" --tokens "$TOKENS" \
        --out "$dir" --max-steps "$n" --eval-every "$ev" --peak "$PEAK" --quiet \
        ${SETS_TORCH[@]+"${SETS_TORCH[@]}"} "$@"
}

if [[ "$MODE" == speed ]]; then
    timed matmul-peak -- "$PY" "$HERE/matmul_peak.py" --out "$PEAK"
    INDEX="$OUT/speed-index.jsonl"
    : >"$INDEX"
    add() { printf '{"config": "%s", "impl": "%s", "round": %s, "summary": "%s", "timing": "%s"}\n' "$@" >>"$INDEX"; }
    for c in $CONFIGS; do
        case "$c" in s) n=$STEPS_S ;; m) n=$STEPS_M ;; *) n=$STEPS_S ;; esac
        for r in $(seq 1 "$ROUNDS"); do
            if [[ $DUET == 1 ]]; then
                d="$OUT/duet-$c-round$r"
                duet_run "$c" "$n" "$n" "$d" "duet-$c-round$r" || true
                add "$c" duet "$r" "$d/summary.json" "$OUT/logs/duet-$c-round$r.time.json"
            fi
            d="$OUT/torch-eager-$c-round$r"
            torch_run "$c" "$n" "$n" "$d" "torch-eager-$c-round$r" || true
            add "$c" torch-eager "$r" "$d/summary.json" "$OUT/logs/torch-eager-$c-round$r.time.json"
            if [[ $COMPILE == 1 ]]; then
                d="$OUT/torch-compile-$c-round$r"
                torch_run "$c" "$n" "$n" "$d" "torch-compile-$c-round$r" --compile || true
                add "$c" torch-compile "$r" "$d/summary.json" "$OUT/logs/torch-compile-$c-round$r.time.json"
            fi
        done
    done
    "$PY" "$HERE/collect.py" table "$INDEX" --out "$OUT/results.json" --markdown "$OUT/results.md" --peak "$PEAK"
    log "results: $OUT/results.json, $OUT/results.md; logs: $OUT/logs/"
elif [[ "$MODE" == learn ]]; then
    "$PY" -c "import matplotlib" 2>/dev/null || "$PY" -m pip install --quiet --disable-pip-version-check -r "$HERE/requirements.txt" >&2 || true
    c="$LEARN_CONFIG"
    D="$OUT/learn-duet-$c"
    T="$OUT/learn-torch-$c"
    if [[ $DUET == 1 ]]; then
        duet_run "$c" "$LEARN_STEPS" "$LEARN_EVAL" "$D" "learn-duet-$c"
    fi
    torch_run "$c" "$LEARN_STEPS" "$LEARN_EVAL" "$T" "learn-torch-$c"
    if [[ $DUET == 1 ]]; then
        "$PY" "$HERE/collect.py" learn --duet "$D" --torch "$T" --out-json "$OUT/learn-$c.json" --png "$OUT/learn-$c.png" \
            --title "config $(echo "$c" | tr a-z A-Z), $LEARN_STEPS steps on $(basename "$TOKENS"): duet vs PyTorch"
    else
        "$PY" "$HERE/collect.py" learn --duet "$T" --torch "$T" --out-json "$OUT/learn-$c.json" --png "$OUT/learn-$c.png" \
            --title "config $(echo "$c" | tr a-z A-Z): PyTorch only (--torch-only)"
    fi
    log "learn: $OUT/learn-$c.json, $OUT/learn-$c.png"
else
    echo "run.sh: unknown mode $MODE (speed or learn)" >&2
    exit 2
fi

#!/usr/bin/env bash
# Classifier benchmark: duet's text classifiers against scikit-learn and Hugging Face
# transformers, same examples, same recipe, 2 threads, side by side in one run. See README.md.
#
# Usage (from anywhere; paths are relative to the repository root):
#   bench/classify/run.sh tfidf [sms] [bbc]      TF-IDF + logistic regression, duet and scikit-learn
#                                                (default: both data sets; about a minute)
#   bench/classify/run.sh finetune sms|sms-plain|bbc   MiniLM fine-tuning, duet and transformers, with
#                                                class weights auto, then none (SMS: ~20 min a run)
#   bench/classify/run.sh agree RUN [sms|bbc]    RUN/best in transformers against `duet classify`
#   bench/classify/run.sh speed [--rounds R] [--epochs E] [--wait-quiet S]
#                                                training examples/s only: short SMS fine-tuning runs
#                                                (default 2 rounds of 0.25 epoch = 55 steps), duet and
#                                                transformers alternately, each after waiting up to S s
#                                                (default 300) for a 1-minute load below 0.5
# Options of finetune:
#   --weights "auto none"   which class-weight settings, in order (default "auto none")
#   --side both|duet|hf     which side to train (default both; the table takes what exists)
#   --max-length N          window in tokens (default: 64 for sms, 128 for bbc)
#   --seeds "1337 2 3"      train each setting once per seed (default 1337, both sides' default);
#                           runs of other seeds are named <run>-seed<N>, and the table adds the means
#   --keep                  keep finished runs (RUN/best or result.json present) instead of redoing them
# Environment:
#   DUET_BIN  default target/release/duet (a copy avoids a rebuild swapping the binary mid-run)
#   PY        default data/pyenv/bin/python
#   DUET_RECIPE_SETS=0  do not pass the fine-tuning recipe to duet explicitly (see README.md:
#             duet's own defaults are lost once any train.* key is set, and --out sets one)
# Results: data/bench/classify/{tfidf,finetune-<set>,agree-<set>,speed}.{json,md}; runs/, logs/, tfidf/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
HERE=bench/classify
OUT=data/bench/classify
DUET_BIN="${DUET_BIN:-target/release/duet}"
PY="${PY:-data/pyenv/bin/python}"
MODE="${1:-}"
[[ -n "$MODE" ]] && shift || true
[[ "$MODE" == -h || "$MODE" == --help || -z "$MODE" ]] && { sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0; }

[[ -x "$PY" ]] || { echo "run.sh: no $PY (the fixture venv: bench/model/requirements-fixtures.txt)" >&2; exit 1; }
[[ -x "$DUET_BIN" ]] || { echo "run.sh: no $DUET_BIN (cargo build --release -p duet-cli, or DUET_BIN=...)" >&2; exit 1; }
export RAYON_NUM_THREADS=2 OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 TOKENIZERS_PARALLELISM=false
mkdir -p "$OUT/logs" "$OUT/runs"

log() { printf '== %s\n' "$*" >&2; }

# timed TIMEFILE LOGFILE -- CMD...: CMD under /usr/bin/time -v, output to LOGFILE; tail on failure
timed() {
    local tf="$1" lf="$2"; shift 3
    log "$* (load $(cut -d' ' -f1-3 /proc/loadavg))"
    if ! /usr/bin/time -v -o "$tf" "$@" >"$lf" 2>&1; then
        echo "run.sh: failed; log $lf" >&2
        tail -20 "$lf" >&2
        return 1
    fi
}

data_of() { case "$1" in sms|sms-plain) echo data/external/sms-spam/spam_collection.csv ;; bbc) echo data/external/bbc-news ;;
    *) echo "run.sh: unknown data set $1 (sms, sms-plain or bbc)" >&2; exit 2 ;; esac; }
split_of() { case "$1" in sms) echo testdata/splits/sms-spam.json ;; sms-plain) echo testdata/splits/sms-spam-plain.json ;;
    bbc) echo testdata/splits/bbc-news.json ;; esac; }

case "$MODE" in
tfidf)
    SETS=("$@")
    [[ ${#SETS[@]} -gt 0 ]] || SETS=(sms bbc)
    for ds in "${SETS[@]}"; do
        d="$OUT/tfidf/$ds"
        rm -rf "$d"
        mkdir -p "$d"
        # The whole train side, as scikit-learn gets it: no validation holdout.
        timed "$d/duet-train.time" "$d/duet-train.log" -- "$DUET_BIN" train classify --model tfidf \
            --train "$(data_of "$ds")" --exclude "$(split_of "$ds")" --out "$d/duet" --set data.valid_share=0
        "$DUET_BIN" eval classify --model "$d/duet/best" --data "$(data_of "$ds")" --ids "$(split_of "$ds")" \
            --out "$d/duet-eval" >"$d/duet-eval.log" 2>&1
        timed "$d/sklearn-c10.time" "$d/sklearn-c10.log" -- "$PY" "$HERE/tfidf_peer.py" --dataset "$ds" \
            --out "$d/sklearn-c10.json" --duet-model "$d/duet/best" --duet "$DUET_BIN"
        if [[ "$ds" == sms ]]; then  # two classes: also scikit-learn with duet's objective (C × 2)
            timed "$d/sklearn-matched.time" "$d/sklearn-matched.log" -- "$PY" "$HERE/tfidf_peer.py" \
                --dataset "$ds" --match-duet-objective --out "$d/sklearn-matched.json" \
                --duet-model "$d/duet/best" --duet "$DUET_BIN"
        fi
    done
    "$PY" "$HERE/report.py" tfidf "$OUT" "${SETS[@]}"
    ;;
finetune)
    ds="${1:?run.sh finetune sms|bbc}"; shift
    WEIGHTS="auto none"; SIDE=both; KEEP=0; MAXLEN=""; SEEDS=1337
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --weights) WEIGHTS="$2"; shift 2 ;;
            --side) SIDE="$2"; shift 2 ;;
            --max-length) MAXLEN="$2"; shift 2 ;;
            --seeds) SEEDS="$2"; shift 2 ;;
            --keep) KEEP=1; shift ;;
            *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
        esac
    done
    [[ -n "$MAXLEN" ]] || { [[ "$ds" == sms* ]] && MAXLEN=64 || MAXLEN=128; }
    SPLIT="$OUT/split-$ds"
    "$PY" "$HERE/make_split.py" "$ds" "$SPLIT"
    RECIPE=()
    if [[ "${DUET_RECIPE_SETS:-1}" != 0 ]]; then
        # duet's fine-tuning defaults (ClsConfig::default) written out: see README.md, "Problems".
        for kv in train.batch_size=16 train.lr=5e-5 train.min_lr=0.0 train.warmup_steps=0 train.schedule=linear \
            train.weight_decay=0.01 train.beta2=0.999 train.eval_every=0 train.eval_batches=0 \
            train.checkpoint_every=0 train.keep_checkpoints=1 train.early_stop_metric=val_macro_f1; do
            RECIPE+=(--set "$kv")
        done
    fi
    for w in $WEIGHTS; do for seed in $SEEDS; do
        sfx=""; [[ "$seed" == 1337 ]] || sfx="-seed$seed"
        run="$OUT/runs/duet-$ds-$w$sfx"
        if [[ "$SIDE" != hf ]] && ! [[ $KEEP == 1 && -f "$run/best/duet.json" ]]; then
            rm -rf "$run" "$run-eval"
            timed "$OUT/logs/duet-$ds-$w$sfx.time" "$OUT/logs/duet-$ds-$w$sfx.log" -- "$DUET_BIN" train classify \
                --model data/external/minilm --train "$(data_of "$ds")" --exclude "$SPLIT/exclude.json" \
                --valid "$SPLIT/valid.jsonl" --out "$run" "${RECIPE[@]}" \
                --set "loss.class_weights=$w" --set "model.max_length=$MAXLEN" --set "train.seed=$seed"
        fi
        if [[ -f "$run/best/duet.json" && ! -f "$run-eval/metrics.json" ]]; then
            "$DUET_BIN" eval classify --model "$run/best" --data "$(data_of "$ds")" --ids "$(split_of "$ds")" \
                --out "$run-eval" >"$OUT/logs/duet-$ds-$w$sfx-eval.log" 2>&1
        fi
        if [[ -f "$run/final/duet.json" && ! -f "$run-final-eval/metrics.json" ]]; then
            "$DUET_BIN" eval classify --model "$run/final" --data "$(data_of "$ds")" --ids "$(split_of "$ds")" \
                --out "$run-final-eval" >"$OUT/logs/duet-$ds-$w$sfx-final-eval.log" 2>&1
        fi
        run="$OUT/runs/hf-$ds-$w$sfx"
        if [[ "$SIDE" != duet ]] && ! [[ $KEEP == 1 && -f "$run/result.json" ]]; then
            rm -rf "$run"
            timed "$OUT/logs/hf-$ds-$w$sfx.time" "$OUT/logs/hf-$ds-$w$sfx.log" -- "$PY" "$HERE/finetune_peer.py" \
                --dataset "$ds" --split "$SPLIT" --out "$run" --class-weights "$w" --max-length "$MAXLEN" \
                --seed "$seed"
        fi
    done; done
    # shellcheck disable=SC2086
    SEEDS="$SEEDS" "$PY" "$HERE/report.py" finetune "$OUT" "$ds" $WEIGHTS
    ;;
agree)
    run="${1:?run.sh agree RUN [sms|bbc]}"; ds="${2:-sms}"
    "$PY" "$HERE/hf_agreement.py" --model "$run/best" --dataset "$ds" --duet "$DUET_BIN" --out "$OUT/agree-$ds.json"
    "$PY" - "$OUT/agree-$ds.json" "$OUT/agree-$ds.md" <<'PYEOF'
import json, sys
a = json.load(open(sys.argv[1]))
md = (f"# duet's saved classifier in transformers ({a['dataset']})\n\n"
      f"`{a['model']}` loaded with `BertForSequenceClassification.from_pretrained`, test split, window "
      f"{a['max_length']} tokens, against `duet classify`.\n\n"
      "| texts | agreement % | disagreements | max abs prob diff | mean abs prob diff | accuracy HF % | accuracy duet % |\n"
      "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
      f"| {a['examples']} | {100 * a['agreement']:.2f} | {len(a['disagreements'])} | {a['max_abs_prob_diff']:.2e} | "
      f"{a['mean_abs_prob_diff']:.2e} | {100 * a['hf_accuracy']:.2f} | {100 * a['duet_accuracy']:.2f} |\n")
open(sys.argv[2], "w").write(md)
print(md)
PYEOF
    ;;
speed)
    ROUNDS=2; EPOCHS=0.25; QUIET=300
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --rounds) ROUNDS="$2"; shift 2 ;;
            --epochs) EPOCHS="$2"; shift 2 ;;
            --wait-quiet) QUIET="$2"; shift 2 ;;
            *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
        esac
    done
    wait_quiet() {
        local t=0
        while (( t < QUIET )) && awk '{exit !($1 >= 0.5)}' /proc/loadavg; do sleep 10; t=$((t + 10)); done
    }
    SPLIT="$OUT/split-sms"
    "$PY" "$HERE/make_split.py" sms "$SPLIT"
    RECIPE=()
    for kv in train.batch_size=16 train.lr=5e-5 train.min_lr=0.0 train.warmup_steps=0 train.schedule=linear \
        train.weight_decay=0.01 train.beta2=0.999 train.eval_every=0 train.checkpoint_every=0; do
        RECIPE+=(--set "$kv")
    done
    for r in $(seq 1 "$ROUNDS"); do
        wait_quiet
        rm -rf "$OUT/runs/speed-duet-$r"
        timed "$OUT/logs/speed-duet-$r.time" "$OUT/logs/speed-duet-$r.log" -- "$DUET_BIN" train classify \
            --model data/external/minilm --train data/external/sms-spam/spam_collection.csv \
            --exclude "$SPLIT/exclude.json" --valid "$SPLIT/valid.jsonl" --out "$OUT/runs/speed-duet-$r" \
            "${RECIPE[@]}" --set model.max_length=64 --epochs "$EPOCHS"
        wait_quiet
        rm -rf "$OUT/runs/speed-hf-$r"
        timed "$OUT/logs/speed-hf-$r.time" "$OUT/logs/speed-hf-$r.log" -- "$PY" "$HERE/finetune_peer.py" \
            --dataset sms --split "$SPLIT" --out "$OUT/runs/speed-hf-$r" --max-length 64 --epochs "$EPOCHS"
    done
    "$PY" - "$OUT" "$ROUNDS" <<'PYEOF'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
res, rows = {}, []
for side, name in (("duet", "duet"), ("hf", "transformers")):
    per = []
    for r in range(1, rounds + 1):
        lines = [json.loads(l) for l in open(f"{out}/runs/speed-{side}-{r}/metrics.jsonl")]
        rates = [l["examples_per_sec"] for l in lines if "examples_per_sec" in l]
        per.append(statistics.median(rates[:-1] or rates))  # the last window holds duet's evaluation
    res[name] = {"median_examples_per_sec_per_round": per, "examples_per_sec": statistics.median(per)}
ratio = res["duet"]["examples_per_sec"] / res["transformers"]["examples_per_sec"]
res["duet_over_transformers"] = ratio
md = ("# Fine-tuning speed, MiniLM-L6 on SMS (max length 64, batch 16, 2 threads)\n\n"
      "| side | examples/s (median of rounds) | per round |\n| --- | ---: | --- |\n"
      + "".join(f"| {n} | {res[n]['examples_per_sec']:.1f} | {', '.join(f'{x:.1f}' for x in res[n]['median_examples_per_sec_per_round'])} |\n"
                for n in ("duet", "transformers"))
      + f"\nduet / transformers: {ratio:.2f}×\n")
json.dump(res, open(f"{out}/speed.json", "w"), indent=1)
open(f"{out}/speed.md", "w").write(md)
print(md)
PYEOF
    ;;
*) echo "run.sh: unknown mode $MODE (tfidf, finetune, agree, speed; --help)" >&2; exit 2 ;;
esac

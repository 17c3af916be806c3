#!/usr/bin/env bash
# The real Rasa projects of testdata/rasa/ (scripts/fetch-rasa-projects.sh lays them there)
# through `duet dialog`: validate, train, test (as `rasa test`: the stories' own events replayed,
# predicted actions compared), and held-out story prediction (5 folds over the stories, the
# ensemble with and without the trained policy). Prints the Markdown table of bench/RESULTS.md.
#
#   DUET_BIN=target/release/duet bench/dialog/rasa-projects.sh [FOLDS]
#
# No Duckling server exists here: DUET_DUCKLING=builtin gives duet's own extraction. No action
# server is needed: `dialog test` runs no action (as `rasa test`).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
DUET="${DUET_BIN:-$ROOT/target/release/duet}"
FOLDS="${1:-5}"
SRC="${DUET_RASA_PROJECTS:-$ROOT/testdata/rasa}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export DUET_DUCKLING=builtin

echo "| project | stories / rules | validate | test stories passed | held-out actions | right with trained policy | right without |"
echo "|---|---|---|---|---|---|---|"
for p in formbot moodbot reminderbot rules knowledgebasebot concertbot e2ebot responseselectorbot financial-demo; do
    [[ -d "$SRC/$p" ]] || { echo "| $p | (missing) | | | | | |"; continue; }
    cp -r "$SRC/$p" "$WORK/$p"
    if ! "$DUET" dialog validate --project "$WORK/$p" > "$WORK/$p.validate" 2>&1; then
        echo "| $p | | errors | | | | |"; continue
    fi
    "$DUET" dialog train --project "$WORK/$p" > "$WORK/$p.train" 2>&1 || { echo "| $p | | ok | train failed | | | |"; continue; }
    sr=$(grep -o '[0-9]* stories, [0-9]* rules' "$WORK/$p.train" | sed 's/ stories, / \/ /; s/ rules//')
    "$DUET" dialog test --project "$WORK/$p" --folds 0 --heldout "$FOLDS" > "$WORK/$p.test" 2>&1 || true
    read -r passed failed < <(sed -n 's/^stories: \([0-9]*\) passed, \([0-9]*\) failed.*/\1 \2/p' "$WORK/$p.test")
    h=$(grep '^held-out' "$WORK/$p.test" || true)
    acts=$(sed -n 's/.*: \([0-9]*\) actions;.*/\1/p' <<< "$h")
    with=$(sed -n 's/.*trained policy \([0-9]*\) (\([0-9.]*\)).*/\1 (\2)/p' <<< "$h")
    without=$(sed -n 's/.*without \([0-9]*\) (\([0-9.]*\)).*/\1 (\2)/p' <<< "$h")
    echo "| $p | $sr | ok | $passed/$((passed + failed)) | $acts | $with | $without |"
done

#!/usr/bin/env bash
# `duet quantize` output runs in llama.cpp with the greedy output duet gives on the same file:
# SmolLM2-135M-Instruct (the shipped Q4_1) re-quantized by duet to each type, then, on the first
# N golden prompts, llama.cpp's token ids and greedy continuations (testdata/gguf/smollm2/
# make_golden.py --gguf FILE) against duet's (crates/model/examples/gguf_parity.rs).
#
# Usage: bench/gguf/quantize_parity.sh [N]   (default 20; needs bench/gguf/setup.sh)
# Results: data/bench/gguf/parity/<type>/{golden.jsonl,duet.json} and one line per type.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
N="${1:-20}"
PY=data/pyenv/bin/python
S=data/external/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
OUT=data/bench/gguf/parity
cargo build --release -p duet-cli -p duet-model --example gguf_parity >&2
for t in q8_0 q4_k_m q4_0 f16; do
    f=data/bench/gguf/smollm2-duet-$t.gguf
    [[ -s $f ]] || target/release/duet quantize --model "$S" --type $t --out "$f" >&2
    mkdir -p "$OUT/$t"
    $PY testdata/gguf/smollm2/make_golden.py --gguf "$f" --out "$OUT/$t" --limit "$N" >&2
    target/release/examples/gguf_parity "$f" "$OUT/$t/golden.jsonl" > "$OUT/$t/duet.json"
    $PY - "$t" "$OUT/$t/duet.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[2]))
ok = r["same_prompt_ids"] == r["prompts"] and r["same_greedy"] == r["prompts"]
print(f'{sys.argv[1]}: token ids equal on {r["same_prompt_ids"]}/{r["prompts"]}, greedy equal on '
      f'{r["same_greedy"]}/{r["prompts"]} -> {"met" if ok else "not met"}; diverged: {r["diverged"]}')
PY
done

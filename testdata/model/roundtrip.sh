#!/usr/bin/env bash
# Round trip: duet initialises and saves GPT-2, Llama, Qwen2 and three BERT heads in the Hugging
# Face layout; transformers (data/pyenv, see bench/model/requirements-fixtures.txt) loads each
# with no missing or unexpected keys and must give duet's logits within 1e-4.
# Usage (repository root): testdata/model/roundtrip.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
cargo run --quiet --release -p duet-model --example save_for_transformers -- "$out"
status=0
for d in "$out"/*/; do
    HF_HUB_OFFLINE=1 data/pyenv/bin/python testdata/model/check_roundtrip.py "$d" || status=1
done
exit $status

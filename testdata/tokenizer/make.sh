#!/usr/bin/env bash
# Makes the tokenizer golden files: duet trains BPE, WordPiece and Unigram tokenizers on the
# English and Chinese fortunes, then Python `tokenizers` (the Hugging Face library) loads the
# files duet wrote and encodes samples.txt; golden.json holds its ids. The Rust test
# crates/tokenizer/tests/golden.rs checks that duet gives the same ids.
#
# Usage (from the repository root): testdata/tokenizer/make.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/fetch-data.sh fortunes fortunes-zh
cargo build --release -p duet-cli
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
target/release/duet corpus build data/external/fortunes data/external/fortunes-zh --out "$tmp/corpus"
target/release/duet tokenizer train --corpus "$tmp/corpus" --kind bpe --vocab-size 4000 --out testdata/tokenizer/bpe.json
target/release/duet tokenizer train --corpus "$tmp/corpus" --kind wordpiece --vocab-size 6000 --out testdata/tokenizer/wordpiece.json
target/release/duet tokenizer train --corpus "$tmp/corpus" --kind unigram --vocab-size 6000 --out testdata/tokenizer/unigram.json
rm -f testdata/tokenizer/*.stats.json
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install --quiet tokenizers==0.23.2
"$tmp/venv/bin/python" testdata/tokenizer/make_golden.py

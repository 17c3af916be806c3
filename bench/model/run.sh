#!/usr/bin/env bash
# Model benchmarks, side by side in one run: MiniLM sentence embeddings (duet against
# sentence-transformers on PyTorch and onnxruntime) and GPT-2-small greedy decode (duet against
# PyTorch generate and llama.cpp), f32, 2 threads, same inputs and weights. Rounds alternate the
# peers and duet (peers, duet, peers, duet, ...); the report gives medians and ratios.
#
# Usage: bench/model/run.sh [--rounds N]     (default 3)
# Needs what bench/model/run_peers.sh sets up (it is run first, which prepares everything).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
ROUNDS=3
[[ "${1:-}" == "--rounds" ]] && ROUNDS="$2"
OUT=data/bench/model
PY=data/pyenv/bin/python
PROMPT="The old lighthouse keeper walked slowly along the shore, watching the grey waves roll in"
cargo build --release -p duet-model --example bench_embed --example bench_decode >&2
mkdir -p "$OUT/rounds"
for r in $(seq 1 "$ROUNDS"); do
    echo "== round $r/$ROUNDS" >&2
    bench/model/run_peers.sh --embed-only --runs-embed 5 >&2
    cp "$OUT/embed-peers.json" "$OUT/rounds/embed-peers-$r.json"
    target/release/examples/bench_embed data/external/minilm "$OUT/sms256.txt" 32 128 5 >"$OUT/rounds/embed-duet-$r.json"
    bench/model/run_peers.sh --decode-only --runs-decode 3 >&2
    cp "$OUT/decode-peers.json" "$OUT/rounds/decode-peers-$r.json"
    target/release/examples/bench_decode "$OUT/gpt2-small-random" "$PROMPT" 128 3 >"$OUT/rounds/decode-duet-$r.json"
done
"$PY" - "$OUT/rounds" "$ROUNDS" <<'PYEOF'
import json, statistics, sys
d, rounds = sys.argv[1], int(sys.argv[2])
emb, dec = {}, {}
for r in range(1, rounds + 1):
    for p in json.load(open(f"{d}/embed-peers-{r}.json"))["peers"]:
        emb.setdefault(p["peer"], []).append(p["sentences_per_s"])
    emb.setdefault("duet", []).append(json.load(open(f"{d}/embed-duet-{r}.json"))["sentences_per_s"])
    for p in json.load(open(f"{d}/decode-peers-{r}.json"))["peers"]:
        key = "decode_tokens_per_s"
        dec.setdefault(p["peer"], []).append(p[key])
    dj = json.load(open(f"{d}/decode-duet-{r}.json"))
    dec.setdefault("duet", []).append(dj["decode_tokens_per_s"])
med = lambda v: statistics.median(v)
print("MiniLM embeddings, 256 SMS, batch 32, <=128 tokens (sentences/s, median of rounds)")
for k, v in emb.items():
    print(f"  {k:<28} {med(v):8.1f}   rounds {[round(x, 1) for x in v]}")
for k in emb:
    if k != "duet":
        print(f"  duet / {k}: {med(emb['duet']) / med(emb[k]):.2f}x")
print("GPT-2 small greedy decode, 16-token prompt, 128 new tokens (decode tokens/s, median of rounds)")
for k, v in dec.items():
    print(f"  {k:<40} {med(v):8.1f}   rounds {[round(x, 1) for x in v]}")
for k in dec:
    if k != "duet":
        print(f"  duet / {k}: {med(dec['duet']) / med(dec[k]):.2f}x")
json.dump({"embed": emb, "decode": dec}, open(f"{d}/summary.json", "w"), indent=1)
PYEOF

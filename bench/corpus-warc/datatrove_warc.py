#!/usr/bin/env python3
"""datatrove's side of bench/corpus-warc/run.sh: its WarcReader and its Trafilatura extractor
(datatrove's default main-text extraction for Common Crawl) over the WARC files of a folder, one
task per file, `--workers` processes, documents written as JSON lines.

    python datatrove_warc.py WARC_DIR OUT_DIR [--workers 2]
"""
import argparse

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.extractors import Trafilatura
from datatrove.pipeline.readers import WarcReader
from datatrove.pipeline.writers import JsonlWriter


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("warc_dir")
    ap.add_argument("out_dir")
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    LocalPipelineExecutor(
        pipeline=[
            WarcReader(a.warc_dir, glob_pattern="*.warc.gz"),
            Trafilatura(favour_precision=True),
            JsonlWriter(a.out_dir, compression=None),
        ],
        tasks=2,
        workers=a.workers,
        logging_dir=a.out_dir + "/logs",
    ).run()


if __name__ == "__main__":
    main()

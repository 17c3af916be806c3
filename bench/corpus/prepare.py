#!/usr/bin/env python3
"""Build the input of the corpus-stage speed benchmark.

Reads the data fetched by ``scripts/fetch-data.sh`` (data/external/) and writes
one JSONL file, ``data/bench/corpus-input.jsonl``, one ``{"id", "text"}`` object
per line, plus ``corpus-input.stats.json`` next to it (per-source counts, bytes,
sha256 of the JSONL).

Documents (see bench/corpus/README.md for why):

* ``fortunes/<file>/<n>``     every English fortune (Debian fortunes, fortunes-min),
                              entries split on lines that are exactly ``%``
* ``fortunes-zh/<file>/<n>``  every Chinese fortune / Tang / Song poem, same split,
                              raw text (the ANSI colour escapes are kept)
* ``gcide/<n>``               every entry of the GNU Collaborative International
                              Dictionary of English (dictd data, one entry per
                              distinct (offset, length) of gcide.index)
* ``bbc-news/<label>/<file>`` every BBC News article
* ``python3-doc/<path>``      the visible text of every page of the Python HTML
                              docs (html.parser; scripts, styles and <head> dropped,
                              block elements become line breaks, <pre> kept verbatim)

Deterministic: sources are read in sorted order, then the documents are shuffled
with a fixed seed (so any contiguous split of the file, e.g. by a tool that shards
per task, sees the same mix of sources). Only the Python standard library is used.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def decode(raw: bytes) -> str:
    """UTF-8, else Windows-1252 (a few BBC articles and gcide entries are cp1252)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


# ----------------------------------------------------------------- fortunes --


def fortune_entries(path: Path):
    entry: list[str] = []
    for line in decode(path.read_bytes()).split("\n"):
        if line == "%":
            text = "\n".join(entry).strip("\n")
            if text.strip():
                yield text
            entry = []
        else:
            entry.append(line)
    text = "\n".join(entry).strip("\n")
    if text.strip():
        yield text


def fortunes(ext: Path, name: str):
    folder = ext / name
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        for i, text in enumerate(fortune_entries(path)):
            yield f"{name}/{path.name}/{i}", text


# -------------------------------------------------------------------- gcide --

B64 = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}


def dictd_number(s: str) -> int:
    n = 0
    for c in s:
        n = n * 64 + B64[c]
    return n


def gcide(ext: Path):
    folder = ext / "dict-gcide"
    spans = set()
    with open(folder / "gcide.index", encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3 or parts[0].startswith("00-database") or parts[0].startswith("00database"):
                continue
            spans.add((dictd_number(parts[1]), dictd_number(parts[2])))
    data = (folder / "gcide.dict").read_bytes()
    for i, (off, length) in enumerate(sorted(spans)):
        text = decode(data[off : off + length]).strip("\n")
        if text.strip():
            yield f"gcide/{i}", text


# ----------------------------------------------------------------- bbc-news --


def bbc_news(ext: Path):
    folder = ext / "bbc-news"
    for label in sorted(p for p in folder.iterdir() if p.is_dir()):
        for path in sorted(label.glob("*.txt")):
            text = decode(path.read_bytes()).replace("\r\n", "\n").strip()
            if text:
                yield f"bbc-news/{label.name}/{path.stem}", text


# -------------------------------------------------------------- python3-doc --

BLOCK = {
    "address", "article", "aside", "blockquote", "br", "caption", "dd", "details", "div", "dl", "dt",
    "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li",
    "main", "nav", "ol", "p", "pre", "section", "summary", "table", "td", "th", "tr", "ul",
}
SKIP = {"script", "style", "head", "noscript", "template", "svg"}
WS = re.compile(r"\s+")


class TextExtractor(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0
        self.pre = 0
        self.at_line_start = True

    def newline(self):
        if not self.at_line_start:
            self.out.append("\n")
            self.at_line_start = True

    def handle_starttag(self, tag, attrs):
        if tag in SKIP:
            self.skip += 1
        elif tag in BLOCK:
            self.newline()
            if tag == "pre":
                self.pre += 1

    def handle_startendtag(self, tag, attrs):
        if tag in BLOCK:
            self.newline()

    def handle_endtag(self, tag):
        if tag in SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag in BLOCK:
            if tag == "pre":
                self.pre = max(0, self.pre - 1)
            self.newline()

    def handle_data(self, data):
        if self.skip:
            return
        if self.pre:
            if data:
                self.out.append(data)
                self.at_line_start = data.endswith("\n")
            return
        text = WS.sub(" ", data)
        if self.at_line_start:
            text = text.lstrip()
        if text:
            self.out.append(text)
            self.at_line_start = False

    def text(self) -> str:
        lines = [line.rstrip() for line in "".join(self.out).split("\n")]
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def html_to_text(html: str) -> str:
    p = TextExtractor()
    p.feed(html)
    p.close()
    return p.text()


def python3_doc(ext: Path):
    folder = ext / "python3-doc"
    for path in sorted(folder.rglob("*.html")):
        text = html_to_text(decode(path.read_bytes()))
        if text:
            yield f"python3-doc/{path.relative_to(folder).as_posix()}", text


# --------------------------------------------------------------------- main --

SOURCES = {
    "fortunes": lambda ext: fortunes(ext, "fortunes"),
    "fortunes-zh": lambda ext: fortunes(ext, "fortunes-zh"),
    "gcide": gcide,
    "bbc-news": bbc_news,
    "python3-doc": python3_doc,
}
NEEDS = {"fortunes": "fortunes", "fortunes-zh": "fortunes-zh", "gcide": "dict-gcide",
         "bbc-news": "bbc-news", "python3-doc": "python3-doc"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--external", type=Path, default=ROOT / "data/external", help="output of scripts/fetch-data.sh")
    ap.add_argument("--out", type=Path, default=ROOT / "data/bench/corpus-input.jsonl")
    ap.add_argument("--seed", type=int, default=0, help="seed of the document shuffle")
    ap.add_argument("--no-shuffle", action="store_true", help="keep documents grouped by source")
    args = ap.parse_args()

    missing = [d for d in NEEDS.values() if not (args.external / d / ".complete").exists()]
    if missing:
        print(f"prepare: missing data, run: scripts/fetch-data.sh {' '.join(missing)}", file=sys.stderr)
        return 1

    t0 = time.perf_counter()
    docs: list[tuple[str, str]] = []
    stats: dict[str, dict] = {}
    for name, source in SOURCES.items():
        t = time.perf_counter()
        n = nbytes = 0
        for doc_id, text in source(args.external):
            docs.append((doc_id, text))
            n += 1
            nbytes += len(text.encode("utf-8"))
        stats[name] = {"docs": n, "text_bytes": nbytes}
        print(f"  {name:<12} {n:>8} docs {nbytes / 1e6:8.2f} MB text  ({time.perf_counter() - t:.1f}s)", file=sys.stderr)

    if not args.no_shuffle:
        random.Random(args.seed).shuffle(docs)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    sha = hashlib.sha256()
    size = 0
    with open(tmp, "wb") as f:
        for doc_id, text in docs:
            line = (json.dumps({"id": doc_id, "text": text}, ensure_ascii=False) + "\n").encode("utf-8")
            sha.update(line)
            size += len(line)
            f.write(line)
    os.replace(tmp, args.out)

    lengths = sorted(len(t.encode("utf-8")) for _, t in docs)
    summary = {
        "file": str(args.out.relative_to(ROOT)) if args.out.is_relative_to(ROOT) else str(args.out),
        "docs": len(docs),
        "file_bytes": size,
        "text_bytes": sum(lengths),
        "doc_bytes_median": lengths[len(lengths) // 2] if lengths else 0,
        "doc_bytes_p90": lengths[int(len(lengths) * 0.9)] if lengths else 0,
        "doc_bytes_max": lengths[-1] if lengths else 0,
        "sha256": sha.hexdigest(),
        "seed": None if args.no_shuffle else args.seed,
        "sources": stats,
    }
    args.out.with_name(args.out.stem + ".stats.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"prepare: {len(docs)} docs, {size / 1e6:.1f} MB -> {summary['file']} "
        f"(sha256 {summary['sha256'][:16]}…, {time.perf_counter() - t0:.1f}s)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Keyword extraction on BBC News: does an article's body yield its title's words?

For each of the 2,225 articles the title (first line) is held out and the body is given to
each method; the score is the share of the title's content words (lower-cased words, less
scikit-learn's English stop words) found among the words of the method's top 10 keywords.
Two budgets, because a key phrase may hold several words:

* ``top10``: all words of the top 10 keywords (what each method returns);
* ``words10``: the first 10 distinct words of those keywords, in rank order — the same word
  budget as scikit-learn's ten single terms.

Methods, side by side in one run on the same bodies:

* scikit-learn ``TfidfVectorizer(stop_words="english")`` fitted on all bodies, each article's
  10 terms of highest weight;
* ``duet extract keywords`` (YAKE on the article alone), and the same re-ranked by MiniLM
  (``--model``), with phrases up to 3 words and, as a second row, single words (``--ngrams 1``).

Usage: bench/extract/keywords.py [--duet target/release/duet] [--minilm data/external/minilm]
Writes data/bench/extract/keywords.{json,md}.
"""

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer

ROOT = Path(__file__).resolve().parents[2]
WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def words(text):
    """Content words: lower-cased, possessive 's dropped, stop words and 1-letter words out."""
    out = []
    for w in WORD.findall(text.lower()):
        w = w.removesuffix("'s")
        if len(w) > 1 and w not in ENGLISH_STOP_WORDS:
            out.append(w)
    return out


def budget(keywords, limit):
    """The first `limit` distinct content words of the ranked keywords (all when None)."""
    seen = []
    for k in keywords:
        for w in words(k):
            if w not in seen:
                seen.append(w)
    return set(seen if limit is None else seen[:limit])


def recall(titles, predictions, limit):
    per_doc, hit, total = [], 0, 0
    for title, kws in zip(titles, predictions):
        t = set(words(title))
        if not t:
            continue
        got = len(t & budget(kws, limit))
        per_doc.append(got / len(t))
        hit += got
        total += len(t)
    return sum(per_doc) / len(per_doc), hit / total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duet", default=str(ROOT / "target/release/duet"))
    ap.add_argument("--minilm", default=str(ROOT / "data/external/minilm"))
    ap.add_argument("--data", default=str(ROOT / "data/external/bbc-news"))
    ap.add_argument("--no-minilm", action="store_true", help="skip the re-ranked runs (4 min each)")
    ap.add_argument("--out", default=str(ROOT / "data/bench/extract"))
    args = ap.parse_args()

    out = Path(args.out)
    bodies_dir = out / "bbc-bodies"
    files = sorted(Path(args.data).glob("*/*.txt"))
    if not files:
        sys.exit(f"no articles under {args.data}: run scripts/fetch-data.sh bbc-news")
    titles, bodies, names = [], [], []
    for f in files:
        text = f.read_bytes().decode("utf-8", errors="replace")
        title, _, body = text.strip().partition("\n")
        titles.append(title.strip())
        bodies.append(body.strip())
        name = bodies_dir / f.parent.name / f.name
        name.parent.mkdir(parents=True, exist_ok=True)
        name.write_text(body.strip() + "\n")
        names.append(str(name))

    rows = []

    t0 = time.perf_counter()
    vec = TfidfVectorizer(stop_words="english")
    m = vec.fit_transform(bodies)
    vocab = vec.get_feature_names_out()
    sk = []
    for i in range(m.shape[0]):
        row = m.getrow(i)
        order = row.data.argsort()[::-1][:10]
        sk.append([vocab[row.indices[j]] for j in order])
    rows.append(("scikit-learn TF-IDF top terms (fit on all bodies)", sk, time.perf_counter() - t0))

    def duet(label, extra):
        cmd = [args.duet, "extract", "keywords", "--top", "10", "--lang", "en", *extra, str(bodies_dir)]
        t0 = time.perf_counter()
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        secs = time.perf_counter() - t0
        by_file = {}
        for line in res.stdout.splitlines():
            d = json.loads(line)
            by_file[d["source"]] = [k["keyword"] for k in d["keywords"]]
        rows.append((label, [by_file[n] for n in names], secs))

    duet("duet YAKE, phrases ≤ 3 words", [])
    duet("duet YAKE, single words", ["--ngrams", "1"])
    if not args.no_minilm:
        duet("duet YAKE + MiniLM re-rank, phrases ≤ 3 words", ["--model", args.minilm])
        duet("duet YAKE + MiniLM re-rank, single words", ["--model", args.minilm, "--ngrams", "1"])

    results = []
    for label, preds, secs in rows:
        r_all = recall(titles, preds, None)
        r_10 = recall(titles, preds, 10)
        mean_words = sum(len(budget(p, None)) for p in preds) / len(preds)
        results.append(
            {
                "method": label,
                "recall_top10": r_all[0],
                "recall_top10_micro": r_all[1],
                "recall_words10": r_10[0],
                "recall_words10_micro": r_10[1],
                "mean_words_in_top10": mean_words,
                "seconds": secs,
            }
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / "keywords.json").write_text(json.dumps({"articles": len(files), "results": results}, indent=2) + "\n")
    lines = [
        f"BBC News, {len(files)} articles, title held out: recall of the title's content words",
        "",
        "| method | top 10 keywords | words in top 10 | first 10 distinct words | time (s) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r['method']} | {r['recall_top10']:.3f} | {r['mean_words_in_top10']:.1f} | "
            f"{r['recall_words10']:.3f} | {r['seconds']:.1f} |"
        )
    (out / "keywords.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

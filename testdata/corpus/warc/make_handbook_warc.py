"""Writes testdata/corpus/warc/handbook.warc.gz with warcio (PyPI): four pages of Debian's
`debian-handbook` package (the Debian Administrator's Handbook, 2022 build shipped by Debian 12;
two in English, two in simplified Chinese) as HTTP response records, gzip per record, with the
page's path under /usr/share/doc/debian-handbook/html/ in the target URI. The corpus tests read
it and hold each page's text to the text duet extracts from the same file of the installed
package (apt-get install debian-handbook).

    /tmp/warcenv/bin/pip install warcio
    /tmp/warcenv/bin/python testdata/corpus/warc/make_handbook_warc.py
"""

import io
import os

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = "/usr/share/doc/debian-handbook/html"
PAGES = [
    "en-US/sect.apt-file.html",
    "en-US/sect.role-of-distributions.html",
    "zh-CN/sect.apt-cache.html",
    "zh-CN/sect.role-of-distributions.html",
]

with open(os.path.join(HERE, "handbook.warc.gz"), "wb") as f:
    w = WARCWriter(f, gzip=True)
    for page in PAGES:
        body = open(os.path.join(ROOT, page), "rb").read()
        http = StatusAndHeaders(
            "200 OK",
            [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))],
            protocol="HTTP/1.1",
        )
        w.write_record(
            w.create_warc_record(
                "http://debian-handbook.example/" + page,
                "response",
                payload=io.BytesIO(body),
                http_headers=http,
                warc_headers_dict={"WARC-Date": "2024-03-01T12:00:00Z"},
            )
        )

"""Writes the WARC/WET fixtures of duet-corpus's reader tests with warcio (PyPI).

    python3 -m venv /tmp/warcenv && /tmp/warcenv/bin/pip install warcio
    /tmp/warcenv/bin/python testdata/corpus/warc/make_warc.py

Clean files: pages.warc.gz (one gzip member per record, as Common Crawl ships them),
pages.warc (plain), pages.whole.warc.gz (the plain file gzipped as one member), pages.wet and
pages.wet.gz (WET conversion records). Broken files, cut from the clean ones byte by byte:
truncated_member.warc.gz (the English response's member cut in half, in the middle of the file),
truncated_end.warc.gz (the last member cut), lying_length.warc (one Content-Length too long, one
too short), bad_header.warc (a header line without a colon, a Content-Length that is no number).
"""

import gzip
import io
import os

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

HERE = os.path.dirname(os.path.abspath(__file__))
DATE = "2024-03-01T12:00:00Z"

EN = b"""<!doctype html><html><head><title>Debian packages</title></head><body>
<nav><a href="/">Home</a> <a href="/about">About</a></nav>
<article><h1>Package management</h1>
<p>The apt tool installs packages and their dependencies from the configured archives.</p>
<p>Run apt update before apt upgrade so the package lists are current.</p></article>
<footer>Copyright the authors</footer></body></html>"""

ZH = """<!doctype html><html><head><meta charset="utf-8"><title>软件包管理</title></head><body>
<article><h1>软件包管理</h1><p>APT 工具从配置的软件源安装软件包及其依赖。</p>
<p>升级之前先运行 apt update，使软件包列表保持最新。</p></article></body></html>""".encode()

GBK = """<html><head><title>编码</title></head><body><p>这一页用 GBK 编码，阅读器按照 HTTP 头里的字符集解码。</p></body></html>""".encode(
    "gbk"
)

NOTES = b"Plain notes stored as a resource record.\nSecond line.\n"

GZ_PAGE = b"<html><body><p>This page was sent with Content-Encoding gzip.</p></body></html>"


def record_bytes(make):
    """One record written alone: with gzip, exactly one gzip member."""
    out = {}
    for gz in (True, False):
        buf = io.BytesIO()
        make(WARCWriter(buf, gzip=gz))
        out[gz] = buf.getvalue()
    return out


def response(uri, status, ctype, body, extra=()):
    def make(w):
        headers = [("Content-Type", ctype), ("Content-Length", str(len(body)))] + list(extra)
        http = StatusAndHeaders(status, headers, protocol="HTTP/1.1")
        rec = w.create_warc_record(
            uri,
            "response",
            payload=io.BytesIO(body),
            http_headers=http,
            warc_headers_dict={"WARC-Date": DATE},
        )
        w.write_record(rec)

    return make


def request(uri):
    def make(w):
        http = StatusAndHeaders("GET / HTTP/1.1", [("Host", "example.org")], is_http_request=True)
        rec = w.create_warc_record(
            uri, "request", payload=io.BytesIO(b""), http_headers=http,
            warc_headers_dict={"WARC-Date": DATE},
        )
        w.write_record(rec)

    return make


def plain(uri, kind, ctype, body):
    def make(w):
        rec = w.create_warc_record(
            uri, kind, payload=io.BytesIO(body), warc_content_type=ctype,
            warc_headers_dict={"WARC-Date": DATE},
        )
        w.write_record(rec)

    return make


def warcinfo(w):
    w.write_record(w.create_warcinfo_record("pages.warc", {"software": "warcio", "format": "WARC File Format 1.0"}))


RECORDS = [
    warcinfo,
    request("https://example.org/en.html"),
    response("https://example.org/en.html", "200 OK", "text/html; charset=utf-8", EN),
    response("https://example.org/zh.html", "200 OK", "text/html; charset=utf-8", ZH),
    response("https://example.org/gbk.html", "200 OK", "text/html; charset=gbk", GBK),
    response("https://example.org/moved", "301 Moved Permanently", "text/html", b"<p>moved</p>",
             [("Location", "/en.html")]),
    response("https://example.org/logo.png", "200 OK", "image/png", b"\x89PNG\r\n\x1a\n\x00\x00"),
    plain("https://example.org/notes.txt", "resource", "text/plain", NOTES),
    response("https://example.org/gz.html", "200 OK", "text/html", gzip.compress(GZ_PAGE, mtime=0),
             [("Content-Encoding", "gzip")]),
]

WET = [
    warcinfo,
    plain("https://example.org/en.html", "conversion", "text/plain",
          b"Package management\nThe apt tool installs packages and their dependencies.\n"),
    plain("https://example.org/zh.html", "conversion", "text/plain",
          "软件包管理\nAPT 工具从配置的软件源安装软件包及其依赖。\n".encode()),
]


def main():
    parts = [record_bytes(m) for m in RECORDS]
    members = [p[True] for p in parts]
    plain_recs = [p[False] for p in parts]

    def write(name, data):
        with open(os.path.join(HERE, name), "wb") as f:
            f.write(data)

    write("pages.warc.gz", b"".join(members))
    write("pages.warc", b"".join(plain_recs))
    write("pages.whole.warc.gz", gzip.compress(b"".join(plain_recs), mtime=0))
    wet = [record_bytes(m) for m in WET]
    write("pages.wet", b"".join(p[False] for p in wet))
    write("pages.wet.gz", b"".join(p[True] for p in wet))

    cut = list(members)
    cut[2] = cut[2][: len(cut[2]) // 2]
    write("truncated_member.warc.gz", b"".join(cut))
    cut = list(members)
    cut[-1] = cut[-1][: len(cut[-1]) - 20]
    write("truncated_end.warc.gz", b"".join(cut))

    lying = list(plain_recs)
    lying[2] = relength(lying[2], +40)
    lying[3] = relength(lying[3], -25)
    write("lying_length.warc", b"".join(lying))

    bad = list(plain_recs)
    bad[4] = bad[4].replace(b"WARC-Type: response\r\n", b"WARC-Type: response\r\nthis is not a header\r\n", 1)
    bad[7] = replace_length(bad[7], b"12abc")
    write("bad_header.warc", b"".join(bad))

    # warcio reads back every clean file it wrote.
    from warcio.archiveiterator import ArchiveIterator
    # (warcio refuses whole-file gzip, which Common Crawl does not ship but other tools write.)
    for name in ["pages.warc.gz", "pages.warc", "pages.wet", "pages.wet.gz"]:
        with open(os.path.join(HERE, name), "rb") as f:
            n = sum(1 for _ in ArchiveIterator(f))
        print(f"{name}: {n} records")


def length_of(rec):
    head = rec.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return line
    raise ValueError("no Content-Length")


def relength(rec, delta):
    line = length_of(rec)
    n = int(line.split(b":", 1)[1])
    return rec.replace(line, b"Content-Length: %d" % (n + delta), 1)


def replace_length(rec, value):
    return rec.replace(length_of(rec), b"Content-Length: " + value, 1)


if __name__ == "__main__":
    main()

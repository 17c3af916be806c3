#!/bin/sh
# Makes the e-book fixtures of duet-corpus's reader tests from Debian's debian-handbook package
# (the Debian Administrator's Handbook as HTML) with Debian's pandoc:
#
#     apt-get install debian-handbook pandoc
#     sh testdata/corpus/books/make_books.sh
#
# role-of-distributions.{en,zh}.html: one section of the handbook, English and Chinese, as
# shipped. role-of-distributions.en.epub (EPUB 3) and .zh.epub (EPUB 2): pandoc's e-books of
# those pages. missing-spine-item.epub: the English e-book with two spine items added that cannot
# be read: one whose file is not in the archive, one whose id is not in the manifest.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=/usr/share/doc/debian-handbook/html
page=sect.role-of-distributions.html
cp "$src/en-US/$page" "$here/role-of-distributions.en.html"
cp "$src/zh-CN/$page" "$here/role-of-distributions.zh.html"
cd "$here"
pandoc role-of-distributions.en.html -f html -t epub3 --quiet \
    --metadata author="Raphaël Hertzog" --metadata author="Roland Mas" \
    --metadata lang=en-US -o role-of-distributions.en.epub
pandoc role-of-distributions.zh.html -f html -t epub2 --quiet \
    --metadata author="Raphaël Hertzog" --metadata lang=zh-CN -o role-of-distributions.zh.epub
python3 - <<'PY'
import zipfile

src = zipfile.ZipFile("role-of-distributions.en.epub")
with zipfile.ZipFile("missing-spine-item.epub", "w", zipfile.ZIP_DEFLATED) as out:
    for info in src.infolist():
        data = src.read(info)
        if info.filename.endswith("content.opf"):
            data = data.replace(
                b"</manifest>",
                b'<item id="gone" href="text/gone.xhtml" media-type="application/xhtml+xml" /></manifest>',
            ).replace(
                b'<itemref idref="ch001_xhtml" />',
                b'<itemref idref="gone" /><itemref idref="nowhere" /><itemref idref="ch001_xhtml" />',
            )
            assert b'idref="gone"' in data
        out.writestr(info, data)
PY

#!/bin/sh
# Makes the PDF fixtures of duet-corpus's reader tests from the handbook pages beside this script
# (see make_books.sh) with Debian's weasyprint and qpdf:
#
#     apt-get install weasyprint qpdf fonts-wqy-microhei debian-handbook
#     sh testdata/corpus/books/make_pdfs.sh
#
# role-of-distributions.{en,zh}.pdf: the page on small pages, hyphenated (English), with a running
# header and a page-number footer on every page. scanned.pdf: a text page, a page that holds
# only an image, a text page. encrypted.pdf: scanned.pdf under a user password.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/book.css" <<'CSS'
@page {
    size: A6;
    margin: 1.8cm 1.2cm;
    @top-center { content: "Debian Administrator's Handbook"; font-size: 8pt }
    @bottom-center { content: "Page " counter(page); font-size: 8pt }
}
html { hyphens: auto; font-size: 10pt; font-family: "WenQuanYi Micro Hei", sans-serif }
#banner, #title, ul.docnav { display: none }
CSS
for lang in en zh; do
    # weasyprint hyphenates only text whose language is declared.
    sed "s/<html /<html lang=\"$lang\" /" "role-of-distributions.$lang.html" > "$tmp/$lang.html"
    weasyprint -q -s "$tmp/book.css" "$tmp/$lang.html" "role-of-distributions.$lang.pdf"
done
cp /usr/share/doc/debian-handbook/html/en-US/images/openlogo-nd.png "$tmp/scan.png"
cat > "$tmp/scanned.html" <<'HTML'
<html lang="en"><body>
<p>The first page has a text layer that any reader can extract.</p>
<p style="page-break-before: always"><img src="scan.png" style="width: 8cm"></p>
<p style="page-break-before: always">The third page has a text layer again.</p>
</body></html>
HTML
weasyprint -q "$tmp/scanned.html" scanned.pdf
qpdf --encrypt reader owner 256 -- scanned.pdf encrypted.pdf

#!/usr/bin/env python3
"""Generate testdata/pii/labelled.tsv -- the labelled PII set for duet's redactor.

Deterministic (random.Random(20261129)), standard library only.  Run:

    python3 testdata/pii/make_pii_set.py          # writes labelled.tsv next to this file

Output columns (tab-separated, UTF-8, '\\n' line ends, one header line):

    type    label   span    text

* positive rows (label 1): `text` contains exactly ONE PII item, of type `type`,
  and `span` is the exact substring to redact (it occurs exactly once in `text`).
* negative rows (label 0): `span` is empty; `text` contains a hard look-alike of
  `type` and NO PII of any type.
* every text contains at most one PII item in total, so a redactor is scored
  per type: a detection of type T on a row of another type, or on a negative
  row, is a false positive of T.

The script re-checks every row against a reference detector that implements the
rules below literally (see `detect()`); generation fails loudly if any positive
is not found exactly (type and span) or any negative yields a detection.

======================================================================
RULES: WHAT COUNTS AS PII  (the Rust redactor is written to these)
======================================================================

General
-------
G1. "ASCII alnum" means [A-Za-z0-9_].  Only ASCII letters, digits and '_' ever
    glue onto a token.  CJK characters, full-width punctuation (，。：；（）「」
    etc.) and whitespace are always boundaries, e.g. "手机13812345678请回电" and
    "邮箱zhang.wei@example.cn谢谢" each contain one PII item.  (Do not use a
    Unicode-aware \\b: it treats CJK as word characters.)
G2. Separator characters ("seps") for digit groups are: space, '-', '.'.
G3. Digit-token boundary (applies to PHONE, CARD, CN_ID).  A candidate span
    [i, j) is only accepted if
      - text[i-1] is not ASCII alnum and not '+'
        (a span may itself begin with '+', see PHONE);
      - text[i-2:i] is not <digit><c> with c in {space . - / :};
      - text[j] is not ASCII alnum;
      - text[j:j+2] is not <c><digit> with c in {space . - / :}.
    So a PII span is never a fragment of a longer digit/separator run: a
    22-digit tracking number written in groups of four contains no card, and
    "2024-01-15" contains no phone.  Sentence punctuation right after a span
    (". " / "." at end / "," / ")" / "，") is fine.
G4. Only literal text counts.  Obfuscated forms ("jdoe at example dot com",
    "jdoe[at]example[dot]org") and masked forms ("**** **** **** 4242",
    "138****5678") are NOT PII and are not redacted.
G5. Precedence if two rules ever claim the same characters: EMAIL > CN_ID >
    CARD > PHONE > IP.  (This set contains no such collisions: generated
    CN_IDs that also pass the CARD rule are discarded.)

EMAIL
-----
E1. local "@" domain, ASCII only.
    local  = one or more dot-separated atoms of [A-Za-z0-9_%+-]
             (no leading/trailing/double dot); the local part is maximal, i.e.
             the character before it is not one of [A-Za-z0-9._%+-].
    domain = two or more dot-separated labels; a label is [A-Za-z0-9] or
             [A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]; the LAST label (TLD) is 2+
             ASCII LETTERS only.
    After the TLD the next character must not be [A-Za-z0-9-] and must not be
    '.' followed by [A-Za-z0-9] (a sentence-final '.' is not part of the span).
    The span is local@domain only: "mailto:", "<", ">" and quotes are excluded.
E2. Not emails: no local part ("@handle", "@example.com", "*@example.com",
    "@app.route"); no dot in the domain ("admin@localhost", "a@b"); a numeric
    or 1-letter TLD ("lodash@4.17.21", "x@y.z"); spaces around '@'
    ("3 @ $0.99"); obfuscations (G4).
E3. Image-density file names are NOT emails: if the whole domain matches
    ^[0-9]+(\\.[0-9]+)?x\\.(png|jpg|jpeg|gif|webp|svg|avif)$ (case-insensitive),
    e.g. "logo@2x.png", "icon-home@3x.webp", "banner@1.5x.jpg", the match is
    discarded.

PHONE
-----
P0. Digit-token boundary G3 applies.  A phone has at least 10 digits
    (international: 8-15).  Bare digit runs WITHOUT separators are phones only
    in two cases: they start with '+' (P1), or they are a Chinese mobile
    number 1[3-9]xxxxxxxxx (P4).  In particular a bare 10-digit run
    ("4155550132", an epoch time "1705312245") and a bare leading-zero run
    ("02079460958") are NOT phones.  7-digit local numbers ("555-0132") are out
    of scope (not redacted, and absent from this set).
P1. International: '+', a 1-3 digit country code, then one or more digit
    groups; each group is 1-5 digits or a parenthesised 1-4 digit group
    "(415)", and each group may be preceded by ONE sep (space - .) or by
    nothing.  Total digit count (country code included) 8-15.
      +44 20 7946 0958 | +1 (415) 555-0132 | +86-138-0013-8000 |
      +8613800138000 | +33 1 42 68 53 00 | +81 3-5551-0123
P2. North American national (NANP): optional "1" + one sep, then the area
    code either as "(AAA)" followed by an optional single space, or as "AAA"
    followed by one sep; then EEE sep NNNN.  A and E first digits are 2-9.
      (415) 555-0132 | (415)555-0132 | 415-555-0132 | 415.555.0132 |
      415 555 0132 | 1-800-555-0199
P3. Trunk-zero national (UK, and Chinese landlines etc.): a first group
    0[1-9] + 1-3 digits (3-5 digits in all), then 1-3 further groups of 3-8
    digits, each preceded by exactly one sep; 10-11 digits in total.  At
    least one sep is required.
      020 7946 0958 | 0161 496 0123 | 07700 900123 | 010-6552 9988 |
      021-68881234
P4. Chinese mobile: optional "+86" plus an optional single sep, then
    1[3-9] + 9 more digits, either contiguous or grouped 3-4-4 with seps.
      13812345678 | 138 1234 5678 | 138-1234-5678 | +86 13812345678 |
      +86 138 1234 5678
    An 11-digit run NOT starting 1[3-9] (e.g. 12012345678, 10086000001) is
    not a phone, nor is a 1[3-9]... run inside a longer digit run.
P5. Consequently NOT phones: years, prices and amounts ("$1,299.00",
    "13,800,138,000"), quantities with thousands commas, 4-6 digit numbers,
    ZIP / postal codes (94103, 94103-1234, 100080), dates in any layout
    (2024-01-15, 15/01/2024, 01-15-2024), times, version strings, ISBNs,
    bare 10-digit runs.

IP
--
I1. IPv4: exactly four dot-separated decimal octets 0-255, no leading zeros
    (an octet is "0" or [1-9][0-9]{0,2}).  The character before the span is
    not ASCII alnum and not '.'; the character after is not ASCII alnum, and
    not '.' followed by a digit.  ':' (port) and '/' (prefix length) may
    follow: in "10.0.0.5:8080" the span is "10.0.0.5".
    Not IPs: "1.2.3.4.5", "256.1.1.1", "192.168.1.300", "2024.01.15",
    "v10.2.3.4" (letter-glued), "10.0.19045.3803", "3.14.159".
I2. IPv6: take a MAXIMAL run of [0-9A-Fa-f:] characters.  The character before
    it is not ASCII alnum and not '.'; the character after is not ASCII alnum
    and not '.' followed by an ASCII alnum.  The run is an IPv6 address iff it
    contains at least one hex digit, at least two ':' and is valid RFC 4291
    text: 8 groups of 1-4 hex digits, or exactly one "::" with at most 7
    groups around it.  Upper/lower case both OK.  Compressed forms count:
    "2001:db8::1", "fe80::1ff:fe23:4567:890a", "::1".  Brackets are not part
    of the span: "[2001:db8::1]:443" -> "2001:db8::1".  Embedded-IPv4 forms
    ("::ffff:192.0.2.1") and zone ids ("%eth0") are out of scope (absent).
    Not IPs: times "12:30:45", MAC addresses "00:1a:2b:3c:4d:5e" (6 groups),
    "cafe:babe:f00d" (no "::", <8 groups), "2001:db8:::1", "1::2::3",
    a bare "::" (no hex digit; e.g. C++ "::"), "std::io" (letter-glued),
    hex words ("0xdeadbeef", "deadbeef").
I3. Every syntactically valid address counts, including private, loopback
    and documentation ranges (10.x, 192.168.x, 127.0.0.1, ::1, 2001:db8::/32).

CARD
----
C1. 13-19 digits, first digit 2-6 (Mastercard 2-series/5, Amex/Diners/JCB 3,
    Visa 4, Discover/UnionPay/Maestro 6), and Luhn-valid.
C2. Written either contiguously, or grouped with ONE kind of separator
    (all spaces or all '-') in one of these layouts:
      4-4-4-k  (k = 1..4, 13-16 digits)     4111 1111 1111 1111
               (the set only uses 4-4-4-4 here; 13-digit cards appear contiguous)
      4-4-4-4-k (k = 1..3, 17-19 digits)    6212 3456 7890 1234 567
      4-6-5 (15, Amex)                      3782 822463 10005
      4-6-4 (14, Diners)                    3056 930902 5904
C3. Digit-token boundary G3 applies (so no '+' before it, and no sub-run of a
    longer grouped number).
C4. Not cards: Luhn-invalid numbers (even in card layout, in a card context),
    numbers of other lengths (12 or 20+ digits), numbers starting 0/1/7/8/9
    (ISBN-13 978..., most tracking/order numbers), masked numbers, mixed
    separators.

CN_ID (Chinese resident identity number)
----------------------------------------
N1. Exactly 18 characters: 17 ASCII digits + a check character [0-9Xx],
    contiguous (no separators), digit-token boundary G3.
N2. Check character: sum(d[i] * W[i] for i in 0..16) mod 11 -> "10X98765432"
    with W = 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2 (ISO 7064 MOD 11-2).
    'x' is accepted for 'X'.
N3. Region: the first two digits are a province code in
    {11-15, 21-23, 31-37, 41-46, 50-54, 61-65, 71, 81, 82, 83} (81/82/83 are
    the Hong Kong / Macau / Taiwan residence-permit numbers, same format);
    the next four digits are not checked.
N4. Birth date: characters 7-14 are YYYYMMDD, a real Gregorian calendar date
    with 1900 <= YYYY <= 2099.
N5. Not CN_IDs: wrong check character, impossible dates (month 00/13, day
    00/32, 0230, 0431, 0229 in non-leap years) even with a correct check
    character, province codes 00/99/10/20/..., 17 or 19 digit runs, old
    15-digit IDs (out of scope and absent from this set).
======================================================================
"""

import datetime
import ipaddress
import os
import random
import re
import sys

SEED = 20261129
N_POS = 72
N_NEG = 72
TYPES = ["EMAIL", "PHONE", "IP", "CARD", "CN_ID"]

# ----------------------------------------------------------------------------
# validators
# ----------------------------------------------------------------------------


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def luhn_check_digit(partial: str) -> str:
    for d in "0123456789":
        if luhn_ok(partial + d):
            return d
    raise AssertionError("unreachable")


def card_valid(digits: str) -> bool:
    return (digits.isdigit() and 13 <= len(digits) <= 19 and digits[0] in "23456"
            and luhn_ok(digits))


CN_W = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
CN_MAP = "10X98765432"
CN_PROVINCES = ({11, 12, 13, 14, 15, 21, 22, 23} | set(range(31, 38)) | set(range(41, 47))
                | set(range(50, 55)) | set(range(61, 66)) | {71, 81, 82, 83})


def cn_check_char(first17: str) -> str:
    return CN_MAP[sum(int(c) * w for c, w in zip(first17, CN_W)) % 11]


def cn_date_ok(yyyymmdd: str) -> bool:
    y, m, d = int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8])
    if not 1900 <= y <= 2099:
        return False
    try:
        datetime.date(y, m, d)
    except ValueError:
        return False
    return True


def cn_id_valid(s: str) -> bool:
    if not re.fullmatch(r"[0-9]{17}[0-9Xx]", s):
        return False
    return (cn_check_char(s[:17]) == s[17].upper() and int(s[:2]) in CN_PROVINCES
            and cn_date_ok(s[6:14]))


# ----------------------------------------------------------------------------
# reference detector: a literal implementation of the docstring rules
# ----------------------------------------------------------------------------

NUM_L = r"(?<![A-Za-z0-9_+])(?<![0-9][ .\-/:])"      # G3, left side
NUM_R = r"(?![A-Za-z0-9_])(?![ .\-/:][0-9])"          # G3, right side

EMAIL_RE = re.compile(
    r"(?<![A-Za-z0-9._%+\-])"
    r"([A-Za-z0-9_%+\-]+(?:\.[A-Za-z0-9_%+\-]+)*"
    r"@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,})"
    r"(?![A-Za-z0-9\-])(?!\.[A-Za-z0-9])")
EMAIL_ASSET_RE = re.compile(r"[0-9]+(\.[0-9]+)?x\.(png|jpg|jpeg|gif|webp|svg|avif)", re.I)

PHONE_RES = [
    # P1 international
    ("P1", re.compile(NUM_L + r"(\+[0-9]{1,3}(?:[ .\-]?(?:\([0-9]{1,4}\)|[0-9]{1,5}))+)" + NUM_R),
     (8, 15)),
    # P2 NANP
    ("P2", re.compile(NUM_L + r"((?:1[ .\-])?(?:\([2-9][0-9]{2}\) ?|[2-9][0-9]{2}[ .\-])"
                      r"[2-9][0-9]{2}[ .\-][0-9]{4})" + NUM_R), (10, 11)),
    # P3 trunk-zero national
    ("P3", re.compile(NUM_L + r"(0[1-9][0-9]{1,3}(?:[ .\-][0-9]{3,8}){1,3})" + NUM_R), (10, 11)),
    # P4 Chinese mobile
    ("P4", re.compile(NUM_L + r"((?:\+86[ .\-]?)?1[3-9][0-9](?:[0-9]{8}|[ .\-][0-9]{4}[ .\-][0-9]{4}))"
                      + NUM_R), (11, 13)),
]

CARD_RES = [
    re.compile(NUM_L + r"([2-6][0-9]{12,18})" + NUM_R),
    re.compile(NUM_L + r"([2-6][0-9]{3}([ \-])[0-9]{4}\2[0-9]{4}\2[0-9]{1,4})" + NUM_R),
    re.compile(NUM_L + r"([2-6][0-9]{3}([ \-])[0-9]{4}\2[0-9]{4}\2[0-9]{4}\2[0-9]{1,3})" + NUM_R),
    re.compile(NUM_L + r"([2-6][0-9]{3}([ \-])[0-9]{6}\2[0-9]{4,5})" + NUM_R),
]

CN_ID_RE = re.compile(NUM_L + r"([0-9]{17}[0-9Xx])" + NUM_R)

IPV4_RE = re.compile(r"(?<![A-Za-z0-9_.])([0-9]{1,3}(?:\.[0-9]{1,3}){3})(?![A-Za-z0-9_])(?!\.[0-9])")
IPV4_OCTET = re.compile(r"0|[1-9][0-9]{0,2}")
IPV6_RE = re.compile(r"(?<![A-Za-z0-9_.:])([0-9A-Fa-f:]*:[0-9A-Fa-f:]*)(?![A-Za-z0-9_:])(?!\.[A-Za-z0-9])")


def ipv6_ok(run: str) -> bool:
    if not re.search(r"[0-9A-Fa-f]", run) or run.count(":") < 2:
        return False
    if run.count("::") > 1 or ":::" in run:
        return False
    if "::" in run:
        left, right = run.split("::")
        groups = [g for g in (left.split(":") if left else []) + (right.split(":") if right else [])]
        if len(groups) > 7:
            return False
    else:
        groups = run.split(":")
        if len(groups) != 8:
            return False
    if not all(re.fullmatch(r"[0-9A-Fa-f]{1,4}", g) for g in groups):
        return False
    ipaddress.IPv6Address(run)  # cross-check with the stdlib; raises if we disagree
    return True


def detect(text: str):
    """Return a sorted list of (type, start, end) per the docstring rules."""
    found = set()
    for m in EMAIL_RE.finditer(text):
        dom = m.group(1).split("@", 1)[1]
        if EMAIL_ASSET_RE.fullmatch(dom):
            continue
        found.add(("EMAIL", m.start(1), m.end(1)))
    phones = []
    for _, rx, (lo, hi) in PHONE_RES:
        for m in rx.finditer(text):
            nd = sum(c.isdigit() for c in m.group(1))
            if lo <= nd <= hi:
                phones.append((m.start(1), m.end(1)))
    for s, e in phones:  # keep only phone matches not contained in a longer one
        if not any((s2 <= s and e <= e2) and (s2, e2) != (s, e) for s2, e2 in phones):
            found.add(("PHONE", s, e))
    for rx in CARD_RES:
        for m in rx.finditer(text):
            if card_valid(re.sub(r"[ \-]", "", m.group(1))):
                found.add(("CARD", m.start(1), m.end(1)))
    for m in CN_ID_RE.finditer(text):
        if cn_id_valid(m.group(1)):
            found.add(("CN_ID", m.start(1), m.end(1)))
    for m in IPV4_RE.finditer(text):
        if all(IPV4_OCTET.fullmatch(o) and int(o) <= 255 for o in m.group(1).split(".")):
            found.add(("IP", m.start(1), m.end(1)))
    for m in IPV6_RE.finditer(text):
        if ipv6_ok(m.group(1)):
            found.add(("IP", m.start(1), m.end(1)))
    return sorted(found, key=lambda t: (t[1], t[2], t[0]))


# ----------------------------------------------------------------------------
# value generators
# ----------------------------------------------------------------------------

rng = random.Random(SEED)


def cycle(items):
    """Endless shuffled cycle: every item is used before any repeats."""
    items = list(items)
    while True:
        order = items[:]
        rng.shuffle(order)
        for it in order:
            yield it


def digits(n):
    return "".join(rng.choice("0123456789") for _ in range(n))


FIRST = ["alice", "bob", "carol", "david", "emma", "frank", "grace", "henry", "maria", "omar",
         "priya", "kenji", "sofia", "lucas", "nina", "tom"]
LAST = ["smith", "jones", "garcia", "nguyen", "mueller", "rossi", "tanaka", "okafor", "silva", "kim"]
PINYIN = [("wei", "zhang"), ("na", "li"), ("fang", "wang"), ("jie", "chen"), ("yang", "liu"),
          ("min", "zhao"), ("lei", "huang"), ("jing", "zhou")]
DOMAINS = ["example.com", "example.org", "example.net", "mail.example.com", "example.co.uk",
           "example.cn", "corp.example.io", "acme-widgets.com", "dept.example.edu", "mx.example.de",
           "163.example.cn", "example.com.cn"]


def gen_email(fmt):
    f, l = rng.choice(FIRST), rng.choice(LAST)
    if rng.random() < 0.35:
        f, l = rng.choice(PINYIN)
    d = rng.choice(DOMAINS)
    n = rng.randint(1, 99)
    return {
        "plain": f"{f}@{d}",
        "dotted": f"{f}.{l}@{d}",
        "initial": f"{f[0]}{l}@{d}",
        "under": f"{f}_{l}{n}@{d}",
        "tag": f"{f}+{rng.choice(['news', 'billing', 'test', 'jd2024'])}@{d}",
        "caps": f"{f.capitalize()}.{l.capitalize()}@{d.upper() if rng.random() < .5 else d.title()}",
        "role": f"{rng.choice(['support', 'billing', 'hr', 'noreply', 'sales'])}@{d}",
        "pct": f"{l}.{f}{n}@{d}",
    }[fmt]


EMAIL_FMTS = ["plain", "dotted", "initial", "under", "tag", "caps", "role", "pct"]


def nanp_area():
    return rng.choice(["415", "212", "646", "312", "617", "206", "303", "512", "702", "919"])


def gen_phone(fmt):
    dd = f"{rng.randint(0, 99):02d}"
    ddd = f"{rng.randint(0, 999):03d}"
    a = nanp_area()
    cn_pfx = rng.choice(["13", "15", "17", "18", "19", "14", "16"]) + str(rng.randint(0, 9))
    cn = cn_pfx + digits(8)
    return {
        "intl_uk_london": f"+44 20 7946 0{ddd}",
        "intl_uk_mobile": f"+44 7700 900{ddd}",
        "intl_us_paren": f"+1 ({a}) 555-01{dd}",
        "intl_us_space": f"+1 {a} 555 01{dd}",
        "intl_us_dash": f"+1-{a}-555-01{dd}",
        "intl_fr": f"+33 1 {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)}",
        "intl_de": f"+49 30 {digits(3)} {digits(4)}",
        "intl_jp": f"+81 3-{digits(4)}-{digits(4)}",
        "intl_au": f"+61 2 {digits(4)} {digits(4)}",
        "us_paren": f"({a}) 555-01{dd}",
        "us_paren_tight": f"({a})555-01{dd}",
        "us_dash": f"{a}-555-01{dd}",
        "us_dot": f"{a}.555.01{dd}",
        "us_space": f"{a} 555 01{dd}",
        "us_tollfree": f"1-800-555-01{dd}",
        "uk_london": f"020 7946 0{ddd}",
        "uk_manchester": f"0161 496 0{ddd}",
        "uk_mobile": f"07700 900{ddd}",
        "cn_landline_bj": f"010-{digits(4)} {digits(4)}",
        "cn_landline_sh": f"021-{rng.randint(5, 6)}{digits(7)}",
        "cn_bare": cn,
        "cn_space": f"{cn[:3]} {cn[3:7]} {cn[7:]}",
        "cn_dash": f"{cn[:3]}-{cn[3:7]}-{cn[7:]}",
        "cn_86_bare": f"+86 {cn}",
        "cn_86_space": f"+86 {cn[:3]} {cn[3:7]} {cn[7:]}",
        "cn_86_dash": f"+86-{cn[:3]}-{cn[3:7]}-{cn[7:]}",
        "cn_86_tight": f"+86{cn}",
    }[fmt]


PHONE_FMTS = ["intl_uk_london", "intl_uk_mobile", "intl_us_paren", "intl_us_space", "intl_us_dash",
              "intl_fr", "intl_de", "intl_jp", "intl_au", "us_paren", "us_paren_tight", "us_dash",
              "us_dot", "us_space", "us_tollfree", "uk_london", "uk_manchester", "uk_mobile",
              "cn_landline_bj", "cn_landline_sh", "cn_bare", "cn_space", "cn_dash", "cn_86_bare",
              "cn_86_space", "cn_86_dash", "cn_86_tight"]


def hexg(lo=1, hi=4):
    s = "".join(rng.choice("0123456789abcdef") for _ in range(rng.randint(lo, hi))).lstrip("0")
    return s or "0"


def gen_ipv4(kind):
    if kind == "private10":
        return f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    if kind == "private192":
        return f"192.168.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    if kind == "private172":
        return f"172.{rng.randint(16, 31)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    if kind == "doc":
        return rng.choice(["192.0.2", "198.51.100", "203.0.113"]) + f".{rng.randint(1, 254)}"
    if kind == "loopback":
        return "127.0.0.1"
    if kind == "public":
        return f"{rng.choice([8, 34, 52, 91, 104, 151, 185, 223])}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}"
    raise KeyError(kind)


def gen_ipv6(kind):
    if kind == "doc_short":
        return f"2001:db8::{hexg()}"
    if kind == "doc_mid":
        return f"2001:db8:{hexg()}:{hexg()}::{hexg()}"
    if kind == "doc_full":
        return "2001:0db8:" + ":".join(f"{rng.randint(0, 0xffff):04x}" for _ in range(6))
    if kind == "doc_upper":
        return f"2001:DB8:{hexg().upper()}::{hexg().upper()}"
    if kind == "link_local":
        return "fe80::" + ":".join(hexg() for _ in range(4))
    if kind == "loopback":
        return "::1"
    if kind == "uncompressed":
        return "2001:db8:" + ":".join(hexg() for _ in range(6))
    if kind == "ula":
        return f"fd{rng.randint(0, 255):02x}:{hexg(3, 4)}:{hexg(3, 4)}::{hexg()}"
    raise KeyError(kind)


IP_FMTS = ["v4:private10", "v4:private192", "v4:private172", "v4:doc", "v4:loopback", "v4:public",
           "v6:doc_short", "v6:doc_mid", "v6:doc_full", "v6:doc_upper", "v6:link_local",
           "v6:loopback", "v6:uncompressed", "v6:ula"]


def gen_ip(fmt):
    fam, kind = fmt.split(":")
    return gen_ipv4(kind) if fam == "v4" else gen_ipv6(kind)


CARD_BRANDS = [  # (name, prefix chooser, length, grouping)
    ("visa16", lambda: "4" + digits(5), 16, "4444"),
    ("visa13", lambda: "4" + digits(5), 13, None),   # 13-digit Visa: written contiguously only
    ("visa19", lambda: "4" + digits(5), 19, "44443"),
    ("mc5", lambda: str(rng.randint(51, 55)) + digits(4), 16, "4444"),
    ("mc2", lambda: str(rng.randint(2221, 2720)) + digits(2), 16, "4444"),
    ("amex", lambda: rng.choice(["34", "37"]) + digits(4), 15, "465"),
    ("diners", lambda: rng.choice(["300", "301", "305", "36", "38"]).ljust(6, "0")[:3] + digits(3), 14, "464"),
    ("discover", lambda: rng.choice(["6011", "65" + digits(2), str(rng.randint(644, 649)) + digits(1)]) + digits(2), 16, "4444"),
    ("jcb", lambda: str(rng.randint(3528, 3589)) + digits(2), 16, "4444"),
    ("unionpay16", lambda: "62" + digits(4), 16, "4444"),
    ("unionpay19", lambda: "62" + digits(4), 19, "44443"),
]


def card_number(brand, valid=True):
    name, pfx, length, grouping = brand
    while True:
        partial = pfx()
        partial = partial + digits(length - 1 - len(partial))
        cd = luhn_check_digit(partial)
        if not valid:
            cd = str((int(cd) + rng.randint(1, 9)) % 10)
        num = partial + cd
        if luhn_ok(num) == valid:
            return num, grouping


def group(num, grouping, sep):
    sizes = [int(c) for c in grouping]
    out, i = [], 0
    for s in sizes:
        out.append(num[i:i + s])
        i += s
    assert i == len(num), (num, grouping)
    return sep.join(out)


def gen_card(fmt):
    brand = CARD_BRANDS[int(fmt.split(":")[0])]
    style = fmt.split(":")[1]
    num, grouping = card_number(brand)
    if style == "plain" or grouping is None:
        return num
    return group(num, grouping, " " if style == "space" else "-")


CARD_FMTS = [f"{i}:{st}" for i in range(len(CARD_BRANDS)) for st in ("plain", "space", "dash")]

REGIONS = ["110101", "110105", "110108", "120101", "130102", "140105", "150102", "210102",
           "220102", "230103", "310104", "310115", "320102", "330106", "340104", "350203",
           "360102", "370202", "410105", "420106", "430104", "440106", "440305", "450103",
           "460105", "500103", "510107", "520102", "530102", "540102", "610113", "620102",
           "630102", "640104", "650102", "810000", "820000"]


def rand_date(y0=1950, y1=2010):
    start = datetime.date(y0, 1, 1).toordinal()
    end = datetime.date(y1, 12, 31).toordinal()
    return datetime.date.fromordinal(rng.randint(start, end)).strftime("%Y%m%d")


def gen_cn_id(fmt):
    while True:
        first17 = rng.choice(REGIONS) + rand_date() + digits(3)
        cc = cn_check_char(first17)
        if fmt == "X" and cc != "X":
            continue
        if fmt == "digit" and cc == "X":
            continue
        s = first17 + cc
        if fmt == "x_lower":
            if cc != "X":
                continue
            s = first17 + "x"
        if card_valid(s):   # avoid CN_ID/CARD collisions (rule G5)
            continue
        return s


CN_ID_FMTS = ["digit"] * 6 + ["X", "X", "x_lower"]

GEN = {"EMAIL": (gen_email, EMAIL_FMTS), "PHONE": (gen_phone, PHONE_FMTS), "IP": (gen_ip, IP_FMTS),
       "CARD": (gen_card, CARD_FMTS), "CN_ID": (gen_cn_id, CN_ID_FMTS)}

# ----------------------------------------------------------------------------
# positive templates ({x} = the PII item)
# ----------------------------------------------------------------------------

POS_TEMPLATES = {
    "EMAIL": [
        "Please email me at {x} tomorrow.",
        "Send the signed contract to {x}.",
        "Reply-To: <{x}>",
        "For refunds contact {x}, we usually answer within 2 days.",
        "Her work address is {x} (not the personal one).",
        "2024-03-08T10:15:22Z INFO password reset requested for user={x} status=sent",
        "1042,Jordan,{x},active,2023-11-02",
        "\"email\": \"{x}\", \"verified\": true",
        "You can reach the on-call team via mailto:{x} at any time",
        "Invoice #A-2291 was sent to '{x}' on Monday.",
        "From: \"Zhang Wei\" <{x}>",
        "CC {x} on anything related to the Q3 audit",
        "I changed my login to {x}",
        "请发邮件至{x}，我们会尽快回复。",
        "联系邮箱：{x}",
        "如有疑问请联系 {x} 谢谢",
        "客户邮箱（{x}）已验证。",
        "简历请投递到「{x}」。",
        "用户{x}于昨天注册成功",
    ],
    "PHONE": [
        "Call me at {x} tomorrow.",
        "You can reach the front desk on {x}.",
        "Phone: {x}",
        "2024-03-08 09:12:44 WARN sms delivery to {x} failed, retrying",
        "42,Jordan Lee,{x},Berlin",
        "Leave a message at {x} if nobody picks up",
        "Emergency contact (mobile): {x}, ask for Sam",
        "\"phone\": \"{x}\"",
        "For bookings ring {x} before noon",
        "My new number is {x}.",
        "Text \"STOP\" to unsubscribe or call {x} for help",
        "Tel. {x} (ext. 214)",
        "Customer called from {x} about order A-17",
        "我的手机号是{x}，请联系",
        "联系电话：{x}",
        "如有问题请拨打 {x} 咨询。",
        "收件人：王先生，电话{x}，地址见备注",
        "客服热线（{x}）工作日开放",
        "请于明天致电{x}确认预约",
    ],
    "IP": [
        "Connection refused from {x}",
        "2024-03-08T09:12:44Z INFO GET /login 200 client={x} latency=12ms",
        "The database host is {x}.",
        "Failed password for root from {x} port 52214 ssh2",
        "Whitelisted address: {x}",
        "Please add {x} to the allow list",
        "edge,{x},us-east,healthy",
        "\"remote_addr\": \"{x}\"",
        "Our VPN assigned me {x} today",
        "ping {x} returned 4 packets",
        "Blocked suspicious requests (source {x}) at the WAF",
        "Set DNS to {x} and restart",
        "服务器地址是{x}，请勿外泄。",
        "来自{x}的请求被拦截",
        "登录IP：{x}",
        "请将 {x} 加入白名单。",
        "网关（{x}）无响应",
        "用户最近一次登录地址为{x}",
    ],
    "IP:v4": [
        "Proxy listening on {x}:8080",
        "curl http://{x}/admin returned 403",
        "Allow {x}/32 in the security group.",
        "upstream backend {{ server {x}:9000; }}",
        "代理地址：{x}:3128",
    ],
    "IP:v6": [
        "Connect to [{x}]:443 for TLS",
        "curl http://[{x}]/health returned 200",
        "listen [{x}]:80;",
        "请访问 http://[{x}]:8080/ 进行配置",
    ],
    "CARD": [
        "Order shipped to Leeds; card {x} was charged.",
        "Please update the card on file to {x}",
        "2024-03-08 09:12:44 ERROR payment declined pan={x} reason=insufficient_funds",
        "Card number: {x}",
        "Customer read out {x} over the phone",
        "txn_77,{x},EUR,49.90",
        "\"card_number\": \"{x}\"",
        "I paid with my card ({x}) last week",
        "Refund issued to {x}.",
        "The card {x} expires at the end of the month",
        "Use {x} for the test booking, CVV in the vault",
        "Charge failed for card {x} (do not retry)",
        "我的银行卡号是{x}，请退款。",
        "信用卡：{x}",
        "付款卡号（{x}）已冻结",
        "请核对卡号 {x} 是否正确",
        "用卡{x}支付了订单",
        "退款将原路退回至「{x}」",
    ],
    "CN_ID": [
        "身份证号：{x}",
        "我的身份证号码是{x}，请核实。",
        "请核对身份证 {x} 与姓名是否一致",
        "乘车人证件号（{x}）已实名认证",
        "2024-03-08 09:12:44 INFO kyc passed id_no={x}",
        "张三,{x},北京市朝阳区",
        "\"id_card\": \"{x}\"",
        "Resident ID {x} was verified by the bank.",
        "Please enter your ID number ({x}) exactly as printed.",
        "Applicant ID: {x}",
        "The guest registered with Chinese ID {x}.",
        "证件号码{x}已过期，请更新",
        "办理人身份证「{x}」",
        "户主公民身份号码为{x}。",
        "The form listed ID {x} next to the signature",
        "请勿在群里发送身份证号{x}",
    ],
}

# ----------------------------------------------------------------------------
# negative generators (each returns a text; look-alikes only, no PII)
# ----------------------------------------------------------------------------


def neg_email():
    f, l = rng.choice(FIRST), rng.choice(LAST)
    d = rng.choice(["example", "acme-widgets", "corp.example"])
    tld = rng.choice(["com", "org", "net"])
    asset = rng.choice(["logo", "icon-home", "avatar", "banner", "btn_close", "hero"])
    ext = rng.choice(["png", "jpg", "webp", "svg", "jpeg"])
    scale = rng.choice(["2x", "3x", "1.5x"])
    pkg = rng.choice([("lodash", "4.17.21"), ("react", "18.2.0"), ("express", "4.19.2"),
                      ("typescript", "5.4.5"), ("vue", "3.4.21")])
    handle = rng.choice(["jdoe_92", "acme_support", "zhangwei", "NASA", "rustlang", "kenji.dev"])
    host = rng.choice(["localhost", "intranet", "db01", "buildbox", "gateway"])
    return [
        lambda: f"Write to {f} at {d} dot {tld} if you need anything.",
        lambda: f"Contact: {f}.{l} [at] {d} [dot] {tld}",
        lambda: f"My address is {f}(at){d}(dot){tld}, spelled out to avoid bots",
        lambda: f"Follow @{handle} for release notes",
        lambda: f"RT @{handle}: the new build is out",
        lambda: f"Retina assets: {asset}@{scale}.{ext} and {asset}.{ext}",
        lambda: f"<img src=\"/static/{asset}@{scale}.{ext}\" alt=\"\">",
        lambda: f"npm install {pkg[0]}@{pkg[1]} --save",
        lambda: f"Pinned {pkg[0]}@{pkg[1]} in package.json",
        lambda: f"npm i -D @types/node@20.11.{rng.randint(0, 30)}",
        lambda: f"Login as {f}@{host} and run the migration",
        lambda: f"ssh into {rng.choice(['root', 'deploy', 'ubuntu'])}@{host} first",
        lambda: f"Only addresses ending in @{d}.{tld} may sign up",
        lambda: f"Forward *@{d}.{tld} to the shared inbox",
        lambda: f"The regex should reject x@y.z because the TLD is one letter",
        lambda: f"Typo in the form: {f}@{d}.c was rejected",
        lambda: f"Apples {rng.randint(2, 9)} @ ${rng.randint(0, 3)}.{rng.randint(10, 99)} each",
        lambda: f"Meet @ {rng.randint(1, 11)}pm in room B",
        lambda: "Decorate the handler with @app.route('/login') and @login_required",
        lambda: "Use @staticmethod here, not @classmethod",
        lambda: f"@media (max-width: {rng.choice([480, 600, 768])}px) {{ .nav {{ display: none; }} }}",
        lambda: "Template: Dear {name}, reply to <user>@<domain>.com",
        lambda: f"请关注微博@{rng.choice(['张伟的日常', '科技早知道', 'acme_official'])}获取通知",
        lambda: f"邮箱格式为 用户名@域名，例如写成 {f} at {d} dot {tld}",
        lambda: f"头像文件{asset}@{scale}.{ext}太大了",
        lambda: f"git tag v{rng.randint(1, 5)}.{rng.randint(0, 9)}.0 then push HEAD@{{upstream}}",
        lambda: f"The user@{host} prompt means you are on the jump host",
    ]


def neg_phone():
    y = rng.randint(1960, 2025)
    mm, dd = rng.randint(1, 12), rng.randint(1, 28)
    return [
        lambda: f"The company was founded in {y} and moved in {y + rng.randint(1, 5)}.",
        lambda: f"Total: ${rng.randint(1, 9)},{rng.randint(100, 999)}.{rng.randint(10, 99)} incl. tax",
        lambda: f"价格：¥{rng.randint(1, 99)},{rng.randint(100, 999)}，包邮",
        lambda: f"Order {rng.randint(10000, 99999)} is ready for pickup",
        lambda: f"Dial extension {rng.randint(1000, 9999)} from any desk phone",
        lambda: f"Upgrade to v{rng.randint(1, 20)}.{rng.randint(0, 30)}.{rng.randint(0, 99)} before Friday",
        lambda: f"Windows build 10.0.{rng.randint(17000, 22999)}.{rng.randint(1000, 4999)} is affected",
        lambda: f"Deadline: {y}-{mm:02d}-{dd:02d}",
        lambda: f"Date of service {dd:02d}/{mm:02d}/{y}, paid in full",
        lambda: f"Invoice dated {mm:02d}-{dd:02d}-{y}",
        lambda: f"Started at {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d} and finished an hour later",
        lambda: f"We shipped {rng.randint(1, 9)},{rng.randint(100, 999)},000 units last year",
        lambda: f"The fund raised 13,800,{rng.randint(100, 999)},000 yuan in {y}",
        lambda: f"ZIP code {rng.choice(['94103', '10001', '60614', '98101'])}-{rng.randint(1000, 9999)}, USA",
        lambda: f"Postcode SW1A 1AA; the office is on floor {rng.randint(2, 30)}",
        lambda: f"邮编{rng.choice(['100080', '200030', '518057', '310012'])}，北京市海淀区",
        lambda: f"工单号{rng.choice(['10', '11', '12'])}{digits(9)}已关闭",
        lambda: f"订单编号 {rng.choice(['2', '5', '8', '9'])}{digits(10)} 已发货",
        lambda: f"快递单号 {rng.choice(['13', '15', '18'])}{digits(13)}，请查收",
        lambda: f"Unix epoch {rng.randint(1600000000, 1799999999)} marks the cutover",
        lambda: f"Invoice no. {rng.randint(3000000000, 9999999999)} is overdue",
        lambda: f"ISBN 978-0-{rng.randint(100, 999)}-{rng.randint(10000, 99999)}-{rng.randint(0, 9)}",
        lambda: f"Coordinates {rng.randint(10, 60)}.{digits(4)}, -{rng.randint(70, 125)}.{digits(4)}",
        lambda: f"Score was {rng.randint(0, 5)}-{rng.randint(0, 5)} after extra time",
        lambda: f"Stock moved +{rng.randint(1, 9)},{rng.randint(100, 999)} points (+{rng.randint(1, 9)}.{rng.randint(1, 9)}%)",
        lambda: f"{y}年{mm}月{dd}日下午{rng.randint(1, 5)}点开会",
        lambda: f"共计{rng.randint(1, 99)},{rng.randint(100, 999)}元，分{rng.randint(3, 24)}期",
        lambda: f"Flight CA{rng.randint(1000, 1999)} departs gate {rng.randint(10, 60)}",
        lambda: f"Masked phone on the receipt: 138****{digits(4)}",
        lambda: f"Batch {y}-{digits(4)}-{rng.randint(10, 99)} passed QA",
    ]


def neg_ip():
    a, b, c, d = (rng.randint(1, 9) for _ in range(4))
    return [
        lambda: f"Bump the version to {a}.{b}.{c}.{d}.{rng.randint(1, 9)} in the manifest",
        lambda: f"Invalid address {rng.randint(256, 999)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(0, 255)} rejected by the validator",
        lambda: f"192.168.{rng.randint(0, 255)}.{rng.randint(256, 999)} is not a valid host",
        lambda: f"Release date {rng.randint(2015, 2026)}.{rng.randint(1, 12):02d}.{rng.randint(1, 28):02d}",
        lambda: f"The job ran at {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d} UTC",
        lambda: f"Installed v{rng.randint(1, 12)}.{b}.{c}.{d} from the mirror",
        lambda: f"Windows 10.0.{rng.randint(17000, 22999)}.{rng.randint(1000, 4999)} needs the patch",
        lambda: f"Requires Python 3.{rng.randint(8, 13)}.{rng.randint(0, 9)} and Node {rng.randint(16, 22)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}",
        lambda: f"MAC address {':'.join(f'{rng.randint(0, 255):02x}' for _ in range(6))} was seen on the switch",
        lambda: f"Commit {''.join(rng.choice('0123456789abcdef') for _ in range(7))} fixed the leak",
        lambda: f"Magic number 0x{rng.choice(['deadbeef', 'CAFEBABE', 'feedface', 'badc0ffe'])} in the header",
        lambda: f"Hex word {rng.choice(['cafe:babe:f00d', 'dead:beef', 'face:b00c:add'])} is just a label",
        lambda: "The C++ scope operator :: resolves names; see std::vector",
        lambda: "Call Vec::new() and then HashMap::with_capacity(16)",
        lambda: f"Malformed IPv6 2001:db8:::{hexg()} was rejected",
        lambda: f"Bad literal {hexg()}::{hexg()}::{hexg()} has two double colons",
        lambda: f"Aspect ratio {rng.choice(['16:9', '4:3', '21:9'])} at {rng.choice([30, 60, 120])} fps",
        lambda: f"Read John {rng.randint(1, 9)}:{rng.randint(1, 30)} before the meeting",
        lambda: f"Section {a}.{b}.{c} of the spec covers retries",
        lambda: f"版本号{a}.{b}.{c}.{d}.{rng.randint(1, 9)}已发布",
        lambda: f"日期{rng.randint(2015, 2026)}.{rng.randint(1, 12):02d}.{rng.randint(1, 28):02d}，时间{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}",
        lambda: f"Timestamp {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}.{rng.randint(100, 999)} in the trace",
        lambda: f"Firmware {a}.{b}.{c}-rc{d} has the fix",
        lambda: f"ERROR: address 300.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(0, 255)} out of range",
    ]


def neg_card():
    brand = rng.choice(CARD_BRANDS)
    bad, grouping = card_number(brand, valid=False)
    sep = rng.choice([" ", "-", ""])
    bad_fmt = group(bad, grouping, sep) if sep and grouping else bad
    while True:
        order = rng.choice("2345") + digits(13)
        if not card_valid(order):
            break
    isbn_core = "978" + rng.choice(["0", "1", "3", "7"]) + digits(8)
    isbn = isbn_core + str((10 - sum(int(c) * (1 if i % 2 == 0 else 3) for i, c in enumerate(isbn_core)) % 10) % 10)
    return [
        lambda: f"Card {bad_fmt} was declined: the number fails the checksum",
        lambda: f"Typo check: {bad_fmt} is not a valid card number",
        lambda: f"支付失败，卡号{bad_fmt}校验不通过",
        lambda: f"Order #{rng.randint(1000000000, 1999999999)} confirmed",
        lambda: f"Order reference {order} shipped today",
        lambda: f"订单号{order}已发货",
        lambda: f"USPS tracking 9400 {' '.join(digits(4) for _ in range(4))} {digits(2)}",
        lambda: f"Tracking number 1Z{digits(3)}AA{digits(10)} (UPS)",
        lambda: f"FedEx tracking {rng.choice('789')}{digits(3)} {digits(4)} {digits(4)}",
        lambda: f"运单号 SF{digits(12)}，请查收",
        lambda: f"ISBN {isbn[:3]}-{isbn[3]}-{isbn[4:7]}-{isbn[7:12]}-{isbn[12]}",
        lambda: f"ISBN-13: {isbn}",
        lambda: f"Card on file: **** **** **** {digits(4)}",
        lambda: f"Masked PAN {rng.choice(['4', '5'])}{digits(3)} **** **** {digits(4)}",
        lambda: f"Too short to be a card: 4{digits(3)} {digits(4)} {digits(4)}",
        lambda: f"Account ref 5{digits(3)} {digits(4)} {digits(4)} {digits(4)} {digits(4)} (20 digits)",
        lambda: f"Gift code 8{digits(3)}-{digits(4)}-{digits(4)}-{digits(4)} is not a payment card",
        lambda: f"Request id {rng.choice('0179')}{digits(15)} logged",
        lambda: f"Session {''.join(rng.choice('0123456789abcdef') for _ in range(8))}-{''.join(rng.choice('0123456789abcdef') for _ in range(4))}-4{''.join(rng.choice('0123456789abcdef') for _ in range(3))}-a{''.join(rng.choice('0123456789abcdef') for _ in range(3))}-{''.join(rng.choice('0123456789abcdef') for _ in range(12))} expired",
        lambda: f"Timestamp in ms: 17{digits(11)}",
        lambda: f"Amount 4,{rng.randint(100, 999)},{rng.randint(100, 999)}.{rng.randint(10, 99)} transferred",
        lambda: f"银行卡尾号{digits(4)}的账户已绑定",
    ]


def neg_cn_id():
    def good17():
        return rng.choice(REGIONS) + rand_date() + digits(3)

    def wrong_check():
        while True:
            f17 = good17()
            cc = cn_check_char(f17)
            wrong = rng.choice([c for c in "0123456789X" if c != cc])
            s = f17 + wrong
            if not card_valid(s):
                return s

    def bad_date():
        y = rng.randint(1950, 2005)
        date = rng.choice([f"{y}13{rng.randint(1, 28):02d}", f"{y}00{rng.randint(1, 28):02d}",
                           f"{y}{rng.randint(1, 12):02d}32", f"{y}{rng.randint(1, 12):02d}00",
                           f"{y}0230", f"{y}0431", f"{y}0631",
                           f"{rng.choice([1999, 2001, 2003, 1990, 1987])}0229"])
        while True:
            f17 = rng.choice(REGIONS) + date + digits(3)
            s = f17 + cn_check_char(f17)
            if not card_valid(s):
                return s

    def bad_region():
        while True:
            f17 = rng.choice(["00", "99", "10", "20", "39", "90"]) + digits(4) + rand_date() + digits(3)
            s = f17 + cn_check_char(f17)
            if not card_valid(s):
                return s

    def wrong_len(n):
        while True:
            s = rng.choice(REGIONS) + rand_date() + digits(n - 14)
            if not card_valid(s):
                return s

    w, b, r = wrong_check(), bad_date(), bad_region()
    return [
        lambda: f"身份证号：{w}（校验位错误）",
        lambda: f"系统提示身份证号码{w}无效，请重新输入",
        lambda: f"ID {w} failed the MOD 11-2 check",
        lambda: f"证件号{b}中的出生日期不存在",
        lambda: f"Rejected ID {b}: impossible birth date",
        lambda: f"身份证 {r} 的地区码无效",
        lambda: f"Number {r} has no valid province code",
        lambda: f"身份证号少一位：{wrong_len(17)}",
        lambda: f"The ID field had 19 digits ({wrong_len(19)}) and was rejected",
        lambda: f"流水号{rng.choice('789')}{digits(17)}已入账",
        lambda: f"Trace id {rng.choice('789')}{digits(17)} in the gateway log",
        lambda: f"订单号 {rng.randint(2015, 2026)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}{digits(10)} 已完成",
        lambda: f"身份证号已脱敏：{rng.choice(REGIONS)}********{digits(3)}{rng.choice('0123456789X')}",
        lambda: f"Masked ID {rng.choice(REGIONS)[:3]}***********{digits(3)}X on the ticket",
    ]


NEG_GENS = {"EMAIL": neg_email, "PHONE": neg_phone, "IP": neg_ip, "CARD": neg_card, "CN_ID": neg_cn_id}


# ----------------------------------------------------------------------------
# assembly + verification
# ----------------------------------------------------------------------------

class Bad(Exception):
    pass


def check_positive(typ, span, text):
    if "\t" in text or "\n" in text:
        raise Bad("control char")
    if text.count(span) != 1:
        raise Bad(f"span occurs {text.count(span)} times")
    i = text.index(span)
    got = detect(text)
    want = [(typ, i, i + len(span))]
    if got != want:
        raise Bad(f"detector {got} != {want}")
    if typ == "CARD" and not card_valid(re.sub(r"[ \-]", "", span)):
        raise Bad("card fails Luhn/prefix")
    if typ == "CN_ID" and not cn_id_valid(span):
        raise Bad("cn_id invalid")
    if typ == "IP":
        ipaddress.ip_address(span)  # independent stdlib cross-check
    if typ == "PHONE" and not 8 <= sum(c.isdigit() for c in span) <= 15:
        raise Bad("phone digit count")


SHAPE_CARD = re.compile(r"(?<![0-9A-Za-z])[0-9](?:[0-9]|[ \-](?=[0-9])){11,30}(?![0-9A-Za-z])")
SHAPE_CN = re.compile(r"(?<![0-9A-Za-z])[0-9]{17}[0-9Xx](?![0-9A-Za-z])")


def check_negative(typ, text):
    if "\t" in text or "\n" in text:
        raise Bad("control char")
    got = detect(text)
    if got:
        raise Bad(f"negative has detections {got}")
    # explicit check-digit failures for right-shaped look-alikes
    if typ == "CARD":
        for m in SHAPE_CARD.finditer(text):
            ds = re.sub(r"[ \-]", "", m.group(0))
            if 13 <= len(ds) <= 19 and ds[0] in "23456" and luhn_ok(ds):
                # allowed only when the layout is not a card layout (e.g. 4-digit groups
                # continuing past 19 digits) -- never happens for 13-19 digit runs
                raise Bad(f"card-shaped {m.group(0)!r} passes Luhn")
    if typ == "CN_ID":
        for m in SHAPE_CN.finditer(text):
            if cn_id_valid(m.group(0)):
                raise Bad(f"cn-id-shaped {m.group(0)!r} is valid")
    return True


def build():
    rows = []
    seen = set()
    redraws = {}
    for typ in TYPES:
        gen, fmts = GEN[typ]
        tcyc, fcyc = cycle(POS_TEMPLATES[typ]), cycle(fmts)
        if typ == "IP":   # family-specific templates (ports, brackets) per address family
            fam_cyc = {f: cycle(POS_TEMPLATES[typ] + POS_TEMPLATES["IP:" + f]) for f in ("v4", "v6")}
        n, tries = 0, 0
        while n < N_POS:
            tries += 1
            if tries > N_POS * 50:
                raise SystemExit(f"cannot build positives for {typ}")
            fmt = next(fcyc)
            tpl = next(fam_cyc[fmt.split(":")[0]]) if typ == "IP" else next(tcyc)
            x = gen(fmt)
            text = tpl.replace("{x}", x).replace("{{", "{").replace("}}", "}")
            if text in seen:
                continue
            try:
                check_positive(typ, x, text)
            except Bad as e:
                raise SystemExit(f"BAD POSITIVE {typ} {fmt!r} {text!r}: {e}")
            seen.add(text)
            rows.append((typ, "1", x, text))
            n += 1
        n, tries, k = 0, 0, 0
        ncount = len(NEG_GENS[typ]())
        while n < N_NEG:
            tries += 1
            if tries > N_NEG * 50:
                raise SystemExit(f"cannot build negatives for {typ}")
            makers = NEG_GENS[typ]()          # fresh random look-alikes each time
            text = makers[k % ncount]()       # round-robin over look-alike kinds
            k += 1
            if text in seen:
                continue
            try:
                check_negative(typ, text)
            except Bad as e:
                # a random digit string can collide with a rule by chance (e.g. an order
                # number that happens to be Luhn-valid): redraw; a systematic failure aborts
                idx = (k - 1) % ncount
                redraws[(typ, idx)] = redraws.get((typ, idx), 0) + 1
                if redraws[(typ, idx)] > 5:
                    raise SystemExit(f"BAD NEGATIVE {typ} #{idx} {text!r}: {e}")
                k -= 1
                continue
            seen.add(text)
            rows.append((typ, "0", "", text))
            n += 1
    if redraws:
        print("redrawn chance collisions:", sum(redraws.values()), file=sys.stderr)
    return rows


def self_test():
    """Sanity checks of the reference detector on hand-written cases."""
    pos = [("PHONE", "Call +44 20 7946 0958 now", "+44 20 7946 0958"),
           ("PHONE", "手机13812345678请回电", "13812345678"),
           ("PHONE", "(415) 555-0132.", "(415) 555-0132"),
           ("IP", "ping ::1.", "::1"),
           ("IP", "[2001:db8::1]:443", "2001:db8::1"),
           ("IP", "host 10.0.0.5:8080", "10.0.0.5"),
           ("EMAIL", "邮箱zhang.wei@example.cn谢谢", "zhang.wei@example.cn"),
           ("EMAIL", "mail a.b@example.co.uk.", "a.b@example.co.uk"),
           ("CARD", "pan 4111 1111 1111 1111 ok", "4111 1111 1111 1111"),
           ("CARD", "amex 3782-822463-10005", "3782-822463-10005"),
           ("CN_ID", "证件11010519491231002X。", "11010519491231002X")]
    for typ, text, span in pos:
        i = text.index(span)
        assert detect(text) == [(typ, i, i + len(span))], (text, detect(text))
    neg = ["logo@2x.png", "1.2.3.4.5", "12:30:45", "2024-01-15", "4155550132", "a@b",
           "user at example dot com", "256.1.1.1", "4111 1111 1111 1112", "3,000,000",
           "9400 1111 2222 3333 4444 55", "std::io", "C++ :: operator", "lodash@4.17.21",
           "12012345678", "110105194912310021", "00:1a:2b:3c:4d:5e", "v10.2.3.4", "+5%"]
    for text in neg:
        assert detect(text) == [], (text, detect(text))
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert cn_id_valid("11010519491231002X") and not cn_id_valid("110105194912310021")


def main():
    self_test()
    rows = build()
    here = os.path.dirname(os.path.abspath(__file__))
    out = os.path.join(here, "labelled.tsv")
    with open(out, "w", encoding="utf-8", newline="\n") as fh:
        fh.write("type\tlabel\tspan\ttext\n")
        for r in rows:
            fh.write("\t".join(r) + "\n")
    counts = {}
    for t, l, _, _ in rows:
        counts[(t, l)] = counts.get((t, l), 0) + 1
    for t in TYPES:
        print(f"{t:6s} pos={counts.get((t, '1'), 0)} neg={counts.get((t, '0'), 0)}")
    print(f"wrote {len(rows)} rows to {out}")


if __name__ == "__main__":
    sys.exit(main())

"""An independent PII test set for duet's redactor: personal data made by `faker` (many locales)
and by libphonenumber's example numbers for every region (`phonenumbers`), plus look-alikes that
must survive (ISBNs, order and tracking numbers, version strings, dates, times, prices,
coordinates). Nothing here shares code or patterns with crates/corpus/src/pii.rs: the values come
from the two libraries, the sentences from the templates below.

Usage: python make.py > set.jsonl      (faker 37.12.0, phonenumbers 9.0.43; seeded)
Each line: {"kind": EMAIL|PHONE|IP|CARD|CN_ID|NONE, "source": how it was made, "text": a
sentence, "span": [start, end] of the value in characters (NONE: the look-alike's span)}.
"""

import json
import random

import phonenumbers
from faker import Faker
from phonenumbers import PhoneNumberFormat

random.seed(20261202)
Faker.seed(20261202)
LOCALES = ["en_US", "en_GB", "de_DE", "fr_FR", "ja_JP", "zh_CN", "es_ES", "it_IT", "pt_BR", "nl_NL"]
fakers = {loc: Faker(loc) for loc in LOCALES}

TEMPLATES = [
    "Please contact {} for details.",
    "My {} is on the form.",
    "Reach me at {} after 6pm.",
    "Kontakt: {} (Büro)",
    "Écrivez à {} avant lundi.",
    "連絡先は{}です。",
    "请联系{}，谢谢。",
    "Sent from {}",
    "{}",
    "Ticket #4821 — customer gave {} on the call.",
]


def sentence(value):
    t = random.choice(TEMPLATES)
    i = t.index("{}")
    return t[:i] + value + t[i + 2:], [i, i + len(value)]


def emit(kind, source, value):
    text, span = sentence(value)
    print(json.dumps({"kind": kind, "source": source, "text": text, "span": span}, ensure_ascii=False))


for loc, f in fakers.items():
    for _ in range(20):
        emit("EMAIL", f"faker {loc} email", f.email())
    for _ in range(10):
        emit("EMAIL", f"faker {loc} company_email", f.company_email())
    for _ in range(15):
        emit("PHONE", f"faker {loc} phone_number", f.phone_number())

f = fakers["en_US"]
for _ in range(100):
    emit("IP", "faker ipv4", f.ipv4())
for _ in range(100):
    emit("IP", "faker ipv6", f.ipv6())
for card in ["visa16", "visa13", "mastercard", "amex", "discover", "jcb16", "diners", "maestro"]:
    for _ in range(15):
        emit("CARD", f"faker credit_card_number {card}", f.credit_card_number(card_type=card))
for _ in range(100):
    emit("CN_ID", "faker zh_CN ssn", fakers["zh_CN"].ssn())

# libphonenumber's example numbers, every region and kind, in its three written formats.
for region in sorted(phonenumbers.SUPPORTED_REGIONS):
    for t in [phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE]:
        n = phonenumbers.example_number_for_type(region, t)
        if n is None:
            continue
        for fmt, name in [(PhoneNumberFormat.INTERNATIONAL, "international"),
                          (PhoneNumberFormat.E164, "e164"), (PhoneNumberFormat.NATIONAL, "national")]:
            emit("PHONE", f"phonenumbers {region} {t} {name}", phonenumbers.format_number(n, fmt))

# Look-alikes that are not personal data.
for _ in range(60):
    emit("NONE", "faker isbn13", f.isbn13())
    emit("NONE", "faker isbn10", f.isbn10())
for _ in range(60):
    emit("NONE", "order number", f"{random.randint(10**7, 10**10 - 1)}")
    emit("NONE", "tracking number", f"1Z{random.randint(10**15, 10**16 - 1)}")
    emit("NONE", "version", f"{random.randint(0, 20)}.{random.randint(0, 30)}.{random.randint(0, 99)}")
    emit("NONE", "faker date", f.date())
    emit("NONE", "faker time", f.time())
    emit("NONE", "price", f"${random.randint(1, 99999):,}.{random.randint(0, 99):02d}")
    emit("NONE", "faker coordinate", f"{f.latitude()}, {f.longitude()}")
    emit("NONE", "faker year range", f"{random.randint(1900, 2000)}-{random.randint(2001, 2030)}")

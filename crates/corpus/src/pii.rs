//! PII redaction: e-mail addresses, phone numbers, IP addresses, payment cards and Chinese
//! resident ID numbers become typed placeholders such as `<EMAIL>`.
//!
//! Rules, chosen for precision on real text (a labelled set in `testdata/pii/` holds them):
//! - EMAIL: `local@domain.tld` with a letter TLD of two or more; image names such as
//!   `logo@2x.png` are not addresses.
//! - PHONE: international numbers (`+` and a country code, 8-15 digits); North American
//!   `(415) 555-0132`, `415-555-0132`, `415.555.0132`, `415 555 0132`; national numbers with a
//!   trunk `0` and separators (`020 7946 0958`); Chinese mobiles (`1[3-9]` + 9 digits, bare or
//!   grouped 3-4-4). A bare run of digits that fits none of these (order numbers, years) is not
//!   a phone number.
//! - IP: dotted IPv4 with octets up to 255, not part of a longer dotted run (`1.2.3.4.5` is a
//!   version); IPv6 as `std::net::Ipv6Addr` parses it, with at least three colons or `::1`.
//! - CARD: 13-19 digits (Maestro: 12-19), bare or grouped by single spaces or dashes, passing
//!   the Luhn check and starting with a card network's prefix at a length that network issues.
//! - CN_ID: 17 digits and a check character (digit or X) passing ISO 7064 MOD 11-2, with a
//!   province code and a real birth date.
//!
//! A match must not touch letters or digits on either side.

use std::collections::BTreeMap;
use std::net::Ipv6Addr;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The kinds of personal data duet redacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiKind {
    /// E-mail addresses.
    Email,
    /// Phone numbers.
    Phone,
    /// IPv4 and IPv6 addresses.
    Ip,
    /// Payment card numbers.
    Card,
    /// Chinese resident identity card numbers.
    CnId,
}

impl PiiKind {
    /// Every kind, in the order matches are preferred when they overlap.
    pub const ALL: [PiiKind; 5] = [Self::Email, Self::Ip, Self::CnId, Self::Card, Self::Phone];

    /// The placeholder that replaces a match.
    pub fn placeholder(self) -> &'static str {
        match self {
            Self::Email => "<EMAIL>",
            Self::Phone => "<PHONE>",
            Self::Ip => "<IP>",
            Self::Card => "<CARD>",
            Self::CnId => "<CN_ID>",
        }
    }

    /// The name used in configs and reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Phone => "phone",
            Self::Ip => "ip",
            Self::Card => "card",
            Self::CnId => "cn_id",
        }
    }

    /// Parses a config name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// One piece of personal data found in a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PiiMatch {
    /// What it is.
    pub kind: PiiKind,
    /// Byte offset of the first character.
    pub start: usize,
    /// Byte offset after the last character.
    pub end: usize,
}

/// Finds and replaces personal data. Build once, share across threads.
#[derive(Debug, Clone)]
pub struct Redactor {
    kinds: Vec<PiiKind>,
    email: Regex,
    ipv4: Regex,
    ipv6: Regex,
    cn_id: Regex,
    card: Regex,
    phone: Regex,
}

/// Image and asset extensions that look like e-mail TLDs in `name@2x.png`.
const ASSET_TLDS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico", "tif", "tiff",
];

/// Chinese province-level codes: the first two digits of a resident ID.
const CN_PROVINCES: &[u32] = &[
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52,
    53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83, 91,
];

impl Redactor {
    /// A redactor for the kinds named (`email`, `phone`, `ip`, `card`, `cn_id`; empty: all).
    pub fn new(kinds: &[String]) -> Result<Self> {
        let kinds = if kinds.is_empty() {
            PiiKind::ALL.to_vec()
        } else {
            let mut v = kinds
                .iter()
                .map(|k| {
                    PiiKind::from_name(k).ok_or_else(|| {
                        Error::Config(format!(
                            "pii.kinds: unknown kind {k:?}; expected email, phone, ip, card or cn_id"
                        ))
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            v.sort_by_key(|k| PiiKind::ALL.iter().position(|a| a == k));
            v
        };
        let re = |p: &str| Regex::new(p).map_err(|e| Error::Config(format!("pii pattern: {e}")));
        Ok(Self {
            kinds,
            email: re(
                r"[A-Za-z0-9][A-Za-z0-9._%+\-]*@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,24}",
            )?,
            ipv4: re(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}")?,
            ipv6: re(
                r"[0-9A-Fa-f:]*:[0-9A-Fa-f:]*[0-9A-Fa-f:](?:\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})?",
            )?,
            cn_id: re(r"\d{17}[\dXx]")?,
            card: re(
                r"\d{4}(?:[ \-]\d{4}){3}(?:[ \-]\d{1,3})?|\d{4}[ \-]\d{6}[ \-]\d{4,5}|\d{12,19}",
            )?,
            phone: re(concat!(
                r"\+\d{1,3}(?:[ \-.]?\(\d{1,4}\))?(?:[ \-.]?\d{1,5}){1,5}",
                r"|(?:1[ \-.])?\(\d{3}\)[ \-.]?\d{3}[ \-.]\d{4}",
                r"|(?:1[ \-.])?\d{3}[\-. ]\d{3}[\-. ]\d{4}",
                r"|0[1-9]\d{1,3}(?:[ \-]\d{3,8}){1,3}",
                r"|1[3-9]\d(?:[ \-]?\d{4}){2}",
            ))?,
        })
    }

    /// Finds every match, left to right, without overlaps (earlier kinds in [`PiiKind::ALL`]
    /// win ties, longer matches win overlaps).
    pub fn find(&self, text: &str) -> Vec<PiiMatch> {
        let mut found: Vec<PiiMatch> = Vec::new();
        for &kind in &self.kinds {
            let candidates: Vec<(usize, usize)> = match kind {
                PiiKind::Email => self.candidates(&self.email, text, email_ok),
                PiiKind::Ip => {
                    // An address may be followed by a port (`:8080`) or a path or prefix (`/32`).
                    let mut v = self.candidates_joined(&self.ipv6, text, &['.'], ipv6_ok);
                    v.extend(self.candidates_joined(&self.ipv4, text, &['.'], ipv4_ok));
                    v
                }
                PiiKind::CnId => self.candidates(&self.cn_id, text, |s, _, _| cn_id_ok(s)),
                PiiKind::Card => self.candidates(&self.card, text, |s, _, _| card_ok(s)),
                PiiKind::Phone => self.candidates(&self.phone, text, |s, _, _| phone_ok(s)),
            };
            for (start, end) in candidates {
                if found.iter().all(|m| end <= m.start || start >= m.end) {
                    found.push(PiiMatch { kind, start, end });
                }
            }
        }
        found.sort_by_key(|m| m.start);
        found
    }

    /// Matches of `re` that pass the boundary rule and `ok(matched, text, start)`. Every start
    /// position is tried, so a rejected match does not hide a valid one that overlaps it.
    fn candidates(
        &self,
        re: &Regex,
        text: &str,
        ok: impl Fn(&str, &str, usize) -> bool,
    ) -> Vec<(usize, usize)> {
        self.candidates_joined(re, text, &['.', '-', '/', '@'], ok)
    }

    /// Like [`Self::candidates`], naming the characters that, followed by a letter or digit,
    /// join a match to what follows it.
    fn candidates_joined(
        &self,
        re: &Regex,
        text: &str,
        joiners_after: &[char],
        ok: impl Fn(&str, &str, usize) -> bool,
    ) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < text.len() {
            let Some(m) = re.find_at(text, pos) else {
                break;
            };
            let (s, e) = (m.start(), m.end());
            if bounded(text, s, e, joiners_after) && ok(m.as_str(), text, s) {
                out.push((s, e));
                pos = e;
            } else {
                pos = s + text[s..].chars().next().map_or(1, char::len_utf8);
            }
        }
        out
    }

    /// Replaces every match by its placeholder; returns the new text and counts per kind.
    pub fn redact(&self, text: &str) -> (String, BTreeMap<PiiKind, u64>) {
        let matches = self.find(text);
        let mut counts = BTreeMap::new();
        if matches.is_empty() {
            return (text.to_owned(), counts);
        }
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for m in matches {
            out.push_str(&text[last..m.start]);
            out.push_str(m.kind.placeholder());
            *counts.entry(m.kind).or_insert(0) += 1;
            last = m.end;
        }
        out.push_str(&text[last..]);
        (out, counts)
    }
}

/// The boundary rule: no ASCII letter or digit (or `_`) touches the match, and no `.`, `-` or
/// `/` joins it to another letter or digit (which would make it part of a longer token); which
/// characters join after the match depends on the kind.
fn bounded(text: &str, start: usize, end: usize, joiners_after: &[char]) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    if word(before) || word(after) {
        return false;
    }
    let joined_before = matches!(before, Some('.' | '-' | '/' | '+' | '@'))
        && text[..start]
            .chars()
            .rev()
            .nth(1)
            .is_some_and(|c| c.is_ascii_alphanumeric());
    let joined_after = after.is_some_and(|c| joiners_after.contains(&c))
        && text[end..]
            .chars()
            .nth(1)
            .is_some_and(|c| c.is_ascii_alphanumeric());
    !joined_before && !joined_after
}

fn email_ok(m: &str, _: &str, _: usize) -> bool {
    let Some((local, domain)) = m.rsplit_once('@') else {
        return false;
    };
    let tld = domain.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    !local.ends_with('.') && !local.contains("..") && !ASSET_TLDS.contains(&tld.as_str())
}

fn ipv4_ok(m: &str, _: &str, _: usize) -> bool {
    m.split('.')
        .all(|o| o.parse::<u16>().is_ok_and(|v| v <= 255) && (o == "0" || !o.starts_with('0')))
}

fn ipv6_ok(m: &str, _: &str, _: usize) -> bool {
    let colons = m.matches(':').count();
    (colons >= 3 || m == "::1") && m.parse::<Ipv6Addr>().is_ok()
}

/// Digits of a match, separators removed.
fn digits(m: &str) -> Vec<u32> {
    m.chars().filter_map(|c| c.to_digit(10)).collect()
}

/// The Luhn checksum.
pub fn luhn(d: &[u32]) -> bool {
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            if i % 2 == 1 {
                if x * 2 > 9 { x * 2 - 9 } else { x * 2 }
            } else {
                x
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn card_ok(m: &str) -> bool {
    let sep: Vec<char> = m.chars().filter(|c| !c.is_ascii_digit()).collect();
    if sep.windows(2).any(|w| w[0] != w[1]) {
        return false;
    }
    let d = digits(m);
    let n = d.len();
    if !(12..=19).contains(&n) || !luhn(&d) {
        return false;
    }
    let prefix = |k: usize| d[..k].iter().fold(0u32, |a, &x| a * 10 + x);
    let (p1, p2, p4) = (prefix(1), prefix(2), prefix(4));
    // Maestro: 12 to 19 digits.
    if matches!(
        p4,
        5018 | 5020 | 5038 | 5893 | 6304 | 6390 | 6759 | 6761..=6763
    ) || (56..=58).contains(&p2)
    {
        return true;
    }
    if n == 12 {
        return false;
    }
    match p1 {
        4 => matches!(n, 13 | 16 | 19),          // Visa
        3 if p2 == 34 || p2 == 37 => n == 15,    // Amex
        3 if p2 == 35 => (16..=19).contains(&n), // JCB
        3 if matches!(p2, 30 | 36 | 38 | 39) => (14..=19).contains(&n), // Diners
        5 if (51..=55).contains(&p2) => n == 16, // Mastercard
        2 if (2221..=2720).contains(&p4) => n == 16, // Mastercard
        6 if p4 == 6011 || p2 == 65 || (644..=649).contains(&prefix(3)) => (16..=19).contains(&n), // Discover
        6 if p2 == 62 => (16..=19).contains(&n), // UnionPay
        _ => false,
    }
}

/// ISO 7064 MOD 11-2 check character of a Chinese resident ID.
pub fn cn_id_check(first17: &[u32]) -> char {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = first17.iter().zip(W).map(|(d, w)| d * w).sum();
    ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'][(sum % 11) as usize]
}

fn cn_id_ok(m: &str) -> bool {
    let d: Vec<u32> = m.chars().take(17).filter_map(|c| c.to_digit(10)).collect();
    if d.len() != 17 {
        return false;
    }
    let check = m.chars().nth(17).map(|c| c.to_ascii_uppercase());
    if check != Some(cn_id_check(&d)) || !CN_PROVINCES.contains(&(d[0] * 10 + d[1])) {
        return false;
    }
    let num = |r: std::ops::Range<usize>| d[r].iter().fold(0u32, |a, &x| a * 10 + x);
    let (y, mo, day) = (num(6..10), num(10..12), num(12..14));
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match mo {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1900..=2099).contains(&y) && (1..=days).contains(&day)
}

fn phone_ok(m: &str) -> bool {
    let d = digits(m);
    let n = d.len();
    let separated = m.chars().any(|c| !c.is_ascii_digit() && c != '+');
    if m.starts_with('+') {
        return (8..=15).contains(&n);
    }
    // Chinese mobile: 1[3-9] and 9 more digits, bare or grouped 3-4-4.
    if n == 11 && d[0] == 1 && (3..=9).contains(&d[1]) && !m.contains(['(', '.']) {
        let groups: Vec<usize> = m.split([' ', '-']).map(str::len).collect();
        if groups == [11] || groups == [3, 4, 4] {
            return true;
        }
    }
    // North American: optional 1, then area code and exchange not starting with 0 or 1.
    let nanp = if n == 11 && d[0] == 1 {
        &d[1..]
    } else {
        &d[..]
    };
    if nanp.len() == 10 && separated {
        return nanp[0] >= 2 && nanp[3] >= 2;
    }
    // Trunk-zero national numbers need a separator.
    d[0] == 0 && (10..=11).contains(&n) && separated
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(PiiKind, String)> {
        let r = Redactor::new(&[]).unwrap();
        r.find(text)
            .into_iter()
            .map(|m| (m.kind, text[m.start..m.end].to_owned()))
            .collect()
    }

    #[test]
    fn twelve_digits_are_a_card_only_with_a_maestro_prefix() {
        // Luhn-valid both; only the first starts as Maestro issues.
        assert_eq!(
            kinds("paid with 501823351520 today"),
            [(PiiKind::Card, "501823351520".into())]
        );
        assert!(luhn(&digits("123456789015")));
        assert!(kinds("order 123456789015 shipped").is_empty());
    }

    #[test]
    fn each_kind_is_found() {
        use PiiKind::*;
        assert_eq!(
            kinds("mail jane.doe+x@mail.example.co.uk now"),
            [(Email, "jane.doe+x@mail.example.co.uk".into())]
        );
        assert_eq!(
            kinds("call +44 20 7946 0958."),
            [(Phone, "+44 20 7946 0958".into())]
        );
        assert_eq!(
            kinds("call (415) 555-0132 today"),
            [(Phone, "(415) 555-0132".into())]
        );
        assert_eq!(
            kinds("我的手机号是13812345678，请联系"),
            [(Phone, "13812345678".into())]
        );
        assert_eq!(kinds("host 192.168.1.20 up"), [(Ip, "192.168.1.20".into())]);
        assert_eq!(
            kinds("v6 2001:db8::1 and ::1"),
            [(Ip, "2001:db8::1".into()), (Ip, "::1".into())]
        );
        assert_eq!(
            kinds("card 4111 1111 1111 1111 ok"),
            [(Card, "4111 1111 1111 1111".into())]
        );
        assert_eq!(
            kinds("amex 3782-822463-10005"),
            [(Card, "3782-822463-10005".into())]
        );
        assert_eq!(
            kinds("身份证11010519491231002X。"),
            [(CnId, "11010519491231002X".into())]
        );
    }

    #[test]
    fn look_alikes_are_left_alone() {
        for s in [
            "version 1.2.3.4.5 released",
            "256.1.1.1 is not an address",
            "on 2024-01-15 at 12:30:45",
            "logo@2x.png",
            "order 4111111111111112 shipped",
            "ISBN 978-3-16-148410-0",
            "id 110105194912310021",
            "pop. 3,000,000 in 1999",
            "tracking 12345678901",
            "std::vector<int> a::b",
        ] {
            assert_eq!(kinds(s), [], "{s}");
        }
    }

    #[test]
    fn redact_replaces_and_counts() {
        let r = Redactor::new(&["email".into(), "ip".into()]).unwrap();
        let (t, c) = r.redact("a@b.org from 10.0.0.1, b@c.net; +1 415 555 0132");
        assert_eq!(t, "<EMAIL> from <IP>, <EMAIL>; +1 415 555 0132");
        assert_eq!(c[&PiiKind::Email], 2);
        assert!(Redactor::new(&["ssn".into()]).is_err());
    }

    #[test]
    fn checksums() {
        assert!(luhn(&digits("4111111111111111")));
        assert!(!luhn(&digits("4111111111111112")));
        assert_eq!(cn_id_check(&digits("11010519491231002")), 'X');
    }
}

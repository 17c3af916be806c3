//! Rasa's `DucklingEntityExtractor`: numbers, amounts of money, dates and times, e-mail
//! addresses and more from a Duckling server (`POST {url}/parse`, as Rasa calls it), or, where
//! no Duckling server exists and the project asks for it (`builtin: true` under the component
//! in `config.yml`, or `DUET_DUCKLING=builtin` at `duet dialog train`), from duet's own
//! extractor of e-mail addresses, numbers, amounts of money and dates.
//!
//! Entities look as Rasa makes them from Duckling's answer: the dimension as the entity type
//! (`number`, `amount-of-money`, `time`, `email`), `value` the answer's value, the unit (or
//! grain) in `additional_info`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::tracker::Entity;

/// What `config.yml` says about Duckling.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DucklingSettings {
    /// The Duckling server (`http://localhost:8000`).
    pub url: Option<String>,
    /// Dimensions to keep (empty: all).
    pub dimensions: Vec<String>,
    /// Extract with duet's own rules instead of a server.
    pub builtin: bool,
    /// Duckling's locale (default `en_US`).
    pub locale: Option<String>,
    /// Duckling's time zone.
    pub timezone: Option<String>,
}

impl DucklingSettings {
    /// The settings of `config.yml`'s `DucklingEntityExtractor`, if it lists one.
    pub fn of(config: &crate::project::Config) -> Option<Self> {
        let c = config
            .pipeline
            .iter()
            .find(|c| c.get("name").and_then(Value::as_str) == Some("DucklingEntityExtractor"))?;
        let env_builtin = std::env::var("DUET_DUCKLING").is_ok_and(|v| v == "builtin");
        Some(Self {
            url: c.get("url").and_then(Value::as_str).map(str::to_owned),
            dimensions: c
                .get("dimensions")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            builtin: env_builtin || c.get("builtin").and_then(Value::as_bool) == Some(true),
            locale: c.get("locale").and_then(Value::as_str).map(str::to_owned),
            timezone: c.get("timezone").and_then(Value::as_str).map(str::to_owned),
        })
    }

    /// Why the configured server cannot be used, if it cannot: it does not answer.
    pub fn check_server(&self) -> Option<String> {
        if self.builtin {
            return None;
        }
        let Some(url) = &self.url else {
            return Some(
                "DucklingEntityExtractor names no url; set `url:` or `builtin: true`".into(),
            );
        };
        let agent = agent(Duration::from_secs(2));
        match agent.get(url).call() {
            Ok(_) => None,
            Err(e) => Some(format!(
                "DucklingEntityExtractor: no Duckling server answers at {url} ({e}); start one \
                 (`docker run -p 8000:8000 rasa/duckling`), or add `builtin: true` under the \
                 component in config.yml (or set DUET_DUCKLING=builtin when training) for duet's \
                 own extraction of e-mails, numbers, amounts of money and dates"
            )),
        }
    }

    /// The entities of `text`.
    pub fn extract(&self, text: &str) -> Vec<Entity> {
        let found = if self.builtin {
            builtin(text)
        } else {
            self.ask_server(text)
        };
        found
            .into_iter()
            .filter(|e| self.dimensions.is_empty() || self.dimensions.contains(&e.entity))
            .collect()
    }

    /// Asks the Duckling server, as Rasa does; a server that does not answer is logged once.
    fn ask_server(&self, text: &str) -> Vec<Entity> {
        static WARNED: AtomicBool = AtomicBool::new(false);
        let Some(url) = &self.url else {
            return Vec::new();
        };
        let mut form = vec![
            ("text", text.to_owned()),
            (
                "locale",
                self.locale.clone().unwrap_or_else(|| "en_US".to_owned()),
            ),
        ];
        if let Some(tz) = &self.timezone {
            form.push(("tz", tz.clone()));
        }
        let body: String = form
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let endpoint = format!("{}/parse", url.trim_end_matches('/'));
        let answer = agent(Duration::from_secs(3))
            .post(&endpoint)
            .header(
                "Content-Type",
                "application/x-www-form-urlencoded; charset=UTF-8",
            )
            .send(body)
            .and_then(|mut r| r.body_mut().read_to_string());
        let text_json = match answer {
            Ok(t) => t,
            Err(e) => {
                if !WARNED.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        "DucklingEntityExtractor: the Duckling server at {endpoint} did not answer ({e}); no Duckling entities"
                    );
                }
                return Vec::new();
            }
        };
        let Ok(Value::Array(matches)) = serde_json::from_str::<Value>(&text_json) else {
            return Vec::new();
        };
        matches
            .iter()
            .filter_map(|m| {
                let dim = m.get("dim")?.as_str()?.to_owned();
                let v = m.get("value")?;
                Some(entity(
                    &dim,
                    v.clone(),
                    m.get("start")?.as_u64()? as usize,
                    m.get("end")?.as_u64()? as usize,
                ))
            })
            .collect()
    }
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build(),
    )
}

/// Percent-encodes a form value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An entity as Rasa makes it from a Duckling match: `value` the answer's value, the whole
/// answer (value, unit, grain, type) in `additional_info`.
fn entity(dim: &str, info: Value, start: usize, end: usize) -> Entity {
    let value = info.get("value").cloned().unwrap_or_else(|| info.clone());
    Entity {
        entity: dim.to_owned(),
        value,
        start: Some(start),
        end: Some(end),
        extractor: Some("DucklingEntityExtractor".into()),
        role: None,
        additional_info: Some(info),
    }
}

const SMALL: &[&str] = &[
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
const TENS: &[&str] = &[
    "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
];
const MONTHS: &[&str] = &[
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
const WEEKDAYS: &[&str] = &[
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// A number written in words (`twenty five`), if `w` is one.
fn word_number(w: &str) -> Option<f64> {
    let mut total = 0.0;
    let mut any = false;
    for part in w.split(['-', ' ']).filter(|p| !p.is_empty()) {
        if let Some(i) = SMALL.iter().position(|s| *s == part) {
            total += i as f64;
        } else if let Some(i) = TENS.iter().position(|s| !s.is_empty() && *s == part) {
            total += 10.0 * i as f64;
        } else if part == "hundred" {
            total = total.max(1.0) * 100.0;
        } else {
            return None;
        }
        any = true;
    }
    any.then_some(total)
}

fn number_value(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        json!(x as i64)
    } else {
        json!(x)
    }
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of days since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Duckling's answer for a day.
fn day_info(days: i64) -> Value {
    let v = iso_day(days);
    json!({"value": v, "grain": "day", "type": "value", "values": [{"value": v, "grain": "day", "type": "value"}]})
}

fn iso_day(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T00:00:00.000+00:00")
}

/// duet's own extraction: e-mail addresses, amounts of money, dates, numbers (in that order;
/// a number inside an amount or a date is not reported again).
pub fn builtin(text: &str) -> Vec<Entity> {
    builtin_at(text, crate::tracker::now())
}

/// [`builtin`] with "today" at `now` (seconds since the epoch).
pub fn builtin_at(text: &str, now: f64) -> Vec<Entity> {
    let today = (now / 86_400.0).floor() as i64;
    let mut out: Vec<Entity> = Vec::new();
    let mut taken: Vec<(usize, usize)> = Vec::new();
    let chars = |b: usize| text[..b].chars().count();
    let mut add = |out: &mut Vec<Entity>, s: usize, e: usize, dim: &str, v: Value| {
        if taken.iter().any(|&(a, b)| s < b && a < e) {
            return;
        }
        taken.push((s, e));
        out.push(entity(dim, v, chars(s), chars(e)));
    };
    let patterns: [(&str, &str); 6] = [
        ("email", r"(?i)\b[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}\b"),
        (
            "amount-of-money",
            r"(?i)(?:([$€£])\s?(\d+(?:[.,]\d+)?)|\b(\d+(?:[.,]\d+)?)\s?(dollars?|usd|euros?|eur|pounds?|gbp|bucks)\b)",
        ),
        ("time-iso", r"\b(\d{4})-(\d{2})-(\d{2})\b"),
        (
            "time-words",
            r"(?i)\b(today|tonight|tomorrow|yesterday|(?:next |this |on )?(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)|in (\d+) days?)\b",
        ),
        (
            "time-month",
            r"(?i)\b(january|february|march|april|may|june|july|august|september|october|november|december)\s+(\d{1,2})(?:st|nd|rd|th)?\b|\b(\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?(january|february|march|april|may|june|july|august|september|october|november|december)\b",
        ),
        (
            "number",
            r"(?i)\b\d+(?:\.\d+)?\b|\b(?:(?:twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)(?:[- ](?:one|two|three|four|five|six|seven|eight|nine))?|zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen)\b",
        ),
    ];
    for (dim, pat) in patterns {
        let Ok(re) = Regex::new(pat) else { continue };
        // Matched on the text itself (the patterns ignore case): lower-casing can change
        // byte offsets.
        for c in re.captures_iter(text) {
            let Some(m) = c.get(0) else { continue };
            let (s, e) = (m.start(), m.end());
            match dim {
                "email" => add(
                    &mut out,
                    s,
                    e,
                    "email",
                    json!({"value": &text[s..e], "type": "value"}),
                ),
                "amount-of-money" => {
                    let num = c.get(2).or(c.get(3)).map(|m| m.as_str().replace(',', "."));

                    if let Some(x) = num.and_then(|n| n.parse::<f64>().ok()) {
                        // Duckling's units: `$` for dollars, ISO codes for the others.
                        let unit = match c
                            .get(1)
                            .or(c.get(4))
                            .map(|m| m.as_str().to_lowercase())
                            .as_deref()
                        {
                            Some("$" | "dollar" | "dollars" | "usd" | "bucks") => "$",
                            Some("€" | "euro" | "euros" | "eur") => "EUR",
                            Some("£" | "pound" | "pounds" | "gbp") => "GBP",
                            _ => "unknown",
                        };
                        let info = json!({"value": number_value(x), "type": "value", "unit": unit});
                        add(&mut out, s, e, "amount-of-money", info);
                    }
                }
                "time-iso" => {
                    let n = |i: usize| c.get(i).and_then(|m| m.as_str().parse::<i64>().ok());
                    if let (Some(y), Some(mo), Some(d)) = (n(1), n(2), n(3))
                        && (1..=12).contains(&mo)
                        && (1..=31).contains(&d)
                    {
                        add(&mut out, s, e, "time", day_info(days_from_civil(y, mo, d)));
                    }
                }
                "time-words" => {
                    let w = m.as_str().to_lowercase();
                    let w = w.as_str();
                    let day = if w == "today" || w == "tonight" {
                        Some(today)
                    } else if w == "tomorrow" {
                        Some(today + 1)
                    } else if w == "yesterday" {
                        Some(today - 1)
                    } else if let Some(n) = c.get(2).and_then(|m| m.as_str().parse::<i64>().ok()) {
                        Some(today + n)
                    } else {
                        // 1970-01-01 was a Thursday (index 3).
                        WEEKDAYS.iter().position(|d| w.ends_with(d)).map(|wd| {
                            let now_wd = (today + 3).rem_euclid(7);
                            let mut ahead = (wd as i64 - now_wd).rem_euclid(7);
                            if ahead == 0 || w.starts_with("next") {
                                ahead += if ahead == 0 { 7 } else { 0 };
                            }
                            today + ahead
                        })
                    };
                    if let Some(d) = day {
                        add(&mut out, s, e, "time", day_info(d));
                    }
                }
                "time-month" => {
                    let month = c.get(1).or(c.get(4)).map(|m| m.as_str().to_lowercase());
                    let day = c
                        .get(2)
                        .or(c.get(3))
                        .and_then(|m| m.as_str().parse::<i64>().ok());
                    if let (Some(mn), Some(d)) = (month, day)
                        && let Some(mi) = MONTHS.iter().position(|x| *x == mn.as_str())
                        && (1..=31).contains(&d)
                    {
                        let (y, _, _) = civil_from_days(today);
                        let mut when = days_from_civil(y, mi as i64 + 1, d);
                        if when < today {
                            when = days_from_civil(y + 1, mi as i64 + 1, d);
                        }
                        add(&mut out, s, e, "time", day_info(when));
                    }
                }
                _ => {
                    let w = m.as_str().to_lowercase();
                    let w = w.as_str();
                    let x = w.parse::<f64>().ok().or_else(|| word_number(w));
                    if let Some(x) = x {
                        add(
                            &mut out,
                            s,
                            e,
                            "number",
                            json!({"value": number_value(x), "type": "value"}),
                        );
                    }
                }
            }
        }
    }
    out.sort_by_key(|e| e.start);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<(String, Value)> {
        // 2024-03-01 (a Friday) at noon.
        builtin_at(text, 1_709_294_400.0)
            .into_iter()
            .map(|e| (e.entity, e.value))
            .collect()
    }

    #[test]
    fn builtin_finds_emails_numbers_amounts_and_dates() {
        assert_eq!(
            found("mail ada@example.org about 3 tables"),
            [
                ("email".to_owned(), json!("ada@example.org")),
                ("number".to_owned(), json!(3))
            ]
        );
        assert_eq!(
            found("pay $50.5 now"),
            [("amount-of-money".to_owned(), json!(50.5))]
        );
        assert_eq!(
            found("send 20 euros"),
            [("amount-of-money".to_owned(), json!(20))]
        );
        assert_eq!(
            found("twenty five people"),
            [("number".to_owned(), json!(25))]
        );
        assert_eq!(
            found("tomorrow please"),
            [("time".to_owned(), json!("2024-03-02T00:00:00.000+00:00"))]
        );
        assert_eq!(
            found("on monday"),
            [("time".to_owned(), json!("2024-03-04T00:00:00.000+00:00"))]
        );
        assert_eq!(
            found("from 2022-04-12"),
            [("time".to_owned(), json!("2022-04-12T00:00:00.000+00:00"))]
        );
        assert_eq!(
            found("april 3rd"),
            [("time".to_owned(), json!("2024-04-03T00:00:00.000+00:00"))]
        );
    }

    #[test]
    fn builtin_keeps_offsets_in_text_whose_lower_case_is_longer() {
        // "İ" lower-cases to two characters: offsets must come from the text itself.
        let es = builtin_at("İİİ pay $5 on MONDAY ٣", 1_709_294_400.0);
        let text = "İİİ pay $5 on MONDAY ٣";
        let words: Vec<String> = es
            .iter()
            .map(|e| {
                text.chars()
                    .skip(e.start.unwrap_or(0))
                    .take(e.end.unwrap_or(0) - e.start.unwrap_or(0))
                    .collect()
            })
            .collect();
        assert_eq!(words, ["$5", "on MONDAY"]);
    }

    #[test]
    fn a_server_that_does_not_answer_is_named_in_the_message() {
        let s = DucklingSettings {
            url: Some("http://127.0.0.1:9".into()),
            ..Default::default()
        };
        let why = s.check_server().unwrap_or_default();
        assert!(
            why.contains("http://127.0.0.1:9") && why.contains("builtin: true"),
            "{why}"
        );
        assert!(s.extract("3 people").is_empty());
    }
}

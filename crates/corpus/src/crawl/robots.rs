//! robots.txt (RFC 9309): the group for our user agent (or `*`), `Allow` and `Disallow` rules
//! with `*` and `$`, the longest match deciding and `Allow` winning a tie; `Crawl-delay`.

/// The rules of one site for one user agent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Robots {
    /// `(allow, pattern)` in file order.
    rules: Vec<(bool, String)>,
    /// Seconds to wait between requests, when the site asks.
    pub crawl_delay: Option<f64>,
}

impl Robots {
    /// Parses a robots.txt for the user agent whose product token is `agent`.
    pub fn parse(text: &str, agent: &str) -> Self {
        let agent = agent.to_ascii_lowercase();
        // Groups: the user agents named, then their rules.
        let mut groups: Vec<(Vec<String>, Robots)> = Vec::new();
        let mut in_agents = false;
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or_default().trim();
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let (key, value) = (key.trim().to_ascii_lowercase(), value.trim());
            match key.as_str() {
                "user-agent" => {
                    if !in_agents {
                        groups.push((Vec::new(), Robots::default()));
                    }
                    in_agents = true;
                    if let Some((agents, _)) = groups.last_mut() {
                        agents.push(value.to_ascii_lowercase());
                    }
                }
                "allow" | "disallow" => {
                    in_agents = false;
                    if let Some((_, r)) = groups.last_mut()
                        && !value.is_empty()
                    {
                        r.rules.push((key == "allow", value.to_owned()));
                    }
                }
                "crawl-delay" => {
                    in_agents = false;
                    if let Some((_, r)) = groups.last_mut() {
                        r.crawl_delay = value.parse().ok().filter(|d: &f64| d.is_finite());
                    }
                }
                _ => {}
            }
        }
        let named = groups
            .iter()
            .filter(|(agents, _)| {
                agents
                    .iter()
                    .any(|a| a != "*" && agent.starts_with(a.as_str()))
            })
            .map(|(_, r)| r.clone())
            .reduce(merge);
        named
            .or_else(|| {
                groups
                    .iter()
                    .filter(|(agents, _)| agents.iter().any(|a| a == "*"))
                    .map(|(_, r)| r.clone())
                    .reduce(merge)
            })
            .unwrap_or_default()
    }

    /// Whether a path (with its query) may be fetched.
    pub fn allowed(&self, path: &str) -> bool {
        let mut best: Option<(usize, bool)> = None;
        for (allow, pattern) in &self.rules {
            if matches(pattern, path) {
                let len = pattern.len();
                if best.is_none_or(|(l, a)| len > l || (len == l && *allow && !a)) {
                    best = Some((len, *allow));
                }
            }
        }
        best.is_none_or(|(_, allow)| allow)
    }
}

/// Two groups for the same agent count as one.
fn merge(mut a: Robots, b: Robots) -> Robots {
    a.rules.extend(b.rules);
    a.crawl_delay = a.crawl_delay.or(b.crawl_delay);
    a
}

/// Whether a robots.txt pattern matches the start of a path: `*` is any run, `$` the end.
fn matches(pattern: &str, path: &str) -> bool {
    let (pattern, anchored) = match pattern.strip_suffix('$') {
        Some(p) => (p, true),
        None => (pattern, false),
    };
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = path.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        if last && anchored {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(p) => rest = &rest[p + part.len()..],
            None => return false,
        }
    }
    !anchored || rest.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_match_wins_and_allow_wins_ties() {
        let r = Robots::parse(
            "User-agent: other\nDisallow: /\n\nUser-agent: *\nDisallow: /private/\nAllow: /private/open\nDisallow: /*.pdf$\nCrawl-delay: 2\n",
            "duet",
        );
        assert!(r.allowed("/index.html"));
        assert!(!r.allowed("/private/x.html"));
        assert!(r.allowed("/private/open.html"));
        assert!(!r.allowed("/docs/a.pdf"));
        assert!(r.allowed("/docs/a.pdf?x=1"));
        assert_eq!(r.crawl_delay, Some(2.0));
    }

    #[test]
    fn a_group_naming_us_replaces_the_star_group() {
        let r = Robots::parse(
            "User-agent: *\nDisallow: /\n\nUser-agent: duet\nDisallow: /x\n",
            "duet/0.1",
        );
        assert!(r.allowed("/a") && !r.allowed("/x/y"));
    }
}

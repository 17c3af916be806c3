//! Main-text extraction from HTML: a real parser (html5ever through `scraper`), boilerplate
//! removal by element, role, class and link density, headings and paragraph breaks kept.

use ego_tree::NodeRef;
use scraper::{ElementRef, Html, Node, Selector};

/// What the extractor found in one page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extracted {
    /// The `<title>`, if any.
    pub title: Option<String>,
    /// The main text: headings as `# ...` lines, paragraphs separated by blank lines.
    pub text: String,
}

/// Elements that never hold main text.
const SKIP_TAGS: &[&str] = &[
    "script", "style", "noscript", "template", "iframe", "svg", "canvas", "nav", "header",
    "footer", "aside", "form", "button", "select", "input", "textarea", "head", "menu", "dialog",
    "object", "embed", "map", "audio", "video",
];

/// ARIA roles of boilerplate regions.
const SKIP_ROLES: &[&str] = &[
    "navigation",
    "banner",
    "contentinfo",
    "complementary",
    "search",
    "menu",
    "menubar",
    "dialog",
];

/// Class or id tokens (or their `-`/`_`-separated parts) that mark boilerplate.
const SKIP_CLASS_WORDS: &[&str] = &[
    "nav",
    "navbar",
    "navigation",
    "menu",
    "sidebar",
    "sphinxsidebar",
    "footer",
    "breadcrumb",
    "breadcrumbs",
    "related",
    "cookie",
    "cookies",
    "share",
    "social",
    "advert",
    "advertisement",
    "ads",
    "banner",
    "skip",
    "headerlink",
    "masthead",
    "pagination",
    "pager",
    "comments",
    "newsletter",
    "popup",
    "modal",
    "sponsor",
    "promo",
];

/// Tags that start a new block of text.
const BLOCK_TAGS: &[&str] = &[
    "p",
    "div",
    "section",
    "article",
    "main",
    "blockquote",
    "ul",
    "ol",
    "dl",
    "dd",
    "dt",
    "table",
    "tr",
    "pre",
    "figure",
    "figcaption",
    "hr",
    "address",
    "details",
    "summary",
    "body",
    "center",
];

/// Containers judged by link density: mostly links means navigation.
const LINK_DENSITY_TAGS: &[&str] = &["ul", "ol", "div", "table", "p", "dl"];

/// Extracts the title and main text of an HTML page.
pub fn extract(html: &str) -> Extracted {
    let doc = Html::parse_document(html);
    let title = Selector::parse("title").ok().and_then(|sel| {
        doc.select(&sel)
            .next()
            .map(|t| collapse(&t.text().collect::<String>()))
            .filter(|t| !t.is_empty())
    });
    let root = main_root(&doc);
    let mut out = Builder::default();
    walk(root, &mut out);
    Extracted {
        title,
        text: out.finish(),
    }
}

/// The subtree that holds the main content: `<main>`, `[role=main]`, `<article>` or `<body>`.
fn main_root(doc: &Html) -> NodeRef<'_, Node> {
    for css in [
        "main",
        "[role=main]",
        "article",
        "#main-content",
        "#content",
        "body",
    ] {
        if let Ok(sel) = Selector::parse(css)
            && let Some(el) = doc.select(&sel).next()
        {
            return *el;
        }
    }
    doc.tree.root()
}

/// Whether an element is boilerplate by tag, role, class/id or visibility.
fn is_boilerplate(el: &ElementRef<'_>) -> bool {
    let v = el.value();
    if SKIP_TAGS.contains(&v.name()) {
        return true;
    }
    if v.attr("hidden").is_some() || v.attr("aria-hidden") == Some("true") {
        return true;
    }
    if let Some(style) = v.attr("style") {
        let style = style.replace(' ', "").to_ascii_lowercase();
        if style.contains("display:none") || style.contains("visibility:hidden") {
            return true;
        }
    }
    if let Some(role) = v.attr("role")
        && SKIP_ROLES.contains(&role.to_ascii_lowercase().as_str())
    {
        return true;
    }
    let marks = v.classes().chain(v.id());
    for token in marks {
        let token = token.to_ascii_lowercase();
        if SKIP_CLASS_WORDS.contains(&token.as_str())
            || token
                .split(['-', '_'])
                .any(|part| SKIP_CLASS_WORDS.contains(&part) && part.len() > 2)
        {
            return true;
        }
    }
    false
}

/// Characters of text under `node`, and how many of them sit inside links.
fn link_density(node: NodeRef<'_, Node>) -> (usize, usize) {
    let mut total = 0;
    let mut linked = 0;
    let mut stack = vec![(node, false)];
    while let Some((n, in_link)) = stack.pop() {
        match n.value() {
            Node::Text(t) => {
                let len = t.trim().chars().count();
                total += len;
                if in_link {
                    linked += len;
                }
            }
            Node::Element(e) => {
                if matches!(e.name(), "script" | "style") {
                    continue;
                }
                let link = in_link || e.name() == "a";
                stack.extend(n.children().map(|c| (c, link)));
            }
            _ => {}
        }
    }
    (total, linked)
}

/// Depth-first walk with an explicit stack, so deeply nested pages cannot overflow.
fn walk(root: NodeRef<'_, Node>, out: &mut Builder) {
    enum Step<'a> {
        Enter(NodeRef<'a, Node>),
        Exit(&'a str),
    }
    let mut stack = vec![Step::Enter(root)];
    while let Some(step) = stack.pop() {
        match step {
            Step::Exit(tag) => out.close(tag),
            Step::Enter(node) => match node.value() {
                Node::Text(t) => out.text(t),
                Node::Element(_) => {
                    let Some(el) = ElementRef::wrap(node) else {
                        continue;
                    };
                    if node != root && is_boilerplate(&el) {
                        continue;
                    }
                    let tag = el.value().name();
                    if LINK_DENSITY_TAGS.contains(&tag) {
                        let (total, linked) = link_density(node);
                        if total >= 40 && linked * 10 >= total * 7 {
                            continue;
                        }
                    }
                    out.open(tag);
                    stack.push(Step::Exit(tag));
                    let children: Vec<_> = node.children().collect();
                    stack.extend(children.into_iter().rev().map(Step::Enter));
                }
                Node::Document => {
                    let children: Vec<_> = node.children().collect();
                    stack.extend(children.into_iter().rev().map(Step::Enter));
                }
                _ => {}
            },
        }
    }
}

/// Accumulates text with paragraph structure.
#[derive(Default)]
struct Builder {
    out: String,
    line: String,
    pre_depth: usize,
    pending_space: bool,
}

impl Builder {
    fn open(&mut self, tag: &str) {
        match tag {
            "br" => self.newline(),
            "pre" => {
                self.block();
                self.pre_depth += 1;
            }
            "li" => {
                self.newline();
                self.line.push_str("- ");
            }
            "td" | "th" if !self.line.trim().is_empty() => self.line.push_str(" | "),
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                self.block();
                let level = usize::from(tag.as_bytes()[1] - b'0');
                self.line.push_str(&"#".repeat(level));
                self.line.push(' ');
            }
            t if BLOCK_TAGS.contains(&t) => self.block(),
            _ => {}
        }
    }

    fn close(&mut self, tag: &str) {
        match tag {
            "pre" => {
                self.pre_depth = self.pre_depth.saturating_sub(1);
                self.block();
            }
            "li" | "tr" | "dt" => self.newline(),
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => self.block(),
            t if BLOCK_TAGS.contains(&t) => self.block(),
            _ => {}
        }
    }

    fn text(&mut self, t: &str) {
        if self.pre_depth > 0 {
            for (i, part) in t.split('\n').enumerate() {
                if i > 0 {
                    self.newline_keep();
                }
                self.line.push_str(part);
            }
            return;
        }
        for (i, word) in t.split_whitespace().enumerate() {
            let starts_with_space = i > 0 || t.starts_with(char::is_whitespace);
            if (starts_with_space || self.pending_space)
                && !self.line.is_empty()
                && !self.line.ends_with(' ')
            {
                self.line.push(' ');
            }
            self.pending_space = false;
            self.line.push_str(word);
        }
        if t.ends_with(char::is_whitespace) && !t.trim().is_empty() {
            self.pending_space = true;
        }
    }

    /// Ends the current line, keeping it even when it is blank (inside `<pre>`).
    fn newline_keep(&mut self) {
        self.out.push_str(self.line.trim_end());
        self.out.push('\n');
        self.line.clear();
    }

    /// Ends the current line if it holds text.
    fn newline(&mut self) {
        let trimmed = self.line.trim();
        if !trimmed.is_empty() && trimmed != "-" {
            self.out.push_str(self.line.trim_end());
            self.out.push('\n');
        }
        self.line.clear();
        self.pending_space = false;
    }

    /// Ends the paragraph: the next text starts after a blank line.
    fn block(&mut self) {
        self.newline();
        if !self.out.is_empty() && !self.out.ends_with("\n\n") {
            self.out.push('\n');
        }
    }

    fn finish(mut self) -> String {
        self.newline();
        // Drop headings with nothing after them and empty markers.
        let text = self.out.trim().to_owned();
        text.lines()
            .filter(|l| !matches!(l.trim(), "#" | "##" | "###" | "####" | "#####" | "######"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Collapses whitespace runs to single spaces and trims.
fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r##"<!DOCTYPE html><html><head><title>Sorting HOW TO</title>
<script>var x = "tracking code";</script><style>body{color:red}</style></head>
<body>
<div class="related" role="navigation"><ul><li><a href="/">index</a></li><li><a href="m">modules</a></li></ul></div>
<header><a href="/">Home</a> | <a href="/about">About</a></header>
<div class="document"><div class="body" role="main">
<h1>Sorting Techniques<a class="headerlink" href="#s">¶</a></h1>
<p>Python lists have a built-in <code>list.sort()</code> method that modifies the list
in-place.</p>
<p>There is also a <a href="f">sorted()</a> built-in function.</p>
<pre>&gt;&gt;&gt; sorted([5, 2, 3])
[2, 3, 5]</pre>
<ul><li>first point</li><li>second point</li></ul>
</div></div>
<div class="sphinxsidebar"><h3>Quick search</h3><form><input name="q"></form></div>
<footer>© Copyright 2001 Python Software Foundation.</footer>
</body></html>"##;

    #[test]
    fn keeps_main_text_headings_and_code() {
        let e = extract(PAGE);
        assert_eq!(e.title.as_deref(), Some("Sorting HOW TO"));
        let expected = "# Sorting Techniques\n\nPython lists have a built-in list.sort() method that \
modifies the list in-place.\n\nThere is also a sorted() built-in function.\n\n>>> sorted([5, 2, \
3])\n[2, 3, 5]\n\n- first point\n- second point";
        assert_eq!(e.text, expected);
    }

    #[test]
    fn drops_scripts_navigation_and_footers() {
        let e = extract(PAGE);
        for junk in [
            "tracking",
            "color:red",
            "modules",
            "About",
            "Quick search",
            "Copyright",
            "¶",
        ] {
            assert!(!e.text.contains(junk), "{junk:?} leaked into {:?}", e.text);
        }
    }

    #[test]
    fn link_lists_without_main_are_dropped() {
        let page = "<body><p>Real paragraph with enough words to be content here.</p>\
<div><a href=a>Home page link</a> <a href=b>Products and services</a> <a href=c>Contact us now</a></div></body>";
        let e = extract(page);
        assert_eq!(
            e.text,
            "Real paragraph with enough words to be content here."
        );
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        let page = format!("{}deep{}", "<div>".repeat(3_000), "</div>".repeat(3_000));
        assert_eq!(extract(&page).text, "deep");
    }
}

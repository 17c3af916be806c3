//! Sentences with entity tags, from the formats annotators and tools write:
//!
//! - **CoNLL / BIO columns** (`.conll`, `.bio`, `.txt`, `.tsv`): one token a line, the tag in the
//!   last column (or `tag_column`), a blank line between sentences, `-DOCSTART-` lines skipped.
//!   IOB1 (CoNLL-2003's original) and BIOES tags are rewritten to IOB2.
//! - **Rasa NLU YAML** (`.yml`, `.yaml`): `nlu:` items whose `examples` carry inline
//!   annotations, `[Berlin](city)`, `[Berlin](city:Berlin Mitte)` or
//!   `[Berlin]{"entity": "city", "value": "..."}`.
//! - **JSONL** (`.jsonl`, `.json`): `{"tokens": [..], "tags": [..]}` (the Hugging Face datasets
//!   layout, tags as strings), `{"text": "...", "entities": [{"start", "end", "entity"}]}`
//!   (character offsets, as Rasa and spaCy write them), or `{"text": "... [Berlin](city) ..."}`.
//!
//! Every sentence becomes words with byte offsets into its text and one IOB2 tag per word, so
//! that training, evaluation and extraction share one word split.

use std::path::Path;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use duet_model::predict::windows::split_words;

use crate::classify::data::decode;
use crate::{Error, Result};

/// One sentence: its text, its words as byte ranges of the text, and an IOB2 tag per word.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sentence {
    /// Stable id: `<file>:<line>`.
    pub id: String,
    /// The plain text (annotations removed).
    pub text: String,
    /// Byte ranges of the words in `text`.
    pub words: Vec<(usize, usize)>,
    /// `O`, `B-<type>` or `I-<type>`, one per word.
    pub tags: Vec<String>,
}

impl Sentence {
    /// The words as strings.
    pub fn word_strs(&self) -> Vec<&str> {
        self.words.iter().map(|&(s, e)| &self.text[s..e]).collect()
    }
}

/// An entity as a byte range of a text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mention {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
    /// The entity type.
    pub kind: String,
}

/// Which reader to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// From the file name: `.yml`/`.yaml` Rasa, `.jsonl`/`.json` JSON lines, else CoNLL.
    #[default]
    Auto,
    /// Token-per-line columns.
    Conll,
    /// Rasa NLU YAML.
    Rasa,
    /// JSON lines.
    Jsonl,
}

/// Reads tagged sentences from `path`; `tag_column` picks a CoNLL column (default: the last).
pub fn load(path: &Path, format: Format, tag_column: Option<usize>) -> Result<Vec<Sentence>> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let text = decode(&bytes);
    let name = path.to_string_lossy().to_lowercase();
    let format = match format {
        Format::Auto if name.ends_with(".yml") || name.ends_with(".yaml") => Format::Rasa,
        Format::Auto if name.ends_with(".jsonl") || name.ends_with(".json") => Format::Jsonl,
        Format::Auto => Format::Conll,
        f => f,
    };
    let file = path.display().to_string();
    let out = match format {
        Format::Rasa => read_rasa(&file, &text)?,
        Format::Jsonl => read_jsonl(&file, &text)?,
        _ => read_conll(&file, &text, tag_column)?,
    };
    if out.is_empty() {
        return Err(Error::Config(format!("{file}: no sentences found")));
    }
    Ok(out)
}

/// Reads CoNLL-style columns.
pub fn read_conll(file: &str, text: &str, tag_column: Option<usize>) -> Result<Vec<Sentence>> {
    let mut out = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut tags: Vec<String> = Vec::new();
    let mut first_line = 0;
    let flush = |words: &mut Vec<String>, tags: &mut Vec<String>, line: usize, out: &mut Vec<_>| {
        if !words.is_empty() {
            out.push(from_words(
                format!("{file}:{line}"),
                std::mem::take(words),
                &to_iob2(&std::mem::take(tags)),
            ));
        }
    };
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with("-DOCSTART-") {
            flush(&mut words, &mut tags, first_line, &mut out);
            continue;
        }
        if words.is_empty() {
            first_line = n + 1;
        }
        let cols: Vec<&str> = line.split_whitespace().collect();
        let col = match tag_column {
            Some(c) => c,
            None if cols.len() >= 2 => cols.len() - 1,
            None => {
                return Err(Error::Config(format!(
                    "{file}:{}: expected a token and a tag separated by white space, found {line:?}",
                    n + 1
                )));
            }
        };
        let tag = cols.get(col).ok_or_else(|| {
            Error::Config(format!(
                "{file}:{}: no column {col} (the line has {} columns)",
                n + 1,
                cols.len()
            ))
        })?;
        check_tag(tag).map_err(|why| Error::Config(format!("{file}:{}: {why}", n + 1)))?;
        words.push(cols[0].to_owned());
        tags.push((*tag).to_owned());
    }
    flush(&mut words, &mut tags, first_line, &mut out);
    Ok(out)
}

/// A tag must be `O` or `B-`, `I-`, `E-`, `S-` and a type.
fn check_tag(tag: &str) -> std::result::Result<(), String> {
    if tag == "O" {
        return Ok(());
    }
    match tag.split_once('-') {
        Some((p, k)) if matches!(p, "B" | "I" | "E" | "S" | "L" | "U") && !k.is_empty() => Ok(()),
        _ => Err(format!(
            "tag {tag:?} is not O or B-/I-/E-/S- followed by a type"
        )),
    }
}

/// Rewrites IOB1 and BIOES tags as IOB2: an entity's first word is `B-`, the rest `I-`.
pub fn to_iob2(tags: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(tags.len());
    let mut prev: Option<String> = None;
    for t in tags {
        let (p, k) = match t.split_once('-') {
            Some((p, k)) if t != "O" => (p, k.to_owned()),
            _ => {
                out.push("O".to_owned());
                prev = None;
                continue;
            }
        };
        let begins = match p {
            "B" | "S" | "U" => true,
            _ => prev.as_deref() != Some(k.as_str()),
        };
        out.push(format!("{}-{k}", if begins { "B" } else { "I" }));
        // An entity that ends here (E-/S-/L-/U-) is closed.
        prev = if matches!(p, "E" | "S" | "L" | "U") {
            None
        } else {
            Some(k)
        };
    }
    out
}

/// A sentence from words and their tags (the text is the words joined by spaces).
fn from_words(id: String, words: Vec<String>, tags: &[String]) -> Sentence {
    let mut text = String::new();
    let mut spans = Vec::with_capacity(words.len());
    for w in &words {
        if !text.is_empty() {
            text.push(' ');
        }
        spans.push((text.len(), text.len() + w.len()));
        text.push_str(w);
    }
    Sentence {
        id,
        text,
        words: spans,
        tags: tags.to_vec(),
    }
}

/// A sentence from a text and its entity mentions: words from `split_words`, tagged `B-`/`I-`
/// where they overlap a mention.
pub fn from_mentions(id: String, text: String, mentions: &[Mention]) -> Sentence {
    let words = split_words(&text);
    let mut tags = vec!["O".to_owned(); words.len()];
    for m in mentions {
        let mut first = true;
        for (i, &(s, e)) in words.iter().enumerate() {
            if s < m.end && e > m.start {
                tags[i] = format!("{}-{}", if first { "B" } else { "I" }, m.kind);
                first = false;
            }
        }
    }
    Sentence {
        id,
        text,
        words,
        tags,
    }
}

static INLINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"\[(?P<text>[^\]\[]+)\](?:\((?P<entity>[^)]+)\)|(?P<json>\{[^}]*\}))"#)
        .unwrap_or_else(|e| panic!("the inline-annotation pattern is valid: {e}"))
});

/// Removes Rasa inline annotations from `text`, returning the plain text and the mentions.
pub fn parse_inline(text: &str) -> std::result::Result<(String, Vec<Mention>), String> {
    let mut plain = String::with_capacity(text.len());
    let mut mentions = Vec::new();
    let mut last = 0;
    for c in INLINE.captures_iter(text) {
        let all = c.get(0).map_or(0..0, |m| m.range());
        plain.push_str(&text[last..all.start]);
        last = all.end;
        let value = &c["text"];
        let kind = if let Some(e) = c.name("entity") {
            // `(city)` or the old synonym form `(city:Berlin Mitte)`.
            e.as_str().split(':').next().unwrap_or("").trim().to_owned()
        } else {
            let json = c.name("json").map_or("", |m| m.as_str());
            let v: serde_json::Value = serde_json::from_str(json)
                .map_err(|e| format!("annotation {json}: invalid JSON: {e}"))?;
            v.get("entity")
                .and_then(|e| e.as_str())
                .ok_or_else(|| format!("annotation {json}: no \"entity\" key"))?
                .to_owned()
        };
        if kind.is_empty() {
            return Err(format!("annotation {:?}: empty entity type", &text[all]));
        }
        let start = plain.len();
        plain.push_str(value);
        mentions.push(Mention {
            start,
            end: plain.len(),
            kind,
        });
    }
    plain.push_str(&text[last..]);
    Ok((plain, mentions))
}

/// Rasa's `nlu:` file.
#[derive(Debug, Deserialize)]
struct RasaNlu {
    #[serde(default)]
    nlu: Vec<RasaItem>,
}

/// One `nlu:` item; only intents carry annotated examples.
#[derive(Debug, Deserialize)]
struct RasaItem {
    #[serde(default)]
    intent: Option<String>,
    #[serde(default)]
    examples: Option<String>,
}

/// Reads the annotated examples of a Rasa NLU YAML file.
pub fn read_rasa(file: &str, text: &str) -> Result<Vec<Sentence>> {
    let nlu: RasaNlu = serde_saphyr::from_str(text)
        .map_err(|e| Error::Config(format!("{file}: not Rasa NLU YAML: {e}")))?;
    let mut out = Vec::new();
    for item in nlu.nlu {
        let (Some(intent), Some(examples)) = (item.intent, item.examples) else {
            continue;
        };
        for (k, line) in examples.lines().enumerate() {
            let Some(ex) = line.trim().strip_prefix("- ") else {
                continue;
            };
            let (plain, mentions) = parse_inline(ex.trim()).map_err(|why| {
                Error::Config(format!("{file}: intent {intent}, example {}: {why}", k + 1))
            })?;
            out.push(from_mentions(
                format!("{file}:{intent}#{}", k + 1),
                plain,
                &mentions,
            ));
        }
    }
    Ok(out)
}

/// One JSON line: tokens and tags, or a text with entities (or inline annotations).
#[derive(Debug, Deserialize)]
struct JsonSentence {
    #[serde(default)]
    tokens: Option<Vec<String>>,
    #[serde(default, alias = "ner_tags", alias = "labels")]
    tags: Option<Vec<String>>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    entities: Option<Vec<JsonEntity>>,
}

/// An entity with character offsets.
#[derive(Debug, Deserialize)]
struct JsonEntity {
    start: usize,
    end: usize,
    #[serde(alias = "label", alias = "type")]
    entity: String,
}

/// Reads JSON lines.
pub fn read_jsonl(file: &str, text: &str) -> Result<Vec<Sentence>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = |why: String| Error::Config(format!("{file}:{}: {why}", n + 1));
        let j: JsonSentence =
            serde_json::from_str(line).map_err(|e| at(format!("invalid JSON: {e}")))?;
        let id = format!("{file}:{}", n + 1);
        match (j.tokens, j.tags, j.text) {
            (Some(tokens), Some(tags), _) => {
                if tokens.len() != tags.len() {
                    return Err(at(format!(
                        "{} tokens but {} tags",
                        tokens.len(),
                        tags.len()
                    )));
                }
                for t in &tags {
                    check_tag(t).map_err(at)?;
                }
                out.push(from_words(id, tokens, &to_iob2(&tags)));
            }
            (_, _, Some(text)) => {
                let (plain, mentions) = match j.entities {
                    Some(es) => {
                        let chars: Vec<usize> = text
                            .char_indices()
                            .map(|(b, _)| b)
                            .chain(std::iter::once(text.len()))
                            .collect();
                        let byte = |c: usize| {
                            chars.get(c).copied().ok_or_else(|| {
                                at(format!(
                                    "entity offset {c} is past the text's {} characters",
                                    chars.len() - 1
                                ))
                            })
                        };
                        let ms = es
                            .into_iter()
                            .map(|e| {
                                Ok(Mention {
                                    start: byte(e.start)?,
                                    end: byte(e.end)?,
                                    kind: e.entity,
                                })
                            })
                            .collect::<Result<Vec<_>>>()?;
                        (text, ms)
                    }
                    None => parse_inline(&text).map_err(at)?,
                };
                out.push(from_mentions(id, plain, &mentions));
            }
            _ => {
                return Err(at(
                    "expected {\"tokens\", \"tags\"} or {\"text\"[, \"entities\"]}".into(),
                ));
            }
        }
    }
    Ok(out)
}

/// The tag set of some sentences: `O`, then `B-`/`I-` of every entity type, sorted.
pub fn tag_set(sentences: &[Sentence]) -> Vec<String> {
    let kinds: std::collections::BTreeSet<&str> = sentences
        .iter()
        .flat_map(|s| s.tags.iter())
        .filter_map(|t| t.split_once('-').map(|(_, k)| k))
        .collect();
    std::iter::once("O".to_owned())
        .chain(
            kinds
                .into_iter()
                .flat_map(|k| [format!("B-{k}"), format!("I-{k}")]),
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn conll_sentences_and_iob1() {
        let text = "-DOCSTART- -X- O O\n\nEU NNP I-ORG\nrejects VBZ O\nGerman JJ I-MISC\n\nPeter NNP I-PER\nBlackburn NNP I-PER\n";
        let s = read_conll("f", text, None).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].text, "EU rejects German");
        assert_eq!(s[0].tags, strs(&["B-ORG", "O", "B-MISC"]));
        assert_eq!(s[1].tags, strs(&["B-PER", "I-PER"]));
        assert_eq!(s[1].id, "f:7");
        assert_eq!(s[1].word_strs(), ["Peter", "Blackburn"]);
        let bad = read_conll("f", "word\n", None).unwrap_err().to_string();
        assert!(bad.contains("f:1"), "{bad}");
        let bad = read_conll("f", "word X-PER\n", None)
            .unwrap_err()
            .to_string();
        assert!(bad.contains("X-PER"), "{bad}");
    }

    #[test]
    fn bioes_becomes_iob2() {
        let t = to_iob2(&strs(&[
            "S-LOC", "S-LOC", "B-PER", "E-PER", "I-PER", "O", "I-LOC",
        ]));
        assert_eq!(
            t,
            strs(&["B-LOC", "B-LOC", "B-PER", "I-PER", "B-PER", "O", "B-LOC"])
        );
    }

    #[test]
    fn inline_annotations() {
        let (plain, m) = parse_inline(
            r#"fly from [New York](city) to [Berlin]{"entity": "city", "role": "to"} on [monday](day:2024-01-01)"#,
        )
        .unwrap();
        assert_eq!(plain, "fly from New York to Berlin on monday");
        let got: Vec<&str> = m.iter().map(|m| &plain[m.start..m.end]).collect();
        assert_eq!(got, ["New York", "Berlin", "monday"]);
        assert_eq!(m[2].kind, "day");
        let s = from_mentions("x".into(), plain, &m);
        assert_eq!(
            s.tags,
            strs(&["O", "O", "B-city", "I-city", "O", "B-city", "O", "B-day"])
        );
        assert!(parse_inline("[x]{\"role\": 1}").is_err());
    }

    #[test]
    fn rasa_yaml_and_jsonl() {
        let yml = "version: \"3.1\"\nnlu:\n- intent: order\n  examples: |\n    - a [pizza](food) please\n    - nothing\n- synonym: pie\n  examples: |\n    - pizza\n";
        let s = read_rasa("nlu.yml", yml).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].tags, strs(&["O", "B-food", "O"]));
        let jl = "{\"tokens\": [\"in\", \"Paris\"], \"tags\": [\"O\", \"B-LOC\"]}\n{\"text\": \"née à Paris\", \"entities\": [{\"start\": 6, \"end\": 11, \"entity\": \"LOC\"}]}\n";
        let s = read_jsonl("d.jsonl", jl).unwrap();
        assert_eq!(s[0].tags, strs(&["O", "B-LOC"]));
        assert_eq!(s[1].tags, strs(&["O", "O", "B-LOC"]));
        let bad = read_jsonl("d.jsonl", "{\"tokens\": [\"a\"], \"tags\": []}\n")
            .unwrap_err()
            .to_string();
        assert!(bad.contains("d.jsonl:1"), "{bad}");
        assert_eq!(tag_set(&s), strs(&["O", "B-LOC", "I-LOC"]));
    }
}

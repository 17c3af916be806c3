//! NLU: the intent of a message and its entities. Intents come from a TF-IDF + logistic
//! regression classifier trained on the project's examples (instant to train); entities from
//! the project's regexes, lookup tables and the values annotated in its examples, mapped through
//! its synonyms. A message below the confidence threshold gets the `nlu_fallback` intent, and
//! `/intent{"entity": "value"}` payloads (buttons) bypass the classifier.

use std::collections::BTreeMap;
use std::path::Path;

use duet_train::classify::tfidf::{TfidfClassifier, TfidfConfig};
use duet_train::tokens::data::parse_inline;
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result, io};
use crate::project::{Project, list_items};
use crate::tracker::{Entity, Intent, ParseData};

/// The intent given to messages NLU is not sure about.
pub const NLU_FALLBACK: &str = "nlu_fallback";

/// An entity pattern: a regex or a lookup table compiled to one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EntityPattern {
    /// The entity.
    pub entity: String,
    /// The pattern.
    pub pattern: String,
    /// `RegexEntityExtractor` or `lookup`.
    pub source: String,
}

/// What `duet dialog train` keeps of NLU besides the classifier.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NluSettings {
    /// Below this confidence the intent is `nlu_fallback` (0: never).
    pub threshold: f64,
    /// Entity patterns.
    pub patterns: Vec<EntityPattern>,
    /// Lower-cased value to its canonical value.
    pub synonyms: BTreeMap<String, String>,
    /// Intents of the domain (payload intents are checked against them).
    pub intents: Vec<String>,
}

/// A trained NLU.
pub struct Nlu {
    classifier: TfidfClassifier,
    settings: NluSettings,
    compiled: Vec<(String, Regex, String)>,
}

/// Words of a lookup table or annotated values as one case-insensitive alternation.
fn alternation(values: &[String]) -> String {
    let mut v: Vec<&String> = values.iter().collect();
    v.sort_by_key(|s| std::cmp::Reverse(s.len()));
    v.dedup();
    let alts: Vec<String> = v.iter().map(|s| regex::escape(s)).collect();
    format!(r"(?i)\b(?:{})\b", alts.join("|"))
}

impl Nlu {
    /// Trains on the project's NLU data.
    pub fn train(p: &Project) -> Result<Self> {
        Self::train_on(p, &p.intent_examples())
    }

    /// Trains on some of the project's examples (`(intent, annotated text)`), with all its
    /// regexes, lookup tables and synonyms (cross-validation holds examples out).
    pub fn train_on(p: &Project, examples: &[(String, String)]) -> Result<Self> {
        let mut texts = Vec::new();
        let mut labels_of = Vec::new();
        let mut annotated: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (intent, ex) in examples {
            let (plain, mentions) = parse_inline(ex)
                .map_err(|why| Error::Model(format!("intent {intent}, example {ex:?}: {why}")))?;
            for m in mentions {
                annotated
                    .entry(m.kind)
                    .or_default()
                    .push(plain[m.start..m.end].to_owned());
            }
            texts.push(plain);
            labels_of.push(intent.clone());
        }
        let mut labels: Vec<String> = labels_of.clone();
        labels.sort();
        labels.dedup();
        if labels.len() < 2 {
            return Err(Error::Model(format!(
                "{}: NLU needs examples of at least two intents, found {labels:?}",
                p.dir.display()
            )));
        }
        let y: Vec<usize> = labels_of
            .iter()
            .map(|l| labels.binary_search(l).unwrap_or(0))
            .collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let cfg = TfidfConfig {
            balanced: true,
            c: 100.0,
            ..TfidfConfig::default()
        };
        let classifier = TfidfClassifier::fit(&cfg, &refs, &y, &labels)?;
        let mut patterns = Vec::new();
        let mut synonyms = BTreeMap::new();
        for n in &p.nlu {
            let items: Vec<String> = n
                .item
                .examples
                .as_deref()
                .map(|b| list_items(b).collect())
                .unwrap_or_default();
            if let Some(name) = &n.item.regex {
                for r in &items {
                    Regex::new(r).map_err(|e| {
                        Error::Invalid(vec![format!(
                            "{}: regex {name}: {r:?} is not a valid pattern: {e}",
                            n.file.display()
                        )])
                    })?;
                    patterns.push(EntityPattern {
                        entity: name.clone(),
                        pattern: r.clone(),
                        source: "RegexEntityExtractor".into(),
                    });
                }
            }
            if let Some(name) = &n.item.lookup {
                annotated
                    .entry(name.clone())
                    .or_default()
                    .extend(items.iter().cloned());
            }
            if let Some(canon) = &n.item.synonym {
                for v in &items {
                    synonyms.insert(v.to_lowercase(), canon.clone());
                }
            }
        }
        // Regexes named after a feature (not an entity of the domain) only help intents in Rasa.
        let entities = p.domain.entity_names();
        patterns.retain(|e| entities.contains(&e.entity));
        for (entity, values) in annotated {
            patterns.push(EntityPattern {
                entity,
                pattern: alternation(&values),
                source: "lookup".into(),
            });
        }
        let threshold = p
            .config
            .setting("FallbackClassifier", "threshold")
            .and_then(Value::as_f64)
            .unwrap_or(0.3);
        Self::from_parts(
            classifier,
            NluSettings {
                threshold,
                patterns,
                synonyms,
                intents: p.domain.intent_names(),
            },
        )
    }

    fn from_parts(classifier: TfidfClassifier, settings: NluSettings) -> Result<Self> {
        let compiled = settings
            .patterns
            .iter()
            .map(|p| {
                Regex::new(&p.pattern)
                    .map(|r| (p.entity.clone(), r, p.source.clone()))
                    .map_err(|e| Error::Model(format!("entity pattern {}: {e}", p.entity)))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            classifier,
            settings,
            compiled,
        })
    }

    /// Writes the NLU into `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        self.classifier.save(&dir.join("intents"))?;
        let p = dir.join("nlu.json");
        std::fs::write(&p, serde_json::to_vec_pretty(&self.settings)?).map_err(io(&p))
    }

    /// Reads an NLU written by [`Nlu::save`].
    pub fn load(dir: &Path) -> Result<Self> {
        let classifier = TfidfClassifier::load(&dir.join("intents"))?;
        let p = dir.join("nlu.json");
        let settings: NluSettings = serde_json::from_slice(&std::fs::read(&p).map_err(io(&p))?)?;
        Self::from_parts(classifier, settings)
    }

    /// Intent and entities of a message.
    pub fn parse(&self, text: &str) -> ParseData {
        if let Some(p) = self.payload(text) {
            return p;
        }
        let probs = self
            .classifier
            .predict_proba(&[text])
            .pop()
            .unwrap_or_default();
        let mut ranking: Vec<Intent> = self
            .classifier
            .labels
            .iter()
            .zip(&probs)
            .map(|(l, &p)| Intent {
                name: l.clone(),
                confidence: f64::from(p),
            })
            .collect();
        ranking.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
        let mut intent = ranking.first().cloned().unwrap_or(Intent {
            name: NLU_FALLBACK.into(),
            confidence: 0.0,
        });
        if intent.confidence < self.settings.threshold {
            intent = Intent {
                name: NLU_FALLBACK.into(),
                confidence: self.settings.threshold,
            };
        }
        ParseData {
            text: text.to_owned(),
            intent,
            entities: self.entities(text),
            intent_ranking: ranking.into_iter().take(10).collect(),
        }
    }

    /// Entities found by patterns, longest first where they overlap, values through synonyms.
    pub fn entities(&self, text: &str) -> Vec<Entity> {
        let mut found: Vec<(usize, usize, &str, &str)> = Vec::new();
        for (entity, re, source) in &self.compiled {
            for m in re.find_iter(text) {
                if m.start() < m.end() {
                    found.push((m.start(), m.end(), entity, source));
                }
            }
        }
        found.sort_by_key(|&(s, e, _, _)| (s, std::cmp::Reverse(e)));
        let mut out: Vec<Entity> = Vec::new();
        let mut last_end = 0;
        for (s, e, entity, source) in found {
            if s < last_end {
                continue;
            }
            last_end = e;
            let raw = &text[s..e];
            let value = self
                .settings
                .synonyms
                .get(&raw.to_lowercase())
                .cloned()
                .unwrap_or_else(|| raw.to_owned());
            out.push(Entity {
                entity: entity.to_owned(),
                value: Value::String(value),
                start: Some(text[..s].chars().count()),
                end: Some(text[..e].chars().count()),
                extractor: Some(if source == "lookup" {
                    "LookupEntityExtractor".into()
                } else {
                    source.to_owned()
                }),
                role: None,
            });
        }
        out
    }

    /// `/intent` or `/intent{"entity": "value"}`: the intent as given, confidence 1.
    fn payload(&self, text: &str) -> Option<ParseData> {
        let rest = text.trim().strip_prefix('/')?;
        let (name, json) = match rest.find('{') {
            Some(i) => (&rest[..i], Some(&rest[i..])),
            None => (rest, None),
        };
        if name.is_empty() || name.contains(char::is_whitespace) {
            return None;
        }
        let entities = json
            .and_then(|j| serde_json::from_str::<BTreeMap<String, Value>>(j).ok())
            .unwrap_or_default()
            .into_iter()
            .map(|(entity, value)| Entity {
                entity,
                value,
                start: None,
                end: None,
                extractor: None,
                role: None,
            })
            .collect();
        let intent = Intent {
            name: name.to_owned(),
            confidence: 1.0,
        };
        Some(ParseData {
            text: text.to_owned(),
            intent: intent.clone(),
            entities,
            intent_ranking: vec![intent],
        })
    }
}

impl Nlu {
    /// Intents the classifier knows.
    pub fn intent_count(&self) -> usize {
        self.classifier.labels.len()
    }
}

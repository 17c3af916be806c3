//! NLU: the intent of a message and its entities. Intents come from a TF-IDF + logistic
//! regression classifier trained on the project's examples (instant to train), or from a
//! pretrained encoder fine-tuned on them when `config.yml` names `DuetEncoderClassifier`;
//! entities from the project's regexes, lookup tables and the values annotated in its examples,
//! and from a token classifier fine-tuned on the annotations when `config.yml` names
//! `DuetEntityTagger`, mapped through its synonyms. A message below the confidence threshold
//! gets the `nlu_fallback` intent, and `/intent{"entity": "value"}` payloads (buttons) bypass
//! the classifier.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use duet_model::predict::tfidf::TfidfConfig;
use duet_model::predict::{Classifier, EntityTagger};
use duet_train::classify::data::Example;
use duet_train::tokens::data::{Sentence, from_mentions, parse_inline};
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
    /// `DucklingEntityExtractor`'s settings, if the pipeline has one.
    #[serde(default)]
    pub duckling: Option<crate::duckling::DucklingSettings>,
}

/// A pretrained encoder to fine-tune, as `config.yml` names it.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderChoice {
    /// The encoder directory (Hugging Face layout), relative to the project or absolute.
    pub model: PathBuf,
    /// Passes over the examples.
    pub epochs: f64,
    /// Peak learning rate.
    pub lr: f64,
    /// Longest input in tokens.
    pub max_length: usize,
}

/// The NLU components `config.yml` chooses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NluChoice {
    /// Fine-tune this encoder for intents (else TF-IDF + logistic regression).
    pub intents: Option<EncoderChoice>,
    /// Fine-tune this encoder to tag entities.
    pub tagger: Option<EncoderChoice>,
}

/// Components of Rasa's pipeline and policies that duet maps onto its own (others are reported).
pub const KNOWN_COMPONENTS: &[&str] = &[
    "WhitespaceTokenizer",
    "JiebaTokenizer",
    "RegexFeaturizer",
    "LexicalSyntacticFeaturizer",
    "CountVectorsFeaturizer",
    "LogisticRegressionClassifier",
    "DIETClassifier",
    "RegexEntityExtractor",
    "EntitySynonymMapper",
    "FallbackClassifier",
    "DucklingEntityExtractor",
    "ResponseSelector",
    "DuetEncoderClassifier",
    "DuetEntityTagger",
    "DuetKnowledge",
    "MemoizationPolicy",
    "AugmentedMemoizationPolicy",
    "RulePolicy",
    "TEDPolicy",
    "DuetPolicy",
];

impl NluChoice {
    /// Reads the choice from the project's `config.yml`.
    pub fn of(p: &Project) -> Self {
        let pick = |name: &str| -> Option<EncoderChoice> {
            let c = p
                .config
                .pipeline
                .iter()
                .find(|c| c.get("name").and_then(Value::as_str) == Some(name))?;
            let model = PathBuf::from(c.get("model").and_then(Value::as_str)?);
            Some(EncoderChoice {
                model: if model.is_absolute() {
                    model
                } else {
                    p.dir.join(model)
                },
                epochs: c.get("epochs").and_then(Value::as_f64).unwrap_or(10.0),
                lr: c
                    .get("learning_rate")
                    .and_then(Value::as_f64)
                    .unwrap_or(5e-5),
                max_length: c
                    .get("max_length")
                    .and_then(Value::as_u64)
                    .map_or(64, |v| v as usize),
            })
        };
        Self {
            intents: pick("DuetEncoderClassifier"),
            tagger: pick("DuetEntityTagger"),
        }
    }
}

/// A trained NLU.
pub struct Nlu {
    classifier: Classifier,
    /// Where a fine-tuned intent encoder was written (copied on save).
    classifier_dir: Option<PathBuf>,
    tagger: Option<(EntityTagger, PathBuf)>,
    settings: NluSettings,
    compiled: Vec<(String, Regex, String)>,
    /// The training runs of fine-tuned encoders, removed when this NLU is dropped (a saved
    /// assistant keeps copies of what it needs).
    scratch: Option<PathBuf>,
}

impl Drop for Nlu {
    fn drop(&mut self) {
        if let Some(s) = &self.scratch {
            let _ = std::fs::remove_dir_all(s);
        }
    }
}

/// Copies the files of `src` (not sub-folders) into `dst`.
fn copy_files(src: &Path, dst: &Path) -> Result<()> {
    std::fs::create_dir_all(dst).map_err(io(dst))?;
    for e in std::fs::read_dir(src).map_err(io(src))? {
        let f = e.map_err(io(src))?.path();
        if f.is_file() {
            let to = dst.join(f.file_name().unwrap_or_default());
            std::fs::copy(&f, &to).map_err(io(&to))?;
        }
    }
    Ok(())
}

/// Fine-tuning settings for a small NLU data set: the encoder recipe with `choice`'s learning
/// rate and batches of 8; every example is also the validation set (too few to hold out).
fn recipe(choice: &EncoderChoice, out: &Path) -> duet_train::config::TrainSection {
    let mut t = duet_train::classify::config::ClsConfig::default().train;
    t.out = out.to_path_buf();
    t.lr = choice.lr;
    t.batch_size = 8;
    t.log_every = 1000;
    t.early_stop_metric = "val_loss".into();
    t
}

/// `RegexEntityExtractor`'s options in `config.yml` (Rasa's defaults when it lists none, or
/// does not list the component: case-insensitive, regexes and lookup tables used).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RegexOptions {
    /// Regexes match case as written.
    pub case_sensitive: bool,
    /// Entities from lookup tables.
    pub use_lookup_tables: bool,
    /// Entities from regexes.
    pub use_regexes: bool,
    /// Lookup entries match whole words only.
    pub use_word_boundaries: bool,
}

impl RegexOptions {
    /// Reads the options of `config.yml`'s `RegexEntityExtractor`.
    pub fn of(p: &Project) -> Self {
        let flag = |k: &str, default: bool| {
            p.config
                .setting("RegexEntityExtractor", k)
                .and_then(Value::as_bool)
                .unwrap_or(default)
        };
        Self {
            case_sensitive: flag("case_sensitive", false),
            use_lookup_tables: flag("use_lookup_tables", true),
            use_regexes: flag("use_regexes", true),
            use_word_boundaries: flag("use_word_boundaries", true),
        }
    }
}

/// Words of a lookup table or annotated values as one case-insensitive alternation.
fn alternation(values: &[String], word_boundaries: bool) -> String {
    let mut v: Vec<&String> = values.iter().collect();
    v.sort_by_key(|s| std::cmp::Reverse(s.len()));
    v.dedup();
    let alts: Vec<String> = v.iter().map(|s| regex::escape(s)).collect();
    if word_boundaries {
        format!(r"(?i)\b(?:{})\b", alts.join("|"))
    } else {
        format!(r"(?i)(?:{})", alts.join("|"))
    }
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
        let choice = NluChoice::of(p);
        let scratch = p.dir.join("models").join(".train").join(format!(
            "{}-{}",
            std::process::id(),
            examples.len()
        ));
        let (classifier, classifier_dir) = match &choice.intents {
            None => (
                Classifier::Tfidf(duet_train::classify::tfidf::fit(&cfg, &refs, &y, &labels)?),
                None,
            ),
            Some(c) => {
                let exs: Vec<Example> = texts
                    .iter()
                    .zip(&labels_of)
                    .enumerate()
                    .map(|(i, (t, l))| Example {
                        id: i.to_string(),
                        text: t.clone(),
                        label: l.clone(),
                        fields: BTreeMap::new(),
                    })
                    .collect();
                let mut cc = duet_train::classify::config::ClsConfig::default();
                cc.model.path = c.model.display().to_string();
                cc.model.max_length = c.max_length;
                cc.loss.epochs = c.epochs;
                cc.loss.class_weights =
                    duet_train::classify::config::ClassWeights::Named("auto".into());
                cc.train = recipe(c, &scratch.join("intents"));
                duet_train::classify::run::fit(
                    &cc,
                    "",
                    &exs,
                    &exs,
                    false,
                    Arc::new(AtomicBool::new(false)),
                    &indicatif::ProgressBar::hidden(),
                )?;
                let dir = scratch.join("intents").join("final");
                (Classifier::load(&dir)?, Some(dir))
            }
        };
        let tagger = match &choice.tagger {
            None => None,
            Some(c) => {
                let sentences: Vec<Sentence> = examples
                    .iter()
                    .enumerate()
                    .filter_map(|(i, (_, ex))| {
                        let (plain, ms) = parse_inline(ex).ok()?;
                        Some(from_mentions(i.to_string(), plain, &ms))
                    })
                    .collect();
                let mut tc = duet_train::tokens::config::TokConfig::default();
                tc.model.path = c.model.display().to_string();
                tc.model.max_length = c.max_length;
                tc.loss.epochs = c.epochs;
                tc.train = recipe(c, &scratch.join("tagger"));
                duet_train::tokens::run::fit(
                    &tc,
                    "",
                    &sentences,
                    &sentences,
                    false,
                    Arc::new(AtomicBool::new(false)),
                    &indicatif::ProgressBar::hidden(),
                )?;
                let dir = scratch.join("tagger").join("final");
                Some((EntityTagger::load(&dir)?, dir))
            }
        };
        let rx = RegexOptions::of(p);
        let mut patterns = Vec::new();
        let mut synonyms = BTreeMap::new();
        for n in &p.nlu {
            let items: Vec<String> = n
                .item
                .examples
                .as_deref()
                .map(|b| list_items(b).collect())
                .unwrap_or_default();
            if let Some(name) = n.item.regex.as_ref().filter(|_| rx.use_regexes) {
                for r in &items {
                    Regex::new(r).map_err(|e| {
                        Error::Invalid(vec![format!(
                            "{}: regex {name}: {r:?} is not a valid pattern: {e}",
                            n.file.display()
                        )])
                    })?;
                    patterns.push(EntityPattern {
                        entity: name.clone(),
                        pattern: if rx.case_sensitive {
                            r.clone()
                        } else {
                            format!("(?i){r}")
                        },
                        source: "RegexEntityExtractor".into(),
                    });
                }
            }
            if let Some(name) = n.item.lookup.as_ref().filter(|_| rx.use_lookup_tables) {
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
                pattern: alternation(&values, rx.use_word_boundaries),
                source: "lookup".into(),
            });
        }
        let threshold = p
            .config
            .setting("FallbackClassifier", "threshold")
            .and_then(Value::as_f64)
            .unwrap_or(0.3);
        let mut nlu = Self::from_parts(
            classifier,
            NluSettings {
                threshold,
                patterns,
                synonyms,
                intents: p.domain.intent_names(),
                duckling: crate::duckling::DucklingSettings::of(&p.config),
            },
        )?;
        nlu.classifier_dir = classifier_dir;
        nlu.tagger = tagger;
        if choice.intents.is_some() || choice.tagger.is_some() {
            nlu.scratch = Some(scratch);
        }
        Ok(nlu)
    }

    fn from_parts(classifier: Classifier, settings: NluSettings) -> Result<Self> {
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
            classifier_dir: None,
            tagger: None,
            settings,
            compiled,
            scratch: None,
        })
    }

    /// Writes the NLU into `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        match (&self.classifier, &self.classifier_dir) {
            (Classifier::Tfidf(m), _) => m.save(&dir.join("intents"))?,
            (_, Some(src)) => copy_files(src, &dir.join("intents"))?,
            (_, None) => {
                return Err(Error::Model(
                    "the intent encoder's directory is unknown; train again".into(),
                ));
            }
        }
        if let Some((_, src)) = &self.tagger {
            copy_files(src, &dir.join("tagger"))?;
        }
        let p = dir.join("nlu.json");
        std::fs::write(&p, serde_json::to_vec_pretty(&self.settings)?).map_err(io(&p))
    }

    /// Reads an NLU written by [`Nlu::save`].
    pub fn load(dir: &Path) -> Result<Self> {
        let classifier = Classifier::load(&dir.join("intents"))?;
        let p = dir.join("nlu.json");
        let settings: NluSettings = serde_json::from_slice(&std::fs::read(&p).map_err(io(&p))?)?;
        let mut nlu = Self::from_parts(classifier, settings)?;
        let t = dir.join("tagger");
        if t.join("config.json").is_file() {
            nlu.tagger = Some((EntityTagger::load(&t)?, t));
        }
        nlu.classifier_dir = Some(dir.join("intents"));
        Ok(nlu)
    }

    /// Intent and entities of a message.
    pub fn parse(&self, text: &str) -> ParseData {
        if let Some(p) = self.payload(text) {
            return p;
        }
        let probs = match self.classifier.predict_proba(&[text], 1) {
            Ok(mut p) => p.pop().unwrap_or_default(),
            Err(e) => {
                tracing::error!("intent classifier: {e}");
                Vec::new()
            }
        };
        let mut ranking: Vec<Intent> = self
            .classifier
            .labels()
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
        // Retrieval intents (`faq/ask_delivery`): the intent is `faq`, the full name goes to the
        // response selector.
        let mut response_selector = None;
        if let Some((base, _)) = intent.name.split_once('/') {
            response_selector = Some(serde_json::json!({ base: {"response": {
                "intent_response_key": intent.name,
                "utter_action": format!("utter_{}", intent.name),
                "confidence": intent.confidence,
            }}}));
            intent.name = base.to_owned();
        }
        let mut seen = std::collections::HashSet::new();
        let ranking: Vec<Intent> = ranking
            .into_iter()
            .map(|mut i| {
                if let Some((base, _)) = i.name.split_once('/') {
                    i.name = base.to_owned();
                }
                i
            })
            .filter(|i| seen.insert(i.name.clone()))
            .take(10)
            .collect();
        ParseData {
            text: text.to_owned(),
            intent,
            entities: self.entities(text),
            intent_ranking: ranking,
            response_selector,
        }
    }

    /// Entities found by patterns and the tagger, longest first where they overlap, values
    /// through synonyms.
    pub fn entities(&self, text: &str) -> Vec<Entity> {
        let mut found: Vec<(usize, usize, &str, &str)> = Vec::new();
        let tagged = match &self.tagger {
            Some((t, _)) => t.extract(&[text], 1).unwrap_or_else(|e| {
                tracing::error!("entity tagger: {e}");
                Vec::new()
            }),
            None => Vec::new(),
        };
        let byte = |c: usize| text.char_indices().nth(c).map_or(text.len(), |(b, _)| b);
        for e in tagged.iter().flatten() {
            found.push((byte(e.start), byte(e.end), &e.entity, "DuetEntityTagger"));
        }
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
                additional_info: None,
            });
        }
        // Duckling's entities come beside the others (Rasa keeps every extractor's).
        if let Some(d) = &self.settings.duckling {
            out.extend(d.extract(text));
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
                additional_info: None,
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
            response_selector: None,
        })
    }
}

impl Nlu {
    /// Intents the classifier knows.
    pub fn intent_count(&self) -> usize {
        self.classifier.labels().len()
    }
}

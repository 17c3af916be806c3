//! A Rasa 3.x project as files on disk: `domain.yml` (or a `domain/` folder), `config.yml`,
//! every YAML file under `data/` (each may hold `nlu:`, `stories:` and `rules:`), and
//! `tests/*.yml` (test stories). Keys duet does not use are kept and reported as warnings, never
//! silently dropped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};
use serde_json::Value;
use serde_saphyr::Spanned;

use crate::error::{Error, Result, io};

/// A name with the line it was written on.
pub type Named = Spanned<String>;

/// An intent, entity or slot declared in the domain: a bare name or a name with properties.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Decl {
    /// `- greet`
    Name(String),
    /// `- greet: {use_entities: [...]}`
    WithProps(BTreeMap<String, Value>),
}

impl Decl {
    /// The declared name.
    pub fn name(&self) -> String {
        match self {
            Self::Name(n) => n.clone(),
            Self::WithProps(m) => m.keys().next().cloned().unwrap_or_default(),
        }
    }
}

/// A slot mapping: where a slot's value comes from.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SlotMapping {
    /// `from_entity`, `from_text`, `from_intent`, `from_trigger_intent` or `custom`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The entity (`from_entity`).
    #[serde(default)]
    pub entity: Option<String>,
    /// Only for these intents.
    #[serde(default, deserialize_with = "one_or_many")]
    pub intent: Vec<String>,
    /// Not for these intents.
    #[serde(default, deserialize_with = "one_or_many")]
    pub not_intent: Vec<String>,
    /// The value (`from_intent`).
    #[serde(default)]
    pub value: Option<Value>,
    /// The entity's role.
    #[serde(default)]
    pub role: Option<String>,
    /// Only while these hold (`active_loop`, `requested_slot`).
    #[serde(default)]
    pub conditions: Vec<MappingCondition>,
}

/// A condition of a slot mapping.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct MappingCondition {
    /// The form that must be active (`null`: none).
    #[serde(default)]
    pub active_loop: Option<String>,
    /// The slot the form must be asking for.
    #[serde(default)]
    pub requested_slot: Option<String>,
}

/// A slot.
#[derive(Debug, Clone, Deserialize)]
pub struct SlotDecl {
    /// `text`, `bool`, `categorical`, `float`, `list` or `any`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The value at the start of a conversation.
    #[serde(default)]
    pub initial_value: Option<Value>,
    /// Whether the slot's value is part of the dialogue state (default true).
    #[serde(default)]
    pub influence_conversation: Option<bool>,
    /// Values of a categorical slot.
    #[serde(default)]
    pub values: Vec<String>,
    /// Where values come from.
    #[serde(default)]
    pub mappings: Vec<SlotMapping>,
    /// Range of a float slot.
    #[serde(default)]
    pub min_value: Option<f64>,
    /// Range of a float slot.
    #[serde(default)]
    pub max_value: Option<f64>,
}

/// A button of a response.
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
pub struct Button {
    /// The label.
    pub title: String,
    /// What is sent when it is pressed (`/intent{...}` or text).
    pub payload: String,
}

/// A condition of a response variation.
#[derive(Debug, Clone, Deserialize)]
pub struct ResponseCondition {
    /// `slot`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The slot.
    pub name: String,
    /// The value it must have.
    #[serde(default)]
    pub value: Value,
}

/// One variation of a response.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ResponseVariant {
    /// Text with `{slot}` templates.
    #[serde(default)]
    pub text: Option<String>,
    /// An image URL.
    #[serde(default)]
    pub image: Option<String>,
    /// Buttons.
    #[serde(default)]
    pub buttons: Vec<Button>,
    /// Only when all of these hold.
    #[serde(default)]
    pub condition: Vec<ResponseCondition>,
    /// Only on this channel.
    #[serde(default)]
    pub channel: Option<String>,
    /// Free-form payload passed through.
    #[serde(default)]
    pub custom: Option<Value>,
    /// An attachment passed through.
    #[serde(default)]
    pub attachment: Option<Value>,
}

/// A form.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FormDecl {
    /// Slots to fill, in order.
    #[serde(default)]
    pub required_slots: Vec<String>,
    /// Intents that never fill its slots.
    #[serde(default, deserialize_with = "one_or_many")]
    pub ignored_intents: Vec<String>,
}

/// Session settings.
#[derive(Debug, Clone, Deserialize)]
pub struct SessionConfig {
    /// Minutes of inactivity after which a new session starts (0: never).
    #[serde(default = "default_expiry")]
    pub session_expiration_time: f64,
    /// Slots carry over to the new session.
    #[serde(default = "yes")]
    pub carry_over_slots_to_new_session: bool,
}

fn default_expiry() -> f64 {
    60.0
}

fn yes() -> bool {
    true
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            session_expiration_time: 60.0,
            carry_over_slots_to_new_session: true,
        }
    }
}

/// `domain.yml`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Domain {
    /// Intents.
    #[serde(default)]
    pub intents: Vec<Decl>,
    /// Entities.
    #[serde(default)]
    pub entities: Vec<Decl>,
    /// Slots.
    #[serde(default)]
    pub slots: BTreeMap<String, SlotDecl>,
    /// Responses: name to variations.
    #[serde(default)]
    pub responses: BTreeMap<String, Vec<ResponseVariant>>,
    /// Forms.
    #[serde(default)]
    pub forms: BTreeMap<String, FormDecl>,
    /// Custom actions.
    #[serde(default)]
    pub actions: Vec<Decl>,
    /// Sessions.
    #[serde(default)]
    pub session_config: SessionConfig,
    /// Everything else (reported as unknown).
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

impl Domain {
    /// Adds another domain file's items (Rasa merges a `domain/` folder).
    fn merge(&mut self, o: Domain) {
        self.intents.extend(o.intents);
        self.entities.extend(o.entities);
        self.slots.extend(o.slots);
        self.responses.extend(o.responses);
        self.forms.extend(o.forms);
        self.actions.extend(o.actions);
        self.other.extend(o.other);
    }

    /// Intent names.
    pub fn intent_names(&self) -> Vec<String> {
        self.intents.iter().map(Decl::name).collect()
    }

    /// Entity names.
    pub fn entity_names(&self) -> Vec<String> {
        self.entities.iter().map(Decl::name).collect()
    }
}

/// One step of a story, rule or test story.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Step {
    /// The user's intent.
    #[serde(default)]
    pub intent: Option<Named>,
    /// The user's words (test stories).
    #[serde(default)]
    pub user: Option<String>,
    /// Entities of the user turn: `- city: Berlin` or `- city`.
    #[serde(default)]
    pub entities: Vec<Value>,
    /// An action the bot runs.
    #[serde(default)]
    pub action: Option<Named>,
    /// Bot text (end-to-end stories).
    #[serde(default)]
    pub bot: Option<String>,
    /// Slots set at this point: `- name: value` or `- name`.
    #[serde(default)]
    pub slot_was_set: Vec<Value>,
    /// The active form (`null`: none).
    #[serde(default, deserialize_with = "present")]
    pub active_loop: Option<Value>,
    /// A checkpoint (stories).
    #[serde(default)]
    pub checkpoint: Option<Named>,
    /// Alternatives (stories).
    #[serde(default, rename = "or")]
    pub alternatives: Option<Vec<Step>>,
}

/// A story or test story.
#[derive(Debug, Clone, Deserialize)]
pub struct Story {
    /// Its name.
    pub story: Named,
    /// Its steps.
    #[serde(default)]
    pub steps: Vec<Step>,
}

/// A rule.
#[derive(Debug, Clone, Deserialize)]
pub struct Rule {
    /// Its name.
    pub rule: Named,
    /// What must hold before the rule applies.
    #[serde(default)]
    pub condition: Vec<Step>,
    /// Its steps.
    #[serde(default)]
    pub steps: Vec<Step>,
    /// Applies only at the start of a conversation.
    #[serde(default)]
    pub conversation_start: bool,
    /// After the last step, wait for the user (default true).
    #[serde(default = "yes")]
    pub wait_for_user_input: bool,
}

/// One `nlu:` item.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NluItem {
    /// Examples of an intent.
    #[serde(default)]
    pub intent: Option<Named>,
    /// Values that mean `synonym`.
    #[serde(default)]
    pub synonym: Option<String>,
    /// A pattern for an entity (named after it) or a feature.
    #[serde(default)]
    pub regex: Option<String>,
    /// A list of values of an entity.
    #[serde(default)]
    pub lookup: Option<String>,
    /// The list, as a block of `- ` lines.
    #[serde(default)]
    pub examples: Option<String>,
}

/// A training-data file: any of `nlu:`, `stories:`, `rules:` (a key with nothing under it
/// is an empty list).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DataFile {
    /// NLU data.
    #[serde(default, deserialize_with = "null_is_empty")]
    pub nlu: Vec<NluItem>,
    /// Stories.
    #[serde(default, deserialize_with = "null_is_empty")]
    pub stories: Vec<Story>,
    /// Rules.
    #[serde(default, deserialize_with = "null_is_empty")]
    pub rules: Vec<Rule>,
    /// Responses (Rasa lets training data carry the responses of retrieval intents).
    #[serde(default)]
    pub responses: BTreeMap<String, Vec<ResponseVariant>>,
    /// Everything else.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// `config.yml`: the pipeline and policies, by name with their settings.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Config {
    /// Language code.
    #[serde(default)]
    pub language: Option<String>,
    /// NLU components.
    #[serde(default, deserialize_with = "null_is_empty")]
    pub pipeline: Vec<BTreeMap<String, Value>>,
    /// Dialogue policies.
    #[serde(default, deserialize_with = "null_is_empty")]
    pub policies: Vec<BTreeMap<String, Value>>,
    /// Everything else.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

impl Config {
    /// A setting of the first component or policy named `name`.
    pub fn setting(&self, name: &str, key: &str) -> Option<&Value> {
        self.pipeline
            .iter()
            .chain(&self.policies)
            .find(|c| c.get("name").and_then(Value::as_str) == Some(name))
            .and_then(|c| c.get(key))
    }
}

/// `endpoints.yml`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Endpoints {
    /// The action server.
    #[serde(default)]
    pub action_endpoint: Option<ActionEndpoint>,
    /// The language model for answers no rule or story has.
    #[serde(default)]
    pub llm: Option<LlmEndpoint>,
}

/// Where custom actions run.
#[derive(Debug, Clone, Deserialize)]
pub struct ActionEndpoint {
    /// The webhook URL (`http://localhost:5055/webhook`).
    pub url: String,
    /// Seconds to wait for an answer (default 10).
    #[serde(default)]
    pub timeout: Option<f64>,
}

/// `endpoints.yml` `llm:`.
#[derive(Debug, Clone, Deserialize)]
pub struct LlmEndpoint {
    /// Base URL of the API (`http://127.0.0.1:8080/v1`).
    pub url: String,
    /// The model name to ask for.
    pub model: String,
    /// The environment variable holding the API key (sent as a bearer token).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Seconds for the whole answer, retries included (default 10).
    #[serde(default)]
    pub timeout: Option<f64>,
    /// Further tries after a connection error, 429 or 5xx (default 1).
    #[serde(default)]
    pub retries: Option<u32>,
    /// Longest answer in tokens (default 128).
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Sampling temperature (default 0.7).
    #[serde(default)]
    pub temperature: Option<f64>,
    /// The system prompt.
    #[serde(default)]
    pub system_prompt: Option<String>,
    /// Recent messages sent along (default 6).
    #[serde(default)]
    pub history: Option<usize>,
    /// Redact e-mail addresses, phone and card numbers, IPs and IDs before sending (default
    /// true).
    #[serde(default)]
    pub redact: Option<bool>,
}

/// An HTTP call.
#[derive(Debug, Clone, Deserialize)]
pub struct HttpCall {
    /// `GET` or `POST`.
    #[serde(default = "get")]
    pub method: String,
    /// The URL template.
    pub url: String,
}

fn get() -> String {
    "GET".into()
}

/// One declared command.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandDecl {
    /// The program (relative to the project folder, or absolute).
    #[serde(default)]
    pub program: Option<String>,
    /// Argument templates.
    #[serde(default)]
    pub args: Vec<String>,
    /// An HTTP call instead of a program.
    #[serde(default)]
    pub http: Option<HttpCall>,
    /// Seconds before the command is stopped (default 5).
    #[serde(default)]
    pub timeout: Option<f64>,
    /// The response to send afterwards.
    #[serde(default)]
    pub response: Option<String>,
}

/// `commands.yml`: programs and HTTP calls the assistant may run (see [`crate::commands`]).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Commands {
    /// Action name to command.
    #[serde(default)]
    pub commands: BTreeMap<String, CommandDecl>,
}

/// Items of a file, kept with the file they came from.
#[derive(Debug, Clone)]
pub struct InFile<T> {
    /// The file.
    pub file: PathBuf,
    /// The item.
    pub item: T,
}

/// A whole project.
#[derive(Debug, Clone)]
pub struct Project {
    /// The project folder.
    pub dir: PathBuf,
    /// The domain (merged).
    pub domain: Domain,
    /// The domain's file (or folder).
    pub domain_file: PathBuf,
    /// `config.yml`.
    pub config: Config,
    /// NLU items.
    pub nlu: Vec<InFile<NluItem>>,
    /// Stories.
    pub stories: Vec<InFile<Story>>,
    /// Rules.
    pub rules: Vec<InFile<Rule>>,
    /// Test stories.
    pub tests: Vec<InFile<Story>>,
    /// `endpoints.yml` (the action server).
    pub endpoints: Endpoints,
    /// `commands.yml`: programs and HTTP calls the assistant may run.
    pub commands: Commands,
    /// The domain as JSON, as action servers receive it.
    pub domain_json: Value,
    /// Files that training depends on, for the model's fingerprint.
    pub files: Vec<PathBuf>,
    /// Things duet read but does not use.
    pub warnings: Vec<String>,
}

/// Deserialises a YAML file as Rasa reads it: YAML 1.2, so `yes`, `no`, `on` and `off` are
/// strings, only `true` and `false` booleans.
pub fn read_yaml<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let text = if text.trim().is_empty() { "{}" } else { &text };
    let options = serde_saphyr::options! { strict_booleans: true };
    serde_saphyr::from_str_with_options(text, options).map_err(|e| Error::Yaml {
        file: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Every file under `dir`, its subfolders included, sorted.
pub fn files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).map_err(io(&d))? {
            let p = e.map_err(io(&d))?.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// YAML files under `dir`, recursively, sorted.
fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    if !dir.is_dir() {
        return Ok(out);
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).map_err(io(&d))? {
            let p = e.map_err(io(&d))?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "yml" || x == "yaml") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

impl Project {
    /// Loads the project in `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let mut warnings = Vec::new();
        let mut files = Vec::new();
        let domain_file = ["domain.yml", "domain.yaml", "domain"]
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.exists())
            .ok_or_else(|| {
                Error::Model(format!(
                    "{}: no domain.yml (is this a Rasa project folder?)",
                    dir.display()
                ))
            })?;
        let mut domain = Domain::default();
        let mut domain_json = serde_json::Map::new();
        let domain_files = if domain_file.is_dir() {
            yaml_files(&domain_file)?
        } else {
            vec![domain_file.clone()]
        };
        for f in domain_files {
            let d: Domain = read_yaml(&f)?;
            if let Value::Object(m) = read_yaml::<Value>(&f)? {
                domain_json.extend(m);
            }
            for k in d.other.keys().filter(|k| k.as_str() != "version") {
                warnings.push(format!("{}: unknown domain key {k:?} ignored", f.display()));
            }
            domain.merge(d);
            files.push(f);
        }
        let config_file = dir.join("config.yml");
        let config: Config = if config_file.is_file() {
            files.push(config_file.clone());
            read_yaml(&config_file)?
        } else {
            Config::default()
        };
        let endpoints_file = dir.join("endpoints.yml");
        let endpoints: Endpoints = if endpoints_file.is_file() {
            read_yaml(&endpoints_file)?
        } else {
            Default::default()
        };
        let commands_file = dir.join("commands.yml");
        let commands: Commands = if commands_file.is_file() {
            files.push(commands_file.clone());
            read_yaml(&commands_file)?
        } else {
            Default::default()
        };
        let (mut nlu, mut stories, mut rules) = (Vec::new(), Vec::new(), Vec::new());
        for f in yaml_files(&dir.join("data"))? {
            let d: DataFile = read_yaml(&f)?;
            for k in d.other.keys().filter(|k| k.as_str() != "version") {
                warnings.push(format!("{}: unknown key {k:?} ignored", f.display()));
            }
            nlu.extend(d.nlu.into_iter().map(|item| InFile {
                file: f.clone(),
                item,
            }));
            stories.extend(d.stories.into_iter().map(|item| InFile {
                file: f.clone(),
                item,
            }));
            rules.extend(d.rules.into_iter().map(|item| InFile {
                file: f.clone(),
                item,
            }));
            // Responses in training data join the domain's (and the domain the action server
            // sees).
            if !d.responses.is_empty()
                && let Value::Object(m) = read_yaml::<Value>(&f)?
                && let Some(Value::Object(r)) = m.get("responses")
            {
                let entry = domain_json
                    .entry("responses")
                    .or_insert_with(|| Value::Object(serde_json::Map::new()));
                if let Value::Object(all) = entry {
                    all.extend(r.clone());
                }
            }
            domain.responses.extend(d.responses);
            files.push(f);
        }
        // The knowledge base's documents are training data too.
        let kdir = dir.join("knowledge");
        if kdir.is_dir() {
            files.extend(files_under(&kdir)?);
        }
        let mut tests = Vec::new();
        for f in yaml_files(&dir.join("tests"))? {
            let d: DataFile = read_yaml(&f)?;
            tests.extend(d.stories.into_iter().map(|item| InFile {
                file: f.clone(),
                item,
            }));
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            domain,
            domain_file,
            config,
            nlu,
            stories,
            rules,
            tests,
            endpoints,
            commands,
            domain_json: Value::Object(domain_json),
            files,
            warnings,
        })
    }

    /// The examples of every intent: `(intent, example with inline annotations)`.
    pub fn intent_examples(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for n in &self.nlu {
            if let (Some(intent), Some(ex)) = (&n.item.intent, &n.item.examples) {
                out.extend(list_items(ex).map(|e| (intent.value.clone(), e)));
            }
        }
        out
    }
}

/// The `- item` lines of an `examples: |` block.
pub fn list_items(block: &str) -> impl Iterator<Item = String> + '_ {
    block.lines().filter_map(|l| {
        let l = l.trim();
        l.strip_prefix("- ")
            .or_else(|| l.strip_prefix('-'))
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    })
}

/// A string or a list of strings.
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![s],
        Some(OneOrMany::Many(v)) => v,
    })
}

/// A key that is present, even with a `null` value, is `Some`.
fn present<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// A list key with nothing under it (`pipeline:`, `stories:`) is an empty list.
fn null_is_empty<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> std::result::Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

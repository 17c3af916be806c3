//! `config.yml` choosing fine-tuned encoders for NLU: `DuetEncoderClassifier` for intents and
//! `DuetEntityTagger` for entities, trained by `duet dialog train` on the project's examples.

use std::path::Path;

use anyhow::Result;
use duet_dialog::assistant::Assistant;
use duet_dialog::check;
use duet_dialog::project::Project;

/// The 2-layer `tiny-bert-tok` weights with a WordPiece tokenizer over `words`.
fn tiny_encoder(dir: &Path, words: &[&str]) -> Result<()> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/model/tiny-bert-tok");
    std::fs::create_dir_all(dir)?;
    std::fs::copy(src.join("model.safetensors"), dir.join("model.safetensors"))?;
    std::fs::copy(src.join("config.json"), dir.join("config.json"))?;
    let specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
    let mut vocab = serde_json::Map::new();
    for (i, w) in specials.iter().chain(words).enumerate() {
        vocab.insert((*w).to_owned(), i.into());
    }
    let added: Vec<serde_json::Value> = specials
        .iter()
        .enumerate()
        .map(|(i, s)| serde_json::json!({"id": i, "content": s, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}))
        .collect();
    let tok = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]},
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100, "vocab": vocab},
    });
    std::fs::write(dir.join("tokenizer.json"), serde_json::to_string(&tok)?)?;
    Ok(())
}

#[test]
fn config_chooses_fine_tuned_encoders_for_intents_and_entities() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let cities = ["berlin", "paris", "london", "rome", "madrid", "oslo"];
    let other = [
        "fly", "to", "a", "ticket", "for", "please", "book", "hi", "hello", "hey", "there", "good",
        "morning",
    ];
    let words: Vec<&str> = cities.iter().chain(&other).copied().collect();
    tiny_encoder(&dir.join("encoder"), &words)?;
    std::fs::create_dir_all(dir.join("data"))?;
    std::fs::write(
        dir.join("domain.yml"),
        "intents:\n  - greet\n  - book\nentities:\n  - city\nslots:\n  city:\n    type: text\n    mappings:\n      - type: from_entity\n        entity: city\nresponses:\n  utter_greet:\n    - text: Hi!\n  utter_booked:\n    - text: \"Booked {city}.\"\n",
    )?;
    let mut nlu = String::from("nlu:\n- intent: book\n  examples: |\n");
    for c in &cities {
        nlu += &format!(
            "    - fly to [{c}](city)\n    - a ticket to [{c}](city) please\n    - book [{c}](city)\n"
        );
    }
    nlu += "- intent: greet\n  examples: |\n    - hi\n    - hello\n    - hey there\n    - good morning\n    - hello there\n    - hi there\n";
    std::fs::write(dir.join("data/nlu.yml"), nlu)?;
    std::fs::write(
        dir.join("data/rules.yml"),
        "rules:\n- rule: greet\n  steps:\n  - intent: greet\n  - action: utter_greet\n- rule: book\n  steps:\n  - intent: book\n  - action: utter_booked\n",
    )?;
    let enc = "    model: encoder\n    epochs: 40\n    learning_rate: 0.005\n    max_length: 16\n";
    std::fs::write(
        dir.join("config.yml"),
        format!(
            "pipeline:\n  - name: DuetEncoderClassifier\n{enc}  - name: DuetEntityTagger\n{enc}  - name: SomethingElse\npolicies:\n  - name: RulePolicy\n"
        ),
    )?;
    let p = Project::load(dir)?;
    let (a, v) = check::train_checked(&p)?;
    assert!(
        v.warnings.iter().any(|w| w.contains("SomethingElse")),
        "{:?}",
        v.warnings
    );
    let model = dir.join("models/duet");
    a.save(&p, &model)?;
    drop(a);
    assert!(
        !dir.join("models/.train").read_dir()?.any(|_| true),
        "training runs are removed"
    );
    let a = Assistant::load(&p, &model)?;
    // The booking sentences below are not among the NLU examples (held out).
    let parsed = a.nlu.parse("please fly to madrid");
    assert_eq!(parsed.intent.name, "book", "{parsed:?}");
    let e = parsed
        .entities
        .iter()
        .find(|e| e.entity == "city")
        .ok_or_else(|| anyhow::anyhow!("no city in {parsed:?}"))?;
    assert_eq!(e.value, "madrid");
    assert_eq!(e.extractor.as_deref(), Some("DuetEntityTagger"));
    assert_eq!(a.nlu.parse("hello there").intent.name, "greet");
    let mut t = a.new_tracker("x");
    let reply: Vec<String> = a
        .handle(&mut t, "a ticket to paris", None)
        .into_iter()
        .filter_map(|m| m.text)
        .collect();
    assert_eq!(reply, ["Booked paris."]);
    Ok(())
}

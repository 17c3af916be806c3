//! Commands as natural-language interfaces: slot values carrying shell metacharacters, path
//! traversal and over-long strings reach the declared program as plain arguments, and nothing
//! else runs.

use std::os::unix::fs::PermissionsExt;

use anyhow::Result;
use duet_dialog::check;
use duet_dialog::project::Project;

#[test]
fn slot_values_reach_a_command_as_plain_arguments_and_run_nothing_else() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("data"))?;
    std::fs::write(
        dir.join("domain.yml"),
        "intents:\n  - ask\n  - greet\nentities:\n  - query\nslots:\n  query:\n    type: text\n    mappings:\n      - type: from_entity\n        entity: query\n  result:\n    type: text\n    influence_conversation: false\n    mappings:\n      - type: custom\nresponses:\n  utter_done:\n    - text: \"Result {result}, said {output}\"\n  utter_default:\n    - text: The command failed.\n  utter_greet:\n    - text: Hi\nactions:\n  - action_echo\n",
    )?;
    std::fs::write(
        dir.join("data/nlu.yml"),
        "nlu:\n- intent: ask\n  examples: |\n    - look up [x](query)\n    - search for [y](query)\n- intent: greet\n  examples: |\n    - hi\n    - hello\n",
    )?;
    std::fs::write(
        dir.join("data/rules.yml"),
        "rules:\n- rule: ask\n  steps:\n  - intent: ask\n  - action: action_echo\n- rule: greet\n  steps:\n  - intent: greet\n  - action: utter_greet\n",
    )?;
    std::fs::write(
        dir.join("commands.yml"),
        "commands:\n  action_echo:\n    program: echo-args.sh\n    args: [\"--q\", \"{query}\"]\n    timeout: 5\n    response: utter_done\n",
    )?;
    // The program writes each argument on a line of its own, then prints JSON.
    let script = dir.join("echo-args.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > args.out\necho '{\"result\": \"ok\"}'\n",
    )?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
    let p = Project::load(dir)?;
    let (a, v) = check::train_checked(&p)?;
    assert!(v.errors.is_empty(), "{:?}", v.errors);

    let long = "z".repeat(1000);
    let hostile = [
        "; touch pwned",
        "$(touch pwned)",
        "`touch pwned`",
        "| touch pwned &",
        "../../../../etc/passwd",
        "a\"b'c\\d",
        long.as_str(),
    ];
    for h in hostile {
        let mut t = a.new_tracker("c");
        let payload = format!("/ask{}", serde_json::json!({ "query": h }));
        let reply = a.handle(&mut t, &payload, None);
        let args = std::fs::read_to_string(dir.join("args.out"))?;
        let expected: String = h.chars().take(duet_dialog::commands::MAX_ARG).collect();
        assert_eq!(args, format!("--q\n{expected}\n"), "{h}");
        assert!(!dir.join("pwned").exists(), "{h} ran something");
        assert_eq!(t.slots["result"], "ok");
        assert_eq!(
            reply[0].text.as_deref(),
            Some("Result ok, said {\"result\": \"ok\"}")
        );
    }

    // A command that fails gets the default response, not a crash.
    std::fs::write(&script, "#!/bin/sh\nexit 3\n")?;
    let mut t = a.new_tracker("d");
    let reply = a.handle(&mut t, "/ask{\"query\": \"q\"}", None);
    assert_eq!(reply[0].text.as_deref(), Some("The command failed."));

    // A command whose program is missing, or whose template names no slot, is a project error.
    std::fs::write(
        dir.join("commands.yml"),
        "commands:\n  action_echo:\n    program: missing.sh\n    args: [\"{nope}\"]\n",
    )?;
    let v = check::validate(&Project::load(dir)?);
    let all = v.errors.join("\n");
    assert!(
        all.contains("missing.sh") && all.contains("{nope}"),
        "{all}"
    );
    Ok(())
}

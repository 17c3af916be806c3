//! Tokenizers that duet wrote give the same ids in duet as in Hugging Face's Python
//! `tokenizers` (golden.json, made by testdata/tokenizer/make.sh and make_golden.py).

use std::path::PathBuf;

use anyhow::{Context, Result};

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/tokenizer")
}

#[test]
fn duet_and_python_tokenizers_give_the_same_ids() -> Result<()> {
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(testdata().join("golden.json"))?)?;
    let files = golden["files"]
        .as_object()
        .context("golden.json: no files")?;
    assert_eq!(files.len(), 3);
    for (name, rows) in files {
        let tok = duet_tokenizer::load_tokenizer(&testdata().join(name))?;
        for row in rows.as_array().context("rows")? {
            let text = row["text"].as_str().context("text")?;
            let ids = |v: &serde_json::Value| -> Vec<u32> {
                v.as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_u64())
                            .map(|x| x as u32)
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let with = tok.encode(text, true).map_err(|e| anyhow::anyhow!("{e}"))?;
            let without = tok
                .encode(text, false)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            assert_eq!(
                with.get_ids(),
                ids(&row["ids"]).as_slice(),
                "{name}: {text:?}"
            );
            assert_eq!(
                without.get_ids(),
                ids(&row["ids_no_special"]).as_slice(),
                "{name}: {text:?}"
            );
            let decoded = tok
                .decode(without.get_ids(), true)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            assert_eq!(
                decoded,
                row["decoded"].as_str().context("decoded")?,
                "{name}: {text:?}"
            );
            if name == "bpe.json" {
                assert_eq!(decoded, text, "byte-level BPE must round-trip");
            }
            // Python's decode skips special tokens by default; so does this comparison.
        }
    }
    Ok(())
}

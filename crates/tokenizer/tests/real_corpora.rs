//! Byte-level BPE round-trips real text of every corpus in shared/DATA.md, and a full
//! corpus → tokenizer → token shards → batches run on the fortunes.

mod common;

use std::path::PathBuf;

use anyhow::Result;
use duet_corpus::config::Config;
use duet_corpus::read::{self, RawItem};
use duet_corpus::{BuildOptions, Split};
use duet_tokenizer::batch::{LmBatcher, lm::eval_batches};
use duet_tokenizer::{EncodeOptions, Kind, TokenManifest, TrainOptions};

/// Up to `n` cleaned documents from the files under `dir`, spread over the files.
fn sample(dir: PathBuf, n: usize) -> Result<Vec<String>> {
    let cfg = Config::default();
    let (files, _) = read::discover(&[dir], &cfg.input)?;
    let mut out = Vec::new();
    let per_file = (n / files.len().max(1)).max(1);
    for f in &files {
        let mut taken = 0;
        read::read_file(f, &cfg.input, &mut |item| {
            if let RawItem::Doc(d) = item
                && taken < per_file
            {
                let text = if d.html {
                    read::html::extract(&d.text).text
                } else {
                    d.text
                };
                out.push(duet_corpus::clean::clean(&text, &cfg.clean));
                taken += 1;
            }
            Ok(())
        })?;
        if out.len() >= n {
            break;
        }
    }
    Ok(out)
}

#[test]
fn bpe_round_trips_a_sample_of_every_corpus() -> Result<()> {
    let tok = duet_tokenizer::load_tokenizer(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/tokenizer/bpe.json"),
    )?;
    for name in ["fortunes", "fortunes-zh", "python3-doc", "dict-gcide"] {
        let docs = sample(common::data(name), 300)?;
        assert!(
            docs.len() >= 100,
            "{name}: only {} documents sampled",
            docs.len()
        );
        for d in &docs {
            let ids = tok
                .encode(d.as_str(), false)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let back = tok
                .decode(ids.get_ids(), false)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            assert_eq!(&back, d, "{name}: BPE did not round-trip");
        }
    }
    Ok(())
}

#[test]
fn corpus_to_token_shards_to_batches() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let corpus = tmp.path().join("corpus");
    let en = common::data("fortunes");
    let zh = common::data("fortunes-zh");
    duet_corpus::build(
        &Config::default(),
        &BuildOptions {
            inputs: vec![en.join("art"), en.join("science"), zh.join("tang300")],
            out: corpus.clone(),
            force: false,
            strict: false,
            shard: None,
            dedup_against: vec![],
            decontaminate: vec![],
            progress: indicatif::ProgressBar::hidden(),
        },
    )?;
    let tok = duet_tokenizer::train_on_corpus(&corpus, &TrainOptions::new(Kind::Bpe, 1000))?;
    let tok_path = tmp.path().join("tokenizer.json");
    tok.save(&tok_path, false)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let c = duet_tokenizer::measure(&tok, &corpus, Split::Train, 2000)?;
    let (en_bpt, zh_bpt) = (
        c.bytes_per_token("en").unwrap_or(0.0),
        c.bytes_per_token("zh").unwrap_or(0.0),
    );
    println!("bytes per token: en {en_bpt:.2}, zh {zh_bpt:.2}");
    assert!(en_bpt > 2.0 && zh_bpt > 1.5, "en {en_bpt} zh {zh_bpt}");
    let out = tmp.path().join("tokens");
    let bar = indicatif::ProgressBar::hidden();
    let m =
        duet_tokenizer::encode_corpus(&tok_path, &corpus, &out, &EncodeOptions::default(), &bar)?;
    assert_eq!(m.width, 2);
    assert_eq!(
        m.separator.as_ref().map(|s| s.0.as_str()),
        Some("<|endoftext|>")
    );
    let loaded = TokenManifest::load(&out)?;
    assert_eq!(loaded, m);
    let train = loaded.stream(&out, Split::Train)?;
    let docs = m.splits["train"].docs;
    assert_eq!(train.len() as u64, m.splits["train"].tokens);
    // Every document ends with the separator: as many separators as documents.
    let mut all = vec![0u32; train.len()];
    train.read(0, &mut all)?;
    assert_eq!(all.iter().filter(|&&t| t == 0).count() as u64, docs);
    // The first document decodes back to the corpus's first training document.
    let first_end = all.iter().position(|&t| t == 0).unwrap_or(0);
    let first = duet_corpus::SplitReader::open(&corpus, Split::Train)?
        .next()
        .transpose()?
        .map(|d| d.text);
    assert_eq!(tok.decode(&all[..first_end], false).ok(), first);
    let mut b = LmBatcher::new(7, 4, 32);
    let batch = b.next_batch(&train)?;
    assert_eq!(batch.inputs.len(), 4 * 32);
    let valid = loaded.stream(&out, Split::Valid)?;
    let eval = eval_batches(&valid, 8, 32, 1000)?;
    assert_eq!(
        eval.iter().map(|b| b.batch).sum::<usize>(),
        (valid.len() - 1) / 32
    );
    // Encoding again without --force is refused.
    assert!(
        duet_tokenizer::encode_corpus(&tok_path, &corpus, &out, &EncodeOptions::default(), &bar)
            .is_err()
    );
    Ok(())
}

//! duet's TF-IDF + logistic-regression baseline (`duet_train::classify::tfidf::fit`,
//! `duet_model::predict::tfidf`) held to scikit-learn's `TfidfVectorizer` (word n-grams and
//! `char_wb` n-grams, sublinear tf, smoothed idf, each part L2-normalised) and
//! `LogisticRegression` (L2, lbfgs) on the same texts: testdata/classify/tfidf_golden.json,
//! made by testdata/classify/make_golden.py, which spells out every scikit-learn setting. Three
//! cases: three topics (duet's default n-grams), two unequal classes with balanced class
//! weights, and words shorter than the shortest character n-gram (`char_wb` 4–5).
//!
//! Tolerances: duet computes features and weights in f32, scikit-learn in f64. The vocabulary
//! must be identical, idf and feature values equal within 2e-6 (relative; the largest
//! difference seen is 2.7e-7), and class probabilities within 1e-4 (absolute; the largest
//! seen is 7.8e-6), both sides fitted to convergence. Two classes are the one stated
//! difference: duet's softmax over two weight rows with ½‖W‖² on both is scikit-learn's
//! binary problem with C doubled (the golden file records both Cs).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, ensure};
use duet_model::predict::tfidf::{TfidfClassifier, TfidfConfig};
use serde::Deserialize;

/// One case of the golden file.
#[derive(Deserialize)]
struct Case {
    name: String,
    /// duet's C.
    c: f64,
    /// The C scikit-learn was given.
    sklearn_c: f64,
    balanced: bool,
    word_ngrams: [usize; 2],
    char_ngrams: [usize; 2],
    texts: Vec<String>,
    labels: Vec<String>,
    /// Class names in the probabilities' column order (sorted).
    classes: Vec<String>,
    test_texts: Vec<String>,
    idf: BTreeMap<String, f64>,
    /// Features of the first training texts.
    features_train: Vec<BTreeMap<String, f64>>,
    features_test: Vec<BTreeMap<String, f64>>,
    proba_train: Vec<Vec<f64>>,
    proba_test: Vec<Vec<f64>>,
}

#[derive(Deserialize)]
struct Golden {
    cases: Vec<Case>,
}

fn golden() -> Result<Golden> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/classify/tfidf_golden.json"
    );
    Ok(serde_json::from_str(&std::fs::read_to_string(path)?)?)
}

/// `a` within `rel` of `b`, relative to `max(|b|, 1e-3)`.
fn near(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1e-3)
}

/// Fits duet on a case, to convergence, with the case's n-gram ranges, C and class weights.
fn fit(case: &Case) -> Result<TfidfClassifier> {
    let config = TfidfConfig {
        c: case.c,
        balanced: case.balanced,
        word_ngrams: case.word_ngrams,
        char_ngrams: case.char_ngrams,
        tol: 1e-10,
        max_iter: 10_000,
        ..TfidfConfig::default()
    };
    let y = case
        .labels
        .iter()
        .map(|l| case.classes.iter().position(|c| c == l).context("label"))
        .collect::<Result<Vec<usize>>>()?;
    let texts: Vec<&str> = case.texts.iter().map(String::as_str).collect();
    Ok(duet_train::classify::tfidf::fit(
        &config,
        &texts,
        &y,
        &case.classes,
    )?)
}

#[test]
fn tfidf_features_equal_scikit_learns() -> Result<()> {
    for case in golden()?.cases {
        let m = fit(&case)?;
        let name = &case.name;
        // 1) The vocabulary: the same word and character n-grams, no more, no fewer.
        let ours: BTreeSet<&str> = m.terms.iter().map(String::as_str).collect();
        let theirs: BTreeSet<&str> = case.idf.keys().map(String::as_str).collect();
        let only_ours: Vec<_> = ours.difference(&theirs).take(10).collect();
        let only_theirs: Vec<_> = theirs.difference(&ours).take(10).collect();
        ensure!(
            only_ours.is_empty() && only_theirs.is_empty(),
            "{name}: terms only duet has {only_ours:?}, only scikit-learn has {only_theirs:?}"
        );
        // 2) idf.
        for (t, idf) in m.terms.iter().zip(&m.idf) {
            let want = case.idf[t];
            ensure!(
                near(f64::from(*idf), want, 2e-6),
                "{name}: idf of {t:?}: duet {idf}, scikit-learn {want}"
            );
        }
        // 3) The TF-IDF rows, training and unseen texts.
        let texts = case.texts.iter().zip(&case.features_train);
        for (text, want) in texts.chain(case.test_texts.iter().zip(&case.features_test)) {
            let row: BTreeMap<&str, f64> = m
                .row(m.config.terms(text))
                .into_iter()
                .map(|(i, v)| (m.terms[i as usize].as_str(), f64::from(v)))
                .collect();
            ensure!(
                row.keys().copied().eq(want.keys().map(String::as_str)),
                "{name}: {text:?} has features {:?}, scikit-learn {:?}",
                row.keys().collect::<Vec<_>>(),
                want.keys().collect::<Vec<_>>()
            );
            for (t, v) in &row {
                ensure!(
                    near(*v, want[*t], 2e-6),
                    "{name}: {text:?}, {t:?}: duet {v}, scikit-learn {}",
                    want[*t]
                );
            }
        }
    }
    Ok(())
}

#[test]
fn logistic_regression_probabilities_equal_scikit_learns() -> Result<()> {
    for case in golden()?.cases {
        let m = fit(&case)?;
        let name = &case.name;
        let (c, sklearn_c) = (case.c, case.sklearn_c);
        // Two classes: scikit-learn's C is twice duet's for the same objective (see above).
        let expected_c = if case.classes.len() == 2 { 2.0 * c } else { c };
        ensure!(
            sklearn_c == expected_c,
            "{name}: C {c}, scikit-learn's {sklearn_c}"
        );
        for (texts, want) in [
            (&case.texts, &case.proba_train),
            (&case.test_texts, &case.proba_test),
        ] {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            for ((text, got), want) in texts.iter().zip(m.predict_proba(&refs)).zip(want) {
                ensure!(
                    got.iter()
                        .zip(want)
                        .all(|(g, w)| (f64::from(*g) - w).abs() < 1e-4),
                    "{name}: {text:?}: duet {got:?}, scikit-learn {want:?}"
                );
            }
        }
    }
    Ok(())
}

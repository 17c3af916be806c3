//! NLU cross-validation: intents and entities of held-out examples.

use serde::Serialize;

use crate::project::Project;

/// NLU cross-validation: intents and entities of held-out examples.
#[derive(Debug, Clone, Serialize)]
pub struct NluCrossValidation {
    /// Folds.
    pub folds: usize,
    /// Intent metrics pooled over the folds (below the threshold: `nlu_fallback`).
    pub intents: duet_eval::classification::Metrics,
    /// Share of held-out examples whose best-ranked intent is right (no fallback threshold).
    pub top1_accuracy: f64,
    /// Entity-level precision, recall and F1 pooled over the folds.
    pub entities: duet_eval::entities::EntityMetrics,
}

/// Trains NLU `k` times, each time without one stratified fold of the examples, and scores the
/// held-out examples: intent accuracy, precision, recall, F1 and confusion; entity-level
/// precision, recall and F1 (type and both boundaries right).
pub fn nlu_cross_validation(p: &Project, k: usize, seed: u64) -> crate::Result<NluCrossValidation> {
    use duet_train::tokens::data::{Mention, from_mentions, parse_inline};
    let examples = p.intent_examples();
    let mut labels: Vec<String> = examples.iter().map(|(i, _)| i.clone()).collect();
    labels.sort();
    labels.dedup();
    let y: Vec<usize> = examples
        .iter()
        .map(|(i, _)| labels.binary_search(i).unwrap_or(0))
        .collect();
    let fold = duet_eval::folds::stratified_folds(&y, k, seed)
        .map_err(|e| crate::Error::Model(format!("cross-validation: {e}")))?;
    let mut pred = vec![0usize; examples.len()];
    let mut top1_right = 0usize;
    let mut truth_tags = vec![Vec::new(); examples.len()];
    let mut pred_tags = vec![Vec::new(); examples.len()];
    for f in 0..k {
        let train: Vec<(String, String)> = examples
            .iter()
            .zip(&fold)
            .filter(|(_, g)| **g != f)
            .map(|(e, _)| e.clone())
            .collect();
        let nlu = crate::nlu::Nlu::train_on(p, &train)?;
        for (i, (_, ex)) in examples.iter().enumerate().filter(|(i, _)| fold[*i] == f) {
            let (plain, mentions) = parse_inline(ex).map_err(crate::Error::Model)?;
            let parsed = nlu.parse(&plain);
            let name = parsed
                .retrieval_intent()
                .map_or_else(|| parsed.intent.name.clone(), str::to_owned);
            pred[i] = labels.binary_search(&name).unwrap_or(labels.len());
            let base = labels[y[i]].split('/').next().unwrap_or_default();
            if parsed.intent_ranking.first().map(|r| r.name.as_str()) == Some(base) {
                top1_right += 1;
            }
            let byte = |c: usize| plain.char_indices().nth(c).map_or(plain.len(), |(b, _)| b);
            let found: Vec<Mention> = parsed
                .entities
                .iter()
                .filter_map(|e| {
                    Some(Mention {
                        start: byte(e.start?),
                        end: byte(e.end?),
                        kind: e.entity.clone(),
                    })
                })
                .collect();
            truth_tags[i] = from_mentions(String::new(), plain.clone(), &mentions).tags;
            pred_tags[i] = from_mentions(String::new(), plain, &found).tags;
        }
    }
    let mut names = labels.clone();
    names.push(crate::nlu::NLU_FALLBACK.into());
    Ok(NluCrossValidation {
        folds: k,
        intents: duet_eval::classification::Metrics::compute(&y, &pred, None, &names),
        top1_accuracy: top1_right as f64 / examples.len().max(1) as f64,
        entities: duet_eval::entities::score(&truth_tags, &pred_tags),
    })
}

/// Markdown report of NLU cross-validation.
pub fn nlu_report(cv: &NluCrossValidation) -> String {
    let mut s = duet_eval::report::markdown(
        &format!("NLU {}-fold cross-validation: intents", cv.folds),
        &cv.intents,
        "",
    );
    s.push_str(
        "\n## Entities\n\n| entity | precision | recall | F1 | support |\n|---|---|---|---|---|\n",
    );
    for (k, m) in &cv.entities.per_type {
        s.push_str(&format!(
            "| {k} | {:.4} | {:.4} | {:.4} | {} |\n",
            m.precision, m.recall, m.f1, m.support
        ));
    }
    let m = &cv.entities.micro;
    s.push_str(&format!(
        "| **micro** | {:.4} | {:.4} | {:.4} | {} |\n",
        m.precision, m.recall, m.f1, m.support
    ));
    s
}

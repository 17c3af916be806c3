//! Held-out story prediction: how well the policies predict stories they were not trained on.

use serde::Serialize;

use crate::project::Project;
use crate::tracker::{Event, Tracker};

/// Held-out story prediction: the policies trained without some stories predict their actions.
#[derive(Debug, Clone, Serialize)]
pub struct HeldOut {
    /// Folds over the stories (as many as stories: leave one out).
    pub folds: usize,
    /// Stories held out (before `or:` and checkpoint expansion).
    pub stories: usize,
    /// Actions predicted.
    pub actions: usize,
    /// Right with the whole ensemble (rules, memoisation, the trained policy, fallback).
    pub right_with_learned: usize,
    /// Right without the trained policy.
    pub right_without_learned: usize,
    /// Folds whose training stopped on a contradiction (their stories are not counted).
    pub skipped_folds: usize,
}

/// Trains the policies `k` times, each time without one fold of the stories (rules always
/// stay), and predicts every action of the held-out stories from their own events as `rasa test`
/// does, with and without the trained policy. Stories that checkpoints join are held out with
/// the story they start from.
pub fn policy_held_out(p: &Project, k: usize) -> crate::Result<HeldOut> {
    use crate::assistant::{expand_stories_from, train_learned, training_trackers};
    use crate::policy::{Featurizer, Policies, PolicyChoice};
    let (all, rules) = training_trackers(p);
    let origin: Vec<usize> = expand_stories_from(p).into_iter().map(|(i, _)| i).collect();
    let n = p.stories.len();
    let k = k.clamp(1, n.max(1));
    let mut out = HeldOut {
        folds: k,
        stories: n,
        actions: 0,
        right_with_learned: 0,
        right_without_learned: 0,
        skipped_folds: 0,
    };
    for fold in 0..k {
        let held = |i: usize| i % k == fold;
        let train: Vec<_> = all
            .iter()
            .zip(&origin)
            .filter(|(_, o)| !held(**o))
            .map(|(t, _)| t.clone())
            .collect();
        let test: Vec<_> = all
            .iter()
            .zip(&origin)
            .filter(|(_, o)| held(**o))
            .map(|(t, _)| t.clone())
            .collect();
        let choice = PolicyChoice::of(&p.config);
        let Ok(policies) = Policies::train(Featurizer::new(&p.domain), choice, &train, &rules)
        else {
            out.skipped_folds += 1;
            continue;
        };
        let learned = train_learned(p, &policies, &train, &rules)?;
        for t in &test {
            let mut tr = Tracker::new(&t.name, policies.featurizer.initial.clone());
            for (j, e) in t.events.iter().enumerate() {
                if let Event::Action { name: gold, .. } = e
                    && j > 0
                {
                    for (with, right) in [
                        (true, &mut out.right_with_learned),
                        (false, &mut out.right_without_learned),
                    ] {
                        let l = if with { learned.as_ref() } else { None };
                        let mut view = tr.clone();
                        let mut pred = policies.predict_with(&view, l);
                        if pred.action != *gold
                            && view.active_loop_name() == Some(pred.action.as_str())
                        {
                            view.apply(Event::Rejected {
                                name: pred.action.clone(),
                                timestamp: 0.0,
                            });
                            pred = policies.predict_with(&view, l);
                        }
                        if pred.action == *gold {
                            *right += 1;
                        }
                    }
                    out.actions += 1;
                }
                tr.apply(e.clone());
            }
        }
    }
    Ok(out)
}

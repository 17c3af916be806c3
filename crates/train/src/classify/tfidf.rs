//! Fitting the TF-IDF + logistic-regression baseline (its model, features and prediction are
//! `duet_model::predict::tfidf`): multinomial logistic regression with L2 regularisation fitted
//! by L-BFGS on sparse rows. Trains in about a second on a few thousand messages.
//!
//! No crate fits: `linfa-logistic` wants dense matrices, and a dense TF-IDF matrix of 150,000
//! features is gigabytes. The optimizer is about a hundred lines.

use std::collections::HashMap;

use duet_model::predict::tfidf::{
    SparseRow, TfidfClassifier, TfidfConfig, scores, softmax_in_place as softmax,
};
use rayon::prelude::*;

use crate::{Error, Result};

/// Fits the vocabulary, idf and the classifier on `texts` with class indices `y` into
/// `labels`.
pub fn fit(
    config: &TfidfConfig,
    texts: &[&str],
    y: &[usize],
    labels: &[String],
) -> Result<TfidfClassifier> {
    if texts.len() != y.len() || texts.is_empty() {
        return Err(Error::Config(format!(
            "{} texts for {} labels",
            texts.len(),
            y.len()
        )));
    }
    let docs: Vec<HashMap<String, u32>> = texts.par_iter().map(|t| config.terms(t)).collect();
    let mut df: HashMap<&str, usize> = HashMap::new();
    for d in &docs {
        for t in d.keys() {
            *df.entry(t.as_str()).or_default() += 1;
        }
    }
    let mut terms: Vec<&str> = df
        .iter()
        .filter(|(_, n)| **n >= config.min_df)
        .map(|(t, _)| *t)
        .collect();
    terms.sort_unstable();
    let n = texts.len() as f32;
    let idf: Vec<f32> = terms
        .iter()
        .map(|t| ((1.0 + n) / (1.0 + df[t] as f32)).ln() + 1.0)
        .collect();
    let mut model = TfidfClassifier::new(
        config.clone(),
        labels.to_vec(),
        terms.iter().map(|t| (*t).to_owned()).collect(),
        idf,
    );
    let rows: Vec<SparseRow> = docs.into_par_iter().map(|d| model.row(d)).collect();
    let k = labels.len();
    let counts: Vec<usize> = (0..k)
        .map(|c| y.iter().filter(|&&l| l == c).count())
        .collect();
    let weights: Vec<f64> = y
        .iter()
        .map(|&l| {
            if config.balanced {
                y.len() as f64 / (k as f64 * counts[l].max(1) as f64)
            } else {
                1.0
            }
        })
        .collect();
    let (w, b) = fit_softmax(&rows, y, &weights, k, model.terms.len(), config);
    model.weights = w;
    model.bias = b;
    Ok(model)
}

/// The objective `C Σ_i w_i CE_i + ½‖W‖²` (no penalty on intercepts) and its gradient, at the
/// flat parameter vector `theta` = [W (k × f), b (k)].
fn objective(
    theta: &[f64],
    rows: &[SparseRow],
    y: &[usize],
    sw: &[f64],
    k: usize,
    f: usize,
    c: f64,
) -> (f64, Vec<f64>) {
    let wf: Vec<f32> = theta[..k * f].iter().map(|&v| v as f32).collect();
    let bf: Vec<f32> = theta[k * f..].iter().map(|&v| v as f32).collect();
    // One dense gradient accumulator per thread, not per rayon task: each is k·f long.
    let min_len = rows
        .len()
        .div_ceil(rayon::current_num_threads().max(1))
        .max(1);
    let (loss, mut grad) = rows
        .par_iter()
        .zip(y.par_iter().zip(sw.par_iter()))
        .with_min_len(min_len)
        .fold(
            || (0f64, vec![0f64; k * f + k]),
            |(mut loss, mut g), (row, (&yi, &wi))| {
                let mut p = scores(row, &wf, &bf, f);
                softmax(&mut p);
                loss -= wi * p[yi].max(1e-300).ln();
                for cls in 0..k {
                    let d = wi * (p[cls] - if cls == yi { 1.0 } else { 0.0 });
                    if d != 0.0 {
                        for &(i, v) in row {
                            g[cls * f + i as usize] += d * f64::from(v);
                        }
                        g[k * f + cls] += d;
                    }
                }
                (loss, g)
            },
        )
        .reduce(
            || (0f64, vec![0f64; k * f + k]),
            |(la, mut ga), (lb, gb)| {
                ga.iter_mut().zip(gb).for_each(|(a, b)| *a += b);
                (la + lb, ga)
            },
        );
    let mut total = c * loss;
    for (i, gi) in grad.iter_mut().enumerate() {
        *gi *= c;
        if i < k * f {
            *gi += theta[i];
            total += 0.5 * theta[i] * theta[i];
        }
    }
    (total, grad)
}

/// Minimises the objective with L-BFGS (memory 10, backtracking line search) until the
/// largest gradient entry is within `tol` (scaled as scikit-learn scales it); returns weights
/// and intercepts.
fn fit_softmax(
    rows: &[SparseRow],
    y: &[usize],
    sw: &[f64],
    k: usize,
    f: usize,
    config: &TfidfConfig,
) -> (Vec<f32>, Vec<f32>) {
    let (c, max_iter, tol) = (config.c, config.max_iter, config.tol);
    let dim = k * f + k;
    // The objective is C·Σ loss + ½‖w‖²; scikit-learn's tolerance applies to the gradient of
    // the mean loss + ‖w‖²/(2·C·n), which is this one's divided by C·n.
    let gtol = tol * c * sw.iter().sum::<f64>();
    let mut x = vec![0f64; dim];
    let (mut fx, mut g) = objective(&x, rows, y, sw, k, f, c);
    let mut s_hist: Vec<Vec<f64>> = Vec::new();
    let mut y_hist: Vec<Vec<f64>> = Vec::new();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let g0 = dot(&g, &g).sqrt().max(1e-12);
    for _ in 0..max_iter {
        // Two-loop recursion: d = -H g.
        let mut q = g.clone();
        let mut alphas = Vec::with_capacity(s_hist.len());
        for (s, yv) in s_hist.iter().zip(&y_hist).rev() {
            let rho = 1.0 / dot(yv, s);
            let a = rho * dot(s, &q);
            q.iter_mut().zip(yv).for_each(|(q, y)| *q -= a * y);
            alphas.push((rho, a));
        }
        if let (Some(s), Some(yv)) = (s_hist.last(), y_hist.last()) {
            let gamma = dot(s, yv) / dot(yv, yv);
            q.iter_mut().for_each(|v| *v *= gamma);
        } else {
            let scale = 1.0 / g0;
            q.iter_mut().for_each(|v| *v *= scale);
        }
        for ((s, yv), (rho, a)) in s_hist.iter().zip(&y_hist).zip(alphas.into_iter().rev()) {
            let b = rho * dot(yv, &q);
            q.iter_mut().zip(s).for_each(|(q, s)| *q += (a - b) * s);
        }
        let d: Vec<f64> = q.iter().map(|v| -v).collect();
        let slope = dot(&g, &d);
        if slope >= 0.0 {
            s_hist.clear();
            y_hist.clear();
            continue;
        }
        // Backtracking line search (Armijo).
        let mut step = 1.0;
        let (mut xn, mut fn_, mut gn);
        loop {
            xn = x
                .iter()
                .zip(&d)
                .map(|(x, d)| x + step * d)
                .collect::<Vec<f64>>();
            (fn_, gn) = objective(&xn, rows, y, sw, k, f, c);
            if fn_ <= fx + 1e-4 * step * slope || step < 1e-10 {
                break;
            }
            step *= 0.5;
        }
        let s: Vec<f64> = xn.iter().zip(&x).map(|(a, b)| a - b).collect();
        let yv: Vec<f64> = gn.iter().zip(&g).map(|(a, b)| a - b).collect();
        if dot(&s, &yv) > 1e-12 {
            s_hist.push(s);
            y_hist.push(yv);
            if s_hist.len() > 10 {
                s_hist.remove(0);
                y_hist.remove(0);
            }
        }
        let improvement = (fx - fn_).abs() / fx.abs().max(1.0);
        x = xn;
        fx = fn_;
        g = gn;
        let gmax = g.iter().fold(0f64, |m, v| m.max(v.abs()));
        if gmax <= gtol || dot(&g, &g).sqrt() < 1e-5 * g0 || improvement < 1e-9 {
            break;
        }
    }
    (
        x[..k * f].iter().map(|&v| v as f32).collect(),
        x[k * f..].iter().map(|&v| v as f32).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separates_two_topics_and_round_trips() {
        let texts = [
            "win cash prize now",
            "free prize claim now",
            "urgent win money",
            "see you at lunch",
            "meeting moved to noon",
            "lunch at noon then",
        ];
        let y = [1, 1, 1, 0, 0, 0];
        let labels = vec!["ham".to_owned(), "spam".to_owned()];
        let m = fit(&TfidfConfig::default(), &texts, &y, &labels).unwrap();
        let p = m.predict_proba(&["claim your cash prize", "lunch meeting at noon"]);
        assert!(p[0][1] > 0.6 && p[1][0] > 0.6, "{p:?}");
        let dir = tempfile::tempdir().unwrap();
        m.save(dir.path()).unwrap();
        let back = TfidfClassifier::load(dir.path()).unwrap();
        assert_eq!(
            back.predict_proba(&["claim your cash prize"]),
            m.predict_proba(&["claim your cash prize"])
        );
    }
}

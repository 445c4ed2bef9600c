//! SVC membership-inference attack (SPEC §6): per-sample features from softmax outputs and
//! the forget-efficacy and training-privacy protocols of the reference.
//!
//! The modified entropy implemented here is the published formula
//! −(1−p_y)·log p_y − Σ_{i≠y} p_i·log(1−p_i). The reference code has two slips: it uses
//! log p_i where log(1−p_i) belongs in the sum, and it indexes the label column-wise (the
//! per-sample label picks a column of the whole batch instead of the sample's own entry).
//! We follow the formula, not the slips, so `m_entropy` scores differ from the reference's.

use crate::eval::svc;
use anyhow::{ensure, Context, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// Lower clamp of every logarithm argument.
const LOG_FLOOR: f64 = 1e-30;

/// The five per-sample attack features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureKind {
    /// 1 if argmax p = y else 0.
    Correctness,
    /// p_y.
    Confidence,
    /// −Σ p log p.
    Entropy,
    /// Modified entropy (see the module doc).
    MEntropy,
    /// The whole probability vector.
    Prob,
}

impl FeatureKind {
    /// All kinds in `eval_result.json` order.
    pub const ALL: [FeatureKind; 5] = [
        FeatureKind::Correctness,
        FeatureKind::Confidence,
        FeatureKind::Entropy,
        FeatureKind::MEntropy,
        FeatureKind::Prob,
    ];

    /// Key used in `eval_result.json`.
    pub fn name(self) -> &'static str {
        match self {
            FeatureKind::Correctness => "correctness",
            FeatureKind::Confidence => "confidence",
            FeatureKind::Entropy => "entropy",
            FeatureKind::MEntropy => "m_entropy",
            FeatureKind::Prob => "prob",
        }
    }
}

fn ln(v: f64) -> f64 {
    v.max(LOG_FLOOR).ln()
}

/// Features of one kind for softmax rows `probs` (n×c) and `labels`; returns (row-major n×d, d).
///
/// Labels must lie in `0..c` and `probs.len()` must be `labels.len() * c` (the protocols
/// check this through [`Outputs::validate`]); violations panic.
pub fn features(kind: FeatureKind, probs: &[f32], labels: &[i64], c: usize) -> (Vec<f32>, usize) {
    assert_eq!(probs.len(), labels.len() * c, "features: probs is not n×c");
    if kind == FeatureKind::Prob {
        return (probs.to_vec(), c);
    }
    let out = probs
        .chunks_exact(c)
        .zip(labels)
        .map(|(row, &y)| {
            let y = usize::try_from(y)
                .ok()
                .filter(|&y| y < c)
                .expect("label out of range");
            let py = row[y] as f64;
            let v = match kind {
                FeatureKind::Correctness => (argmax_first(row) == y) as u8 as f64,
                FeatureKind::Confidence => py,
                FeatureKind::Entropy => -row.iter().map(|&p| p as f64 * ln(p as f64)).sum::<f64>(),
                FeatureKind::MEntropy => {
                    let rest: f64 = row
                        .iter()
                        .enumerate()
                        .filter(|&(k, _)| k != y)
                        .map(|(_, &p)| p as f64 * ln(1.0 - p as f64))
                        .sum();
                    -(1.0 - py) * ln(py) - rest
                }
                FeatureKind::Prob => unreachable!(),
            };
            v as f32
        })
        .collect();
    (out, 1)
}

/// Softmax outputs and labels of one sample set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outputs {
    /// Row-major n×num_classes softmax probabilities.
    pub probs: Vec<f32>,
    /// True labels, n of them.
    pub labels: Vec<i64>,
    /// Number of classes.
    pub num_classes: usize,
}

impl Outputs {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Checks shapes, label range and finiteness; `what` names the set in errors.
    pub fn validate(&self, what: &str) -> Result<()> {
        let c = self.num_classes;
        ensure!(c >= 1, "{what} outputs: num_classes is 0");
        ensure!(
            self.probs.len() == self.labels.len() * c,
            "{what} outputs: {} probabilities for {} labels × {} classes",
            self.probs.len(),
            self.labels.len(),
            c
        );
        if let Some(k) = self.labels.iter().position(|&y| y < 0 || y as usize >= c) {
            anyhow::bail!(
                "{what} outputs: label {} at sample {k} outside 0..{c}",
                self.labels[k]
            );
        }
        if let Some(k) = self.probs.iter().position(|p| !p.is_finite()) {
            anyhow::bail!("{what} outputs: non-finite probability at sample {}", k / c);
        }
        Ok(())
    }

    fn feats(&self, kind: FeatureKind, rows: Range<usize>) -> (Vec<f32>, usize) {
        let c = self.num_classes;
        features(
            kind,
            &self.probs[rows.start * c..rows.end * c],
            &self.labels[rows],
            c,
        )
    }
}

/// Attack scores per feature kind (keys as in `eval_result.json`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MiaScores {
    /// Score with the correctness feature.
    pub correctness: f64,
    /// Score with the confidence feature.
    pub confidence: f64,
    /// Score with the entropy feature.
    pub entropy: f64,
    /// Score with the modified-entropy feature.
    pub m_entropy: f64,
    /// Score with the whole probability vector.
    pub prob: f64,
}

impl MiaScores {
    fn from_vec(v: &[f64]) -> Self {
        Self {
            correctness: v[0],
            confidence: v[1],
            entropy: v[2],
            m_entropy: v[3],
            prob: v[4],
        }
    }

    /// Score of one feature kind.
    pub fn get(&self, kind: FeatureKind) -> f64 {
        match kind {
            FeatureKind::Correctness => self.correctness,
            FeatureKind::Confidence => self.confidence,
            FeatureKind::Entropy => self.entropy,
            FeatureKind::MEntropy => self.m_entropy,
            FeatureKind::Prob => self.prob,
        }
    }
}

/// A set of rows of one [`Outputs`].
type Part<'a> = (&'a Outputs, Range<usize>);

/// Fits the SVC on shadow members/non-members and returns the predictions for each target.
fn attack(
    kind: FeatureKind,
    members: Part,
    non_members: Part,
    targets: &[Part],
) -> Result<Vec<Vec<bool>>> {
    let (xm, d) = members.0.feats(kind, members.1.clone());
    let (xn, _) = non_members.0.feats(kind, non_members.1.clone());
    let mut x = xm;
    let nm = x.len() / d;
    x.extend_from_slice(&xn);
    let mut y = vec![true; nm];
    y.resize(x.len() / d, false);
    let model = svc::fit(&x, d, &y)
        .with_context(|| format!("SVC attack on the {} feature", kind.name()))?;
    Ok(targets
        .iter()
        .map(|(o, r)| model.predict(&o.feats(kind, r.clone()).0))
        .collect())
}

fn frac(pred: &[bool], value: bool) -> f64 {
    pred.iter().filter(|&&p| p == value).count() as f64 / pred.len() as f64
}

fn check_classes(sets: &[(&Outputs, &str)]) -> Result<()> {
    for (o, what) in sets {
        o.validate(what)?;
    }
    let c = sets[0].0.num_classes;
    for (o, what) in sets {
        ensure!(
            o.num_classes == c,
            "{what} outputs have {} classes, {} have {c}",
            o.num_classes,
            sets[0].1
        );
    }
    Ok(())
}

/// The attack's shadow members are the first |test| retain samples, so the retain set must be
/// at least as large as the test set; unlearning checks this before it starts.
pub fn check_shadow_sizes(retain: usize, test: usize) -> Result<()> {
    ensure!(
        retain >= test,
        "forget efficacy: retain set ({retain}) is shorter than the test set ({test}); shadow \
         members are the first |test| retain samples (for a scaled-down run, cut the test set \
         with --test_subset)"
    );
    Ok(())
}

/// Forget efficacy: shadow members = first |test| of retain, non-members = test; returns per
/// feature the fraction of `forget` predicted non-member. Errors if retain is shorter than test.
///
/// The five SVCs run in parallel on rayon (each has its own ≤ 200 MB kernel cache).
pub fn forget_efficacy(retain: &Outputs, test: &Outputs, forget: &Outputs) -> Result<MiaScores> {
    check_classes(&[(retain, "retain"), (test, "test"), (forget, "forget")])?;
    let n = test.len();
    ensure!(n > 0, "forget efficacy: the test set is empty");
    ensure!(
        !forget.is_empty(),
        "forget efficacy: the forget set is empty"
    );
    check_shadow_sizes(retain.len(), n)?;
    let scores = FeatureKind::ALL
        .par_iter()
        .map(|&kind| {
            let p = attack(
                kind,
                (retain, 0..n),
                (test, 0..n),
                &[(forget, 0..forget.len())],
            )?;
            Ok(frac(&p[0], false))
        })
        .collect::<Result<Vec<f64>>>()?;
    Ok(MiaScores::from_vec(&scores))
}

/// Training privacy: shadow R[:N/2] vs test[:N/2] (N = |test|); targets R[N/2:] (members) and
/// test[N/2:] (non-members); score = mean of the two target accuracies.
pub fn training_privacy(retain: &Outputs, test: &Outputs) -> Result<MiaScores> {
    check_classes(&[(retain, "retain"), (test, "test")])?;
    let n = test.len();
    let h = n / 2;
    ensure!(
        h >= 1 && n - h >= 1,
        "training privacy: need at least 2 test samples, got {n}"
    );
    ensure!(
        retain.len() > h,
        "training privacy: retain set ({}) must be longer than |test|/2 = {h}",
        retain.len()
    );
    let scores = FeatureKind::ALL
        .par_iter()
        .map(|&kind| {
            let p = attack(
                kind,
                (retain, 0..h),
                (test, 0..h),
                &[(retain, h..retain.len()), (test, h..n)],
            )?;
            Ok((frac(&p[0], true) + frac(&p[1], false)) / 2.0)
        })
        .collect::<Result<Vec<f64>>>()?;
    Ok(MiaScores::from_vec(&scores))
}

/// Index of the largest value; the first maximum wins, as `torch.argmax` / `numpy.argmax`.
pub fn argmax_first(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold(0, |best, (k, &p)| if p > row[best] { k } else { best })
}

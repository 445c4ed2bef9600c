//! Per-example forgetting audit (SPEC §6b): the challenge forgetting-quality score F with its
//! per-example ε, the final score, the null calibration F_null, the reduced U-LiRA attack,
//! percentile bootstrap intervals over forget examples and the paired ranking of two methods.
//!
//! Everything here is a pure function of plain numbers: for each forget example, the N
//! statistics (logit-scaled confidences) of the N unlearned and the N retrained models, and
//! each model's retain and test accuracy. Per-example data is example-major: `pool[x][i]` is
//! model i's statistic on forget example x; model order carries no meaning (no pairing).
//!
//! Choices where SPEC §6b leaves room (each also noted at its item):
//! - Rates are exact fractions k/N in f64 (the challenge code rounds them through float32).
//! - Threshold grids are `numpy.linspace` (i·step + start, last = stop), and the double-rule
//!   right edges run from (min + w) − 2 to max + 2 of the double-rule positive group, as the
//!   challenge code computes them; their count is ceil(100·(hi − lo)), ≈ 400.
//! - Equal ranges: the double-rule positive is the single-rule negative group (the challenge
//!   code swaps when range_pos ≥ range_neg).
//! - A rule whose two ε terms are both skipped (log argument ≤ 0) is discarded like a rule
//!   with exactly one of FPR, FNR at 0.
//! - Both ranges 0: ε = CAP, flagged as [`EpsilonSource::BothRangesZero`].
//! - U-LiRA's pooled σ (N < 64) pools the two fitted groups of the same example (ddof 0,
//!   deviations from each group's mean); a score of exactly 0 is predicted "retrained";
//!   TPR at 1 % FPR uses FPR < 1 % strictly (LiRA's convention); the rule is score ≥ t.
//! - Bootstrap: replicate b draws `RandomState(seed).randint(0, n, size=n)` in order, first
//!   all example resamples, then the unlearned-model and the retrained-model resamples used
//!   for the accuracy ratios; intervals are `numpy.quantile` (linear) of the replicates.
//! - Paired ranking: A ranks above B when the ΔF = F_A − F_B interval lies strictly above 0
//!   and AUC_A < AUC_B (lower U-LiRA AUC = less distinguishable from retraining).

use crate::data::rng::RandomState;
use anyhow::{bail, ensure, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// δ of the (ε, δ) bound.
pub const DELTA: f64 = 1e-5;
/// Largest ε reported; perfect separation (ε = ∞) and peaky pools get it.
pub const EPSILON_CAP: f64 = 50.0;
/// Threshold density of the grids (thresholds per unit of the statistic).
pub const THRESHOLDS_PER_UNIT: f64 = 100.0;
/// Half-width of the double-rule search windows.
pub const DOUBLE_BUFFER: f64 = 2.0;
/// Range ratio below which ε = CAP without any rule.
pub const MIN_RANGE_RATIO: f64 = 0.01;
/// Width of one score bin of ε.
pub const BIN_WIDTH: f64 = 0.5;
/// Additive guard inside the logarithms of the logit-scaled confidence.
pub const CONFIDENCE_GUARD: f64 = 1e-45;
/// Lower bound of every U-LiRA standard deviation.
pub const ULIRA_MIN_SIGMA: f64 = 1e-3;
/// U-LiRA pools σ over the two groups of an example when N is below this.
pub const ULIRA_POOLED_BELOW: usize = 64;
/// False-positive rate at which U-LiRA's TPR is reported (strictly below it).
pub const ULIRA_LOW_FPR: f64 = 0.01;
/// Default number of bootstrap replicates.
pub const DEFAULT_RESAMPLES: usize = 2000;
/// Default confidence level of the intervals.
pub const DEFAULT_LEVEL: f64 = 0.95;
/// Default number of random relabellings behind F_null.
pub const DEFAULT_NULL_RELABELLINGS: usize = 20;

/// Logit-scaled confidence of label `y`: ln(p + 1e-45) − ln(q + 1e-45), where p is the
/// softmax (f64, after subtracting the largest logit) of `y` and q the sum of the others.
pub fn logit_scaled_confidence(logits: &[f64], y: usize) -> Result<f64> {
    ensure!(
        y < logits.len(),
        "label {y} out of range for {} logits",
        logits.len()
    );
    ensure!(
        logits.iter().all(|v| v.is_finite()),
        "non-finite logit in {logits:?}"
    );
    let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = logits.iter().map(|&l| (l - max).exp()).collect();
    let total: f64 = exps.iter().sum();
    let probs: Vec<f64> = exps.iter().map(|&e| e / total).collect();
    let p = probs[y];
    let q: f64 = probs
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != y)
        .map(|(_, &v)| v)
        .sum();
    Ok((p + CONFIDENCE_GUARD).ln() - (q + CONFIDENCE_GUARD).ln())
}

/// How a per-example ε was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EpsilonSource {
    /// Maximum over the surviving single- and double-threshold rules.
    Rules,
    /// (smaller range)/(larger range) < 0.01: ε = CAP without rules.
    PeakyRange,
    /// Both groups constant (undefined in the challenge code): ε = CAP, flagged.
    BothRangesZero,
}

/// One forget example's ε with its provenance.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Epsilon {
    /// ε in [0, CAP].
    pub value: f64,
    /// How it was obtained.
    pub source: EpsilonSource,
    /// Whether the retrained group was the (single-rule) positive one: median_R > median_U.
    pub retrained_positive: bool,
}

/// The median as `numpy.median` (mean of the two middle values for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// `numpy.linspace(start, stop, num)`: i·step + start with the last point exactly `stop`.
pub fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    match num {
        0 => vec![],
        1 => vec![start],
        _ => {
            let div = (num - 1) as f64;
            let delta = stop - start;
            let step = delta / div;
            let mut y: Vec<f64> = if step == 0.0 {
                (0..num).map(|i| i as f64 / div * delta + start).collect()
            } else {
                (0..num).map(|i| i as f64 * step + start).collect()
            };
            y[num - 1] = stop;
            y
        }
    }
}

/// max − min of a non-empty slice.
fn range(v: &[f64]) -> f64 {
    let max = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let min = v.iter().cloned().fold(f64::INFINITY, f64::min);
    max - min
}

/// Checks that the two pools of one example are usable: same N ≥ 2, finite values.
fn check_pair(unlearned: &[f64], retrained: &[f64]) -> Result<usize> {
    let n = unlearned.len();
    ensure!(
        n == retrained.len(),
        "{n} unlearned values but {} retrained values: both pools need the same N",
        retrained.len()
    );
    ensure!(n >= 2, "N = {n} models per pool; the audit needs N ≥ 2");
    ensure!(
        unlearned.iter().chain(retrained).all(|v| v.is_finite()),
        "non-finite statistic in the pools"
    );
    Ok(n)
}

/// The set of (false-positive count, false-negative count) pairs reached by some rule.
struct RateSet {
    n: usize,
    seen: Vec<bool>,
}

impl RateSet {
    fn new(n: usize) -> Self {
        RateSet {
            n,
            seen: vec![false; (n + 1) * (n + 1)],
        }
    }

    fn mark(&mut self, fp: usize, fnc: usize) {
        self.seen[fp * (self.n + 1) + fnc] = true;
    }

    /// Max ε over the surviving rules (SPEC §6b.1 step 5), `None` if none survives.
    fn max_epsilon(&self) -> Option<f64> {
        let n = self.n as f64;
        let mut best: Option<f64> = None;
        for fp in 0..=self.n {
            for fnc in 0..=self.n {
                if !self.seen[fp * (self.n + 1) + fnc] {
                    continue;
                }
                if let Some(e) = rule_epsilon(fp as f64 / n, fnc as f64 / n) {
                    best = Some(best.map_or(e, |b: f64| b.max(e)));
                }
            }
        }
        best
    }
}

/// ε of one rule from its FPR and FNR; `None` when the rule is discarded.
///
/// FPR = FNR = 0 gives +∞; exactly one at 0 discards the rule; otherwise
/// max(ln(1−δ−FPR) − ln FNR, ln(1−δ−FNR) − ln FPR) over the terms whose log argument is
/// positive, clipped at 0. A rule with neither term left is discarded (our choice; the
/// challenge code's NaN does the same).
pub fn rule_epsilon(fpr: f64, fnr: f64) -> Option<f64> {
    if fpr == 0.0 && fnr == 0.0 {
        return Some(f64::INFINITY);
    }
    if fpr == 0.0 || fnr == 0.0 {
        return None;
    }
    let mut best: Option<f64> = None;
    let a = 1.0 - DELTA - fpr;
    if a > 0.0 {
        best = Some(a.ln() - fnr.ln());
    }
    let b = 1.0 - DELTA - fnr;
    if b > 0.0 {
        let t = b.ln() - fpr.ln();
        best = Some(best.map_or(t, |x| x.max(t)));
    }
    best.map(|e| e.max(0.0))
}

/// Number of sorted values < t.
fn count_below(sorted: &[f64], t: f64) -> usize {
    sorted.partition_point(|&v| v < t)
}

/// Number of sorted values ≤ t.
fn count_at_most(sorted: &[f64], t: f64) -> usize {
    sorted.partition_point(|&v| v <= t)
}

/// Per-example ε (SPEC §6b.1, the challenge's `_get_epsilons`) from the N unlearned and N
/// retrained statistics of one forget example.
///
/// Counting uses binary search on sorted values, which equals scanning the threshold grid.
/// Errors when the pools differ in size, N < 2, a value is not finite, or no rule survives.
pub fn epsilon_per_example(unlearned: &[f64], retrained: &[f64]) -> Result<Epsilon> {
    let n = check_pair(unlearned, retrained)?;
    let retrained_positive = median(retrained) > median(unlearned);
    let (pos, neg) = if retrained_positive {
        (retrained, unlearned)
    } else {
        (unlearned, retrained)
    };
    let pos_range = range(pos);
    let neg_range = range(neg);
    let (largest, smallest) = if pos_range > neg_range {
        (pos_range, neg_range)
    } else {
        (neg_range, pos_range)
    };
    let cap = |source| Epsilon {
        value: EPSILON_CAP,
        source,
        retrained_positive,
    };
    if largest == 0.0 {
        return Ok(cap(EpsilonSource::BothRangesZero));
    }
    if smallest / largest < MIN_RANGE_RATIO {
        return Ok(cap(EpsilonSource::PeakyRange));
    }
    let sorted = |v: &[f64]| {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        s
    };
    let (pos_s, neg_s) = (sorted(pos), sorted(neg));
    let mut rates = RateSet::new(n);

    // Single-threshold rules: positive iff c ≥ t, t on the pooled range.
    let lo = pos_s[0].min(neg_s[0]);
    let hi = pos_s[n - 1].max(neg_s[n - 1]);
    let num = ((hi - lo) * THRESHOLDS_PER_UNIT).ceil() as usize;
    for t in linspace(lo, hi, num) {
        let fnc = count_below(&pos_s, t);
        let fp = n - count_below(&neg_s, t);
        rates.mark(fp, fnc);
    }

    // Double-threshold rules: positive = the group with the smaller range (the single-rule
    // negative one when ranges are equal); positive iff l ≤ c ≤ r.
    let (dpos, dneg) = if pos_range >= neg_range {
        (&neg_s, &pos_s)
    } else {
        (&pos_s, &neg_s)
    };
    let width = smallest;
    let r_lo = dpos[0] + width - DOUBLE_BUFFER;
    let r_hi = dpos[n - 1] + DOUBLE_BUFFER;
    let num_right = ((r_hi - r_lo) * THRESHOLDS_PER_UNIT).ceil() as usize;
    let num_left = (2.0 * DOUBLE_BUFFER * THRESHOLDS_PER_UNIT).ceil() as usize;
    for r in linspace(r_lo, r_hi, num_right) {
        let pos_upto = count_at_most(dpos, r);
        let neg_upto = count_at_most(dneg, r);
        for l in linspace(
            r - width - DOUBLE_BUFFER,
            r - width + DOUBLE_BUFFER,
            num_left,
        ) {
            let tp = pos_upto.saturating_sub(count_below(dpos, l));
            let fp = neg_upto.saturating_sub(count_below(dneg, l));
            rates.mark(fp, n - tp);
        }
    }

    let Some(best) = rates.max_epsilon() else {
        bail!("no threshold rule survived for this example (all had exactly one of FPR, FNR at 0)");
    };
    Ok(Epsilon {
        value: best.clamp(0.0, EPSILON_CAP),
        source: EpsilonSource::Rules,
        retrained_positive,
    })
}

/// ε for every forget example (`unlearned[x]`, `retrained[x]`: N values each), in order.
pub fn epsilons(unlearned: &[Vec<f64>], retrained: &[Vec<f64>]) -> Result<Vec<Epsilon>> {
    ensure!(
        unlearned.len() == retrained.len(),
        "{} examples in the unlearned pool but {} in the retrained pool",
        unlearned.len(),
        retrained.len()
    );
    unlearned
        .par_iter()
        .zip(retrained.par_iter())
        .enumerate()
        .map(|(x, (u, r))| {
            epsilon_per_example(u, r).map_err(|e| e.context(format!("forget example {x}")))
        })
        .collect()
}

/// ε_max = ceil(ln(N − 1)): ε at or above it earns no points.
pub fn epsilon_max(n_models: usize) -> f64 {
    ((n_models as f64) - 1.0).ln().ceil()
}

/// Points H of one ε with N models per pool: bin k = [k/2, (k+1)/2) earns 2^−k for every bin
/// whose end is ≤ ε_max; ε beyond the last bin (CAP included) earns 0.
pub fn epsilon_points(epsilon: f64, n_models: usize) -> f64 {
    let eps_max = epsilon_max(n_models);
    let mut points = 1.0;
    let mut k = 0u32;
    loop {
        let end = (k + 1) as f64 * BIN_WIDTH;
        if end > eps_max {
            return 0.0;
        }
        if epsilon < end {
            return points;
        }
        points /= 2.0;
        k += 1;
    }
}

/// Forgetting quality F = mean points over the forget set (NaN for an empty set).
pub fn forgetting_quality(epsilons: &[f64], n_models: usize) -> f64 {
    let total: f64 = epsilons.iter().map(|&e| epsilon_points(e, n_models)).sum();
    total / epsilons.len() as f64
}

/// Final score = F · (mean RA_U / mean RA_R) · (mean TA_U / mean TA_R), ratios uncapped.
pub fn final_score(f: f64, ra_u: f64, ra_r: f64, ta_u: f64, ta_r: f64) -> f64 {
    f * (ra_u / ra_r) * (ta_u / ta_r)
}

/// Mean of a slice (NaN for an empty one).
pub fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// F under the null: each relabelling pools an example's 2N values (unlearned first),
/// draws `RandomState(seed).permutation(2N)` (examples in order within a relabelling,
/// relabellings in order) and calls the first N "unlearned".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NullCalibration {
    /// F_null: the mean over relabellings of each relabelling's F.
    pub f_null: f64,
    /// F of each relabelling.
    pub per_relabelling: Vec<f64>,
    /// Per example, its points averaged over the relabellings (for bootstrap intervals).
    pub per_example_points: Vec<f64>,
    /// Seed of the permutations.
    pub seed: u32,
}

/// F_null over `relabellings` random relabellings of every example's pooled values.
pub fn null_calibration(
    unlearned: &[Vec<f64>],
    retrained: &[Vec<f64>],
    relabellings: usize,
    seed: u32,
) -> Result<NullCalibration> {
    ensure!(
        relabellings >= 1,
        "the null calibration needs ≥ 1 relabelling"
    );
    ensure!(
        unlearned.len() == retrained.len() && !unlearned.is_empty(),
        "{} unlearned and {} retrained examples: need the same, non-zero count",
        unlearned.len(),
        retrained.len()
    );
    let n = unlearned[0].len();
    let mut rs = RandomState::new(seed);
    let mut relabelled_u = Vec::with_capacity(relabellings * unlearned.len());
    let mut relabelled_r = Vec::with_capacity(relabellings * unlearned.len());
    for _ in 0..relabellings {
        for (u, r) in unlearned.iter().zip(retrained) {
            check_pair(u, r)?;
            ensure!(u.len() == n, "every example needs the same N ({n})");
            let pooled: Vec<f64> = u.iter().chain(r).cloned().collect();
            let perm = rs.permutation(2 * n);
            relabelled_u.push(perm[..n].iter().map(|&p| pooled[p]).collect::<Vec<f64>>());
            relabelled_r.push(perm[n..].iter().map(|&p| pooled[p]).collect::<Vec<f64>>());
        }
    }
    let eps = epsilons(&relabelled_u, &relabelled_r)?;
    let s = unlearned.len();
    let per_relabelling: Vec<f64> = eps
        .chunks(s)
        .map(|c| forgetting_quality(&c.iter().map(|e| e.value).collect::<Vec<_>>(), n))
        .collect();
    let per_example_points = (0..s)
        .map(|x| {
            (0..relabellings)
                .map(|j| epsilon_points(eps[j * s + x].value, n))
                .sum::<f64>()
                / relabellings as f64
        })
        .collect();
    Ok(NullCalibration {
        f_null: mean(&per_relabelling),
        per_relabelling,
        per_example_points,
        seed,
    })
}

/// A two-sided percentile interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Lower end.
    pub lower: f64,
    /// Upper end.
    pub upper: f64,
}

impl Interval {
    /// Whether `v` lies in [lower, upper].
    pub fn contains(&self, v: f64) -> bool {
        self.lower <= v && v <= self.upper
    }

    /// Whether the interval lies strictly on one side of 0.
    pub fn excludes_zero(&self) -> bool {
        self.lower > 0.0 || self.upper < 0.0
    }
}

/// `numpy.quantile(values, q)` with the default linear method.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    let vi = (n as f64 - 1.0) * q;
    if vi >= (n - 1) as f64 {
        return v[n - 1];
    }
    if vi < 0.0 {
        return v[0];
    }
    let prev = vi.floor();
    let t = vi - prev;
    let (a, b) = (v[prev as usize], v[prev as usize + 1]);
    let diff = b - a;
    if t >= 0.5 {
        b - diff * (1.0 - t)
    } else {
        a + diff * t
    }
}

/// Percentile interval at `level` (e.g. 0.95) of bootstrap replicates.
pub fn percentile_interval(replicates: &[f64], level: f64) -> Interval {
    let q = (1.0 - level) / 2.0;
    Interval {
        lower: quantile(replicates, q),
        upper: quantile(replicates, 1.0 - q),
    }
}

/// Bootstrap resamples shared by every method of an audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resamples {
    /// Seed of the `RandomState`.
    pub seed: u32,
    /// Per replicate, `n_examples` forget-example indices drawn with replacement.
    pub examples: Vec<Vec<usize>>,
    /// Per replicate, N unlearned-model indices (accuracy ratios).
    pub unlearned_models: Vec<Vec<usize>>,
    /// Per replicate, N retrained-model indices (accuracy ratios).
    pub retrained_models: Vec<Vec<usize>>,
}

impl Resamples {
    /// `count` replicates from `RandomState(seed)`: first every example resample, then every
    /// unlearned-model and then every retrained-model resample, each a `randint(0, n, size=n)`.
    pub fn new(n_examples: usize, n_models: usize, count: usize, seed: u32) -> Result<Self> {
        ensure!(
            n_examples >= 1 && n_models >= 1 && count >= 1,
            "bootstrap needs ≥ 1 example, model and replicate"
        );
        let mut rs = RandomState::new(seed);
        let mut draw = |n: usize| -> Vec<Vec<usize>> {
            (0..count)
                .map(|_| (0..n).map(|_| rs.randint(0, n as i64) as usize).collect())
                .collect()
        };
        let examples = draw(n_examples);
        let unlearned_models = draw(n_models);
        let retrained_models = draw(n_models);
        Ok(Resamples {
            seed,
            examples,
            unlearned_models,
            retrained_models,
        })
    }

    /// Number of replicates.
    pub fn count(&self) -> usize {
        self.examples.len()
    }

    /// Per replicate, the mean of `per_example` over the resampled examples.
    pub fn replicate_means(&self, per_example: &[f64]) -> Result<Vec<f64>> {
        let n = self.examples.first().map_or(0, |e| e.len());
        ensure!(
            per_example.len() == n,
            "{} per-example values for resamples over {n} examples",
            per_example.len()
        );
        Ok(self
            .examples
            .iter()
            .map(|idx| idx.iter().map(|&i| per_example[i]).sum::<f64>() / n as f64)
            .collect())
    }
}

/// Percentile intervals of the mean of each method's per-example values, all from the same
/// resamples (`Resamples::new(n, 1, count, seed)`).
pub fn bootstrap_intervals(
    per_method: &[&[f64]],
    count: usize,
    seed: u32,
    level: f64,
) -> Result<Vec<Interval>> {
    let n = per_method.first().map_or(0, |m| m.len());
    let resamples = Resamples::new(n, 1, count, seed)?;
    per_method
        .iter()
        .map(|m| Ok(percentile_interval(&resamples.replicate_means(m)?, level)))
        .collect()
}

/// Per-example U-LiRA scores: log N(c; μ_U, σ_U) − log N(c; μ_R, σ_R) for every model, the
/// Gaussians fitted to the other models of each group (leave-one-out).
///
/// Leaving a model out moves its own group's median away from it, so with identically
/// distributed pools the scores lean "wrong way": per-example AUC and accuracy sit below 0.5
/// (down to 0 for an example whose two medians coincide) and the pooled AUC slightly below.
#[derive(Debug, Clone, PartialEq)]
pub struct UliraScores {
    /// Per example, the N unlearned models' scores (positives).
    pub unlearned: Vec<Vec<f64>>,
    /// Per example, the N retrained models' scores (negatives).
    pub retrained: Vec<Vec<f64>>,
}

/// Population standard deviation (ddof 0) and mean.
fn mean_std(v: &[f64]) -> (f64, f64) {
    let m = mean(v);
    let var = v.iter().map(|&x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64;
    (m, var.sqrt())
}

/// Gaussian log-density up to the constant −ln √(2π), which cancels in the score.
fn log_density(c: f64, mu: f64, sigma: f64) -> f64 {
    let z = (c - mu) / sigma;
    -0.5 * z * z - sigma.ln()
}

/// One model's score given the fitted "in" (unlearned) and "out" (retrained) values.
fn ulira_score(c: f64, fit_in: &[f64], fit_out: &[f64]) -> f64 {
    let (mu_in, mu_out) = (median(fit_in), median(fit_out));
    let (mean_in, sd_in) = mean_std(fit_in);
    let (mean_out, sd_out) = mean_std(fit_out);
    // The pool size N is the larger fitted group plus the left-out model.
    let n = fit_in.len().max(fit_out.len());
    let (s_in, s_out) = if n < ULIRA_POOLED_BELOW {
        let ss: f64 = fit_in
            .iter()
            .map(|&x| (x - mean_in) * (x - mean_in))
            .sum::<f64>()
            + fit_out
                .iter()
                .map(|&x| (x - mean_out) * (x - mean_out))
                .sum::<f64>();
        let pooled = (ss / (fit_in.len() + fit_out.len()) as f64).sqrt();
        (pooled, pooled)
    } else {
        (sd_in, sd_out)
    };
    let (s_in, s_out) = (s_in.max(ULIRA_MIN_SIGMA), s_out.max(ULIRA_MIN_SIGMA));
    log_density(c, mu_in, s_in) - log_density(c, mu_out, s_out)
}

/// Leave-one-out U-LiRA scores of one example's 2N models (SPEC §6b.3): per-group median
/// and std (pooled over the two groups when N < 64), σ ≥ 1e-3.
pub fn ulira_example_scores(unlearned: &[f64], retrained: &[f64]) -> Result<(Vec<f64>, Vec<f64>)> {
    check_pair(unlearned, retrained)?;
    let without = |v: &[f64], i: usize| -> Vec<f64> {
        v.iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .map(|(_, &x)| x)
            .collect()
    };
    let pos = (0..unlearned.len())
        .map(|i| ulira_score(unlearned[i], &without(unlearned, i), retrained))
        .collect();
    let neg = (0..retrained.len())
        .map(|i| ulira_score(retrained[i], unlearned, &without(retrained, i)))
        .collect();
    Ok((pos, neg))
}

impl UliraScores {
    /// Scores of every example.
    pub fn new(unlearned: &[Vec<f64>], retrained: &[Vec<f64>]) -> Result<Self> {
        ensure!(
            unlearned.len() == retrained.len() && !unlearned.is_empty(),
            "{} unlearned and {} retrained examples: need the same, non-zero count",
            unlearned.len(),
            retrained.len()
        );
        let pairs: Vec<(Vec<f64>, Vec<f64>)> = unlearned
            .par_iter()
            .zip(retrained.par_iter())
            .map(|(u, r)| ulira_example_scores(u, r))
            .collect::<Result<_>>()?;
        let (unlearned, retrained) = pairs.into_iter().unzip();
        Ok(UliraScores {
            unlearned,
            retrained,
        })
    }

    /// Mann–Whitney counts: entry `[x][y]` = #(pos of x > neg of y) + ½ #(ties).
    pub fn pair_matrix(&self) -> Vec<Vec<f64>> {
        let negs: Vec<Vec<f64>> = self
            .retrained
            .iter()
            .map(|v| {
                let mut s = v.clone();
                s.sort_by(f64::total_cmp);
                s
            })
            .collect();
        self.unlearned
            .iter()
            .map(|pos| {
                negs.iter()
                    .map(|neg| {
                        pos.iter()
                            .map(|&p| {
                                let below = count_below(neg, p);
                                let ties = count_at_most(neg, p) - below;
                                below as f64 + 0.5 * ties as f64
                            })
                            .sum()
                    })
                    .collect()
            })
            .collect()
    }

    /// AUC with examples weighted by multiplicity (`weights[x]` copies of example x).
    fn weighted_auc(matrix: &[Vec<f64>], weights: &[f64], n: usize) -> f64 {
        let mut num = 0.0;
        for (x, row) in matrix.iter().enumerate() {
            if weights[x] == 0.0 {
                continue;
            }
            let inner: f64 = row.iter().zip(weights).map(|(a, w)| a * w).sum();
            num += weights[x] * inner;
        }
        let total: f64 = weights.iter().sum::<f64>() * n as f64;
        num / (total * total)
    }

    /// Pooled AUC over all (example, model) scores, unlearned positive, ties count ½.
    pub fn auc(&self) -> f64 {
        let n = self.unlearned[0].len();
        Self::weighted_auc(&self.pair_matrix(), &vec![1.0; self.unlearned.len()], n)
    }

    /// Per example, the accuracy at threshold 0: (#U with score > 0 + #R with score ≤ 0)/2N.
    pub fn per_example_accuracy(&self) -> Vec<f64> {
        self.unlearned
            .iter()
            .zip(&self.retrained)
            .map(|(p, q)| {
                let tp = p.iter().filter(|&&s| s > 0.0).count();
                let tn = q.iter().filter(|&&s| s <= 0.0).count();
                (tp + tn) as f64 / (p.len() + q.len()) as f64
            })
            .collect()
    }

    /// Per example, the AUC of its N positives against its N negatives.
    pub fn per_example_auc(&self) -> Vec<f64> {
        let m = self.pair_matrix();
        let n = self.unlearned[0].len() as f64;
        (0..m.len()).map(|x| m[x][x] / (n * n)).collect()
    }

    /// Pooled TPR of the rule score ≥ t at the smallest t with FPR < 1 %.
    pub fn tpr_at_low_fpr(&self) -> f64 {
        let mut neg: Vec<f64> = self.retrained.iter().flatten().cloned().collect();
        neg.sort_by(|a, b| b.total_cmp(a));
        let pos: Vec<f64> = self.unlearned.iter().flatten().cloned().collect();
        let q = neg.len();
        // Largest k with k/Q < 1 %: at most k negatives may score ≥ t.
        let mut k = 0usize;
        while k < q && ((k + 1) as f64 / q as f64) < ULIRA_LOW_FPR {
            k += 1;
        }
        let bar = neg[k];
        pos.iter().filter(|&&s| s > bar).count() as f64 / pos.len() as f64
    }

    /// Per replicate, the pooled AUC on the resampled examples.
    pub fn replicate_aucs(&self, resamples: &Resamples) -> Result<Vec<f64>> {
        let s = self.unlearned.len();
        let n = self.unlearned[0].len();
        let m = self.pair_matrix();
        resamples
            .examples
            .iter()
            .map(|idx| {
                ensure!(
                    idx.len() == s,
                    "resamples over {} examples, not {s}",
                    idx.len()
                );
                let mut w = vec![0.0; s];
                for &i in idx {
                    w[i] += 1.0;
                }
                Ok(Self::weighted_auc(&m, &w, n))
            })
            .collect()
    }
}

/// U-LiRA summary of one method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ulira {
    /// Pooled AUC (unlearned = positive).
    pub auc: f64,
    /// Bootstrap interval of the pooled AUC.
    pub auc_interval: Interval,
    /// Mean over examples of the accuracy at threshold 0.
    pub accuracy: f64,
    /// Bootstrap interval of that mean.
    pub accuracy_interval: Interval,
    /// Pooled TPR at FPR < 1 %.
    pub tpr_at_1pct_fpr: f64,
    /// Per-example AUC (N against N).
    pub per_example_auc: Vec<f64>,
    /// Per-example accuracy at threshold 0.
    pub per_example_accuracy: Vec<f64>,
}

/// U-LiRA of one method with bootstrap intervals over `resamples`.
pub fn ulira(
    unlearned: &[Vec<f64>],
    retrained: &[Vec<f64>],
    resamples: &Resamples,
    level: f64,
) -> Result<Ulira> {
    let scores = UliraScores::new(unlearned, retrained)?;
    let per_example_accuracy = scores.per_example_accuracy();
    Ok(Ulira {
        auc: scores.auc(),
        auc_interval: percentile_interval(&scores.replicate_aucs(resamples)?, level),
        accuracy: mean(&per_example_accuracy),
        accuracy_interval: percentile_interval(
            &resamples.replicate_means(&per_example_accuracy)?,
            level,
        ),
        tpr_at_1pct_fpr: scores.tpr_at_low_fpr(),
        per_example_auc: scores.per_example_auc(),
        per_example_accuracy,
    })
}

/// One model pool's data: per forget example the N statistics, per model its accuracies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolData {
    /// `confidences[x][i]`: model i's logit-scaled confidence on forget example x.
    pub confidences: Vec<Vec<f64>>,
    /// Retain accuracy of each model.
    pub retain_accuracy: Vec<f64>,
    /// Test accuracy of each model.
    pub test_accuracy: Vec<f64>,
}

/// Settings of an audit; every method of one audit must use the same.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AuditSettings {
    /// Bootstrap replicates B.
    pub resamples: usize,
    /// Interval level.
    pub level: f64,
    /// Seed of the bootstrap resamples.
    pub bootstrap_seed: u32,
    /// Relabellings behind F_null.
    pub null_relabellings: usize,
    /// Seed of the relabellings.
    pub null_seed: u32,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings {
            resamples: DEFAULT_RESAMPLES,
            level: DEFAULT_LEVEL,
            bootstrap_seed: 0,
            null_relabellings: DEFAULT_NULL_RELABELLINGS,
            null_seed: 0,
        }
    }
}

/// One method's entry of `audit_result.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodAudit {
    /// Method name.
    pub method: String,
    /// Models per pool (N).
    pub n_models: usize,
    /// Forget examples (|S|).
    pub n_examples: usize,
    /// Settings used.
    pub settings: AuditSettings,
    /// Forgetting quality F.
    #[serde(rename = "F")]
    pub f: f64,
    /// Bootstrap interval of F.
    #[serde(rename = "F_interval")]
    pub f_interval: Interval,
    /// F under random relabelling.
    #[serde(rename = "F_null")]
    pub f_null: f64,
    /// Bootstrap interval of F_null (per-example null points, same resamples).
    #[serde(rename = "F_null_interval")]
    pub f_null_interval: Interval,
    /// mean RA_U / mean RA_R.
    pub retain_accuracy_ratio: f64,
    /// mean TA_U / mean TA_R.
    pub test_accuracy_ratio: f64,
    /// F times both ratios.
    pub final_score: f64,
    /// Bootstrap interval of the final score (examples for F, models for the ratios).
    pub final_score_interval: Interval,
    /// Fraction of examples with ε = CAP.
    pub fraction_at_cap: f64,
    /// Median ε.
    pub median_epsilon: f64,
    /// Per-example ε in forget-set order.
    pub epsilon: Vec<f64>,
    /// How each ε was obtained, in forget-set order.
    #[serde(default)]
    pub epsilon_source: Vec<EpsilonSource>,
    /// Per-example points H in forget-set order.
    pub points: Vec<f64>,
    /// Positions of examples whose two pools were both constant (ε = CAP by convention).
    pub both_ranges_zero: Vec<usize>,
    /// U-LiRA numbers.
    pub ulira: Ulira,
}

/// Audits one method against the retrained pool (SPEC §6b.1 and §6b.3).
pub fn audit_method(
    method: &str,
    unlearned: &PoolData,
    retrained: &PoolData,
    settings: &AuditSettings,
) -> Result<MethodAudit> {
    let s = unlearned.confidences.len();
    ensure!(s >= 1, "{method}: empty forget set");
    let n = unlearned.confidences[0].len();
    for (what, pool) in [("unlearned", unlearned), ("retrained", retrained)] {
        ensure!(
            pool.confidences.len() == s,
            "{method}: {what} pool has {} forget examples, expected {s}",
            pool.confidences.len()
        );
        ensure!(
            pool.confidences.iter().all(|v| v.len() == n),
            "{method}: every example of the {what} pool needs N = {n} values"
        );
        ensure!(
            pool.retain_accuracy.len() == n && pool.test_accuracy.len() == n,
            "{method}: {what} pool needs N = {n} retain and test accuracies"
        );
    }
    let eps = epsilons(&unlearned.confidences, &retrained.confidences)?;
    let epsilon: Vec<f64> = eps.iter().map(|e| e.value).collect();
    let points: Vec<f64> = epsilon.iter().map(|&e| epsilon_points(e, n)).collect();
    let f = forgetting_quality(&epsilon, n);
    let null = null_calibration(
        &unlearned.confidences,
        &retrained.confidences,
        settings.null_relabellings,
        settings.null_seed,
    )?;
    let resamples = Resamples::new(s, n, settings.resamples, settings.bootstrap_seed)?;
    let f_reps = resamples.replicate_means(&points)?;
    let pick_mean = |v: &[f64], idx: &[usize]| idx.iter().map(|&i| v[i]).sum::<f64>() / n as f64;
    let final_reps: Vec<f64> = (0..resamples.count())
        .map(|b| {
            let (ui, ri) = (
                &resamples.unlearned_models[b],
                &resamples.retrained_models[b],
            );
            final_score(
                f_reps[b],
                pick_mean(&unlearned.retain_accuracy, ui),
                pick_mean(&retrained.retain_accuracy, ri),
                pick_mean(&unlearned.test_accuracy, ui),
                pick_mean(&retrained.test_accuracy, ri),
            )
        })
        .collect();
    let (ra_u, ra_r) = (
        mean(&unlearned.retain_accuracy),
        mean(&retrained.retain_accuracy),
    );
    let (ta_u, ta_r) = (
        mean(&unlearned.test_accuracy),
        mean(&retrained.test_accuracy),
    );
    Ok(MethodAudit {
        method: method.to_string(),
        n_models: n,
        n_examples: s,
        settings: *settings,
        f,
        f_interval: percentile_interval(&f_reps, settings.level),
        f_null: null.f_null,
        f_null_interval: percentile_interval(
            &resamples.replicate_means(&null.per_example_points)?,
            settings.level,
        ),
        retain_accuracy_ratio: ra_u / ra_r,
        test_accuracy_ratio: ta_u / ta_r,
        final_score: final_score(f, ra_u, ra_r, ta_u, ta_r),
        final_score_interval: percentile_interval(&final_reps, settings.level),
        fraction_at_cap: epsilon.iter().filter(|&&e| e == EPSILON_CAP).count() as f64 / s as f64,
        median_epsilon: median(&epsilon),
        both_ranges_zero: eps
            .iter()
            .enumerate()
            .filter(|(_, e)| e.source == EpsilonSource::BothRangesZero)
            .map(|(x, _)| x)
            .collect(),
        ulira: ulira(
            &unlearned.confidences,
            &retrained.confidences,
            &resamples,
            settings.level,
        )?,
        epsilon_source: eps.iter().map(|e| e.source).collect(),
        epsilon,
        points,
    })
}

/// Outcome of ranking two methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ranking {
    /// The first method (A) ranks above the second.
    FirstBetter,
    /// The second method (B) ranks above the first.
    SecondBetter,
    /// Neither: "not separable at this N".
    NotSeparable,
}

impl std::fmt::Display for Ranking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Ranking::FirstBetter => "first better",
            Ranking::SecondBetter => "second better",
            Ranking::NotSeparable => "not separable at this N",
        })
    }
}

/// Paired comparison of two methods on the same resamples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairedComparison {
    /// ΔF = F_A − F_B.
    pub delta_f: f64,
    /// Bootstrap interval of ΔF (paired: same example resamples for both).
    pub delta_f_interval: Interval,
    /// ΔAUC = AUC_A − AUC_B (U-LiRA, pooled).
    pub delta_auc: f64,
    /// The verdict.
    pub ranking: Ranking,
}

/// Ranks A above B only if the ΔF interval excludes 0 and ΔAUC has the matching sign (A's
/// higher F with A's lower AUC, or the reverse); otherwise "not separable at this N".
pub fn paired_ranking(
    points_a: &[f64],
    points_b: &[f64],
    auc_a: f64,
    auc_b: f64,
    resamples: &Resamples,
    level: f64,
) -> Result<PairedComparison> {
    ensure!(
        points_a.len() == points_b.len(),
        "{} and {} per-example points: the methods must share the forget set",
        points_a.len(),
        points_b.len()
    );
    let diff: Vec<f64> = points_a.iter().zip(points_b).map(|(a, b)| a - b).collect();
    let delta_f = mean(points_a) - mean(points_b);
    let delta_f_interval = percentile_interval(&resamples.replicate_means(&diff)?, level);
    let delta_auc = auc_a - auc_b;
    let ranking = if delta_f_interval.lower > 0.0 && delta_auc < 0.0 {
        Ranking::FirstBetter
    } else if delta_f_interval.upper < 0.0 && delta_auc > 0.0 {
        Ranking::SecondBetter
    } else {
        Ranking::NotSeparable
    };
    Ok(PairedComparison {
        delta_f,
        delta_f_interval,
        delta_auc,
        ranking,
    })
}

/// [`paired_ranking`] of two audits made with the same settings and forget set.
pub fn compare_methods(a: &MethodAudit, b: &MethodAudit) -> Result<PairedComparison> {
    ensure!(
        a.settings == b.settings && a.n_models == b.n_models && a.n_examples == b.n_examples,
        "{} and {} were audited with different settings, N or forget sets",
        a.method,
        b.method
    );
    let resamples = Resamples::new(
        a.n_examples,
        a.n_models,
        a.settings.resamples,
        a.settings.bootstrap_seed,
    )?;
    paired_ranking(
        &a.points,
        &b.points,
        a.ulira.auc,
        b.ulira.auc,
        &resamples,
        a.settings.level,
    )
}

/// The per-example ε CSV: `example,epsilon,points,source`, one row per forget example
/// (`example_ids[x]`: its index in the dataset).
pub fn epsilon_csv(example_ids: &[usize], epsilons: &[Epsilon], n_models: usize) -> Result<String> {
    csv_rows(
        example_ids,
        epsilons.iter().map(|e| (e.value, e.source)).collect(),
        n_models,
    )
}

impl MethodAudit {
    /// [`epsilon_csv`] of this method's per-example ε, for the forget examples `example_ids`.
    pub fn epsilon_csv(&self, example_ids: &[usize]) -> Result<String> {
        ensure!(
            self.epsilon_source.len() == self.epsilon.len(),
            "{}: the audit has no source for each ε (rerun `gunlearn audit` to rewrite it)",
            self.method
        );
        let rows = self
            .epsilon
            .iter()
            .copied()
            .zip(self.epsilon_source.iter().copied())
            .collect();
        csv_rows(example_ids, rows, self.n_models)
    }
}

fn csv_rows(
    example_ids: &[usize],
    rows: Vec<(f64, EpsilonSource)>,
    n_models: usize,
) -> Result<String> {
    ensure!(
        example_ids.len() == rows.len(),
        "{} example ids for {} epsilons",
        example_ids.len(),
        rows.len()
    );
    let mut out = String::from("example,epsilon,points,source\n");
    for (id, (value, source)) in example_ids.iter().zip(rows) {
        let source = match source {
            EpsilonSource::Rules => "rules",
            EpsilonSource::PeakyRange => "peaky_range",
            EpsilonSource::BothRangesZero => "both_ranges_zero",
        };
        writeln!(
            out,
            "{id},{value},{},{source}",
            epsilon_points(value, n_models)
        )
        .expect("writing to a String");
    }
    Ok(out)
}

//! Optimizer steps per phase of each method, against the reference's at CIFAR-10 scale
//! (docs/method.md, "Scaling a study down"), and the `reference-steps` schedule that derives a
//! scaled-down study's epochs, stop-iter, attacker pre-training and SCRUB's forget batch from
//! its set sizes so that every phase keeps the reference's number of steps.
//!
//! Epoch counts do not carry over between set sizes: an epoch of 1 000 images at batch 32 is 26
//! steps, one of CIFAR-10's retain set at batch 256 is 159. A method whose effect grows with
//! its step count is tested only if it runs as many steps as its reference command.

use super::random_label::Layout as RlLayout;
use super::UnlearnConfig;
use crate::data::DatasetName;
use serde::{Deserialize, Serialize};

/// The reference's set sizes: CIFAR-10's 45 000 train images (5 000 more are validation), a
/// forget set of 4 500 in both scenarios, batch 256.
pub const REFERENCE: SetSizes = SetSizes {
    train: 45_000,
    retain: 40_500,
    forget: 4_500,
    val: 5_000,
};

/// The reference's batch size.
pub const REFERENCE_BATCH: usize = 256;

/// The reference's SCRUB forget batch (its max passes).
pub const REFERENCE_FORGET_BATCH: usize = 512;

/// The reference's adversarial iterations in class-wise forgetting (`--stop-iter 30`).
pub const REFERENCE_STOP_ITER: usize = 30;

/// The reference's attacker pre-training iterations (at batch 256).
pub const REFERENCE_ATTACKER_ITERS: usize = 1_000;

/// A phase within this factor of its reference's steps is at the reference's scale.
pub const TOLERANCE: f64 = 0.25;

/// A phase further than this factor from its reference's steps gets a health warning.
pub const DEPARTURE: f64 = 2.0;

/// How a sweep sets each method's epochs and phase lengths.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// The settings as written (the methods' reference defaults where absent).
    #[default]
    AsGiven,
    /// Each method's epochs (and Gan's stop-iter, the attacker's pre-training, SCRUB's forget
    /// batch) derived from the study's set sizes so that every phase keeps the reference's
    /// optimizer steps within [`TOLERANCE`]; settings written in the file still win.
    ReferenceSteps,
}

/// The set sizes a run's step counts follow from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetSizes {
    /// The train split (members of the attacker's pre-training).
    pub train: usize,
    /// The retain set.
    pub retain: usize,
    /// The forget set.
    pub forget: usize,
    /// The validation split.
    pub val: usize,
}

impl SetSizes {
    /// The sizes of `splits`.
    pub fn of(splits: &crate::data::splits::Splits) -> SetSizes {
        SetSizes {
            train: splits.train.len(),
            retain: splits.retain.len(),
            forget: splits.forget.len(),
            val: splits.val.len(),
        }
    }
}

/// One phase of a method: its steps in this run and in the reference's command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    /// What the phase is (`fine-tuning`, `adversarial`, `repair`, …).
    pub phase: String,
    /// The stream it steps through (`R`, `F`, `F ∪ R`, `train vs val`).
    pub stream: String,
    /// Steps per epoch here (for a phase measured in iterations, its length).
    pub steps_per_epoch: usize,
    /// Optimizer steps here.
    pub steps: usize,
    /// Steps per epoch in the reference.
    pub reference_steps_per_epoch: usize,
    /// Optimizer steps in the reference.
    pub reference_steps: usize,
    /// The phase's share of all the method's steps, here and in the reference (the
    /// adversarial game's two phases), when it has one.
    pub shares: Option<(f64, f64)>,
    /// Passes over the stream here and in the reference, for a phase compared in passes (the
    /// attacker's pre-training), else `None`.
    pub passes: Option<(f64, f64)>,
    /// Exempt from the step rule: the original's and Retrain's training, scaled on purpose
    /// (their criterion is that the original memorises).
    pub scaled_on_purpose: bool,
}

impl Phase {
    /// Here ÷ reference: in passes for a phase compared in passes, else in steps.
    pub fn ratio(&self) -> f64 {
        match self.passes {
            Some((here, reference)) => here / reference,
            None => self.steps as f64 / self.reference_steps.max(1) as f64,
        }
    }

    /// Here ÷ reference of the phase's share of the method's steps, when it has one.
    pub fn share_ratio(&self) -> Option<f64> {
        self.shares
            .map(|(here, reference)| here / reference.max(1e-12))
    }

    /// Whether the phase keeps its reference's steps (and its share of the game) within
    /// [`TOLERANCE`].
    pub fn within_tolerance(&self) -> bool {
        let fits = |r: f64| (r - 1.0).abs() <= TOLERANCE;
        self.scaled_on_purpose || (fits(self.ratio()) && self.share_ratio().is_none_or(fits))
    }

    /// Whether the phase (or its share of the game) departs from its reference by more than
    /// [`DEPARTURE`]×.
    pub fn departs(&self) -> bool {
        let far = |r: f64| !(1.0 / DEPARTURE..=DEPARTURE).contains(&r);
        !self.scaled_on_purpose && (far(self.ratio()) || self.share_ratio().is_some_and(far))
    }
}

/// What a method's phases depend on besides its settings.
#[derive(Debug, Clone, Copy)]
pub struct RunShape {
    /// The set sizes.
    pub sizes: SetSizes,
    /// Class-wise forgetting (Gan's stop-iter applies only there).
    pub class_wise: bool,
    /// The data set (RL and SalUn_soft's loader layouts depend on it).
    pub dataset: DatasetName,
}

/// ⌈n / batch⌉, at least 1 for a non-empty set.
fn per_epoch(n: usize, batch: usize) -> usize {
    n.div_ceil(batch.max(1))
}

/// A phase over `stream` of `spe` steps per epoch for `epochs` epochs, against the reference's
/// `ref_spe` for `ref_epochs`.
fn epochs_phase(
    phase: &str,
    stream: &str,
    spe: usize,
    epochs: usize,
    ref_spe: usize,
    ref_epochs: usize,
) -> Phase {
    Phase {
        phase: phase.into(),
        stream: stream.into(),
        steps_per_epoch: spe,
        steps: spe * epochs,
        reference_steps_per_epoch: ref_spe,
        reference_steps: ref_spe * ref_epochs,
        shares: None,
        passes: None,
        scaled_on_purpose: false,
    }
}

/// The reference's epochs of `method` (its defaults), `None` for a one-shot method.
fn reference_epochs(method: &str) -> Option<usize> {
    let m = super::find(method).ok()?;
    let (_, epochs) = m.defaults();
    (epochs > 0 && m.name() != "raw").then_some(epochs)
}

/// The phases `method` runs with `config` on a run of `shape`, against the reference's
/// command at CIFAR-10 scale. One-shot methods (FF, IU) and `raw` have none.
pub fn phases(method: &str, config: &UnlearnConfig, shape: &RunShape) -> Vec<Phase> {
    let Ok(found) = super::find(method) else {
        return Vec::new();
    };
    let name = found.name();
    let (_, default_epochs) = found.defaults();
    let epochs = config.epochs.unwrap_or(default_epochs);
    let ref_epochs = reference_epochs(name).unwrap_or(0);
    let s = &shape.sizes;
    let b = config.batch_size;
    let (r, f) = (per_epoch(s.retain, b), per_epoch(s.forget, b));
    let (ref_r, ref_f) = (
        per_epoch(REFERENCE.retain, REFERENCE_BATCH),
        per_epoch(REFERENCE.forget, REFERENCE_BATCH),
    );
    match name {
        "retrain" => vec![Phase {
            scaled_on_purpose: true,
            ..epochs_phase("training", "R", r, epochs, ref_r, ref_epochs)
        }],
        "FT" | "FT_l1" | "FT_prune" => {
            vec![epochs_phase(
                "fine-tuning",
                "R",
                r,
                epochs,
                ref_r,
                ref_epochs,
            )]
        }
        "GA" => vec![epochs_phase("ascent", "F", f, epochs, ref_f, ref_epochs)],
        "BS" | "BE" => vec![epochs_phase(
            "forget pass",
            "F",
            f,
            epochs,
            ref_f,
            ref_epochs,
        )],
        "RL" | "SalUn" | "SalUn_soft" => {
            let layout = if name == "SalUn_soft" {
                super::salun::soft_layout(shape.dataset)
            } else {
                RlLayout::for_rl(shape.dataset)
            };
            match layout {
                RlLayout::Separate => vec![
                    epochs_phase("forget pass", "F", f, epochs, ref_f, ref_epochs),
                    epochs_phase("retain pass", "R", r, epochs, ref_r, ref_epochs),
                ],
                RlLayout::Concatenated => vec![epochs_phase(
                    "mixed pass",
                    "F ∪ R",
                    per_epoch(s.forget + s.retain, b),
                    epochs,
                    per_epoch(REFERENCE.forget + REFERENCE.retain, REFERENCE_BATCH),
                    ref_epochs,
                )],
            }
        }
        "SCRUB" => {
            let max_passes = config.msteps.min(epochs);
            let ref_max_passes = UnlearnConfig::default().msteps.min(ref_epochs);
            vec![
                epochs_phase(
                    "max passes",
                    "F",
                    per_epoch(s.forget, config.forget_batch_size),
                    max_passes,
                    per_epoch(REFERENCE.forget, REFERENCE_FORGET_BATCH),
                    ref_max_passes,
                ),
                epochs_phase("min passes", "R", r, epochs, ref_r, ref_epochs),
            ]
        }
        "Gan" => gan_phases(config, shape, r, epochs, ref_r, ref_epochs),
        _ => Vec::new(),
    }
}

/// The adversarial method's phases: the game (all of it in random forgetting; the first
/// `stop_iter` iterations class-wise, then the repair with β = 0), and the attacker's
/// pre-training (compared in passes over the train split) unless an attacker is given.
fn gan_phases(
    config: &UnlearnConfig,
    shape: &RunShape,
    r: usize,
    epochs: usize,
    ref_r: usize,
    ref_epochs: usize,
) -> Vec<Phase> {
    let total = r * epochs;
    let ref_total = ref_r * ref_epochs;
    let mut phases = Vec::new();
    match config.stop_iter.filter(|_| shape.class_wise) {
        None => phases.push(epochs_phase(
            "adversarial",
            "R (+ F, val)",
            r,
            epochs,
            ref_r,
            ref_epochs,
        )),
        Some(stop) => {
            let adversarial = stop.min(total);
            let ref_adv = REFERENCE_STOP_ITER;
            let share = |n: usize, of: usize| n as f64 / of.max(1) as f64;
            phases.push(Phase {
                phase: "adversarial".into(),
                stream: "R (+ F, val)".into(),
                steps_per_epoch: r,
                steps: adversarial,
                reference_steps_per_epoch: ref_r,
                reference_steps: ref_adv,
                shares: Some((share(adversarial, total), share(ref_adv, ref_total))),
                passes: None,
                scaled_on_purpose: false,
            });
            phases.push(Phase {
                phase: "repair (β = 0)".into(),
                stream: "R".into(),
                steps_per_epoch: r,
                steps: total - adversarial,
                reference_steps_per_epoch: ref_r,
                reference_steps: ref_total - ref_adv,
                shares: Some((
                    share(total - adversarial, total),
                    share(ref_total - ref_adv, ref_total),
                )),
                passes: None,
                scaled_on_purpose: false,
            });
        }
    }
    if config.attacker.is_none() {
        let s = &shape.sizes;
        let pair = attacker_batch(config.batch_size, s);
        let passes = config.attacker_iters as f64 * pair as f64 / s.train.max(1) as f64;
        let ref_passes = reference_attacker_passes();
        phases.push(Phase {
            phase: "attacker pre-training".into(),
            stream: "train vs val".into(),
            steps_per_epoch: per_epoch(s.train, pair),
            steps: config.attacker_iters,
            reference_steps_per_epoch: per_epoch(REFERENCE.train, REFERENCE_BATCH),
            reference_steps: REFERENCE_ATTACKER_ITERS,
            shares: None,
            passes: Some((passes, ref_passes)),
            scaled_on_purpose: false,
        });
    }
    phases
}

/// The attacker pre-training's paired batch at `batch` (members and non-members alike, so no
/// larger than either set).
fn attacker_batch(batch: usize, sizes: &SetSizes) -> usize {
    batch.min(sizes.train).min(sizes.val).max(1)
}

/// The reference's attacker pre-training in passes over its train split (1 000 × 256 / 45 000).
fn reference_attacker_passes() -> f64 {
    REFERENCE_ATTACKER_ITERS as f64 * REFERENCE_BATCH as f64 / REFERENCE.train as f64
}

/// The settings a sweep may fix by hand; under [`Schedule::ReferenceSteps`] each one not
/// written in the file is derived.
#[derive(Debug, Clone, Copy, Default)]
pub struct Written {
    /// `unlearn_epochs` was written.
    pub epochs: bool,
    /// `stop_iter` was written.
    pub stop_iter: bool,
    /// `attacker_iters` was written.
    pub attacker_iters: bool,
    /// `forget_batch_size` was written.
    pub forget_batch_size: bool,
}

/// `config` with the reference-steps schedule for `method` on a run of `shape`: the epochs
/// are the reference's when every epoch-counted phase is then within [`TOLERANCE`] of its
/// reference's steps, else scaled by the main phase's steps per epoch (at least 1); Gan's
/// stop-iter keeps the reference's share of the game (6 %), times `stop_iter_scale`; the
/// attacker pre-trains for the reference's passes over the train split; SCRUB's forget batch
/// keeps its max passes' steps. Settings in `written` are left as they are.
pub fn reference_steps(
    method: &str,
    config: &UnlearnConfig,
    shape: &RunShape,
    written: Written,
    stop_iter_scale: f64,
) -> UnlearnConfig {
    let mut out = config.clone();
    let Some(ref_epochs) = reference_epochs(method) else {
        return out;
    };
    let name = super::find(method).map(|m| m.name()).unwrap_or("");
    if name == "retrain" {
        return out;
    }
    let s = &shape.sizes;
    if name == "SCRUB" && !written.forget_batch_size {
        let ref_steps = per_epoch(REFERENCE.forget, REFERENCE_FORGET_BATCH);
        out.forget_batch_size = s.forget.div_ceil(ref_steps).max(1);
    }
    if !written.epochs {
        let at_reference = UnlearnConfig {
            epochs: Some(ref_epochs),
            stop_iter: None,
            ..out.clone()
        };
        let counted: Vec<Phase> = phases(name, &at_reference, shape)
            .into_iter()
            .filter(|p| p.passes.is_none())
            .collect();
        let epochs = if counted.iter().all(Phase::within_tolerance) {
            ref_epochs
        } else {
            // The phase with the most reference steps sets the epoch length.
            let main = counted
                .iter()
                .max_by_key(|p| p.reference_steps)
                .expect("an iterative method has a phase");
            let scaled = ref_epochs as f64 * main.reference_steps_per_epoch as f64
                / main.steps_per_epoch.max(1) as f64;
            (scaled.round() as usize).max(1)
        };
        out.epochs = Some(epochs);
    }
    if name == "Gan" {
        let b = out.batch_size;
        let epochs = out.epochs.unwrap_or(ref_epochs);
        if shape.class_wise && !written.stop_iter {
            let total = per_epoch(s.retain, b) * epochs;
            let ref_total = per_epoch(REFERENCE.retain, REFERENCE_BATCH) * ref_epochs;
            let share = REFERENCE_STOP_ITER as f64 / ref_total as f64;
            let stop = (share * total as f64 * stop_iter_scale).round() as usize;
            out.stop_iter = Some(stop.clamp(1, total));
        }
        if !written.attacker_iters {
            let pair = attacker_batch(b, s);
            let iters = reference_attacker_passes() * s.train as f64 / pair as f64;
            out.attacker_iters = (iters.round() as usize).max(1);
        }
    }
    out
}

/// The health warning of a run whose phases depart from the reference's steps by more than
/// [`DEPARTURE`]×: one sentence naming each such phase with both step counts.
pub fn departure_warning(method: &str, phases: &[Phase]) -> Option<String> {
    let parts: Vec<String> = phases
        .iter()
        .filter(|p| p.departs())
        .map(describe_against_reference)
        .collect();
    (!parts.is_empty()).then(|| {
        format!(
            "{method}: {}; fewer or more steps than the reference measure the scale-down, not \
             the method (sweep schedule = \"reference-steps\" derives them)",
            parts.join("; ")
        )
    })
}

/// "adversarial phase 20 of 26 iterations (77 %); reference 30 of 477 (6 %)" and the like.
pub fn describe_against_reference(p: &Phase) -> String {
    match (p.shares, p.passes) {
        (Some((here, reference)), _) => {
            let total = (p.steps as f64 / here.max(1e-12)).round() as usize;
            let ref_total = (p.reference_steps as f64 / reference.max(1e-12)).round() as usize;
            format!(
                "{} phase {} of {total} iterations ({:.0} %); reference {} of {ref_total} ({:.0} %)",
                p.phase,
                p.steps,
                100.0 * here,
                p.reference_steps,
                100.0 * reference
            )
        }
        (None, Some((here, reference))) => format!(
            "{} {} iterations ({here:.1} passes over the train split); reference {} ({reference:.1} passes)",
            p.phase, p.steps, p.reference_steps
        ),
        (None, None) => format!(
            "{} {} steps ({} per epoch over {}); reference {} ({} per epoch)",
            p.phase, p.steps, p.steps_per_epoch, p.stream, p.reference_steps, p.reference_steps_per_epoch
        ),
    }
}

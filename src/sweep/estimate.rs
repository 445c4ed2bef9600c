//! `gunlearn sweep FILE --dry-run --estimate`: the study's CPU time before it starts, from
//! per-iteration costs measured here and now (a plain SGD step, an adversarial iteration, an
//! attacker pre-training iteration, prediction per image) times each job's steps per phase.
//!
//! Rough by design: a one-shot method (FF, IU) counts as one epoch over R, a repair iteration of
//! the game as half an adversarial one (its attacker passes run without graphs), SCRUB's and
//! RL's extra forward passes are not counted, and the SVC attack is left out.

use super::Plan;
use crate::bench::gan::{random_batch, share};
use crate::bench::time_steps;
use crate::data::batches::Batch;
use crate::jobs::Job;
use crate::model::attacker::Attacker;
use crate::model::Classifier;
use crate::optim::{Adam, Sgd};
use crate::unlearn::gan::{
    adversarial_step, attacker_inputs, attacker_step, sensitivity_noise, StepInputs, StepSettings,
    ATTACKER_DROPOUT, ATTACKER_LR,
};
use crate::unlearn::schedule::phases;
use anyhow::Context;
use std::collections::BTreeMap;
use tch::Device;

/// Measured seconds per unit of work, on one libtorch thread.
#[derive(Debug, Clone, Copy)]
pub struct Costs {
    /// One SGD step at the unlearning batch size.
    pub sgd_step: f64,
    /// One SGD step at the original's training batch size.
    pub train_step: f64,
    /// One adversarial iteration (β = 1).
    pub adversarial: f64,
    /// One attacker pre-training iteration.
    pub attacker: f64,
    /// Prediction, per image.
    pub predict_per_image: f64,
}

/// The estimate: seconds per kind of job, and in all.
pub struct Estimate {
    /// The measured costs.
    pub costs: Costs,
    /// Seconds of CPU (one thread) per job kind (`original`, `retrain`, `Gan`, …), for the jobs
    /// still to run.
    pub by_kind: BTreeMap<String, (usize, f64)>,
    /// All of it.
    pub total_seconds: f64,
}

/// Measures [`Costs`] for `spec` on images of `shape` (C, H, W), on the CPU.
pub fn measure(
    spec: &crate::model::ModelSpec,
    shape: [i64; 3],
    batch: usize,
    train_batch: usize,
    layout: crate::model::Layout,
) -> anyhow::Result<Costs> {
    tch::manual_seed(0);
    let mut model = Classifier::new(spec, Device::Cpu);
    model.layout = layout.resolve(Device::Cpu);
    let mut opt = Sgd::new(model.vs.trainable_variables(), 0.01, 0.9, 5e-4);
    let sgd = |b: &Batch, opt: &mut Sgd| -> anyhow::Result<()> {
        crate::train::sgd_step(&model, opt, None, b, Default::default(), Device::Cpu).map(drop)
    };
    let small = random_batch(batch, shape, Device::Cpu);
    let sgd_step = time_steps(2, 5, Device::Cpu, || sgd(&small, &mut opt))?;
    let big = random_batch(train_batch, shape, Device::Cpu);
    let train_step = time_steps(1, 3, Device::Cpu, || sgd(&big, &mut opt))?;
    let attacker = Attacker::new(spec.num_classes, ATTACKER_DROPOUT, Device::Cpu);
    let mut opt_a = Adam::new(attacker.vs.trainable_variables(), ATTACKER_LR);
    let (retain, forget, val) = (
        random_batch(batch, shape, Device::Cpu),
        random_batch(batch, shape, Device::Cpu),
        random_batch(batch, shape, Device::Cpu),
    );
    let _fp32 = crate::device::StrictFp32::new();
    let mut iteration = 0;
    let adversarial = time_steps(1, 2, Device::Cpu, || {
        iteration += 1;
        let inputs = StepInputs {
            noise_forget: sensitivity_noise(&forget.images),
            noise_val: sensitivity_noise(&val.images),
            retain: share(&retain),
            forget: share(&forget),
            val: share(&val),
        };
        adversarial_step(
            &model,
            &attacker,
            &mut opt,
            &mut opt_a,
            None,
            &inputs,
            StepSettings::default(),
            iteration,
        )
        .map(drop)
    })?;
    let attacker_iteration = time_steps(1, 3, Device::Cpu, || {
        let rows = |b: &Batch| {
            tch::no_grad(|| {
                attacker_inputs(&model, &b.images, &b.labels, &sensitivity_noise(&b.images)).rows
            })
        };
        attacker_step(&attacker, &mut opt_a, &rows(&forget), &rows(&val));
        Ok(())
    })?;
    let images = random_batch(512, shape, Device::Cpu);
    let predict = time_steps(1, 2, Device::Cpu, || {
        drop(tch::no_grad(|| model.forward(&images.images, false)));
        Ok(())
    })?;
    Ok(Costs {
        sgd_step,
        train_step,
        adversarial,
        attacker: attacker_iteration,
        predict_per_image: predict / 512.0,
    })
}

/// The CPU time of `plan`'s jobs still to run, from costs measured on this machine.
pub fn estimate(plan: &Plan) -> anyhow::Result<Estimate> {
    let first = plan
        .jobs
        .iter()
        .find_map(|p| match &p.job {
            Job::Unlearn(j) => Some(j),
            _ => None,
        })
        .context("the sweep plans no unlearning run")?;
    let ds = first.data.load()?;
    let (arch, train, layout) = plan
        .jobs
        .iter()
        .find_map(|p| match &p.job {
            Job::Train(t) => Some((t.arch, t.config.clone(), t.runner.layout)),
            Job::Prune(p) => Some((p.arch, p.train.clone(), p.runner.layout)),
            _ => None,
        })
        .context("--estimate needs a sweep that trains its model (no `model = PATH`)")?;
    let spec = crate::jobs::model_spec(&ds, arch)?;
    let shape = [
        ds.train.channels as i64,
        ds.train.height as i64,
        ds.train.width as i64,
    ];
    crate::device::set_threads(Some(1));
    let costs = measure(
        &spec,
        shape,
        first.config.batch_size,
        train.batch_size,
        layout,
    )?;
    let mut by_kind: BTreeMap<String, (usize, f64)> = BTreeMap::new();
    for planned in &plan.jobs {
        if planned.job.is_complete() {
            continue;
        }
        let (kind, seconds) = job_seconds(&planned.job, &ds, &costs)?;
        let slot = by_kind.entry(kind).or_default();
        slot.0 += 1;
        slot.1 += seconds;
    }
    let total_seconds = by_kind.values().map(|(_, s)| s).sum();
    Ok(Estimate {
        costs,
        by_kind,
        total_seconds,
    })
}

/// What kind of work `job` is (a method's name, `original`, …) and its seconds at `costs`: each
/// phase's steps times the cost of its kind of step, plus the evaluation's predictions.
pub fn job_seconds(
    job: &Job,
    ds: &crate::data::DataSet,
    costs: &Costs,
) -> anyhow::Result<(String, f64)> {
    Ok(match job {
        Job::Train(t) => {
            let steps = t.config.epochs * ds.train.len().div_ceil(t.config.batch_size);
            ("original".to_string(), steps as f64 * costs.train_step)
        }
        Job::Prune(p) => {
            let steps = p.train.epochs * ds.train.len().div_ceil(p.train.batch_size);
            (
                "pruned original".to_string(),
                2.0 * steps as f64 * costs.train_step,
            )
        }
        Job::Attacker(j) => (
            "attacker pre-training".to_string(),
            j.config.attacker_iters as f64 * costs.attacker,
        ),
        Job::Unlearn(j) => {
            let method = crate::unlearn::find(&j.method)?.name().to_string();
            let shape = j.data.run_shape(ds, &j.forget)?;
            let ps = phases(&method, &j.config, &shape);
            let mut seconds: f64 = ps
                .iter()
                .map(|p| match p.phase.as_str() {
                    "attacker pre-training" => 0.0, // its own job
                    "adversarial" if method == "Gan" => p.steps as f64 * costs.adversarial,
                    "repair (β = 0)" => p.steps as f64 * costs.adversarial / 2.0,
                    "training" => p.steps as f64 * costs.train_step,
                    _ => p.steps as f64 * costs.sgd_step,
                })
                .sum();
            if ps.is_empty() && method != "raw" {
                let epoch = shape.sizes.retain.div_ceil(j.config.batch_size);
                seconds += epoch as f64 * costs.sgd_step;
            }
            let evaluated = ds.train.len() + ds.test.len();
            seconds += evaluated as f64 * costs.predict_per_image;
            (method, seconds)
        }
    })
}

impl Costs {
    /// Typical relative costs (an SGD step = 1), for ordering jobs without measuring: an
    /// adversarial iteration costs ≈ 25 SGD steps and an attacker iteration ≈ 10 (both measured
    /// on digits and Fashion-MNIST with ResNet-20).
    pub const TYPICAL: Costs = Costs {
        sgd_step: 1.0,
        train_step: 1.1,
        adversarial: 25.0,
        attacker: 10.0,
        predict_per_image: 0.005,
    };
}

impl Estimate {
    /// The estimate as text, with the wall time on `workers` single-threaded workers.
    pub fn describe(&self, workers: usize) -> String {
        let c = &self.costs;
        let mut text = format!(
            "Estimated CPU time (costs measured now on one thread: SGD step {:.3} s, training step \
             {:.3} s, adversarial iteration {:.2} s, attacker iteration {:.3} s, prediction {:.2} \
             ms per image):\n",
            c.sgd_step,
            c.train_step,
            c.adversarial,
            c.attacker,
            1e3 * c.predict_per_image
        );
        for (kind, (jobs, seconds)) in &self.by_kind {
            text.push_str(&format!(
                "  {kind:<22} {jobs:>4} jobs  {:>8.1} min\n",
                seconds / 60.0
            ));
        }
        text.push_str(&format!(
            "  total                  {:>7.1} CPU hours; ≈ {:.1} h on {workers} worker(s) with 1 \
             thread each (rough: the SVC attack and the methods' extra forward passes are not \
             counted)\n",
            self.total_seconds / 3600.0,
            self.total_seconds / 3600.0 / workers.max(1) as f64
        ));
        text
    }
}

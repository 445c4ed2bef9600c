//! The demo: the whole pipeline on the embedded digits data set, on CPU, in a few minutes.

use super::train::TrainJob;
use super::unlearn::UnlearnJob;
use super::{DataConfig, ForgetConfig, Runner};
use crate::data::DatasetName;
use crate::model::Arch;
use crate::train::TrainConfig;
use crate::unlearn::UnlearnConfig;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The demo's settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DemoJob {
    /// Output folder for the demo's runs.
    pub save_dir: PathBuf,
    /// Training epochs of the original model (and of Retrain).
    pub epochs: usize,
    /// Device, threads, quiet.
    pub runner: Runner,
}

impl Default for DemoJob {
    fn default() -> Self {
        DemoJob {
            save_dir: PathBuf::from("runs/demo"),
            epochs: 20,
            runner: Runner::default(),
        }
    }
}

/// The scaled-down training schedule of the demo's original model (digits has 1 297 training
/// images, so batch 64 and fewer epochs).
pub fn demo_train_config(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        lr: 0.1,
        batch_size: 64,
        milestones: vec![epochs / 2, epochs * 3 / 4],
        augment: Some(DatasetName::Digits.default_augment()),
        ..TrainConfig::default()
    }
}

/// Trains the original model, runs every method on a class-wise and a random forget request and
/// writes a report for each; prints progress and the tables.
pub fn run(job: &DemoJob) -> anyhow::Result<()> {
    demo_train_config(job.epochs).validate()?;
    let digits = DataConfig::default();
    let original = job.save_dir.join("original");
    let train = TrainJob {
        data: digits.clone(),
        arch: Arch::Resnet20,
        config: demo_train_config(job.epochs),
        save_dir: original.clone(),
        resume: false,
        runner: job.runner.clone(),
    };
    println!(
        "demo 1/3: training ResNet-20 on the embedded digits data ({} epochs) -> {}",
        job.epochs,
        original.display()
    );
    let info = super::train::run(&train)?;
    println!(
        "original model: train {:.2}%, val {:.2}%, test {:.2}%\n",
        info.accuracy["train"], info.accuracy["val"], info.accuracy["test"]
    );
    let ds = digits.load()?;
    let scenarios = [
        ("class-wise (whole class 3)", "classwise", Some(3), false),
        ("random 10 %", "random", None, true),
    ];
    for (n, (title, dir, class, random)) in scenarios.into_iter().enumerate() {
        println!("demo {}/3: {title} forgetting", n + 2);
        let forget = ForgetConfig {
            class_to_replace: class,
            indexes_to_replace: random,
            ..ForgetConfig::default()
        };
        let shape = digits.run_shape(&ds, &forget)?;
        let mut runs = Vec::new();
        for method in crate::unlearn::registry() {
            let name = method.name();
            if name == "FT_prune" {
                continue; // the same method as FT_l1 under the reference's other name
            }
            let lr = demo_lr(name, method.defaults().0, random);
            let save_dir = job.save_dir.join(dir).join(name);
            let config = UnlearnConfig {
                lr: Some(lr),
                // Retrain repeats the original's schedule; the others' epochs come from the
                // scale rule below.
                epochs: (name == "retrain").then_some(job.epochs),
                batch_size: if name == "retrain" {
                    demo_train_config(job.epochs).batch_size
                } else {
                    DEMO_BATCH
                },
                milestones: demo_train_config(job.epochs).milestones,
                stop_unlearn_lr: Some(0.01),
                seed: forget.seed,
                ..UnlearnConfig::default()
            };
            // The scale rule: every phase runs the reference's optimizer steps at this size.
            let config = crate::unlearn::schedule::reference_steps(
                name,
                &config,
                &shape,
                crate::unlearn::schedule::Written::default(),
                1.0,
            );
            let unlearn = UnlearnJob {
                model: original.clone(),
                method: name.into(),
                data: digits.clone(),
                forget: forget.clone(),
                config,
                save_dir: save_dir.clone(),
                runner: Runner {
                    quiet: true,
                    ..job.runner.clone()
                },
                num_classes: None,
                retrain_dir: None,
            };
            let result = super::unlearn::run(&unlearn)?;
            println!("{}", super::result_line(&result));
            runs.push(save_dir);
        }
        let out = job.save_dir.join(dir);
        let table = crate::eval::report::report(&runs, None, &out)?;
        println!(
            "\n{title} forgetting on digits (report in {}):\n\n{table}\n",
            out.join("report.md").display()
        );
    }
    Ok(())
}

/// The unlearning batch of the demo's methods: digits has ≈ 1 300 training images, so batch 32
/// gives an epoch of ≈ 37 retain steps (the reference's has 159), and the scale rule gives each
/// method ≈ 4× its reference epochs.
const DEMO_BATCH: usize = 32;

/// Each method's own learning rate; Retrain repeats the original's and Gan uses the seed
/// document's class-wise one.
fn demo_lr(name: &str, default_lr: f64, random: bool) -> f64 {
    match (name, random) {
        ("retrain", _) => demo_train_config(1).lr,
        ("Gan", false) => 0.02,
        _ => default_lr,
    }
}

//! Training on the embedded digits data: accuracy, outputs, checkpoint round trip, resume.

mod common;

use gunlearn::checkpoint;
use gunlearn::data::DatasetName;
use gunlearn::jobs::train::TrainJob;
use gunlearn::jobs::{DataConfig, Runner};
use gunlearn::model::Arch;
use gunlearn::train::TrainConfig;
use std::path::Path;
use tch::{Device, Kind, Tensor};

fn threads() -> usize {
    common::test_threads()
}

fn job(dir: &Path, epochs: usize, resume: bool) -> TrainJob {
    TrainJob {
        data: DataConfig::default(),
        arch: Arch::Resnet20,
        config: TrainConfig {
            epochs,
            lr: 0.1,
            batch_size: 64,
            milestones: vec![8, 12],
            augment: Some(DatasetName::Digits.default_augment()),
            seed: 7,
            ..TrainConfig::default()
        },
        save_dir: dir.to_path_buf(),
        resume,
        runner: Runner {
            device: "cpu".into(),
            threads: Some(threads()),
            quiet: true,
            ..Runner::default()
        },
    }
}

fn csv_rows(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect()
}

#[test]
fn resnet20_reaches_90_percent_test_accuracy_on_digits_and_writes_its_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let info = gunlearn::jobs::train::run(&job(dir.path(), 15, false)).unwrap();
    let test = info.accuracy["test"];
    assert!(test >= 90.0, "test accuracy {test:.2}% < 90%");
    assert!(info.accuracy["train"] >= 90.0);
    for file in [
        "model.safetensors",
        "model.json",
        "last.safetensors",
        "last.json",
        "train_log.csv",
        "training_curves.png",
    ] {
        assert!(dir.path().join(file).is_file(), "{file} missing");
    }
    let rows = csv_rows(&dir.path().join("train_log.csv"));
    assert_eq!(rows.len(), 15);
    // The lr column follows MultiStepLR: 0.1 before epoch 8, 0.01 until 12, then 0.001.
    let lr: Vec<f64> = rows
        .iter()
        .map(|r| r.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    assert!(
        (lr[0] - 0.1).abs() < 1e-12
            && (lr[8] - 0.01).abs() < 1e-12
            && (lr[14] - 0.001).abs() < 1e-12,
        "{lr:?}"
    );
    // No temporary files are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    // Save → load gives identical logits (eval mode) and identical metadata.
    let first = checkpoint::load(dir.path(), Device::Cpu).unwrap();
    let x = Tensor::rand([16, 1, 8, 8], (Kind::Float, Device::Cpu));
    let (a, _) = first.model.forward(&x, false);
    let copy = tempfile::tempdir().unwrap();
    checkpoint::save(copy.path(), "model", &first.model, None, &first.info).unwrap();
    let second = checkpoint::load(copy.path(), Device::Cpu).unwrap();
    let (b, _) = second.model.forward(&x, false);
    assert_eq!(f64::try_from((&a - &b).abs().max()).unwrap(), 0.0);
    assert_eq!(second.info.accuracy, first.info.accuracy);
}

#[test]
fn resume_continues_an_interrupted_run_from_its_last_epoch() {
    let dir = tempfile::tempdir().unwrap();
    gunlearn::jobs::train::run(&job(dir.path(), 2, false)).unwrap();
    let before = csv_rows(&dir.path().join("train_log.csv"));
    assert_eq!(before.len(), 2);
    gunlearn::jobs::train::run(&job(dir.path(), 4, true)).unwrap();
    let after = csv_rows(&dir.path().join("train_log.csv"));
    assert_eq!(
        after.len(),
        4,
        "resumed run should add epochs 3 and 4: {after:?}"
    );
    assert_eq!(
        after[..2],
        before[..],
        "earlier epochs are kept as they were"
    );
    let last = checkpoint::load(&dir.path().join("last.safetensors"), Device::Cpu).unwrap();
    assert_eq!(last.info.epoch, 4);
}

#[test]
fn learning_rate_schedule_matches_the_reference_warmup_and_multistep() {
    let cfg = TrainConfig {
        lr: 0.1,
        warmup: 2,
        milestones: vec![5, 8],
        schedule_offset: 0,
        ..TrainConfig::default()
    };
    // Warm-up: lr · (epoch·steps + step + 1) / (warmup·steps), capped at lr.
    assert!((cfg.lr_at(0, 0, 10) - 0.1 / 20.0).abs() < 1e-15);
    assert!((cfg.lr_at(1, 9, 10) - 0.1).abs() < 1e-15);
    assert!((cfg.lr_at(4, 0, 10) - 0.1).abs() < 1e-15);
    assert!((cfg.lr_at(5, 0, 10) - 0.01).abs() < 1e-15);
    assert!((cfg.lr_at(8, 3, 10) - 0.001).abs() < 1e-15);
    // OMP retraining advances the schedule by the rewind epoch.
    let advanced = TrainConfig {
        schedule_offset: 3,
        warmup: 0,
        ..cfg
    };
    assert!((advanced.lr_at(2, 0, 10) - 0.01).abs() < 1e-15);
}

#[test]
fn the_model_is_the_best_by_validation_or_with_keep_last_the_last_epoch() {
    let val_column = |dir: &Path| -> Vec<f64> {
        csv_rows(&dir.join("train_log.csv"))
            .iter()
            .map(|r| r.split(',').nth(4).unwrap().parse().unwrap())
            .collect()
    };
    let best = tempfile::tempdir().unwrap();
    gunlearn::jobs::train::run(&job(best.path(), 3, false)).unwrap();
    let val = val_column(best.path());
    let first_max = val
        .iter()
        .position(|&v| v == val.iter().cloned().fold(f64::MIN, f64::max))
        .unwrap();
    let model = checkpoint::load(best.path(), Device::Cpu).unwrap();
    assert_eq!(model.info.epoch, first_max + 1, "validation column {val:?}");

    let last = tempfile::tempdir().unwrap();
    let mut keep_last = job(last.path(), 3, false);
    keep_last.config.keep_last = true;
    gunlearn::jobs::train::run(&keep_last).unwrap();
    let model = checkpoint::load(last.path(), Device::Cpu).unwrap();
    let latest = checkpoint::load(&last.path().join("last.safetensors"), Device::Cpu).unwrap();
    assert_eq!(model.info.epoch, 3);
    let x = Tensor::rand([16, 1, 8, 8], (Kind::Float, Device::Cpu));
    let (a, _) = model.model.forward(&x, false);
    let (b, _) = latest.model.forward(&x, false);
    assert_eq!(f64::try_from((&a - &b).abs().max()).unwrap(), 0.0);
}

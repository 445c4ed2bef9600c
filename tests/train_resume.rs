//! `train --resume` after an interruption: a run stopped after k epochs and resumed to N ends
//! with exactly the weights, BatchNorm statistics, momentum buffers, best checkpoint and log of
//! a run that trained N epochs straight.

mod common;

use gunlearn::checkpoint::{self, read_safetensors, ModelInfo};
use gunlearn::data::splits::{make_splits, SplitConfig, Splits};
use gunlearn::data::{self, DataSet, DatasetName};
use gunlearn::model::{Arch, Classifier, ModelSpec};
use gunlearn::train::{train, RunOutput, TrainConfig, TrainSummary};
use std::path::Path;
use std::sync::Arc;
use tch::Device;

const EPOCHS: usize = 3;

struct Setup {
    ds: DataSet,
    train_set: Arc<gunlearn::data::ImageSet>,
    splits: Splits,
    spec: ModelSpec,
    config: TrainConfig,
}

fn setup() -> Setup {
    common::pin_threads();
    let ds = data::load(DatasetName::Digits, None).unwrap();
    let splits = make_splits(&ds, &SplitConfig::default()).unwrap();
    let spec = gunlearn::jobs::model_spec(&ds, Arch::Resnet20).unwrap();
    let config = TrainConfig {
        epochs: EPOCHS,
        lr: 0.05,
        batch_size: 128,
        // The lr drops at epoch 2, so a resume must also pick up the schedule where it was.
        milestones: vec![2],
        augment: Some(ds.default_augment()),
        seed: 11,
        ..TrainConfig::default()
    };
    Setup {
        train_set: Arc::new(ds.train.clone()),
        ds,
        splits,
        spec,
        config,
    }
}

/// Trains `model` for `epochs` epochs into `dir` (resuming from `dir/last.*` when `resume`).
fn run(s: &Setup, model: &Classifier, dir: &Path, epochs: usize, resume: bool) -> TrainSummary {
    let info = ModelInfo {
        format: checkpoint::FORMAT.into(),
        model: s.spec.clone(),
        dataset: s.ds.name,
        seed: s.config.seed,
        epoch: 0,
        accuracy: Default::default(),
        sparsity: 0.0,
        device: "cpu".into(),
        produced_by: "train".into(),
        extra: serde_json::Value::Null,
    };
    let out = RunOutput {
        save_dir: dir.to_path_buf(),
        info,
        resume,
        quiet: true,
    };
    let config = TrainConfig {
        epochs,
        ..s.config.clone()
    };
    train(
        model,
        None,
        &s.train_set,
        &s.splits.train,
        &s.splits.val,
        &config,
        Some(&out),
        Device::Cpu,
    )
    .unwrap()
}

/// A model initialised from `seed`.
fn model(s: &Setup, seed: i64) -> Classifier {
    tch::manual_seed(seed);
    Classifier::new(&s.spec, Device::Cpu)
}

fn assert_same_file_tensors(a: &Path, b: &Path) {
    let (x, y) = (read_safetensors(a).unwrap(), read_safetensors(b).unwrap());
    let mut names: Vec<&String> = x.keys().collect();
    names.sort();
    assert_eq!(
        names,
        {
            let mut n: Vec<&String> = y.keys().collect();
            n.sort();
            n
        },
        "{}: same tensors",
        a.display()
    );
    for name in names {
        assert!(
            x[name].equal(&y[name]),
            "{}: {name} differs from the uninterrupted run's",
            a.file_name().unwrap().to_string_lossy()
        );
    }
}

/// `train_log.csv` without the wall-time column.
fn log_without_seconds(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("train_log.csv"))
        .unwrap()
        .lines()
        .map(|l| l.rsplit_once(',').unwrap().0.to_string())
        .collect()
}

#[test]
fn resumed_training_ends_bit_identical_to_an_uninterrupted_run() {
    let s = setup();
    let root = tempfile::tempdir().unwrap();
    let straight_dir = root.path().join("straight");
    let straight_model = model(&s, 0);
    let straight = run(&s, &straight_model, &straight_dir, EPOCHS, false);
    assert_eq!(straight.log.len(), EPOCHS);

    for stop in [1, 2] {
        let dir = root.path().join(format!("stopped-after-{stop}"));
        let first = model(&s, 0);
        run(&s, &first, &dir, stop, false);
        drop(first);
        // A new process would start from another initialisation: resume must overwrite it.
        let resumed_model = model(&s, 1234);
        let resumed = run(&s, &resumed_model, &dir, EPOCHS, true);

        for (name, v) in straight_model.vs.variables() {
            assert!(
                resumed_model.vs.variables()[&name].equal(&v),
                "stopped after {stop}: {name} differs in memory"
            );
        }
        for file in [
            "last.safetensors",
            "model.safetensors",
            "optimizer.safetensors",
        ] {
            assert_same_file_tensors(&dir.join(file), &straight_dir.join(file));
        }
        assert_eq!(
            log_without_seconds(&dir),
            log_without_seconds(&straight_dir),
            "stopped after {stop}: the log"
        );
        assert_eq!(resumed.log.len(), EPOCHS);
        assert_eq!(
            resumed.best_epoch, straight.best_epoch,
            "stopped after {stop}"
        );
        assert_eq!(resumed.best_val, straight.best_val, "stopped after {stop}");
        let last = checkpoint::load(&dir.join("last.safetensors"), Device::Cpu).unwrap();
        assert_eq!(last.info.epoch, EPOCHS);
    }
}

//! `gunlearn prune` end to end on the embedded digits data with ResNet-20 (OMP with rewinding),
//! and the mask's zero set surviving training and every unlearning method.

mod common;

use gunlearn::checkpoint;
use gunlearn::data::splits::{make_splits, ForgetRequest, SplitConfig};
use gunlearn::data::{self, DatasetName};
use gunlearn::jobs::{DataConfig, Runner};
use gunlearn::model::mask::Mask;
use gunlearn::model::{Arch, Classifier};
use gunlearn::prune::{PruneJob, PruneMethod, PruneType, PruningSummary};
use gunlearn::train::TrainConfig;
use gunlearn::unlearn::{registry, UnlearnConfig, UnlearnContext, UnlearnLog};
use std::path::Path;
use std::sync::Arc;
use tch::{Device, Tensor};

/// Pins libtorch's intra-op threads (the test machine's cores are shared).
fn threads() -> usize {
    common::pin_threads()
}

fn args(save_dir: &Path, prune: PruneMethod, rate: f64, times: usize) -> PruneJob {
    PruneJob {
        data: DataConfig::default(),
        runner: Runner {
            device: "cpu".into(),
            threads: Some(threads()),
            quiet: true,
            ..Runner::default()
        },
        arch: Arch::Resnet20,
        prune,
        rate,
        pruning_times: times,
        rewind_epoch: 1,
        prune_type: PruneType::RewindLt,
        synflow_rounds: 10,
        train: TrainConfig {
            epochs: 2,
            lr: 0.05,
            batch_size: 128,
            milestones: vec![1],
            seed: 3,
            augment: Some(DatasetName::Digits.default_augment()),
            ..TrainConfig::default()
        },
        save_dir: save_dir.to_path_buf(),
        resume: false,
    }
}

/// Asserts that every weight pruned by `mask` is exactly zero in `model`.
fn assert_zero_set(model: &Classifier, mask: &Mask, what: &str) {
    let vars = model.vs.variables();
    for (name, m) in &mask.masks {
        let w = &vars[name];
        let alive_in_pruned = w.ne(0.0).logical_and(&m.eq(0.0)).any().int64_value(&[]);
        assert_eq!(
            alive_in_pruned, 0,
            "{what}: a pruned weight of {name} is nonzero"
        );
    }
}

fn kept_weights(model: &Classifier, mask: &Mask) -> Vec<Tensor> {
    let vars = model.vs.variables();
    mask.masks
        .iter()
        .map(|(n, m)| vars[n].masked_select(&m.eq(1.0)))
        .collect()
}

#[test]
fn omp_with_rewinding_writes_every_state_and_keeps_masks_through_unlearning() {
    let dir = tempfile::tempdir().unwrap();
    let save = dir.path().join("omp");
    let summary = gunlearn::prune::run(&args(&save, PruneMethod::Omp, 0.5, 1)).unwrap();

    // Layout: dense state with rewind weights, sparse state, summary file.
    for f in [
        "state0/model.safetensors",
        "state0/model.json",
        "state0/rewind.safetensors",
        "state0/last.safetensors",
        "state0/train_log.csv",
        "state1/model.safetensors",
        "pruning.json",
    ] {
        assert!(save.join(f).exists(), "{f} missing");
    }
    let on_disk: PruningSummary =
        serde_json::from_str(&std::fs::read_to_string(save.join("pruning.json")).unwrap()).unwrap();
    assert_eq!(on_disk.states.len(), 2);
    assert_eq!(summary.states[0].sparsity, 0.0);
    assert!((summary.states[1].sparsity - 50.0).abs() < 0.01);
    let log0 = std::fs::read_to_string(save.join("state0/train_log.csv")).unwrap();
    assert_eq!(
        log0.lines().count(),
        3,
        "the dense run is 2 epochs, rewind split included:\n{log0}"
    );

    // The sparse state's mask is global magnitude pruning of the dense run's final weights.
    let dense_last = checkpoint::load(&save.join("state0/last.safetensors"), Device::Cpu).unwrap();
    let expected = Mask::global_magnitude(&dense_last.model, 0.5, None);
    let sparse = checkpoint::load(&save.join("state1"), Device::Cpu).unwrap();
    let mask = sparse
        .mask
        .as_ref()
        .expect("the sparse checkpoint holds its mask");
    for (name, m) in &expected.masks {
        assert!(
            m.equal(&mask.masks[name]),
            "{name}: mask is not the dense model's global magnitude mask"
        );
    }
    // Zero set unchanged after retraining; the survivors did train away from the rewind point.
    assert_zero_set(&sparse.model, mask, "after sparse retraining");
    let rewind = checkpoint::load(&save.join("state0/rewind.safetensors"), Device::Cpu).unwrap();
    assert_eq!(rewind.info.epoch, 1);
    let moved = kept_weights(&sparse.model, mask)
        .iter()
        .zip(kept_weights(&rewind.model, mask))
        .any(|(a, b)| !a.equal(&b));
    assert!(moved, "retraining did not change the kept weights");
    // The retrain used the schedule advanced by the rewind epoch: lr decayed from the start.
    let log1 = std::fs::read_to_string(save.join("state1/train_log.csv")).unwrap();
    let lr1: f64 = log1
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!((lr1 - 0.005).abs() < 1e-12, "first sparse epoch lr {lr1}");

    // Every unlearning method leaves the zero set unchanged.
    let ds = data::load(DatasetName::Digits, None).unwrap();
    let mut splits = make_splits(
        &ds,
        &SplitConfig {
            val_set_seed: 1,
            seed: 2,
            forget: ForgetRequest::Random { fraction: 0.1 },
            selection_fraction: 0.0,
        },
    )
    .unwrap();
    // Two retain batches are enough to move every weight; the adversarial method's 40 forward
    // passes per batch would otherwise dominate the test time.
    splits.retain.truncate(256);
    let config = UnlearnConfig {
        epochs: Some(1),
        batch_size: 128,
        attacker_iters: 3,
        seed: 2,
        ..UnlearnConfig::default()
    };
    let train_set = Arc::new(ds.train.clone());
    for method in registry() {
        let ckpt = checkpoint::load(&save.join("state1"), Device::Cpu).unwrap();
        let mask = ckpt.mask.as_ref().unwrap();
        let before = kept_weights(&ckpt.model, mask);
        let ctx = UnlearnContext {
            model: &ckpt.model,
            mask: Some(mask),
            data: &ds,
            train_set: Arc::clone(&train_set),
            splits: &splits,
            config: &config,
            device: Device::Cpu,
            quiet: true,
            model_path: save.join("state1/model.safetensors"),
            save_dir: dir.path().join(format!("unlearn-{}", method.name())),
            class_wise: false,
            harness: gunlearn::unlearn::Harness::Sparsity,
        };
        std::fs::create_dir_all(&ctx.save_dir).unwrap();
        let mut log = UnlearnLog::default();
        method
            .run(&ctx, &mut log)
            .unwrap_or_else(|e| panic!("{}: {e:#}", method.name()));
        assert_zero_set(&ckpt.model, mask, method.name());
        let changed = kept_weights(&ckpt.model, mask)
            .iter()
            .zip(&before)
            .any(|(a, b)| !a.equal(b));
        assert_eq!(
            changed,
            method.name() != "raw",
            "{}: kept weights changed = {changed}",
            method.name()
        );
    }
}

#[test]
fn imp_and_synflow_states() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = args(&dir.path().join("imp"), PruneMethod::Imp, 0.2, 2);
    a.train.epochs = 1;
    a.rewind_epoch = 1;
    let imp = gunlearn::prune::run(&a).unwrap();
    let sparsities: Vec<f64> = imp.states.iter().map(|s| s.sparsity).collect();
    assert_eq!(sparsities.len(), 3);
    assert!(
        (sparsities[1] - 20.0).abs() < 0.01 && (sparsities[2] - 36.0).abs() < 0.01,
        "{sparsities:?}"
    );
    let m1 = checkpoint::load(&dir.path().join("imp/state1"), Device::Cpu)
        .unwrap()
        .mask
        .unwrap();
    let m2 = checkpoint::load(&dir.path().join("imp/state2"), Device::Cpu)
        .unwrap()
        .mask
        .unwrap();
    for (k, m) in &m1.masks {
        assert_eq!(
            m.eq(0.0)
                .logical_and(&m2.masks[k].eq(1.0))
                .any()
                .int64_value(&[]),
            0,
            "{k}: revived in round 2"
        );
    }

    let mut s = args(&dir.path().join("synflow"), PruneMethod::Synflow, 0.8, 1);
    s.train.epochs = 1;
    let syn = gunlearn::prune::run(&s).unwrap();
    assert_eq!(syn.states.len(), 1);
    assert!((syn.states[0].sparsity - 80.0).abs() < 0.01);
    let ck = checkpoint::load(&dir.path().join("synflow/state1"), Device::Cpu).unwrap();
    assert_zero_set(
        &ck.model,
        ck.mask.as_ref().unwrap(),
        "synflow after training",
    );

    // Resuming a finished SynFlow run (its only state is 1) keeps it as it is.
    let model_file = dir.path().join("synflow/state1/model.safetensors");
    let written = std::fs::metadata(&model_file).unwrap().modified().unwrap();
    s.resume = true;
    let again = gunlearn::prune::run(&s).unwrap();
    assert_eq!(again.states.len(), 1);
    assert_eq!(
        (again.states[0].state, again.states[0].test),
        (syn.states[0].state, syn.states[0].test)
    );
    assert_eq!(
        std::fs::metadata(&model_file).unwrap().modified().unwrap(),
        written,
        "a finished state is not trained again"
    );
}

#[test]
fn bad_flags_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = args(dir.path(), PruneMethod::Omp, 1.5, 1);
    assert!(format!("{:#}", gunlearn::prune::run(&a).unwrap_err()).contains("--rate"));
    a.rate = 0.5;
    a.rewind_epoch = 5;
    assert!(format!("{:#}", gunlearn::prune::run(&a).unwrap_err()).contains("--rewind_epoch"));
    // The subset flags reach the data loader (they were once ignored by prune).
    a.rewind_epoch = 1;
    a.data.train_subset = Some(0);
    assert!(format!("{:#}", gunlearn::prune::run(&a).unwrap_err()).contains("--train_subset"));
}

/// Every tensor of the checkpoint at `path` (a folder's `model.*` or a named file).
fn tensors(path: &Path) -> Vec<(String, Tensor)> {
    let ck = checkpoint::load(path, Device::Cpu).unwrap();
    let mut v: Vec<(String, Tensor)> = ck.model.vs.variables().into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn resume_after_an_interruption_gives_the_uninterrupted_result() {
    let dir = tempfile::tempdir().unwrap();
    let full_dir = dir.path().join("full");
    let a = args(&full_dir, PruneMethod::Imp, 0.2, 2);
    let full = gunlearn::prune::run(&a).unwrap();
    assert_eq!(full.states.len(), 3);

    // An interruption after state 1's last epoch, before its summary was written, and before
    // state 2 began: pruning.json lists state 0 only and state2/ does not exist.
    let cut = dir.path().join("cut");
    std::fs::create_dir_all(&cut).unwrap();
    for state in ["state0", "state1"] {
        std::fs::create_dir_all(cut.join(state)).unwrap();
        for f in std::fs::read_dir(full_dir.join(state)).unwrap() {
            let f = f.unwrap();
            std::fs::copy(f.path(), cut.join(state).join(f.file_name())).unwrap();
        }
    }
    let partial = PruningSummary {
        states: full.states[..1].to_vec(),
        ..full.clone()
    };
    std::fs::write(
        cut.join("pruning.json"),
        serde_json::to_string(&partial).unwrap(),
    )
    .unwrap();

    let mut r = args(&cut, PruneMethod::Imp, 0.2, 2);
    r.resume = true;
    let resumed = gunlearn::prune::run(&r).unwrap();
    assert_eq!(resumed.states.len(), 3);
    for (x, y) in full.states.iter().zip(&resumed.states) {
        assert_eq!(
            (x.state, x.sparsity, x.best_val, x.best_epoch, x.test),
            (y.state, y.sparsity, y.best_val, y.best_epoch, y.test)
        );
    }
    // State 2 was pruned from the reloaded last weights of state 1 and trained again: the
    // same weights, bit for bit, as the uninterrupted run.
    for name in ["model.safetensors", "last.safetensors"] {
        let (x, y) = (
            tensors(&full_dir.join("state2").join(name)),
            tensors(&cut.join("state2").join(name)),
        );
        assert_eq!(x.len(), y.len());
        for ((nx, tx), (ny, ty)) in x.iter().zip(&y) {
            assert_eq!(nx, ny);
            assert!(tx.equal(ty), "state2/{name}: {nx} differs after resuming");
        }
    }

    // Resuming with other flags is refused, naming the file.
    let mut other = args(&cut, PruneMethod::Imp, 0.3, 2);
    other.resume = true;
    let err = format!("{:#}", gunlearn::prune::run(&other).unwrap_err());
    assert!(
        err.contains("pruning.json") && err.contains("different pruning run"),
        "{err}"
    );
}

//! The unlearning methods through the `gunlearn` binary: `unlearn --help` lists every method
//! with its summary, GA in random forgetting records its un-augmented forget stream in
//! eval_result.json, and a Gan run that pre-trains its attacker and one that reuses the cached
//! attacker write bit-identical `model.safetensors` (another `--val_set_seed`, another entry).

mod common;

use common::{ok, read_json};

use gunlearn::unlearn::registry;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

fn threads() -> String {
    common::test_threads().to_string()
}

/// A small digits model trained once for all tests of this file.
fn model_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("gunlearn-cli-methods-test-{}", std::process::id()));
        let t = threads();
        ok(&[
            "train",
            "--dataset",
            "digits",
            "--arch",
            "resnet20",
            "--epochs",
            "3",
            "--batch_size",
            "64",
            "--decreasing_lr",
            "2",
            "--device",
            "cpu",
            "--threads",
            &t,
            "--quiet",
            "--save_dir",
            dir.to_str().unwrap(),
        ]);
        dir
    })
}

/// `gunlearn unlearn --model <trained> --dataset digits … extra` into `save_dir`.
fn unlearn(save_dir: &Path, extra: &[&str]) -> Output {
    let args = unlearn_args(model_dir(), save_dir, extra);
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The arguments of [`unlearn`] from `model`.
fn unlearn_args(model: &Path, save_dir: &Path, extra: &[&str]) -> Vec<String> {
    let path = |p: &Path| p.to_str().unwrap().to_string();
    let mut args: Vec<String> = ["unlearn", "--model"].map(String::from).to_vec();
    args.push(path(model));
    args.extend(["--dataset", "digits", "--device", "cpu", "--threads"].map(String::from));
    args.push(threads());
    args.extend([
        "--quiet".to_string(),
        "--save_dir".to_string(),
        path(save_dir),
    ]);
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

/// Whitespace runs collapsed to one space (help text may be wrapped).
fn squeeze(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn unlearn_help_lists_every_method_with_its_summary() {
    let out = ok(&["unlearn", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    let flat = squeeze(&help);
    let methods = registry();
    assert!(methods.len() >= 15, "{} methods registered", methods.len());
    for m in methods {
        let entry = squeeze(&format!("{} {}", m.name(), m.summary()));
        assert!(
            flat.contains(&entry),
            "`unlearn --help` lacks {:?} with its summary:\n{help}",
            m.name()
        );
    }
}

#[test]
fn ga_in_random_forgetting_records_an_unaugmented_forget_stream() {
    let out = tempfile::tempdir().unwrap();
    unlearn(
        out.path(),
        &[
            "--unlearn",
            "GA",
            "--indexes_to_replace",
            "--unlearn_epochs",
            "1",
            "--unlearn_lr",
            "0.001",
            "--batch_size",
            "64",
        ],
    );
    let r = read_json(&out.path().join("eval_result.json"));
    assert_eq!(r["forget"]["kind"], "random", "{r:#}");
    assert_eq!(r["method"], "GA");
    assert_eq!(r["config"]["forget_augmented"], Value::Bool(false), "{r:#}");
    assert_eq!(
        r["config"]["ran"]["forget_augmented"],
        Value::Bool(false),
        "{r:#}"
    );
}

/// RL follows Unlearn-Saliency's harness: its forget stream keeps the train transform in random
/// forgetting too, where GA's (the sparsity code base's harness) does not.
#[test]
fn rl_in_random_forgetting_records_an_augmented_forget_stream() {
    let out = tempfile::tempdir().unwrap();
    unlearn(
        out.path(),
        &[
            "--unlearn",
            "RL",
            "--indexes_to_replace",
            "--unlearn_epochs",
            "1",
            "--batch_size",
            "64",
        ],
    );
    let r = read_json(&out.path().join("eval_result.json"));
    assert_eq!(r["forget"]["kind"], "random", "{r:#}");
    assert_eq!(
        r["config"]["ran"]["forget_augmented"],
        Value::Bool(true),
        "{r:#}"
    );
}

/// The cached attackers' files beside the trained model.
fn cache_files() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(model_dir().join("attackers"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn gan_with_a_pretrained_or_a_cached_attacker_writes_the_same_weights() {
    let root = tempfile::tempdir().unwrap();
    let gan = |save: &str, epochs: &str, extra: &[&str]| {
        let dir = root.path().join(save);
        let mut args = vec![
            "--unlearn",
            "Gan",
            "--class_to_replace",
            "3",
            "--unlearn_epochs",
            epochs,
            "--unlearn_lr",
            "0.01",
            "--stop-iter",
            "3",
            "--stop-unlearn-lr",
            "0.005",
            "--attacker_iters",
            "5",
            "--batch_size",
            "64",
        ];
        args.extend_from_slice(extra);
        unlearn(&dir, &args);
        dir
    };
    assert!(cache_files().is_empty(), "no attacker cached yet");
    let first = gan("first", "1", &[]);
    let cached = cache_files();
    assert_eq!(cached.len(), 2, "one attacker and its key: {cached:?}");
    assert!(
        cached.iter().any(|f| f.ends_with(".json"))
            && cached.iter().any(|f| f.ends_with(".safetensors"))
    );
    let second = gan("second", "1", &[]);
    assert_eq!(
        cache_files(),
        cached,
        "the second run reuses the cached attacker"
    );
    let r1 = read_json(&first.join("eval_result.json"));
    let r2 = read_json(&second.join("eval_result.json"));
    let pretraining = |r: &Value| r["timings"]["attacker_pretraining"].as_f64().unwrap();
    println!(
        "attacker pre-training {:.3}s, reuse {:.3}s",
        pretraining(&r1),
        pretraining(&r2)
    );
    let bytes = |dir: &Path| std::fs::read(dir.join("model.safetensors")).unwrap();
    assert!(
        bytes(&first) == bytes(&second),
        "model.safetensors differs between the pre-training run and the cached run"
    );
    // The unlearning log (losses, β, lr) is the same too.
    let log = |dir: &Path| std::fs::read_to_string(dir.join("unlearn_log.csv")).unwrap();
    assert_eq!(log(&first), log(&second));

    // Another validation split: other members and non-members, a new cache entry.
    gan("other-val", "1", &["--val_set_seed", "5"]);
    let now = cache_files();
    assert_eq!(now.len(), 4, "{now:?}");
    assert!(cached.iter().all(|f| now.contains(f)), "{now:?}");
}

/// Every method added for SPEC §4b, once through the binary on the whole class 3: it runs,
/// records what it ran with, keeps C outputs, and forgets — the forget accuracy falls below
/// the original model's (`raw`, the same command without unlearning).
#[test]
fn every_new_method_runs_through_the_binary_and_lowers_forget_accuracy() {
    let root = tempfile::tempdir().unwrap();
    let class_wise = ["--class_to_replace", "3", "--batch_size", "64"];
    let raw_dir = root.path().join("raw");
    unlearn(&raw_dir, &[&["--unlearn", "raw"][..], &class_wise].concat());
    let raw = read_json(&raw_dir.join("eval_result.json"));
    let raw_forget = raw["accuracy"]["forget"].as_f64().unwrap();
    assert!(
        raw_forget > 50.0,
        "the original should know class 3: {raw_forget}"
    );
    // One short run each; the learning rates are large enough for one epoch on 145 images
    // (the reference defaults of BS and BE, 1e-5, are sized for 4 500 images and 10 epochs).
    let runs: [(&str, &[&str]); 8] = [
        ("fisher_new", &[]),
        ("wfisher", &[]),
        ("RL", &["--unlearn_epochs", "1", "--unlearn_lr", "0.01"]),
        ("SalUn", &["--unlearn_epochs", "1", "--unlearn_lr", "0.013"]),
        (
            "SalUn_soft",
            &["--unlearn_epochs", "1", "--unlearn_lr", "0.013"],
        ),
        ("BS", &["--unlearn_epochs", "2", "--unlearn_lr", "0.01"]),
        ("BE", &["--unlearn_epochs", "2", "--unlearn_lr", "0.01"]),
        (
            "SCRUB",
            &[
                "--unlearn_epochs",
                "2",
                "--unlearn_lr",
                "0.01",
                "--msteps",
                "2",
            ],
        ),
    ];
    for (method, extra) in runs {
        let dir = root.path().join(method);
        unlearn(
            &dir,
            &[&["--unlearn", method][..], &class_wise, extra].concat(),
        );
        let r = read_json(&dir.join("eval_result.json"));
        assert_eq!(r["method"], method);
        let ran = r["config"]["ran"].as_object().unwrap();
        assert!(
            ran.keys().any(|k| k.ends_with("_augmented")),
            "{method}: config.ran records no stream augmentation: {ran:?}"
        );
        let forget = r["accuracy"]["forget"].as_f64().unwrap();
        assert!(
            forget < raw_forget - 5.0,
            "{method}: forget accuracy {forget} vs the original's {raw_forget}"
        );
        let info = read_json(&dir.join("model.json"));
        assert_eq!(info["model"]["num_classes"], 10, "{method}");
    }
}

/// `--gan_memory auto` (the default) keeps every graph when they fit and switches to recomputing
/// the attacker-input passes when its estimate of `keep`'s peak exceeds the memory available,
/// says so and records it; both give the same model up to summation order. `auto` lets glibc
/// return freed memory during the game and an explicit `keep` does not — which changes where
/// memory comes from, not one bit of the model. (The game is
/// stopped after 2 iterations: over a whole epoch it amplifies last-bit differences, as a
/// change of thread count would, until the two runs part visibly.)
#[test]
fn gan_recomputes_by_itself_when_keeping_every_graph_would_not_fit() {
    let root = tempfile::tempdir().unwrap();
    // One thread: with more, libtorch's reductions add their own last-bit differences.
    let t = "1".to_string();
    // A copy of the model: the attacker cached next to it must not reach the other tests'.
    let model = root.path().join("model");
    std::fs::create_dir_all(&model).unwrap();
    for f in ["model.safetensors", "model.json"] {
        std::fs::copy(model_dir().join(f), model.join(f)).unwrap();
    }
    let gan = |save: &str, available_gb: &str, extra: &[&str]| {
        let dir = root.path().join(save);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_gunlearn"))
            .args([
                "unlearn",
                "--model",
                model.to_str().unwrap(),
                "--dataset",
                "digits",
                "--device",
                "cpu",
                "--threads",
                &t,
                "--unlearn",
                "Gan",
                "--class_to_replace",
                "3",
                "--unlearn_epochs",
                "1",
                "--unlearn_lr",
                "0.01",
                "--stop-iter",
                "2",
                "--stop-unlearn-lr",
                "0.01",
                "--attacker_iters",
                "5",
                "--batch_size",
                "64",
                "--save_dir",
                dir.to_str().unwrap(),
            ])
            .args(extra)
            .env("GUNLEARN_LOG", "info")
            .env("GUNLEARN_AVAILABLE_MEMORY_GB", available_gb)
            .output()
            .unwrap();
        let log = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{log}");
        (dir, log)
    };
    let (roomy, roomy_log) = gan("roomy", "1000", &[]);
    let (tight, tight_log) = gan("tight", "0.001", &[]);
    let (kept, _) = gan("kept", "1000", &["--gan_memory", "keep"]);
    let ran = |dir: &Path| read_json(&dir.join("eval_result.json"))["config"]["ran"].clone();
    let (r, t, k) = (ran(&roomy), ran(&tight), ran(&kept));
    assert_eq!(r["gan_memory"], "keep", "{r}");
    assert_eq!(t["gan_memory"], "recompute", "{t}");
    assert_eq!(k["gan_memory"], "keep", "{k}");
    assert_eq!(r["glibc_returns_freed_memory"], true, "{r}");
    assert_eq!(t["glibc_returns_freed_memory"], true, "{t}");
    assert_eq!(k["glibc_returns_freed_memory"], false, "{k}");
    assert!(!roomy_log.contains("recomputing"), "{roomy_log}");
    assert!(
        tight_log.contains("--gan_memory auto") && tight_log.contains("recomputing"),
        "{tight_log}"
    );
    // The estimate is recorded with the memory it was compared with; it grows with the batch.
    let estimate = t["gan_memory_keep_estimate_gb"].as_f64().unwrap();
    assert!(estimate > 0.0, "{t}");
    assert_eq!(t["memory_available_gb"].as_f64(), Some(0.001));
    // The same gradient summed in another order: the weights agree closely.
    let weights = |dir: &Path| {
        tch::Tensor::read_safetensors(dir.join("model.safetensors"))
            .unwrap()
            .into_iter()
            .filter(|(_, v)| v.kind() == tch::Kind::Float)
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let (a, b) = (weights(&roomy), weights(&tight));
    assert_eq!(a.len(), b.len());
    for (name, x) in weights(&kept) {
        assert!(
            x.equal(&a[&name]),
            "{name}: keeping freed memory changed the model"
        );
    }
    let (mut diff2, mut norm2) = (0.0, 0.0);
    for (name, x) in &a {
        let d = x - &b[name];
        diff2 += f64::try_from(d.square().sum(tch::Kind::Double)).unwrap();
        norm2 += f64::try_from(x.square().sum(tch::Kind::Double)).unwrap();
        let worst = f64::try_from(d.abs().max()).unwrap();
        let scale = f64::try_from(x.abs().max()).unwrap().max(1e-6);
        assert!(
            worst / scale < 1e-2,
            "{name}: differs by {worst} (scale {scale})"
        );
    }
    let relative = (diff2 / norm2).sqrt();
    // Per iteration the two agree to ~3e-6 (tests/unlearn_gan_memory.rs); the plain iterations
    // after the game carry that to a few 1e-4 by the end of the epoch.
    assert!(
        relative < 2e-3,
        "the weights differ by {relative:e} (relative L2)"
    );
}

#[test]
fn a_gan_runs_epoch_lines_name_their_values_and_never_print_nan() {
    let dir = tempfile::tempdir().unwrap();
    // A copy of the model, so that its attacker is cached beside the copy, not the shared one.
    let model = dir.path().join("model");
    std::fs::create_dir_all(&model).unwrap();
    for file in ["model.safetensors", "model.json"] {
        std::fs::copy(model_dir().join(file), model.join(file)).unwrap();
    }
    let run = dir.path().join("run");
    let args = unlearn_args(
        &model,
        &run,
        &[
            "--unlearn",
            "Gan",
            "--class_to_replace",
            "3",
            "--unlearn_epochs",
            "2",
            "--stop-iter",
            "3",
            "--attacker_iters",
            "5",
            "--batch_size",
            "64",
        ],
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gunlearn"))
        .args(&args)
        .env("GUNLEARN_LOG", "info")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let epochs: Vec<&str> = log.lines().filter(|l| l.contains(" epoch ")).collect();
    assert_eq!(epochs.len(), 2, "{log}");
    for line in &epochs {
        for name in ["attacker acc", "retain acc", "L_adv", "β", "lr"] {
            assert!(line.contains(name), "{name} missing: {line}");
        }
    }
    assert!(!log.contains("NaN"), "NaN in the Gan run's log:\n{log}");
}

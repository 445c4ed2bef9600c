//! `audit.json` through the binary: written last by `unlearn` with hashes that match
//! independent SHA-256s (forgotten indices, input checkpoint, outputs, data files), checked by
//! `verify-audit`, which fails naming any file changed afterwards; a failed run writes none.

mod common;

use common::{gunlearn, ok, read_json};

use gunlearn::data::splits::{make_splits, ForgetRequest, SplitConfig};
use gunlearn::data::{load, DatasetName};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn sha256(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    hex(&Sha256::digest(&bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Trains a ResNet-20 for 2 epochs into `dir` on `dataset` (with `--data` if given).
fn train(dir: &Path, dataset: &str, data: Option<&Path>) {
    let t = common::test_threads().to_string();
    let mut args = vec![
        "train",
        "--dataset",
        dataset,
        "--arch",
        "resnet20",
        "--epochs",
        "2",
        "--batch_size",
        "64",
        "--device",
        "cpu",
        "--threads",
        &t,
        "--quiet",
        "--save_dir",
        dir.to_str().unwrap(),
    ];
    if let Some(d) = data {
        args.extend(["--data", d.to_str().unwrap()]);
    }
    ok(&args);
}

/// A digits model trained once for all tests of this file.
fn digits_model() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("gunlearn-audit-test-{}", std::process::id()));
        train(&dir, "digits", None);
        dir
    })
}

/// Copies a checkpoint's two files into `dir`, so a test may change them.
fn copy_model(from: &Path, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for name in ["model.safetensors", "model.json"] {
        std::fs::copy(from.join(name), dir.join(name)).unwrap();
    }
}

/// `unlearn --unlearn FT --unlearn_epochs 1 --class_to_replace 3` from `model` into `out`.
fn unlearn_ft(model: &Path, out: &Path, dataset: &str, data: Option<&Path>) {
    let t = common::test_threads().to_string();
    let mut args = vec![
        "unlearn",
        "--model",
        model.to_str().unwrap(),
        "--unlearn",
        "FT",
        "--unlearn_epochs",
        "1",
        "--class_to_replace",
        "3",
        "--batch_size",
        "64",
        "--dataset",
        dataset,
        "--device",
        "cpu",
        "--threads",
        &t,
        "--quiet",
        "--save_dir",
        out.to_str().unwrap(),
    ];
    if let Some(d) = data {
        args.extend(["--data", d.to_str().unwrap()]);
    }
    ok(&args);
}

/// SHA-256 of the forgotten indices of class 3 (seed 2, val seed 1), sorted, as u64 LE.
fn expected_forget_hash(dataset: DatasetName, data: Option<&Path>) -> (String, usize) {
    let ds = load(dataset, data).unwrap();
    let splits = make_splits(
        &ds,
        &SplitConfig {
            val_set_seed: 1,
            seed: 2,
            forget: ForgetRequest::Class {
                class: 3,
                count: None,
            },
            selection_fraction: 0.0,
        },
    )
    .unwrap();
    let mut idx = splits.forget.clone();
    idx.sort_unstable();
    let mut h = Sha256::new();
    for i in &idx {
        h.update((*i as u64).to_le_bytes());
    }
    (hex(&h.finalize()), idx.len())
}

fn verify(run: &Path) -> Output {
    gunlearn(&["verify-audit", run.to_str().unwrap(), "--device", "cpu"])
}

/// Flips the last byte of `path`.
fn flip_last_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    *bytes.last_mut().unwrap() ^= 0xff;
    std::fs::write(path, bytes).unwrap();
}

/// `verify-audit` fails, its output naming `file` as MISMATCH.
fn verify_fails_naming(run: &Path, file: &Path) {
    let out = verify(run);
    let all = text(&out);
    assert!(!out.status.success(), "verify-audit should fail:\n{all}");
    let name = file.canonicalize().unwrap();
    let line = all
        .lines()
        .find(|l| l.starts_with("MISMATCH"))
        .unwrap_or_else(|| panic!("no MISMATCH line:\n{all}"));
    assert!(
        line.contains(name.to_str().unwrap()) || line.contains(file.to_str().unwrap()),
        "the MISMATCH line should name {}:\n{all}",
        file.display()
    );
    assert_eq!(
        all.lines().filter(|l| l.starts_with("MISMATCH")).count(),
        1,
        "{all}"
    );
}

#[test]
fn digits_run_records_matching_hashes_and_verify_names_changed_files() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("input");
    copy_model(digits_model(), &input);
    let run = tmp.path().join("run");
    unlearn_ft(&input, &run, "digits", None);

    let audit = read_json(&run.join("audit.json"));
    assert_eq!(audit["format"], "gunlearn-audit-v1");
    assert_eq!(audit["method"], "FT");
    assert_eq!(audit["gap_to_retrain"], Value::Null);
    assert_eq!(
        audit["config"],
        read_json(&run.join("eval_result.json"))["config"]
    );
    assert_eq!(audit["software"]["gunlearn"], env!("CARGO_PKG_VERSION"));
    assert!(audit["created_utc"].as_str().unwrap().ends_with('Z'));
    let (forget_hash, count) = expected_forget_hash(DatasetName::Digits, None);
    assert_eq!(
        audit["forget"]["forget_indices_sha256"],
        forget_hash.as_str()
    );
    assert_eq!(audit["forget"]["forget_indices_count"], count);
    assert_eq!(audit["forget"]["kind"], "class");
    assert_eq!(audit["forget"]["class"], 3);
    assert_eq!(audit["data"]["files"][0]["path"], "embedded:digits");
    let ckpt = &audit["input_checkpoint"];
    assert_eq!(
        ckpt["safetensors"]["sha256"],
        sha256(&input.join("model.safetensors")).as_str()
    );
    assert_eq!(
        ckpt["json"]["sha256"],
        sha256(&input.join("model.json")).as_str()
    );
    let outputs = audit["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 4);
    for o in outputs {
        let path = run.join(o["path"].as_str().unwrap());
        assert_eq!(o["sha256"], sha256(&path).as_str(), "{}", path.display());
        assert_eq!(o["size"], std::fs::metadata(&path).unwrap().len());
    }
    let metrics = &audit["metrics"];
    let result = read_json(&run.join("eval_result.json"));
    for key in ["UA", "RA", "TA", "MIA_efficacy", "RTE_seconds"] {
        assert_eq!(metrics[key], result[key], "{key}");
    }
    // audit.json is the last file written.
    let modified = |name: &str| {
        std::fs::metadata(run.join(name))
            .unwrap()
            .modified()
            .unwrap()
    };
    assert!(modified("audit.json") >= modified("eval_result.json"));

    let out = verify(&run);
    assert!(out.status.success(), "{}", text(&out));
    let all = text(&out);
    assert!(all.contains("ok        forget indices"), "{all}");
    assert!(!all.contains("MISMATCH"), "{all}");

    // One byte of the output weights changed: named, then restored.
    let weights = run.join("model.safetensors");
    flip_last_byte(&weights);
    verify_fails_naming(&run, &weights);
    flip_last_byte(&weights);
    assert!(verify(&run).status.success());
    // One byte of the input checkpoint changed.
    let input_weights = input.join("model.safetensors");
    flip_last_byte(&input_weights);
    verify_fails_naming(&run, &input_weights);
    flip_last_byte(&input_weights);
    // A deleted output is reported missing.
    std::fs::remove_file(run.join("unlearn_log.csv")).unwrap();
    let out = verify(&run);
    assert!(!out.status.success());
    assert!(text(&out).contains("missing   output"), "{}", text(&out));
}

/// Writes the first `n_train` / `n_test` digits images as raw MNIST-layout IDX files.
fn write_idx_digits(dir: &Path, n_train: usize, n_test: usize) {
    let ds = load(DatasetName::Digits, None).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let idx = |magic: u32, dims: &[u32], data: &[u8]| {
        let mut out = magic.to_be_bytes().to_vec();
        for d in dims {
            out.extend(d.to_be_bytes());
        }
        out.extend_from_slice(data);
        out
    };
    for (prefix, set, n) in [("train", &ds.train, n_train), ("t10k", &ds.test, n_test)] {
        let pixels = &set.images[..n * set.image_len()];
        let labels: Vec<u8> = set.labels[..n].iter().map(|&l| l as u8).collect();
        let (h, w) = (set.height as u32, set.width as u32);
        std::fs::write(
            dir.join(format!("{prefix}-images-idx3-ubyte")),
            idx(0x803, &[n as u32, h, w], pixels),
        )
        .unwrap();
        std::fs::write(
            dir.join(format!("{prefix}-labels-idx1-ubyte")),
            idx(0x801, &[n as u32], &labels),
        )
        .unwrap();
    }
}

#[test]
fn idx_data_files_are_hashed_and_a_changed_one_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("idx");
    write_idx_digits(&data, 400, 120);
    let model = tmp.path().join("model");
    train(&model, "mnist", Some(&data));
    let run = tmp.path().join("run");
    unlearn_ft(&model, &run, "mnist", Some(&data));

    let audit = read_json(&run.join("audit.json"));
    let files = audit["data"]["files"].as_array().unwrap();
    let names = [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ];
    assert_eq!(files.len(), names.len());
    for (f, name) in files.iter().zip(names) {
        let path = data.join(name);
        assert_eq!(
            Path::new(f["path"].as_str().unwrap()),
            path.canonicalize().unwrap()
        );
        assert_eq!(f["sha256"], sha256(&path).as_str(), "{name}");
    }
    let (forget_hash, count) = expected_forget_hash(DatasetName::Mnist, Some(&data));
    assert_eq!(
        audit["forget"]["forget_indices_sha256"],
        forget_hash.as_str()
    );
    assert_eq!(audit["forget"]["forget_indices_count"], count);
    let out = verify(&run);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("ok        forget indices"));

    // One pixel of the training images changed: the file is named, and the forgotten indices
    // are not re-derived from changed data.
    let images = data.join("train-images-idx3-ubyte");
    flip_last_byte(&images);
    verify_fails_naming(&run, &images);
    assert!(text(&verify(&run)).contains("not re-derived"));
}

#[test]
fn a_failed_run_writes_no_audit_record() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    // An earlier run's record in the folder is removed, not left to look complete.
    std::fs::write(run.join("audit.json"), "{}").unwrap();
    let t = common::test_threads().to_string();
    let out = gunlearn(&[
        "unlearn",
        "--model",
        digits_model().to_str().unwrap(),
        "--unlearn",
        "GA",
        "--dataset",
        "digits",
        "--class_to_replace",
        "2",
        "--unlearn_lr",
        "1e12",
        "--unlearn_epochs",
        "50",
        "--batch_size",
        "16",
        "--device",
        "cpu",
        "--threads",
        &t,
        "--quiet",
        "--save_dir",
        run.to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "the run should stop on a NaN loss");
    assert!(text(&out).contains("loss became"), "{}", text(&out));
    assert!(run.join("model.safetensors").exists());
    assert!(!run.join("audit.json").exists());
    let out = verify(&run);
    assert!(!out.status.success());
    assert!(text(&out).contains("no audit record"), "{}", text(&out));
}

/// A change to an audit record.
type Edit = dyn Fn(&mut gunlearn::audit::AuditRecord);

/// Rewrites `run`'s audit.json with `edit` applied; with `reseal`, the record's own hash is
/// recomputed as a forger would.
fn edit_record(run: &Path, reseal: bool, edit: impl Fn(&mut gunlearn::audit::AuditRecord)) {
    let mut record = gunlearn::audit::read(run).unwrap();
    edit(&mut record);
    if reseal {
        record.record_sha256 = Some(record.sha256());
    }
    std::fs::write(
        run.join("audit.json"),
        serde_json::to_string_pretty(&record).unwrap(),
    )
    .unwrap();
}

#[test]
fn verify_checks_every_field_of_the_record_not_only_the_hashed_files() {
    let t = tempfile::tempdir().unwrap();
    let run = t.path().join("ft");
    unlearn_ft(digits_model(), &run, "digits", None);
    let original = std::fs::read(run.join("audit.json")).unwrap();
    ok(&["verify-audit", run.to_str().unwrap()]);
    let fails = |what: &str| {
        let out = verify(&run);
        assert!(!out.status.success(), "{what}: verify-audit passed");
        text(&out)
    };
    // Edited in place: the record's own hash names it.
    let cases: [(&str, &Edit); 4] = [
        ("count", &|r| r.forget.forget_indices_count -= 1),
        ("UA", &|r| r.metrics.ua = r.metrics.ua.map(|u| u + 1.0)),
        ("timing", &|r| {
            r.timings.insert("unlearn".into(), 0.001);
        }),
        ("gap", &|r| r.gap_to_retrain = Some(0.0)),
    ];
    for (what, edit) in cases {
        edit_record(&run, false, edit);
        assert!(fails(what).contains("audit.json's own fields"), "{what}");
        std::fs::write(run.join("audit.json"), &original).unwrap();
    }
    // Resealed by hand: what the fields summarise still gives them away.
    edit_record(&run, true, |r| r.forget.forget_indices_count -= 1);
    let out = fails("resealed count");
    assert!(
        out.contains("forget indices") && out.contains("MISMATCH"),
        "{out}"
    );
    std::fs::write(run.join("audit.json"), &original).unwrap();
    edit_record(&run, true, |r| r.metrics.ua = r.metrics.ua.map(|u| u + 1.0));
    let out = fails("resealed UA");
    assert!(out.contains("method, config and metrics"), "{out}");
    std::fs::write(run.join("audit.json"), &original).unwrap();
    ok(&["verify-audit", run.to_str().unwrap()]);
}

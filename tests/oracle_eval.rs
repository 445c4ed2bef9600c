//! `gunlearn eval`'s and `gunlearn unlearn`'s headline numbers against an independent Python
//! oracle (tests/python/oracle_eval.py): scikit-learn's copy of the digits data, the splits drawn
//! with NumPy's legacy RandomState from SPEC §1's description, the forward pass in the PyTorch
//! ResNet-20 of bench/reference.py loading what `gunlearn export-torch` wrote, and the SVC attack
//! of SPEC §6 with scikit-learn's `SVC(C=3, gamma='auto', kernel='rbf')`.
//!
//! Agreement asked for: every split index for index, every split's correct count exactly (so UA,
//! RA, TA, train and validation accuracy to the last image), all ten SVC scores (five feature
//! kinds, both protocols) to 1e-6, and p_y of every forget and test sample to 1e-6. On the digits
//! test set (≤ 360 images) and forget sets of 60–135 images, 1e-6 on a score means the same
//! prediction for every target sample.
//!
//! Feature precision. The SVC's answer depends on its input's last bits at the scale of libsvm's
//! stopping tolerance (gap 1e-3): a target whose decision value is within ≈ 1e-3 of 0 can change
//! side when the features move by one float32 ulp. gunlearn computes each feature in float64 and
//! hands the SVC float32 values; the reference hands scikit-learn float32 tensors (which `SVC.fit`
//! widens to float64). The oracle therefore rounds its float64 features to float32, and on those
//! identical inputs our solver and scikit-learn's agree to the last target. The oracle also fits
//! scikit-learn on unrounded float64 features and on features computed in float32 arithmetic with
//! torch (as the reference's code does); those scores are printed, not compared. Measured on the
//! RL case below (2026-12): both variants predict one of the 1 170 training-privacy targets of
//! the entropy attack differently (|decision| 5.1e-4 with float64 features; scikit-learn itself
//! flips it, −5.1e-4 → +2.6e-3, when only its input is rounded to float32), so that score moves by
//! 5.1e-4; every other score of every case agrees exactly.
//!
//! The cases: a ResNet-20 trained 4 epochs by `gunlearn train`, evaluated with the whole class 3
//! forgotten (seed 2, the class also leaves the test set), 10 % random forgetting (seed 3,
//! validation seed 2) and 60 images of class 5 (seed 4, the class stays in the test set); and
//! the `eval_result.json` that `gunlearn unlearn --unlearn RL` writes for its own output model
//! (random forgetting, seed 3). The Python side needs the project venv's torch, numpy and
//! scikit-learn; without them the test fails (no skip).

mod common;

use common::{ok, read_json};
use gunlearn::data::splits::{make_splits, ForgetRequest, SplitConfig};
use gunlearn::data::{self, DatasetName};
use serde_json::{json, Value};
use std::path::Path;

const KINDS: [&str; 5] = ["correctness", "confidence", "entropy", "m_entropy", "prob"];
const SPLITS: [&str; 5] = ["train", "val", "forget", "retain", "test"];
/// Largest allowed |ours − oracle| of an SVC score (a fraction) and of a p_y.
const TOL: f64 = 1e-6;

/// One evaluated checkpoint: its run folder, the forget flags given to gunlearn, and the same
/// request for the oracle and for our split code.
struct Case {
    name: &'static str,
    /// The folder with `eval_result.json` and the evaluated `model.safetensors`.
    dir: std::path::PathBuf,
    val_set_seed: u32,
    seed: u32,
    forget: ForgetRequest,
}

fn forget_flags(forget: &ForgetRequest) -> Vec<String> {
    match forget {
        ForgetRequest::Class { class, count } => {
            let mut v = vec!["--class_to_replace".into(), class.to_string()];
            if let Some(n) = count {
                v.extend(["--num_indexes_to_replace".into(), n.to_string()]);
            }
            v
        }
        ForgetRequest::Random { fraction } => vec![
            "--indexes_to_replace".into(),
            "--forget_fraction".into(),
            fraction.to_string(),
        ],
        ForgetRequest::None => Vec::new(),
    }
}

fn forget_json(forget: &ForgetRequest) -> Value {
    match forget {
        ForgetRequest::Class { class, count } => {
            json!({ "kind": "class", "class": class, "count": count })
        }
        ForgetRequest::Random { fraction } => json!({ "kind": "random", "fraction": fraction }),
        ForgetRequest::None => unreachable!("every case forgets something"),
    }
}

fn common_flags(case_seed: u32, val_set_seed: u32, threads: &str) -> Vec<String> {
    [
        "--dataset",
        "digits",
        "--seed",
        &case_seed.to_string(),
        "--val_set_seed",
        &val_set_seed.to_string(),
        "--device",
        "cpu",
        "--threads",
        threads,
        "--quiet",
    ]
    .map(String::from)
    .to_vec()
}

fn run(args: Vec<String>) {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&refs);
}

fn path(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

fn f(v: &Value, what: &str) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {v}"))
}

/// Our correct count on a split of `n` images from its accuracy (%), checking that the
/// accuracy is exactly that count's percentage.
fn count_from(acc: f64, n: usize, what: &str) -> usize {
    let c = (acc * n as f64 / 100.0).round() as usize;
    assert!(
        (acc - 100.0 * c as f64 / n as f64).abs() < 1e-9,
        "{what}: accuracy {acc} is not k/{n}"
    );
    c
}

fn check_case(case: &Case, ours: &Value, oracle: &Value) {
    let name = case.name;
    // Splits: the oracle's NumPy draws, index for index, against our split code.
    let ds = data::load(DatasetName::Digits, None).unwrap();
    let splits = make_splits(
        &ds,
        &SplitConfig {
            val_set_seed: case.val_set_seed,
            seed: case.seed,
            forget: case.forget.clone(),
            selection_fraction: 0.0,
        },
    )
    .unwrap();
    let indices =
        |k: &str| -> Vec<usize> { serde_json::from_value(oracle["splits"][k].clone()).unwrap() };
    assert_eq!(indices("train"), splits.train, "{name}: train split");
    assert_eq!(
        indices("val"),
        splits.val,
        "{name}: validation split (order as drawn)"
    );
    assert_eq!(indices("forget"), splits.forget, "{name}: forget set");
    assert_eq!(indices("retain"), splits.retain, "{name}: retain set");
    assert_eq!(indices("test"), splits.test, "{name}: test set");

    // Correct counts, split by split.
    let mut line = Vec::new();
    for split in SPLITS {
        let n = oracle["sizes"][split].as_u64().unwrap() as usize;
        assert_eq!(
            ours["sizes"][split].as_u64(),
            Some(n as u64),
            "{name}: |{split}|"
        );
        let theirs = oracle["correct"][split].as_u64().unwrap() as usize;
        let mine = count_from(f(&ours["accuracy"][split], split), n, split);
        assert_eq!(
            mine, theirs,
            "{name}: correct {split} images, ours vs the oracle's"
        );
        line.push(format!("{split} {mine}/{n}"));
    }
    for (key, split) in [("RA", "retain"), ("TA", "test")] {
        assert_eq!(ours[key], oracle["accuracy"][split], "{name}: {key}");
    }
    let ua = f(&ours["UA"], "UA");
    assert!((ua - f(&oracle["UA"], "UA")).abs() < 1e-9, "{name}: UA");
    println!("{name}: correct counts equal: {}", line.join(", "));

    // The ten SVC scores.
    let mut worst: f64 = 0.0;
    for protocol in ["SVC_MIA_forget_efficacy", "SVC_MIA_training_privacy"] {
        for kind in KINDS {
            let a = f(&ours[protocol][kind], kind);
            let b = f(&oracle[protocol][kind], kind);
            let margin = f(
                &oracle["min_abs_decision"][format!(
                    "{}.{kind}",
                    if protocol.ends_with("efficacy") {
                        "efficacy"
                    } else {
                        "privacy"
                    }
                )],
                "margin",
            );
            println!(
                "{name}: {protocol}.{kind}: ours {a:.6} oracle {b:.6} (|diff| {:.1e}; \
                 closest target to sklearn's boundary at |decision| {margin:.1e})",
                (a - b).abs()
            );
            assert!(
                (a - b).abs() <= TOL,
                "{name}: {protocol}.{kind}: ours {a} vs scikit-learn {b}"
            );
            worst = worst.max((a - b).abs());
        }
    }
    // The same attack fed features of other precisions: reported, not compared (module doc).
    for precision in ["float64", "torch32"] {
        let other = &oracle["other_precisions"][precision];
        let (mut max, mut differ) = (0.0f64, Vec::new());
        for protocol in ["SVC_MIA_forget_efficacy", "SVC_MIA_training_privacy"] {
            for kind in KINDS {
                let d = (f(&ours[protocol][kind], kind) - f(&other[protocol][kind], kind)).abs();
                max = max.max(d);
                if d > TOL {
                    differ.push(format!("{protocol}.{kind} {d:.1e}"));
                }
            }
        }
        println!(
            "{name}: scikit-learn on {precision} features: max |diff| {max:.1e} ({} of 10 scores \
             differ{}{})",
            differ.len(),
            if differ.is_empty() { "" } else { ": " },
            differ.join(", ")
        );
    }
    let mia = f(&ours["MIA_efficacy"], "MIA_efficacy");
    assert!(
        (mia - f(&oracle["MIA_efficacy"], "MIA")).abs() <= 100.0 * TOL,
        "{name}: MIA-efficacy"
    );

    // p_y of every forget and test sample (our eval keeps up to 2 000 of each).
    let mut max_diff: f64 = 0.0;
    for set in ["forget", "test"] {
        let mine: Vec<f64> =
            serde_json::from_value(ours["mia_confidence_features"][set].clone()).unwrap();
        let theirs: Vec<f64> = serde_json::from_value(oracle["confidence"][set].clone()).unwrap();
        assert_eq!(mine.len(), theirs.len(), "{name}: every {set} p_y kept");
        for (a, b) in mine.iter().zip(&theirs) {
            max_diff = max_diff.max((a - b).abs());
        }
    }
    println!(
        "{name}: UA {ua:.2} MIA-efficacy {mia:.2}; SVC scores max |diff| {worst:.1e}; \
         p_y max |diff| PyTorch vs ours {max_diff:.1e}"
    );
    assert!(max_diff <= TOL, "{name}: p_y differs by {max_diff}");
}

#[test]
fn eval_and_unlearn_results_match_an_independent_pytorch_and_sklearn_oracle() {
    let t0 = std::time::Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let threads = common::test_threads().to_string();
    let model = root.join("original");
    run([
        "train",
        "--arch",
        "resnet20",
        "--epochs",
        "4",
        "--batch_size",
        "64",
        "--decreasing_lr",
        "3",
        "--save_dir",
        &path(&model),
    ]
    .map(String::from)
    .into_iter()
    .chain(common_flags(2, 1, &threads))
    .collect());

    let mut cases = vec![
        Case {
            name: "eval-class3",
            dir: root.join("eval-class3"),
            val_set_seed: 1,
            seed: 2,
            forget: ForgetRequest::Class {
                class: 3,
                count: None,
            },
        },
        Case {
            name: "eval-random",
            dir: root.join("eval-random"),
            val_set_seed: 2,
            seed: 3,
            forget: ForgetRequest::Random { fraction: 0.1 },
        },
        Case {
            name: "eval-class5-60",
            dir: root.join("eval-class5-60"),
            val_set_seed: 1,
            seed: 4,
            forget: ForgetRequest::Class {
                class: 5,
                count: Some(60),
            },
        },
    ];
    for case in &cases {
        let mut args: Vec<String> = ["eval", "--model", &path(&model), "--save_dir"]
            .map(String::from)
            .to_vec();
        args.push(path(&case.dir));
        args.extend(common_flags(case.seed, case.val_set_seed, &threads));
        args.extend(forget_flags(&case.forget));
        run(args);
        std::fs::copy(
            model.join("model.safetensors"),
            case.dir.join("model.safetensors"),
        )
        .unwrap();
        std::fs::copy(model.join("model.json"), case.dir.join("model.json")).unwrap();
    }
    let unlearned = Case {
        name: "unlearn-RL-random",
        dir: root.join("unlearn-RL-random"),
        val_set_seed: 1,
        seed: 3,
        forget: ForgetRequest::Random { fraction: 0.1 },
    };
    let mut args: Vec<String> = [
        "unlearn",
        "--model",
        &path(&model),
        "--unlearn",
        "RL",
        "--unlearn_epochs",
        "1",
        "--unlearn_lr",
        "0.01",
        "--batch_size",
        "64",
        "--save_dir",
        &path(&unlearned.dir),
    ]
    .map(String::from)
    .to_vec();
    args.extend(common_flags(
        unlearned.seed,
        unlearned.val_set_seed,
        &threads,
    ));
    args.extend(forget_flags(&unlearned.forget));
    run(args);
    cases.push(unlearned);

    // Export each evaluated checkpoint as a torch.save state dict for the oracle.
    let mut list = Vec::new();
    for case in &cases {
        let pt = case.dir.join("model.pt");
        ok(&[
            "export-torch",
            &path(&case.dir.join("model.safetensors")),
            "-o",
            &path(&pt),
            "--device",
            "cpu",
        ]);
        list.push(json!({
            "name": case.name,
            "weights": path(&pt),
            "val_set_seed": case.val_set_seed,
            "seed": case.seed,
            "forget": forget_json(&case.forget),
        }));
    }
    let cases_json = root.join("cases.json");
    std::fs::write(&cases_json, serde_json::to_string(&list).unwrap()).unwrap();
    let out = root.join("oracle.json");
    let gunlearn_s = t0.elapsed().as_secs_f64();
    common::run_python("oracle_eval.py", &[&path(&cases_json), &path(&out)]);
    println!(
        "gunlearn runs {gunlearn_s:.1}s, oracle {:.1}s",
        t0.elapsed().as_secs_f64() - gunlearn_s
    );
    let oracle = read_json(&out);
    for case in &cases {
        let ours = read_json(&case.dir.join("eval_result.json"));
        check_case(case, &ours, &oracle[case.name]);
    }
    // The model's normalisation is the digits train pixels' mean and std (5 decimals).
    let norm = &oracle[cases[0].name];
    for k in 0..2 {
        let stored = f(&norm["normalize"][k], "normalize");
        let measured = f(&norm["train_pixel_mean_std"][k], "pixels");
        assert!(
            (stored - measured).abs() < 5e-6,
            "normalisation {stored} vs {measured}"
        );
    }
}

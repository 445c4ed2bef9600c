//! The scale rule: optimizer steps per phase against the reference's (CIFAR-10, batch 256),
//! the `reference-steps` schedule that keeps them in a scaled-down study, the run-level
//! warning past 2×, and the `sweep --dry-run` steps table on the evidence studies' files.

mod common;

use gunlearn::data::DatasetName;
use gunlearn::unlearn::schedule::{
    departure_warning, phases, reference_steps, RunShape, SetSizes, Written, REFERENCE,
};
use gunlearn::unlearn::UnlearnConfig;

fn shape(sizes: SetSizes, class_wise: bool) -> RunShape {
    RunShape {
        sizes,
        class_wise,
        dataset: DatasetName::Cifar10,
    }
}

const METHODS: [&str; 10] = [
    "FT",
    "GA",
    "FT_l1",
    "RL",
    "SalUn",
    "SalUn_soft",
    "BS",
    "BE",
    "SCRUB",
    "Gan",
];

#[test]
fn the_reference_command_runs_exactly_the_reference_steps() {
    for class_wise in [false, true] {
        for method in METHODS {
            let config = UnlearnConfig {
                stop_iter: class_wise.then_some(30),
                ..UnlearnConfig::default()
            };
            let ps = phases(method, &config, &shape(REFERENCE, class_wise));
            assert!(!ps.is_empty(), "{method}");
            for p in &ps {
                assert!(
                    (p.ratio() - 1.0).abs() < 0.01,
                    "{method} {}: {} vs {}",
                    p.phase,
                    p.steps,
                    p.reference_steps
                );
            }
        }
    }
    // The table of the reference (docs/method.md): the game's 30 + 447 class-wise.
    let gan = phases(
        "Gan",
        &UnlearnConfig {
            stop_iter: Some(30),
            ..UnlearnConfig::default()
        },
        &shape(REFERENCE, true),
    );
    let steps: Vec<(String, usize)> = gan.iter().map(|p| (p.phase.clone(), p.steps)).collect();
    assert_eq!(steps[0], ("adversarial".into(), 30));
    assert_eq!(steps[1], ("repair (β = 0)".into(), 447));
    assert!(phases(
        "fisher_new",
        &UnlearnConfig::default(),
        &shape(REFERENCE, false)
    )
    .is_empty());
}

/// The 1 000-image study: 904 train images (96 validation), batch 32, a forget set of 90.
fn small() -> SetSizes {
    SetSizes {
        train: 904,
        retain: 814,
        forget: 90,
        val: 96,
    }
}

fn small_study(method: &str) -> UnlearnConfig {
    UnlearnConfig {
        batch_size: 32,
        epochs: Some(if method == "Gan" { 1 } else { 3 }),
        stop_iter: (method == "Gan").then_some(20),
        attacker_iters: 100,
        ..UnlearnConfig::default()
    }
}

#[test]
fn the_thousand_image_study_departs_and_is_warned_with_both_step_counts() {
    let gan = phases("Gan", &small_study("Gan"), &shape(small(), true));
    let warning = departure_warning("Gan", &gan).expect("Gan departs");
    assert!(
        warning.contains("adversarial phase 20 of 26 iterations (77 %); reference 30 of 477 (6 %)"),
        "{warning}"
    );
    assert!(
        warning.contains("repair (β = 0) phase 6 of 26"),
        "{warning}"
    );
    for method in ["BS", "BE", "GA"] {
        let ps = phases(method, &small_study(method), &shape(small(), true));
        let warning = departure_warning(method, &ps)
            .unwrap_or_else(|| panic!("{method} runs 9 steps where the reference runs 90+"));
        assert!(
            warning.contains(" 9 steps (3 per epoch over F)"),
            "{warning}"
        );
    }
}

#[test]
fn reference_steps_keeps_reference_epochs_where_they_fit_and_scales_them_where_not() {
    // Study v2's sizes: 4 250 train, |F| = 425, batch 32.
    let v2 = SetSizes {
        train: 4250,
        retain: 3825,
        forget: 425,
        val: 500,
    };
    let base = UnlearnConfig {
        batch_size: 32,
        ..UnlearnConfig::default()
    };
    for class_wise in [false, true] {
        for method in METHODS {
            let derived = reference_steps(
                method,
                &base,
                &shape(v2, class_wise),
                Written::default(),
                1.0,
            );
            let (_, ref_epochs) = gunlearn::unlearn::find(method).unwrap().defaults();
            assert_eq!(
                derived.epochs,
                Some(ref_epochs),
                "{method}: 20 % shorter epochs fit"
            );
            for p in phases(method, &derived, &shape(v2, class_wise)) {
                assert!(
                    p.within_tolerance(),
                    "{method} {}: ratio {}",
                    p.phase,
                    p.ratio()
                );
            }
        }
    }
    let gan = reference_steps("Gan", &base, &shape(v2, true), Written::default(), 1.0);
    // 6.3 % of 3 × 120 iterations; 5.7 passes of 4 250 images at batch 32.
    assert_eq!(gan.stop_iter, Some(23));
    assert_eq!(gan.attacker_iters, 756);
    let scrub = reference_steps("SCRUB", &base, &shape(v2, false), Written::default(), 1.0);
    assert_eq!(
        scrub.forget_batch_size, 48,
        "9 max-pass steps over 425 images"
    );
    let twice = reference_steps("Gan", &base, &shape(v2, true), Written::default(), 2.0);
    assert_eq!(twice.stop_iter, Some(45));

    // At the 1 000-image size the epochs are scaled up, never down, and every phase fits.
    for class_wise in [false, true] {
        for method in METHODS {
            let derived = reference_steps(
                method,
                &base,
                &shape(small(), class_wise),
                Written::default(),
                1.0,
            );
            let (_, ref_epochs) = gunlearn::unlearn::find(method).unwrap().defaults();
            assert!(derived.epochs.unwrap() > ref_epochs, "{method}");
            for p in phases(method, &derived, &shape(small(), class_wise)) {
                assert!(
                    (p.ratio() - 1.0).abs() <= 0.25,
                    "{method} {} at 1 000 images: {} vs {}",
                    p.phase,
                    p.steps,
                    p.reference_steps
                );
            }
        }
    }
    // A setting written in the sweep file wins.
    let written = Written {
        epochs: true,
        ..Written::default()
    };
    let ft = UnlearnConfig {
        epochs: Some(2),
        ..base.clone()
    };
    assert_eq!(
        reference_steps("FT", &ft, &shape(small(), false), written, 1.0).epochs,
        Some(2)
    );
}

#[test]
fn dry_run_prints_the_steps_table_of_both_studies() {
    common::fashion_mnist();
    let out = tempfile::tempdir().unwrap();
    let run = |file: &str| {
        let dir = out.path().join(file);
        let o = common::gunlearn(&[
            "sweep",
            &format!("examples/{file}"),
            "--out",
            dir.to_str().unwrap(),
            "--dry-run",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let v2 = run("study-v2-fashion-mnist.toml");
    assert!(v2.contains("Optimizer steps per phase"), "{v2}");
    let summary = v2.lines().find(|l| l.contains("phases outside")).unwrap();
    assert!(summary.starts_with("0 of "), "{summary}");
    assert!(!v2.contains("OUTSIDE"), "{v2}");
    assert!(v2.contains("explored: stop_iter_scale 4"), "{v2}");

    let old = run("study-fashion-mnist.toml");
    for method in ["Gan", "BS", "BE", "GA"] {
        assert!(
            old.lines()
                .any(|l| l.contains(&format!(" {method} ")) && l.contains("> 2×: warned")),
            "{method} is not warned:\n{old}"
        );
    }
}

#[test]
fn dry_run_estimates_the_cpu_time_from_measured_costs() {
    common::pin_threads();
    let out = tempfile::tempdir().unwrap();
    let o = common::gunlearn(&[
        "sweep",
        "examples/digits-minimal.toml",
        "--out",
        out.path().to_str().unwrap(),
        "--dry-run",
        "--estimate",
        "--workers",
        "2",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8(o.stdout).unwrap();
    let minutes = |kind: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(kind))
            .unwrap_or_else(|| panic!("no {kind} line:\n{text}"));
        let number = line.trim_end().trim_end_matches("min").trim_end();
        number.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert!(text.contains("Estimated CPU time"), "{text}");
    assert!(text.contains("adversarial iteration"), "{text}");
    // The adversarial method's game costs more than fine-tuning at the same epochs.
    assert!(minutes("Gan") > minutes("FT"), "{text}");
    let total = text
        .lines()
        .find(|l| l.trim_start().starts_with("total"))
        .unwrap();
    assert!(
        total.contains("CPU hours") && total.contains("on 2 worker(s)"),
        "{total}"
    );
}

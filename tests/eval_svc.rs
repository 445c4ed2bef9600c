//! Parity of our C-SVC with scikit-learn's `SVC(C=3, gamma='auto')` on MIA-like features
//! generated at test time by `scripts/svc_fixtures.py`, plus degenerate-input errors.

mod common;

use gunlearn::eval::svc::{self, SvcConfig};
use std::path::{Path, PathBuf};

/// Rayon threads for tests (`GUNLEARN_TEST_THREADS`, default 2).
fn test_threads() -> usize {
    common::test_threads()
}

fn pool() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(test_threads())
        .build()
        .unwrap()
}

/// The project's venv Python (scikit-learn); its absence is a failure, not a skip.
fn python() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        p.exists(),
        "{} missing: these tests compare with scikit-learn; run `make test`, which installs the venv",
        p.display()
    );
    p
}

fn read_f32(p: &Path) -> Vec<f32> {
    std::fs::read(p)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn read_f64(p: &Path) -> Vec<f64> {
    std::fs::read(p)
        .unwrap()
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

#[test]
fn matches_sklearn_on_mia_like_features() {
    let py = python();
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(py)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/svc_fixtures.py"))
        .arg(dir.path())
        .env("OMP_NUM_THREADS", "1")
        .status()
        .unwrap();
    assert!(status.success(), "svc_fixtures.py failed");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("manifest.json")).unwrap()).unwrap();
    let sets = manifest.as_array().unwrap();
    assert_eq!(sets.len(), 4);
    let pool = pool();
    for set in sets {
        let name = set["name"].as_str().unwrap();
        let (n, d, m) = (
            set["n"].as_u64().unwrap() as usize,
            set["d"].as_u64().unwrap() as usize,
            set["m"].as_u64().unwrap() as usize,
        );
        let f = |suffix: &str| dir.path().join(format!("{name}_{suffix}"));
        let x = read_f32(&f("x.f32"));
        let y: Vec<bool> = std::fs::read(f("y.u8"))
            .unwrap()
            .iter()
            .map(|&b| b != 0)
            .collect();
        let t = read_f32(&f("t.f32"));
        let sk_pred: Vec<bool> = std::fs::read(f("pred.u8"))
            .unwrap()
            .iter()
            .map(|&b| b != 0)
            .collect();
        let sk_dec = read_f64(&f("dec.f64"));
        assert_eq!(
            (x.len(), y.len(), t.len(), sk_pred.len()),
            (n * d, n, m * d, m)
        );

        let model = pool.install(|| svc::fit(&x, d, &y)).unwrap();
        let dec = pool.install(|| model.decision(&t));
        let pred = pool.install(|| model.predict(&t));
        // sklearn's own predictions follow the sign of its decision values.
        for k in 0..m {
            assert_eq!(
                sk_pred[k],
                sk_dec[k] >= 0.0,
                "{name}: sklearn pred/decision mismatch at {k}"
            );
        }
        let mut agree = 0;
        let mut max_dec_diff: f64 = 0.0;
        for k in 0..m {
            max_dec_diff = max_dec_diff.max((dec[k] - sk_dec[k]).abs());
            if pred[k] == sk_pred[k] {
                agree += 1;
            } else {
                assert!(
                    sk_dec[k].abs() < 0.01,
                    "{name}: disagreement at target {k} where sklearn decision = {} (ours {})",
                    sk_dec[k],
                    dec[k]
                );
            }
        }
        let agreement = agree as f64 / m as f64;
        let score = |p: &[bool]| p.iter().filter(|&&b| !b).count() as f64 / m as f64;
        let (ours_score, sk_score) = (score(&pred), score(&sk_pred));
        eprintln!(
            "{name}: n={n} d={d} SVs={} iters={} agreement={:.4}% max|Δdecision|={max_dec_diff:.2e} \
             score ours={ours_score:.4} sklearn={sk_score:.4}",
            model.n_support(),
            model.iterations,
            100.0 * agreement
        );
        // Same algorithm, same order: decision values should agree to well below eps.
        assert!(
            max_dec_diff < 1e-3,
            "{name}: decision values differ by {max_dec_diff}"
        );
        assert!(agreement >= 0.995, "{name}: agreement {agreement} < 99.5 %");
        assert!(
            (ours_score - sk_score).abs() <= 0.005,
            "{name}: MIA score {ours_score} vs sklearn {sk_score}"
        );
        // Sanity: the attack has signal, so the model is not a constant predictor.
        assert!(pred.iter().any(|&b| b) || name == "correctness_1d");
    }
}

#[test]
fn small_cache_and_no_shrinking_give_the_same_model() {
    // Two overlapping 2-D blobs; a tiny cache forces evictions and partial-column extension.
    let n = 600;
    let mut x = Vec::with_capacity(n * 2);
    let mut y = Vec::with_capacity(n);
    let mut s: u64 = 7;
    let mut u = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 11) as f64 / (1u64 << 53) as f64) as f32
    };
    for k in 0..n {
        let m = k % 3 == 0;
        let off = if m { 0.6 } else { 0.0 };
        x.push(u() + off);
        x.push(u() - off);
        y.push(m);
    }
    let t: Vec<f32> = (0..400).map(|k| (k as f32 / 200.0) - 0.5).collect();
    let pool = pool();
    let base = pool.install(|| svc::fit(&x, 2, &y)).unwrap();
    let d0 = base.decision(&t);
    for cfg in [
        SvcConfig {
            cache_bytes: 1,
            ..Default::default()
        },
        SvcConfig {
            shrinking: false,
            ..Default::default()
        },
    ] {
        let m = pool.install(|| svc::fit_with(&x, 2, &y, &cfg)).unwrap();
        let d1 = m.decision(&t);
        let worst = d0
            .iter()
            .zip(&d1)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(worst < 5e-3, "{cfg:?}: decision differs by {worst}");
    }
    // Training accuracy well above chance on separable-ish blobs.
    let acc = base
        .predict(&x)
        .iter()
        .zip(&y)
        .filter(|(a, b)| a == b)
        .count() as f64
        / n as f64;
    assert!(acc > 0.8, "training accuracy {acc}");
}

#[test]
fn degenerate_inputs_are_clear_errors() {
    let err = svc::fit(&[], 1, &[]).unwrap_err().to_string();
    assert!(err.contains("no training samples"), "{err}");
    let err = svc::fit(&[0.1, 0.2, 0.3], 1, &[true, true, true])
        .unwrap_err()
        .to_string();
    assert!(err.contains("only one class"), "{err}");
    let err = svc::fit(&[0.1, f32::NAN, 0.3], 1, &[true, false, true])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("non-finite") && err.contains("sample 1"),
        "{err}"
    );
    let err = svc::fit(&[0.1, 0.2, 0.3], 2, &[true, false])
        .unwrap_err()
        .to_string();
    assert!(err.contains("expected n×d"), "{err}");
    let m = svc::fit(&[0.0, 1.0], 1, &[false, true]).unwrap();
    assert!(m.try_decision(&[f32::INFINITY]).is_err());
    assert_eq!(m.predict(&[0.0, 1.0]), vec![false, true]);
}

#[test]
fn bench_mia_runs_on_small_n() {
    // bench_mia runs scikit-learn through the venv's Python.
    python();
    let r = gunlearn::bench::mia::bench_mia(2000, test_threads()).unwrap();
    eprintln!("{r}");
    assert_eq!(r.cases.len(), 2);
    for c in &r.cases {
        assert_eq!((c.n, c.m), (2000, 1000));
        assert!(c.ours_fit_s > 0.0 && c.sklearn_fit_s > 0.0 && c.ratio > 0.0);
        assert!(
            c.agreement >= 0.995,
            "{}: agreement {}",
            c.name,
            c.agreement
        );
    }
}

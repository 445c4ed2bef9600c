//! `gunlearn bench mia`: times our SVC fit+predict against scikit-learn's on the same
//! MIA-like data (1-D confidences and 10-D softmax vectors).

use crate::eval::svc;
use anyhow::{bail, ensure, Context, Result};
use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Timings of one feature set.
#[derive(Debug, Clone, Serialize)]
pub struct BenchMiaCase {
    /// Feature set name (`confidence_1d` or `prob_10d`).
    pub name: String,
    /// Shadow (training) points.
    pub n: usize,
    /// Feature dimension.
    pub d: usize,
    /// Target points predicted.
    pub m: usize,
    /// Our fit time in seconds.
    pub ours_fit_s: f64,
    /// Our predict time in seconds.
    pub ours_predict_s: f64,
    /// scikit-learn fit time in seconds.
    pub sklearn_fit_s: f64,
    /// scikit-learn predict time in seconds.
    pub sklearn_predict_s: f64,
    /// (ours fit+predict) / (sklearn fit+predict); the target is ≤ 1.
    pub ratio: f64,
    /// Fraction of target predictions equal to scikit-learn's.
    pub agreement: f64,
}

/// Result of [`bench_mia`].
#[derive(Debug, Clone, Serialize)]
pub struct BenchMiaResult {
    /// Rayon threads our solver used.
    pub threads: usize,
    /// One entry per feature set.
    pub cases: Vec<BenchMiaCase>,
}

impl fmt::Display for BenchMiaResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "SVC MIA benchmark (ours with {} threads vs scikit-learn SVC(C=3, gamma='auto'))",
            self.threads
        )?;
        writeln!(
            f,
            "{:<14} {:>6} {:>3} {:>10} {:>10} {:>8} {:>9}",
            "features", "n", "d", "ours (s)", "sklearn (s)", "ratio", "agree %"
        )?;
        for c in &self.cases {
            writeln!(
                f,
                "{:<14} {:>6} {:>3} {:>10.3} {:>10.3} {:>8.3} {:>9.2}",
                c.name,
                c.n,
                c.d,
                c.ours_fit_s + c.ours_predict_s,
                c.sklearn_fit_s + c.sklearn_predict_s,
                c.ratio,
                100.0 * c.agreement
            )?;
        }
        Ok(())
    }
}

/// Small deterministic generator (SplitMix64) so the benchmark needs no RNG crate.
struct SplitMix(u64);

impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// Softmax rows over 10 classes with the true class boosted more for members; returns
/// (probabilities n×10, true labels, member flags). Half of the rows are members.
fn mia_like_probs(n: usize, seed: u64) -> (Vec<f32>, Vec<usize>, Vec<bool>) {
    const C: usize = 10;
    let mut rng = SplitMix(seed);
    let mut probs = Vec::with_capacity(n * C);
    let mut labels = Vec::with_capacity(n);
    let mut member = Vec::with_capacity(n);
    for k in 0..n {
        let is_member = k % 2 == 0;
        let y = (rng.next_u64() % C as u64) as usize;
        let mut z: Vec<f64> = (0..C).map(|_| 1.5 * rng.normal()).collect();
        z[y] += if is_member { 5.0 } else { 3.0 } + rng.normal();
        let mx = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = z.iter().map(|v| (v - mx).exp()).sum();
        probs.extend(z.iter().map(|v| ((v - mx).exp() / s) as f32));
        labels.push(y);
        member.push(is_member);
    }
    (probs, labels, member)
}

fn write_f32(path: &Path, v: &[f32]) -> Result<()> {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// `$VIRTUAL_ENV/bin/python`, then `./.venv/bin/python`, then the crate's `.venv`, else `python3`.
pub fn find_python() -> PathBuf {
    let mut cands = Vec::new();
    if let Some(v) = std::env::var_os("VIRTUAL_ENV") {
        cands.push(PathBuf::from(v).join("bin/python"));
    }
    cands.push(PathBuf::from(".venv/bin/python"));
    cands.push(Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    cands
        .into_iter()
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("python3"))
}

fn find_script() -> Result<PathBuf> {
    let rel = Path::new("bench/mia_sklearn.py");
    [
        rel.to_path_buf(),
        Path::new(env!("CARGO_MANIFEST_DIR")).join(rel),
    ]
    .into_iter()
    .find(|p| p.exists())
    .context("bench/mia_sklearn.py not found (run from the repository root)")
}

/// Times our SVC and scikit-learn's on `n` shadow points (1-D and 10-D features) and `n/2`
/// targets; `threads` sizes the rayon pool of our solver.
pub fn bench_mia(n: usize, threads: usize) -> Result<BenchMiaResult> {
    ensure!(n >= 4, "bench mia: need at least 4 shadow points, got {n}");
    ensure!(threads >= 1, "bench mia: threads must be ≥ 1");
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .context("building the rayon pool")?;
    let python = super::python_path(None);
    super::check_python(&python)?;
    let script = std::path::absolute(find_script()?)?;
    let dir = std::env::temp_dir().join(format!("gunlearn-bench-mia-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let m = n / 2;
    let (train_p, train_l, member) = mia_like_probs(n, 1);
    let (target_p, target_l, _) = mia_like_probs(m, 2);
    let confidence = |p: &[f32], l: &[usize]| -> Vec<f32> {
        l.iter().enumerate().map(|(k, &y)| p[k * 10 + y]).collect()
    };
    let sets = [
        (
            "confidence_1d",
            1usize,
            confidence(&train_p, &train_l),
            confidence(&target_p, &target_l),
        ),
        ("prob_10d", 10usize, train_p.clone(), target_p.clone()),
    ];
    let y_u8: Vec<u8> = member.iter().map(|&b| b as u8).collect();
    let mut cases = Vec::new();
    let result = (|| -> Result<()> {
        for (name, d, x, t) in &sets {
            let t0 = Instant::now();
            let model = pool.install(|| svc::fit(x, *d, &member))?;
            let t1 = Instant::now();
            let ours = pool.install(|| model.predict(t));
            let t2 = Instant::now();

            write_f32(&dir.join(format!("{name}_x.f32")), x)?;
            write_f32(&dir.join(format!("{name}_t.f32")), t)?;
            std::fs::write(dir.join(format!("{name}_y.u8")), &y_u8)?;
            let out = Command::new(&python)
                .arg(&script)
                .arg(&dir)
                .arg(name)
                .args([n.to_string(), d.to_string(), m.to_string()])
                .env("OMP_NUM_THREADS", "1")
                .output()
                .with_context(|| format!("running {} {}", python.display(), script.display()))?;
            if !out.status.success() {
                bail!(
                    "{} failed: {}",
                    script.display(),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let stdout = String::from_utf8_lossy(&out.stdout);
            let v: serde_json::Value = serde_json::from_str(stdout.trim())
                .with_context(|| format!("parsing sklearn timing output {stdout:?}"))?;
            let sk_fit = v["fit_s"].as_f64().context("fit_s missing")?;
            let sk_pred = v["predict_s"].as_f64().context("predict_s missing")?;
            let sk_labels = std::fs::read(dir.join(format!("{name}_sk_pred.u8")))?;
            ensure!(
                sk_labels.len() == m,
                "sklearn returned {} predictions",
                sk_labels.len()
            );
            let agree = ours
                .iter()
                .zip(&sk_labels)
                .filter(|(&a, &b)| a == (b != 0))
                .count();
            let ours_fit = (t1 - t0).as_secs_f64();
            let ours_pred = (t2 - t1).as_secs_f64();
            cases.push(BenchMiaCase {
                name: name.to_string(),
                n,
                d: *d,
                m,
                ours_fit_s: ours_fit,
                ours_predict_s: ours_pred,
                sklearn_fit_s: sk_fit,
                sklearn_predict_s: sk_pred,
                ratio: (ours_fit + ours_pred) / (sk_fit + sk_pred),
                agreement: agree as f64 / m.max(1) as f64,
            });
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result?;
    Ok(BenchMiaResult { threads, cases })
}

//! `gunlearn bench`: each side's peak memory is its own, and the PyTorch side is found from
//! the repository root without `VIRTUAL_ENV`, or refused before anything is timed.

mod common;

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `bench/gan_step.py` started by a process that has touched 1.5 GB reports its own peak, not
/// the parent's: `ru_maxrss` would carry the parent's high-water mark across fork and exec.
#[test]
fn the_pytorch_side_reports_its_own_peak_memory() {
    let big: Vec<u8> = vec![1u8; 1536 << 20];
    // Touch every page so the parent's resident peak really is ≥ 1.5 GB.
    let touched: u64 = big.iter().step_by(4096).map(|&b| b as u64).sum();
    assert!(touched > 0);
    let out = Command::new(root().join(".venv/bin/python"))
        .args([
            "gan_step.py",
            "--arch=resnet20",
            "--batch=4",
            "--steps=1",
            "--warmup=0",
            "--threads=1",
            "--device=cpu",
        ])
        .current_dir(root().join("bench"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let reply: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let peak = reply["peak_rss_gb"].as_f64().unwrap();
    assert!(
        peak > 0.05 && peak < 1.2,
        "a ResNet-20 at batch 4 peaks at {peak:.2} GB: the parent's 1.5 GB leaked in"
    );
    drop(big);
}

/// From the repository root, without `VIRTUAL_ENV`, the interpreter `.venv/bin/python` is made
/// absolute before the PyTorch side runs inside `bench/`; a wrong bench folder or Python is
/// refused before our side is timed.
#[test]
fn bench_finds_both_sides_from_the_repository_root_and_refuses_bad_paths_first() {
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_gunlearn"))
            .args([
                "bench",
                "gan",
                "--archs",
                "resnet20",
                "--batches",
                "4",
                "--steps",
                "1",
                "--warmup",
                "0",
                "--threads",
                "1",
            ])
            .args(extra)
            .current_dir(root())
            .env_remove("VIRTUAL_ENV")
            .output()
            .unwrap()
    };
    let out = run(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("| resnet20 b4 |"),
        "both sides timed: {stdout}"
    );
    for (extra, needle) in [
        (&["--bench_dir", "no/such/bench"][..], "no/such/bench"),
        (&["--python", "/no/such/python"][..], "/no/such/python"),
    ] {
        let out = run(extra);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{extra:?} succeeded");
        assert!(stderr.contains(needle), "{extra:?}: {stderr}");
        assert!(
            !stdout.contains("ours"),
            "{extra:?}: our side was timed before the check: {stdout}"
        );
    }
    // `bench all` (make bench) takes every benchmark's defaults and checks the paths first.
    let out = Command::new(env!("CARGO_BIN_EXE_gunlearn"))
        .args(["bench", "all", "--bench_dir", "no/such/bench"])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no/such/bench"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("ours"));
}

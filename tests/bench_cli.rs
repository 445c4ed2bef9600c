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
/// absolute before the PyTorch side runs inside `bench/`; a wrong bench folder or Python, or
/// `--gan_memory auto`, is refused before our side is timed.
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
        // One mode is timed at a time; `auto` would silently be `keep`.
        (
            &["--gan_memory", "auto"][..],
            "--gan_memory keep --no_keep_memory",
        ),
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

/// A stand-in for a checkout of the reference implementation with the interface
/// `bench/reference_loop.py` drives: `utils.py` (`model_dict`, `GanAttacker`,
/// `NormalizeByChannelMeanStd`, `accuracy`) and `unlearn/Gan.py` (`Gan(dataloaders, modelD,
/// modelA, args)`, loading its attacker from `attackers/` under the working directory). Each of
/// its iterations sleeps `SLEEP` seconds, so the time the benchmark reports can be checked. Its
/// `resnet18` returns logits only, as the reference's ResNet-20 does: its loop cannot run it.
const FAKE_UTILS: &str = r#"
import torch, torch.nn as nn

class NormalizeByChannelMeanStd(nn.Module):
    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean)[None, :, None, None])
        self.register_buffer("std", torch.tensor(std)[None, :, None, None])
    def forward(self, x):
        return (x - self.mean) / self.std

class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, num_classes)
    def forward(self, x):
        h = self.conv(self.normalize(x)).relu().mean(dim=(2, 3))
        return self.fc(h), h

class LogitsOnly(Net):
    def forward(self, x):
        return super().forward(x)[0]

model_dict = {"resnet20": Net, "resnet18": LogitsOnly}

class GanAttacker(nn.Module):
    def __init__(self, input_dim=30):
        super().__init__()
        self.fc = nn.Linear(input_dim, 2)
    def forward(self, x):
        return self.fc(x)

def accuracy(output, target):
    return [(output.argmax(1) == target).float().mean() * 100]
"#;

const FAKE_GAN: &str = r#"
import os, time, torch, torch.nn as nn
import utils

SLEEP = 0.25

def Gan(dataloaders, modelD, modelA, args):
    assert not args.train_attacker
    modelA.load_state_dict(torch.load(os.path.join("attackers", f"attacker_pretrained_{args.dataset}checkpoint.pth.tar"))["state_dict"])
    opt_d = torch.optim.SGD(modelD.parameters(), args.unlearn_lr, momentum=args.momentum, weight_decay=args.weight_decay)
    for epoch in range(args.unlearn_epochs):
        for i, (data, labels) in enumerate(dataloaders["retain"]):
            fset, flabels = next(iter(dataloaders["forget"]))
            tprime, tlabels = next(iter(dataloaders["val"]))
            out, _ = modelD(torch.cat([data, fset, tprime]))
            loss = nn.functional.cross_entropy(out, torch.cat([labels, flabels, tlabels]))
            opt_d.zero_grad(); loss.backward(); opt_d.step()
            print(utils.accuracy(out, torch.cat([labels, flabels, tlabels]))[0].item(), "retaining set accuracy")
            time.sleep(SLEEP)
"#;

/// With `GUNLEARN_REFERENCE_LOOP` naming a checkout, `bench gan` times that checkout's own loop
/// too (iterations of a stand-in that sleeps 0.25 s each are reported as ≥ 0.25 s, with the
/// ratio), and says which architectures that loop cannot run; a folder without
/// `unlearn/Gan.py` is refused before anything is timed.
#[test]
fn bench_gan_times_the_reference_loop_of_a_checkout_it_is_given() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("reference-checkout");
    std::fs::create_dir_all(dir.join("unlearn")).unwrap();
    std::fs::write(dir.join("utils.py"), FAKE_UTILS).unwrap();
    std::fs::write(dir.join("unlearn/Gan.py"), FAKE_GAN).unwrap();
    let run = |checkout: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_gunlearn"))
            .args([
                "bench",
                "gan",
                "--archs",
                "resnet20,resnet18",
                "--batches",
                "4",
                "--steps",
                "3",
                "--warmup",
                "1",
                "--threads",
                "1",
            ])
            .current_dir(root())
            .env("GUNLEARN_REFERENCE_LOOP", checkout)
            .output()
            .unwrap()
    };
    let out = run(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.contains("the reference's own loop") && l.contains("s/it"))
        .unwrap_or_else(|| panic!("no line for the reference's loop: {stdout}"));
    let seconds: f64 = line
        .split("loop")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no seconds in {line:?}"));
    // The stand-in sleeps 0.25 s per iteration, so the time measured is at least that; how
    // much more depends on the machine's load, which a test must not assume.
    assert!(
        seconds.is_finite() && seconds >= 0.25,
        "the stand-in sleeps 0.25 s per iteration, reported {seconds} s: {line}"
    );
    assert!(line.contains("ratio ours/reference"), "{line}");
    let row = stdout
        .lines()
        .find(|l| l.starts_with("| resnet20 b4 |"))
        .unwrap_or_else(|| panic!("no table row: {stdout}"));
    assert!(!row.contains("set GUNLEARN_REFERENCE_LOOP"), "{row}");
    assert!(
        stdout.contains("the reference's own loop: resnet18 not timed (its resnet18 returns no"),
        "{stdout}"
    );
    let skipped = stdout
        .lines()
        .find(|l| l.starts_with("| resnet18 b4 |"))
        .unwrap_or_else(|| panic!("no resnet18 row: {stdout}"));
    assert!(skipped.contains("cannot run it"), "{skipped}");
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.contains("the reference's own loop") && l.contains("s/it"))
            .count(),
        1,
        "only resnet20 is timed in the checkout's loop: {stdout}"
    );

    let empty = tmp.path().join("not-a-checkout");
    std::fs::create_dir_all(&empty).unwrap();
    let out = run(&empty);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("GUNLEARN_REFERENCE_LOOP") && stderr.contains("unlearn/Gan.py"),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("ours"));
}

//! Benchmarks that run the same work in gunlearn and in the PyTorch implementation under
//! `bench/` within one command, and print the ratio. Speed targets live here, not in tests.

pub mod all;
pub mod eval;
pub mod gan;
pub mod mia;

use crate::data::batches::Batch;
use crate::device::{device_name, parse_device, set_threads};
use crate::model::{Arch, Classifier, Layout, ModelSpec};
use crate::optim::Sgd;
use crate::train::{sgd_step, Objective};
use anyhow::{bail, Context};
use clap::Args;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// Options every benchmark shares: where both sides run and where the reference side lives.
#[derive(Args, Debug, Clone)]
pub struct BenchEnv {
    /// Threads for both sides (default: all cores).
    #[arg(long, value_parser = crate::device::parse_threads)]
    pub threads: Option<usize>,
    /// Device for both sides.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Python with PyTorch 2.11 (default: $VIRTUAL_ENV/bin/python, then .venv/bin/python).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Folder holding the PyTorch scripts (default: ./bench).
    #[arg(long = "bench_dir", alias = "bench-dir", default_value = "bench")]
    pub bench_dir: PathBuf,
    /// How our side stores activations (as `unlearn --layout`); the PyTorch side runs
    /// N×C×H×W, as the reference code does.
    #[arg(long, value_enum, default_value_t = Layout::Auto)]
    pub layout: Layout,
}

impl BenchEnv {
    /// Pins libtorch to the benchmark's threads and resolves device, Python and the bench
    /// folder to absolute paths, checking both before any timing starts (the PyTorch side runs
    /// inside the bench folder, where a relative path would mean something else).
    pub fn prepare(&self) -> anyhow::Result<BenchSetup> {
        let threads = crate::device::thread_count(self.threads);
        set_threads(Some(threads));
        let device = parse_device(&self.device)?;
        let bench_dir = std::path::absolute(&self.bench_dir)
            .with_context(|| format!("--bench_dir {}", self.bench_dir.display()))?;
        if !bench_dir.join("gan_step.py").is_file() {
            bail!(
                "--bench_dir {}: no gan_step.py there (run from the repository root or pass \
                 --bench_dir PATH/bench)",
                bench_dir.display()
            );
        }
        let python = python_path(self.python.as_deref());
        check_python(&python)?;
        Ok(BenchSetup {
            threads,
            device,
            layout: self.layout.resolve(device),
            python,
            bench_dir,
        })
    }
}

/// Checks that `python` runs and imports torch, with a message that says what to pass.
pub fn check_python(python: &Path) -> anyhow::Result<()> {
    let out = std::process::Command::new(python)
        .args(["-c", "import torch, numpy; print(torch.__version__)"])
        .output()
        .with_context(|| {
            format!(
                "running {} (pass --python PATH to a Python with torch 2.11, or set VIRTUAL_ENV)",
                python.display()
            )
        })?;
    if !out.status.success() {
        bail!(
            "{} cannot import torch and numpy (pass --python PATH to a Python with torch 2.11, or \
             run `make setup`):\n{}",
            python.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// A benchmark's resolved environment; runs the reference side with the same settings.
pub struct BenchSetup {
    /// Threads of both sides.
    pub threads: usize,
    /// Device of both sides.
    pub device: Device,
    /// Our side's activation layout (resolved).
    pub layout: Layout,
    /// Python with PyTorch.
    pub python: PathBuf,
    /// Folder of the reference scripts.
    pub bench_dir: PathBuf,
}

impl BenchSetup {
    /// Runs `bench/<script>` with `extra` flags plus the shared timing, thread and device
    /// flags, and returns the seconds it reports under `key`.
    pub fn reference_seconds(
        &self,
        script: &str,
        extra: &[String],
        warmup: usize,
        steps: usize,
        key: &str,
    ) -> anyhow::Result<f64> {
        let reply = self.reference_run(script, extra, warmup, steps)?;
        reply[key]
            .as_f64()
            .with_context(|| format!("{script}: no {key} in {reply}"))
    }

    /// Runs `bench/<script>` like [`BenchSetup::reference_seconds`] and returns its whole JSON reply.
    pub fn reference_run(
        &self,
        script: &str,
        extra: &[String],
        warmup: usize,
        steps: usize,
    ) -> anyhow::Result<serde_json::Value> {
        let mut args = extra.to_vec();
        args.extend([
            format!("--steps={steps}"),
            format!("--warmup={warmup}"),
            format!("--threads={}", self.threads),
            format!(
                "--device={}",
                device_name(self.device).replace("cuda:0", "cuda")
            ),
        ]);
        run_python(&self.python, &self.bench_dir, script, &args)
    }
}

/// Options of `gunlearn bench train`.
#[derive(Args, Debug, Clone)]
pub struct BenchTrainArgs {
    /// Architectures to time.
    #[arg(long, value_delimiter = ',', default_value = "resnet20,resnet18")]
    pub archs: Vec<String>,
    /// Batch sizes to time.
    #[arg(long, value_delimiter = ',', default_value = "64,256")]
    pub batches: Vec<usize>,
    /// Timed steps per configuration (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Threads, device, Python and bench folder.
    #[command(flatten)]
    pub env: crate::bench::BenchEnv,
}

/// One timed configuration, ours and PyTorch's.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchRow {
    /// What was timed.
    pub name: String,
    /// Our median seconds per step.
    pub ours_s: f64,
    /// PyTorch's median seconds per step.
    pub torch_s: f64,
}

impl BenchRow {
    /// Throughput ratio ours / PyTorch (> 1 = we are faster).
    pub fn speedup(&self) -> f64 {
        self.torch_s / self.ours_s
    }
}

/// The Python interpreter for the reference side: `--python` if given, else the venv's; a
/// relative path is made absolute against the current folder (not resolved through symlinks,
/// so that a virtual environment's interpreter keeps its environment), a bare name is left to
/// `PATH`.
pub fn python_path(explicit: Option<&Path>) -> PathBuf {
    let python = explicit.map_or_else(mia::find_python, Path::to_path_buf);
    if python.components().count() > 1 {
        std::path::absolute(&python).unwrap_or(python)
    } else {
        python
    }
}

/// Runs a script under `bench_dir` and parses the JSON object on its last stdout line.
pub fn run_python(
    python: &Path,
    bench_dir: &Path,
    script: &str,
    args: &[String],
) -> anyhow::Result<serde_json::Value> {
    let script_path = bench_dir.join(script);
    if !script_path.exists() {
        bail!(
            "{}: not found (run from the repository root or pass --bench_dir)",
            script_path.display()
        );
    }
    let out = std::process::Command::new(python)
        .arg(script)
        .args(args)
        .current_dir(bench_dir)
        .output()
        .with_context(|| {
            format!(
                "running {} (pass --python PATH to a Python with torch 2.11)",
                python.display()
            )
        })?;
    if !out.status.success() {
        bail!(
            "{} {script} failed:\n{}",
            python.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).with_context(|| format!("{script} printed {last:?}, expected JSON"))
}

/// Median of timings (seconds).
pub fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(|a, b| a.total_cmp(b));
    times[times.len() / 2]
}

/// Times `step` `warmup + steps` times and returns the median of the timed ones.
pub fn time_steps(
    warmup: usize,
    steps: usize,
    device: Device,
    mut step: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<f64> {
    let mut times = Vec::with_capacity(steps);
    for i in 0..warmup + steps.max(1) {
        if let Device::Cuda(n) = device {
            tch::Cuda::synchronize(n as i64);
        }
        let start = Instant::now();
        step()?;
        if let Device::Cuda(n) = device {
            tch::Cuda::synchronize(n as i64);
        }
        if i >= warmup {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    Ok(median(times))
}

/// `gunlearn bench train`: our SGD training step vs `bench/train_step.py`.
pub fn bench_train(args: &BenchTrainArgs) -> anyhow::Result<Vec<BenchRow>> {
    let setup = args.env.prepare()?;
    let (threads, device) = (setup.threads, setup.device);
    println!(
        "bench train: device {}, {threads} threads, median of {} steps after {} warm-up; our layout: {:?}",
        device_name(device),
        args.steps,
        args.warmup,
        setup.layout
    );
    let mut rows = Vec::new();
    for arch_name in &args.archs {
        let arch = Arch::parse(arch_name)?;
        for &batch_size in &args.batches {
            tch::manual_seed(0);
            let spec = ModelSpec {
                arch,
                num_classes: 10,
                in_channels: 3,
                mean: vec![0.4914, 0.4822, 0.4465],
                std: vec![0.2470, 0.2435, 0.2616],
            };
            let mut model = Classifier::new(&spec, device);
            model.layout = setup.layout;
            let mut opt = Sgd::new(model.vs.trainable_variables(), 0.01, 0.9, 5e-4);
            let batch = Batch {
                images: Tensor::rand([batch_size as i64, 3, 32, 32], (Kind::Float, device)),
                labels: Tensor::randint(10, [batch_size as i64], (Kind::Int64, device)),
                indices: (0..batch_size).collect(),
            };
            let ours = time_steps(args.warmup, args.steps, device, || {
                sgd_step(&model, &mut opt, None, &batch, Objective::default(), device).map(|_| ())
            })?;
            drop((model, opt, batch));
            let torch_s = setup.reference_seconds(
                "train_step.py",
                &[
                    format!("--arch={arch_name}"),
                    format!("--batch={batch_size}"),
                ],
                args.warmup,
                args.steps,
                "seconds_per_step",
            )?;
            let row = BenchRow {
                name: format!("{arch_name} b{batch_size}"),
                ours_s: ours,
                torch_s,
            };
            println!(
                "{:<16} ours {:8.1} img/s  pytorch {:8.1} img/s  ratio {:.3}",
                row.name,
                batch_size as f64 / row.ours_s,
                batch_size as f64 / row.torch_s,
                row.speedup()
            );
            rows.push(row);
        }
    }
    println!("\n| step | ours (img/s) | PyTorch (img/s) | ratio ours/PyTorch (target ≥ 0.95) |\n|---|---|---|---|");
    for (row, batch) in rows
        .iter()
        .zip(args.archs.iter().flat_map(|_| args.batches.iter()))
    {
        println!(
            "| {} | {:.1} | {:.1} | {:.3} |",
            row.name,
            *batch as f64 / row.ours_s,
            *batch as f64 / row.torch_s,
            row.speedup()
        );
    }
    Ok(rows)
}

//! `gunlearn bench gan`: one adversarial-unlearning iteration (SPEC §5: attacker inputs from
//! four forward passes, attacker Adam step, defender SGD step) timed in gunlearn and in
//! `bench/gan_step.py` (PyTorch) within the same command.

use crate::bench::{time_steps, BenchRow};
use crate::data::batches::Batch;
use crate::device::device_name;
use crate::model::attacker::Attacker;
use crate::model::{Arch, Classifier, ModelSpec};
use crate::optim::{Adam, Sgd};
use crate::unlearn::gan::{
    adversarial_step, sensitivity_noise, GanMemory, StepInputs, StepSettings, ATTACKER_DROPOUT,
    ATTACKER_LR,
};
use anyhow::{bail, Context};
use clap::Args;
use tch::{Device, Kind, Tensor};

/// Options of `gunlearn bench gan`.
#[derive(Args, Debug, Clone)]
pub struct BenchGanArgs {
    /// Architectures to time.
    #[arg(long, value_delimiter = ',', default_value = "resnet20,resnet18")]
    pub archs: Vec<String>,
    /// Batch sizes B (each iteration runs D on 23·B images: retain, forget, val and 10 noisy
    /// copies of forget and val).
    #[arg(long, value_delimiter = ',', default_value = "64,256")]
    pub batches: Vec<usize>,
    /// Timed iterations per configuration (the median is reported).
    #[arg(long, default_value_t = 2)]
    pub steps: usize,
    /// Untimed warm-up iterations.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Also run ResNet-18 above batch 64 on the CPU (the PyTorch side needs ≈ 30 GB and
    /// minutes per iteration at batch 256).
    #[arg(long)]
    pub large: bool,
    /// Keep glibc from returning freed memory to the OS in our process (see
    /// [`crate::device::keep_freed_memory`]); `--no_keep_memory` times libtorch with glibc's defaults.
    #[arg(long = "no_keep_memory", alias = "no-keep-memory")]
    pub no_keep_memory: bool,
    /// Our side's handling of the attacker-input graphs: keep (as the reference) or recompute
    /// (less memory; see `gunlearn unlearn --gan_memory`).
    #[arg(
        long = "gan_memory",
        alias = "gan-memory",
        value_enum,
        default_value = "keep"
    )]
    pub gan_memory: GanMemory,
    /// β of the timed iterations (both sides): 1 as in the game, 0 as after `--stop-iter` in
    /// class-wise forgetting.
    #[arg(long, default_value_t = 1.0)]
    pub beta: f64,
    /// Time our side only (e.g. where the PyTorch side does not fit in memory).
    #[arg(long = "no_reference", alias = "no-reference")]
    pub no_reference: bool,
    /// Threads, device, Python and bench folder.
    #[command(flatten)]
    pub env: crate::bench::BenchEnv,
}

/// Minor page faults of this process so far (Linux), for the faults-per-iteration column.
fn minor_faults() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; minflt is field 10 overall.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(7)?.parse().ok()
}

/// Minor faults per iteration in millions, or `?`.
fn fmt_faults(faults: Option<u64>) -> String {
    faults.map_or("?".to_string(), |f| format!("{:.2}M", f as f64 / 1e6))
}

/// Memory in GB, or `?`.
fn fmt_gb(gb: Option<f64>) -> String {
    gb.map_or("?".to_string(), |g| format!("{g:.1} GB"))
}

fn random_batch(size: usize, device: Device) -> Batch {
    Batch {
        images: Tensor::rand([size as i64, 3, 32, 32], (Kind::Float, device)),
        labels: Tensor::randint(10, [size as i64], (Kind::Int64, device)),
        indices: (0..size).collect(),
    }
}

fn share(b: &Batch) -> Batch {
    Batch {
        images: b.images.shallow_clone(),
        labels: b.labels.shallow_clone(),
        indices: b.indices.clone(),
    }
}

/// Our seconds per iteration (median) and minor page faults per iteration (median).
pub fn time_ours(
    arch: Arch,
    batch_size: usize,
    warmup: usize,
    steps: usize,
    device: Device,
    settings: StepSettings,
) -> anyhow::Result<(f64, Option<u64>)> {
    tch::manual_seed(0);
    let model = Classifier::new(&ModelSpec::cifar10(arch), device);
    let attacker = Attacker::new(10, ATTACKER_DROPOUT, device);
    let mut opt_d = Sgd::new(model.vs.trainable_variables(), 0.01, 0.9, 5e-4);
    let mut opt_a = Adam::new(attacker.vs.trainable_variables(), ATTACKER_LR);
    let (retain, forget, val) = (
        random_batch(batch_size, device),
        random_batch(batch_size, device),
        random_batch(batch_size, device),
    );
    let mut iteration = 0;
    let mut faults = Vec::new();
    // As in `gunlearn unlearn --unlearn Gan`: no TF32 (bench/gan_step.py does the same).
    let _fp32 = crate::device::StrictFp32::new();
    let seconds = time_steps(warmup, steps, device, || {
        iteration += 1;
        let before = minor_faults();
        // Fresh noise inside the timed region, as the reference draws it in its loop.
        let inputs = StepInputs {
            noise_forget: sensitivity_noise(&forget.images),
            noise_val: sensitivity_noise(&val.images),
            retain: share(&retain),
            forget: share(&forget),
            val: share(&val),
        };
        adversarial_step(
            &model, &attacker, &mut opt_d, &mut opt_a, None, &inputs, settings, iteration,
        )?;
        if iteration > warmup {
            if let (Some(a), Some(b)) = (before, minor_faults()) {
                faults.push(b - a);
            }
        }
        Ok(())
    })?;
    faults.sort_unstable();
    Ok((seconds, faults.get(faults.len() / 2).copied()))
}

/// One timed adversarial iteration, both sides, with each side's peak resident memory (CPU).
#[derive(Debug, Clone)]
pub struct GanRow {
    /// Seconds per iteration, ours and PyTorch's.
    pub times: BenchRow,
    /// Our peak resident memory (GiB) during our iterations.
    pub ours_peak_gb: Option<f64>,
    /// The PyTorch process's own peak (GiB).
    pub torch_peak_gb: Option<f64>,
}

/// `gunlearn bench gan`: our adversarial iteration vs `bench/gan_step.py`.
pub fn bench_gan(args: &BenchGanArgs) -> anyhow::Result<Vec<GanRow>> {
    let setup = args.env.prepare()?;
    let (threads, device) = (setup.threads, setup.device);
    let kept = crate::device::keep_freed_memory(!args.no_keep_memory);
    println!(
        "bench gan: device {}, {threads} threads, median of {} iterations after {} warm-up; glibc keeps freed memory: {kept}; our attacker-input graphs: {:?}; β = {}",
        device_name(device),
        args.steps,
        args.warmup,
        args.gan_memory,
        args.beta,
    );
    let mut rows = Vec::new();
    for arch_name in &args.archs {
        let arch = Arch::parse(arch_name)?;
        for &batch_size in &args.batches {
            if batch_size < 2 {
                bail!("--batches: {batch_size} is too small (the Barlow-Twins term needs at least 2 samples)");
            }
            if device == Device::Cpu && arch == Arch::Resnet18 && batch_size > 64 && !args.large {
                println!("{arch_name} b{batch_size}: skipped on the CPU (pass --large; PyTorch needs ≈ 30 GB at b256)");
                continue;
            }
            let peak_resets = crate::device::reset_peak_memory();
            let (ours, ours_faults) = time_ours(
                arch,
                batch_size,
                args.warmup,
                args.steps,
                device,
                StepSettings {
                    beta: args.beta,
                    memory: args.gan_memory,
                    ..StepSettings::default()
                },
            )?;
            // Host memory only: on a GPU the activations live in device memory.
            let ours_peak = crate::device::resident_memory()
                .map(|(_, peak)| peak / f64::from(1u32 << 30))
                .filter(|_| peak_resets && device == Device::Cpu);
            if args.no_reference {
                println!(
                    "{arch_name} b{batch_size:<6} ours {ours:8.3} s/it  minor faults/it {}  peak RSS {}",
                    fmt_faults(ours_faults),
                    fmt_gb(ours_peak),
                );
                continue;
            }
            let reference = setup.reference_run(
                "gan_step.py",
                &[
                    format!("--arch={arch_name}"),
                    format!("--batch={batch_size}"),
                    format!("--beta={}", args.beta),
                ],
                args.warmup,
                args.steps,
            )?;
            // Host memory only, as ours.
            let torch_peak = reference["peak_rss_gb"]
                .as_f64()
                .filter(|_| device == Device::Cpu);
            let torch_s = reference["seconds_per_step"]
                .as_f64()
                .context("gan_step.py: no seconds_per_step")?;
            let row = BenchRow {
                name: format!("{arch_name} b{batch_size}"),
                ours_s: ours,
                torch_s,
            };
            println!(
                "{:<16} ours {:8.3} s/it  pytorch {:8.3} s/it  ratio ours/pytorch {:.3}  minor faults/it ours {} pytorch {}  peak RSS ours {} pytorch {}",
                row.name,
                row.ours_s,
                row.torch_s,
                row.ours_s / row.torch_s,
                fmt_faults(ours_faults),
                fmt_faults(reference["minor_faults_per_step"].as_u64()),
                fmt_gb(ours_peak),
                fmt_gb(torch_peak),
            );
            rows.push(GanRow {
                times: row,
                ours_peak_gb: ours_peak,
                torch_peak_gb: torch_peak,
            });
        }
    }
    if rows.is_empty() {
        return Ok(rows);
    }
    println!("\n| iteration | ours (s) | PyTorch (s) | ratio ours/PyTorch (target ≤ 0.8) |\n|---|---|---|---|");
    for GanRow { times: row, .. } in &rows {
        println!(
            "| {} | {:.3} | {:.3} | {:.3} |",
            row.name,
            row.ours_s,
            row.torch_s,
            row.ours_s / row.torch_s
        );
    }
    Ok(rows)
}

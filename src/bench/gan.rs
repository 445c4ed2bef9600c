//! `gunlearn bench gan`: one adversarial-unlearning iteration (SPEC §5: attacker inputs from
//! four forward passes, attacker Adam step, defender SGD step) timed in gunlearn and in
//! `bench/gan_step.py` (PyTorch) within the same command, and, when `GUNLEARN_REFERENCE_LOOP`
//! names a checkout of the reference implementation, in that checkout's own loop
//! (`bench/reference_loop.py`).

use crate::bench::time_steps;
use crate::data::batches::Batch;
use crate::device::{device_name, HeapStats, MemorySample, MemorySampler};
use crate::model::attacker::Attacker;
use crate::model::{Arch, Classifier, Layout, ModelSpec};
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
    /// (less memory; see `gunlearn unlearn --gan_memory`). One mode is timed at a time, so
    /// `auto` is refused: what `unlearn`'s auto runs when the graphs fit is `keep` with
    /// `--no_keep_memory`.
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
    /// Also write every configuration's timings, peaks and memory breakdowns to this JSON file.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
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

/// Memory in GiB, or `?`.
fn fmt_gb(gb: Option<f64>) -> String {
    gb.map_or("?".to_string(), |g| format!("{g:.1} GB"))
}

/// What the sampled peak consists of, in GB: heap in use, freed memory glibc kept, the rest.
fn fmt_breakdown(sample: Option<&MemorySample>) -> String {
    sample.map_or(String::new(), |m| {
        let gb = |b: f64| b / f64::from(1u32 << 30);
        format!(
            " (at the sampled peak {:.1} GB: heap in use {:.1}, freed kept by glibc {:.1}, rest {:.1}; highest heap in use {:.1})",
            gb(m.resident),
            gb(m.heap.in_use),
            gb(m.heap.free_kept),
            gb(m.resident - m.heap.in_use - m.heap.free_kept),
            gb(m.max_in_use)
        )
    })
}

/// The environment variable naming a checkout of the reference implementation to time too.
pub const REFERENCE_LOOP_ENV: &str = "GUNLEARN_REFERENCE_LOOP";

/// A checkout of the reference implementation and the architectures its loop can run.
struct ReferenceCheckout {
    /// Absolute path of the checkout.
    dir: String,
    /// Architectures (gunlearn's names) whose reference model returns what its loop needs.
    runnable: Vec<String>,
}

/// The checkout named by [`REFERENCE_LOOP_ENV`], made absolute and checked by importing it with
/// the benchmark's Python (before anything is timed), with the architectures of `archs` its
/// loop can run (the others are named with the reason); `None` when the variable is not set.
fn reference_checkout(
    setup: &crate::bench::BenchSetup,
    archs: &[String],
) -> anyhow::Result<Option<ReferenceCheckout>> {
    let Some(dir) = std::env::var_os(REFERENCE_LOOP_ENV) else {
        return Ok(None);
    };
    let dir = std::path::absolute(&dir)
        .with_context(|| format!("{REFERENCE_LOOP_ENV}={}", dir.to_string_lossy()))?;
    if !dir.join("unlearn/Gan.py").is_file() {
        bail!(
            "{REFERENCE_LOOP_ENV}={}: no unlearn/Gan.py there (point it at a checkout of the \
             reference implementation, or unset it)",
            dir.display()
        );
    }
    let dir = dir.to_string_lossy().into_owned();
    let reply = crate::bench::run_python(
        &setup.python,
        &setup.bench_dir,
        "reference_loop.py",
        &[
            format!("--checkout={dir}"),
            "--check".to_string(),
            format!("--arch={}", archs.join(",")),
        ],
    )
    .with_context(|| {
        format!(
            "{REFERENCE_LOOP_ENV}={dir}: the checkout does not import with {} (it needs the \
             packages of its own environment, e.g. torchvision)",
            setup.python.display()
        )
    })?;
    if let Some(skipped) = reply["skipped"].as_object() {
        for (arch, reason) in skipped {
            println!(
                "the reference's own loop: {arch} not timed ({})",
                reason.as_str().unwrap_or("?")
            );
        }
    }
    let runnable = reply["runnable"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Ok(Some(ReferenceCheckout { dir, runnable }))
}

/// A timed side's sampled peak, from its script's JSON line.
fn sampled_peak(line: &serde_json::Value) -> Option<MemorySample> {
    let m = &line["sampled_peak"];
    Some(MemorySample {
        resident: m["resident"].as_f64()?,
        heap: HeapStats {
            in_use: m["heap_in_use"].as_f64()?,
            free_kept: m["heap_free_kept"].as_f64()?,
        },
        max_in_use: m["heap_in_use_max"].as_f64()?,
    })
}

/// A batch of `size` uniform random images of `shape` (C, H, W) with labels in 0..10.
pub fn random_batch(size: usize, shape: [i64; 3], device: Device) -> Batch {
    let [c, h, w] = shape;
    Batch {
        images: Tensor::rand([size as i64, c, h, w], (Kind::Float, device)),
        labels: Tensor::randint(10, [size as i64], (Kind::Int64, device)),
        indices: (0..size).collect(),
    }
}

/// The same batch, sharing its tensors (an adversarial step takes its inputs by value).
pub fn share(b: &Batch) -> Batch {
    Batch {
        images: b.images.shallow_clone(),
        labels: b.labels.shallow_clone(),
        indices: b.indices.clone(),
    }
}

/// The benchmark's image shape: CIFAR's.
const CIFAR_IMAGE: [i64; 3] = [3, 32, 32];

/// Our seconds per iteration (median), minor page faults per iteration (median), and what
/// `--gan_memory auto` would estimate as `keep`'s peak for this model and batch (bytes; CPU).
pub fn time_ours(
    arch: Arch,
    batch_size: usize,
    warmup: usize,
    steps: usize,
    device: Device,
    layout: Layout,
    settings: StepSettings,
) -> anyhow::Result<(f64, Option<u64>, Option<f64>)> {
    tch::manual_seed(0);
    let mut model = Classifier::new(&ModelSpec::cifar10(arch), device);
    model.layout = layout;
    let keep_estimate = (device == Device::Cpu)
        .then(|| {
            let probe = Tensor::rand([4, 3, 32, 32], (Kind::Float, device));
            crate::unlearn::gan::estimate_keep_peak(&model, &probe, 23 * batch_size)
        })
        .flatten();
    let attacker = Attacker::new(10, ATTACKER_DROPOUT, device);
    let mut opt_d = Sgd::new(model.vs.trainable_variables(), 0.01, 0.9, 5e-4);
    let mut opt_a = Adam::new(attacker.vs.trainable_variables(), ATTACKER_LR);
    let (retain, forget, val) = (
        random_batch(batch_size, CIFAR_IMAGE, device),
        random_batch(batch_size, CIFAR_IMAGE, device),
        random_batch(batch_size, CIFAR_IMAGE, device),
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
    Ok((
        seconds,
        faults.get(faults.len() / 2).copied(),
        keep_estimate,
    ))
}

/// One side's timing of one configuration.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SideTiming {
    /// Seconds per iteration (median).
    pub seconds: f64,
    /// Minor page faults per iteration (median).
    pub minor_faults: Option<u64>,
    /// The side's own peak resident memory (GiB; CPU only: on a GPU the activations live in
    /// device memory).
    pub peak_gb: Option<f64>,
    /// What that peak consists of (sampled; CPU only).
    pub breakdown: Option<MemorySample>,
}

impl SideTiming {
    /// Seconds, faults and peak memory, as printed in one line of the benchmark.
    fn describe(&self) -> String {
        format!(
            "{:8.3} s/it  minor faults/it {}  peak RSS {}{}",
            self.seconds,
            fmt_faults(self.minor_faults),
            fmt_gb(self.peak_gb),
            fmt_breakdown(self.breakdown.as_ref())
        )
    }
}

/// One configuration (architecture, batch size) of `bench gan`: our side, and the other sides
/// that ran.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GanRow {
    /// `<arch> b<batch>`.
    pub name: String,
    /// `--gan_memory auto`'s estimate of `keep`'s peak here (GiB; CPU), to set beside the
    /// measured peaks.
    pub keep_estimate_gb: Option<f64>,
    /// gunlearn.
    pub ours: SideTiming,
    /// Our PyTorch port (`bench/gan_step.py`), unless `--no_reference`.
    pub pytorch: Option<SideTiming>,
    /// The reference implementation's own loop, where [`REFERENCE_LOOP_ENV`] names a checkout.
    pub reference_loop: Option<SideTiming>,
}

/// A Python side's timing from its script's JSON line; memory only on the CPU.
fn python_side(
    reply: &serde_json::Value,
    script: &str,
    device: Device,
) -> anyhow::Result<SideTiming> {
    let cpu = device == Device::Cpu;
    Ok(SideTiming {
        seconds: reply["seconds_per_step"]
            .as_f64()
            .with_context(|| format!("{script}: no seconds_per_step"))?,
        minor_faults: reply["minor_faults_per_step"].as_u64(),
        peak_gb: reply["peak_rss_gb"].as_f64().filter(|_| cpu),
        breakdown: sampled_peak(reply).filter(|_| cpu),
    })
}

/// `gunlearn bench gan`: our adversarial iteration vs `bench/gan_step.py` (and the reference's
/// own loop where a checkout is given).
pub fn bench_gan(args: &BenchGanArgs) -> anyhow::Result<Vec<GanRow>> {
    if args.gan_memory == GanMemory::Auto {
        bail!(
            "--gan_memory auto: bench gan times one mode at a time; pass keep or recompute \
             (unlearn's auto runs keep with glibc returning freed memory when the graphs fit: \
             --gan_memory keep --no_keep_memory)"
        );
    }
    let setup = args.env.prepare()?;
    let checkout = if args.no_reference {
        None
    } else {
        reference_checkout(&setup, &args.archs)?
    };
    let (threads, device) = (setup.threads, setup.device);
    // What glibc was told and accepted: freed memory is kept only when both hold.
    let kept = crate::device::keep_freed_memory(!args.no_keep_memory) && !args.no_keep_memory;
    println!(
        "bench gan: device {}, {threads} threads, median of {} iterations after {} warm-up; glibc keeps freed memory: {kept}; our attacker-input graphs: {:?}; our layout: {:?}; β = {}",
        device_name(device),
        args.steps,
        args.warmup,
        args.gan_memory,
        setup.layout,
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
            let name = format!("{arch_name} b{batch_size}");
            let peak_resets = crate::device::reset_peak_memory();
            let sampler = MemorySampler::start(std::time::Duration::from_millis(5));
            let timed = time_ours(
                arch,
                batch_size,
                args.warmup,
                args.steps,
                device,
                setup.layout,
                StepSettings {
                    beta: args.beta,
                    memory: args.gan_memory,
                    ..StepSettings::default()
                },
            );
            let breakdown = sampler.stop().filter(|_| device == Device::Cpu);
            let (seconds, minor_faults, keep_estimate) = timed?;
            let keep_estimate_gb = keep_estimate.map(|b| b / f64::from(1u32 << 30));
            let ours = SideTiming {
                seconds,
                minor_faults,
                peak_gb: crate::device::resident_memory()
                    .map(|(_, peak)| peak / f64::from(1u32 << 30))
                    .filter(|_| peak_resets && device == Device::Cpu),
                breakdown,
            };
            println!(
                "{name:<16} ours {}  (auto's estimate of keep's peak: {})",
                ours.describe(),
                fmt_gb(keep_estimate_gb)
            );
            let side = |script: &str, extra: Vec<String>| -> anyhow::Result<SideTiming> {
                let reply = setup.reference_run(script, &extra, args.warmup, args.steps)?;
                python_side(&reply, script, device)
            };
            let shape = vec![
                format!("--arch={arch_name}"),
                format!("--batch={batch_size}"),
                format!("--beta={}", args.beta),
            ];
            let pytorch = if args.no_reference {
                None
            } else {
                let t = side("gan_step.py", shape.clone())?;
                println!(
                    "{:<16} pytorch {}  ratio ours/pytorch {:.3}",
                    "",
                    t.describe(),
                    ours.seconds / t.seconds
                );
                Some(t)
            };
            let reference_loop = match &checkout {
                Some(c) if c.runnable.contains(arch_name) => {
                    let mut extra = vec![format!("--checkout={}", c.dir)];
                    extra.extend(shape);
                    let t = side("reference_loop.py", extra)?;
                    println!(
                        "{:<16} the reference's own loop {}  ratio ours/reference {:.3}",
                        "",
                        t.describe(),
                        ours.seconds / t.seconds
                    );
                    Some(t)
                }
                _ => None,
            };
            rows.push(GanRow {
                name,
                keep_estimate_gb,
                ours,
                pytorch,
                reference_loop,
            });
        }
    }
    if let Some(path) = &args.json {
        crate::fsutil::write_json_atomic(path, &rows)
            .with_context(|| format!("--json {}", path.display()))?;
    }
    if rows.iter().all(|r| r.pytorch.is_none()) {
        return Ok(rows);
    }
    println!("\n| iteration | ours (s) | PyTorch (s) | ratio ours/PyTorch (target ≤ 0.8) | the reference's own loop (s) | ratio ours/reference |\n|---|---|---|---|---|---|");
    for row in &rows {
        let Some(pytorch) = &row.pytorch else {
            continue;
        };
        let missing = if checkout.is_some() {
            "– (cannot run it)".to_string()
        } else {
            format!("– (set {REFERENCE_LOOP_ENV})")
        };
        let (loop_s, loop_ratio) =
            row.reference_loop
                .as_ref()
                .map_or((missing, "–".to_string()), |l| {
                    (
                        format!("{:.3}", l.seconds),
                        format!("{:.3}", row.ours.seconds / l.seconds),
                    )
                });
        println!(
            "| {} | {:.3} | {:.3} | {:.3} | {loop_s} | {loop_ratio} |",
            row.name,
            row.ours.seconds,
            pytorch.seconds,
            row.ours.seconds / pytorch.seconds
        );
    }
    Ok(rows)
}

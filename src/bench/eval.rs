//! `gunlearn bench eval`: evaluation throughput — eval-mode softmax outputs of a ResNet on N
//! CIFAR-shaped images (from `u8` host memory, as a data set is read), top-1 accuracy and every
//! membership-inference feature (SPEC §6), timed in gunlearn and in `bench/eval_throughput.py`
//! (PyTorch) within the same command. The SVC fits are timed by `gunlearn bench mia`.

use crate::bench::{time_steps, BenchRow};
use crate::data::rng::SmallRng;
use crate::data::ImageSet;
use crate::device::device_name;
use crate::eval::mia::{features, FeatureKind};
use crate::eval::outputs::{predict, top1_accuracy};
use crate::model::{Arch, Classifier, ModelSpec};
use anyhow::bail;
use clap::Args;

/// Options of `gunlearn bench eval`.
#[derive(Args, Debug, Clone)]
pub struct BenchEvalArgs {
    /// Architecture (resnet18 or resnet20).
    #[arg(long, default_value = "resnet18")]
    pub arch: String,
    /// Images (CIFAR-10 train + test = 60 000).
    #[arg(long, default_value_t = 60_000)]
    pub n: usize,
    /// Batch size of the prediction passes.
    #[arg(long = "batch_size", alias = "batch-size", default_value_t = 512)]
    pub batch_size: usize,
    /// Timed repetitions (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub steps: usize,
    /// Untimed warm-up repetitions.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Threads, device, Python and bench folder.
    #[command(flatten)]
    pub env: crate::bench::BenchEnv,
}

/// `n` random CIFAR-shaped images with random labels in 0..10.
pub fn random_cifar(n: usize, seed: u64) -> ImageSet {
    let mut rng = SmallRng::new(seed);
    ImageSet {
        images: (0..n * 3 * 32 * 32).map(|_| rng.below(256) as u8).collect(),
        labels: (0..n).map(|_| rng.below(10) as i64).collect(),
        channels: 3,
        height: 32,
        width: 32,
    }
}

/// Runs the benchmark and returns its row (seconds per full evaluation pass).
pub fn bench_eval(args: &BenchEvalArgs) -> anyhow::Result<BenchRow> {
    let setup = args.env.prepare()?;
    let (threads, device) = (setup.threads, setup.device);
    let arch = Arch::parse(&args.arch)?;
    if args.n == 0 || args.batch_size == 0 {
        bail!("--n and --batch_size must be positive");
    }
    println!(
        "bench eval: {} on {} CIFAR-shaped images, batch {}, device {}, {threads} threads, median of {} after {} warm-up",
        args.arch,
        args.n,
        args.batch_size,
        device_name(device),
        args.steps,
        args.warmup
    );
    tch::manual_seed(0);
    let mut model = Classifier::new(&ModelSpec::cifar10(arch), device);
    model.layout = setup.layout;
    let set = random_cifar(args.n, 1);
    let indices: Vec<usize> = (0..args.n).collect();
    let mut accuracy = 0.0;
    let ours = time_steps(args.warmup, args.steps, device, || {
        let out = predict(&model, &set, &indices, args.batch_size, device);
        accuracy = top1_accuracy(&out);
        for kind in FeatureKind::ALL {
            std::hint::black_box(features(kind, &out.probs, &out.labels, out.num_classes));
        }
        Ok(())
    })?;
    drop(model);
    let torch_s = setup.reference_seconds(
        "eval_throughput.py",
        &[
            format!("--arch={}", args.arch),
            format!("--n={}", args.n),
            format!("--batch={}", args.batch_size),
        ],
        args.warmup,
        args.steps,
        "seconds",
    )?;
    let row = BenchRow {
        name: format!("eval {} n{}", args.arch, args.n),
        ours_s: ours,
        torch_s,
    };
    println!(
        "{:<20} ours {:9.0} img/s  pytorch {:9.0} img/s  ratio {:.3}  (accuracy ours {:.2}%)",
        row.name,
        args.n as f64 / row.ours_s,
        args.n as f64 / row.torch_s,
        row.speedup(),
        accuracy
    );
    println!(
        "\n| evaluation | ours (img/s) | PyTorch (img/s) | ratio ours/PyTorch |\n|---|---|---|---|\n| {} | {:.0} | {:.0} | {:.3} |",
        row.name,
        args.n as f64 / row.ours_s,
        args.n as f64 / row.torch_s,
        row.speedup()
    );
    Ok(row)
}

//! `gunlearn bench all` (`make bench`): every benchmark with its defaults in one command, then
//! one table of every ratio against the other side measured in the same command.

use crate::bench::gan::{bench_gan, BenchGanArgs};
use crate::bench::{bench_train, eval::bench_eval, eval::BenchEvalArgs, BenchEnv, BenchRow};
use crate::bench::{mia::bench_mia, BenchTrainArgs};
use clap::{Args, FromArgMatches};

/// Options of `gunlearn bench all`.
#[derive(Args, Debug, Clone)]
pub struct BenchAllArgs {
    /// Threads, device, Python and bench folder (for every benchmark).
    #[command(flatten)]
    pub env: BenchEnv,
}

/// A benchmark's arguments with the defaults its own subcommand has (written once, there).
fn defaults<T: Args + FromArgMatches>() -> anyhow::Result<T> {
    let cmd = T::augment_args(clap::Command::new("bench"));
    Ok(T::from_arg_matches(&cmd.try_get_matches_from(["bench"])?)?)
}

/// Runs train, eval, gan and mia, then prints the one table.
pub fn bench_all(args: &BenchAllArgs) -> anyhow::Result<()> {
    let mut train: BenchTrainArgs = defaults()?;
    train.env = args.env.clone();
    let mut eval: BenchEvalArgs = defaults()?;
    eval.env = args.env.clone();
    let mut gan: BenchGanArgs = defaults()?;
    gan.env = args.env.clone();
    // Paths and Python checked once, before anything is timed.
    let threads = args.env.prepare()?.threads;
    let train_rows = bench_train(&train)?;
    let eval_row = bench_eval(&eval)?;
    let gan_rows = bench_gan(&gan)?;
    let mia = bench_mia(20_000, threads)?;
    println!("\n{mia}");

    println!(
        "\n| benchmark | ours | other side | time ratio ours / other (< 1: we are faster) | target | peak memory ours / other |"
    );
    println!("|---|---|---|---|---|---|");
    let time_row = |what: &str, r: &BenchRow, unit: &str, target: &str, memory: &str| {
        println!(
            "| {what} {} | {:.4} {unit} | {:.4} {unit} (PyTorch) | {:.3} | {target} | {memory} |",
            r.name,
            r.ours_s,
            r.torch_s,
            r.ours_s / r.torch_s
        );
    };
    for r in &train_rows {
        time_row("train step", r, "s", "≤ 1.0", "");
    }
    time_row("evaluation", &eval_row, "s", "≤ 1.0", "");
    let gb = |v: Option<f64>| v.map_or("?".to_string(), |g| format!("{g:.1} GB"));
    for row in &gan_rows {
        let Some(pytorch) = &row.pytorch else {
            continue;
        };
        let times = BenchRow {
            name: row.name.clone(),
            ours_s: row.ours.seconds,
            torch_s: pytorch.seconds,
        };
        let memory = format!("{} / {}", gb(row.ours.peak_gb), gb(pytorch.peak_gb));
        time_row("adversarial iteration", &times, "s", "≤ 0.8", &memory);
        if let Some(l) = &row.reference_loop {
            println!(
                "| adversarial iteration {} | {:.4} s | {:.4} s (the reference's own loop) | {:.3} | ≤ 0.8 | {} / {} |",
                row.name,
                row.ours.seconds,
                l.seconds,
                row.ours.seconds / l.seconds,
                gb(row.ours.peak_gb),
                gb(l.peak_gb)
            );
        }
    }
    for c in &mia.cases {
        println!(
            "| SVC attack {} n{} | {:.3} s | {:.3} s (scikit-learn) | {:.3} | ≤ 1.0 | |",
            c.name,
            c.n,
            c.ours_fit_s + c.ours_predict_s,
            c.sklearn_fit_s + c.sklearn_predict_s,
            c.ratio
        );
    }
    Ok(())
}

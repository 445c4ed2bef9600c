//! Fuzzes one reader of untrusted bytes (see `gunlearn::fuzz`), on stable Rust:
//!
//! ```text
//! cargo run --release --example fuzz -- --target idx --seconds 600 --seed 1
//! ```
//!
//! Options: `--target NAME` (idx, gzip, cifar-bin, cifar-pickle, mat5, safetensors,
//! torch-pickle, sweep-toml, job-json, audit-json), `--seconds N` or `--iterations N`,
//! `--seed N`, `--seeds DIR` (default `tests/fuzz-seeds`), `--crashes DIR` (default
//! `fuzz-crashes`), `--work DIR` (scratch folder, default a temporary one), `--replay FILE`
//! (run one saved input through the target's reader and print the outcome).
//!
//! The process supervises a child copy of itself: when the child aborts (a crash no
//! `catch_unwind` sees, e.g. a refused 2 GiB allocation or a stack overflow), the input it was
//! running is kept in the crash folder and a new child carries on with the next seed. The last
//! line is `SUMMARY target=… execs=… crashes=… aborts=… seconds=…`.

use anyhow::{bail, Context, Result};
use gunlearn::fuzz::{self, CountingAlloc, Options, Target};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// The parsed command line.
struct Args {
    target: Target,
    seconds: Option<f64>,
    iterations: Option<u64>,
    seed: u64,
    seeds: PathBuf,
    crashes: PathBuf,
    work: Option<PathBuf>,
    replay: Option<PathBuf>,
    child: bool,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        target: Target::Idx,
        seconds: None,
        iterations: None,
        seed: 1,
        seeds: PathBuf::from("tests/fuzz-seeds"),
        crashes: PathBuf::from("fuzz-crashes"),
        work: None,
        replay: None,
        child: false,
    };
    let mut target = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--target" => target = Some(Target::from_name(&value()?)?),
            "--seconds" => args.seconds = Some(value()?.parse().context("--seconds")?),
            "--iterations" => args.iterations = Some(value()?.parse().context("--iterations")?),
            "--seed" => args.seed = value()?.parse().context("--seed")?,
            "--seeds" => args.seeds = value()?.into(),
            "--crashes" => args.crashes = value()?.into(),
            "--work" => args.work = Some(value()?.into()),
            "--replay" => args.replay = Some(value()?.into()),
            "--child" => args.child = true,
            other => bail!("unknown argument {other:?} (see the top of examples/fuzz.rs)"),
        }
    }
    args.target = target.context("--target NAME is required")?;
    if args.seconds.is_none() && args.iterations.is_none() && args.replay.is_none() {
        bail!("give --seconds N or --iterations N");
    }
    Ok(args)
}

/// The child: fuzz and print progress, crashes and a final `DONE` line.
fn child(args: &Args, work: &std::path::Path) -> Result<()> {
    tch::set_num_threads(1);
    let seeds: Vec<Vec<u8>> = fuzz::seeds(args.target, &args.seeds, work)?
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    let opts = Options {
        seed: args.seed,
        iterations: args.iterations,
        duration: args.seconds.map(Duration::from_secs_f64),
        crash_dir: Some(args.crashes.clone()),
        last_input: Some(work.join("last-input.bin")),
        progress: Some(Duration::from_secs(10)),
    };
    let r = fuzz::fuzz(args.target, &seeds, &work.join("run"), &opts)?;
    println!(
        "DONE target={} execs={} accepted={} refused={} crashes={} corpus={} outcomes={} seconds={:.1}",
        args.target.name(),
        r.executions,
        r.accepted,
        r.refused,
        r.crashes.len(),
        r.corpus,
        r.outcomes,
        r.elapsed.as_secs_f64()
    );
    Ok(())
}

/// A `key=value` field of a progress line.
fn field(line: &str, key: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let tmp;
    let work = match &args.work {
        Some(w) => w.clone(),
        None => {
            tmp = std::env::temp_dir().join(format!(
                "gunlearn-fuzz-{}-{}",
                args.target.name(),
                std::process::id()
            ));
            tmp
        }
    };
    std::fs::create_dir_all(&work)?;
    if let Some(input) = &args.replay {
        let bytes = std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
        let outcome = fuzz::Harness::new(args.target, &work)?.run(&bytes);
        println!("{}: {outcome:?}", input.display());
        let _ = std::fs::remove_dir_all(&work);
        return Ok(());
    }
    if args.child {
        return child(&args, &work);
    }
    let exe = std::env::current_exe()?;
    let start = Instant::now();
    let (mut execs, mut crashes, mut aborts, mut round) = (0u64, 0u64, 0u64, 0u64);
    let mut summary = String::new();
    loop {
        let left = args.seconds.map(|s| s - start.elapsed().as_secs_f64());
        if left.is_some_and(|l| l < 1.0) {
            break;
        }
        let child_work = work.join(format!("child-{round}"));
        let mut cmd = Command::new(&exe);
        cmd.arg("--child")
            .args(["--target", args.target.name()])
            .args(["--seed", &(args.seed + round).to_string()])
            .arg("--seeds")
            .arg(&args.seeds)
            .arg("--crashes")
            .arg(&args.crashes)
            .arg("--work")
            .arg(&child_work)
            .stdout(Stdio::piped());
        if let Some(l) = left {
            cmd.args(["--seconds", &format!("{l:.1}")]);
        }
        if let Some(n) = args.iterations {
            cmd.args(["--iterations", &n.saturating_sub(execs).to_string()]);
        }
        let mut proc = cmd.spawn().context("starting the fuzzing child")?;
        let out = proc.stdout.take().expect("piped");
        let (mut child_execs, mut child_crashes) = (0, 0);
        let mut done = false;
        for line in BufReader::new(out).lines() {
            let line = line?;
            println!("{line}");
            if line.starts_with("STATS") || line.starts_with("DONE") {
                child_execs = field(&line, "execs").unwrap_or(child_execs);
            }
            if line.starts_with("CRASH") {
                child_crashes += 1;
            }
            if line.starts_with("DONE") {
                done = true;
                summary = line.clone();
            }
        }
        let status = proc.wait()?;
        execs += child_execs;
        crashes += child_crashes;
        if done && status.success() {
            break;
        }
        // The child died mid-input: keep the input it was running.
        aborts += 1;
        execs += 1;
        std::fs::create_dir_all(&args.crashes)?;
        let kept = args.crashes.join(format!(
            "{}-abort-{}-seed{}.bin",
            args.target.name(),
            aborts,
            args.seed + round
        ));
        let last = child_work.join("last-input.bin");
        if std::fs::copy(&last, &kept).is_ok() {
            println!(
                "CRASH target={} kind=abort input={} message=the child exited with {status}",
                args.target.name(),
                kept.display()
            );
        } else {
            bail!("the fuzzing child failed before running any input ({status})");
        }
        round += 1;
    }
    println!(
        "SUMMARY target={} execs={execs} crashes={crashes} aborts={aborts} seconds={:.0} last=[{}]",
        args.target.name(),
        start.elapsed().as_secs_f64(),
        summary
    );
    if args.work.is_none() {
        let _ = std::fs::remove_dir_all(&work);
    }
    Ok(())
}

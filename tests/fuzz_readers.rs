//! A short, seeded run of every fuzz target (see `gunlearn::fuzz` and `examples/fuzz.rs`;
//! docs/fuzzing.md has the long campaign): the real seed files of `tests/fuzz-seeds/` read as
//! they should, 300 mutants of them per target give only clear errors or well-formed values
//! (no panic, no memory beyond the target's multiple of the input, no error that fails to
//! name the file), and the inputs kept in `tests/fuzz-regressions/` stay refused.

mod common;

use gunlearn::fuzz::{self, CountingAlloc, Harness, Options, Outcome, Target};
use std::path::Path;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn seeds_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz-seeds"))
}

/// Every seed is a real, readable file: its reader accepts it. Two are refused by design,
/// each saying why: the python-written safetensors state dict, whose tensors have no ResNet-20
/// shapes, and the CIFAR-10 example sweep, whose pruned model (the reference's mask file) is
/// not on this machine.
#[test]
fn every_seed_reads() {
    common::pin_threads();
    let tmp = tempfile::tempdir().unwrap();
    for target in Target::ALL {
        let scratch = tmp.path().join(target.name());
        let seeds = fuzz::seeds(target, seeds_root(), &scratch).unwrap();
        assert!(!seeds.is_empty(), "{}", target.name());
        let h = Harness::new(target, &scratch.join("run")).unwrap();
        for (name, bytes) in &seeds {
            match h.run(bytes) {
                Outcome::Accepted => {}
                Outcome::Refused(e) if name.ends_with("state-dict.safetensors") => {
                    assert!(e.contains("the model expects"), "{name}: {e}");
                }
                Outcome::Refused(e) if name.ends_with("cifar10-classwise.toml") => {
                    assert!(
                        e.contains("1model_SA_best.pth.tar does not exist"),
                        "{name}: {e}"
                    );
                }
                other => panic!("{}: seed {name}: {other:?}", target.name()),
            }
        }
    }
}

/// 300 mutants per target, seed 1: no crash of any kind.
#[test]
fn short_seeded_run_of_every_target() {
    common::pin_threads();
    let tmp = tempfile::tempdir().unwrap();
    let mut lines = Vec::new();
    for target in Target::ALL {
        let scratch = tmp.path().join(target.name());
        let seeds: Vec<Vec<u8>> = fuzz::seeds(target, seeds_root(), &scratch)
            .unwrap()
            .into_iter()
            .map(|(_, b)| b)
            .collect();
        let opts = Options {
            seed: 1,
            iterations: Some(300),
            duration: None,
            crash_dir: None,
            last_input: None,
            progress: None,
        };
        let r = fuzz::fuzz(target, &seeds, &scratch.join("run"), &opts).unwrap();
        assert_eq!(r.executions, 300, "{}", target.name());
        let crashes: Vec<String> = r
            .crashes
            .iter()
            .map(|c| format!("{}: {}", c.kind, c.message))
            .collect();
        assert!(
            crashes.is_empty(),
            "{}: {} crashes: {crashes:#?}",
            target.name(),
            crashes.len()
        );
        // The mutants reach past the first check: more than one kind of refusal per target.
        assert!(
            r.outcomes >= 2,
            "{}: only {} distinct outcomes",
            target.name(),
            r.outcomes
        );
        lines.push(format!(
            "{}: {} accepted, {} refused, {} outcomes",
            target.name(),
            r.accepted,
            r.refused,
            r.outcomes
        ));
    }
    println!("{}", lines.join("\n"));
}

/// The same seed tries the same inputs: a crash found by the campaign can be replayed.
#[test]
fn runs_are_reproducible() {
    let tmp = tempfile::tempdir().unwrap();
    let seeds = fuzz::seeds(Target::Idx, seeds_root(), tmp.path()).unwrap();
    let seeds: Vec<Vec<u8>> = seeds.into_iter().map(|(_, b)| b).collect();
    let mut m1 = fuzz::Mutator::new(Target::Idx, 7);
    let mut m2 = fuzz::Mutator::new(Target::Idx, 7);
    let mut m3 = fuzz::Mutator::new(Target::Idx, 8);
    let a: Vec<Vec<u8>> = (0..50).map(|_| m1.mutate(&seeds[0], &seeds)).collect();
    let b: Vec<Vec<u8>> = (0..50).map(|_| m2.mutate(&seeds[0], &seeds)).collect();
    let c: Vec<Vec<u8>> = (0..50).map(|_| m3.mutate(&seeds[0], &seeds)).collect();
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(
        a.iter().any(|m| m != &seeds[0]),
        "mutants differ from the seed"
    );
}

/// What each kept input's refusal must say (a new file needs its line here).
const REGRESSIONS: [(&str, &str); 9] = [
    // Issue #25: dimensions 5 × 859006559 × 4294901798 wrap past 2^64.
    ("wrapping-dims-idx3-ubyte", "does not fit in 64 bits"),
    ("side-zero-idx3-ubyte", "a side must be 1 to 65536"),
    // 22 rounds of DUP-style memo copies double a list to 4 million values.
    ("memo-doubling", "memo copies"),
    ("nested-tuples", "nested more than 1000 deep"),
    // (2^62 + 1) F32 elements "need" 4 bytes after wrapping.
    (
        "wrapped-storage.pth",
        "declares 4611686018427387905 elements",
    ),
    ("overflowing-view.pth", "too many elements"),
    // Found by the campaign (torch-pickle, 2026-12-07): a mutated byteorder record failed
    // with "Invalid checksum" or "stream did not contain valid UTF-8", naming no file.
    (
        "byteorder-bad-checksum.pth",
        "fuzz-input.pth: reading state-dict/byteorder: Invalid checksum",
    ),
    (
        "byteorder-not-utf8.pth",
        "fuzz-input.pth: reading checkpoint.pth/byteorder",
    ),
    // Shape [0, 2^64 − 1]: no bytes, but libtorch threw with a C++ backtrace.
    (
        "zero-by-2e64-shape.safetensors",
        "beyond what a tensor can hold",
    ),
];

/// Inputs that crashed a reader once (found by the campaign or crafted for issue #25) are
/// refused by the same harness, with an error naming the file and saying what is wrong.
#[test]
fn regression_inputs_are_refused() {
    common::pin_threads();
    let root = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fuzz-regressions"
    ));
    let tmp = tempfile::tempdir().unwrap();
    let mut seen = Vec::new();
    for target in Target::ALL {
        let dir = root.join(target.name());
        if !dir.exists() {
            continue;
        }
        let h = Harness::new(target, &tmp.path().join(target.name())).unwrap();
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_str().unwrap().to_string();
            let want = REGRESSIONS
                .iter()
                .find(|(n, _)| *n == name)
                .unwrap_or_else(|| panic!("{}: add its expected refusal", p.display()))
                .1;
            match h.run(&std::fs::read(&p).unwrap()) {
                Outcome::Refused(e) => assert!(e.contains(want), "{}: {e}", p.display()),
                other => panic!("{}: {other:?}", p.display()),
            }
            seen.push(name);
        }
    }
    seen.sort();
    let mut all: Vec<String> = REGRESSIONS.iter().map(|(n, _)| n.to_string()).collect();
    all.sort();
    assert_eq!(
        seen, all,
        "every listed regression input is in tests/fuzz-regressions"
    );
}

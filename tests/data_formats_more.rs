//! Readers for the CIFAR python versions, SVHN MAT-files and class-per-folder image folders,
//! on small files that Python (pickle, NumPy, SciPy) writes at test time; and every bad-input
//! case as a clear error naming the file.

mod common;

use std::path::Path;

use gunlearn::data::formats::{self, CifarKind};
use gunlearn::data::{load, Augment, DatasetName, ImageSet};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn err_text<T: std::fmt::Debug>(r: anyhow::Result<T>) -> String {
    format!("{:#}", r.unwrap_err())
}

/// The pixels and labels Python wrote for `names`, concatenated.
fn expected(dir: &Path, names: &[&str]) -> (Vec<u8>, Vec<i64>) {
    let (mut px, mut lb) = (Vec::new(), Vec::new());
    for n in names {
        px.extend(std::fs::read(dir.join("expect").join(format!("{n}.pixels"))).unwrap());
        lb.extend(
            std::fs::read(dir.join("expect").join(format!("{n}.labels")))
                .unwrap()
                .into_iter()
                .map(i64::from),
        );
    }
    (px, lb)
}

const CIFAR10_TRAIN: [&str; 5] = [
    "data_batch_1",
    "data_batch_2",
    "data_batch_3",
    "data_batch_4",
    "data_batch_5",
];

fn assert_set(set: &ImageSet, pixels: &[u8], labels: &[i64], what: &str) {
    assert_eq!((set.channels, set.height, set.width), (3, 32, 32), "{what}");
    assert_eq!(set.labels, labels, "{what}: labels");
    assert!(set.images == pixels, "{what}: pixels differ");
}

#[test]
fn cifar10_python_versions_read_what_python_wrote() {
    let tmp = tempfile::tempdir().unwrap();
    for style in ["py2", "py3", "py3p5", "list", "py3p0"] {
        let parent = tmp.path().join(style);
        let py = parent.join("cifar-10-batches-py");
        let bin = tmp.path().join(format!("bin-{style}"));
        common::run_python(
            "cifar_pickle_fixture.py",
            &["good", s(&py), "10", style, "20", "3", s(&bin)],
        );
        let (train_px, train_lb) = expected(&py, &CIFAR10_TRAIN);
        let (test_px, test_lb) = expected(&py, &["test_batch"]);
        // The folder itself and its parent both work, and --dataset cifar10 picks the format.
        for dir in [py.as_path(), parent.as_path()] {
            let ds = load(DatasetName::Cifar10, Some(dir)).unwrap();
            assert_eq!(ds.num_classes, 10);
            assert_eq!((ds.train.len(), ds.test.len()), (100, 20));
            assert_set(&ds.train, &train_px, &train_lb, style);
            assert_set(&ds.test, &test_px, &test_lb, style);
            // The binary version of the same images loads identically.
            let b = load(DatasetName::Cifar10, Some(&bin)).unwrap();
            assert_eq!(b.train, ds.train, "{style}: binary vs python train");
            assert_eq!(b.test, ds.test, "{style}: binary vs python test");
        }
    }
}

#[test]
fn cifar100_python_versions_use_fine_labels() {
    let tmp = tempfile::tempdir().unwrap();
    for style in ["py2", "py3"] {
        let py = tmp.path().join(style).join("cifar-100-python");
        let bin = tmp
            .path()
            .join(format!("bin-{style}"))
            .join("cifar-100-binary");
        common::run_python(
            "cifar_pickle_fixture.py",
            &["good", s(&py), "100", style, "20", "7", s(&bin)],
        );
        let (train_px, train_lb) = expected(&py, &["train"]);
        let (test_px, test_lb) = expected(&py, &["test"]);
        let ds = load(DatasetName::Cifar100, Some(&tmp.path().join(style))).unwrap();
        assert_eq!(ds.num_classes, 100);
        assert_set(&ds.train, &train_px, &train_lb, style);
        assert_set(&ds.test, &test_px, &test_lb, style);
        assert!(train_lb.iter().any(|&l| l >= 10), "fine labels span 0..100");
        // Given the parent of both versions, the binary one wins; it holds the same images.
        std::fs::rename(&py, bin.parent().unwrap().join("cifar-100-python")).unwrap();
        let both = load(DatasetName::Cifar100, bin.parent()).unwrap();
        assert_eq!((both.train, both.test), (ds.train, ds.test));
    }
}

#[test]
fn python2_strings_decode_to_bytes() {
    use gunlearn::pickle::{parse, parse_with, Py2Str, Value};
    // Protocol 0 STRING (Python 2's repr), BINSTRING, SHORT_BINSTRING; then UNICODE.
    let mut p = b"(S'a\\x00\\xff\\n\\'\\\\\\101'\nT\x03\x00\x00\x00\xff\x00q".to_vec();
    p.extend_from_slice(b"U\x02\x80zV\xe9\\u20ac\\U0001f600\nt.");
    let (v, used) = parse_with(&p, Py2Str::Bytes).unwrap();
    assert_eq!(used, p.len());
    let want = Value::Tuple(vec![
        Value::Bytes(b"a\x00\xff\n'\\A".to_vec()),
        Value::Bytes(vec![0xff, 0, b'q']),
        Value::Bytes(vec![0x80, b'z']),
        Value::Str("\u{e9}\u{20ac}\u{1f600}".into()),
    ]);
    assert_eq!(v, want);
    // torch's reading stays text.
    let (v, _) = parse(&p).unwrap();
    let Value::Tuple(items) = v else { panic!() };
    assert!(matches!(&items[1], Value::Str(_)));
    for bad in [&b"S'\\x4'\n."[..], b"Sabc\n.", b"S'\\q'\n.", b"V\\u12\n."] {
        let e = format!("{:#}", parse_with(bad, Py2Str::Bytes).unwrap_err());
        assert!(e.contains("offset 0"), "{e}");
    }
}

#[test]
fn cifar_python_bad_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad");
    common::run_python("cifar_pickle_fixture.py", &["bad", s(&bad)]);
    let read = |name: &str, kind: CifarKind| {
        let p = bad.join(name);
        formats::read_cifar_pickle(&p, &std::fs::read(&p).unwrap(), kind)
    };
    let cases: [(&str, &[&str]); 12] = [
        ("bad_label", &["image 2 has label 10", "0..9"]),
        ("negative_label", &["image 1 has label -1"]),
        ("bad_shape", &["`data`", "shape [4, 3071]", "(N, 3072)"]),
        ("fortran", &["Fortran", "ascontiguousarray"]),
        ("fortran_p5", &["Fortran"]),
        ("int16", &["int16", "must be uint8"]),
        ("count_mismatch", &["3 labels in `labels` but 4 images"]),
        ("no_labels", &["no `labels`", "keys: data, fine_labels"]),
        ("list_root", &["holds a list", "expected the dict"]),
        ("string_labels", &["`labels`: entry 0 is a str"]),
        ("short_row", &["row 0 has 3000 values"]),
        ("empty", &["holds no images"]),
    ];
    for (name, wants) in cases {
        let e = err_text(read(name, CifarKind::Cifar10));
        assert!(e.contains(&format!("bad/{name}")), "{name}: {e}");
        for w in wants {
            assert!(e.contains(w), "{name}: want {w:?} in: {e}");
        }
    }
    // A CIFAR-10 file read as CIFAR-100 lacks the fine labels.
    let e = err_text(read("count_mismatch", CifarKind::Cifar100));
    assert!(
        e.contains("no `fine_labels`") && e.contains("CIFAR-100"),
        "{e}"
    );

    // Truncated, padded, and non-pickle files, in a python-version folder.
    let good = tmp.path().join("cifar-10-batches-py");
    common::run_python(
        "cifar_pickle_fixture.py",
        &["good", s(&good), "10", "py2", "5", "1"],
    );
    let raw = std::fs::read(good.join("data_batch_3")).unwrap();
    std::fs::write(good.join("data_batch_3"), &raw[..raw.len() / 2]).unwrap();
    let e = err_text(load(DatasetName::Cifar10, Some(&good)));
    assert!(
        e.contains("data_batch_3") && e.contains("truncated pickle") && e.contains("offset"),
        "{e}"
    );
    let mut padded = raw.clone();
    padded.extend_from_slice(b"junk");
    std::fs::write(good.join("data_batch_3"), &padded).unwrap();
    let e = err_text(load(DatasetName::Cifar10, Some(&good)));
    assert!(
        e.contains("data_batch_3") && e.contains("4 bytes after the end of the pickle"),
        "{e}"
    );
    std::fs::write(good.join("data_batch_3"), [7u8; 3073]).unwrap();
    let e = err_text(load(DatasetName::Cifar10, Some(&good)));
    assert!(
        e.contains("data_batch_3") && e.contains("not a readable CIFAR-10 python-version file"),
        "{e}"
    );
    std::fs::write(good.join("data_batch_3"), &raw).unwrap();
    std::fs::remove_file(good.join("test_batch")).unwrap();
    let e = err_text(load(DatasetName::Cifar10, Some(&good)));
    assert!(e.contains("test_batch"), "{e}");
    // Neither version: the message names both layouts.
    let empty = tempfile::tempdir().unwrap();
    let e = err_text(load(DatasetName::Cifar10, Some(empty.path())));
    assert!(
        e.contains("cifar-10-batches-bin") && e.contains("cifar-10-batches-py"),
        "{e}"
    );
    let e = err_text(load(DatasetName::Cifar100, Some(empty.path())));
    assert!(
        e.contains("cifar-100-binary") && e.contains("cifar-100-python"),
        "{e}"
    );
}

#[test]
fn svhn_reads_what_scipy_wrote() {
    let tmp = tempfile::tempdir().unwrap();
    // Compressed with uint8 labels, plain with double labels.
    for (compress, ytype) in [("1", "uint8"), ("0", "double")] {
        let parent = tmp.path().join(format!("{compress}-{ytype}"));
        let d = parent.join("svhn");
        common::run_python(
            "svhn_fixture.py",
            &["good", s(&d), "9", compress, compress, ytype],
        );
        let (train_px, train_lb) = expected(&d, &["train_32x32.mat"]);
        let (test_px, test_lb) = expected(&d, &["test_32x32.mat"]);
        let (extra_px, extra_lb) = expected(&d, &["extra_32x32.mat"]);
        assert_eq!(
            train_lb[0], 0,
            "the fixture's first label is 10, the digit 0"
        );
        for dir in [d.as_path(), parent.as_path()] {
            let ds = load(DatasetName::Svhn, Some(dir)).unwrap();
            assert_eq!(ds.num_classes, 10);
            // extra_32x32.mat is present but left out by default.
            assert_eq!((ds.train.len(), ds.test.len()), (9, 9));
            assert_set(&ds.train, &train_px, &train_lb, ytype);
            assert_set(&ds.test, &test_px, &test_lb, ytype);
            assert_eq!(ds.mean, [0.4377, 0.4438, 0.4728]);
            assert_eq!(ds.std, [0.1980, 0.2010, 0.1970]);
        }
        let (train, _) = formats::read_svhn(&d, true).unwrap();
        assert_eq!(train.len(), 18);
        assert!(train.images == [train_px, extra_px].concat());
        assert_eq!(train.labels, [train_lb, extra_lb].concat());
    }
    // Big-endian files, written by hand.
    let be = tmp.path().join("be");
    common::run_python("svhn_fixture.py", &["bigendian", s(&be)]);
    let ds = load(DatasetName::Svhn, Some(&be)).unwrap();
    let (px, lb) = expected(&be, &["train_32x32.mat"]);
    assert_set(&ds.train, &px, &lb, "big-endian");
}

#[test]
fn svhn_bad_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad");
    common::run_python("svhn_fixture.py", &["bad", s(&bad)]);
    let read = |name: &str| {
        let p = bad.join(name);
        formats::read_svhn_file(&p, &std::fs::read(&p).unwrap())
    };
    let cases: [(&str, &[&str]); 13] = [
        ("missing_X.mat", &["no variable `X`"]),
        ("missing_y.mat", &["no variable `y`"]),
        ("gray.mat", &["`X`", "[32, 32, 1, 3]", "32×32×3×N"]),
        ("small.mat", &["[28, 28, 3, 3]", "32×32×3×N"]),
        ("two_dims.mat", &["[3072, 3]"]),
        ("label0.mat", &["label 1 of `y`", "is 0", "1..10"]),
        ("label11.mat", &["label 2 of `y`", "is 11"]),
        ("label_fraction.mat", &["label 1 of `y`", ".5;"]),
        ("count.mat", &["`y`", "[2, 1]", "3 images"]),
        ("x_double.mat", &["`X`", "double array", "uint8"]),
        ("y_text.mat", &["`y`", "char array"]),
        ("y_complex.mat", &["`y`", "complex"]),
        ("v73.mat", &["v7.3", "HDF5", "-v7", "savemat"]),
    ];
    for (name, wants) in cases {
        let e = err_text(read(name));
        assert!(e.contains(&format!("bad/{name}")), "{name}: {e}");
        for w in wants {
            assert!(e.contains(w), "{name}: want {w:?} in: {e}");
        }
    }
    let e = err_text(read("not_mat.mat"));
    assert!(
        e.contains("not_mat.mat") && e.contains("not a MATLAB v5/v7 MAT-file"),
        "{e}"
    );

    // Truncation anywhere, compressed or not, names the file and an offset; never a panic.
    let good = tmp.path().join("good");
    for compress in ["0", "1"] {
        common::run_python(
            "svhn_fixture.py",
            &["good", s(&good), "3", "4", compress, "uint8"],
        );
        let path = good.join("train_32x32.mat");
        let raw = std::fs::read(&path).unwrap();
        for cut in [0, 64, 127, 128, 131, 136, 200, raw.len() / 2, raw.len() - 1] {
            let e = err_text(formats::read_svhn_file(&path, &raw[..cut]));
            assert!(e.contains("train_32x32.mat"), "cut {cut}: {e}");
            assert!(
                e.contains("offset") || e.contains("not a MATLAB") || e.contains("no variable"),
                "cut {cut}: {e}"
            );
        }
        let mut flipped = raw.clone();
        let n = flipped.len();
        flipped[n / 2] ^= 0xff;
        flipped[n / 2 + 1] ^= 0x55;
        // A flipped byte may land in pixel data of an uncompressed file; it must never panic.
        let _ = formats::read_svhn_file(&path, &flipped);
    }
    std::fs::remove_file(good.join("test_32x32.mat")).unwrap();
    let e = err_text(load(DatasetName::Svhn, Some(&good)));
    assert!(e.contains("test_32x32.mat"), "{e}");
    let empty = tempfile::tempdir().unwrap();
    let e = err_text(load(DatasetName::Svhn, Some(empty.path())));
    assert!(e.contains("train_32x32.mat") && e.contains("svhn/"), "{e}");
}

/// Writes an RGB (3) or gray (1) PNG from planar C×H×W bytes.
fn write_png(path: &Path, channels: usize, h: usize, w: usize, planar: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut inter = vec![0u8; planar.len()];
    for c in 0..channels {
        for i in 0..h * w {
            inter[i * channels + c] = planar[c * h * w + i];
        }
    }
    let file = std::fs::File::create(path).unwrap();
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w as u32, h as u32);
    enc.set_color(if channels == 3 {
        png::ColorType::Rgb
    } else {
        png::ColorType::Grayscale
    });
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header()
        .unwrap()
        .write_image_data(&inter)
        .unwrap();
}

/// Planar pixels that depend on the position, channel and a per-image salt.
fn pattern(channels: usize, h: usize, w: usize, salt: usize) -> Vec<u8> {
    (0..channels * h * w)
        .map(|i| {
            let (c, y, x) = (i / (h * w), i / w % h, i % w);
            ((y * 7 + x * 3 + c * 85 + salt * 31) % 256) as u8
        })
        .collect()
}

#[test]
fn image_folder_classes_order_and_pixels() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // (file, class index, salt): the order torchvision's ImageFolder gives.
    let train: [(&str, i64, usize); 6] = [
        ("train/cat/1.png", 0, 1),
        ("train/cat/2.PNG", 0, 2),
        ("train/dog/a.png", 1, 3),
        ("train/dog/z.png", 1, 4),
        ("train/dog/sub/b.png", 1, 5),
        ("train/zebra/0.png", 2, 6),
    ];
    let test: [(&str, i64, usize); 2] = [("test/cat/x.png", 0, 7), ("test/zebra/y.png", 2, 8)];
    for (f, _, salt) in train.iter().chain(&test) {
        write_png(&d.join(f), 3, 32, 32, &pattern(3, 32, 32, *salt));
    }
    // Skipped: a hidden folder, a non-image file.
    write_png(
        &d.join("train/.ipynb_checkpoints/q.png"),
        3,
        32,
        32,
        &[0; 3072],
    );
    std::fs::write(d.join("train/dog/notes.txt"), "not an image").unwrap();
    let (tr, te, classes) = formats::read_image_folder(d).unwrap();
    assert_eq!(classes, ["cat", "dog", "zebra"]);
    let want = |set: &[(&str, i64, usize)]| {
        let px: Vec<u8> = set
            .iter()
            .flat_map(|(_, _, s)| pattern(3, 32, 32, *s))
            .collect();
        let lb: Vec<i64> = set.iter().map(|(_, l, _)| *l).collect();
        (px, lb)
    };
    let (px, lb) = want(&train);
    assert_set(&tr, &px, &lb, "train");
    let (px, lb) = want(&test);
    assert_set(&te, &px, &lb, "test");
    let ds = load(DatasetName::ImageFolder, Some(d)).unwrap();
    assert_eq!(ds.num_classes, 3);
    assert_eq!(ds.mean, [0.485, 0.456, 0.406]);
    assert_eq!(ds.default_augment(), Augment { pad: 4, flip: true });
}

#[test]
fn image_folder_gray_jpeg_and_mixed_channels() {
    let tmp = tempfile::tempdir().unwrap();
    // Gray 28×28 PNGs: one channel, no flip, pad 2.
    let g = tmp.path().join("gray");
    write_png(&g.join("train/0/a.png"), 1, 28, 28, &pattern(1, 28, 28, 1));
    write_png(&g.join("train/1/b.png"), 1, 28, 28, &pattern(1, 28, 28, 2));
    write_png(&g.join("test/1/c.png"), 1, 28, 28, &pattern(1, 28, 28, 3));
    let ds = load(DatasetName::ImageFolder, Some(&g)).unwrap();
    assert_eq!(
        (ds.train.channels, ds.train.height, ds.train.width),
        (1, 28, 28)
    );
    assert_eq!(ds.test.labels, [1]);
    assert_eq!((ds.mean.clone(), ds.std.clone()), (vec![0.5], vec![0.5]));
    assert_eq!(
        ds.default_augment(),
        Augment {
            pad: 2,
            flip: false
        }
    );
    // A gray image among RGB ones becomes RGB, as PIL's convert("RGB") makes it.
    let m = tmp.path().join("mixed");
    let rgb = pattern(3, 16, 16, 4);
    let gray = pattern(1, 16, 16, 5);
    write_png(&m.join("train/a/rgb.png"), 3, 16, 16, &rgb);
    write_png(&m.join("train/b/gray.png"), 1, 16, 16, &gray);
    write_png(&m.join("test/b/gray.png"), 1, 16, 16, &gray);
    let ds = load(DatasetName::ImageFolder, Some(&m)).unwrap();
    let gray3 = [gray.clone(), gray.clone(), gray.clone()].concat();
    assert!(ds.train.images == [rgb.clone(), gray3.clone()].concat());
    assert!(ds.test.images == gray3 && ds.test.channels == 3);
    // 16 px RGB: too small to be taken for photographs: no flip, pad 1.
    assert_eq!(
        ds.default_augment(),
        Augment {
            pad: 1,
            flip: false
        }
    );

    // JPEG, gray and RGB (4:4:4, quality 100), from smooth gradients that lossy coding keeps
    // within a few levels; a transposed or plane-swapped reader would be off by tens.
    let j = tmp.path().join("jpeg");
    let (h, w) = (24, 40);
    let smooth = |channels: usize, salt: usize| -> Vec<u8> {
        (0..channels * h * w)
            .map(|i| {
                let (c, y, x) = (i / (h * w), i / w % h, i % w);
                (30 + 3 * y + 2 * x + 40 * c + salt) as u8
            })
            .collect()
    };
    let rgb = smooth(3, 0);
    let mut inter = vec![0u8; rgb.len()];
    for c in 0..3 {
        for i in 0..h * w {
            inter[i * 3 + c] = rgb[c * h * w + i];
        }
    }
    std::fs::create_dir_all(j.join("train/k")).unwrap();
    std::fs::create_dir_all(j.join("test/k")).unwrap();
    let mut enc = jpeg_encoder::Encoder::new_file(j.join("train/k/a.jpg"), 100).unwrap();
    enc.set_sampling_factor(jpeg_encoder::SamplingFactor::R_4_4_4);
    enc.encode(&inter, w as u16, h as u16, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    let gray = smooth(1, 5);
    jpeg_encoder::Encoder::new_file(j.join("test/k/b.JPEG"), 100)
        .unwrap()
        .encode(&gray, w as u16, h as u16, jpeg_encoder::ColorType::Luma)
        .unwrap();
    let ds = load(DatasetName::ImageFolder, Some(&j)).unwrap();
    assert_eq!(
        (ds.train.channels, ds.train.height, ds.train.width),
        (3, h, w)
    );
    let max_diff = |a: &[u8], b: &[u8]| {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).map(|(x, y)| x.abs_diff(*y)).max().unwrap()
    };
    let d = max_diff(&ds.train.images, &rgb);
    assert!(d <= 3, "RGB JPEG off by {d}");
    let d = max_diff(
        &ds.test.images,
        &[gray.clone(), gray.clone(), gray].concat(),
    );
    assert!(d <= 3, "gray JPEG off by {d}");
}

#[test]
fn image_folder_bad_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let e = err_text(load(DatasetName::ImageFolder, Some(d)));
    assert!(e.contains("expected train/ and test/"), "{e}");
    std::fs::create_dir_all(d.join("test")).unwrap();
    write_png(&d.join("train/3_cat.png"), 3, 32, 32, &[0; 3072]);
    let e = err_text(load(DatasetName::ImageFolder, Some(d)));
    assert!(
        e.contains("no class folders") && e.contains("png-folder"),
        "{e}"
    );
    std::fs::create_dir_all(d.join("train/bird")).unwrap();
    let e = err_text(load(DatasetName::ImageFolder, Some(d)));
    assert!(
        e.contains("train/bird") && e.contains("no PNG or JPEG"),
        "{e}"
    );
    write_png(&d.join("train/bird/1.png"), 3, 32, 32, &[0; 3072]);
    let e = err_text(load(DatasetName::ImageFolder, Some(d)));
    assert!(e.contains("test") && e.contains("no PNG or JPEG"), "{e}");
    write_png(&d.join("test/fish/1.png"), 3, 32, 32, &[0; 3072]);
    let e = err_text(load(DatasetName::ImageFolder, Some(d)));
    assert!(
        e.contains("test/fish") && e.contains("not among the train classes (bird)"),
        "{e}"
    );
    std::fs::remove_dir_all(d.join("test/fish")).unwrap();
    write_png(&d.join("test/bird/odd.png"), 3, 30, 32, &[0; 2880]);
    let e = err_text(load(DatasetName::ImageFolder, Some(d)));
    assert!(
        e.contains("test/bird/odd.png")
            && e.contains("30×32")
            && e.contains("train/bird/1.png")
            && e.contains("32×32"),
        "{e}"
    );
    write_png(&d.join("test/bird/odd.png"), 3, 32, 32, &[0; 3072]);
    std::fs::write(d.join("train/bird/2.bmp"), b"BM").unwrap();
    let e = err_text(load(DatasetName::ImageFolder, Some(d)));
    assert!(
        e.contains("train/bird/2.bmp") && e.contains(".bmp images are not read"),
        "{e}"
    );
    std::fs::remove_file(d.join("train/bird/2.bmp")).unwrap();
    std::fs::write(d.join("train/bird/3.png"), b"not a png").unwrap();
    let e = err_text(load(DatasetName::ImageFolder, Some(d)));
    assert!(e.contains("train/bird/3.png") && e.contains("PNG"), "{e}");
    std::fs::write(d.join("train/bird/3.png"), b"").unwrap();
    std::fs::rename(d.join("train/bird/3.png"), d.join("train/bird/3.jpg")).unwrap();
    let e = err_text(load(DatasetName::ImageFolder, Some(d)));
    assert!(e.contains("train/bird/3.jpg") && e.contains("JPEG"), "{e}");
    std::fs::remove_file(d.join("train/bird/3.jpg")).unwrap();
    assert!(load(DatasetName::ImageFolder, Some(d)).is_ok());
}

fn assert_named(name: DatasetName, cli: &str) {
    let e = err_text(load(name, None));
    let clap_name = clap::ValueEnum::to_possible_value(&name).unwrap();
    assert_eq!((clap_name.get_name(), name.cli_name()), (cli, cli));
    assert!(e.contains("--data DIR") && e.contains(cli), "{e}");
}

#[test]
fn cifar_layouts_name_both_versions() {
    assert!(DatasetName::Cifar10
        .expected_layout()
        .contains("cifar-10-batches-py"));
    assert!(DatasetName::Cifar100
        .expected_layout()
        .contains("cifar-100-python"));
}

#[test]
fn svhn_name_layout_and_no_augmentation() {
    assert_named(DatasetName::Svhn, "svhn");
    assert!(DatasetName::Svhn
        .expected_layout()
        .contains("extra_32x32.mat is ignored"));
    // No augmentation, as the reference trains SVHN.
    assert_eq!(
        DatasetName::Svhn.default_augment(),
        Augment {
            pad: 0,
            flip: false
        }
    );
    assert!(DatasetName::Svhn.default_augment().is_identity());
}

#[test]
fn image_folder_name_and_size_aware_augmentation() {
    assert_named(DatasetName::ImageFolder, "image-folder");
    // Only an image folder's augmentation depends on the images.
    assert_eq!(
        DatasetName::Cifar10.augment_for(1, 8, 8),
        DatasetName::Cifar10.default_augment()
    );
    assert_eq!(
        DatasetName::ImageFolder.augment_for(3, 64, 64),
        Augment { pad: 4, flip: true }
    );
    assert_eq!(
        DatasetName::ImageFolder.augment_for(3, 8, 8),
        Augment {
            pad: 1,
            flip: false
        }
    );
}

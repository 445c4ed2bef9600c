//! Crafted files that once passed the readers' checks (issue #25, items 1, 6 and 13): sizes from
//! a header are multiplied with checked arithmetic, a safetensors header may not retype a
//! weight, and the errors speak in the file's terms (its name, the header's values, what to
//! do), never in Rust's debug notation.

mod common;

use gunlearn::checkpoint::{self, ModelInfo, FORMAT};
use gunlearn::data::formats::{read_cifar_pickle, read_idx_images, CifarKind};
use gunlearn::data::{self, DatasetName};
use gunlearn::model::mask::Mask;
use gunlearn::model::{Arch, Classifier, ModelSpec};
use gunlearn::pickle::{DType, Writer};
use gunlearn::torch_io::{import_torch, ImportOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

fn err_text<T>(r: anyhow::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => format!("{e:#}"),
    }
}

/// No Rust debug notation in a message meant for a user.
fn assert_no_debug(e: &str) {
    for leak in [
        "Some(", "None,", "Tuple(", "Str(", "Int(", "List(", "Dict(", "Kind::",
    ] {
        assert!(!e.contains(leak), "debug output {leak:?} in: {e}");
    }
}

fn idx(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = magic.to_be_bytes().to_vec();
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(data);
    v
}

/// The example: 5 × 859006559 × 4294901798 wraps past 2^64 to exactly the 4 913 794
/// bytes that follow the header. Refused by name, with the header's values, not the wrapped
/// count, whether read alone or as part of an MNIST folder (which used to panic in a batch).
#[test]
fn idx_dimensions_whose_product_wraps_are_refused() {
    let dims = [5u32, 859_006_559, 4_294_901_798];
    let wrapped = dims.iter().fold(1usize, |a, &d| a.wrapping_mul(d as usize));
    assert_eq!(
        wrapped, 4_913_794,
        "the crafted dimensions wrap as in the issue"
    );
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("t10k-images-idx3-ubyte");
    std::fs::write(&path, idx(0x803, &dims, &vec![7u8; wrapped])).unwrap();
    let e = err_text(read_idx_images(&path));
    assert!(e.contains("t10k-images-idx3-ubyte"), "{e}");
    assert!(e.contains("5×859006559×4294901798"), "{e}");
    assert!(
        e.contains("64 bits") && e.contains("4913794 data bytes"),
        "{e}"
    );
    assert!(e.contains("fetch it again"), "{e}");
    assert!(
        !e.contains("= 4913794"),
        "the wrapped product is not a size: {e}"
    );
    assert_no_debug(&e);

    // A whole MNIST folder with the crafted test images: an error, not a panic.
    let d = tmp.path();
    let img = |n: u32| idx(0x803, &[n, 2, 2], &vec![1u8; 4 * n as usize]);
    let lab = |n: u32| idx(0x801, &[n], &vec![1u8; n as usize]);
    std::fs::write(d.join("train-images-idx3-ubyte"), img(3)).unwrap();
    std::fs::write(d.join("train-labels-idx1-ubyte"), lab(3)).unwrap();
    std::fs::write(d.join("t10k-labels-idx1-ubyte"), lab(5)).unwrap();
    let e = err_text(data::load(DatasetName::Mnist, Some(d)));
    assert!(
        e.contains("t10k-images-idx3-ubyte") && e.contains("64 bits"),
        "{e}"
    );
}

/// Through the CLI: the crafted folder makes `train` fail with exit code 1 and the message,
/// not the panic's exit code 101.
#[test]
fn train_on_a_crafted_idx_folder_fails_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("mnist");
    std::fs::create_dir_all(&d).unwrap();
    let dims = [5u32, 859_006_559, 4_294_901_798];
    let crafted = idx(0x803, &dims, &vec![7u8; 4_913_794]);
    let labels = idx(0x801, &[5], &[1, 2, 3, 4, 5]);
    for (name, bytes) in [
        ("train-images-idx3-ubyte", &crafted),
        ("train-labels-idx1-ubyte", &labels),
        ("t10k-images-idx3-ubyte", &crafted),
        ("t10k-labels-idx1-ubyte", &labels),
    ] {
        std::fs::write(d.join(name), bytes).unwrap();
    }
    let out = common::gunlearn(&[
        "train",
        "--dataset",
        "mnist",
        "--data",
        d.to_str().unwrap(),
        "--epochs",
        "1",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--quiet",
        "--save_dir",
        tmp.path().join("run").to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("train-images-idx3-ubyte") && stderr.contains("5×859006559×4294901798"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Image sides of 0 (or absurdly large) are refused with the header's values.
#[test]
fn idx_absurd_image_sides_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    for (dims, shown) in [
        ([3u32, 0, 28], "3 images of 0×28 pixels"),
        ([0, 100_000, 7], "0 images of 100000×7 pixels"),
    ] {
        let path = tmp.path().join("images-idx3-ubyte");
        let n = dims.iter().map(|&d| d as usize).product::<usize>();
        std::fs::write(&path, idx(0x803, &dims, &vec![0u8; n])).unwrap();
        let e = err_text(read_idx_images(&path));
        assert!(e.contains("images-idx3-ubyte") && e.contains(shown), "{e}");
        assert!(e.contains("1 to 65536"), "{e}");
    }
}

/// Protocol-2 pickle bytes: PROTO 2, `body`, STOP.
fn pickle(body: &[u8]) -> Vec<u8> {
    let mut v = vec![0x80, 2];
    v.extend_from_slice(body);
    v.push(b'.');
    v
}

/// 200 000 TUPLE1 opcodes nest a tuple 200 000 deep: dropping it recursively would overflow
/// the stack and abort the process. The parser refuses past its depth limit.
#[test]
fn deeply_nested_pickles_are_refused() {
    let mut body = vec![b')'];
    body.extend(std::iter::repeat_n(0x85u8, 200_000));
    let bytes = pickle(&body);
    let path = Path::new("/data/cifar-10-batches-py/data_batch_1");
    // A thread with a small stack, as test threads have: the old parser aborts here.
    let e = std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(move || err_text(read_cifar_pickle(path, &bytes, CifarKind::Cifar10)))
        .unwrap()
        .join()
        .unwrap();
    assert!(e.contains("data_batch_1"), "{e}");
    assert!(e.contains("nested more than 1000 deep"), "{e}");
}

/// Each round memoises a list, then builds a list of two copies of it: 22 rounds are 130
/// bytes of pickle and 4 million values (400 MB) once parsed; 60 rounds would be 2^60. The
/// parser refuses copies beyond a small multiple of the file's size.
#[test]
fn pickles_that_double_through_the_memo_are_refused() {
    let mut body = vec![b']', b'q', 0];
    for _ in 0..22 {
        body.extend_from_slice(&[b'(', b'h', 0, b'h', 0, b'l', b'q', 0]);
    }
    let bytes = pickle(&body);
    let e = err_text(read_cifar_pickle(
        Path::new("/data/test_batch"),
        &bytes,
        CifarKind::Cifar10,
    ));
    assert!(e.contains("test_batch"), "{e}");
    assert!(e.contains("memo copies") && e.contains("16 times"), "{e}");
}

/// Writes a `torch.save`-layout zip: `archive/data.pkl` and the storage records.
fn write_torch_zip(path: &Path, pkl: &[u8], records: &[(&str, &[u8])]) {
    let mut zw = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let opts =
        zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zw.start_file("archive/data.pkl", opts).unwrap();
    zw.write_all(pkl).unwrap();
    for (key, bytes) in records {
        zw.start_file(format!("archive/data/{key}"), opts).unwrap();
        zw.write_all(bytes).unwrap();
    }
    zw.finish().unwrap();
}

/// A state dict `{"conv1.weight": tensor}` whose storage declares `numel` F32 elements.
fn one_tensor_pickle(numel: usize, size: &[i64]) -> Vec<u8> {
    let mut w = Writer::new();
    w.ordered_dict();
    w.mark();
    w.str("conv1.weight");
    w.tensor("0", DType::F32, numel, size);
    w.op(b'u');
    w.finish()
}

/// A storage of 2^62 + 1 F32 elements "needs" (2^62 + 1) · 4 bytes, which wraps to 4: the
/// 4-byte record passed the size check and libtorch was handed a view of 2^62 elements over it.
#[test]
fn torch_storage_sizes_that_wrap_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("wrapped.pth");
    let numel = (1usize << 62) + 1;
    write_torch_zip(&path, &one_tensor_pickle(numel, &[1]), &[("0", &[0u8; 4])]);
    let opts = ImportOptions {
        arch: Some(Arch::Resnet20),
        ..ImportOptions::default()
    };
    let e = err_text(import_torch(&path, &opts, Device::Cpu));
    assert!(
        e.contains("wrapped.pth") && e.contains("conv1.weight"),
        "{e}"
    );
    assert!(
        e.contains(&format!("declares {numel} elements of 4 bytes")),
        "{e}"
    );
    assert_no_debug(&e);

    // A view whose extent overflows i64 is refused as well.
    let path = tmp.path().join("view.pth");
    let huge = i64::MAX / 2;
    write_torch_zip(
        &path,
        &one_tensor_pickle(4, &[huge, huge]),
        &[("0", &[0u8; 16])],
    );
    let e = err_text(import_torch(&path, &opts, Device::Cpu));
    assert!(
        e.contains("view.pth") && e.contains("too many elements"),
        "{e}"
    );
}

/// A persistent id that is not a torch storage is described, not dumped as Rust values.
#[test]
fn torch_pickle_errors_use_no_debug_notation() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("odd.pth");
    // ('notstorage', 1, 2, 3, 4) as a persistent id.
    let mut body = vec![b'('];
    body.extend_from_slice(b"X\x0a\x00\x00\x00notstorage");
    body.extend_from_slice(&[b'K', 1, b'K', 2, b'K', 3, b'K', 4, b't', b'Q']);
    write_torch_zip(&path, &pickle(&body), &[]);
    let e = err_text(import_torch(&path, &ImportOptions::default(), Device::Cpu));
    assert!(e.contains("odd.pth"), "{e}");
    assert!(
        e.contains("a tuple of 5 items starting with 'notstorage'"),
        "{e}"
    );
    assert_no_debug(&e);
}

/// A fresh ResNet-20 checkpoint for digits in `dir` (`model.safetensors` + `model.json`),
/// with an integer-typed mask when `int_mask`.
fn write_checkpoint(dir: &Path, int_mask: bool) -> PathBuf {
    common::pin_threads();
    let ds = data::load(DatasetName::Digits, None).unwrap();
    let spec: ModelSpec = gunlearn::jobs::model_spec(&ds, Arch::Resnet20).unwrap();
    tch::manual_seed(0);
    let model = Classifier::new(&spec, Device::Cpu);
    let info = ModelInfo {
        format: FORMAT.into(),
        model: spec,
        dataset: DatasetName::Digits,
        seed: 0,
        epoch: 0,
        accuracy: Default::default(),
        sparsity: 0.0,
        device: "cpu".into(),
        produced_by: "test".into(),
        extra: serde_json::Value::Null,
    };
    let mask = int_mask.then(|| {
        let mut m = Mask::dense(&model);
        for t in m.masks.values_mut() {
            *t = t.to_kind(Kind::Uint8);
        }
        m
    });
    checkpoint::save(dir, "model", &model, mask.as_ref(), &info).unwrap();
    dir.join("model.safetensors")
}

/// Rewrites the safetensors header of `path`, changing `name`'s dtype to `dtype` (the data
/// bytes stay as they are).
fn retype(path: &Path, name: &str, dtype: &str) {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    assert_eq!(header[name]["dtype"], "F32", "{name} is a float weight");
    header[name]["dtype"] = dtype.into();
    let text = serde_json::to_vec(&header).unwrap();
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[8 + n..]);
    std::fs::write(path, out).unwrap();
}

/// `I32` over a weight's F32 bytes: `info`, `eval` and `import-torch` all refuse the file,
/// naming the tensor and both types (they used to cast the bits, giving weights ≈ −1.1e9).
#[test]
fn a_safetensors_header_may_not_retype_a_weight() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lying");
    let weights = write_checkpoint(&dir, false);
    let name = Arch::Resnet20.first_conv_weight();
    retype(&weights, name, "I32");
    let model = dir.to_str().unwrap();
    let (eval_dir, imported) = (tmp.path().join("eval"), tmp.path().join("imported"));
    let runs: [Vec<&str>; 3] = [
        vec!["info", model, "--device", "cpu"],
        vec![
            "eval",
            "--model",
            model,
            "--dataset",
            "digits",
            "--device",
            "cpu",
            "--threads",
            "1",
            "--quiet",
            "--save_dir",
            eval_dir.to_str().unwrap(),
        ],
        vec![
            "import-torch",
            weights.to_str().unwrap(),
            "--arch",
            "resnet20",
            "--dataset",
            "digits",
            "--device",
            "cpu",
            "-o",
            imported.to_str().unwrap(),
        ],
    ];
    for args in runs {
        let out = common::gunlearn(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!("\"{name}\" is stored as I32")) && stderr.contains("F32"),
            "{args:?}: {stderr}"
        );
        assert!(stderr.contains("model.safetensors"), "{args:?}: {stderr}");
    }
    assert!(!eval_dir.join("eval_result.json").exists());
    assert!(!imported.join("model.json").exists());
}

/// Masks may be stored as integers (0/1 of any type): such a checkpoint still loads, and the
/// intact checkpoint's `info` works (the refusal above is about the retyped weight only).
#[test]
fn integer_masks_still_load() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("masked");
    write_checkpoint(&dir, true);
    let header = {
        let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        String::from_utf8(bytes[8..8 + n].to_vec()).unwrap()
    };
    assert!(
        header.contains("\"U8\""),
        "the mask is stored as U8: {header}"
    );
    let ckpt = checkpoint::load(&dir, Device::Cpu).unwrap();
    let mask = ckpt.mask.expect("the checkpoint has a mask");
    assert!(mask.masks.values().all(|m| m.kind() == Kind::Float));
    let out = common::ok(&["info", dir.to_str().unwrap(), "--device", "cpu"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("resnet20"));
}

/// A weight saved in double precision (as some PyTorch users do) imports with a note; an
/// integer one is refused by name.
#[test]
fn import_torch_converts_other_float_precisions_only() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("f64");
    let weights = write_checkpoint(&dir, false);
    let mut tensors: Vec<(String, Tensor)> = checkpoint::read_safetensors(&weights)
        .unwrap()
        .into_iter()
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, t) in tensors.iter_mut() {
        *t = t.to_kind(Kind::Double);
    }
    let double = tmp.path().join("double.safetensors");
    checkpoint::write_safetensors(&double, &tensors).unwrap();
    let opts = ImportOptions {
        arch: Some(Arch::Resnet20),
        dataset: DatasetName::Digits,
        ..ImportOptions::default()
    };
    let imported = import_torch(&double, &opts, Device::Cpu).unwrap();
    assert!(
        imported
            .notes
            .iter()
            .any(|n| n.contains("stored as F64 converted to F32")),
        "{:?}",
        imported.notes
    );
    for (name, t) in &tensors {
        let got = imported.model.vs.variables()[name].shallow_clone();
        assert_eq!(got.kind(), Kind::Float);
        assert!(
            got.allclose(&t.to_kind(Kind::Float), 0.0, 0.0, false),
            "{name}"
        );
    }
    for (name, t) in tensors.iter_mut() {
        if name == "fc.weight" {
            *t = t.to_kind(Kind::Int64);
        }
    }
    let int = tmp.path().join("int.safetensors");
    checkpoint::write_safetensors(&int, &tensors).unwrap();
    let e = err_text(import_torch(&int, &opts, Device::Cpu));
    assert!(
        e.contains("int.safetensors") && e.contains("\"fc.weight\" is stored as I64"),
        "{e}"
    );
}

/// Writes a safetensors file whose header is `header` (JSON) over `data`.
fn write_raw_safetensors(path: &Path, header: &serde_json::Value, data: &[u8]) {
    let text = serde_json::to_vec(header).unwrap();
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&text);
    out.extend_from_slice(data);
    std::fs::write(path, out).unwrap();
}

/// Shapes whose dimensions do not fit libtorch's signed 64-bit sizes hold no bytes (a zero
/// dimension), so the safetensors check passes them; libtorch then threw, and the message was
/// a 25-frame C++ backtrace. They are refused by name, in words; so is a damaged header.
#[test]
fn safetensors_shapes_beyond_64_bit_sizes_are_refused_in_words() {
    let tmp = tempfile::tempdir().unwrap();
    for (i, shape) in [
        serde_json::json!([0u64, u64::MAX]),
        serde_json::json!([0u64, 1u64 << 63, 1u64 << 63]),
    ]
    .into_iter()
    .enumerate()
    {
        let path = tmp.path().join(format!("huge{i}.safetensors"));
        let header = serde_json::json!({
            "conv1.weight": {"dtype": "F32", "shape": shape, "data_offsets": [0, 0]}
        });
        write_raw_safetensors(&path, &header, &[]);
        let e = err_text(checkpoint::read_safetensors(&path));
        assert!(
            e.contains(&format!("huge{i}.safetensors"))
                && e.contains("\"conv1.weight\" has shape 0×")
                && e.contains("beyond what a tensor can hold"),
            "{e}"
        );
        assert!(!e.contains("frame #") && !e.contains("Exception"), "{e}");
    }
    // Data cut short: the byte ranges no longer cover the file.
    let path = tmp.path().join("short.safetensors");
    let header = serde_json::json!({
        "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
    });
    write_raw_safetensors(&path, &header, &[0u8; 6]);
    let e = err_text(checkpoint::read_safetensors(&path));
    assert!(
        e.contains("short.safetensors") && e.contains("cut short, or bytes appended"),
        "{e}"
    );
    assert_no_debug(&e);
    assert!(!e.contains("MetadataIncompleteBuffer"), "{e}");
}

/// A `byteorder` record that is not text made the reader fail with a bare "stream did not
/// contain valid UTF-8", naming no file; a record compressed with a method torch.save never
/// uses (zstd, bzip2) sized its decoder from the stream's own header. Both are refused by name.
#[test]
fn torch_zip_records_are_read_as_torch_writes_them() {
    let tmp = tempfile::tempdir().unwrap();
    let pkl = one_tensor_pickle(1, &[1]);
    let path = tmp.path().join("order.pth");
    {
        let mut zw = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        let stored =
            zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Stored);
        zw.start_file("archive/byteorder", stored).unwrap();
        zw.write_all(&[0xff, 0xfe, 0x00]).unwrap();
        zw.start_file("archive/data.pkl", stored).unwrap();
        zw.write_all(&pkl).unwrap();
        zw.start_file("archive/data/0", stored).unwrap();
        zw.write_all(&[0u8; 4]).unwrap();
        zw.finish().unwrap();
    }
    let e = err_text(import_torch(&path, &ImportOptions::default(), Device::Cpu));
    assert!(
        e.contains("order.pth") && e.contains("reading archive/byteorder"),
        "{e}"
    );

    let path = tmp.path().join("zstd.pth");
    {
        let mut zw = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        let zstd =
            zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Zstd);
        zw.start_file("archive/data.pkl", zstd).unwrap();
        zw.write_all(&pkl).unwrap();
        zw.finish().unwrap();
    }
    let e = err_text(import_torch(&path, &ImportOptions::default(), Device::Cpu));
    assert!(
        e.contains("zstd.pth") && e.contains("archive/data.pkl is compressed with Zstd"),
        "{e}"
    );
}

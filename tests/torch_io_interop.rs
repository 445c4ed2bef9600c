//! import-torch / export-torch against real `torch.save` files written at test time by
//! tests/python/torch_io_ref.py (the reference ResNets and VGG-16-BN of bench/reference.py).

mod common;

use gunlearn::checkpoint;
use gunlearn::model::{Arch, Classifier, ModelSpec};
use gunlearn::torch_io::{self, ExportTorchJob, ImportOptions, ImportTorchJob};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// Pins libtorch's intra-op threads (the test machine's cores are shared).
fn setup_threads() {
    common::pin_threads();
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

fn write_input(dir: &Path, cin: i64, hw: i64) -> (PathBuf, Tensor) {
    tch::manual_seed(3);
    let x = Tensor::rand([4, cin, hw, hw], (Kind::Float, Device::Cpu));
    let path = dir.join("input.safetensors");
    checkpoint::write_safetensors(&path, &[("input".to_string(), x.shallow_clone())]).unwrap();
    (path, x)
}

fn read(path: &Path, name: &str) -> Tensor {
    checkpoint::read_safetensors(path)
        .unwrap()
        .remove(name)
        .unwrap_or_else(|| panic!("{name} in {}", path.display()))
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// Saves one seeded model per layout with PyTorch (one Python process), imports each file, and
/// checks that our eval logits match PyTorch's on `hw`×`hw` inputs. Returns the imports, in
/// layout order.
fn import_layouts(
    layouts: &[&str],
    arch: &str,
    classes: usize,
    hw: i64,
) -> (Vec<torch_io::Imported>, tempfile::TempDir) {
    setup_threads();
    let dir = tempfile::tempdir().unwrap();
    let (input, x) = write_input(dir.path(), 3, hw);
    let mut args = vec!["save", arch];
    let classes = classes.to_string();
    args.extend([classes.as_str(), "3", s(&input), s(dir.path())]);
    args.extend(layouts);
    common::run_python("torch_io_ref.py", &args);
    let mut out = Vec::new();
    for layout in layouts {
        let pth = dir.path().join(format!("{layout}.pth.tar"));
        let imported =
            torch_io::import_torch(&pth, &ImportOptions::default(), Device::Cpu).unwrap();
        let (ours, _) = imported.model.forward(&x, false);
        let theirs = read(
            &dir.path().join(format!("{layout}.result.safetensors")),
            "logits",
        );
        common::assert_close(&format!("{layout} {arch}"), &ours, &theirs);
        out.push(imported);
    }
    (out, dir)
}

#[test]
fn imports_every_layout_with_identical_logits() {
    let layouts = [
        "plain",
        "wrapped",
        "module",
        "legacy",
        "protocol4",
        "pruned",
    ];
    let (imported, dir) = import_layouts(&layouts, "resnet20", 7, 8);
    for (layout, imp) in layouts.iter().zip(&imported) {
        assert_eq!(imp.model.spec.arch, Arch::Resnet20, "{layout}");
        assert_eq!(imp.model.spec.num_classes, 7, "{layout}");
        // The file's normalisation buffers, not the data set's defaults.
        assert!(
            (imp.model.spec.mean[0] - 0.3).abs() < 1e-6
                && (imp.model.spec.std[2] - 0.3).abs() < 1e-6
        );
        assert_eq!(imp.mask.is_some(), *layout == "pruned", "{layout}");
    }

    // The pruned model imports with exactly PyTorch's zero set.
    let pruned = &imported[5];
    let mask = pruned.mask.as_ref().expect("the pruned file has masks");
    let theirs =
        checkpoint::read_safetensors(&dir.path().join("pruned.result.safetensors")).unwrap();
    let vars = pruned.model.vs.variables();
    for name in pruned.model.conv_weight_names() {
        let t = &theirs[&format!("mask.{name}")];
        let ours = &mask.masks[&name];
        assert!(ours.equal(&t.to_kind(Kind::Float)), "{name}: mask differs");
        // Pruned weights are zero, kept weights (drawn from a continuous init) are not.
        let w = &vars[&name];
        assert!(
            w.eq(0.0).equal(&ours.eq(0.0)),
            "{name}: zero set differs from the mask"
        );
    }
    let overall = mask.sparsity().overall;
    assert!(
        (overall - 60.0).abs() < 0.01,
        "global 60 % pruning, got {overall}"
    );
}

#[test]
fn imports_resnet18() {
    let (imported, _dir) = import_layouts(&["plain"], "resnet18", 10, 8);
    assert_eq!(imported[0].model.spec.arch, Arch::Resnet18);
}

#[test]
fn command_writes_checkpoint_and_export_reproduces_logits_in_pytorch() {
    setup_threads();
    let dir = tempfile::tempdir().unwrap();
    let (input, x) = write_input(dir.path(), 3, 8);
    common::run_python(
        "torch_io_ref.py",
        &[
            "save",
            "resnet20",
            "10",
            "3",
            s(&input),
            s(dir.path()),
            "pruned",
        ],
    );
    let pth = dir.path().join("pruned.pth.tar");
    let result = dir.path().join("pruned.result.safetensors");
    let ckpt_path = dir.path().join("imported.safetensors");
    torch_io::run_import_torch(ImportTorchJob {
        input: pth,
        options: ImportOptions {
            arch: Some(Arch::Resnet20),
            num_classes: Some(10),
            dataset: gunlearn::data::DatasetName::Cifar10,
            mask_from_zeros: false,
        },
        output: ckpt_path.clone(),
        device: "cpu".into(),
    })
    .unwrap();
    let ckpt = checkpoint::load(&ckpt_path, Device::Cpu).unwrap();
    assert!((ckpt.info.sparsity - 60.0).abs() < 0.01);
    assert!(ckpt.mask.is_some(), "the mask is stored in the checkpoint");
    let (ours, _) = ckpt.model.forward(&x, false);
    assert!(max_diff(&ours, &read(&result, "logits")) <= 1e-5);

    let outs = ["export.safetensors", "export.pt", "export.pth.tar"];
    let paths: Vec<(PathBuf, PathBuf)> = outs
        .iter()
        .map(|out| {
            (
                dir.path().join(out),
                dir.path().join(format!("{out}.logits.safetensors")),
            )
        })
        .collect();
    let mut args = vec!["load", "resnet20", "10", "3", s(&input)];
    for (path, back) in &paths {
        torch_io::run_export_torch(ExportTorchJob {
            checkpoint: ckpt_path.clone(),
            output: path.clone(),
            device: "cpu".into(),
        })
        .unwrap();
        args.extend([s(path), s(back)]);
    }
    common::run_python("torch_io_ref.py", &args);
    for (path, back) in &paths {
        let d = max_diff(&ours, &read(back, "logits"));
        println!("export {}: max |logit diff| = {d:e}", path.display());
        assert!(
            d <= 1e-5,
            "{}: PyTorch's logits differ by {d}",
            path.display()
        );
    }
    // Our own writer's .pt file reads back through our reader too.
    let again = torch_io::import_torch(
        &dir.path().join("export.pt"),
        &ImportOptions::default(),
        Device::Cpu,
    )
    .unwrap();
    let (ours2, _) = again.model.forward(&x, false);
    assert!(max_diff(&ours, &ours2) == 0.0);
}

#[test]
fn export_of_a_fresh_resnet18_loads_strictly() {
    setup_threads();
    let dir = tempfile::tempdir().unwrap();
    let (input, x) = write_input(dir.path(), 3, 8);
    tch::manual_seed(11);
    let model = Classifier::new(&ModelSpec::cifar10(Arch::Resnet18), Device::Cpu);
    let path = dir.path().join("r18.pt");
    torch_io::export_torch(&model, &path).unwrap();
    let back = dir.path().join("back.safetensors");
    common::run_python(
        "torch_io_ref.py",
        &["load", "resnet18", "10", "3", s(&input), s(&path), s(&back)],
    );
    let (ours, _) = model.forward(&x, false);
    assert!(max_diff(&ours, &read(&back, "logits")) <= 1e-5);
}

#[test]
fn imports_vgg16_bn_with_inferred_arch_and_mask() {
    let (imported, dir) = import_layouts(&["module", "pruned"], "vgg16_bn", 10, 32);
    for imp in &imported {
        assert_eq!(imp.model.spec.arch, Arch::Vgg16Bn);
        assert_eq!(imp.model.spec.num_classes, 10);
        assert_eq!(imp.model.spec.in_channels, 3);
    }
    let pruned = &imported[1];
    let mask = pruned.mask.as_ref().expect("the pruned file has masks");
    assert_eq!(mask.masks.len(), 13);
    let theirs =
        checkpoint::read_safetensors(&dir.path().join("pruned.result.safetensors")).unwrap();
    for name in pruned.model.conv_weight_names() {
        let t = &theirs[&format!("mask.{name}")];
        assert!(
            mask.masks[&name].equal(&t.to_kind(Kind::Float)),
            "{name}: mask differs"
        );
    }
    assert!((mask.sparsity().overall - 60.0).abs() < 0.01);
}

/// PyTorch `torch.save` → `import-torch` → our checkpoint → `export-torch` → PyTorch's strict
/// `load_state_dict` → same logits; and the exported file imports back to the same model.
#[test]
fn vgg16_bn_import_export_round_trip() {
    setup_threads();
    let dir = tempfile::tempdir().unwrap();
    let (input, x) = write_input(dir.path(), 3, 32);
    common::run_python(
        "torch_io_ref.py",
        &[
            "save",
            "vgg16_bn",
            "10",
            "3",
            s(&input),
            s(dir.path()),
            "pruned",
        ],
    );
    let ckpt_path = dir.path().join("imported.safetensors");
    torch_io::run_import_torch(ImportTorchJob {
        input: dir.path().join("pruned.pth.tar"),
        options: ImportOptions {
            arch: None,
            num_classes: None,
            dataset: gunlearn::data::DatasetName::Cifar10,
            mask_from_zeros: false,
        },
        output: ckpt_path.clone(),
        device: "cpu".into(),
    })
    .unwrap();
    let ckpt = checkpoint::load(&ckpt_path, Device::Cpu).unwrap();
    assert_eq!(ckpt.info.model.arch, Arch::Vgg16Bn);
    assert!((ckpt.info.sparsity - 60.0).abs() < 0.01);
    let (ours, _) = ckpt.model.forward(&x, false);
    let result = dir.path().join("pruned.result.safetensors");
    common::assert_close("imported", &ours, &read(&result, "logits"));

    let mut args = vec!["load", "vgg16_bn", "10", "3", s(&input)];
    let outs: Vec<(PathBuf, PathBuf)> = ["export.pth.tar", "export.safetensors"]
        .iter()
        .map(|o| {
            (
                dir.path().join(o),
                dir.path().join(format!("{o}.logits.safetensors")),
            )
        })
        .collect();
    for (path, back) in &outs {
        torch_io::run_export_torch(ExportTorchJob {
            checkpoint: ckpt_path.clone(),
            output: path.clone(),
            device: "cpu".into(),
        })
        .unwrap();
        args.extend([s(path), s(back)]);
    }
    common::run_python("torch_io_ref.py", &args);
    for (path, back) in &outs {
        common::assert_close(&path.display().to_string(), &ours, &read(back, "logits"));
    }
    // Back through import-torch: the zero set becomes the mask again, logits unchanged.
    let again = torch_io::import_torch(
        &outs[0].0,
        &ImportOptions {
            mask_from_zeros: true,
            ..ImportOptions::default()
        },
        Device::Cpu,
    )
    .unwrap();
    assert_eq!(again.model.spec.arch, Arch::Vgg16Bn);
    let (ours2, _) = again.model.forward(&x, false);
    assert!(max_diff(&ours, &ours2) == 0.0);
    let mask = again.mask.expect("mask from zeros");
    let first = ckpt.mask.as_ref().expect("stored mask");
    for (name, m) in &first.masks {
        assert!(mask.masks[name].equal(m), "{name}: mask changed");
    }
}

#[test]
fn a_single_linear_vgg_head_is_named_in_the_error() {
    setup_threads();
    let dir = tempfile::tempdir().unwrap();
    let model = Classifier::new(&ModelSpec::cifar10(Arch::Vgg16Bn), Device::Cpu);
    // The reference's vgg16_bn_lth layout: one `classifier` Linear instead of three.
    let tensors: Vec<(String, Tensor)> = torch_io::export_tensors(&model)
        .into_iter()
        .filter(|(k, _)| !k.starts_with("classifier."))
        .chain([
            (
                "classifier.weight".to_string(),
                Tensor::zeros([10, 512], (Kind::Float, Device::Cpu)),
            ),
            (
                "classifier.bias".to_string(),
                Tensor::zeros([10], (Kind::Float, Device::Cpu)),
            ),
        ])
        .collect();
    let path = dir.path().join("lth.pt");
    write_pt(&path, tensors);
    let e = import_err(&path, &ImportOptions::default());
    assert!(
        e.contains("vgg16_bn_lth") && e.contains("classifier.weight"),
        "{e}"
    );
    // With --arch vgg16_bn the strict key check names the first missing tensor.
    let e = import_err(
        &path,
        &ImportOptions {
            arch: Some(Arch::Vgg16Bn),
            ..ImportOptions::default()
        },
    );
    assert!(e.contains("missing key \"classifier.4.weight\""), "{e}");
}

fn import_err(path: &Path, opts: &ImportOptions) -> String {
    match torch_io::import_torch(path, opts, Device::Cpu) {
        Ok(_) => panic!("{} imported", path.display()),
        Err(e) => format!("{e:#}"),
    }
}

/// Writes `tensors` with our torch.save writer (a faithful zip/pickle, checked above).
fn write_pt(path: &Path, tensors: Vec<(String, Tensor)>) {
    torch_io::archive::write_state_dict(path, &tensors).unwrap();
}

#[test]
fn bad_input_gives_clear_errors() {
    setup_threads();
    let dir = tempfile::tempdir().unwrap();
    let opts = ImportOptions::default();

    let junk = dir.path().join("junk.pth");
    std::fs::write(&junk, b"hello world, not a checkpoint").unwrap();
    let e = import_err(&junk, &opts);
    assert!(e.contains("not a PyTorch checkpoint"), "{e}");

    let badzip = dir.path().join("bad.pth");
    std::fs::write(&badzip, b"PK\x03\x04garbage").unwrap();
    let e = import_err(&badzip, &opts);
    assert!(e.contains("zip"), "{e}");

    let truncated = dir.path().join("trunc.pth");
    std::fs::write(&truncated, [0x80u8, 2, b'}', b'q', 0, b'(']).unwrap();
    let e = import_err(&truncated, &opts);
    assert!(e.contains("pickle"), "{e}");

    let model = Classifier::new(&ModelSpec::cifar10(Arch::Resnet20), Device::Cpu);
    let full = torch_io::export_tensors(&model);

    let missing = dir.path().join("missing.pt");
    write_pt(
        &missing,
        full.iter()
            .filter(|(k, _)| k != "layer2.1.bn1.running_var")
            .map(|(k, t)| (k.clone(), t.shallow_clone()))
            .collect(),
    );
    let e = import_err(&missing, &opts);
    assert!(
        e.contains("missing key \"layer2.1.bn1.running_var\""),
        "{e}"
    );

    let shape = dir.path().join("shape.pt");
    let mut wrong: Vec<(String, Tensor)> = full
        .iter()
        .map(|(k, t)| (k.clone(), t.shallow_clone()))
        .collect();
    for (k, t) in wrong.iter_mut() {
        if k == "layer3.0.conv1.weight" {
            *t = Tensor::zeros([64, 32, 3, 1], (Kind::Float, Device::Cpu));
        }
    }
    write_pt(&shape, wrong);
    let e = import_err(&shape, &opts);
    assert!(
        e.contains("\"layer3.0.conv1.weight\" has shape [64, 32, 3, 1]"),
        "{e}"
    );

    let classes = dir.path().join("classes.pt");
    write_pt(
        &classes,
        full.iter()
            .map(|(k, t)| (k.clone(), t.shallow_clone()))
            .collect(),
    );
    let e = import_err(
        &classes,
        &ImportOptions {
            num_classes: Some(100),
            ..ImportOptions::default()
        },
    );
    assert!(
        e.contains("fc.weight") && e.contains("--num_classes is 100"),
        "{e}"
    );

    // A ResNet-20 file read as ResNet-18: the first missing layer names the key.
    let e = import_err(
        &classes,
        &ImportOptions {
            arch: Some(Arch::Resnet18),
            ..ImportOptions::default()
        },
    );
    assert!(e.contains("missing key") || e.contains("has shape"), "{e}");

    let extra = dir.path().join("extra.pt");
    let mut more: Vec<(String, Tensor)> = full
        .iter()
        .map(|(k, t)| (k.clone(), t.shallow_clone()))
        .collect();
    more.push((
        "classifier.weight".into(),
        Tensor::zeros([2, 2], (Kind::Float, Device::Cpu)),
    ));
    write_pt(&extra, more);
    let e = import_err(&extra, &opts);
    assert!(e.contains("unexpected key \"classifier.weight\""), "{e}");

    let orphan = dir.path().join("orphan.pt");
    let mut reparam: Vec<(String, Tensor)> = full
        .iter()
        .map(|(k, t)| (k.clone(), t.shallow_clone()))
        .collect();
    for (k, _) in reparam.iter_mut() {
        if k == "conv1.weight" {
            *k = "conv1.weight_orig".into();
        }
    }
    write_pt(&orphan, reparam);
    let e = import_err(&orphan, &opts);
    assert!(e.contains("\"conv1.weight_mask\""), "{e}");

    let e = gunlearn::model::Arch::parse("vgg16")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("unknown architecture \"vgg16\"")
            && e.contains("resnet18")
            && e.contains("vgg16_bn"),
        "{e}"
    );
}

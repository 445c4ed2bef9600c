//! VGG-16-BN (the reference's CIFAR `vgg16_bn`): parameter count, names and shapes against the
//! PyTorch module (tests/python/vgg_ref.py → bench/reference.py), init statistics, logit and
//! feature parity in eval and train mode, masks through a training step, the minimum input size.

mod common;

use gunlearn::model::mask::Mask;
use gunlearn::model::{Arch, Classifier, ModelSpec};
use std::collections::HashMap;
use std::process::Command;
use tch::nn::OptimizerConfig;
use tch::{nn, Device, Kind, Tensor};

/// Pins libtorch's intra-op threads (the test machine's cores are shared).
fn setup_threads() {
    common::pin_threads();
}

fn spec(num_classes: usize, in_channels: usize) -> ModelSpec {
    ModelSpec {
        arch: Arch::Vgg16Bn,
        num_classes,
        in_channels,
        mean: vec![0.45; in_channels],
        std: vec![0.25; in_channels],
    }
}

/// What the reference module reports about a fresh model of its own.
#[derive(serde::Deserialize)]
struct RefInit {
    num_parameters: usize,
    /// name → [numel, mean, std, max |value|]
    stats: HashMap<String, [f64; 4]>,
}

fn reference_init(classes: usize, in_channels: usize) -> RefInit {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("init.json");
    let (c, i) = (classes.to_string(), in_channels.to_string());
    common::run_python("vgg_ref.py", &["init", &c, &i, "5", out.to_str().unwrap()]);
    serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap()
}

#[test]
fn names_aliases_and_serialisation() {
    for name in ["vgg16_bn", "vgg16bn", "vgg16-bn", "VGG16_BN"] {
        assert_eq!(Arch::parse(name).unwrap(), Arch::Vgg16Bn, "{name}");
    }
    assert_eq!(Arch::Vgg16Bn.name(), "vgg16_bn");
    assert_eq!(
        serde_json::to_string(&Arch::Vgg16Bn).unwrap(),
        "\"vgg16_bn\""
    );
    assert_eq!(
        serde_json::from_str::<Arch>("\"vgg16_bn\"").unwrap(),
        Arch::Vgg16Bn
    );
    // The ResNets keep their names.
    assert_eq!(
        serde_json::to_string(&Arch::Resnet20).unwrap(),
        "\"resnet20\""
    );
    let err = format!("{}", Arch::parse("vgg19").unwrap_err());
    assert!(err.contains("vgg16_bn"), "{err}");
}

#[test]
fn parameter_count_names_and_shapes_match_pytorch() {
    setup_threads();
    let m = Classifier::new(&ModelSpec::cifar10(Arch::Vgg16Bn), Device::Cpu);
    let theirs = reference_init(10, 3);
    println!("VGG-16-BN, 10 classes: {} parameters", m.num_parameters());
    assert_eq!(m.num_parameters(), theirs.num_parameters);
    // The same number, checked by hand and against PyTorch 2.11 (bench/reference.py and the
    // structure of the reference's models/VGG.py):
    //   13 convs (no bias): 3·64·9 + 64·64·9 + 64·128·9 + 128·128·9 + 128·256·9 + 2·256·256·9
    //     + 256·512·9 + 5·512·512·9                                          = 14 710 464
    //   13 BN: 2·(2·64 + 2·128 + 3·256 + 6·512)                              =      8 448
    //   Linear 2048·256 + 256, 256·256 + 256, 256·10 + 10                     =    592 906
    assert_eq!(m.num_parameters(), 15_311_818);
    assert_eq!(m.feature_dim(), 256);
    let convs = m.conv_weight_names();
    assert_eq!(convs.len(), 13);
    assert_eq!(convs[0], "features.0.weight");
    assert_eq!(convs[12], "features.40.weight");

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("keys.json");
    common::run_python(
        "vgg_ref.py",
        &["keys", "vgg16_bn", "10", "3", out.to_str().unwrap()],
    );
    let keys: Vec<(String, Vec<i64>)> =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let mut theirs: Vec<(String, Vec<i64>)> = keys
        .into_iter()
        .filter(|(k, _)| !k.ends_with("num_batches_tracked"))
        .collect();
    theirs.sort();
    let mut ours: Vec<(String, Vec<i64>)> =
        m.vs.variables()
            .into_iter()
            .map(|(k, v)| (k, v.size()))
            .collect();
    ours.sort();
    assert_eq!(ours, theirs);
    // Every 4-d parameter of PyTorch's module is a conv weight we prune, in slot order.
    let mut conv_shapes: Vec<&String> = theirs
        .iter()
        .filter(|(_, s)| s.len() == 4)
        .map(|(k, _)| k)
        .collect();
    let slot = |k: &String| -> usize { k.split('.').nth(1).unwrap().parse().unwrap() };
    conv_shapes.sort_by_key(|k| slot(k));
    assert_eq!(conv_shapes, convs.iter().collect::<Vec<_>>());
}

#[test]
fn output_shapes_and_channels() {
    setup_threads();
    for (c, h, w, classes) in [
        (3usize, 32i64, 32i64, 10usize),
        (1, 28, 28, 7),
        (3, 16, 16, 100),
        (1, 16, 40, 2),
    ] {
        let m = Classifier::new(&spec(classes, c), Device::Cpu);
        let x = Tensor::rand([2, c as i64, h, w], (Kind::Float, Device::Cpu));
        for train in [false, true] {
            let (logits, feats) = tch::no_grad(|| m.forward(&x, train));
            assert_eq!(logits.size(), vec![2, classes as i64], "{c}×{h}×{w}");
            assert_eq!(feats.size(), vec![2, 256]);
            assert_eq!(logits.isfinite().all().int64_value(&[]), 1);
            // The features are the last Linear's input: post-ReLU.
            assert!(feats.min().double_value(&[]) >= 0.0);
        }
    }
}

#[test]
fn too_small_inputs_are_a_clear_error() {
    setup_threads();
    let s = spec(10, 1);
    s.check_input_size(16, 16).unwrap();
    s.check_input_size(28, 28).unwrap();
    for (h, w) in [(8, 8), (15, 32), (32, 15)] {
        let err = format!("{}", s.check_input_size(h, w).unwrap_err());
        assert!(
            err.contains("vgg16_bn") && err.contains("at least 16×16") && err.contains("resnet"),
            "{err}"
        );
    }
    // The ResNets take any size.
    ModelSpec::cifar10(Arch::Resnet20)
        .check_input_size(1, 1)
        .unwrap();

    // The model itself refuses with the same message rather than libtorch's.
    let m = Classifier::new(&s, Device::Cpu);
    let x = Tensor::rand([2, 1, 8, 8], (Kind::Float, Device::Cpu));
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| m.forward(&x, false)))
        .expect_err("8×8 input must be refused");
    let msg = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("at least 16×16"), "{msg}");

    // Where a data set meets the architecture (train, prune): the embedded 8×8 digits.
    let ds = gunlearn::data::load(gunlearn::data::DatasetName::Digits, None).unwrap();
    let err = format!(
        "{:#}",
        gunlearn::jobs::model_spec(&ds, Arch::Vgg16Bn).unwrap_err()
    );
    assert!(
        err.contains("at least 16×16") && err.contains("8×8"),
        "{err}"
    );
    gunlearn::jobs::model_spec(&ds, Arch::Resnet20).unwrap();
}

/// `gunlearn eval` with a VGG checkpoint on the 8×8 digits: refused before any forward pass.
#[test]
fn a_vgg_checkpoint_on_digits_is_refused_by_the_commands() {
    setup_threads();
    let dir = tempfile::tempdir().unwrap();
    let spec = ModelSpec {
        arch: Arch::Vgg16Bn,
        num_classes: 10,
        in_channels: 1,
        mean: vec![0.3],
        std: vec![0.3],
    };
    let model = Classifier::new(&spec, Device::Cpu);
    let info = gunlearn::checkpoint::ModelInfo {
        format: gunlearn::checkpoint::FORMAT.into(),
        model: spec,
        dataset: gunlearn::data::DatasetName::Digits,
        seed: 0,
        epoch: 0,
        accuracy: Default::default(),
        sparsity: 0.0,
        device: "cpu".into(),
        produced_by: "test".into(),
        extra: serde_json::json!({}),
    };
    let ckpt = dir.path().join("ckpt");
    gunlearn::checkpoint::save(&ckpt, "model", &model, None, &info).unwrap();
    let json = std::fs::read_to_string(ckpt.join("model.json")).unwrap();
    assert!(json.contains("\"vgg16_bn\""), "{json}");
    let out = Command::new(env!("CARGO_BIN_EXE_gunlearn"))
        .args(["eval", "--model", ckpt.to_str().unwrap()])
        .args(["--dataset", "digits", "--device", "cpu", "--threads", "1"])
        .args(["--save_dir", dir.path().join("out").to_str().unwrap()])
        .env("GUNLEARN_LOG", "warn")
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "eval should fail");
    assert!(
        err.contains("at least 16×16") && err.contains("on digits") && !err.contains("panicked"),
        "{err}"
    );
}

#[test]
fn init_statistics_match_the_reference() {
    setup_threads();
    tch::manual_seed(7);
    let m = Classifier::new(&ModelSpec::cifar10(Arch::Vgg16Bn), Device::Cpu);
    let theirs = reference_init(10, 3);
    let vars = m.vs.variables();
    for name in m.conv_weight_names() {
        let w = &vars[&name];
        let s = w.size();
        let want = (2.0 / (s[0] * s[2] * s[3]) as f64).sqrt();
        let got = w.std(true).double_value(&[]);
        let mean = w.mean(Kind::Float).double_value(&[]);
        let reference = theirs.stats[&name][2];
        // The smallest conv (features.0, 1 728 values) has a sampling error of ~1.7 %.
        assert!(
            (got / want - 1.0).abs() < 0.06,
            "{name}: std {got} vs {want}"
        );
        assert!(
            (reference / want - 1.0).abs() < 0.06,
            "{name}: PyTorch's std {reference} vs {want}"
        );
        assert!(mean.abs() < 0.15 * want, "{name}: mean {mean}");
        assert!(!vars.contains_key(&name.replace("weight", "bias")));
    }
    for layer in ["classifier.0", "classifier.2", "classifier.4"] {
        let w = &vars[&format!("{layer}.weight")];
        let got = w.std(true).double_value(&[]);
        let reference = theirs.stats[&format!("{layer}.weight")][2];
        // classifier.4 has 2 560 values: sampling error of the std ~1.4 %.
        assert!((got / 0.01 - 1.0).abs() < 0.06, "{layer}: std {got}");
        assert!(
            (reference / 0.01 - 1.0).abs() < 0.06,
            "{layer}: PyTorch's std {reference}"
        );
        assert!(w.mean(Kind::Float).double_value(&[]).abs() < 0.001);
        let b = &vars[&format!("{layer}.bias")];
        assert_eq!(b.abs().max().double_value(&[]), 0.0, "{layer}.bias");
        assert_eq!(theirs.stats[&format!("{layer}.bias")][3], 0.0);
    }
    // BatchNorm: weight 1, bias 0, running statistics 0 / 1.
    for slot in [1, 4, 8, 41] {
        let p = format!("features.{slot}");
        let width = vars[&format!("{p}.weight")].numel() as f64;
        let sum = |n: &str| vars[&format!("{p}.{n}")].sum(Kind::Float).double_value(&[]);
        assert_eq!(sum("weight"), width, "{p}");
        assert_eq!(sum("running_var"), width, "{p}");
        assert_eq!(
            vars[&format!("{p}.bias")]
                .abs()
                .sum(Kind::Float)
                .double_value(&[]),
            0.0
        );
        assert_eq!(
            vars[&format!("{p}.running_mean")]
                .abs()
                .sum(Kind::Float)
                .double_value(&[]),
            0.0
        );
    }
    assert!(!vars["normalize.mean"].requires_grad());
    // Same seed, same weights.
    tch::manual_seed(7);
    let again = Classifier::new(&ModelSpec::cifar10(Arch::Vgg16Bn), Device::Cpu);
    for (k, v) in again.vs.variables() {
        assert!(v.equal(&vars[&k]), "{k} differs under the same seed");
    }
}

/// Our weights, saved as safetensors, loaded by name into the PyTorch module: same logits,
/// features and updated running statistics, in eval and in train mode.
fn parity(classes: usize, in_channels: usize, hw: i64) {
    setup_threads();
    tch::manual_seed(3);
    let mut m = Classifier::new(&spec(classes, in_channels), Device::Cpu);
    // PyTorch's side runs N×C×H×W: the same kernels, so only summation order can differ
    // (channels-last is compared with float64 in tests/model_resnet.rs).
    m.layout = gunlearn::model::Layout::Nchw;
    // Train-mode passes make the running statistics non-trivial (fresh ones are 0 / 1), and
    // larger head weights make the logits of order 1 so that rounding shows.
    for _ in 0..2 {
        let x = Tensor::rand([4, in_channels as i64, hw, hw], (Kind::Float, Device::Cpu)) * 0.8;
        let _ = tch::no_grad(|| m.forward(&x, true));
    }
    tch::no_grad(|| {
        for (k, v) in m.vs.variables() {
            if k.starts_with("classifier.") && k.ends_with(".weight") {
                let _ = v.shallow_clone().g_mul_scalar_(10.0);
            }
        }
    });
    common::assert_pytorch_parity(&m, "vgg_ref.py", hw);
}

#[test]
fn parity_with_pytorch_rgb_32() {
    parity(10, 3, 32);
}

/// 28×28 grey images: the pools leave 1×1, which the 2×2 average pool repeats, as PyTorch does.
#[test]
fn parity_with_pytorch_grey_28() {
    parity(7, 1, 28);
}

#[test]
fn masks_cover_every_conv_and_survive_a_training_step() {
    setup_threads();
    tch::manual_seed(5);
    let m = Classifier::new(&spec(3, 1), Device::Cpu);
    let vars = m.vs.variables();
    // One conv pruned by hand (every other weight), the rest dense.
    let target = "features.24.weight";
    let mut mask = Mask::dense(&m);
    assert_eq!(mask.masks.len(), 13);
    let w = &vars[target];
    let keep = Tensor::arange(w.numel() as i64, (Kind::Int64, Device::Cpu))
        .remainder(2)
        .to_kind(Kind::Float)
        .view(w.size().as_slice());
    mask.masks.insert(target.to_string(), keep.shallow_clone());
    mask.apply_to_weights(&m.vs);
    let s = mask.sparsity();
    let pruned_here = s.per_layer.iter().find(|(n, _)| n == target).unwrap().1;
    assert_eq!(pruned_here, 50.0);

    let mut opt = nn::Sgd {
        momentum: 0.9,
        dampening: 0.0,
        wd: 5e-4,
        nesterov: false,
    }
    .build(&m.vs, 0.1)
    .unwrap();
    let before = vars["features.0.weight"].copy();
    for _ in 0..2 {
        let x = Tensor::rand([4, 1, 16, 16], (Kind::Float, Device::Cpu));
        let y = Tensor::randint(3, [4], (Kind::Int64, Device::Cpu));
        let (logits, _) = m.forward(&x, true);
        opt.zero_grad();
        logits.cross_entropy_for_logits(&y).backward();
        mask.apply_to_grads(&m.vs);
        opt.step();
        mask.apply_to_weights(&m.vs);
    }
    let w = &vars[target];
    assert!(w.eq(0.0).equal(&keep.eq(0.0)), "zero set changed");
    assert!(
        !vars["features.0.weight"].equal(&before),
        "the step trained"
    );

    // Global magnitude pruning spans all 13 convs and hits the exact count.
    let total: i64 = m
        .conv_weight_names()
        .iter()
        .map(|n| vars[n].numel() as i64)
        .sum();
    let g = Mask::global_magnitude(&m, 0.9, None);
    let zeros: i64 = g
        .masks
        .values()
        .map(|t| t.eq(0.0).sum(Kind::Int64).int64_value(&[]))
        .sum();
    assert_eq!(zeros, (0.9 * total as f64).round() as i64);
    assert_eq!(g.sparsity().per_layer.len(), 13);
}

//! ResNet-18 / ResNet-20: parameter counts, shapes, PyTorch names, init statistics, and logit
//! parity with a PyTorch reference module (tests/python/resnet_ref.py) loading our weights.

mod common;

use gunlearn::model::{Arch, Classifier, ModelSpec};
use tch::{Device, Kind, Tensor};

/// Pins libtorch's intra-op threads (the test machine's cores are shared).
fn setup_threads() {
    common::pin_threads();
}

fn spec(arch: Arch, num_classes: usize, in_channels: usize) -> ModelSpec {
    ModelSpec {
        arch,
        num_classes,
        in_channels,
        mean: vec![0.45; in_channels],
        std: vec![0.25; in_channels],
    }
}

#[test]
fn parameter_counts() {
    setup_threads();
    let r18 = Classifier::new(&ModelSpec::cifar10(Arch::Resnet18), Device::Cpu);
    assert_eq!(r18.num_parameters(), 11_173_962);
    assert_eq!(r18.feature_dim(), 512);
    // ResNet-20, 10 classes, 1×1-conv+BN shortcuts, derived by hand:
    //   stem conv 3·16·9 = 432, bn 2·16 = 32                                 →    464
    //   layer1: 3 × (2 convs 16·16·9 = 2·2304, 2 BN 2·2·16 = 64)             → 14 016
    //   layer2: block0 16·32·9 + 32·32·9 + 2 BN 128 + ds 16·32 + BN 64 = 14 528,
    //           2 × (2·9216 + 128) = 37 120                                  → 51 648
    //   layer3: block0 32·64·9 + 64·64·9 + 256 + ds 32·64 + 128 = 57 728,
    //           2 × (2·36 864 + 256) = 147 968                               → 205 696
    //   fc 64·10 + 10                                                        →    650
    //   total                                                                  272 474
    let r20 = Classifier::new(&ModelSpec::cifar10(Arch::Resnet20), Device::Cpu);
    println!("ResNet-20 trainable parameters: {}", r20.num_parameters());
    assert_eq!(r20.num_parameters(), 272_474);
    assert_eq!(r20.feature_dim(), 64);
    // Stem + 6 convs in layer1 + 7 in layer2 and layer3 (6 + 1 shortcut each) = 21.
    assert_eq!(r20.conv_weight_names().len(), 21);
    // ResNet-18: stem + 16 block convs + 3 shortcut convs.
    assert_eq!(r18.conv_weight_names().len(), 20);
    assert_eq!(r18.conv_weight_names()[0], "conv1.weight");
    assert_eq!(r18.conv_weight_names()[19], "layer4.1.conv2.weight");
    assert!(r18
        .conv_weight_names()
        .contains(&"layer3.0.downsample.0.weight".to_string()));
}

#[test]
fn output_shapes() {
    setup_threads();
    for (arch, fd) in [(Arch::Resnet18, 512usize), (Arch::Resnet20, 64)] {
        for (c, h, classes) in [(3usize, 32i64, 10usize), (1, 28, 7), (1, 8, 3)] {
            let m = Classifier::new(&spec(arch, classes, c), Device::Cpu);
            let x = Tensor::rand([2, c as i64, h, h], (Kind::Float, Device::Cpu));
            for train in [false, true] {
                let (logits, feats) = m.forward(&x, train);
                assert_eq!(
                    logits.size(),
                    vec![2, classes as i64],
                    "{arch:?} {c}×{h}×{h}"
                );
                assert_eq!(feats.size(), vec![2, fd as i64]);
                assert_eq!(logits.isfinite().all().int64_value(&[]), 1);
            }
        }
    }
}

#[test]
fn invalid_spec_is_an_error() {
    let mut s = ModelSpec::cifar10(Arch::Resnet20);
    s.std = vec![0.2, 0.0, 0.3];
    assert!(Classifier::try_new(&s, Device::Cpu).is_err());
    s.std = vec![0.2];
    let err = Classifier::try_new(&s, Device::Cpu).err().unwrap();
    assert!(format!("{err}").contains("in_channels"));
}

#[test]
fn init_statistics_and_reproducibility() {
    setup_threads();
    tch::manual_seed(7);
    let m = Classifier::new(&ModelSpec::cifar10(Arch::Resnet18), Device::Cpu);
    let vars = m.vs.variables();
    for name in m.conv_weight_names() {
        let w = &vars[&name];
        let s = w.size();
        let fan_out = (s[0] * s[2] * s[3]) as f64;
        let want = (2.0 / fan_out).sqrt();
        let got = w.std(true).double_value(&[]);
        let mean = w.mean(Kind::Float).double_value(&[]);
        // The smallest conv (stem, 1 728 values) has a sampling error of the std of ~1.7 %.
        assert!(
            (got / want - 1.0).abs() < 0.06,
            "{name}: std {got} vs {want}"
        );
        assert!(mean.abs() < 0.15 * want, "{name}: mean {mean}");
    }
    let fcw = &vars["fc.weight"];
    let bound = 1.0 / 512f64.sqrt();
    assert!(fcw.abs().max().double_value(&[]) <= bound);
    // Uniform on ±b has std b/√3.
    assert!((fcw.std(true).double_value(&[]) / (bound / 3f64.sqrt()) - 1.0).abs() < 0.05);
    assert!(vars["fc.bias"].abs().max().double_value(&[]) <= bound);
    assert!(vars["fc.bias"].abs().max().double_value(&[]) > 0.0);
    assert_eq!(
        vars["layer1.0.bn1.weight"]
            .sum(Kind::Float)
            .double_value(&[]),
        64.0
    );
    assert_eq!(
        vars["layer1.0.bn1.bias"]
            .abs()
            .sum(Kind::Float)
            .double_value(&[]),
        0.0
    );
    assert_eq!(
        vars["bn1.running_var"].sum(Kind::Float).double_value(&[]),
        64.0
    );
    assert_eq!(vars["normalize.mean"].size(), vec![3]);
    assert!(!vars["normalize.mean"].requires_grad());

    // Same seed, same weights; another seed, other weights.
    tch::manual_seed(7);
    let m2 = Classifier::new(&ModelSpec::cifar10(Arch::Resnet18), Device::Cpu);
    tch::manual_seed(8);
    let m3 = Classifier::new(&ModelSpec::cifar10(Arch::Resnet18), Device::Cpu);
    let v2 = m2.vs.variables();
    let v3 = m3.vs.variables();
    for (k, v) in &vars {
        assert!(v.equal(&v2[k]), "{k} differs under the same seed");
    }
    assert!(!vars["layer2.0.conv1.weight"].equal(&v3["layer2.0.conv1.weight"]));
}

#[test]
fn variable_names_match_torchvision_reference() {
    setup_threads();
    let dir = tempfile::tempdir().unwrap();
    for arch in [Arch::Resnet18, Arch::Resnet20] {
        let out = dir.path().join("keys.json");
        let arch_s = format!("{arch:?}").to_lowercase();
        common::run_python(
            "resnet_ref.py",
            &["keys", &arch_s, "10", "3", out.to_str().unwrap()],
        );
        let keys: Vec<(String, Vec<i64>)> =
            serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        let mut theirs: Vec<(String, Vec<i64>)> = keys
            .into_iter()
            .filter(|(k, _)| !k.ends_with("num_batches_tracked"))
            .collect();
        theirs.sort();
        let m = Classifier::new(&ModelSpec::cifar10(arch), Device::Cpu);
        let mut ours: Vec<(String, Vec<i64>)> =
            m.vs.variables()
                .into_iter()
                .map(|(k, v)| (k, v.size()))
                .collect();
        ours.sort();
        assert_eq!(ours, theirs, "{arch:?}");
    }
}

/// Our weights, saved as safetensors, loaded by name into the PyTorch reference: same logits,
/// features and running statistics (see [`common::assert_pytorch_parity`]).
fn parity(arch: Arch, in_channels: usize, hw: i64) {
    setup_threads();
    tch::manual_seed(3);
    let m = Classifier::new(&spec(arch, 10, in_channels), Device::Cpu);
    // A few train-mode passes make the running statistics non-trivial, so that the eval-mode
    // comparison exercises them (fresh ones are 0/1).
    for _ in 0..3 {
        let x = Tensor::rand([4, in_channels as i64, hw, hw], (Kind::Float, Device::Cpu)) * 0.8;
        let _ = tch::no_grad(|| m.forward(&x, true));
    }
    common::assert_pytorch_parity(&m, "resnet_ref.py", hw);
}

#[test]
fn parity_resnet18_with_pytorch() {
    parity(Arch::Resnet18, 3, 16);
}

#[test]
fn parity_resnet20_with_pytorch() {
    parity(Arch::Resnet20, 1, 12);
}

/// `--layout` changes how activations are stored, not what is computed: logits, features and
/// the parameters' gradients in channels-last are as close to a float64 computation as the
/// N×C×H×W ones are (summation order is all that differs), in train and eval mode.
#[test]
fn layouts_compute_the_same_values() {
    use gunlearn::model::{Layout, RunningStats};
    tch::manual_seed(7);
    let spec = ModelSpec::cifar10(Arch::Resnet20);
    let mut model = Classifier::new(&spec, Device::Cpu);
    assert_eq!(model.layout, Layout::ChannelsLast, "auto on the CPU");
    let images = Tensor::rand([16, 3, 32, 32], (Kind::Float, Device::Cpu));
    let labels = Tensor::randint(10, [16], (Kind::Int64, Device::Cpu));
    // Each pass starts from the same running statistics.
    let stats = RunningStats::save(&model);
    let pass = |model: &Classifier, images: &Tensor| -> Vec<Tensor> {
        let (eval_logits, _) = tch::no_grad(|| model.forward(images, false));
        for v in model.vs.trainable_variables() {
            let mut g = v.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
        let (logits, features) = model.forward(images, true);
        logits.cross_entropy_for_logits(&labels).backward();
        stats.restore();
        let mut out = vec![eval_logits, logits.detach(), features.detach()];
        out.extend(
            model
                .vs
                .trainable_variables()
                .iter()
                .map(|v| v.grad().copy()),
        );
        out.into_iter().map(|t| t.to_kind(Kind::Double)).collect()
    };
    model.layout = Layout::Nchw;
    let nchw = pass(&model, &images);
    model.layout = Layout::ChannelsLast;
    let cl = pass(&model, &images);
    model.vs.double();
    model.layout = Layout::Nchw;
    let exact = pass(&model, &images.to_kind(Kind::Double));
    // The worst error relative to each tensor's largest value, over the outputs and over the
    // gradients (BatchNorm's batch statistics make some float32 gradients cancel down to ~10⁻³
    // relative in either layout).
    let worst = |ours: &[Tensor], range: std::ops::Range<usize>| -> f64 {
        range
            .map(|i| {
                let scale = exact[i].abs().max().double_value(&[]);
                (&ours[i] - &exact[i]).abs().max().double_value(&[]) / scale
            })
            .fold(0.0, f64::max)
    };
    for (what, range) in [("outputs", 0..3), ("gradients", 3..exact.len())] {
        let (err_cl, err_nchw) = (worst(&cl, range.clone()), worst(&nchw, range));
        println!("{what}: worst relative error channels-last {err_cl:.2e}, N×C×H×W {err_nchw:.2e}");
        assert!(
            err_cl <= 2.0 * err_nchw + 1e-5,
            "{what}: channels-last is {err_cl:e} from float64, N×C×H×W {err_nchw:e}"
        );
    }
}

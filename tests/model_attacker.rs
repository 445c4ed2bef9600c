//! Attacker parity with the reference network run by the reference code itself
//! (`shared/reference/attacker-parity-c10.safetensors`): outputs, loss and every gradient.

mod common;

use gunlearn::model::attacker::Attacker;
use std::collections::HashMap;
use std::path::PathBuf;
use tch::{Device, Kind, Tensor};

/// Pins libtorch's intra-op threads (the test machine's cores are shared).
fn setup_threads() {
    common::pin_threads();
}

fn parity_path() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/reference/attacker-parity-c10.safetensors");
    assert!(p.exists(), "{} missing", p.display());
    p
}

fn parity() -> HashMap<String, Tensor> {
    Tensor::read_safetensors(parity_path())
        .unwrap()
        .into_iter()
        .collect()
}

fn loaded(dropout: f64) -> Attacker {
    let mut a = Attacker::new(10, dropout, Device::Cpu);
    a.load_safetensors_prefixed(parity_path(), "weight.")
        .unwrap();
    a
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn names_match_parity_file() {
    let file = parity();
    let a = Attacker::new(10, 0.2, Device::Cpu);
    let mut ours: Vec<(String, Vec<i64>)> =
        a.vs.variables()
            .into_iter()
            .map(|(k, v)| (k, v.size()))
            .collect();
    let mut theirs: Vec<(String, Vec<i64>)> = file
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("weight.").map(|n| (n.to_string(), v.size())))
        .collect();
    ours.sort();
    theirs.sort();
    assert_eq!(ours, theirs);
}

#[test]
fn eval_output_matches_reference() {
    setup_threads();
    let file = parity();
    // Dropout 0.2 as in the reference: eval mode must ignore it.
    let a = loaded(0.2);
    let out = tch::no_grad(|| a.forward(&file["input"], false));
    let d = max_diff(&out, &file["output_eval"]);
    println!("eval max |diff| {d:.3e}");
    assert!(d <= 1e-5, "eval output differs by {d}");
    // Eval is deterministic and leaves the running statistics alone.
    let out2 = tch::no_grad(|| a.forward(&file["input"], false));
    assert!(out.equal(&out2));
    assert!(a.vs.variables()["bn.running_mean"].equal(&file["weight.bn.running_mean"]));
}

#[test]
fn train_output_loss_and_gradients_match_reference() {
    setup_threads();
    let file = parity();
    let a = loaded(0.0);
    let out = a.forward(&file["input"], true);
    let d = max_diff(&out, &file["output_train_no_dropout"]);
    println!("train max |diff| {d:.3e}");
    assert!(d <= 1e-5, "train output differs by {d}");
    let labels = file["labels"].to_kind(Kind::Int64);
    let loss = out.cross_entropy_for_logits(&labels);
    let want = file["loss_train_no_dropout"].double_value(&[0]);
    let got = loss.double_value(&[]);
    assert!((got - want).abs() <= 1e-6, "loss {got} vs {want}");
    loss.backward();
    let vars = a.vs.variables();
    let mut n = 0;
    for v in a.vs.trainable_variables() {
        let name = vars
            .iter()
            .find(|(_, t)| t.data_ptr() == v.data_ptr())
            .unwrap()
            .0;
        let want = &file[&format!("grad.{name}")];
        let g = v.grad();
        // 1e-5 absolute, or relative to the gradient's largest entry when that exceeds 1
        // (observed: ≤ 2e-7 everywhere).
        let scale = want.abs().max().double_value(&[]).max(1.0);
        let d = max_diff(&g, want);
        assert!(
            d <= 1e-5 * scale,
            "grad of {name}: max |diff| {d} (scale {scale})"
        );
        n += 1;
    }
    assert_eq!(n, file.keys().filter(|k| k.starts_with("grad.")).count());
    // Train mode updated the BatchNorm running statistics (momentum 0.1, unbiased variance).
    let x = &file["input"];
    let want_mean = &file["weight.bn.running_mean"] * 0.9 + x.mean_dim(0, false, Kind::Float) * 0.1;
    let want_var = &file["weight.bn.running_var"] * 0.9 + x.var_dim(0, true, false) * 0.1;
    assert!(max_diff(&vars["bn.running_mean"], &want_mean) <= 1e-5);
    assert!(max_diff(&vars["bn.running_var"], &want_var) <= 1e-4);
}

#[test]
fn dropout_is_active_only_in_train_mode() {
    setup_threads();
    let file = parity();
    let a = loaded(0.2);
    tch::manual_seed(1);
    let o1 = tch::no_grad(|| a.forward(&file["input"], true));
    let o2 = tch::no_grad(|| a.forward(&file["input"], true));
    assert!(
        max_diff(&o1, &o2) > 1e-4,
        "dropout 0.2 should make train passes differ"
    );
    let o3 = tch::no_grad(|| a.forward(&file["input"], false));
    let o4 = tch::no_grad(|| a.forward(&file["input"], false));
    assert!(o3.equal(&o4));
}

#[test]
fn fresh_init_and_shapes() {
    setup_threads();
    tch::manual_seed(0);
    let a = Attacker::new(100, 0.2, Device::Cpu);
    let vars = a.vs.variables();
    assert_eq!(vars["fc2.weight"].size(), vec![64, 6400]);
    let b = 1.0 / 6400f64.sqrt();
    assert!(vars["fc2.weight"].abs().max().double_value(&[]) <= b);
    let xb = (6.0f64 / 256.0).sqrt();
    let w = &vars["transformer_encoder.layers.1.self_attn.in_proj_weight"];
    assert!(w.abs().max().double_value(&[]) <= xb);
    assert!((w.std(true).double_value(&[]) / (xb / 3f64.sqrt()) - 1.0).abs() < 0.05);
    let zero = |k: &str| vars[k].abs().max().double_value(&[]) == 0.0;
    assert!(zero("transformer_encoder.layers.0.self_attn.in_proj_bias"));
    assert!(zero("transformer_encoder.layers.0.self_attn.out_proj.bias"));
    assert!(!zero("fc1.bias"));
    let x = Tensor::randn([5, 300], (Kind::Float, Device::Cpu));
    assert_eq!(a.forward(&x, true).size(), vec![5, 2]);
    assert_eq!(a.forward(&x, false).size(), vec![5, 2]);
}

#[test]
fn loading_errors_name_the_tensor() {
    // A C = 10 file does not fit a C = 5 attacker: clear error, weights untouched.
    let mut a = Attacker::new(5, 0.2, Device::Cpu);
    let before = a.vs.variables()["fc1.weight"].copy();
    let err = a
        .load_safetensors_prefixed(parity_path(), "weight.")
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("weight.bn.") || msg.contains("weight.fc2.weight"),
        "{msg}"
    );
    assert!(msg.contains("shape"), "{msg}");
    assert!(a.vs.variables()["fc1.weight"].equal(&before));
    let mut a = Attacker::new(10, 0.2, Device::Cpu);
    let err = a
        .load_safetensors_prefixed(parity_path(), "nope.")
        .unwrap_err();
    assert!(format!("{err:#}").contains("missing"));
    let err = a
        .load_safetensors_prefixed("/nonexistent/a.safetensors", "")
        .unwrap_err();
    assert!(format!("{err:#}").contains("/nonexistent/a.safetensors"));
}

#[test]
fn save_and_reload_roundtrip() {
    setup_threads();
    let file = parity();
    let a = loaded(0.0);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("attacker.safetensors");
    a.vs.save(&p).unwrap();
    let mut b = Attacker::new(10, 0.0, Device::Cpu);
    b.load_safetensors_prefixed(&p, "").unwrap();
    let o = tch::no_grad(|| b.forward(&file["input"], false));
    assert!(max_diff(&o, &file["output_eval"]) <= 1e-5);
}

#[test]
fn fresh_transformer_layers_start_identical() {
    // `nn.TransformerEncoder` deep-copies one initialised layer: the three start equal.
    for classes in [2, 10] {
        let a = Attacker::new(classes, 0.2, Device::Cpu);
        let vars = a.vs.variables();
        let layer0: Vec<(&String, &Tensor)> = vars
            .iter()
            .filter(|(k, _)| k.starts_with("transformer_encoder.layers.0."))
            .collect();
        // in_proj weight and bias, out_proj weight and bias, linear1/2 weight and bias,
        // norm1/2 weight and bias.
        assert_eq!(layer0.len(), 12, "{:?}", vars.keys().collect::<Vec<_>>());
        for (name, value) in layer0 {
            let rest = name.strip_prefix("transformer_encoder.layers.0.").unwrap();
            for i in 1..3 {
                let other = &vars[&format!("transformer_encoder.layers.{i}.{rest}")];
                assert!(
                    other.equal(value),
                    "C = {classes}: layer {i}'s {rest} differs"
                );
            }
        }
        // The weights are random draws, so equal layers can only come from copying one.
        for rest in ["linear1.weight", "self_attn.in_proj_weight"] {
            let w = &vars[&format!("transformer_encoder.layers.0.{rest}")];
            assert!(
                w.std(true).double_value(&[]) > 0.01,
                "{rest} is randomly initialised"
            );
        }
    }
}

//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses a different subset

/// Threads the tests may use (`GUNLEARN_TEST_THREADS`, default 2: the CI machine has 2 cores).
pub fn test_threads() -> usize {
    std::env::var("GUNLEARN_TEST_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

/// Pins libtorch's intra-op threads to [`test_threads`] (its threads busy-wait on shared cores).
pub fn pin_threads() -> usize {
    let n = test_threads();
    tch::set_num_threads(n as i32);
    n
}

/// Runs `tests/python/<script> args…` with the project's venv Python; panics with its output
/// when it fails.
pub fn run_python(script: &str, args: &[&str]) {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let py = root.join(".venv/bin/python");
    let out = std::process::Command::new(&py)
        .arg(root.join("tests/python").join(script))
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run `make test`, which installs the venv)",
                py.display()
            )
        });
    assert!(
        out.status.success(),
        "{script} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Asserts `a` ≈ `b` to 1e-5 of `b`'s largest magnitude (at least 1e-3): both sides run the
/// same libtorch on the same CPU, so only summation order can differ, and float32 rounding
/// scales with the values.
pub fn assert_close(what: &str, a: &tch::Tensor, b: &tch::Tensor) {
    assert_eq!(a.size(), b.size(), "{what}: shapes");
    let scale = b.abs().max().double_value(&[]).max(1e-3);
    let diff = (a - b).abs().max().double_value(&[]);
    if !what.starts_with("after.") {
        println!("{what}: max |diff| {diff:.3e} (scale {scale:.3e})");
    }
    assert!(
        diff <= 1e-5 * scale,
        "{what}: max |diff| {diff} > 1e-5 × {scale}"
    );
}

/// Our weights, saved as safetensors and loaded by name into the PyTorch module of `script`
/// (`script run ARCH C CIN weights input out`, tests/python/resnet_ref.py's protocol): the same
/// logits and features in eval and in train mode, and the same running statistics after the
/// train pass, on a random `hw`×`hw` batch.
pub fn assert_pytorch_parity(model: &gunlearn::model::Classifier, script: &str, hw: i64) {
    use tch::{Device, Kind, Tensor};
    let spec = &model.spec;
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("weights.safetensors");
    model.vs.save(&weights).unwrap();
    let x = Tensor::rand(
        [4, spec.in_channels as i64, hw, hw],
        (Kind::Float, Device::Cpu),
    );
    let input = dir.path().join("input.safetensors");
    Tensor::write_safetensors(&[("input", &x)], &input).unwrap();
    let out = dir.path().join("out.safetensors");
    let path = |p: &std::path::Path| p.to_str().unwrap().to_string();
    run_python(
        script,
        &[
            "run",
            spec.arch.name(),
            &spec.num_classes.to_string(),
            &spec.in_channels.to_string(),
            &path(&weights),
            &path(&input),
            &path(&out),
        ],
    );
    let theirs: std::collections::HashMap<String, Tensor> = Tensor::read_safetensors(&out)
        .unwrap()
        .into_iter()
        .collect();
    let (le, fe) = tch::no_grad(|| model.forward(&x, false));
    let (lt, ft) = tch::no_grad(|| model.forward(&x, true));
    assert_close("logits_eval", &le, &theirs["logits_eval"]);
    assert_close("features_eval", &fe, &theirs["features_eval"]);
    assert_close("logits_train", &lt, &theirs["logits_train"]);
    assert_close("features_train", &ft, &theirs["features_train"]);
    let vars = model.vs.variables();
    let mut n = 0;
    for (k, v) in &theirs {
        if let Some(name) = k.strip_prefix("after.") {
            assert_close(k, &vars[name], v);
            n += 1;
        }
    }
    let bn_layers = vars.keys().filter(|k| k.ends_with("running_mean")).count();
    assert_eq!(n, 2 * bn_layers, "every running mean and variance compared");
}

/// One adversarial iteration's inputs on the CPU: random CIFAR-shaped retain, forget and
/// validation batches of `size` images (10 classes) and their sensitivity noise.
pub fn random_step_inputs(size: i64) -> gunlearn::unlearn::gan::StepInputs {
    use tch::{Device, Kind, Tensor};
    let batch = || gunlearn::data::batches::Batch {
        images: Tensor::rand([size, 3, 32, 32], (Kind::Float, Device::Cpu)),
        labels: Tensor::randint(10, [size], (Kind::Int64, Device::Cpu)),
        indices: (0..size as usize).collect(),
    };
    let (retain, forget, val) = (batch(), batch(), batch());
    let noise_forget = gunlearn::unlearn::gan::sensitivity_noise(&forget.images);
    let noise_val = gunlearn::unlearn::gan::sensitivity_noise(&val.images);
    gunlearn::unlearn::gan::StepInputs {
        retain,
        forget,
        val,
        noise_forget,
        noise_val,
    }
}

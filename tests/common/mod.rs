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

/// A ResNet-20 trained on digits, its data and splits, for tests of what an unlearning method
/// does through the library. The model is trained once per test binary (in a temporary folder)
/// and each [`DigitsFixture::fresh_model`] loads a new copy of it.
pub struct DigitsFixture {
    /// The embedded digits data.
    pub ds: gunlearn::data::DataSet,
    /// Its training images, shared with batch producers.
    pub train_set: std::sync::Arc<gunlearn::data::ImageSet>,
    /// Splits of the requested scenario.
    pub splits: gunlearn::data::splits::Splits,
    /// Class-wise (whole class 3) or random 10 % forgetting.
    pub class_wise: bool,
    /// The trained model's checkpoint file.
    pub model_path: std::path::PathBuf,
}

/// The checkpoint of a ResNet-20 trained 4 epochs on digits (once per test binary).
pub fn digits_model() -> &'static std::path::Path {
    use std::sync::OnceLock;
    static PATH: OnceLock<std::path::PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        use gunlearn::data::{self, splits::*, DatasetName};
        use gunlearn::model::{Arch, Classifier};
        use gunlearn::train::{train, RunOutput, TrainConfig};
        pin_threads();
        let dir = std::env::temp_dir().join(format!("gunlearn-fixture-{}", std::process::id()));
        let ds = data::load(DatasetName::Digits, None).unwrap();
        let splits = make_splits(&ds, &SplitConfig::default()).unwrap();
        let spec = gunlearn::jobs::model_spec(&ds, Arch::Resnet20).unwrap();
        tch::manual_seed(0);
        let model = Classifier::new(&spec, tch::Device::Cpu);
        let cfg = TrainConfig {
            epochs: 4,
            batch_size: 64,
            milestones: vec![3],
            augment: Some(ds.default_augment()),
            ..TrainConfig::default()
        };
        let info = gunlearn::checkpoint::ModelInfo {
            format: gunlearn::checkpoint::FORMAT.into(),
            model: spec,
            dataset: DatasetName::Digits,
            seed: 0,
            epoch: 0,
            accuracy: Default::default(),
            sparsity: 0.0,
            device: "cpu".into(),
            produced_by: "train".into(),
            extra: serde_json::Value::Null,
        };
        let out = RunOutput {
            save_dir: dir.clone(),
            info,
            resume: false,
            quiet: true,
        };
        let train_set = std::sync::Arc::new(ds.train.clone());
        train(
            &model,
            None,
            &train_set,
            &splits.train,
            &splits.val,
            &cfg,
            Some(&out),
            tch::Device::Cpu,
        )
        .unwrap();
        dir.join("model.safetensors")
    })
}

impl DigitsFixture {
    /// The digits data with class-wise (whole class 3) or random 10 % forgetting, seed 2.
    pub fn new(class_wise: bool) -> DigitsFixture {
        DigitsFixture::with_selection(class_wise, 0.0)
    }

    /// [`DigitsFixture::new`] with a selection split of `selection_fraction` of each class.
    pub fn with_selection(class_wise: bool, selection_fraction: f64) -> DigitsFixture {
        use gunlearn::data::{self, splits::*, DatasetName};
        let model_path = digits_model().to_path_buf();
        let ds = data::load(DatasetName::Digits, None).unwrap();
        let forget = if class_wise {
            ForgetRequest::Class {
                class: 3,
                count: None,
            }
        } else {
            ForgetRequest::Random { fraction: 0.1 }
        };
        let splits = make_splits(
            &ds,
            &SplitConfig {
                forget,
                selection_fraction,
                ..SplitConfig::default()
            },
        )
        .unwrap();
        DigitsFixture {
            train_set: std::sync::Arc::new(ds.train.clone()),
            ds,
            splits,
            class_wise,
            model_path,
        }
    }

    /// A new copy of the trained model (and its mask, if any).
    pub fn fresh_model(&self) -> gunlearn::checkpoint::Checkpoint {
        gunlearn::checkpoint::load(&self.model_path, tch::Device::Cpu).unwrap()
    }

    /// A context for unlearning `model` with `config`, writing into `save_dir`.
    pub fn context<'a>(
        &'a self,
        model: &'a gunlearn::model::Classifier,
        mask: Option<&'a gunlearn::model::mask::Mask>,
        config: &'a gunlearn::unlearn::UnlearnConfig,
        save_dir: &std::path::Path,
    ) -> gunlearn::unlearn::UnlearnContext<'a> {
        std::fs::create_dir_all(save_dir).unwrap();
        gunlearn::unlearn::UnlearnContext {
            model,
            mask,
            data: &self.ds,
            train_set: std::sync::Arc::clone(&self.train_set),
            splits: &self.splits,
            config,
            device: tch::Device::Cpu,
            quiet: true,
            model_path: self.model_path.clone(),
            save_dir: save_dir.to_path_buf(),
            class_wise: self.class_wise,
            harness: gunlearn::unlearn::Harness::Sparsity,
        }
    }
}

/// Runs the `gunlearn` binary of this build with `args` (warnings-only logging).
pub fn gunlearn(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_gunlearn"))
        .args(args)
        .env("GUNLEARN_LOG", "warn")
        .output()
        .expect("the gunlearn binary runs")
}

/// [`gunlearn`], asserting that it succeeds (its output in the failure message).
pub fn ok(args: &[&str]) -> std::process::Output {
    let out = gunlearn(args);
    assert!(
        out.status.success(),
        "gunlearn {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A JSON file, parsed.
pub fn read_json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The real Fashion-MNIST files under `data/fashion-mnist` (fetched once by
/// `scripts/fetch-data.sh` from Debian's package; a failure to fetch fails the test).
pub fn fashion_mnist() -> std::path::PathBuf {
    use std::sync::OnceLock;
    static FETCHED: OnceLock<std::path::PathBuf> = OnceLock::new();
    FETCHED
        .get_or_init(|| {
            let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
            let status = std::process::Command::new("bash")
                .arg(root.join("scripts/fetch-data.sh"))
                .arg("fashion-mnist")
                .status()
                .expect("bash runs scripts/fetch-data.sh");
            assert!(
                status.success(),
                "scripts/fetch-data.sh fashion-mnist failed"
            );
            root.join("data/fashion-mnist")
        })
        .clone()
}

/// The arguments of a quiet local sweep of `file` into `out` on `workers` workers × 1 thread.
pub fn sweep_args(file: &std::path::Path, out: &std::path::Path, workers: usize) -> Vec<String> {
    let text = |p: &std::path::Path| p.to_str().unwrap().to_string();
    ["sweep".to_string(), text(file), "--out".into(), text(out)]
        .into_iter()
        .chain([
            "--workers".into(),
            workers.to_string(),
            "--threads".into(),
            "1".into(),
        ])
        .chain(["--quiet".to_string()])
        .collect()
}

/// The gunlearn binary started with `args`, its output discarded (a process to kill).
pub fn spawn_quietly(args: &[String]) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_gunlearn"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits (at most 30 s, else fails) until no `run-job` process of the sweep in `out` is left:
/// a killed sweep's children die with it.
pub fn wait_for_children_to_end(out: &std::path::Path) {
    let alive = || {
        std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            std::fs::read(e.path().join("cmdline")).is_ok_and(|c| {
                let c = String::from_utf8_lossy(&c);
                c.contains("run-job") && c.contains(out.to_str().unwrap())
            })
        })
    };
    let killed = std::time::Instant::now();
    while alive() {
        assert!(
            killed.elapsed() < std::time::Duration::from_secs(30),
            "run-job processes outlived their sweep"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

//! PyTorch interoperability: `gunlearn import-torch` reads a `torch.save` checkpoint, or a state
//! dict in safetensors, of the reference's ResNet or VGG-16-BN into our checkpoint format (mask
//! included); `gunlearn export-torch` writes weights that `model.load_state_dict(...)` accepts
//! (safetensors or a `torch.save` zip file).
//!
//! Accepted layouts: a plain state dict, or a dict with the state dict under `state_dict`
//! (the reference's `.pth.tar`); `module.` prefixes (DataParallel); the pruning
//! re-parametrisation `X.weight_orig` × `X.weight_mask` that `torch.nn.utils.prune` leaves, and
//! our own `X.weight` + `X.weight_mask`; the `normalize.mean` / `normalize.std` buffers (else the
//! data set's normalisation). `num_batches_tracked` buffers are dropped on import (no layer of
//! ours uses them) and written as 0 on export so that a strict `load_state_dict` accepts the file.

pub mod archive;

use crate::checkpoint::{self, ModelInfo, FORMAT};
use crate::data::DatasetName;
use crate::device::device_name;
use crate::model::mask::Mask;
use crate::model::{Arch, Classifier, ModelSpec};
use crate::pickle::Value;
use anyhow::{bail, Context, Result};
use archive::TorchFile;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// `gunlearn import-torch FILE.pth[.tar] --arch resnet18 --num_classes C -o CKPT`.
#[derive(Debug, Clone)]
pub struct ImportTorchJob {
    /// The PyTorch checkpoint: a `torch.save` file (.pth, .pth.tar, .pt) or a state dict saved
    /// as `.safetensors`.
    pub input: PathBuf,
    /// How to interpret it (architecture, classes, data set, mask).
    pub options: ImportOptions,
    /// Output: a `.safetensors` file (with its `.json` twin) or a folder (gets `model.*`).
    pub output: PathBuf,
    /// Where the tensors are loaded (`auto`, `cpu`, `cuda`, `cuda:N`).
    pub device: String,
}

/// `gunlearn export-torch CKPT -o FILE`.
#[derive(Debug, Clone)]
pub struct ExportTorchJob {
    /// Our checkpoint: a run folder or a `.safetensors` file.
    pub checkpoint: PathBuf,
    /// Output: `.safetensors`, or `.pt` / `.pth` / `.pth.tar` / `.bin` for a `torch.save` file.
    pub output: PathBuf,
    /// Where the tensors are loaded (`auto`, `cpu`, `cuda`, `cuda:N`).
    pub device: String,
}

/// How to interpret a PyTorch state dict.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Architecture; `None` = infer from the keys.
    pub arch: Option<Arch>,
    /// Classes; `None` = from the last Linear's weight.
    pub num_classes: Option<usize>,
    /// The data set (normalisation fallback and metadata).
    pub dataset: DatasetName,
    /// Recover the mask from zero conv weights when the file has none.
    pub mask_from_zeros: bool,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            arch: None,
            num_classes: None,
            dataset: DatasetName::Cifar10,
            mask_from_zeros: false,
        }
    }
}

/// A converted PyTorch model.
pub struct Imported {
    /// The network with the file's weights (pruned weights zero).
    pub model: Classifier,
    /// Conv masks from the file (`None` when it had none).
    pub mask: Option<Mask>,
    /// Things dropped or assumed on the way (printed by the command).
    pub notes: Vec<String>,
}

/// Finds the state dict inside an unpickled object: the object itself or its `state_dict`.
fn state_dict(root: &Value) -> Result<&[(Value, Value)]> {
    let dict = match root.get("state_dict") {
        Some(inner @ Value::Dict(_)) => inner,
        Some(other) => bail!(
            "`state_dict` holds a {}, not a dict of tensors",
            other.type_name()
        ),
        None => root,
    };
    let Value::Dict(items) = dict else {
        bail!(
            "the file holds a {}, not a state dict (a dict of tensors) or a dict with `state_dict`",
            dict.type_name()
        );
    };
    if !items.iter().any(|(_, v)| matches!(v, Value::Tensor(_))) {
        let keys: Vec<String> = items
            .iter()
            .take(8)
            .map(|(k, _)| format!("{:?}", k.as_str().unwrap_or("?")))
            .collect();
        bail!(
            "no tensors found: the top-level keys are [{}] and none is `state_dict`",
            keys.join(", ")
        );
    }
    Ok(items)
}

/// Reads the tensors of a state dict, stripping `module.` prefixes, keyed by name.
fn read_state_dict(file: &mut TorchFile) -> Result<BTreeMap<String, Tensor>> {
    let root = std::mem::replace(&mut file.root, Value::None);
    let items = state_dict(&root)?;
    let mut out = BTreeMap::new();
    for (k, v) in items {
        let Some(key) = k.as_str() else {
            bail!("a state-dict key is a {}, not a string", k.type_name());
        };
        let Value::Tensor(t) = v else {
            bail!(
                "state-dict entry {key:?} holds a {}, not a tensor",
                v.type_name()
            );
        };
        let tensor = file
            .tensor(t)
            .with_context(|| format!("reading tensor {key:?}"))?;
        insert_unprefixed(&mut out, key, tensor)?;
    }
    file.root = root;
    Ok(out)
}

/// Adds `tensor` under `key` without DataParallel's `module.` prefix; a key present both ways is
/// an error.
fn insert_unprefixed(out: &mut BTreeMap<String, Tensor>, key: &str, tensor: Tensor) -> Result<()> {
    let name = key.strip_prefix("module.").unwrap_or(key).to_string();
    if out.insert(name.clone(), tensor).is_some() {
        bail!("key {name:?} appears twice (with and without the `module.` prefix)");
    }
    Ok(())
}

/// Infers the architecture from the key set.
fn infer_arch(keys: &BTreeMap<String, Tensor>) -> Result<Arch> {
    if keys.contains_key("classifier.weight") && keys.keys().any(|k| k.starts_with("features.")) {
        bail!(
            "the keys look like a VGG with a single Linear head (`classifier.weight`, e.g. the \
             reference's vgg16_bn_lth), which gunlearn does not build; vgg16_bn has \
             `classifier.0/2/4`"
        );
    }
    if keys.keys().any(|k| k.starts_with("features.")) {
        return Ok(Arch::Vgg16Bn);
    }
    if keys.keys().any(|k| k.starts_with("layer4.")) {
        return Ok(Arch::Resnet18);
    }
    if keys.keys().any(|k| k.starts_with("layer3.2."))
        && !keys.keys().any(|k| k.starts_with("layer4."))
    {
        return Ok(Arch::Resnet20);
    }
    let sample: Vec<&str> = keys.keys().take(5).map(String::as_str).collect();
    bail!("cannot tell the architecture from the keys (first: {sample:?}); pass --arch")
}

/// Converts a PyTorch state dict (already read) into our model and mask.
pub fn import_tensors(
    mut sd: BTreeMap<String, Tensor>,
    opts: &ImportOptions,
    device: Device,
) -> Result<Imported> {
    let mut notes = Vec::new();
    // Pruning re-parametrisation: X_orig × X_mask → X, keep the mask under X_mask.
    let origs: Vec<String> = sd
        .keys()
        .filter(|k| k.ends_with("_orig"))
        .cloned()
        .collect();
    for orig_key in origs {
        let base = orig_key.trim_end_matches("_orig").to_string();
        let mask_key = format!("{base}_mask");
        let orig = sd.remove(&orig_key).expect("listed above");
        let Some(mask) = sd.get(&mask_key) else {
            bail!("{orig_key:?} has no matching {mask_key:?} (the pruning re-parametrisation needs both)");
        };
        if mask.size() != orig.size() {
            bail!(
                "{mask_key:?} has shape {:?}, {orig_key:?} has {:?}",
                mask.size(),
                orig.size()
            );
        }
        if sd.contains_key(&base) {
            bail!("both {orig_key:?} and {base:?} are present");
        }
        sd.insert(base, &orig * mask.to_kind(orig.kind()));
    }
    sd.retain(|k, _| !k.ends_with("num_batches_tracked"));
    let mask_keys: Vec<String> = sd
        .keys()
        .filter(|k| k.ends_with(checkpoint::MASK_SUFFIX))
        .cloned()
        .collect();
    let mut masks = BTreeMap::new();
    for key in mask_keys {
        let m = sd.remove(&key).expect("listed above").to_kind(Kind::Float);
        let bad = m.ne(0.0).logical_and(&m.ne(1.0)).any().int64_value(&[]) != 0;
        if bad {
            bail!("mask {key:?} holds values other than 0 and 1");
        }
        masks.insert(key.trim_end_matches(checkpoint::MASK_SUFFIX).to_string(), m);
    }

    let arch = match opts.arch {
        Some(a) => a,
        None => infer_arch(&sd)?,
    };
    let conv_key = arch.first_conv_weight();
    let conv1 = sd.get(conv_key).with_context(|| {
        format!(
            "missing key {conv_key:?} (not a {} state dict?)",
            arch.name()
        )
    })?;
    let in_channels = conv1
        .size()
        .get(1)
        .copied()
        .with_context(|| format!("{conv_key:?} is not a 4-d conv weight"))?
        as usize;
    let fc_key = arch.logits_weight();
    let fc = sd
        .get(fc_key)
        .with_context(|| format!("missing key {fc_key:?}"))?;
    let file_classes = fc
        .size()
        .first()
        .copied()
        .with_context(|| format!("{fc_key:?} is a scalar, not a Linear weight"))?
        as usize;
    let num_classes = match opts.num_classes {
        Some(c) if c != file_classes => {
            bail!(
                "key {fc_key:?} has shape {:?}: {file_classes} classes, but --num_classes is {c}",
                fc.size()
            )
        }
        Some(c) => c,
        None => file_classes,
    };
    let (mean, std) = match (sd.get("normalize.mean"), sd.get("normalize.std")) {
        (Some(m), Some(s)) => {
            let m = Vec::<f64>::try_from(m.to_kind(Kind::Double).flatten(0, -1))
                .context("normalize.mean")?;
            let s = Vec::<f64>::try_from(s.to_kind(Kind::Double).flatten(0, -1))
                .context("normalize.std")?;
            (m, s)
        }
        (None, None) => {
            notes.push(format!(
                "no normalize.mean/std in the file: using the {} normalisation",
                opts.dataset.cli_name()
            ));
            let (m, s) = opts.dataset.normalization(in_channels);
            sd.insert(
                "normalize.mean".into(),
                Tensor::from_slice(&m).to_kind(Kind::Float),
            );
            sd.insert(
                "normalize.std".into(),
                Tensor::from_slice(&s).to_kind(Kind::Float),
            );
            (m, s)
        }
        (Some(_), None) => bail!("missing key \"normalize.std\" (\"normalize.mean\" is present)"),
        (None, Some(_)) => bail!("missing key \"normalize.mean\" (\"normalize.std\" is present)"),
    };
    let spec = ModelSpec {
        arch,
        num_classes,
        in_channels,
        mean,
        std,
    };
    spec.validate()
        .context("the file's normalisation buffers")?;
    let model = Classifier::try_new(&spec, device)?;

    let vars = model.vs.variables();
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    for name in &names {
        match sd.get(*name) {
            None => bail!(
                "missing key {name:?} for {arch} (the file has {} tensors)",
                sd.len()
            ),
            Some(t) if t.size() != vars[*name].size() => bail!(
                "key {name:?} has shape {:?}, {arch} with {num_classes} classes expects {:?}",
                t.size(),
                vars[*name].size()
            ),
            Some(_) => {}
        }
    }
    if let Some(extra) = sd.keys().find(|k| !vars.contains_key(*k)) {
        bail!("unexpected key {extra:?}: not a tensor of {arch} (wrong --arch?)");
    }
    let conv_names = model.conv_weight_names();
    let mut kept = BTreeMap::new();
    for (name, m) in masks {
        match sd.get(&name) {
            None => bail!("mask {name}_mask has no weight {name:?}"),
            Some(w) if w.size() != m.size() => bail!(
                "mask {name}_mask has shape {:?}, {name:?} has {:?}",
                m.size(),
                w.size()
            ),
            Some(_) if !conv_names.contains(&name) => {
                // Our masks cover conv weights only; the pruned values are already folded in.
                notes.push(format!(
                    "mask of {name} (not a conv weight) folded into the weights, not kept"
                ));
            }
            Some(_) => {
                kept.insert(name, m.to_device(device));
            }
        }
    }
    // Floating weights of another precision (a model saved in half or double) convert without
    // losing their meaning; integer or bool weights are refused by `copy_into`, naming them.
    let mut converted = BTreeMap::<String, usize>::new();
    for (name, t) in sd.iter_mut() {
        let want = vars[name].kind();
        if t.kind() != want && t.is_floating_point() && want == Kind::Float {
            *converted
                .entry(checkpoint::kind_name(t.kind()))
                .or_default() += 1;
            *t = t.to_kind(want);
        }
    }
    for (from, n) in converted {
        notes.push(format!("{n} tensors stored as {from} converted to F32"));
    }
    checkpoint::copy_into(&model.vs, sd.into_iter().collect::<HashMap<_, _>>())?;
    let mask = if kept.is_empty() {
        if opts.mask_from_zeros {
            Some(Mask::from_zeros(&model))
        } else {
            None
        }
    } else {
        let mut full = Mask::dense(&model);
        for (name, m) in kept {
            full.masks.insert(name, m);
        }
        Some(full)
    };
    if let Some(mask) = &mask {
        mask.apply_to_weights(&model.vs);
    }
    Ok(Imported { model, mask, notes })
}

/// Reads the tensors of the state dict in a `torch.save` file (`module.` prefixes stripped).
pub fn read_torch_state_dict(path: &Path) -> Result<BTreeMap<String, Tensor>> {
    let mut file = TorchFile::open(path)?;
    read_state_dict(&mut file).with_context(|| format!("{}", path.display()))
}

/// Reads a `torch.save` file and converts it.
pub fn import_torch(path: &Path, opts: &ImportOptions, device: Device) -> Result<Imported> {
    let sd = if path.extension().is_some_and(|e| e == "safetensors") {
        // A state dict saved with `safetensors.torch.save_file` (or by export-torch).
        let mut sd = BTreeMap::new();
        for (key, tensor) in checkpoint::read_safetensors(path)? {
            insert_unprefixed(&mut sd, &key, tensor)
                .with_context(|| format!("{}", path.display()))?;
        }
        sd
    } else {
        read_torch_state_dict(path)?
    };
    import_tensors(sd, opts, device).with_context(|| format!("{}", path.display()))
}

/// Whether `path` names a PyTorch checkpoint (`torch.save` file) rather than one of ours.
pub fn is_torch_file(path: &Path) -> bool {
    let name = path.to_string_lossy().to_ascii_lowercase();
    [".pth", ".pth.tar", ".pt", ".tar"]
        .iter()
        .any(|e| name.ends_with(e))
}

/// Loads a PyTorch checkpoint given directly to `--model` / `--mask` (the seed document passes
/// the reference's `.pth.tar`): the same safe reader and architecture inference as
/// `import-torch`, in memory; the metadata says where it came from.
pub fn load_torch_checkpoint(
    path: &Path,
    dataset: DatasetName,
    num_classes: Option<usize>,
    device: Device,
) -> Result<checkpoint::Checkpoint> {
    if !path.is_file() {
        bail!("{}: no such PyTorch checkpoint", path.display());
    }
    let opts = ImportOptions {
        num_classes,
        dataset,
        ..ImportOptions::default()
    };
    let imported = import_torch(path, &opts, device)?;
    for note in &imported.notes {
        tracing::warn!("{}: {note}", path.display());
    }
    let info = ModelInfo {
        format: FORMAT.into(),
        model: imported.model.spec.clone(),
        dataset,
        seed: 0,
        epoch: 0,
        accuracy: BTreeMap::new(),
        sparsity: imported.mask.as_ref().map_or(0.0, |m| m.sparsity().overall),
        device: device_name(device),
        produced_by: "import-torch".into(),
        extra: serde_json::json!({ "source": path.display().to_string(), "notes": imported.notes }),
    };
    Ok(checkpoint::Checkpoint {
        model: imported.model,
        mask: imported.mask,
        info,
        path: path.to_path_buf(),
    })
}

/// The tensors that `load_state_dict` of the reference's network expects: our variables (pruned
/// weights are zero) plus a `num_batches_tracked` = 0 per BatchNorm, sorted by name.
pub fn export_tensors(model: &Classifier) -> Vec<(String, Tensor)> {
    let mut tensors = checkpoint::named_tensors(&model.vs);
    let bns: Vec<String> = tensors
        .iter()
        .filter_map(|(k, _)| {
            k.strip_suffix(".running_mean")
                .map(|p| format!("{p}.num_batches_tracked"))
        })
        .collect();
    for name in bns {
        tensors.push((name, Tensor::from(0i64)));
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    tensors
}

/// Writes `model` for PyTorch: safetensors or a `torch.save` zip, by the extension of `path`.
pub fn export_torch(model: &Classifier, path: &Path) -> Result<()> {
    let tensors = export_tensors(model);
    let name = path.to_string_lossy().to_ascii_lowercase();
    if name.ends_with(".safetensors") {
        checkpoint::write_safetensors(path, &tensors)
    } else if [".pt", ".pth", ".pth.tar", ".tar", ".bin"]
        .iter()
        .any(|e| name.ends_with(e))
    {
        archive::write_state_dict(path, &tensors)
    } else {
        bail!(
            "{}: unknown output format; use .safetensors, .pt, .pth or .pth.tar",
            path.display()
        )
    }
}

/// `gunlearn import-torch`.
pub fn run_import_torch(args: ImportTorchJob) -> Result<()> {
    let opts = &args.options;
    let device = crate::device::parse_device(&args.device)?;
    let imported = import_torch(&args.input, opts, device)?;
    for note in &imported.notes {
        tracing::warn!("{note}");
    }
    let (dir, name) = output_location(&args.output)?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let sparsity = imported.mask.as_ref().map_or(0.0, |m| m.sparsity().overall);
    let info = ModelInfo {
        format: FORMAT.into(),
        model: imported.model.spec.clone(),
        dataset: opts.dataset,
        seed: 0,
        epoch: 0,
        accuracy: BTreeMap::new(),
        sparsity,
        device: device_name(device),
        produced_by: "import-torch".into(),
        extra: serde_json::json!({ "source": args.input.display().to_string(), "notes": imported.notes }),
    };
    checkpoint::save(&dir, &name, &imported.model, imported.mask.as_ref(), &info)?;
    println!(
        "imported {} ({}, {} classes, {:.2}% of conv weights pruned) -> {}",
        args.input.display(),
        info.model.arch,
        info.model.num_classes,
        sparsity,
        dir.join(format!("{name}.safetensors")).display()
    );
    Ok(())
}

/// Splits `-o` into (folder, checkpoint name): `x/y.safetensors` → (`x`, `y`); a folder → `model`.
fn output_location(output: &Path) -> Result<(PathBuf, String)> {
    if output.extension().is_some_and(|e| e == "safetensors") {
        let name = output
            .file_stem()
            .and_then(|s| s.to_str())
            .context("-o: not a valid file name")?
            .to_string();
        let dir = output.parent().map(Path::to_path_buf).unwrap_or_default();
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        Ok((dir, name))
    } else if output.extension().is_some() && !output.is_dir() {
        bail!(
            "-o {}: expected a .safetensors file or a folder",
            output.display()
        )
    } else {
        Ok((output.to_path_buf(), "model".into()))
    }
}

/// `gunlearn export-torch`.
pub fn run_export_torch(args: ExportTorchJob) -> Result<()> {
    let ckpt = checkpoint::load(&args.checkpoint, crate::device::parse_device(&args.device)?)?;
    if let Some(parent) = args.output.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    export_torch(&ckpt.model, &args.output)?;
    println!(
        "exported {} ({}, {} classes) -> {}",
        ckpt.path.display(),
        ckpt.info.model.arch,
        ckpt.info.model.num_classes,
        args.output.display()
    );
    Ok(())
}

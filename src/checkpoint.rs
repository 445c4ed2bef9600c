//! Checkpoints: `NAME.safetensors` (weights under PyTorch state-dict names, plus
//! `<conv>.weight_mask` for pruned layers, as `torch.nn.utils.prune` names them) and `NAME.json`
//! (how to rebuild the model and where it came from). Both are written atomically.

use crate::data::formats::dims_text;
use crate::data::DatasetName;
use crate::fsutil::write_atomic;
use crate::model::mask::Mask;
use crate::model::{Classifier, ModelSpec};
use anyhow::{bail, Context};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use tch::{nn::VarStore, Device, Tensor};

/// Format tag written to every `model.json`.
pub const FORMAT: &str = "gunlearn-checkpoint-v1";
/// Suffix of mask entries in the safetensors file.
pub const MASK_SUFFIX: &str = "_mask";

/// The JSON half of a checkpoint.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ModelInfo {
    /// Always [`FORMAT`].
    pub format: String,
    /// Architecture, classes, input channels and normalisation.
    pub model: ModelSpec,
    /// The data set the model was trained on.
    pub dataset: DatasetName,
    /// Seed of the run that produced it.
    pub seed: u64,
    /// Last completed epoch (or iteration count for unlearners; 0 for imports).
    pub epoch: usize,
    /// Accuracies (%) measured when it was saved, by split name.
    pub accuracy: BTreeMap<String, f64>,
    /// Percentage of conv weights that are zero.
    pub sparsity: f64,
    /// Device it was computed on.
    pub device: String,
    /// What produced it: `train`, `unlearn:<method>`, `prune:<kind>`, `import-torch`, ...
    pub produced_by: String,
    /// Anything else worth keeping (configuration of the producing command).
    #[serde(default)]
    pub extra: serde_json::Value,
}

/// A loaded checkpoint.
pub struct Checkpoint {
    /// The network, weights loaded, masks applied.
    pub model: Classifier,
    /// The pruning mask, when the checkpoint has one.
    pub mask: Option<Mask>,
    /// Its metadata.
    pub info: ModelInfo,
    /// The safetensors file it came from.
    pub path: PathBuf,
}

/// `dir/NAME.safetensors` and `dir/NAME.json`.
pub fn paths(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{name}.safetensors")),
        dir.join(format!("{name}.json")),
    )
}

/// Saves weights (+ mask) and metadata as `dir/NAME.safetensors` and `dir/NAME.json`.
pub fn save(
    dir: &Path,
    name: &str,
    model: &Classifier,
    mask: Option<&Mask>,
    info: &ModelInfo,
) -> anyhow::Result<()> {
    let (weights_path, json_path) = paths(dir, name);
    let mut tensors = named_tensors(&model.vs);
    if let Some(mask) = mask {
        for (name, m) in &mask.masks {
            tensors.push((format!("{name}{MASK_SUFFIX}"), m.shallow_clone()));
        }
    }
    write_safetensors(&weights_path, &tensors)?;
    crate::fsutil::write_json_atomic(&json_path, info)
}

/// Rewrites only the metadata `dir/NAME.json` of a saved checkpoint (its weights unchanged).
pub fn save_info(dir: &Path, name: &str, info: &ModelInfo) -> anyhow::Result<()> {
    crate::fsutil::write_json_atomic(&paths(dir, name).1, info)
}

/// Every variable of `vs`, sorted by name, on the CPU.
pub fn named_tensors(vs: &VarStore) -> Vec<(String, Tensor)> {
    let mut tensors: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .map(|(k, v)| (k, v.detach().to_device(Device::Cpu).contiguous()))
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    tensors
}

/// Writes named tensors to a safetensors file atomically.
pub fn write_safetensors(path: &Path, tensors: &[(String, Tensor)]) -> anyhow::Result<()> {
    write_atomic(path, |tmp| {
        Tensor::write_safetensors(tensors, tmp).map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(())
    })
}

/// Reads every tensor of a safetensors file, with a clear error for a missing or corrupt file.
///
/// The header is checked here before libtorch sees it: the safetensors crate checks that every
/// tensor's byte range fits the file (with checked arithmetic), and every dimension must fit
/// libtorch's 64-bit signed sizes (a `[0, 2^64 − 1]` shape holds no bytes yet made libtorch
/// throw with a C++ backtrace).
pub fn read_safetensors(path: &Path) -> anyhow::Result<HashMap<String, Tensor>> {
    if !path.exists() {
        bail!("{}: no such file", path.display());
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let corrupt = || {
        format!(
            "{}: not a readable safetensors file (damaged, cut short or not safetensors); write \
             it again",
            path.display()
        )
    };
    let file = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| anyhow::anyhow!("{}", safetensors_error(&e)))
        .with_context(corrupt)?;
    let mut out = HashMap::new();
    for (name, view) in file.tensors() {
        let shape = view.shape();
        let fits = shape
            .iter()
            .filter(|&&d| d != 0)
            .try_fold(1i64, |a, &d| a.checked_mul(i64::try_from(d).ok()?));
        if fits.is_none() {
            bail!(
                "{}: tensor {name:?} has shape {}, beyond what a tensor can hold: the header \
                 is corrupt; write the file again",
                path.display(),
                dims_text(shape)
            );
        }
        let kind = match view.dtype() {
            safetensors::Dtype::BOOL => tch::Kind::Bool,
            safetensors::Dtype::U8 => tch::Kind::Uint8,
            safetensors::Dtype::I8 => tch::Kind::Int8,
            safetensors::Dtype::I16 => tch::Kind::Int16,
            safetensors::Dtype::I32 => tch::Kind::Int,
            safetensors::Dtype::I64 => tch::Kind::Int64,
            safetensors::Dtype::BF16 => tch::Kind::BFloat16,
            safetensors::Dtype::F16 => tch::Kind::Half,
            safetensors::Dtype::F32 => tch::Kind::Float,
            safetensors::Dtype::F64 => tch::Kind::Double,
            other => bail!(
                "{}: tensor {name:?} has type {other:?}, which gunlearn does not read",
                path.display()
            ),
        };
        let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        let t = Tensor::f_from_data_size(view.data(), &dims, kind)
            .map_err(|e| anyhow::anyhow!("{}", first_line(&e.to_string())))
            .with_context(|| format!("{}: tensor {name:?}", path.display()))?;
        out.insert(name, t);
    }
    Ok(out)
}

/// What a safetensors header error means, in words.
fn safetensors_error(e: &safetensors::SafeTensorError) -> String {
    use safetensors::SafeTensorError as E;
    match e {
        E::HeaderTooSmall => "it is shorter than the 8 bytes that give its header's length".into(),
        E::HeaderTooLarge => "its header is declared larger than 100 MB".into(),
        E::InvalidHeaderLength => {
            "its header's declared length reaches past the end of the file".into()
        }
        E::InvalidHeader | E::InvalidHeaderStart | E::InvalidHeaderDeserialization => {
            "its header is not the JSON object a safetensors file starts with".into()
        }
        E::JsonError(j) => format!("its header is not valid JSON ({j})"),
        E::InvalidOffset(name) => {
            format!("the byte range of tensor {name:?} does not follow the previous tensor's")
        }
        E::TensorInvalidInfo => "a tensor's byte range does not match its shape and type".into(),
        E::ValidationOverflow => "a tensor's shape multiplies past 2^64 bytes".into(),
        E::MetadataIncompleteBuffer => {
            "its tensors do not cover its data exactly (cut short, or bytes appended)".into()
        }
        other => format!("{other}"),
    }
}

/// The first line of a libtorch error (the rest is a C++ backtrace, no use to a user).
pub fn first_line(message: &str) -> &str {
    message.lines().next().unwrap_or(message)
}

/// Resolves what the user passed to `--model`: a run folder (its `model.safetensors`), a
/// `.safetensors` file, or its `.json` twin. PyTorch files are pointed to `import-torch`.
pub fn resolve(path: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let weights = if path.is_dir() {
        path.join("model.safetensors")
    } else if path.extension().is_some_and(|e| e == "json") {
        path.with_extension("safetensors")
    } else {
        path.to_path_buf()
    };
    let name = weights.to_string_lossy();
    if name.ends_with(".pth")
        || name.ends_with(".pth.tar")
        || name.ends_with(".pt")
        || name.ends_with(".tar")
    {
        bail!(
            "{}: a PyTorch checkpoint; convert it first with `gunlearn import-torch {} --arch ARCH --num_classes C -o OUT.safetensors`",
            weights.display(),
            weights.display()
        );
    }
    if !weights.exists() {
        bail!("{}: no such checkpoint (expected a run folder with model.safetensors, or a .safetensors file)", weights.display());
    }
    let json = weights.with_extension("json");
    if !json.exists() {
        bail!(
            "{}: the checkpoint's metadata {} is missing",
            weights.display(),
            json.display()
        );
    }
    Ok((weights, json))
}

/// Reads a checkpoint's metadata (`NAME.json`), checking its format.
pub fn read_info(json_path: &Path) -> anyhow::Result<ModelInfo> {
    let text = std::fs::read_to_string(json_path)
        .with_context(|| format!("reading {}", json_path.display()))?;
    let info: ModelInfo = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a gunlearn model.json", json_path.display()))?;
    if info.format != FORMAT {
        bail!(
            "{}: format {:?}, expected {FORMAT:?}",
            json_path.display(),
            info.format
        );
    }
    Ok(info)
}

/// Loads a checkpoint onto `device`.
pub fn load(path: &Path, device: Device) -> anyhow::Result<Checkpoint> {
    let (weights_path, json_path) = resolve(path)?;
    let info = read_info(&json_path)?;
    let mut tensors = read_safetensors(&weights_path)?;
    let mut masks = BTreeMap::new();
    let mask_keys: Vec<String> = tensors
        .keys()
        .filter(|k| k.ends_with(MASK_SUFFIX))
        .cloned()
        .collect();
    for key in mask_keys {
        let t = tensors.remove(&key).expect("key listed above");
        masks.insert(
            key.trim_end_matches(MASK_SUFFIX).to_string(),
            t.to_kind(tch::Kind::Float).to_device(device),
        );
    }
    let model = Classifier::try_new(&info.model, device)
        .with_context(|| format!("{}: model spec", json_path.display()))?;
    copy_into(&model.vs, tensors).with_context(|| format!("loading {}", weights_path.display()))?;
    let mask = if masks.is_empty() {
        None
    } else {
        Some(Mask { masks })
    };
    if let Some(mask) = &mask {
        let names = model.vs.variables();
        for (name, m) in &mask.masks {
            match names.get(name) {
                Some(w) if w.size() == m.size() => {}
                Some(w) => bail!(
                    "{}: mask {name} has shape {}, its weight has {}",
                    weights_path.display(),
                    dims_text(&m.size()),
                    dims_text(&w.size())
                ),
                None => bail!(
                    "{}: mask for {name}, which the {} model does not have",
                    weights_path.display(),
                    info.model.arch
                ),
            }
        }
        mask.apply_to_weights(&model.vs);
    }
    Ok(Checkpoint {
        model,
        mask,
        info,
        path: weights_path,
    })
}

/// The safetensors name of a tensor type, for messages (`F32`, `I32`, ...).
pub fn kind_name(kind: tch::Kind) -> String {
    use tch::Kind::*;
    match kind {
        Float => "F32".into(),
        Double => "F64".into(),
        Half => "F16".into(),
        BFloat16 => "BF16".into(),
        Int => "I32".into(),
        Int64 => "I64".into(),
        Int16 => "I16".into(),
        Int8 => "I8".into(),
        Uint8 => "U8".into(),
        Bool => "BOOL".into(),
        other => format!("{other:?}").to_uppercase(),
    }
}

/// Copies tensors into the variables of `vs` by name; every variable must be present with the
/// same shape and type (a header that declares weights as integers over float bytes would
/// otherwise be cast, value by value, into nonsense), and no unknown names may remain.
pub fn copy_into(vs: &VarStore, mut tensors: HashMap<String, Tensor>) -> anyhow::Result<()> {
    let variables = vs.variables();
    let mut names: Vec<&String> = variables.keys().collect();
    names.sort();
    tch::no_grad(|| -> anyhow::Result<()> {
        for name in names {
            let var = &variables[name];
            let Some(src) = tensors.remove(name) else {
                bail!(
                    "missing tensor {name:?} (the file is for another architecture, or truncated)"
                );
            };
            if src.size() != var.size() {
                bail!(
                    "tensor {name:?} has shape {}, the model expects {} (another architecture \
                     or class count?)",
                    dims_text(&src.size()),
                    dims_text(&var.size())
                );
            }
            if src.kind() != var.kind() {
                bail!(
                    "tensor {name:?} is stored as {}, but the model's {name:?} is {}: the \
                     file's header does not match its weights (a damaged or hand-edited file); \
                     write the checkpoint again (train, or import-torch from the original)",
                    kind_name(src.kind()),
                    kind_name(var.kind())
                );
            }
            var.shallow_clone()
                .copy_(&src.to_kind(var.kind()).to_device(var.device()));
        }
        Ok(())
    })?;
    if let Some(extra) = tensors.keys().min() {
        bail!(
            "unexpected tensor {extra:?} ({} unknown in all): the file is for another architecture",
            tensors.len()
        );
    }
    Ok(())
}

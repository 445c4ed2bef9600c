//! `torch.save` files: the zip archive of PyTorch ≥ 1.6 (`<name>/data.pkl` + `<name>/data/<key>`
//! storages) and the older sequence-of-pickles format (`_use_new_zipfile_serialization=False`),
//! read into a [`Value`] tree whose tensors are materialised on demand; and a writer of the zip
//! format for a flat state dict.

use crate::pickle::{self, DType, TensorRef, Value};
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use tch::Tensor;

use crate::data::formats::dims_text;

/// Magic number that opens a legacy (non-zip) torch.save file (an 80-bit int).
const LEGACY_MAGIC: u128 = 0x1950a86a20f9469cfc6c;

enum Storages {
    Zip {
        archive: zip::ZipArchive<File>,
        prefix: String,
    },
    Loaded(HashMap<String, Vec<u8>>),
}

/// An opened `torch.save` file: the unpickled object and its storages.
pub struct TorchFile {
    /// The file it came from (for messages).
    pub path: PathBuf,
    /// The unpickled object (tensors are [`Value::Tensor`] references).
    pub root: Value,
    storages: Storages,
}

impl TorchFile {
    /// Opens and unpickles `path`; storages of the zip format are read when a tensor needs them.
    pub fn open(path: &Path) -> Result<TorchFile> {
        let mut file =
            File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
        let mut head = [0u8; 4];
        let n = file
            .read(&mut head)
            .with_context(|| format!("{}: cannot read", path.display()))?;
        file.rewind()?;
        if n >= 4 && head == *b"PK\x03\x04" {
            return open_zip(path, file);
        }
        if n >= 2 && head[0] == 0x80 {
            let mut data = Vec::new();
            file.read_to_end(&mut data)
                .with_context(|| format!("{}: cannot read", path.display()))?;
            return open_legacy(path, &data)
                .with_context(|| format!("{}: not a readable torch.save file", path.display()));
        }
        bail!(
            "{}: not a PyTorch checkpoint (neither a torch.save zip archive nor a pickle; it starts with {:02x?})",
            path.display(),
            &head[..n]
        )
    }

    /// The contiguous CPU tensor that `t` describes.
    pub fn tensor(&mut self, t: &TensorRef) -> Result<Tensor> {
        let key = &t.storage.key;
        let bytes: std::borrow::Cow<[u8]> = match &mut self.storages {
            Storages::Zip { archive, prefix } => {
                let name = format!("{prefix}data/{key}");
                let mut entry = archive.by_name(&name).with_context(|| {
                    format!("{}: storage record {name} is missing", self.path.display())
                })?;
                plain_entry(&self.path, &entry)?;
                // The sizes in the zip header and the pickle are the file's word: reserve at
                // most 64 MiB up front (a crafted header could ask for terabytes); the buffer
                // grows only as real bytes arrive.
                let need = t.storage.numel.saturating_mul(t.storage.dtype.size());
                let reserve = entry.size().min(need as u64).min(1 << 26);
                let mut buf = Vec::with_capacity(reserve as usize);
                // At most what the storage needs: a compressed entry could inflate far beyond.
                (&mut entry)
                    .take(need as u64)
                    .read_to_end(&mut buf)
                    .with_context(|| format!("{}: reading {name}", self.path.display()))?;
                std::borrow::Cow::Owned(buf)
            }
            Storages::Loaded(map) => {
                std::borrow::Cow::Borrowed(map.get(key).with_context(|| {
                    format!("{}: storage {key} is missing", self.path.display())
                })?)
            }
        };
        strided(&bytes, t).with_context(|| format!("{}: storage {key}", self.path.display()))
    }
}

/// Builds the strided view `t` of raw little-endian storage bytes, checking every bound first
/// (an out-of-range view would read outside the buffer inside libtorch).
fn strided(bytes: &[u8], t: &TensorRef) -> Result<Tensor> {
    let dtype = t.storage.dtype;
    let numel = t.storage.numel;
    let view = || {
        format!(
            "size {}, stride {}, offset {}",
            dims_text(&t.size),
            dims_text(&t.stride),
            t.offset
        )
    };
    // Every size below comes from the file: checked, so a crafted one cannot wrap around.
    let need = numel
        .checked_mul(dtype.size())
        .filter(|&n| n <= bytes.len());
    let Some(need) = need else {
        bail!(
            "holds {} bytes, but the pickle declares {numel} elements of {} bytes ({}): the \
             file is truncated or corrupt",
            bytes.len(),
            dtype.size(),
            dtype.storage_class()
        );
    };
    if t.size.len() != t.stride.len()
        || t.size.iter().chain(&t.stride).any(|&v| v < 0)
        || t.offset < 0
    {
        bail!("invalid tensor view ({}): the file is corrupt", view());
    }
    let count = t
        .size
        .iter()
        .try_fold(1i64, |a, &s| a.checked_mul(s))
        .with_context(|| format!("tensor view ({}) has too many elements", view()))?;
    if count > 0 {
        let last = t
            .size
            .iter()
            .zip(&t.stride)
            .try_fold(t.offset, |a, (&s, &st)| {
                a.checked_add((s - 1).checked_mul(st)?)
            });
        if last.is_none_or(|l| l as u64 >= numel as u64) {
            bail!(
                "tensor view ({}) reaches past its storage's {numel} elements: the file is corrupt",
                view()
            );
        }
    }
    let base = Tensor::f_from_data_size(&bytes[..need], &[numel as i64], dtype.kind())?;
    Ok(base
        .f_as_strided(t.size.as_slice(), t.stride.as_slice(), t.offset)?
        .contiguous())
}

/// torch.save stores its records uncompressed; a deflated one (a re-zipped file) reads too.
/// Other methods (bzip2, zstd, ...) are refused: no torch file uses them, and their decoders
/// size their buffers from the stream's own header.
fn plain_entry(path: &Path, entry: &zip::read::ZipFile<'_>) -> Result<()> {
    match entry.compression() {
        zip::CompressionMethod::Stored | zip::CompressionMethod::Deflated => Ok(()),
        other => bail!(
            "{}: the record {} is compressed with {other}, which torch.save never writes \
             (it stores records uncompressed); save the checkpoint again with torch.save",
            path.display(),
            entry.name()
        ),
    }
}

fn open_zip(path: &Path, file: File) -> Result<TorchFile> {
    let mut archive = zip::ZipArchive::new(file)
        .with_context(|| format!("{}: a corrupt zip archive", path.display()))?;
    let pkl = archive
        .file_names()
        .filter(|n| n.ends_with("data.pkl") && n.matches('/').count() <= 1)
        .min_by_key(|n| n.len())
        .map(str::to_string)
        .with_context(|| {
            format!(
                "{}: a zip archive without data.pkl (not written by torch.save)",
                path.display()
            )
        })?;
    let prefix = pkl.trim_end_matches("data.pkl").to_string();
    if let Ok(mut entry) = archive.by_name(&format!("{prefix}byteorder")) {
        let name = format!("{prefix}byteorder");
        plain_entry(path, &entry)?;
        let mut order = String::new();
        (&mut entry)
            .take(64)
            .read_to_string(&mut order)
            .with_context(|| format!("{}: reading {name}", path.display()))?;
        if order.trim() != "little" {
            bail!(
                "{}: {order:?}-endian storages are not supported",
                path.display()
            );
        }
    }
    let mut data = Vec::new();
    let mut entry = archive
        .by_name(&pkl)
        .with_context(|| format!("{}: reading {pkl}", path.display()))?;
    plain_entry(path, &entry)?;
    entry
        .read_to_end(&mut data)
        .with_context(|| format!("{}: reading {pkl}", path.display()))?;
    drop(entry);
    let (root, _) = pickle::parse(&data)
        .with_context(|| format!("{}: {pkl} is not a readable pickle", path.display()))?;
    Ok(TorchFile {
        path: path.to_path_buf(),
        root,
        storages: Storages::Zip { archive, prefix },
    })
}

/// Legacy format: pickles of the magic number, protocol version and system info, then the
/// object, then the list of storage keys, then each storage as an i64 element count followed
/// by its bytes.
fn open_legacy(path: &Path, data: &[u8]) -> Result<TorchFile> {
    let mut pos = 0;
    let mut next = |what: &str| -> Result<Value> {
        let (v, used) = pickle::parse(&data[pos..])
            .with_context(|| format!("reading the {what} at byte {pos}"))?;
        pos += used;
        Ok(v)
    };
    match next("magic number")? {
        Value::BigInt(b) if b[..] == LEGACY_MAGIC.to_le_bytes()[..10] => {}
        Value::BigInt(_) | Value::Int(_) => {
            bail!("a pickle whose magic number is not torch.save's")
        }
        other => bail!("a pickle of a {}, not a torch.save file", other.type_name()),
    }
    next("protocol version")?;
    next("system info")?;
    let root = next("saved object")?;
    let keys = next("storage key list")?;
    let Value::List(keys) = keys else {
        bail!("the storage key list is a {}", keys.type_name());
    };
    let mut sizes: HashMap<String, DType> = HashMap::new();
    collect_storages(&root, &mut sizes);
    let mut storages = HashMap::new();
    for key in keys {
        let key = key
            .as_str()
            .context("a storage key is not a string")?
            .to_string();
        let dtype = *sizes
            .get(&key)
            .with_context(|| format!("storage {key} is listed but never used"))?;
        let head = data
            .get(pos..pos + 8)
            .with_context(|| format!("truncated at storage {key} (byte {pos})"))?;
        let numel = i64::from_le_bytes(head.try_into().expect("8 bytes"));
        pos += 8;
        let len = usize::try_from(numel)
            .ok()
            .and_then(|n| n.checked_mul(dtype.size()))
            .context("bad storage size")?;
        let bytes = pos
            .checked_add(len)
            .and_then(|end| data.get(pos..end))
            .with_context(|| format!("truncated in storage {key} (byte {pos})"))?;
        storages.insert(key, bytes.to_vec());
        pos += len;
    }
    Ok(TorchFile {
        path: path.to_path_buf(),
        root,
        storages: Storages::Loaded(storages),
    })
}

fn collect_storages(v: &Value, out: &mut HashMap<String, DType>) {
    match v {
        Value::Tensor(t) => {
            out.insert(t.storage.key.clone(), t.storage.dtype);
        }
        Value::Storage(s) => {
            out.insert(s.key.clone(), s.dtype);
        }
        Value::Tuple(items) | Value::List(items) => {
            items.iter().for_each(|x| collect_storages(x, out))
        }
        Value::Dict(items) => items.iter().for_each(|(k, x)| {
            collect_storages(k, out);
            collect_storages(x, out)
        }),
        Value::Object {
            callable,
            args,
            state,
        } => {
            collect_storages(callable, out);
            collect_storages(args, out);
            if let Some(s) = state {
                collect_storages(s, out);
            }
        }
        _ => {}
    }
}

/// Writes `tensors` as `torch.save(OrderedDict(tensors))` does (zip, protocol-2 pickle,
/// 64-byte aligned storage records), so that `torch.load(..., weights_only=True)` reads it.
pub fn write_state_dict(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let archive_name = "archive";
    let mut w = pickle::Writer::new();
    w.ordered_dict();
    w.mark();
    let mut blobs = Vec::with_capacity(tensors.len());
    for (i, (name, t)) in tensors.iter().enumerate() {
        let t = t.to_device(tch::Device::Cpu).contiguous();
        let dtype = DType::from_kind(t.kind())
            .with_context(|| format!("tensor {name}: kind {:?} cannot be exported", t.kind()))?;
        let numel = t.numel();
        let mut bytes = vec![0u8; numel * dtype.size()];
        t.f_copy_data_u8(&mut bytes, numel)
            .with_context(|| format!("tensor {name}"))?;
        w.str(name);
        w.tensor(&i.to_string(), dtype, numel, &t.size());
        blobs.push(bytes);
    }
    w.op(b'u');
    let pickle = w.finish();
    crate::fsutil::write_atomic(path, |tmp| {
        let file = File::create(tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let mut zw = zip::ZipWriter::new(file);
        let stored = || {
            zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Stored)
        };
        let add = |zw: &mut zip::ZipWriter<File>, name: String, bytes: &[u8]| -> Result<()> {
            // torch aligns record data to 64 bytes so that it can be memory-mapped.
            zw.start_file_aligned(name.clone(), stored(), 64)
                .with_context(|| format!("zip record {name}"))?;
            zw.write_all(bytes)
                .with_context(|| format!("zip record {name}"))?;
            Ok(())
        };
        add(&mut zw, format!("{archive_name}/data.pkl"), &pickle)?;
        add(&mut zw, format!("{archive_name}/byteorder"), b"little")?;
        for (i, bytes) in blobs.iter().enumerate() {
            add(&mut zw, format!("{archive_name}/data/{i}"), bytes)?;
        }
        add(&mut zw, format!("{archive_name}/version"), b"3\n")?;
        zw.finish()
            .with_context(|| format!("finishing {}", tmp.display()))?;
        Ok(())
    })
}

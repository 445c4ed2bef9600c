//! NumPy arrays inside pickles, read from the inert [`Value`]s of the project's own pickle
//! parser: nothing is imported or called, the array is rebuilt from its pickled state.
//!
//! NumPy pickles an array in one of two ways:
//! - protocols 0–4: `numpy.core.multiarray._reconstruct(ndarray, (0,), b'b')` followed by
//!   BUILD with the state `(version, shape, dtype, is_fortran, raw_bytes)` (`numpy._core` since
//!   NumPy 2; Python 2 wrote the raw bytes as a `str`, Python 3 as `bytes` or
//!   `_codecs.encode(str, 'latin1')`);
//! - protocol 5: `numpy.core.numeric._frombuffer(buffer, dtype, shape, order)`.
//!
//! A dtype is `numpy.dtype('u1', False, True)` with BUILD state `(3, byte_order, ...)`.

use anyhow::{bail, Context, Result};

use crate::pickle::Value;

/// A NumPy element type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NpDtype {
    /// Kind character: `u` unsigned, `i` signed, `f` float, `b` bool, ...
    pub kind: u8,
    /// Bytes per element.
    pub size: usize,
    /// Multi-byte elements are big-endian.
    pub big_endian: bool,
}

impl std::fmt::Display for NpDtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match (self.kind, self.size) {
            (b'u', n) => format!("uint{}", 8 * n),
            (b'i', n) => format!("int{}", 8 * n),
            (b'f', n) => format!("float{}", 8 * n),
            (b'b', 1) => "bool".into(),
            (k, n) => format!("{}{n}", k as char),
        };
        f.write_str(&name)
    }
}

/// A pickled NumPy array, its bytes borrowed from the decoded pickle.
#[derive(Debug)]
pub(crate) struct NpArray<'a> {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: NpDtype,
    /// The bytes are in Fortran (column-major) order.
    pub fortran: bool,
    /// Raw element bytes, `product(shape) * dtype.size` of them.
    pub data: &'a [u8],
}

impl NpArray<'_> {
    /// The elements as integers, for integer and bool dtypes.
    pub fn to_ints(&self) -> Result<Vec<i64>> {
        let (k, n) = (self.dtype.kind, self.dtype.size);
        if !matches!(k, b'u' | b'i' | b'b') || ![1, 2, 4, 8].contains(&n) {
            bail!("a NumPy {} array, expected integers", self.dtype);
        }
        let mut out = Vec::with_capacity(self.data.len() / n);
        for chunk in self.data.chunks_exact(n) {
            let mut le = [0u8; 8];
            le[..n].copy_from_slice(chunk);
            if self.dtype.big_endian {
                le[..n].reverse();
            }
            let negative = k == b'i' && le[n - 1] & 0x80 != 0;
            le[n..].fill(if negative { 0xff } else { 0 });
            if k == b'u' && n == 8 && le[7] & 0x80 != 0 {
                bail!(
                    "uint64 value {} does not fit a label",
                    u64::from_le_bytes(le)
                );
            }
            out.push(i64::from_le_bytes(le));
        }
        Ok(out)
    }
}

/// The bytes of a Python 2 `str` / Python 3 `str` or `bytes`.
pub(crate) fn text_bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::Str(s) => Some(s.as_bytes()),
        Value::Bytes(b) => Some(b),
        _ => None,
    }
}

/// The value under `key` in a pickled dict whose keys are `str` or `bytes`.
pub(crate) fn dict_get<'a>(dict: &'a Value, key: &str) -> Option<&'a Value> {
    match dict {
        Value::Dict(items) => items
            .iter()
            .find(|(k, _)| text_bytes(k) == Some(key.as_bytes()))
            .map(|(_, v)| v),
        _ => None,
    }
}

/// The dict's keys, for messages.
pub(crate) fn dict_keys(dict: &Value) -> Vec<String> {
    match dict {
        Value::Dict(items) => items
            .iter()
            .map(|(k, _)| match text_bytes(k) {
                Some(b) => String::from_utf8_lossy(b).into_owned(),
                None => format!("<{}>", k.type_name()),
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// True when `v` is the global `module.name` for one of `modules`.
fn is_global(v: &Value, modules: &[&str], name: &str) -> bool {
    matches!(v, Value::Global(m, n) if n == name && modules.contains(&m.as_str()))
}

/// NumPy 1 and NumPy 2 module names of the array-rebuilding functions.
const MULTIARRAY: [&str; 2] = ["numpy.core.multiarray", "numpy._core.multiarray"];
const NUMERIC: [&str; 2] = ["numpy.core.numeric", "numpy._core.numeric"];

fn int_value(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::Bool(b) => Some(*b as i64),
        _ => None,
    }
}

fn shape_of(v: &Value) -> Result<Vec<usize>> {
    let (Value::Tuple(items) | Value::List(items)) = v else {
        bail!("NumPy array shape is a {}, expected a tuple", v.type_name());
    };
    items
        .iter()
        .map(|x| match int_value(x) {
            Some(i) if i >= 0 => Ok(i as usize),
            Some(i) => bail!("NumPy array shape holds {i}, expected non-negative ints"),
            None => bail!(
                "NumPy array shape holds a {}, expected non-negative ints",
                x.type_name()
            ),
        })
        .collect()
}

/// Reads a pickled `numpy.dtype`.
fn dtype_of(v: &Value) -> Result<NpDtype> {
    let Value::Object {
        callable,
        args,
        state,
    } = v
    else {
        bail!("NumPy dtype is a {}, expected numpy.dtype", v.type_name());
    };
    if !is_global(callable, &["numpy"], "dtype") {
        bail!(
            "NumPy dtype is a {}, expected numpy.dtype",
            callable.type_name()
        );
    }
    let name = match args.as_ref() {
        Value::Tuple(a) => a.first().and_then(text_bytes),
        _ => None,
    }
    .context("numpy.dtype without a type name")?;
    let name = String::from_utf8_lossy(name).into_owned();
    // The name is the kind and size (`u1`, `i8`, `f4`), possibly after a byte-order mark.
    let (order, rest) = match name.as_bytes().first() {
        Some(&c @ (b'<' | b'>' | b'|' | b'=')) => (Some(c), &name[1..]),
        _ => (None, name.as_str()),
    };
    let kind = *rest.as_bytes().first().context("empty NumPy dtype name")?;
    if !kind.is_ascii_alphabetic() {
        bail!("unsupported NumPy dtype {name:?}");
    }
    // `kind` is ASCII, so byte 1 starts a character.
    let size: usize = rest[1..]
        .parse()
        .ok()
        .filter(|&n| n > 0)
        .with_context(|| format!("unsupported NumPy dtype {name:?}"))?;
    // The BUILD state `(version, byte_order, ...)` says the byte order. A dtype met a second time
    // in one pickle is a memo reference to the object before its BUILD, so it may have no state:
    // then the order is the little-endian every machine that wrote these files used.
    let state_order = match state.as_deref() {
        Some(Value::Tuple(s)) => s
            .get(1)
            .and_then(text_bytes)
            .and_then(|b| b.first().copied()),
        _ => None,
    };
    let big_endian = state_order.or(order) == Some(b'>');
    Ok(NpDtype {
        kind,
        size,
        big_endian,
    })
}

fn fortran_flag(v: &Value) -> Result<bool> {
    match int_value(v) {
        Some(i) => Ok(i != 0),
        None => bail!(
            "NumPy is_fortran flag is a {}, expected a bool",
            v.type_name()
        ),
    }
}

/// The array `v` holds, `None` when `v` is not a pickled NumPy array.
pub(crate) fn np_array(v: &Value) -> Result<Option<NpArray<'_>>> {
    let Value::Object {
        callable,
        args,
        state,
    } = v
    else {
        return Ok(None);
    };
    let (shape, dtype, fortran, raw) = if is_global(callable, &MULTIARRAY, "_reconstruct") {
        let Some(Value::Tuple(s)) = state.as_deref() else {
            bail!("NumPy array without its BUILD state (shape, dtype, data)");
        };
        // (version, shape, dtype, is_fortran, data); very old NumPy omits the version.
        let s = match s.len() {
            5 => &s[1..],
            4 => &s[..],
            n => bail!("NumPy array state has {n} items, expected 4 or 5"),
        };
        (
            shape_of(&s[0])?,
            dtype_of(&s[1])?,
            fortran_flag(&s[2])?,
            &s[3],
        )
    } else if is_global(callable, &NUMERIC, "_frombuffer") {
        let Value::Tuple(a) = args.as_ref() else {
            bail!("numpy _frombuffer without its arguments");
        };
        if a.len() != 4 {
            bail!("numpy _frombuffer has {} arguments, expected 4", a.len());
        }
        let order = text_bytes(&a[3]).context("numpy _frombuffer order is not a string")?;
        (shape_of(&a[2])?, dtype_of(&a[1])?, order == b"F", &a[0])
    } else {
        return Ok(None);
    };
    let Some(data) = text_bytes(raw).filter(|_| !matches!(raw, Value::Str(_))) else {
        bail!(
            "NumPy {dtype} array data is a {}, expected raw bytes (object arrays are not supported)",
            raw.type_name()
        );
    };
    let numel = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .context("NumPy array shape overflows")?;
    let want = numel
        .checked_mul(dtype.size)
        .context("NumPy array size overflows")?;
    if data.len() != want {
        bail!(
            "NumPy {dtype} array of shape {} needs {want} bytes but holds {}",
            super::dims_text(&shape),
            data.len()
        );
    }
    Ok(Some(NpArray {
        shape,
        dtype,
        fortran,
        data,
    }))
}

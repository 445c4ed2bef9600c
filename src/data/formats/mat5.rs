//! The part of the MATLAB v5 MAT-file format (MATLAB 5 through v7, what `save -v7` and SciPy's
//! `savemat` write) that numeric arrays need: the 128-byte header, `miMATRIX` elements, plain or
//! zlib-compressed (`miCOMPRESSED`), with their array flags, dimensions, name and real part, in
//! either byte order, tags in the long or the small (4-byte data) element format.
//!
//! Written here rather than taken from the `matfile` crate because its errors do not say which
//! element or byte offset is at fault, and it would bring `nom` and `libflate` next to the
//! `flate2` this crate already uses.

use anyhow::{bail, Context, Result};
use std::io::Read;
use std::path::Path;

/// MAT-file data types (the `mi*` constants).
const MI_INT8: u32 = 1;
const MI_UINT8: u32 = 2;
const MI_INT16: u32 = 3;
const MI_UINT16: u32 = 4;
const MI_INT32: u32 = 5;
const MI_UINT32: u32 = 6;
const MI_SINGLE: u32 = 7;
const MI_DOUBLE: u32 = 9;
const MI_INT64: u32 = 12;
const MI_UINT64: u32 = 13;
const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;

/// MATLAB array classes (the `mx*_CLASS` constants) this reader names in messages.
pub(crate) const MX_UINT8: u8 = 9;

/// The MATLAB class name for an `mx*_CLASS` value.
pub(crate) fn class_name(class: u8) -> &'static str {
    match class {
        1 => "cell",
        2 => "struct",
        3 => "object",
        4 => "char",
        5 => "sparse",
        6 => "double",
        7 => "single",
        8 => "int8",
        9 => "uint8",
        10 => "int16",
        11 => "uint16",
        12 => "int32",
        13 => "uint32",
        14 => "int64",
        15 => "uint64",
        _ => "unknown",
    }
}

/// Bytes per element of a numeric `mi*` type, `None` for the others.
fn mi_size(t: u32) -> Option<usize> {
    Some(match t {
        MI_INT8 | MI_UINT8 => 1,
        MI_INT16 | MI_UINT16 => 2,
        MI_INT32 | MI_UINT32 | MI_SINGLE => 4,
        MI_DOUBLE | MI_INT64 | MI_UINT64 => 8,
        _ => return None,
    })
}

/// A variable of a MAT-file: a numeric array's name, class, dimensions and real part.
#[derive(Debug)]
pub(crate) struct MatVar {
    /// Variable name.
    pub name: String,
    /// MATLAB class (`mx*_CLASS`).
    pub class: u8,
    /// Dimensions, in MATLAB's column-major sense.
    pub dims: Vec<usize>,
    /// The array has an imaginary part.
    pub complex: bool,
    /// Storage type of the real part (`mi*`); MATLAB may store e.g. a double array as uint8.
    pub data_type: u32,
    /// The real part's bytes, little-endian (converted when the file is big-endian).
    pub data: Vec<u8>,
    /// Byte offset of the variable's element in the file, for messages.
    pub offset: usize,
}

impl MatVar {
    /// Number of elements (product of the dimensions); `usize::MAX` when it overflows, which
    /// no array read from a file can hold.
    pub fn numel(&self) -> usize {
        self.dims
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .unwrap_or(usize::MAX)
    }

    /// The real part as `f64`s, whatever its storage type.
    pub fn to_f64s(&self) -> Vec<f64> {
        let d = &self.data;
        match self.data_type {
            MI_INT8 => d.iter().map(|&b| b as i8 as f64).collect(),
            MI_UINT8 => d.iter().map(|&b| b as f64).collect(),
            MI_INT16 => d
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]) as f64)
                .collect(),
            MI_UINT16 => d
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]) as f64)
                .collect(),
            MI_INT32 => d
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes")) as f64)
                .collect(),
            MI_UINT32 => d
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")) as f64)
                .collect(),
            MI_SINGLE => d
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")) as f64)
                .collect(),
            MI_DOUBLE => d
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect(),
            MI_INT64 => d
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")) as f64)
                .collect(),
            MI_UINT64 => d
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")) as f64)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// True when the real part is stored as bytes (`miUINT8`).
    pub fn is_u8_data(&self) -> bool {
        self.data_type == MI_UINT8
    }
}

/// A cursor over one buffer (the file, or a decompressed element) in the file's byte order.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    big_endian: bool,
    /// Says where `buf` is, for messages: the file, or a compressed element at an offset.
    place: String,
}

impl<'a> Cursor<'a> {
    fn u32_at(&self, at: usize) -> u32 {
        let b: [u8; 4] = self.buf[at..at + 4].try_into().expect("4 bytes");
        if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    }

    /// Reads a data element tag and returns `(type, data range)`, moving past the element
    /// (and its padding to 8 bytes). `padded` is false for top-level compressed elements.
    fn element(&mut self, what: &str) -> Result<(u32, std::ops::Range<usize>)> {
        let at = self.pos;
        if self.buf.len() - at < 8 {
            bail!(
                "truncated {what} at byte offset {at} {}: {} bytes left, a data element tag needs 8",
                self.place,
                self.buf.len() - at
            );
        }
        let first = self.u32_at(at);
        if first >> 16 != 0 {
            // Small data element format: type and size share the first 4 bytes, data the next 4.
            let (t, n) = (first & 0xffff, (first >> 16) as usize);
            if n > 4 {
                bail!(
                    "corrupt {what} at byte offset {at} {}: small data element of {n} bytes (at most 4)",
                    self.place
                );
            }
            self.pos = at + 8;
            return Ok((t, at + 4..at + 4 + n));
        }
        let n = self.u32_at(at + 4) as usize;
        let start = at + 8;
        let left = self.buf.len() - start;
        if n > left {
            bail!(
                "truncated {what} at byte offset {at} {}: it declares {n} bytes but {left} remain",
                self.place
            );
        }
        // Elements are padded to a multiple of 8 bytes; a file may end without the last padding.
        self.pos = (start + n.div_ceil(8) * 8).min(self.buf.len());
        if self.pos < start + n {
            self.pos = start + n;
        }
        Ok((self.u32_at(at), start..start + n))
    }
}

/// Parses the contents of one `miMATRIX` element (`range` of `c.buf`); `None` when its
/// variable is not one of `wanted`.
fn parse_matrix(
    c: &mut Cursor<'_>,
    range: std::ops::Range<usize>,
    offset: usize,
    wanted: &[&str],
) -> Result<Option<MatVar>> {
    let mut sub = Cursor {
        buf: &c.buf[..range.end],
        pos: range.start,
        big_endian: c.big_endian,
        place: c.place.clone(),
    };
    if range.is_empty() {
        // An empty miMATRIX is how MATLAB writes an empty placeholder; nothing to read.
        return Ok(None);
    }
    let (t, flags) = sub.element("array flags")?;
    if t != MI_UINT32 || flags.len() != 8 {
        bail!(
            "corrupt array at byte offset {offset} {}: array flags are type {t}, {} bytes (expected miUINT32, 8 bytes)",
            c.place,
            flags.len()
        );
    }
    let f = sub.u32_at(flags.start);
    let class = (f & 0xff) as u8;
    let complex = f & 0x800 != 0;
    let (t, dims_r) = sub.element("array dimensions")?;
    if t != MI_INT32 || dims_r.len() % 4 != 0 || dims_r.len() < 8 {
        bail!(
            "corrupt array at byte offset {offset} {}: dimensions are type {t}, {} bytes (expected at least two miINT32)",
            c.place,
            dims_r.len()
        );
    }
    let dims: Vec<usize> = dims_r
        .clone()
        .step_by(4)
        .map(|at| sub.u32_at(at) as i32)
        .map(|d| usize::try_from(d).unwrap_or(usize::MAX))
        .collect();
    if dims.contains(&usize::MAX) {
        bail!(
            "corrupt array at byte offset {offset} {}: a negative dimension in {}",
            c.place,
            super::dims_text(
                &dims_r
                    .clone()
                    .step_by(4)
                    .map(|at| sub.u32_at(at) as i32)
                    .collect::<Vec<_>>()
            )
        );
    }
    let (t, name_r) = sub.element("array name")?;
    if t != MI_INT8 && t != MI_UINT8 {
        bail!(
            "corrupt array at byte offset {offset} {}: name is type {t} (expected miINT8)",
            c.place
        );
    }
    let name = String::from_utf8_lossy(&sub.buf[name_r]).into_owned();
    if !wanted.contains(&name.as_str()) {
        return Ok(None);
    }
    let mut var = MatVar {
        name,
        class,
        dims,
        complex,
        data_type: 0,
        data: Vec::new(),
        offset,
    };
    if !(6..=15).contains(&class) {
        // Cells, structs, chars, sparse arrays, objects: no plain real part to read.
        return Ok(Some(var));
    }
    let (t, data_r) = sub.element(&format!("data of variable {:?}", var.name))?;
    let Some(size) = mi_size(t) else {
        bail!(
            "variable {:?} at byte offset {offset} {}: its data has non-numeric type {t}",
            var.name,
            c.place
        );
    };
    let numel = var
        .dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .with_context(|| {
            format!(
                "variable {:?} at byte offset {offset} {}: its dimensions {} multiply past 2^64 \
                 elements (the file holds {} data bytes): the file is corrupt",
                var.name,
                c.place,
                super::dims_text(&var.dims),
                data_r.len()
            )
        })?;
    if numel.checked_mul(size) != Some(data_r.len()) {
        bail!(
            "variable {:?} at byte offset {offset} {}: dimensions {} need {numel} elements of {size} bytes, but its data has {} bytes",
            var.name,
            c.place,
            super::dims_text(&var.dims),
            data_r.len()
        );
    }
    var.data_type = t;
    var.data = sub.buf[data_r].to_vec();
    if c.big_endian && size > 1 {
        for chunk in var.data.chunks_exact_mut(size) {
            chunk.reverse();
        }
    }
    Ok(Some(var))
}

/// Decompresses a `miCOMPRESSED` element; `limit` bounds the output (for reading a name only).
fn inflate(data: &[u8], limit: Option<u64>) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let dec = flate2::read::ZlibDecoder::new(data);
    match limit {
        Some(n) => dec.take(n).read_to_end(&mut out)?,
        None => {
            let mut dec = dec;
            dec.read_to_end(&mut out)?
        }
    };
    Ok(out)
}

/// Reads the variables named in `wanted` from the MAT-file `bytes` (`path` is only used in
/// messages), skipping the others. Fails, naming the file and byte offset, on a truncated or
/// corrupt file; says what to do for v7.3 (HDF5) and v4 files.
pub(crate) fn read_mat_vars(path: &Path, bytes: &[u8], wanted: &[&str]) -> Result<Vec<MatVar>> {
    let p = path.display();
    const HDF5: &[u8] = b"\x89HDF\r\n\x1a\n";
    let is_hdf5 = bytes.starts_with(HDF5) || bytes.get(512..520) == Some(HDF5);
    if is_hdf5
        || bytes
            .get(124..126)
            .is_some_and(|v| v == [0, 2] || v == [2, 0])
    {
        bail!(
            "{p}: a MATLAB v7.3 MAT-file (HDF5), which gunlearn does not read: re-save it in the \
             v7 format (MATLAB: `load` it, then `save(file, 'X', 'y', '-v7')`; Python: \
             scipy.io.savemat(file, {{'X': X, 'y': y}}))"
        );
    }
    if bytes.len() < 128 || !bytes.starts_with(b"MATLAB") {
        bail!(
            "{p}: not a MATLAB v5/v7 MAT-file: it is {} bytes and does not start with the \
             128-byte 'MATLAB 5.0 MAT-file' header (v4 files are not supported either)",
            bytes.len()
        );
    }
    let big_endian = match &bytes[126..128] {
        b"IM" => false,
        b"MI" => true,
        other => bail!(
            "{p}: corrupt MAT-file header: the endian indicator at byte offset 126 is {:02x} {:02x}, \
             expected \"IM\" or \"MI\"",
            other[0],
            other[1]
        ),
    };
    let mut c = Cursor {
        buf: bytes,
        pos: 128,
        big_endian,
        place: "in the file".into(),
    };
    let mut out = Vec::new();
    while c.pos < bytes.len() {
        let at = c.pos;
        let (t, r) = c.element("data element").with_context(|| p.to_string())?;
        match t {
            MI_MATRIX => {
                if let Some(v) =
                    parse_matrix(&mut c, r, at, wanted).with_context(|| p.to_string())?
                {
                    out.push(v);
                }
            }
            MI_COMPRESSED => {
                // Compressed elements are not padded.
                c.pos = r.end;
                let comp = &bytes[r.clone()];
                let corrupt = |e: std::io::Error| {
                    anyhow::anyhow!(
                        "{p}: corrupt zlib stream in the compressed element at byte offset {at}: {e}"
                    )
                };
                // Read the name from the first bytes before inflating a large variable.
                let head = inflate(comp, Some(1024)).map_err(corrupt)?;
                let skip =
                    peek_name(&head, big_endian).is_some_and(|n| !wanted.contains(&n.as_str()));
                if skip {
                    continue;
                }
                let full = inflate(comp, None).map_err(corrupt)?;
                let mut fc = Cursor {
                    buf: &full,
                    pos: 0,
                    big_endian,
                    place: format!("in the compressed element at byte offset {at}"),
                };
                let (t, fr) = fc
                    .element("compressed variable")
                    .with_context(|| p.to_string())?;
                if t != MI_MATRIX {
                    bail!("{p}: the compressed element at byte offset {at} holds type {t}, expected a matrix (14)");
                }
                if let Some(v) =
                    parse_matrix(&mut fc, fr, at, wanted).with_context(|| p.to_string())?
                {
                    out.push(v);
                }
            }
            // Other top-level elements (none in practice) hold no variables.
            _ => {}
        }
    }
    Ok(out)
}

/// The variable name in `head`, the first (possibly cut) decompressed bytes of a compressed
/// variable; `None` when it cannot be read from them.
fn peek_name(head: &[u8], big_endian: bool) -> Option<String> {
    if head.len() < 8 {
        return None;
    }
    // Skip the miMATRIX tag, whose length reaches past the cut, then walk flags, dims, name.
    let mut c = Cursor {
        buf: head,
        pos: 8,
        big_endian,
        place: String::new(),
    };
    if c.u32_at(0) != MI_MATRIX {
        return None;
    }
    c.element("").ok()?;
    c.element("").ok()?;
    let (_, r) = c.element("").ok()?;
    Some(String::from_utf8_lossy(&head[r]).into_owned())
}

//! The subset of Python's pickle format that `torch.save` writes, read into plain data.
//!
//! No maintained Rust crate reads `torch.save` files: `serde-pickle` stops at persistent ids
//! (torch's storages), the crates that do handle them live inside large ML frameworks. This is a
//! small stack machine for protocols 0–5 that never executes code: a global reference stays a
//! name, a call (`REDUCE`, `NEWOBJ`) of an unknown callable becomes an inert [`Value::Object`],
//! and only the few callables `torch.save` emits for containers and tensors are interpreted.

use anyhow::{bail, Context, Result};
use std::collections::HashMap;

/// A storage referenced by a persistent id: its key in the archive, element type and length.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageRef {
    /// Name of the storage record (`data/<key>` in a zip archive).
    pub key: String,
    /// Element type, from the storage class (`FloatStorage` → `float32`).
    pub dtype: DType,
    /// Number of elements.
    pub numel: usize,
}

/// A tensor rebuilt by `torch._utils._rebuild_tensor_v2`: a strided view of a storage.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorRef {
    /// The storage the view reads.
    pub storage: StorageRef,
    /// Offset in elements.
    pub offset: i64,
    /// Shape.
    pub size: Vec<i64>,
    /// Strides in elements.
    pub stride: Vec<i64>,
}

/// Element types of torch storages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    /// float32
    F32,
    /// float64
    F64,
    /// float16
    F16,
    /// bfloat16
    BF16,
    /// int64
    I64,
    /// int32
    I32,
    /// int16
    I16,
    /// int8
    I8,
    /// uint8
    U8,
    /// bool
    Bool,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
        }
    }

    /// The libtorch kind.
    pub fn kind(self) -> tch::Kind {
        use tch::Kind;
        match self {
            DType::F32 => Kind::Float,
            DType::F64 => Kind::Double,
            DType::F16 => Kind::Half,
            DType::BF16 => Kind::BFloat16,
            DType::I64 => Kind::Int64,
            DType::I32 => Kind::Int,
            DType::I16 => Kind::Int16,
            DType::I8 => Kind::Int8,
            DType::U8 => Kind::Uint8,
            DType::Bool => Kind::Bool,
        }
    }

    /// The type for a torch storage class name (`FloatStorage`, `LongStorage`, ...).
    pub fn from_storage_class(name: &str) -> Option<DType> {
        Some(match name {
            "FloatStorage" => DType::F32,
            "DoubleStorage" => DType::F64,
            "HalfStorage" => DType::F16,
            "BFloat16Storage" => DType::BF16,
            "LongStorage" => DType::I64,
            "IntStorage" => DType::I32,
            "ShortStorage" => DType::I16,
            "CharStorage" => DType::I8,
            "ByteStorage" => DType::U8,
            "BoolStorage" => DType::Bool,
            _ => return None,
        })
    }

    /// The torch storage class name (inverse of [`DType::from_storage_class`]).
    pub fn storage_class(self) -> &'static str {
        match self {
            DType::F32 => "FloatStorage",
            DType::F64 => "DoubleStorage",
            DType::F16 => "HalfStorage",
            DType::BF16 => "BFloat16Storage",
            DType::I64 => "LongStorage",
            DType::I32 => "IntStorage",
            DType::I16 => "ShortStorage",
            DType::I8 => "CharStorage",
            DType::U8 => "ByteStorage",
            DType::Bool => "BoolStorage",
        }
    }

    /// The storage type for a libtorch kind, if torch.save can write it.
    pub fn from_kind(kind: tch::Kind) -> Option<DType> {
        use tch::Kind;
        Some(match kind {
            Kind::Float => DType::F32,
            Kind::Double => DType::F64,
            Kind::Half => DType::F16,
            Kind::BFloat16 => DType::BF16,
            Kind::Int64 => DType::I64,
            Kind::Int => DType::I32,
            Kind::Int16 => DType::I16,
            Kind::Int8 => DType::I8,
            Kind::Uint8 => DType::U8,
            Kind::Bool => DType::Bool,
            _ => return None,
        })
    }
}

/// A decoded pickle value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `None`
    None,
    /// `True` / `False`
    Bool(bool),
    /// An int that fits in 64 bits.
    Int(i64),
    /// An int too large for 64 bits (kept as its little-endian two's-complement bytes).
    BigInt(Vec<u8>),
    /// A float.
    Float(f64),
    /// A str.
    Str(String),
    /// bytes / bytearray.
    Bytes(Vec<u8>),
    /// A tuple.
    Tuple(Vec<Value>),
    /// A list (or set).
    List(Vec<Value>),
    /// A dict or OrderedDict, in insertion order.
    Dict(Vec<(Value, Value)>),
    /// A reference to `module.name`.
    Global(String, String),
    /// The result of calling something we do not interpret, with its arguments and state.
    Object {
        callable: Box<Value>,
        args: Box<Value>,
        state: Option<Box<Value>>,
    },
    /// A storage (from a persistent id).
    Storage(StorageRef),
    /// A tensor (or parameter).
    Tensor(TensorRef),
}

impl Value {
    /// The string, if this is a `str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value under string key `key`, if this is a dict.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(items) => items
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// A short description for error messages.
    pub fn type_name(&self) -> String {
        match self {
            Value::None => "None".into(),
            Value::Bool(_) => "bool".into(),
            Value::Int(_) | Value::BigInt(_) => "int".into(),
            Value::Float(_) => "float".into(),
            Value::Str(_) => "str".into(),
            Value::Bytes(_) => "bytes".into(),
            Value::Tuple(_) => "tuple".into(),
            Value::List(_) => "list".into(),
            Value::Dict(_) => "dict".into(),
            Value::Global(m, n) => format!("{m}.{n}"),
            Value::Object { callable, .. } => format!("{} object", callable.type_name()),
            Value::Storage(_) => "storage".into(),
            Value::Tensor(_) => "tensor".into(),
        }
    }
}

/// A value for messages: a number or short string itself, else its type.
fn describe(v: &Value) -> String {
    match v {
        Value::Int(i) => i.to_string(),
        Value::Str(s) if s.len() <= 40 => format!("'{s}'"),
        other => format!("a {}", other.type_name()),
    }
}

/// Stack entries: values with their nesting depth, or the MARK sentinel.
enum Slot {
    Mark,
    Value(Value, usize),
}

/// Deepest nesting of containers a pickle may build. torch.save and NumPy files nest a few
/// levels; a crafted file could nest millions (one TUPLE1 byte each), and dropping such a value
/// would overflow the stack.
pub const MAX_DEPTH: usize = 1000;

/// Approximate heap bytes of a value, to bound what copies of memo entries (DUP, GET, PUT)
/// may allocate: a few bytes of pickle can otherwise double a value again and again.
fn heap_cost(v: &Value) -> usize {
    let own = std::mem::size_of::<Value>();
    let inner = match v {
        Value::None | Value::Bool(_) | Value::Int(_) | Value::Float(_) => 0,
        Value::BigInt(b) | Value::Bytes(b) => b.len(),
        Value::Str(s) => s.len(),
        Value::Tuple(items) | Value::List(items) => items.iter().map(heap_cost).sum(),
        Value::Dict(items) => items
            .iter()
            .map(|(k, v)| heap_cost(k).saturating_add(heap_cost(v)))
            .sum(),
        Value::Global(m, n) => m.len() + n.len(),
        Value::Object {
            callable,
            args,
            state,
        } => heap_cost(callable)
            .saturating_add(heap_cost(args))
            .saturating_add(state.as_deref().map_or(0, heap_cost)),
        Value::Storage(s) => s.key.len(),
        Value::Tensor(t) => t.storage.key.len() + 8 * (t.size.len() + t.stride.len()),
    };
    own.saturating_add(inner)
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let Some(end) = end else {
            bail!(
                "truncated pickle: wanted {n} bytes at offset {}, {} left",
                self.pos,
                self.data.len() - self.pos
            );
        };
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn line_bytes(&mut self) -> Result<&'a [u8]> {
        let rest = &self.data[self.pos..];
        let Some(n) = rest.iter().position(|&b| b == b'\n') else {
            bail!(
                "truncated pickle: unterminated text argument at offset {}",
                self.pos
            );
        };
        self.pos += n + 1;
        Ok(&rest[..n])
    }
    fn line(&mut self) -> Result<&'a str> {
        let b = self.line_bytes()?;
        std::str::from_utf8(b)
            .with_context(|| format!("pickle: text argument at offset {} is not UTF-8", self.pos))
    }
    fn utf8(&mut self, n: usize) -> Result<String> {
        let at = self.pos;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec())
            .with_context(|| format!("pickle: string at offset {at} is not UTF-8"))
    }
}

/// Decodes a little-endian two's-complement integer (pickle's LONG1/LONG4 payload).
fn long_value(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Int(0);
    }
    if bytes.len() <= 8 {
        let negative = bytes[bytes.len() - 1] & 0x80 != 0;
        let mut buf = if negative { [0xffu8; 8] } else { [0u8; 8] };
        buf[..bytes.len()].copy_from_slice(bytes);
        return Value::Int(i64::from_le_bytes(buf));
    }
    Value::BigInt(bytes.to_vec())
}

/// The persistent id of a torch storage: `('storage', StorageClass, key, location, numel[, view])`.
fn storage_from_pid(pid: Value) -> Result<Value> {
    let Value::Tuple(items) = &pid else {
        bail!("pickle: persistent id is a {}, expected a tuple ('storage', type, key, location, size)", pid.type_name());
    };
    if items.len() < 5 || items[0].as_str() != Some("storage") {
        let first = items
            .first()
            .map_or_else(|| "nothing".to_string(), describe);
        bail!(
            "pickle: unsupported persistent id: a tuple of {} items starting with {first}, \
             expected ('storage', type, key, location, size) (not a torch storage)",
            items.len()
        );
    }
    let dtype = match &items[1] {
        Value::Global(_, name) => DType::from_storage_class(name)
            .with_context(|| format!("pickle: unsupported storage type {name}"))?,
        other => bail!(
            "pickle: storage type is a {}, expected a torch storage class",
            other.type_name()
        ),
    };
    let key = match &items[2] {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        other => bail!("pickle: storage key is a {}", other.type_name()),
    };
    let numel = match &items[4] {
        Value::Int(n) if *n >= 0 => *n as usize,
        other => bail!(
            "pickle: storage size {} is not a non-negative int",
            describe(other)
        ),
    };
    if items.len() > 5 && items[5] != Value::None {
        bail!("pickle: storage views (legacy torch < 0.4 files) are not supported");
    }
    Ok(Value::Storage(StorageRef { key, dtype, numel }))
}

fn int_list(v: &Value, what: &str) -> Result<Vec<i64>> {
    let (Value::Tuple(items) | Value::List(items)) = v else {
        bail!(
            "pickle: tensor {what} is a {}, expected a tuple",
            v.type_name()
        );
    };
    items
        .iter()
        .map(|x| match x {
            Value::Int(i) => Ok(*i),
            other => bail!("pickle: tensor {what} holds a {}", other.type_name()),
        })
        .collect()
}

/// Applies `callable(*args)` for the callables torch.save emits; anything else stays inert.
fn call(callable: Value, args: Value) -> Result<Value> {
    let (module, name) = match &callable {
        Value::Global(m, n) => (m.as_str(), n.as_str()),
        _ => ("", ""),
    };
    let items = match &args {
        Value::Tuple(items) => items.as_slice(),
        _ => &[],
    };
    match (module, name) {
        ("collections", "OrderedDict") | ("builtins", "dict") | ("__builtin__", "dict")
            if items.is_empty() =>
        {
            Ok(Value::Dict(Vec::new()))
        }
        ("torch._utils", "_rebuild_tensor_v2") | ("torch._utils", "_rebuild_tensor") => {
            if items.len() < 4 {
                bail!(
                    "pickle: {name} called with {} arguments, expected at least 4",
                    items.len()
                );
            }
            let Value::Storage(storage) = &items[0] else {
                bail!(
                    "pickle: {name} on a {}, expected a storage",
                    items[0].type_name()
                );
            };
            let Value::Int(offset) = items[1] else {
                bail!(
                    "pickle: {name}: storage offset is a {}",
                    items[1].type_name()
                );
            };
            Ok(Value::Tensor(TensorRef {
                storage: storage.clone(),
                offset,
                size: int_list(&items[2], "size")?,
                stride: int_list(&items[3], "stride")?,
            }))
        }
        // A Parameter pickles as its data tensor plus requires_grad and hooks.
        ("torch._utils", "_rebuild_parameter")
        | ("torch._utils", "_rebuild_parameter_with_state") => items
            .first()
            .cloned()
            .with_context(|| format!("pickle: {name} without arguments")),
        // Protocol-2 empty bytes: bytes().
        ("__builtin__", "bytes") | ("builtins", "bytes") if items.is_empty() => {
            Ok(Value::Bytes(Vec::new()))
        }
        // Protocol-2 bytes: _codecs.encode(str, 'latin1').
        ("_codecs", "encode") if items.len() == 2 => match &items[0] {
            Value::Str(s) => Ok(Value::Bytes(s.chars().map(|c| c as u32 as u8).collect())),
            _ => Ok(Value::Object {
                callable: Box::new(callable),
                args: Box::new(args),
                state: None,
            }),
        },
        _ => Ok(Value::Object {
            callable: Box::new(callable),
            args: Box::new(args),
            state: None,
        }),
    }
}

/// How Python 2 `str` values (opcodes STRING, BINSTRING, SHORT_BINSTRING) are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Py2Str {
    /// As text ([`Value::Str`], invalid UTF-8 replaced), as `torch.load` does.
    Text,
    /// As raw bytes ([`Value::Bytes`]), as `pickle.load(f, encoding='bytes')` does: Python 2
    /// wrote binary payloads such as NumPy array data as `str`.
    Bytes,
}

/// Decodes one pickle from `data`, returning the value and the number of bytes consumed.
/// Python 2 `str` values become text, as `torch.load` reads them.
pub fn parse(data: &[u8]) -> Result<(Value, usize)> {
    parse_with(data, Py2Str::Text)
}

/// Decodes a protocol-0 UNICODE argument, Python's `raw-unicode-escape`: each byte is the
/// character of that code (Latin-1), except `\\uXXXX` and `\\UXXXXXXXX` escapes.
fn raw_unicode_escape(b: &[u8], at: usize) -> Result<String> {
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let digits = match (b[i], b.get(i + 1)) {
            (b'\\', Some(b'u')) => 4,
            (b'\\', Some(b'U')) => 8,
            (c, _) => {
                out.push(c as char);
                i += 1;
                continue;
            }
        };
        let c = b
            .get(i + 2..i + 2 + digits)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .and_then(char::from_u32)
            .with_context(|| format!("pickle: bad \\u escape in UNICODE at offset {at}"))?;
        out.push(c);
        i += 2 + digits;
    }
    Ok(out)
}

/// Undoes the escapes of a protocol-0 STRING argument (Python's `repr` of a byte string).
fn unescape_py2_str(s: &str, at: usize) -> Result<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let Some(&e) = b.get(i + 1) else {
            bail!("pickle: STRING at offset {at} ends in a lone backslash");
        };
        i += 2;
        out.push(match e {
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'a' => 0x07,
            b'b' => 0x08,
            b'f' => 0x0c,
            b'v' => 0x0b,
            b'\\' | b'\'' | b'"' => e,
            b'x' => {
                let hex = b
                    .get(i..i + 2)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .with_context(|| format!("pickle: bad \\x escape in STRING at offset {at}"))?;
                i += 2;
                hex
            }
            b'0'..=b'7' => {
                // Up to three octal digits, the first already read.
                let mut v = (e - b'0') as u32;
                for _ in 0..2 {
                    match b.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            v = v * 8 + (d - b'0') as u32;
                            i += 1;
                        }
                        _ => break,
                    }
                }
                u8::try_from(v).with_context(|| {
                    format!("pickle: octal escape above 255 in STRING at offset {at}")
                })?
            }
            other => bail!(
                "pickle: unknown escape \\{} in STRING at offset {at}",
                other as char
            ),
        });
    }
    Ok(out)
}

/// Decodes one pickle from `data` like [`parse`], decoding Python 2 `str` values as `py2_str` says.
pub fn parse_with(data: &[u8], py2_str: Py2Str) -> Result<(Value, usize)> {
    let mut r = Reader { data, pos: 0 };
    let mut stack: Vec<Slot> = Vec::new();
    let mut memo: HashMap<u64, (Value, usize)> = HashMap::new();
    // Heap bytes that copies of values may still take (see `heap_cost`): far more than any
    // real file needs (torch.save and NumPy memoise each value once), far less than a
    // doubling attack would.
    let mut copy_budget = data.len().saturating_mul(16).saturating_add(1 << 20);
    let mut copy = |v: &Value, at: usize| -> Result<Value> {
        let cost = heap_cost(v);
        if cost > copy_budget {
            bail!(
                "corrupt pickle: the memo copies at offset {at} would take more than 16 times \
                 the pickle's {} bytes of memory; a real file copies far less",
                data.len()
            );
        }
        copy_budget -= cost;
        Ok(v.clone())
    };

    fn pop_d(stack: &mut Vec<Slot>, at: usize) -> Result<(Value, usize)> {
        match stack.pop() {
            Some(Slot::Value(v, d)) => Ok((v, d)),
            Some(Slot::Mark) => bail!("corrupt pickle: unexpected MARK at offset {at}"),
            None => bail!("corrupt pickle: stack underflow at offset {at}"),
        }
    }
    fn pop(stack: &mut Vec<Slot>, at: usize) -> Result<Value> {
        Ok(pop_d(stack, at)?.0)
    }
    /// The values above the last MARK and their deepest nesting.
    fn pop_mark(stack: &mut Vec<Slot>, at: usize) -> Result<(Vec<Value>, usize)> {
        let Some(m) = stack.iter().rposition(|s| matches!(s, Slot::Mark)) else {
            bail!("corrupt pickle: no MARK for the opcode at offset {at}");
        };
        let items = stack.split_off(m + 1);
        stack.pop();
        let mut depth = 0;
        let values = items
            .into_iter()
            .map(|s| match s {
                Slot::Value(v, d) => {
                    depth = depth.max(d);
                    v
                }
                Slot::Mark => unreachable!("marks after the last one"),
            })
            .collect();
        Ok((values, depth))
    }
    fn top_d(stack: &mut [Slot], at: usize) -> Result<(&mut Value, &mut usize)> {
        match stack.last_mut() {
            Some(Slot::Value(v, d)) => Ok((v, d)),
            _ => bail!("corrupt pickle: no value on the stack at offset {at}"),
        }
    }
    /// The top value, about to hold a child of nesting `child`: its depth grows to fit.
    fn top_holding(stack: &mut [Slot], child: usize, at: usize) -> Result<&mut Value> {
        let (v, d) = top_d(stack, at)?;
        *d = (*d).max(deeper(child, at)?);
        Ok(v)
    }
    /// The depth of a container holding values nested `child` deep, refused past MAX_DEPTH.
    fn deeper(child: usize, at: usize) -> Result<usize> {
        if child >= MAX_DEPTH {
            bail!(
                "corrupt pickle: containers nested more than {MAX_DEPTH} deep at offset {at}; \
                 a real checkpoint or data file nests a few levels"
            );
        }
        Ok(child + 1)
    }
    fn push(stack: &mut Vec<Slot>, v: Value) {
        stack.push(Slot::Value(v, 0));
    }
    fn push_d(stack: &mut Vec<Slot>, v: Value, depth: usize) {
        stack.push(Slot::Value(v, depth));
    }
    fn set_items(target: &mut Value, items: Vec<Value>, at: usize) -> Result<()> {
        let Value::Dict(d) = target else {
            bail!(
                "corrupt pickle: SETITEMS on a {} at offset {at}",
                target.type_name()
            );
        };
        if !items.len().is_multiple_of(2) {
            bail!("corrupt pickle: odd number of SETITEMS entries at offset {at}");
        }
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            if let Some(slot) = d.iter_mut().find(|(old, _)| *old == k) {
                slot.1 = v;
            } else {
                d.push((k, v));
            }
        }
        Ok(())
    }
    fn append(target: &mut Value, items: Vec<Value>, at: usize) -> Result<()> {
        match target {
            Value::List(l) => l.extend(items),
            other => bail!(
                "corrupt pickle: APPEND on a {} at offset {at}",
                other.type_name()
            ),
        }
        Ok(())
    }

    loop {
        let at = r.pos;
        let op = r.u8().context("pickle ended without STOP")?;
        match op {
            0x80 => {
                let proto = r.u8()?;
                if proto > 5 {
                    bail!("pickle protocol {proto} is not supported (at most 5)");
                }
            }
            0x95 => {
                r.u64()?; // FRAME: a length hint only
            }
            b'.' => {
                let v = pop(&mut stack, at)?;
                return Ok((v, r.pos));
            }
            b'(' => stack.push(Slot::Mark),
            b'0' => {
                stack.pop();
            }
            b'1' => {
                pop_mark(&mut stack, at)?;
            }
            b'2' => {
                let (v, d) = top_d(&mut stack, at)?;
                let (v, d) = (copy(v, at)?, *d);
                push_d(&mut stack, v, d);
            }
            b'N' => push(&mut stack, Value::None),
            0x88 => push(&mut stack, Value::Bool(true)),
            0x89 => push(&mut stack, Value::Bool(false)),
            b'J' => {
                let v = r.u32()? as i32;
                push(&mut stack, Value::Int(v as i64));
            }
            b'K' => {
                let v = r.u8()?;
                push(&mut stack, Value::Int(v as i64));
            }
            b'M' => {
                let v = r.u16()?;
                push(&mut stack, Value::Int(v as i64));
            }
            0x8a => {
                let n = r.u8()? as usize;
                let b = r.take(n)?;
                push(&mut stack, long_value(b));
            }
            0x8b => {
                let n = r.u32()? as usize;
                let b = r.take(n)?;
                push(&mut stack, long_value(b));
            }
            b'I' => {
                let s = r.line()?;
                let v = match s {
                    "00" => Value::Bool(false),
                    "01" => Value::Bool(true),
                    _ => Value::Int(
                        s.parse()
                            .with_context(|| format!("pickle: bad INT {s:?} at offset {at}"))?,
                    ),
                };
                push(&mut stack, v);
            }
            b'L' => {
                let s = r.line()?.trim_end_matches('L');
                let v = s.parse().with_context(|| {
                    format!("pickle: LONG {s:?} at offset {at} does not fit 64 bits")
                })?;
                push(&mut stack, Value::Int(v));
            }
            b'G' => {
                let v = f64::from_be_bytes(r.take(8)?.try_into().expect("8 bytes"));
                push(&mut stack, Value::Float(v));
            }
            b'F' => {
                let s = r.line()?;
                let v = s
                    .parse()
                    .with_context(|| format!("pickle: bad FLOAT {s:?} at offset {at}"))?;
                push(&mut stack, Value::Float(v));
            }
            b'X' => {
                let n = r.u32()? as usize;
                let s = r.utf8(n)?;
                push(&mut stack, Value::Str(s));
            }
            0x8c => {
                let n = r.u8()? as usize;
                let s = r.utf8(n)?;
                push(&mut stack, Value::Str(s));
            }
            0x8d => {
                let n = r.u64()? as usize;
                let s = r.utf8(n)?;
                push(&mut stack, Value::Str(s));
            }
            b'V' => {
                let s = raw_unicode_escape(r.line_bytes()?, at)?;
                push(&mut stack, Value::Str(s));
            }
            // Python 2 byte strings (BINSTRING, SHORT_BINSTRING): torch decodes them as text.
            b'T' | b'U' => {
                let n = if op == b'T' {
                    r.u32()? as usize
                } else {
                    r.u8()? as usize
                };
                let b = r.take(n)?;
                let v = match py2_str {
                    Py2Str::Text => Value::Str(String::from_utf8_lossy(b).into_owned()),
                    Py2Str::Bytes => Value::Bytes(b.to_vec()),
                };
                push(&mut stack, v);
            }
            b'S' => {
                let s = r.line()?;
                let v = match py2_str {
                    Py2Str::Text => {
                        Value::Str(s.trim_matches(|c| c == '\'' || c == '"').to_string())
                    }
                    Py2Str::Bytes => {
                        let q = s.as_bytes().first().copied();
                        let quoted = s.len() >= 2
                            && matches!(q, Some(b'\'' | b'"'))
                            && s.as_bytes()[s.len() - 1] == q.unwrap_or(0);
                        if !quoted {
                            bail!("pickle: STRING at offset {at} is not quoted");
                        }
                        Value::Bytes(unescape_py2_str(&s[1..s.len() - 1], at)?)
                    }
                };
                push(&mut stack, v);
            }
            b'B' => {
                let n = r.u32()? as usize;
                let b = r.take(n)?.to_vec();
                push(&mut stack, Value::Bytes(b));
            }
            b'C' => {
                let n = r.u8()? as usize;
                let b = r.take(n)?.to_vec();
                push(&mut stack, Value::Bytes(b));
            }
            0x8e | 0x96 => {
                let n = r.u64()? as usize;
                let b = r.take(n)?.to_vec();
                push(&mut stack, Value::Bytes(b));
            }
            b')' => push(&mut stack, Value::Tuple(Vec::new())),
            b't' => {
                let (items, d) = pop_mark(&mut stack, at)?;
                push_d(&mut stack, Value::Tuple(items), deeper(d, at)?);
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                let mut items = Vec::with_capacity(n);
                let mut depth = 0;
                for _ in 0..n {
                    let (v, d) = pop_d(&mut stack, at)?;
                    depth = depth.max(d);
                    items.push(v);
                }
                items.reverse();
                push_d(&mut stack, Value::Tuple(items), deeper(depth, at)?);
            }
            b']' => push(&mut stack, Value::List(Vec::new())),
            b'l' => {
                let (items, d) = pop_mark(&mut stack, at)?;
                push_d(&mut stack, Value::List(items), deeper(d, at)?);
            }
            b'}' => push(&mut stack, Value::Dict(Vec::new())),
            b'd' => {
                let (items, d) = pop_mark(&mut stack, at)?;
                let mut dict = Value::Dict(Vec::new());
                set_items(&mut dict, items, at)?;
                push_d(&mut stack, dict, deeper(d, at)?);
            }
            0x8f => push(&mut stack, Value::List(Vec::new())), // EMPTY_SET
            0x90 => {
                let (items, d) = pop_mark(&mut stack, at)?;
                append(top_holding(&mut stack, d, at)?, items, at)?;
            }
            0x91 => {
                let (items, d) = pop_mark(&mut stack, at)?;
                push_d(&mut stack, Value::List(items), deeper(d, at)?);
            }
            b'a' => {
                let (v, d) = pop_d(&mut stack, at)?;
                append(top_holding(&mut stack, d, at)?, vec![v], at)?;
            }
            b'e' => {
                let (items, d) = pop_mark(&mut stack, at)?;
                append(top_holding(&mut stack, d, at)?, items, at)?;
            }
            b's' => {
                let (v, dv) = pop_d(&mut stack, at)?;
                let (k, dk) = pop_d(&mut stack, at)?;
                set_items(top_holding(&mut stack, dv.max(dk), at)?, vec![k, v], at)?;
            }
            b'u' => {
                let (items, d) = pop_mark(&mut stack, at)?;
                set_items(top_holding(&mut stack, d, at)?, items, at)?;
            }
            b'c' => {
                let module = r.line()?.to_string();
                let name = r.line()?.to_string();
                push(&mut stack, Value::Global(module, name));
            }
            0x93 => {
                let name = pop(&mut stack, at)?;
                let module = pop(&mut stack, at)?;
                match (module, name) {
                    (Value::Str(m), Value::Str(n)) => push(&mut stack, Value::Global(m, n)),
                    _ => bail!("corrupt pickle: STACK_GLOBAL without two strings at offset {at}"),
                }
            }
            b'R' => {
                let (args, da) = pop_d(&mut stack, at)?;
                let (callable, dc) = pop_d(&mut stack, at)?;
                let v = call(callable, args).with_context(|| format!("at pickle offset {at}"))?;
                push_d(&mut stack, v, deeper(da.max(dc), at)?);
            }
            0x81 => {
                let (args, da) = pop_d(&mut stack, at)?;
                let (class, dc) = pop_d(&mut stack, at)?;
                let v = call(class, args).with_context(|| format!("at pickle offset {at}"))?;
                push_d(&mut stack, v, deeper(da.max(dc), at)?);
            }
            0x92 => {
                let _kwargs = pop(&mut stack, at)?;
                let (args, da) = pop_d(&mut stack, at)?;
                let (class, dc) = pop_d(&mut stack, at)?;
                let v = call(class, args).with_context(|| format!("at pickle offset {at}"))?;
                push_d(&mut stack, v, deeper(da.max(dc), at)?);
            }
            b'b' => {
                let (state, ds) = pop_d(&mut stack, at)?;
                match top_holding(&mut stack, ds, at)? {
                    // OrderedDict attributes (`_metadata`) and tensor state are irrelevant here.
                    Value::Dict(_) | Value::Tensor(_) => {}
                    Value::Object { state: s, .. } => *s = Some(Box::new(state)),
                    _ => {}
                }
            }
            b'Q' => {
                let pid = pop(&mut stack, at)?;
                let v = storage_from_pid(pid).with_context(|| format!("at pickle offset {at}"))?;
                push(&mut stack, v);
            }
            b'P' => {
                bail!("pickle: text persistent ids (PERSID at offset {at}) are not torch storages")
            }
            b'q' => {
                let i = r.u8()? as u64;
                {
                    let (v, d) = top_d(&mut stack, at)?;
                    let entry = (copy(v, at)?, *d);
                    memo.insert(i, entry);
                }
            }
            b'r' => {
                let i = r.u32()? as u64;
                {
                    let (v, d) = top_d(&mut stack, at)?;
                    let entry = (copy(v, at)?, *d);
                    memo.insert(i, entry);
                }
            }
            b'p' => {
                let i: u64 = r
                    .line()?
                    .parse()
                    .with_context(|| format!("pickle: bad PUT at offset {at}"))?;
                {
                    let (v, d) = top_d(&mut stack, at)?;
                    let entry = (copy(v, at)?, *d);
                    memo.insert(i, entry);
                }
            }
            0x94 => {
                let i = memo.len() as u64;
                {
                    let (v, d) = top_d(&mut stack, at)?;
                    let entry = (copy(v, at)?, *d);
                    memo.insert(i, entry);
                }
            }
            b'h' | b'j' | b'g' => {
                let i = match op {
                    b'h' => r.u8()? as u64,
                    b'j' => r.u32()? as u64,
                    _ => r
                        .line()?
                        .parse()
                        .with_context(|| format!("pickle: bad GET at offset {at}"))?,
                };
                let (v, d) = memo.get(&i).with_context(|| {
                    format!("corrupt pickle: memo entry {i} unset at offset {at}")
                })?;
                let v = copy(v, at)?;
                push_d(&mut stack, v, *d);
            }
            other => bail!("pickle: unsupported opcode 0x{other:02x} at offset {at}"),
        }
    }
}

/// Writes pickles (protocol 2) of the shape `torch.save(state_dict)` produces.
pub struct Writer {
    /// The pickle bytes so far.
    pub out: Vec<u8>,
    memo: u32,
}

impl Default for Writer {
    fn default() -> Self {
        Writer::new()
    }
}

impl Writer {
    /// A writer that has emitted `PROTO 2`.
    pub fn new() -> Writer {
        Writer {
            out: vec![0x80, 2],
            memo: 0,
        }
    }

    fn put(&mut self) {
        // Every container gets a memo slot, as Python's pickler does; nothing refers back to it.
        self.out.push(b'r');
        self.out.extend_from_slice(&self.memo.to_le_bytes());
        self.memo += 1;
    }

    /// `module.name` reference.
    pub fn global(&mut self, module: &str, name: &str) {
        self.out.push(b'c');
        self.out.extend_from_slice(module.as_bytes());
        self.out.push(b'\n');
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(b'\n');
        self.put();
    }

    /// A str.
    pub fn str(&mut self, s: &str) {
        self.out.push(b'X');
        self.out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.out.extend_from_slice(s.as_bytes());
        self.put();
    }

    /// An int.
    pub fn int(&mut self, v: i64) {
        if (0..256).contains(&v) {
            self.out.extend_from_slice(&[b'K', v as u8]);
        } else if let Ok(v32) = i32::try_from(v) {
            self.out.push(b'J');
            self.out.extend_from_slice(&v32.to_le_bytes());
        } else {
            self.out.extend_from_slice(&[0x8a, 8]);
            self.out.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// A bool.
    pub fn bool(&mut self, v: bool) {
        self.out.push(if v { 0x88 } else { 0x89 });
    }

    /// A tuple of ints.
    pub fn int_tuple(&mut self, values: &[i64]) {
        self.out.push(b'(');
        for &v in values {
            self.int(v);
        }
        self.out.push(b't');
        self.put();
    }

    /// A MARK.
    pub fn mark(&mut self) {
        self.out.push(b'(');
    }

    /// Raw opcode bytes.
    pub fn op(&mut self, op: u8) {
        self.out.push(op);
    }

    /// An empty `collections.OrderedDict()` left on the stack.
    pub fn ordered_dict(&mut self) {
        self.global("collections", "OrderedDict");
        self.out.push(b')');
        self.out.push(b'R');
        self.put();
    }

    /// `torch._utils._rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict())` for a
    /// contiguous tensor whose bytes are storage `key` of `numel` elements of `dtype`.
    pub fn tensor(&mut self, key: &str, dtype: DType, numel: usize, size: &[i64]) {
        self.global("torch._utils", "_rebuild_tensor_v2");
        self.mark();
        // Persistent id ('storage', torch.FloatStorage, key, 'cpu', numel).
        self.mark();
        self.str("storage");
        self.global("torch", dtype.storage_class());
        self.str(key);
        self.str("cpu");
        self.int(numel as i64);
        self.out.push(b't');
        self.put();
        self.out.push(b'Q');
        self.int(0);
        self.int_tuple(size);
        let mut stride = vec![1i64; size.len()];
        for i in (0..size.len().saturating_sub(1)).rev() {
            stride[i] = stride[i + 1] * size[i + 1].max(1);
        }
        self.int_tuple(&stride);
        self.bool(false);
        self.ordered_dict();
        self.out.push(b't');
        self.put();
        self.out.push(b'R');
        self.put();
    }

    /// Ends the pickle.
    pub fn finish(mut self) -> Vec<u8> {
        self.out.push(b'.');
        self.out
    }
}

//! GGUF v2/v3 reader: metadata, tensor directory and memory-mapped tensor data.
//!
//! The whole file is memory-mapped once; tensors are borrowed slices of the map, so
//! loading a model costs page faults, not copies. Every offset and length read from
//! the file is checked against the file size before use, so a truncated or corrupt
//! file yields [`Error::Truncated`] naming what was being read, never a panic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::quant::{GgmlType, WeightBytes};

/// One metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    /// `uint8`.
    U8(u8),
    /// `int8`.
    I8(i8),
    /// `uint16`.
    U16(u16),
    /// `int16`.
    I16(i16),
    /// `uint32`.
    U32(u32),
    /// `int32`.
    I32(i32),
    /// `uint64`.
    U64(u64),
    /// `int64`.
    I64(i64),
    /// `float32`.
    F32(f32),
    /// `float64`.
    F64(f64),
    /// `bool`.
    Bool(bool),
    /// `string`.
    Str(String),
    /// `array` of any one type.
    Array(Vec<MetaValue>),
}

impl MetaValue {
    /// The value as an unsigned integer, if it is any integer type that fits.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetaValue::U8(v) => Some(v as u64),
            MetaValue::U16(v) => Some(v as u64),
            MetaValue::U32(v) => Some(v as u64),
            MetaValue::U64(v) => Some(v),
            MetaValue::I8(v) => u64::try_from(v).ok(),
            MetaValue::I16(v) => u64::try_from(v).ok(),
            MetaValue::I32(v) => u64::try_from(v).ok(),
            MetaValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as a signed integer, if it is any integer type that fits.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            MetaValue::I8(v) => Some(v as i64),
            MetaValue::I16(v) => Some(v as i64),
            MetaValue::I32(v) => Some(v as i64),
            MetaValue::I64(v) => Some(v),
            _ => self.as_u64().and_then(|v| i64::try_from(v).ok()),
        }
    }

    /// The value as a float, if it is a float type.
    pub fn as_f32(&self) -> Option<f32> {
        match *self {
            MetaValue::F32(v) => Some(v),
            MetaValue::F64(v) => Some(v as f32),
            _ => None,
        }
    }

    /// The value as a string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a bool, if it is one.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            MetaValue::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The value as an array, if it is one.
    pub fn as_array(&self) -> Option<&[MetaValue]> {
        match self {
            MetaValue::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// Where a tensor lives in the file and how it is stored.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    /// The tensor's name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Dimensions in GGML order: `dims[0]` is the contiguous (row) length.
    pub dims: Vec<usize>,
    /// Storage type.
    pub dtype: GgmlType,
    /// Absolute byte offset of the data in the file.
    pub offset: usize,
    /// Byte length of the data.
    pub n_bytes: usize,
}

impl TensorInfo {
    /// Number of elements.
    pub fn n_elements(&self) -> usize {
        self.dims.iter().product()
    }
}

/// An opened GGUF file.
pub struct GgufFile {
    path: PathBuf,
    /// Format version (2 or 3).
    pub version: u32,
    /// All metadata key/value pairs.
    pub metadata: BTreeMap<String, MetaValue>,
    /// The tensor directory, in file order.
    pub tensors: Vec<TensorInfo>,
    by_name: BTreeMap<String, usize>,
    mmap: Arc<memmap2::Mmap>,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("n_metadata", &self.metadata.len())
            .field("n_tensors", &self.tensors.len())
            .finish()
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
    version: u32,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &dyn Fn() -> String) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len());
        match end {
            Some(end) => {
                let slice = &self.bytes[self.pos..end];
                self.pos = end;
                Ok(slice)
            }
            None => Err(Error::Truncated {
                path: self.path.to_path_buf(),
                what: what(),
            }),
        }
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// Counts and lengths are u32 in GGUF v1 and u64 since v2; a count larger than
    /// the file cannot be honest, which bounds allocations made from it.
    fn count(&mut self, what: &dyn Fn() -> String) -> Result<usize> {
        let n = if self.version == 1 {
            self.u32(what)? as u64
        } else {
            self.u64(what)?
        };
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.bytes.len())
            .ok_or_else(|| Error::Truncated {
                path: self.path.to_path_buf(),
                what: what(),
            })
    }

    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String> {
        let n = self.count(what)?;
        let bytes = self.take(n, what)?;
        // Real vocabularies contain invalid UTF-8 in a few tokens; keep them lossy
        // rather than refusing the file.
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }

    fn value(&mut self, type_id: u32, what: &dyn Fn() -> String) -> Result<MetaValue> {
        Ok(match type_id {
            0 => MetaValue::U8(self.array::<1>(what)?[0]),
            1 => MetaValue::I8(self.array::<1>(what)?[0] as i8),
            2 => MetaValue::U16(u16::from_le_bytes(self.array(what)?)),
            3 => MetaValue::I16(i16::from_le_bytes(self.array(what)?)),
            4 => MetaValue::U32(u32::from_le_bytes(self.array(what)?)),
            5 => MetaValue::I32(i32::from_le_bytes(self.array(what)?)),
            6 => MetaValue::F32(f32::from_le_bytes(self.array(what)?)),
            7 => MetaValue::Bool(self.array::<1>(what)?[0] != 0),
            8 => MetaValue::Str(self.string(what)?),
            9 => {
                let elem_type = self.u32(what)?;
                let n = self.count(what)?;
                let mut items = Vec::with_capacity(n.min(1 << 20));
                for _ in 0..n {
                    items.push(self.value(elem_type, what)?);
                }
                MetaValue::Array(items)
            }
            10 => MetaValue::U64(u64::from_le_bytes(self.array(what)?)),
            11 => MetaValue::I64(i64::from_le_bytes(self.array(what)?)),
            12 => MetaValue::F64(f64::from_le_bytes(self.array(what)?)),
            other => {
                return Err(Error::Format {
                    path: self.path.to_path_buf(),
                    message: format!("{}: unknown metadata value type {other}", what()),
                })
            }
        })
    }
}

impl GgufFile {
    /// Opens and parses a GGUF file, memory-mapping its tensor data.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        let file = std::fs::File::open(&path).map_err(io)?;
        // SAFETY: the map is read-only; a file truncated underneath us by another
        // process is outside what any mmap-based reader can defend against.
        let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        Self::parse(path, mmap)
    }

    fn parse(path: PathBuf, mmap: memmap2::Mmap) -> Result<Self> {
        let mut cur = Cursor {
            bytes: &mmap,
            pos: 0,
            path: &path,
            version: 3,
        };
        let magic: [u8; 4] = cur.array(&|| "the header".into())?;
        if &magic != b"GGUF" {
            return Err(Error::BadMagic { path, found: magic });
        }
        let version = cur.u32(&|| "the header".into())?;
        if !(2..=3).contains(&version) {
            return Err(Error::UnsupportedVersion { path, version });
        }
        cur.version = version;
        let n_tensors = cur.count(&|| "the tensor count".into())?;
        let n_kv = cur.count(&|| "the metadata count".into())?;

        let mut metadata = BTreeMap::new();
        for idx in 0..n_kv {
            let key = cur.string(&|| format!("metadata key #{idx}"))?;
            let what = || format!("metadata `{key}`");
            let type_id = cur.u32(&what)?;
            let value = cur.value(type_id, &what)?;
            metadata.insert(key, value);
        }

        let mut raw = Vec::with_capacity(n_tensors.min(1 << 16));
        for idx in 0..n_tensors {
            let name = cur.string(&|| format!("tensor info #{idx}"))?;
            let what = || format!("tensor info `{name}`");
            let n_dims = cur.u32(&what)? as usize;
            if n_dims > 4 {
                return Err(Error::Format {
                    path,
                    message: format!("tensor `{name}` has {n_dims} dimensions (at most 4)"),
                });
            }
            let mut dims = Vec::with_capacity(n_dims);
            for _ in 0..n_dims {
                dims.push(cur.count(&what)?);
            }
            let type_id = cur.u32(&what)?;
            let offset = cur.u64(&what)?;
            raw.push((name, dims, type_id, offset));
        }

        let alignment = match metadata.get("general.alignment") {
            None => 32,
            Some(v) => match v.as_u64() {
                Some(a) if a > 0 && a.is_power_of_two() => a as usize,
                _ => {
                    return Err(Error::Metadata {
                        path,
                        key: "general.alignment".into(),
                        expected: "power of two",
                    })
                }
            },
        };
        let data_start = cur.pos.div_ceil(alignment) * alignment;

        let mut tensors = Vec::with_capacity(raw.len());
        let mut by_name = BTreeMap::new();
        for (name, dims, type_id, offset) in raw {
            let dtype = GgmlType::from_id(type_id).ok_or_else(|| Error::UnsupportedType {
                path: path.clone(),
                tensor: name.clone(),
                type_name: GgmlType::name_of_id(type_id),
            })?;
            let n_elements = dims
                .iter()
                .try_fold(1usize, |acc, &d| acc.checked_mul(d))
                .unwrap_or(usize::MAX);
            let row = dims.first().copied().unwrap_or(1);
            if row % dtype.block_size() != 0 {
                return Err(Error::Format {
                    path,
                    message: format!(
                        "tensor `{name}`: row length {row} is not a multiple of the {} block size {}",
                        dtype.name(),
                        dtype.block_size()
                    ),
                });
            }
            let n_bytes = (n_elements / dtype.block_size()).saturating_mul(dtype.block_bytes());
            let start = usize::try_from(offset)
                .ok()
                .and_then(|o| o.checked_add(data_start));
            let fits = start
                .and_then(|s| s.checked_add(n_bytes))
                .is_some_and(|end| end <= mmap.len());
            if !fits {
                return Err(Error::Truncated {
                    path,
                    what: format!("the data of tensor `{name}`"),
                });
            }
            by_name.insert(name.clone(), tensors.len());
            tensors.push(TensorInfo {
                name,
                dims,
                dtype,
                offset: start.unwrap_or_default(),
                n_bytes,
            });
        }

        Ok(GgufFile {
            path,
            version,
            metadata,
            tensors,
            by_name,
            mmap: Arc::new(mmap),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A metadata value.
    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.metadata.get(key)
    }

    fn meta_err(&self, key: &str, expected: &'static str) -> Error {
        Error::Metadata {
            path: self.path.clone(),
            key: key.to_string(),
            expected,
        }
    }

    /// A required string value.
    pub fn get_str(&self, key: &str) -> Result<&str> {
        self.get(key)
            .and_then(MetaValue::as_str)
            .ok_or_else(|| self.meta_err(key, "string"))
    }

    /// A required unsigned integer value.
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        self.get(key)
            .and_then(MetaValue::as_u64)
            .ok_or_else(|| self.meta_err(key, "unsigned integer"))
    }

    /// A required float value.
    pub fn get_f32(&self, key: &str) -> Result<f32> {
        self.get(key)
            .and_then(MetaValue::as_f32)
            .ok_or_else(|| self.meta_err(key, "float"))
    }

    /// A required array of strings.
    pub fn get_str_array(&self, key: &str) -> Result<Vec<&str>> {
        let items = self
            .get(key)
            .and_then(MetaValue::as_array)
            .ok_or_else(|| self.meta_err(key, "array of strings"))?;
        items
            .iter()
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| self.meta_err(key, "array of strings"))
            })
            .collect()
    }

    /// The tensor directory entry for `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.by_name.get(name).map(|&idx| &self.tensors[idx])
    }

    /// The raw bytes of a tensor (bounds were checked when the file was opened).
    pub fn tensor_bytes(&self, info: &TensorInfo) -> &[u8] {
        &self.mmap[info.offset..info.offset + info.n_bytes]
    }

    /// A shared handle on a tensor's bytes, for weights that outlive this struct.
    pub fn tensor_weight_bytes(&self, info: &TensorInfo) -> WeightBytes {
        WeightBytes::Mapped {
            map: self.mmap.clone(),
            offset: info.offset,
            len: info.n_bytes,
        }
    }
}

/// Writes GGUF files; used by tests to build tiny models and by tools.
#[derive(Default)]
pub struct GgufWriter {
    metadata: Vec<(String, MetaValue)>,
    tensors: Vec<(String, Vec<usize>, GgmlType, Vec<u8>)>,
}

impl GgufWriter {
    /// A writer with no metadata and no tensors.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a metadata pair.
    pub fn meta(&mut self, key: &str, value: MetaValue) -> &mut Self {
        self.metadata.push((key.to_string(), value));
        self
    }

    /// Adds a tensor with dims in GGML order and raw encoded bytes.
    pub fn tensor(
        &mut self,
        name: &str,
        dims: &[usize],
        dtype: GgmlType,
        bytes: Vec<u8>,
    ) -> &mut Self {
        self.tensors
            .push((name.to_string(), dims.to_vec(), dtype, bytes));
        self
    }

    fn put_str(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&(s.len() as u64).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }

    fn type_id(v: &MetaValue) -> u32 {
        match v {
            MetaValue::U8(_) => 0,
            MetaValue::I8(_) => 1,
            MetaValue::U16(_) => 2,
            MetaValue::I16(_) => 3,
            MetaValue::U32(_) => 4,
            MetaValue::I32(_) => 5,
            MetaValue::F32(_) => 6,
            MetaValue::Bool(_) => 7,
            MetaValue::Str(_) => 8,
            MetaValue::Array(_) => 9,
            MetaValue::U64(_) => 10,
            MetaValue::I64(_) => 11,
            MetaValue::F64(_) => 12,
        }
    }

    fn put_value(out: &mut Vec<u8>, v: &MetaValue) {
        match v {
            MetaValue::U8(x) => out.push(*x),
            MetaValue::I8(x) => out.push(*x as u8),
            MetaValue::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
            MetaValue::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
            MetaValue::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
            MetaValue::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
            MetaValue::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
            MetaValue::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
            MetaValue::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
            MetaValue::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
            MetaValue::Bool(x) => out.push(*x as u8),
            MetaValue::Str(s) => Self::put_str(out, s),
            MetaValue::Array(items) => {
                let elem = items.first().map_or(4, Self::type_id);
                out.extend_from_slice(&elem.to_le_bytes());
                out.extend_from_slice(&(items.len() as u64).to_le_bytes());
                for item in items {
                    Self::put_value(out, item);
                }
            }
        }
    }

    /// Serialises the file (version 3, alignment 32).
    pub fn to_bytes(&self) -> Vec<u8> {
        const ALIGN: usize = 32;
        let mut out = Vec::new();
        out.extend_from_slice(b"GGUF");
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (key, value) in &self.metadata {
            Self::put_str(&mut out, key);
            out.extend_from_slice(&Self::type_id(value).to_le_bytes());
            Self::put_value(&mut out, value);
        }
        let mut offset = 0usize;
        for (name, dims, dtype, bytes) in &self.tensors {
            Self::put_str(&mut out, name);
            out.extend_from_slice(&(dims.len() as u32).to_le_bytes());
            for d in dims {
                out.extend_from_slice(&(*d as u64).to_le_bytes());
            }
            out.extend_from_slice(&dtype.id().to_le_bytes());
            out.extend_from_slice(&(offset as u64).to_le_bytes());
            offset += bytes.len().div_ceil(ALIGN) * ALIGN;
        }
        out.resize(out.len().div_ceil(ALIGN) * ALIGN, 0);
        for (_, _, _, bytes) in &self.tensors {
            out.extend_from_slice(bytes);
            out.resize(out.len().div_ceil(ALIGN) * ALIGN, 0);
        }
        out
    }

    /// Writes the file to `path`.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(path, self.to_bytes()).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

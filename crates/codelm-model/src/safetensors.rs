//! Hugging Face model directories: `config.json` plus one or more `*.safetensors`
//! files (F32, F16 or BF16), memory-mapped like GGUF.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::quant::{GgmlType, WeightBytes};

/// One tensor of a safetensors file.
#[derive(Clone)]
pub struct SafeTensor {
    /// Storage type.
    pub dtype: GgmlType,
    /// Shape, outermost first (row-major, as PyTorch).
    pub shape: Vec<usize>,
    /// The bytes.
    pub bytes: WeightBytes,
}

/// All tensors of a model directory, by name.
pub struct SafeTensors {
    /// The directory.
    pub dir: PathBuf,
    tensors: BTreeMap<String, (SafeTensor, PathBuf)>,
}

impl SafeTensors {
    /// Maps every `*.safetensors` file in `dir`.
    pub fn open_dir(dir: &Path) -> Result<Self> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io(dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(Error::Format {
                path: dir.to_path_buf(),
                message: "no *.safetensors files in the model directory".into(),
            });
        }
        let mut tensors = BTreeMap::new();
        for path in files {
            let file = std::fs::File::open(&path).map_err(io(&path))?;
            // SAFETY: read-only map of a file we do not modify.
            let map = Arc::new(unsafe { memmap2::Mmap::map(&file) }.map_err(io(&path))?);
            for (name, tensor) in parse(&path, &map)? {
                tensors.insert(name, (tensor, path.clone()));
            }
        }
        Ok(SafeTensors {
            dir: dir.to_path_buf(),
            tensors,
        })
    }

    /// The tensor called `name`, with the file that holds it.
    pub fn get(&self, name: &str) -> Option<&(SafeTensor, PathBuf)> {
        self.tensors.get(name)
    }
}

fn parse(path: &Path, map: &Arc<memmap2::Mmap>) -> Result<Vec<(String, SafeTensor)>> {
    let bad = |message: String| Error::Format {
        path: path.to_path_buf(),
        message,
    };
    if map.len() < 8 {
        return Err(Error::Truncated {
            path: path.to_path_buf(),
            what: "the safetensors header length".into(),
        });
    }
    let header_len = u64::from_le_bytes(map[..8].try_into().expect("8 bytes")) as usize;
    let data_start = 8usize
        .checked_add(header_len)
        .filter(|&e| e <= map.len())
        .ok_or_else(|| Error::Truncated {
            path: path.to_path_buf(),
            what: "the safetensors header".into(),
        })?;
    let header: serde_json::Value = serde_json::from_slice(&map[8..data_start])
        .map_err(|e| bad(format!("bad safetensors header: {e}")))?;
    let entries = header
        .as_object()
        .ok_or_else(|| bad("safetensors header is not an object".into()))?;
    let mut out = Vec::new();
    for (name, entry) in entries {
        if name == "__metadata__" {
            continue;
        }
        let dtype = match entry["dtype"].as_str() {
            Some("F32") => GgmlType::F32,
            Some("F16") => GgmlType::F16,
            Some("BF16") => GgmlType::BF16,
            other => {
                return Err(Error::UnsupportedType {
                    path: path.to_path_buf(),
                    tensor: name.clone(),
                    type_name: other.unwrap_or("missing").to_string(),
                })
            }
        };
        let shape: Option<Vec<usize>> = entry["shape"]
            .as_array()
            .and_then(|a| a.iter().map(|v| v.as_u64().map(|v| v as usize)).collect());
        let offsets: Option<Vec<usize>> = entry["data_offsets"]
            .as_array()
            .and_then(|a| a.iter().map(|v| v.as_u64().map(|v| v as usize)).collect());
        let (Some(shape), Some(offsets)) = (shape, offsets) else {
            return Err(bad(format!("tensor `{name}`: bad shape or data_offsets")));
        };
        let [begin, end] = offsets[..] else {
            return Err(bad(format!(
                "tensor `{name}`: data_offsets must have two entries"
            )));
        };
        let n_elements: usize = shape.iter().product();
        let expected = n_elements * dtype.block_bytes();
        if end < begin || end - begin != expected || data_start + end > map.len() {
            return Err(Error::Truncated {
                path: path.to_path_buf(),
                what: format!("the data of tensor `{name}`"),
            });
        }
        out.push((
            name.clone(),
            SafeTensor {
                dtype,
                shape,
                bytes: WeightBytes::Mapped {
                    map: map.clone(),
                    offset: data_start + begin,
                    len: end - begin,
                },
            },
        ));
    }
    Ok(out)
}

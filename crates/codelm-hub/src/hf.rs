//! The Hugging Face source, through the `hf-hub` crate.
//!
//! `hf-hub`'s blocking client has no connect timeout, so on a machine where
//! the hub is firewalled a download would hang instead of falling through to
//! the next source. We therefore send one `HEAD` for the file first, on a
//! separate thread with a short deadline, and only hand over to `hf-hub` once
//! the hub has answered. A file already in the Hugging Face cache
//! (`HF_HOME`) is used without any network access.
//!
//! The downloaded file is copied into the codelm cache through the same
//! verifying [`Staged`] writer as every other source, so the Hugging Face
//! cache is never trusted blindly and never modified.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::Duration;

use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo};

use crate::progress;
use crate::stage::Staged;
use crate::{Error, ModelEntry, Result, Source};

/// How long the reachability probe may take before the hub counts as down.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// The hub endpoint: `explicit`, else `$HF_ENDPOINT`, else huggingface.co.
pub(crate) fn endpoint(explicit: Option<&str>) -> String {
    let chosen = explicit
        .map(str::to_string)
        .or_else(|| std::env::var("HF_ENDPOINT").ok())
        .filter(|endpoint| !endpoint.is_empty())
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
    chosen.trim_end_matches('/').to_string()
}

/// The URL `hf-hub` will download `entry` from.
fn file_url(endpoint: &str, entry: &ModelEntry) -> String {
    format!(
        "{endpoint}/{}/resolve/main/{}",
        entry.hf_repo, entry.hf_filename
    )
}

fn token() -> Option<String> {
    std::env::var("HF_TOKEN")
        .ok()
        .filter(|token| !token.is_empty())
}

/// Fetches `entry` from the hub into `final_path`, verified.
pub(crate) fn fetch(
    entry: &ModelEntry,
    endpoint: &str,
    final_path: &Path,
    quiet: bool,
) -> Result<PathBuf> {
    let repo = Repo::model(entry.hf_repo.to_string());
    let downloaded = match Cache::from_env().repo(repo.clone()).get(entry.hf_filename) {
        Some(path) => path,
        None => download(entry, endpoint, repo, quiet)?,
    };
    let mut file = File::open(&downloaded).map_err(|cause| Error::Io {
        model: entry.name.to_string(),
        origin: Source::HuggingFace,
        path: downloaded.clone(),
        cause,
    })?;
    let bar = progress::bytes_bar(quiet, entry.n_bytes, format!("copying {}", entry.name));
    let mut staged = Staged::new(entry, Source::HuggingFace, final_path, bar)?;
    staged.append(&mut file, &downloaded)?;
    staged.finish()
}

fn download(entry: &ModelEntry, endpoint: &str, repo: Repo, quiet: bool) -> Result<PathBuf> {
    let url = file_url(endpoint, entry);
    probe(&url, token(), PROBE_TIMEOUT).map_err(|reason| Error::Unreachable {
        model: entry.name.to_string(),
        origin: Source::HuggingFace,
        url: url.clone(),
        reason,
    })?;
    let hub_error = |cause| Error::Hub {
        model: entry.name.to_string(),
        origin: Source::HuggingFace,
        repo: entry.hf_repo.to_string(),
        file: entry.hf_filename.to_string(),
        cause,
    };
    let mut builder = ApiBuilder::from_env()
        .with_endpoint(endpoint.to_string())
        .with_progress(!quiet);
    if let Some(token) = token() {
        builder = builder.with_token(Some(token));
    }
    let api = builder.build().map_err(hub_error)?;
    api.repo(repo).get(entry.hf_filename).map_err(hub_error)
}

/// Sends one `HEAD` to `url`; `Ok` once any non-error HTTP answer arrives
/// within `timeout`, otherwise the reason as text.
///
/// Runs on its own thread because name resolution is not covered by
/// `ureq`'s timeouts; on expiry the thread is abandoned, not joined.
pub(crate) fn probe(
    url: &str,
    token: Option<String>,
    timeout: Duration,
) -> std::result::Result<(), String> {
    let (sender, receiver) = mpsc::channel();
    let request_url = url.to_string();
    thread::Builder::new()
        .name("codelm-hub-probe".into())
        .spawn(move || {
            let agent = ureq::AgentBuilder::new()
                .try_proxy_from_env(true)
                .timeout_connect(timeout)
                .timeout(timeout)
                .redirects(0)
                .build();
            let mut request = agent.head(&request_url);
            if let Some(token) = token {
                request = request.set("Authorization", &format!("Bearer {token}"));
            }
            let outcome = match request.call() {
                Ok(_) => Ok(()),
                Err(ureq::Error::Status(code, _)) => Err(format!("HTTP status {code}")),
                Err(ureq::Error::Transport(transport)) => Err(transport.to_string()),
            };
            // The receiver is gone only if the caller already gave up.
            let _ = sender.send(outcome);
        })
        .map_err(|cause| format!("cannot start the probe thread: {cause}"))?;
    match receiver.recv_timeout(timeout + Duration::from_millis(500)) {
        Ok(outcome) => outcome,
        Err(RecvTimeoutError::Timeout) => {
            Err(format!("no answer within {:.1} s", timeout.as_secs_f64()))
        }
        Err(RecvTimeoutError::Disconnected) => Err("the probe ended without an answer".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::time::Instant;

    #[test]
    fn url_matches_hf_hub_layout() {
        let entry = crate::default_model();
        assert_eq!(
            file_url(&endpoint(Some("https://mirror.example/")), entry),
            "https://mirror.example/Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF/resolve/main/\
             qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
        );
    }

    #[test]
    fn refused_connection_fails_fast() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let started = Instant::now();
        let outcome = probe(&format!("http://{address}/x"), None, PROBE_TIMEOUT);
        assert!(outcome.is_err());
        assert!(started.elapsed() < PROBE_TIMEOUT);
    }

    #[test]
    fn silent_server_times_out() {
        // Accepts the connection (the kernel does) but never answers.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let started = Instant::now();
        let outcome = probe(
            &format!("http://{address}/x"),
            None,
            Duration::from_millis(300),
        );
        assert!(outcome.is_err(), "{outcome:?}");
        assert!(started.elapsed() < Duration::from_secs(3));
        drop(listener);
    }

    #[test]
    fn redirect_counts_as_reachable_and_404_does_not() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let server = thread::spawn(move || {
            for status in ["302 Found\r\nLocation: /elsewhere", "404 Not Found"] {
                let (mut stream, _) = listener.accept().unwrap();
                let mut request = [0u8; 1024];
                let _ = stream.read(&mut request).unwrap();
                let response = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
                stream.write_all(response.as_bytes()).unwrap();
            }
        });
        let url = format!("http://{address}/x");
        assert_eq!(probe(&url, Some("t".into()), PROBE_TIMEOUT), Ok(()));
        assert_eq!(
            probe(&url, None, PROBE_TIMEOUT),
            Err("HTTP status 404".to_string())
        );
        server.join().unwrap();
    }
}

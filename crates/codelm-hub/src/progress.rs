//! Byte-counting progress bars on stderr.
//!
//! Bars go to stderr so that stdout stays clean for callers that print the
//! resolved path; `quiet` swaps in a hidden bar rather than threading
//! `Option<ProgressBar>` through every copy loop.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

const TEMPLATE: &str = "{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})";

/// A bar of `n_bytes` labelled `message`, hidden when `quiet`.
pub(crate) fn bytes_bar(quiet: bool, n_bytes: u64, message: String) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template(TEMPLATE)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    ProgressBar::with_draw_target(Some(n_bytes), ProgressDrawTarget::stderr())
        .with_style(style)
        .with_message(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_parses() {
        assert!(ProgressStyle::with_template(TEMPLATE).is_ok());
    }

    #[test]
    fn quiet_bar_is_hidden() {
        assert!(bytes_bar(true, 10, String::new()).is_hidden());
    }
}

//! Streaming text out of a token stream: complete UTF-8, and stop strings
//! that may straddle token boundaries.
//!
//! [`Utf8Stream`] takes each token's raw bytes (byte-level BPE can split a
//! multi-byte character across tokens) and hands out only complete
//! characters. [`StopMatcher`] takes that text and holds back any tail that
//! could still grow into a stop string, so a client never receives text that
//! later turns out to be part of a stop.
//!
//! The design decision a newcomer may question: matching is done on decoded
//! text, never on token ids, because the same stop string can be tokenised in
//! many ways (`"\ndef"` may arrive as `"\n"`, `"de"`, `"f"`).
//!
//! ```
//! use codelm_generate::{StopMatcher, Utf8Stream};
//!
//! let mut bytes = Utf8Stream::new();
//! let mut stops = StopMatcher::new(&["\ndef".to_string()]);
//! let mut emitted = String::new();
//! for token_bytes in [&b"x = 1"[..], b"\n", b"de", b"f main"] {
//!     let step = stops.push(&bytes.push(token_bytes));
//!     emitted.push_str(&step.text);
//!     if step.is_stopped() {
//!         break;
//!     }
//! }
//! assert_eq!(emitted, "x = 1");
//! ```

/// Incremental UTF-8 decoding of a byte stream.
///
/// Incomplete trailing bytes wait for the next push; bytes that can never
/// form a character become U+FFFD, one per maximal invalid sequence, as
/// [`String::from_utf8_lossy`] does.
#[derive(Debug, Clone, Default)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    /// An empty stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `bytes` and returns every character now complete.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut text = String::new();
        let mut start = 0;
        loop {
            match std::str::from_utf8(&self.pending[start..]) {
                Ok(valid) => {
                    text.push_str(valid);
                    start = self.pending.len();
                    break;
                }
                Err(error) => {
                    let valid_len = error.valid_up_to();
                    let valid = &self.pending[start..start + valid_len];
                    // The prefix is valid UTF-8 by `valid_up_to`'s contract.
                    text.push_str(&String::from_utf8_lossy(valid));
                    start += valid_len;
                    match error.error_len() {
                        Some(invalid_len) => {
                            text.push(char::REPLACEMENT_CHARACTER);
                            start += invalid_len;
                        }
                        // An incomplete character at the end: wait for more.
                        None => break,
                    }
                }
            }
        }
        self.pending.drain(..start);
        text
    }

    /// Ends the stream: bytes still waiting for the rest of their character
    /// become U+FFFD.
    pub fn finish(self) -> String {
        String::from_utf8_lossy(&self.pending).into_owned()
    }
}

/// What one [`StopMatcher::push`] released.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StopStep {
    /// Text safe to send now.
    pub text: String,
    /// Index (into the list given to [`StopMatcher::new`]) of the stop string
    /// that was hit; `text` then ends right before it, and generation should
    /// end.
    pub stop_idx: Option<usize>,
}

impl StopStep {
    /// Whether a stop string was hit.
    pub fn is_stopped(&self) -> bool {
        self.stop_idx.is_some()
    }
}

/// Finds stop strings in streamed text, across piece boundaries.
#[derive(Debug, Clone)]
pub struct StopMatcher {
    stops: Vec<String>,
    held: String,
    is_stopped: bool,
}

impl StopMatcher {
    /// A matcher for `stops`; empty strings in it never match.
    pub fn new(stops: &[String]) -> Self {
        Self {
            stops: stops.to_vec(),
            held: String::new(),
            is_stopped: false,
        }
    }

    /// Feeds the next decoded piece.
    ///
    /// When a stop string appears, the text before its earliest occurrence is
    /// released and the stop string and everything after it are dropped, as
    /// is everything pushed later. Otherwise all text is released except the
    /// longest tail that is a proper prefix of some stop string.
    pub fn push(&mut self, piece: &str) -> StopStep {
        if self.is_stopped {
            return StopStep::default();
        }
        self.held.push_str(piece);
        let earliest = self
            .stops
            .iter()
            .enumerate()
            .filter(|(_, stop)| !stop.is_empty())
            .filter_map(|(stop_idx, stop)| self.held.find(stop.as_str()).map(|at| (at, stop_idx)))
            .min();
        if let Some((at, stop_idx)) = earliest {
            self.is_stopped = true;
            self.held.truncate(at);
            return StopStep {
                text: std::mem::take(&mut self.held),
                stop_idx: Some(stop_idx),
            };
        }
        let keep_from = self.partial_stop_start();
        let rest = self.held.split_off(keep_from);
        StopStep {
            text: std::mem::replace(&mut self.held, rest),
            stop_idx: None,
        }
    }

    /// Releases the held tail at the end of generation (EOS or a token
    /// limit); empty after a stop string was hit.
    pub fn finish(self) -> String {
        self.held
    }

    /// Byte offset of the longest tail of `held` that some stop string starts
    /// with; `held.len()` when there is none.
    fn partial_stop_start(&self) -> usize {
        let max_stop_len = self.stops.iter().map(String::len).max().unwrap_or(0);
        let earliest = self.held.len().saturating_sub(max_stop_len);
        self.held
            .char_indices()
            .map(|(at, _)| at)
            .skip_while(|&at| at < earliest)
            .find(|&at| {
                let tail = &self.held[at..];
                self.stops.iter().any(|stop| stop.starts_with(tail))
            })
            .unwrap_or(self.held.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_stream_joins_split_characters() {
        let mut stream = Utf8Stream::new();
        let bytes = "é✓😀".as_bytes();
        let mut text = String::new();
        for byte in bytes {
            text.push_str(&stream.push(std::slice::from_ref(byte)));
        }
        assert_eq!(text, "é✓😀");
        assert_eq!(stream.finish(), "");
    }

    #[test]
    fn utf8_stream_holds_only_the_incomplete_tail() {
        let mut stream = Utf8Stream::new();
        assert_eq!(stream.push(b"ab\xe2\x9c"), "ab");
        assert_eq!(stream.push(b"\x93c"), "✓c");
    }

    #[test]
    fn utf8_stream_replaces_invalid_bytes_like_from_utf8_lossy() {
        let input = b"a\xffb\xe2\x9cc\xc0\x80d";
        let mut stream = Utf8Stream::new();
        let mut text = String::new();
        for byte in input {
            text.push_str(&stream.push(std::slice::from_ref(byte)));
        }
        text.push_str(&stream.finish());
        assert_eq!(text, String::from_utf8_lossy(input));
    }

    #[test]
    fn utf8_stream_finish_replaces_truncated_character() {
        let mut stream = Utf8Stream::new();
        assert_eq!(stream.push(b"x\xf0\x9f"), "x");
        assert_eq!(stream.finish(), "\u{fffd}");
    }

    #[test]
    fn pushes_after_a_stop_release_nothing() {
        let mut matcher = StopMatcher::new(&["END".to_string()]);
        assert_eq!(matcher.push("aEND").text, "a");
        assert_eq!(matcher.push("more"), StopStep::default());
        assert_eq!(matcher.finish(), "");
    }

    #[test]
    fn partial_stop_respects_char_boundaries() {
        let mut matcher = StopMatcher::new(&["éx".to_string()]);
        let step = matcher.push("aé");
        assert_eq!(step.text, "a");
        assert_eq!(matcher.finish(), "é");
    }
}

//! Stop strings across token boundaries, and UTF-8 reassembly.

use codelm_generate::{StopMatcher, Utf8Stream};

/// Streams `pieces` through a matcher for `stops` and checks the text a
/// client would receive and the index of the stop string hit, if any.
fn check(stops: &[&str], pieces: &[&str], expected_text: &str, expected_stop_idx: Option<usize>) {
    let stops: Vec<String> = stops.iter().map(|stop| stop.to_string()).collect();
    let mut matcher = StopMatcher::new(&stops);
    let mut text = String::new();
    let mut stop_idx = None;
    for piece in pieces {
        let step = matcher.push(piece);
        text.push_str(&step.text);
        if step.is_stopped() {
            stop_idx = step.stop_idx;
            break;
        }
    }
    if stop_idx.is_none() {
        text.push_str(&matcher.finish());
    }
    assert_eq!(text, expected_text);
    assert_eq!(stop_idx, expected_stop_idx);
}

/// Checks what each push releases, without calling `finish`.
fn check_steps(stops: &[&str], pieces: &[&str], expected_releases: &[&str]) {
    let stops: Vec<String> = stops.iter().map(|stop| stop.to_string()).collect();
    let mut matcher = StopMatcher::new(&stops);
    let releases: Vec<String> = pieces
        .iter()
        .map(|piece| matcher.push(piece).text)
        .collect();
    assert_eq!(releases, expected_releases);
}

/// Decodes byte chunks as a token stream would deliver them.
fn check_utf8(chunks: &[&[u8]], expected: &str) {
    let mut stream = Utf8Stream::new();
    let mut text = String::new();
    for chunk in chunks {
        text.push_str(&stream.push(chunk));
    }
    text.push_str(&stream.finish());
    assert_eq!(text, expected);
}

const CODE_STOPS: [&str; 5] = ["\ndef", "\nclass", "\nif", "\nprint", "\n#"];

#[test]
fn empty_stop_list_passes_everything_through() {
    check(&[], &["a", "\n", "def"], "a\ndef", None);
    check_steps(&[], &["a", "\n", "def"], &["a", "\n", "def"]);
}

#[test]
fn empty_stop_string_never_matches() {
    check(&[""], &["abc"], "abc", None);
}

#[test]
fn stop_split_across_many_pieces() {
    check(&["\ndef"], &["a", "\n", "d", "e", "f", " g"], "a", Some(0));
}

#[test]
fn stop_inside_one_piece_drops_the_rest() {
    check(&["\ndef"], &["x = 1\ndef g():\n"], "x = 1", Some(0));
}

#[test]
fn stop_at_the_very_start() {
    check(&CODE_STOPS, &["\n", "#"], "", Some(4));
}

#[test]
fn overlapping_code_stops_pick_the_one_that_completes() {
    check(&CODE_STOPS, &["x = 1\n", "\ni", "f y:"], "x = 1\n", Some(2));
    check(&CODE_STOPS, &["a\ncla", "\ncl", "ass B"], "a\ncla", Some(1));
    check(&CODE_STOPS, &["\npri", "nt(x)"], "", Some(3));
}

#[test]
fn near_misses_are_released_once_they_diverge() {
    check(
        &CODE_STOPS,
        &["\ni", "mport os\n", "\nde", "l x"],
        "\nimport os\n\ndel x",
        None,
    );
    check_steps(
        &CODE_STOPS,
        &["\ni", "mport os", "\n", "p", "x"],
        &["", "\nimport os", "", "", "\npx"],
    );
}

#[test]
fn repeated_prefix_inside_a_stop() {
    check(&["abcabd"], &["abcab", "cabd"], "abc", Some(0));
}

#[test]
fn earliest_occurrence_wins() {
    check(&["bc", "ab"], &["xabc"], "x", Some(1));
}

#[test]
fn finish_releases_a_held_partial_stop() {
    check(&["\ndef"], &["a\nde"], "a\nde", None);
}

#[test]
fn unicode_stops_and_text() {
    check(&["日本", "→ end"], &["abc日", "本語"], "abc", Some(0));
    check(&["日本", "→ end"], &["é → e", "nd"], "é ", Some(1));
    check(&["日本"], &["日", "曜"], "日曜", None);
    check_steps(&["éx"], &["aé", "y"], &["a", "éy"]);
}

#[test]
fn utf8_characters_split_across_tokens() {
    let text = "fn é() { \"日本\" } // 😀";
    let single_bytes: Vec<&[u8]> = text.as_bytes().chunks(1).collect();
    check_utf8(&single_bytes, text);
    let pairs: Vec<&[u8]> = text.as_bytes().chunks(2).collect();
    check_utf8(&pairs, text);
}

#[test]
fn utf8_invalid_sequences_become_replacement_characters() {
    check_utf8(&[b"a\xff", b"b"], "a\u{fffd}b");
    // An overlong encoding is two invalid bytes.
    check_utf8(&[b"\xc0", b"\x80z"], "\u{fffd}\u{fffd}z");
    // A lead byte followed by a non-continuation byte.
    check_utf8(&[b"\xe6", b"x"], "\u{fffd}x");
    // Truncated at the end of the stream.
    check_utf8(&[b"ok\xf0\x9f\x98"], "ok\u{fffd}");
}

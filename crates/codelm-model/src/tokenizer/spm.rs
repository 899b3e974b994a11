//! SentencePiece BPE (the `llama` tokenizer model of Llama 2 and Code Llama).
//!
//! Unlike byte-level BPE there are no merge rules and no pre-tokenizer: spaces become
//! `▁`, the text starts as one symbol per character, and the adjacent pair whose
//! concatenation is the vocabulary token with the highest score merges first (ties go
//! to the leftmost pair), exactly as llama.cpp's SPM session does. Characters that end
//! up outside the vocabulary are written as their UTF-8 bytes with `<0xXX>` tokens.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::bpe::FastMap;

/// A candidate merge of two adjacent symbols.
struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    /// Byte length of the merged text, to detect stale candidates.
    size: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Bigram {}

impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Bigram {
    /// Max-heap order: higher score first, then the leftmost pair.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

/// One symbol: a byte range of the escaped text, linked to its neighbours.
#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// What an SPM encode needs from the vocabulary.
pub(crate) struct SpmVocab<'a> {
    /// Exact string → token id.
    pub(crate) token_to_id: &'a FastMap<String, u32>,
    /// Token id → score.
    pub(crate) scores: &'a [f32],
    /// Each byte's `<0xXX>` token (or the byte's own one-character token).
    pub(crate) byte_token: &'a [Option<u32>; 256],
    /// Token for a byte without a byte token.
    pub(crate) unk_id: Option<u32>,
}

/// Appends the tokens of `text`, which must already have spaces escaped as `▁`.
pub(crate) fn encode(vocab: &SpmVocab<'_>, text: &str, out: &mut Vec<u32>) {
    let mut symbols: Vec<Symbol> = Vec::with_capacity(text.len());
    for (start, c) in text.char_indices() {
        let idx = symbols.len();
        symbols.push(Symbol {
            start,
            len: c.len_utf8(),
            prev: idx.checked_sub(1),
            next: Some(idx + 1),
        });
    }
    let Some(last) = symbols.last_mut() else {
        return;
    };
    last.next = None;

    let mut heap = BinaryHeap::new();
    let try_add = |heap: &mut BinaryHeap<Bigram>,
                   symbols: &[Symbol],
                   left: Option<usize>,
                   right: Option<usize>| {
        let (Some(left), Some(right)) = (left, right) else {
            return;
        };
        let (l, r) = (symbols[left], symbols[right]);
        let merged = &text[l.start..r.start + r.len];
        if let Some(&id) = vocab.token_to_id.get(merged) {
            let score = vocab.scores.get(id as usize).copied().unwrap_or(0.0);
            heap.push(Bigram {
                score,
                left,
                right,
                size: merged.len(),
            });
        }
    };
    for right in 1..symbols.len() {
        try_add(&mut heap, &symbols, Some(right - 1), Some(right));
    }
    while let Some(bigram) = heap.pop() {
        let (l, r) = (symbols[bigram.left], symbols[bigram.right]);
        if l.len == 0 || r.len == 0 || l.len + r.len != bigram.size {
            continue;
        }
        symbols[bigram.left].len += r.len;
        symbols[bigram.left].next = r.next;
        symbols[bigram.right].len = 0;
        if let Some(next) = r.next {
            symbols[next].prev = Some(bigram.left);
        }
        try_add(&mut heap, &symbols, l.prev, Some(bigram.left));
        try_add(&mut heap, &symbols, Some(bigram.left), r.next);
    }

    let mut idx = Some(0);
    while let Some(i) = idx {
        let symbol = symbols[i];
        let piece = &text[symbol.start..symbol.start + symbol.len];
        match vocab.token_to_id.get(piece) {
            Some(&id) => out.push(id),
            None => out.extend(
                piece
                    .bytes()
                    .filter_map(|b| vocab.byte_token[b as usize].or(vocab.unk_id)),
            ),
        }
        idx = symbol.next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highest_score_merges_first_and_unknown_chars_fall_back_to_bytes() {
        let words = ["▁", "a", "b", "▁a", "ab", "▁ab"];
        let scores = [-1.0, -1.0, -1.0, -3.0, -2.0, -1.5];
        let token_to_id: FastMap<String, u32> = words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.to_string(), i as u32))
            .collect();
        let mut byte_token = [None; 256];
        byte_token[0xC3] = Some(100);
        byte_token[0xA9] = Some(101);
        let vocab = SpmVocab {
            token_to_id: &token_to_id,
            scores: &scores,
            byte_token: &byte_token,
            unk_id: None,
        };
        let mut out = Vec::new();
        // "ab" (-2.0) beats "▁a" (-3.0); then "▁" + "ab" = "▁ab" (-1.5); "é" is bytes.
        encode(&vocab, "▁abé", &mut out);
        assert_eq!(out, [5, 100, 101]);
    }
}

//! Byte-level BPE (GPT-2 style): the byte↔character map and rank-ordered merging.
//!
//! Vocabulary strings are written in GPT-2's printable stand-ins for bytes (`Ġ` for a
//! space). Rather than re-encode every input word into that alphabet, the merge table
//! is decoded once into raw bytes: a *piece* is a byte string that is a token or the
//! result of a merge, and merging works on piece ids. Each word is merged with a
//! linked list of symbols and a min-heap of candidate pairs keyed by (rank, position),
//! the order llama.cpp uses, so ties resolve the same way.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

/// A small multiplicative hasher for integer pairs and short byte strings; the
/// default SipHash dominates the merge loop otherwise.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let mut tail = [0u8; 8];
        tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        self.add(u64::from_le_bytes(tail) ^ bytes.len() as u64);
    }

    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        // The low bits of a product depend only on the low bits of its inputs; the
        // table indexes buckets by low bits, so bring the well-mixed high bits down.
        self.0.rotate_left(26)
    }
}

/// A `HashMap` with [`FxHasher`].
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// GPT-2's byte→character table: printable Latin-1 bytes stand for themselves, the
/// rest map to U+0100 onwards in byte order.
pub(crate) fn byte_to_char_table() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut next = 256u32;
    for (byte, slot) in table.iter_mut().enumerate() {
        let printable = matches!(byte, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF);
        let cp = if printable {
            byte as u32
        } else {
            next += 1;
            next - 1
        };
        *slot = char::from_u32(cp).unwrap_or('\0');
    }
    table
}

/// The inverse of [`byte_to_char_table`], indexed by codepoint: every stand-in is
/// below U+0144, so a flat table replaces a hash lookup per character.
pub(crate) struct CharToByte([Option<u8>; 0x144]);

impl CharToByte {
    pub(crate) fn new() -> CharToByte {
        let mut table = [None; 0x144];
        for (byte, c) in byte_to_char_table().into_iter().enumerate() {
            if let Some(slot) = table.get_mut(c as usize) {
                *slot = Some(byte as u8);
            }
        }
        CharToByte(table)
    }

    fn get(&self, c: char) -> Option<u8> {
        self.0.get(c as usize).copied().flatten()
    }

    /// Decodes a vocabulary string into `out` (cleared first); `false` if a character
    /// is not a byte stand-in.
    pub(crate) fn decode_into(&self, text: &str, out: &mut Vec<u8>) -> bool {
        out.clear();
        for c in text.chars() {
            match self.get(c) {
                Some(b) => out.push(b),
                None => return false,
            }
        }
        true
    }

    /// Decodes a vocabulary string, keeping characters that are not byte stand-ins as
    /// their UTF-8.
    pub(crate) fn decode_lossy(&self, text: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(text.len());
        for c in text.chars() {
            match self.get(c) {
                Some(b) => out.push(b),
                None => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
            }
        }
        out
    }
}

/// One symbol of a word being merged.
#[derive(Clone, Copy)]
struct Symbol {
    piece: u32,
    prev: u32,
    next: u32,
}

/// No neighbour.
const NONE: u32 = u32::MAX;

/// A candidate merge of two adjacent symbols; the derived order (rank, then position)
/// is llama.cpp's.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Candidate {
    rank: u32,
    left: u32,
    right: u32,
    /// The pieces when the candidate was made; a change means it is stale.
    left_piece: u32,
    right_piece: u32,
    merged: u32,
}

/// Reusable buffers for [`Bpe::encode_word`].
#[derive(Default)]
pub(crate) struct Scratch {
    symbols: Vec<Symbol>,
    /// Smallest candidate first.
    heap: BinaryHeap<Reverse<Candidate>>,
}

/// The merge table and piece↔token maps of a byte-level BPE vocabulary.
#[derive(Debug)]
pub(crate) struct Bpe {
    /// `(left piece, right piece)` → `(rank, merged piece)`.
    merges: FastMap<(u32, u32), (u32, u32)>,
    /// Raw bytes → piece id.
    pieces: FastMap<Box<[u8]>, u32>,
    /// Piece id → raw bytes.
    piece_bytes: Vec<Box<[u8]>>,
    /// Piece id → the vocabulary token with exactly these bytes, if any.
    piece_token: Vec<Option<u32>>,
    /// Each single byte's piece.
    byte_piece: Box<[u32; 256]>,
    /// Each single byte's token, for pieces that are not tokens.
    byte_token: Box<[Option<u32>; 256]>,
    /// Emit a word that is a whole token without merging (Llama 3).
    ignore_merges: bool,
}

impl Bpe {
    /// Builds the tables from vocabulary strings (index = token id) and merge pairs in
    /// rank order. Pairs whose halves are not byte-level strings can never apply and
    /// are skipped; a repeated pair keeps its first (best) rank.
    pub(crate) fn new<'a>(
        tokens: impl Iterator<Item = &'a str>,
        merges: impl Iterator<Item = (&'a str, &'a str)>,
        ignore_merges: bool,
    ) -> Bpe {
        let map = CharToByte::new();
        let mut bpe = Bpe {
            merges: FastMap::default(),
            pieces: FastMap::default(),
            piece_bytes: Vec::new(),
            piece_token: Vec::new(),
            byte_piece: Box::new([0; 256]),
            byte_token: Box::new([None; 256]),
            ignore_merges,
        };
        let (mut left, mut right, mut merged) = (Vec::new(), Vec::new(), Vec::new());
        for (id, text) in tokens.enumerate() {
            if map.decode_into(text, &mut merged) && !merged.is_empty() {
                let piece = bpe.intern(&merged);
                let slot = &mut bpe.piece_token[piece as usize];
                // Like llama.cpp's text→token map, a later duplicate wins.
                *slot = u32::try_from(id).ok();
            }
        }
        for byte in 0..=255u8 {
            let piece = bpe.intern(&[byte]);
            bpe.byte_piece[byte as usize] = piece;
            bpe.byte_token[byte as usize] = bpe.piece_token[piece as usize];
        }
        for (rank, (left_text, right_text)) in merges.enumerate() {
            if !map.decode_into(left_text, &mut left)
                || !map.decode_into(right_text, &mut right)
                || left.is_empty()
                || right.is_empty()
            {
                continue;
            }
            merged.clear();
            merged.extend_from_slice(&left);
            merged.extend_from_slice(&right);
            let key = (bpe.intern(&left), bpe.intern(&right));
            let merged = bpe.intern(&merged);
            let rank = u32::try_from(rank).unwrap_or(u32::MAX);
            bpe.merges.entry(key).or_insert((rank, merged));
        }
        bpe
    }

    fn intern(&mut self, bytes: &[u8]) -> u32 {
        if let Some(&piece) = self.pieces.get(bytes) {
            return piece;
        }
        let piece = self.piece_bytes.len() as u32;
        self.piece_bytes.push(bytes.into());
        self.piece_token.push(None);
        self.pieces.insert(bytes.into(), piece);
        piece
    }

    /// Appends the tokens of one pre-tokenized word.
    pub(crate) fn encode_word(&self, word: &[u8], scratch: &mut Scratch, out: &mut Vec<u32>) {
        if word.is_empty() {
            return;
        }
        if self.ignore_merges {
            if let Some(token) = self
                .pieces
                .get(word)
                .and_then(|&piece| self.piece_token[piece as usize])
            {
                out.push(token);
                return;
            }
        }
        let symbols = &mut scratch.symbols;
        let heap = &mut scratch.heap;
        symbols.clear();
        heap.clear();
        let n = word.len() as u32;
        symbols.extend(word.iter().enumerate().map(|(idx, &byte)| {
            let idx = idx as u32;
            Symbol {
                piece: self.byte_piece[byte as usize],
                prev: if idx == 0 { NONE } else { idx - 1 },
                next: if idx + 1 == n { NONE } else { idx + 1 },
            }
        }));
        let push = |heap: &mut BinaryHeap<_>, symbols: &[Symbol], left: u32, right: u32| {
            if left == NONE || right == NONE {
                return;
            }
            let (left_piece, right_piece) =
                (symbols[left as usize].piece, symbols[right as usize].piece);
            if let Some(&(rank, merged)) = self.merges.get(&(left_piece, right_piece)) {
                heap.push(Reverse(Candidate {
                    rank,
                    left,
                    right,
                    left_piece,
                    right_piece,
                    merged,
                }));
            }
        };
        for left in 0..n.saturating_sub(1) {
            push(heap, symbols, left, left + 1);
        }
        while let Some(Reverse(candidate)) = heap.pop() {
            let Candidate {
                left,
                right,
                merged,
                ..
            } = candidate;
            let (l, r) = (symbols[left as usize], symbols[right as usize]);
            // A merged-away right symbol has piece NONE; a changed piece means the pair
            // is stale.
            if l.piece != candidate.left_piece
                || r.piece != candidate.right_piece
                || l.next != right
            {
                continue;
            }
            symbols[left as usize].piece = merged;
            symbols[left as usize].next = r.next;
            symbols[right as usize].piece = NONE;
            if r.next != NONE {
                symbols[r.next as usize].prev = left;
            }
            push(heap, symbols, l.prev, left);
            push(heap, symbols, left, r.next);
        }
        let mut idx = 0;
        while idx != NONE {
            let piece = symbols[idx as usize].piece;
            match self.piece_token[piece as usize] {
                Some(token) => out.push(token),
                // A merge result outside the vocabulary falls back to byte tokens.
                None => out.extend(
                    self.piece_bytes[piece as usize]
                        .iter()
                        .filter_map(|&b| self.byte_token[b as usize]),
                ),
            }
            idx = symbols[idx as usize].next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_round_trips() {
        let table = byte_to_char_table();
        assert_eq!(table[b' ' as usize], 'Ġ');
        assert_eq!(table[b'\n' as usize], 'Ċ');
        assert_eq!(table[b'a' as usize], 'a');
        let map = CharToByte::new();
        assert_eq!(map.0.iter().flatten().count(), 256);
        let mut out = Vec::new();
        assert!(map.decode_into("Ġhi", &mut out));
        assert_eq!(out, b" hi");
        assert!(!map.decode_into("h€", &mut out));
        assert_eq!(map.decode_lossy("Ġ€"), " €".as_bytes());
    }

    #[test]
    fn merges_apply_in_rank_order() {
        // "abc": (b,c) has the better rank, so "a" + "bc" even though "ab" exists.
        let tokens = ["a", "b", "c", "ab", "bc", "abc"];
        let bpe = Bpe::new(
            tokens.into_iter(),
            [("b", "c"), ("a", "b")].into_iter(),
            false,
        );
        let mut out = Vec::new();
        bpe.encode_word(b"abc", &mut Scratch::default(), &mut out);
        assert_eq!(out, [0, 4]);
    }
}

//! External sorting of fixed-size records: bounded memory for any corpus size.
//!
//! A [`RunWriter`] buffers records up to a byte budget, sorts the buffer and
//! spills it as a run file; [`merge`] streams the runs back in order through a
//! heap, merging at most [`MAX_FAN_IN`] runs at a time (more runs are first
//! merged into intermediate runs), so memory is the budget while writing and
//! `MAX_FAN_IN × 256 KiB` of read buffers while merging. Records sort by
//! their full value, so the merged order never depends on how the records were
//! split into runs (hence not on threads or buffer sizes).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Most runs merged at once.
pub const MAX_FAN_IN: usize = 64;

const READ_BUFFER: usize = 256 << 10;

/// A record with a fixed binary size whose `Ord` is the sort order.
pub trait Record: Ord + Copy {
    /// Encoded size in bytes.
    const SIZE: usize;
    /// Writes the record into `out` (exactly `SIZE` bytes).
    fn encode(&self, out: &mut [u8]);
    /// Reads a record from `bytes` (exactly `SIZE` bytes).
    fn decode(bytes: &[u8]) -> Self;
}

/// A band hash of one document: sorted by band, then hash, then document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct BandRecord {
    /// Band index.
    pub band: u32,
    /// Hash of the band's rows.
    pub hash: u64,
    /// Document id (shard << 32 | index in shard).
    pub doc: u64,
}

impl Record for BandRecord {
    const SIZE: usize = 20;
    fn encode(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.band.to_le_bytes());
        out[4..12].copy_from_slice(&self.hash.to_le_bytes());
        out[12..20].copy_from_slice(&self.doc.to_le_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        BandRecord {
            band: u32::from_le_bytes(b[0..4].try_into().expect("4 bytes")),
            hash: u64::from_le_bytes(b[4..12].try_into().expect("8 bytes")),
            doc: u64::from_le_bytes(b[12..20].try_into().expect("8 bytes")),
        }
    }
}

/// A content hash of one document: sorted by hash, then document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HashRecord {
    /// 128-bit hash of the whitespace-normalized content.
    pub hash: u128,
    /// Document id (shard << 32 | index in shard).
    pub doc: u64,
}

impl Record for HashRecord {
    const SIZE: usize = 24;
    fn encode(&self, out: &mut [u8]) {
        out[0..16].copy_from_slice(&self.hash.to_le_bytes());
        out[16..24].copy_from_slice(&self.doc.to_le_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        HashRecord {
            hash: u128::from_le_bytes(b[0..16].try_into().expect("16 bytes")),
            doc: u64::from_le_bytes(b[16..24].try_into().expect("8 bytes")),
        }
    }
}

/// Buffers records and spills sorted runs named `<prefix>-<n>.run` into a directory.
#[derive(Debug)]
pub struct RunWriter<R: Record> {
    buffer: Vec<R>,
    capacity: usize,
    dir: PathBuf,
    prefix: String,
    runs: Vec<PathBuf>,
}

impl<R: Record> RunWriter<R> {
    /// A writer holding at most `budget_bytes` of records in memory (at least one).
    pub fn new(dir: &Path, prefix: &str, budget_bytes: u64) -> RunWriter<R> {
        let capacity = ((budget_bytes as usize) / std::mem::size_of::<R>().max(1)).max(1);
        RunWriter {
            buffer: Vec::new(),
            capacity,
            dir: dir.to_path_buf(),
            prefix: prefix.to_string(),
            runs: Vec::new(),
        }
    }

    /// Adds a record, spilling a run when the buffer is full.
    pub fn push(&mut self, r: R) -> Result<()> {
        if self.buffer.len() >= self.capacity {
            self.spill()?;
        }
        let len = self.buffer.len();
        if len == self.buffer.capacity() {
            // Grow on demand (doubling), but never past the budget.
            let extra = (self.capacity - len).min(len.max(1 << 12));
            self.buffer.reserve_exact(extra);
        }
        self.buffer.push(r);
        Ok(())
    }

    fn spill(&mut self) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        self.buffer.sort_unstable();
        let path = self
            .dir
            .join(format!("{}-{}.run", self.prefix, self.runs.len()));
        write_run(&path, &self.buffer)?;
        self.buffer.clear();
        self.runs.push(path);
        Ok(())
    }

    /// Spills what is left and returns the run files.
    pub fn finish(mut self) -> Result<Vec<PathBuf>> {
        self.spill()?;
        Ok(self.runs)
    }
}

fn write_run<R: Record>(path: &Path, records: &[R]) -> Result<()> {
    let file = File::create(path).map_err(Error::io(path))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut buf = vec![0u8; R::SIZE];
    for r in records {
        r.encode(&mut buf);
        w.write_all(&buf).map_err(Error::io(path))?;
    }
    w.flush().map_err(Error::io(path))?;
    Ok(())
}

struct RunReader<R: Record> {
    path: PathBuf,
    reader: BufReader<File>,
    buf: Vec<u8>,
    _marker: std::marker::PhantomData<R>,
}

impl<R: Record> RunReader<R> {
    fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(Error::io(path))?;
        let len = file.metadata().map_err(Error::io(path))?.len();
        if len % R::SIZE as u64 != 0 {
            return Err(Error::Corrupt {
                path: path.to_path_buf(),
                reason: format!(
                    "size {len} is not a multiple of the record size {}",
                    R::SIZE
                ),
            });
        }
        Ok(RunReader {
            path: path.to_path_buf(),
            reader: BufReader::with_capacity(READ_BUFFER, file),
            buf: vec![0u8; R::SIZE],
            _marker: std::marker::PhantomData,
        })
    }

    fn next(&mut self) -> Result<Option<R>> {
        match self.reader.read_exact(&mut self.buf) {
            Ok(()) => Ok(Some(R::decode(&self.buf))),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(Error::io(&self.path)(e)),
        }
    }
}

fn merge_into<R: Record>(runs: &[PathBuf], mut f: impl FnMut(R) -> Result<()>) -> Result<()> {
    let mut readers = runs
        .iter()
        .map(|p| RunReader::<R>::open(p))
        .collect::<Result<Vec<_>>>()?;
    let mut heap = BinaryHeap::with_capacity(readers.len());
    for (i, r) in readers.iter_mut().enumerate() {
        if let Some(rec) = r.next()? {
            heap.push(Reverse((rec, i)));
        }
    }
    while let Some(Reverse((rec, i))) = heap.pop() {
        f(rec)?;
        if let Some(next) = readers[i].next()? {
            heap.push(Reverse((next, i)));
        }
    }
    Ok(())
}

/// Calls `f` on every record of `runs` in sorted order. Intermediate runs go to
/// `tmp_dir` and are deleted; the input runs are left alone.
pub fn merge<R: Record>(
    runs: &[PathBuf],
    tmp_dir: &Path,
    f: impl FnMut(R) -> Result<()>,
) -> Result<()> {
    let mut current: Vec<PathBuf> = runs.to_vec();
    let mut level = 0;
    let mut temporaries: Vec<PathBuf> = Vec::new();
    while current.len() > MAX_FAN_IN {
        std::fs::create_dir_all(tmp_dir).map_err(Error::io(tmp_dir))?;
        let mut next = Vec::new();
        for (g, group) in current.chunks(MAX_FAN_IN).enumerate() {
            let path = tmp_dir.join(format!("merge-{level}-{g}.run"));
            let file = File::create(&path).map_err(Error::io(&path))?;
            let mut w = BufWriter::with_capacity(1 << 20, file);
            let mut buf = vec![0u8; R::SIZE];
            merge_into::<R>(group, |r| {
                r.encode(&mut buf);
                w.write_all(&buf).map_err(Error::io(&path))
            })?;
            w.flush().map_err(Error::io(&path))?;
            next.push(path);
        }
        for t in temporaries.drain(..) {
            let _ = std::fs::remove_file(t);
        }
        temporaries.extend(next.iter().cloned());
        current = next;
        level += 1;
    }
    let result = merge_into(&current, f);
    for t in temporaries {
        let _ = std::fs::remove_file(t);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_across_many_runs_with_multilevel_merge() {
        let dir = tempfile::tempdir().unwrap();
        // 8 records per run: 10_000 records give 1250 runs, two merge levels.
        let mut w = RunWriter::<BandRecord>::new(
            dir.path(),
            "t",
            8 * std::mem::size_of::<BandRecord>() as u64,
        );
        let mut expected = Vec::new();
        let mut state = 1u64;
        for i in 0..10_000u64 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = BandRecord {
                band: (state >> 60) as u32,
                hash: state >> 40,
                doc: i,
            };
            expected.push(r);
            w.push(r).unwrap();
        }
        let runs = w.finish().unwrap();
        assert_eq!(runs.len(), 1250);
        expected.sort();
        let mut got = Vec::new();
        merge::<BandRecord>(&runs, &dir.path().join("tmp"), |r| {
            got.push(r);
            Ok(())
        })
        .unwrap();
        assert_eq!(got, expected);
        let left: Vec<_> = std::fs::read_dir(dir.path().join("tmp")).unwrap().collect();
        assert!(left.is_empty(), "intermediate runs are deleted");
    }

    #[test]
    fn records_round_trip() {
        let h = HashRecord {
            hash: u128::MAX - 5,
            doc: 42,
        };
        let mut b = [0u8; 24];
        h.encode(&mut b);
        assert_eq!(HashRecord::decode(&b), h);
    }

    #[test]
    fn truncated_runs_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.run");
        std::fs::write(&p, [0u8; 7]).unwrap();
        let err = merge::<HashRecord>(&[p], dir.path(), |_| Ok(())).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    }
}

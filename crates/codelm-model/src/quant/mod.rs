//! Storage types, dequantization and the quantized matrix multiply: the one seam
//! between model code and kernels.
//!
//! Model code only ever calls [`QMatrix::matmul`] (or [`QMatrix::matmul_all`]) and
//! [`QMatrix::dequantize_row`].
//! Behind them, activations are quantized once per call to the weight type's
//! companion format (Q8_0 blocks of 32 for the legacy types, Q8_K blocks of 256 for
//! the k-quants, as llama.cpp does) and multiplied with integer dot products; the
//! kernels in [`kernels`] pick AVX-512 VNNI or AVX2 at run time and fall back to
//! portable code.
//! Replacing a kernel never touches a model file.
//!
//! ```
//! use codelm_model::quant::{GgmlType, QMatrix};
//! // A 2x32 F32 matrix times one 32-vector of ones.
//! let w: Vec<f32> = (0..64).map(|i| (i / 32) as f32).collect();
//! let bytes: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
//! let m = QMatrix::from_bytes(GgmlType::F32, 2, 32, bytes.into()).unwrap();
//! let mut out = [0.0f32; 2];
//! m.matmul(&[1.0; 32], 1, &mut out);
//! assert_eq!(out, [0.0, 32.0]);
//! ```

pub mod blocks;
pub mod kernels;

use std::sync::Arc;

use rayon::prelude::*;

pub use blocks::{quantize_row, GgmlType};

/// Bytes of a weight tensor: a range of a shared memory map, or owned.
#[derive(Clone)]
pub enum WeightBytes {
    /// A slice of a memory-mapped file.
    Mapped {
        /// The map.
        map: Arc<memmap2::Mmap>,
        /// Start offset in the map.
        offset: usize,
        /// Length in bytes.
        len: usize,
    },
    /// Bytes owned by the tensor.
    Owned(Arc<Vec<u8>>),
}

impl WeightBytes {
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        match self {
            WeightBytes::Mapped { map, offset, len } => &map[*offset..*offset + *len],
            WeightBytes::Owned(v) => v,
        }
    }
}

impl From<Vec<u8>> for WeightBytes {
    fn from(v: Vec<u8>) -> Self {
        WeightBytes::Owned(Arc::new(v))
    }
}

/// A 2-D weight `(rows, cols)` stored row-major in a GGML type; `cols` is the
/// contiguous dimension (GGML's `ne[0]`), so `y = W x` takes `x` of length `cols`.
#[derive(Clone)]
pub struct QMatrix {
    dtype: GgmlType,
    rows: usize,
    cols: usize,
    row_bytes: usize,
    data: WeightBytes,
}

impl std::fmt::Debug for QMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QMatrix({:?}, {}x{})", self.dtype, self.rows, self.cols)
    }
}

/// Why raw bytes cannot form a matrix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatrixError {
    /// `cols` is not a multiple of the type's block size.
    BadRowLength,
    /// The byte count does not match `rows * cols`.
    BadByteCount {
        /// Bytes needed.
        expected: usize,
        /// Bytes given.
        actual: usize,
    },
}

impl QMatrix {
    /// Wraps encoded bytes as a `(rows, cols)` matrix.
    pub fn from_bytes(
        dtype: GgmlType,
        rows: usize,
        cols: usize,
        data: WeightBytes,
    ) -> std::result::Result<Self, MatrixError> {
        if !cols.is_multiple_of(dtype.block_size()) {
            return Err(MatrixError::BadRowLength);
        }
        let row_bytes = cols / dtype.block_size() * dtype.block_bytes();
        let expected = row_bytes * rows;
        let actual = data.as_slice().len();
        if expected != actual {
            return Err(MatrixError::BadByteCount { expected, actual });
        }
        Ok(QMatrix {
            dtype,
            rows,
            cols,
            row_bytes,
            data,
        })
    }

    /// Storage type.
    pub fn dtype(&self) -> GgmlType {
        self.dtype
    }

    /// Output features.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input features.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Total bytes of weights (read once per matmul).
    pub fn n_bytes(&self) -> usize {
        self.row_bytes * self.rows
    }

    fn row(&self, row_idx: usize) -> &[u8] {
        &self.data.as_slice()[row_idx * self.row_bytes..(row_idx + 1) * self.row_bytes]
    }

    /// Dequantizes row `row_idx` into `out` (length `cols`).
    ///
    /// # Panics
    /// If `row_idx >= rows` or `out.len() != cols`; callers check token ids first.
    pub fn dequantize_row(&self, row_idx: usize, out: &mut [f32]) {
        assert!(row_idx < self.rows && out.len() == self.cols);
        blocks::dequantize(self.dtype, self.row(row_idx), out);
    }

    /// `out (n, rows) = xs (n, cols) · Wᵀ`.
    ///
    /// # Panics
    /// If the slice lengths do not match `n`; shapes are our own invariant.
    pub fn matmul(&self, xs: &[f32], n: usize, out: &mut [f32]) {
        QMatrix::matmul_all(&mut [(self, out)], xs, n);
    }

    /// `out_j (n, rows_j) = xs (n, cols) · W_jᵀ` for every `(W_j, out_j)` of `jobs`,
    /// as one parallel loop: matrices that read the same input (Q, K and V; gate
    /// and up) wait for the threads once, and those of one type share the input's
    /// quantization.
    ///
    /// # Panics
    /// If the matrices' `cols` differ or a slice length does not match `n`.
    pub fn matmul_all(jobs: &mut [(&QMatrix, &mut [f32])], xs: &[f32], n: usize) {
        let mut acts: Vec<(GgmlType, kernels::Activations)> = Vec::new();
        let mut tasks: Vec<(usize, usize, usize)> = Vec::new();
        for (j, (m, out)) in jobs.iter().enumerate() {
            assert_eq!(xs.len(), n * m.cols);
            assert_eq!(out.len(), n * m.rows);
            if !acts.iter().any(|(dtype, _)| *dtype == m.dtype) {
                acts.push((
                    m.dtype,
                    kernels::Activations::quantize(m.dtype, xs, n, m.cols),
                ));
            }
            // Each task owns a band of weight rows and computes them for every token,
            // so a weight row is read from memory once per call whatever `n` is.
            let rows_per_task = (m.rows / (rayon::current_num_threads() * 8)).clamp(16, 1024);
            for start in (0..m.rows).step_by(rows_per_task) {
                tasks.push((j, start, (start + rows_per_task).min(m.rows)));
            }
        }
        let outs: Vec<(&QMatrix, SendPtr, &kernels::Activations)> = jobs
            .iter_mut()
            .map(|(m, out)| {
                let acts = &acts.iter().find(|(dtype, _)| *dtype == m.dtype).unwrap().1;
                (*m, SendPtr(out.as_mut_ptr()), acts)
            })
            .collect();
        tasks.into_par_iter().for_each(|(j, start, end)| {
            let (m, out_ptr, acts) = &outs[j];
            let rows = m.rows;
            let mut tile = vec![0f32; (end - start) * n];
            kernels::dot_rows(
                m.dtype,
                m.row_bytes,
                &m.data.as_slice()[start * m.row_bytes..end * m.row_bytes],
                acts,
                &mut tile,
            );
            // SAFETY: tasks write disjoint row ranges of their job's `out`, which
            // outlives the parallel loop.
            unsafe { kernels::scatter_tile(&tile, n, out_ptr.0, rows, start) };
        });
    }
}

struct SendPtr(*mut f32);
// SAFETY: used only for disjoint writes inside `QMatrix::matmul`.
unsafe impl Sync for SendPtr {}
unsafe impl Send for SendPtr {}

//! Matmul throughput per type: `cargo run --release --example matmul -- ROWS COLS N`.

use codelm_model::quant::{quantize_row, GgmlType, QMatrix};
use std::time::Instant;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let (rows, cols, n) = (args[0], args[1], args[2]);
    let w: Vec<f32> = (0..rows * cols)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    let x: Vec<f32> = (0..n * cols)
        .map(|i| ((i * 104729) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    for dtype in [
        GgmlType::Q8_0,
        GgmlType::Q5_0,
        GgmlType::Q4_0,
        GgmlType::Q4_K,
        GgmlType::Q6_K,
        GgmlType::Q5_K,
        GgmlType::F16,
    ] {
        let bytes = quantize_row(dtype, &w);
        let m = QMatrix::from_bytes(dtype, rows, cols, bytes.into()).unwrap();
        let mut out = vec![0f32; n * rows];
        m.matmul(&x, n, &mut out);
        let iters = 10;
        let start = Instant::now();
        for _ in 0..iters {
            m.matmul(&x, n, &mut out);
        }
        let secs = start.elapsed().as_secs_f64() / iters as f64;
        println!(
            "{:?}: {:.2} ms, {:.1} GB/s weights, {:.1} Gop/s",
            dtype,
            secs * 1e3,
            m.n_bytes() as f64 / secs / 1e9,
            2.0 * (rows * cols * n) as f64 / secs / 1e9
        );
    }
}

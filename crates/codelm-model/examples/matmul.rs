//! Matmul throughput per type:
//! `cargo run --release --example matmul -- ROWS COLS N [ITERS [TYPE...]]`
//! (types as GGUF spells them, e.g. `Q5_0 Q8_0`; by default every type whose
//! block size divides COLS).

use codelm_model::quant::{quantize_row, GgmlType, QMatrix};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, default: usize| {
        args.get(i)
            .map(|a| a.parse().expect("ROWS COLS N ITERS are numbers"))
            .unwrap_or(default)
    };
    let (rows, cols, n, iters) = (num(0, 1024), num(1, 896), num(2, 1), num(3, 10));
    let all = [
        GgmlType::Q8_0,
        GgmlType::Q5_0,
        GgmlType::Q4_0,
        GgmlType::Q4_K,
        GgmlType::Q6_K,
        GgmlType::Q5_K,
        GgmlType::F16,
        GgmlType::BF16,
        GgmlType::F32,
    ];
    let w: Vec<f32> = (0..rows * cols)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    let x: Vec<f32> = (0..n * cols)
        .map(|i| ((i * 104729) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    for dtype in all {
        let named = args.len() <= 4 || args[4..].iter().any(|a| *a == format!("{dtype:?}"));
        if !named || cols % dtype.block_size() != 0 {
            continue;
        }
        let bytes = quantize_row(dtype, &w);
        let m = QMatrix::from_bytes(dtype, rows, cols, bytes.into()).unwrap();
        let mut out = vec![0f32; n * rows];
        m.matmul(&x, n, &mut out);
        let start = Instant::now();
        for _ in 0..iters {
            m.matmul(&x, n, &mut out);
        }
        let secs = start.elapsed().as_secs_f64() / iters as f64;
        println!(
            "{:?}: {:.3} ms, {:.1} GB/s weights, {:.1} Gop/s",
            dtype,
            secs * 1e3,
            m.n_bytes() as f64 / secs / 1e9,
            2.0 * (rows * cols * n) as f64 / secs / 1e9
        );
    }
}

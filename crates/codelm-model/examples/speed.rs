//! Rough prefill/decode timing: `cargo run --release --example speed -- MODEL N_PROMPT N_DECODE`.

use std::path::Path;
use std::time::Instant;

fn argmax(xs: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in xs.iter().enumerate() {
        if *v > xs[best] {
            best = i;
        }
    }
    best as u32
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (model, _) = codelm_model::Model::load(Path::new(&args[1]))?;
    eprintln!("{:?}", model.weight_types());
    let n_prompt: usize = args[2].parse()?;
    let n_decode: usize = args[3].parse()?;
    let prompt: Vec<u32> = (0..n_prompt as u32)
        .map(|i| 100 + (i * 37) % 5000)
        .collect();
    // Warm the page cache and the thread pool.
    let mut cache = model.new_cache();
    model.forward(&mut [&mut cache], &[&prompt[..8]], 8192, false)?;
    let mut cache = model.new_cache();
    let start = Instant::now();
    let logits = model
        .forward(&mut [&mut cache], &[&prompt], 8192, false)?
        .remove(0);
    let prefill = start.elapsed().as_secs_f64();
    let mut token = argmax(&logits);
    let start = Instant::now();
    for _ in 0..n_decode {
        let logits = model
            .forward(&mut [&mut cache], &[&[token]], 8192, false)?
            .remove(0);
        token = argmax(&logits);
    }
    let decode = start.elapsed().as_secs_f64();
    println!(
        "prefill {:.1} tok/s, decode {:.1} tok/s",
        n_prompt as f64 / prefill,
        n_decode as f64 / decode
    );
    Ok(())
}

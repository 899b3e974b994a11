//! Prints the last-token logits' top entries for token ids given on the command line:
//! `cargo run --release --example logits -- MODEL.gguf 750 75698 ...`.

use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (model, _) = codelm_model::Model::load(Path::new(&args[1]))?;
    let tokens: Vec<u32> = args[2..]
        .iter()
        .map(|t| t.parse())
        .collect::<Result<_, _>>()?;
    let mut cache = model.new_cache();
    let start = std::time::Instant::now();
    let logits = model
        .forward(&mut [&mut cache], &[&tokens], 4096, false)?
        .remove(0);
    let elapsed = start.elapsed();
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    idx.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    for &i in &idx[..10] {
        println!("{i} {:.4}", logits[i]);
    }
    eprintln!("{} tokens in {:?}", tokens.len(), elapsed);
    Ok(())
}

//! Prints row `ROW` of tensor `NAME`, dequantized: `dequant MODEL NAME ROW`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let gguf = codelm_model::GgufFile::open(&args[1])?;
    let info = gguf.tensor(&args[2]).ok_or("no such tensor")?;
    let row: usize = args[3].parse()?;
    let cols = info.dims[0];
    let n_rows = info.n_elements() / cols;
    let m = codelm_model::quant::QMatrix::from_bytes(
        info.dtype,
        n_rows,
        cols,
        gguf.tensor_weight_bytes(info),
    )
    .map_err(|e| format!("{e:?}"))?;
    let mut out = vec![0f32; cols];
    m.dequantize_row(row, &mut out);
    println!(
        "{}",
        out.iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    );
    Ok(())
}

//! The generating commands and `models`: load the model, build the prompt, stream.

use std::io::{BufRead, Read, Write};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use codelm_generate::{
    Completion, Engine, FimInput, FimOrder, GenerateOptions, Message, Prompt, SamplingParams,
};
use codelm_hub::PullOptions;
use serde_json::json;

use crate::cli::{ChatArgs, CompleteArgs, GenArgs, InfillArgs, ModelArgs};

fn pull_options(load: Option<&ModelArgs>) -> PullOptions {
    PullOptions {
        cache_dir: load.and_then(|l| l.cache_dir.clone()),
        ..Default::default()
    }
}

/// Resolves (fetching if needed) and loads the model.
pub fn load_model(load: &ModelArgs) -> Result<Engine> {
    if let Some(threads) = load.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .build_global()
            .context("setting up the thread pool")?;
    }
    let path = codelm_hub::resolve(&load.model, &pull_options(Some(load)))?;
    Engine::load(&path, load.ctx).with_context(|| format!("loading {}", path.display()))
}

pub fn options(gen: &GenArgs) -> Result<GenerateOptions> {
    if gen.temperature < 0.0 || !gen.temperature.is_finite() {
        bail!("--temperature must be a finite number >= 0");
    }
    if !(0.0..=1.0).contains(&gen.top_p) || !(0.0..=1.0).contains(&gen.min_p) {
        bail!("--top-p and --min-p must be between 0 and 1");
    }
    if gen.n == 0 {
        bail!("--n must be at least 1");
    }
    Ok(GenerateOptions {
        n: gen.n,
        max_tokens: gen.max_tokens,
        sampling: SamplingParams {
            temperature: gen.temperature,
            top_k: gen.top_k,
            top_p: gen.top_p,
            min_p: gen.min_p,
            repetition_penalty: gen.repeat_penalty,
            seed: gen.seed,
            ..Default::default()
        },
        stop: gen.stop.clone(),
        logprobs: None,
    })
}

/// Generates and prints: streamed text for one sample, or JSON / numbered samples.
fn run_prompt(engine: &Engine, prompt: &Prompt, gen: &GenArgs) -> Result<Vec<Completion>> {
    let opts = options(gen)?;
    let stream = !gen.json && opts.n == 1;
    let start = Instant::now();
    let mut stdout = std::io::stdout().lock();
    let mut first_token_at = None;
    let completions = engine.generate(prompt, &opts, &mut |_, text| {
        first_token_at.get_or_insert_with(|| start.elapsed());
        if stream {
            // A closed pipe (e.g. `| head`) ends generation instead of panicking.
            return stdout
                .write_all(text.as_bytes())
                .and_then(|_| stdout.flush())
                .is_ok();
        }
        true
    })?;
    let elapsed = start.elapsed().as_secs_f64();
    let n_new: usize = completions.iter().map(|c| c.tokens.len()).sum();
    let n_prompt = completions.first().map_or(0, |c| c.n_prompt_tokens);
    if gen.json {
        let out = json!({
            "model": gen.load.model,
            "prompt_tokens": n_prompt,
            "completion_tokens": n_new,
            "seconds": elapsed,
            "choices": completions.iter().enumerate().map(|(i, c)| json!({
                "index": i,
                "text": c.text,
                "finish_reason": c.finish_reason.as_str(),
                "tokens": c.tokens,
            })).collect::<Vec<_>>(),
        });
        writeln!(stdout, "{out}")?;
    } else if stream {
        writeln!(stdout)?;
    } else {
        for (i, c) in completions.iter().enumerate() {
            writeln!(
                stdout,
                "--- sample {i} ({}) ---\n{}",
                c.finish_reason.as_str(),
                c.text
            )?;
        }
    }
    stdout.flush()?;
    if !gen.json {
        let ttft = first_token_at.map_or(0.0, |t| t.as_secs_f64());
        eprintln!(
            "[{n_prompt} prompt tokens, {n_new} new tokens in {elapsed:.2}s, first text after {ttft:.2}s, {:.1} tok/s overall]",
            n_new as f64 / elapsed.max(1e-9)
        );
    }
    Ok(completions)
}

pub fn complete(args: CompleteArgs) -> Result<i32> {
    let prompt = if args.prompt == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the prompt from standard input")?;
        text
    } else {
        args.prompt
    };
    let engine = load_model(&args.gen.load)?;
    if args.gen.verify.verify {
        let code = |completion: &str| format!("{prompt}{completion}");
        return crate::verify::run(
            &engine,
            &Prompt::Text(prompt.clone()),
            &prompt,
            &code,
            &args.gen,
        );
    }
    run_prompt(&engine, &Prompt::Text(prompt), &args.gen)?;
    Ok(0)
}

pub fn chat(args: ChatArgs) -> Result<i32> {
    let engine = load_model(&args.gen.load)?;
    let mut messages: Vec<Message> = args
        .system
        .iter()
        .map(|s| Message::new("system", s.clone()))
        .collect();
    if let Some(message) = args.message {
        messages.push(Message::new("user", message.clone()));
        if args.gen.verify.verify {
            let code = |reply: &str| codelm_verify::extract_code(reply);
            return crate::verify::run(
                &engine,
                &Prompt::Chat(messages),
                &message,
                &code,
                &args.gen,
            );
        }
        run_prompt(&engine, &Prompt::Chat(messages), &args.gen)?;
        return Ok(0);
    }
    if args.gen.verify.verify {
        bail!("--verify needs the message as an argument");
    }
    let stdin = std::io::stdin();
    eprintln!("codelm chat: type a message and press Enter; an empty line or Ctrl-D ends.");
    loop {
        eprint!("> ");
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 || line.trim().is_empty() {
            return Ok(0);
        }
        messages.push(Message::new("user", line.trim_end().to_string()));
        let completions = run_prompt(&engine, &Prompt::Chat(messages.clone()), &args.gen)?;
        let reply = completions
            .into_iter()
            .next()
            .map(|c| c.text)
            .unwrap_or_default();
        messages.push(Message::new("assistant", reply));
    }
}

pub fn infill(args: InfillArgs) -> Result<i32> {
    let (prefix, suffix) = match (&args.file, args.line) {
        (Some(file), Some(line)) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            split_at_line(&text, line)
                .with_context(|| format!("{} has no line {line}", file.display()))?
        }
        _ => (
            args.prefix.clone().unwrap_or_default(),
            args.suffix.clone().unwrap_or_default(),
        ),
    };
    if prefix.is_empty() && suffix.is_empty() {
        bail!("give --prefix/--suffix or --file with --line");
    }
    let engine = load_model(&args.gen.load)?;
    let mut input = FimInput::new(prefix, suffix);
    input.order = if args.spm {
        FimOrder::Spm
    } else {
        FimOrder::Psm
    };
    input.file_path = args.file.as_ref().map(|f| f.display().to_string());
    if args.gen.verify.verify {
        let spec = format!("{}{}", input.prefix, input.suffix);
        let (prefix, suffix) = (input.prefix.clone(), input.suffix.clone());
        let code = |middle: &str| format!("{prefix}{middle}{suffix}");
        return crate::verify::run(&engine, &Prompt::Infill(input), &spec, &code, &args.gen);
    }
    run_prompt(&engine, &Prompt::Infill(input), &args.gen)?;
    Ok(0)
}

/// Splits `text` before 1-based `line` (one past the last line is the end).
fn split_at_line(text: &str, line: usize) -> Option<(String, String)> {
    if line == 0 {
        return None;
    }
    let mut offset = 0;
    for _ in 1..line {
        let rest = &text[offset..];
        let next = rest.find('\n')?;
        offset += next + 1;
    }
    Some((text[..offset].to_string(), text[offset..].to_string()))
}

pub fn models_list(as_json: bool) -> Result<i32> {
    let models = codelm_hub::list(&pull_options(None))?;
    if as_json {
        let rows: Vec<_> = models
            .iter()
            .map(|m| json!({"name": m.name, "bytes": m.n_bytes, "cached": m.is_cached, "default": m.is_default, "path": m.path}))
            .collect();
        println!("{}", serde_json::Value::Array(rows));
        return Ok(0);
    }
    for m in models {
        println!(
            "{:<32} {:>8.1} MB  {:<10} {}",
            m.name,
            m.n_bytes as f64 / 1e6,
            if m.is_cached { "cached" } else { "not cached" },
            m.description,
        );
    }
    Ok(0)
}

pub fn models_pull(name: &str) -> Result<i32> {
    let entry = codelm_hub::lookup(name)?;
    let path = codelm_hub::pull(entry, &pull_options(None))?;
    println!("{}", path.display());
    Ok(0)
}

/// The CPU's name as Linux reports it, if it does.
fn cpu_name() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("model name"))?;
    Some(line.split_once(':')?.1.trim().to_string())
}

pub fn models_info(model: Option<&str>, as_json: bool) -> Result<i32> {
    use codelm_model::quant::kernels;
    let features = codelm_model::isa::features();
    let cpu = cpu_name().unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let table = kernels::table();
    let weights = match model {
        Some(name) => {
            let path = codelm_hub::resolve(name, &pull_options(None))?;
            let (model, _) = codelm_model::Model::load(&path)
                .with_context(|| format!("loading {}", path.display()))?;
            Some((path, model.weight_types()))
        }
        None => None,
    };
    if as_json {
        let kernels: serde_json::Map<String, serde_json::Value> = table
            .iter()
            .map(|(t, k)| (t.name().to_string(), json!(k.name())))
            .collect();
        let mut out = json!({"cpu": cpu, "features": features.names(), "kernels": kernels});
        if let Some((path, types)) = &weights {
            out["model"] = json!(path);
            out["weights"] = types
                .iter()
                .map(|(t, n)| json!({"type": t.name(), "bytes": n, "kernel": kernels::Kernel::select(*t).name()}))
                .collect();
        }
        println!("{out}");
        return Ok(0);
    }
    println!("cpu:      {cpu}");
    println!("features: {}", features.names().join(", "));
    println!("kernels:");
    for (t, k) in &table {
        println!("  {:<6} {}", t.name(), k.name());
    }
    if let Some((path, types)) = weights {
        println!("weights of {}:", path.display());
        for (t, n) in types {
            let kernel = kernels::Kernel::select(t).name();
            println!("  {:<6} {:>8.1} MB  {kernel}", t.name(), n as f64 / 1e6);
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::split_at_line;

    #[test]
    fn split_at_line_puts_the_cursor_at_the_line_start() {
        let text = "a\nb\nc\n";
        assert_eq!(
            split_at_line(text, 1),
            Some((String::new(), text.to_string()))
        );
        assert_eq!(
            split_at_line(text, 2),
            Some(("a\n".into(), "b\nc\n".into()))
        );
        assert_eq!(split_at_line(text, 4), Some((text.into(), String::new())));
        assert_eq!(split_at_line(text, 5), None);
        assert_eq!(split_at_line(text, 0), None);
    }
}

//! `codelm serve`: load the model and answer HTTP until Ctrl-C.

use std::time::Duration;

use anyhow::Result;
use clap::Args;
use codelm_serve::{SchedulerOptions, ServeOptions, Server};

use crate::cli::ModelArgs;

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Address to bind; anything but loopback needs --api-key.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Require `Authorization: Bearer <KEY>` (or set CODELM_API_KEY).
    #[arg(long, env = "CODELM_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// The model id clients use (default: the registry name or file name).
    #[arg(long)]
    pub model_id: Option<String>,
    /// Samples decoded together at most.
    #[arg(long, default_value_t = 32)]
    pub max_batch: usize,
    /// Requests waiting for the batch at most; more get HTTP 503.
    #[arg(long, default_value_t = 64)]
    pub max_queue: usize,
    /// Seconds a request may take before it ends with HTTP 504.
    #[arg(long, default_value_t = 600)]
    pub request_timeout: u64,
    /// MiB of key/value cache kept for reusing shared prompt prefixes.
    #[arg(long, default_value_t = 256)]
    pub prefix_cache_mb: usize,
}

pub fn run(args: ServeArgs) -> Result<i32> {
    let engine = crate::generate::load_model(&args.model)?;
    // A registry name is the id as it is; a file or directory goes by its name.
    let model_id = args.model_id.clone().unwrap_or_else(|| {
        let name = &args.model.model;
        let path = std::path::Path::new(name);
        match (path.exists(), path.file_stem()) {
            (true, Some(stem)) => stem.to_string_lossy().into_owned(),
            _ => name.clone(),
        }
    });
    let options = ServeOptions {
        host: args.host,
        port: args.port,
        api_key: args.api_key.filter(|k| !k.is_empty()),
        model_id: model_id.clone(),
        request_timeout: Duration::from_secs(args.request_timeout.max(1)),
        scheduler: SchedulerOptions {
            max_batch_samples: args.max_batch.max(1),
            max_queue: args.max_queue.max(1),
            batch: codelm_generate::BatchOptions {
                prefix_cache_bytes: args.prefix_cache_mb << 20,
                ..Default::default()
            },
        },
        stop_on_ctrl_c: true,
        ..ServeOptions::default()
    };
    let n_ctx = engine.n_ctx();
    let server = Server::start(engine, options)?;
    eprintln!(
        "serving {model_id} (context {n_ctx}) on http://{} — OpenAI API under /v1, llama.cpp /infill, playground at /; Ctrl-C stops",
        server.addr()
    );
    server.wait()?;
    Ok(0)
}

//! `codelm serve`: an HTTP server that IDEs and evaluation tools already speak.
//!
//! | endpoint | compatible with |
//! | --- | --- |
//! | `POST /v1/completions` (with `suffix` for fill-in-the-middle) | OpenAI |
//! | `POST /v1/chat/completions` | OpenAI |
//! | `GET /v1/models` | OpenAI |
//! | `POST /infill` (`input_prefix`, `input_suffix`, `input_extra`) | llama.cpp |
//! | `GET /health`, `GET /metrics` (Prometheus), `GET /` (playground) | |
//!
//! The design decision a newcomer may question: the model runs on one engine
//! thread that owns a [`codelm_generate::Batch`] (see [`scheduler`]), and the
//! async runtime only parses, queues and streams. Concurrent requests are
//! therefore decoded together, join and leave the batch between steps, and share
//! cached prompt prefixes; a slow or vanished client costs the batch nothing.
//!
//! Binding beyond loopback requires an API key. Every error is an OpenAI-style
//! JSON body with the fitting status ([`ApiError`]).
//!
//! ```no_run
//! use codelm_serve::{Server, ServeOptions};
//! let engine = codelm_generate::Engine::load("model.gguf".as_ref(), None).unwrap();
//! let server = Server::start(engine, ServeOptions::default()).unwrap();
//! println!("listening on http://{}", server.addr());
//! server.wait().unwrap();
//! ```

#![deny(missing_docs)]

pub mod error;
pub mod metrics;
mod routes;
pub mod scheduler;
pub mod wire;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use codelm_generate::Engine;
use tokio::sync::oneshot;

pub use error::{ApiError, Error, Result};
pub use scheduler::SchedulerOptions;

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address to bind.
    pub host: String,
    /// Port (0: any free one).
    pub port: u16,
    /// Required as `Authorization: Bearer <key>` when set.
    pub api_key: Option<String>,
    /// The id clients name the model by.
    pub model_id: String,
    /// A request that has not finished by then ends with HTTP 504.
    pub request_timeout: Duration,
    /// Request bodies larger than this get HTTP 413.
    pub max_body_bytes: usize,
    /// Largest `n` per request.
    pub max_n: usize,
    /// Batch and queue sizes.
    pub scheduler: SchedulerOptions,
    /// Stop on Ctrl-C (the binary); tests stop by dropping the [`Server`].
    pub stop_on_ctrl_c: bool,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            host: "127.0.0.1".into(),
            port: 8080,
            api_key: None,
            model_id: "codelm".into(),
            request_timeout: Duration::from_secs(600),
            max_body_bytes: 8 << 20,
            max_n: 16,
            scheduler: SchedulerOptions::default(),
            stop_on_ctrl_c: false,
        }
    }
}

/// A running server; dropping it stops it.
pub struct Server {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl Server {
    /// Binds the address and starts serving on background threads.
    ///
    /// # Errors
    ///
    /// [`Error::ApiKeyRequired`] for a non-loopback address without a key, and
    /// [`Error::Bind`] when the address cannot be bound.
    pub fn start(engine: Engine, options: ServeOptions) -> Result<Server> {
        let addr_text = format!("{}:{}", options.host, options.port);
        if !is_loopback(&options.host) && options.api_key.is_none() {
            return Err(Error::ApiKeyRequired { addr: addr_text });
        }
        let bind_error = |source| Error::Bind {
            addr: addr_text.clone(),
            source,
        };
        let listener = std::net::TcpListener::bind(&addr_text).map_err(bind_error)?;
        listener.set_nonblocking(true).map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;

        let engine = Arc::new(engine);
        let metrics = Arc::new(metrics::Metrics::default());
        let scheduler =
            scheduler::Scheduler::start(engine.clone(), options.scheduler.clone(), metrics.clone());
        let app = Arc::new(routes::App {
            engine,
            scheduler,
            metrics,
            model_id: options.model_id.clone(),
            api_key: options.api_key.clone(),
            request_timeout: options.request_timeout,
            max_body_bytes: options.max_body_bytes,
            max_n: options.max_n.max(1),
        });
        let router = Router::new()
            .route("/", get(routes::playground))
            .route("/health", get(routes::health))
            .route("/metrics", get(routes::metrics))
            .route("/v1/models", get(routes::models))
            .route("/v1/completions", post(routes::completions))
            .route("/v1/chat/completions", post(routes::chat))
            .route("/infill", post(routes::infill))
            .fallback(routes::not_found)
            .method_not_allowed_fallback(routes::method_not_allowed)
            .layer(axum::middleware::from_fn_with_state(
                app.clone(),
                routes::guard,
            ))
            .with_state(app);

        let (shutdown, stop) = oneshot::channel::<()>();
        let stop_on_ctrl_c = options.stop_on_ctrl_c;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("codelm-http")
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("codelm-serve".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)?;
                    let stopped = async move {
                        if stop_on_ctrl_c {
                            tokio::select! {
                                _ = stop => {}
                                _ = tokio::signal::ctrl_c() => {
                                    // Open streams may run for minutes: a second
                                    // Ctrl-C ends the process without waiting.
                                    eprintln!("stopping after the open requests; Ctrl-C again quits now");
                                    tokio::spawn(async {
                                        let _ = tokio::signal::ctrl_c().await;
                                        std::process::exit(130);
                                    });
                                }
                            }
                        } else {
                            let _ = stop.await;
                        }
                    };
                    axum::serve(listener, router)
                        .with_graceful_shutdown(stopped)
                        .await
                })
            })?;
        Ok(Server {
            addr,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// The bound address (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until stopped (Ctrl-C with [`ServeOptions::stop_on_ctrl_c`]).
    pub fn wait(mut self) -> Result<()> {
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(result)) => Ok(result?),
            Some(Err(_)) => Err(Error::Io(std::io::Error::other(
                "the server thread panicked",
            ))),
            None => Ok(()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

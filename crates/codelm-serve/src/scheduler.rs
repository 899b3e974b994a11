//! The engine thread: one [`Batch`] that requests join and leave between steps.
//!
//! Handlers tokenize and validate a request, then [`Scheduler::submit`] puts it
//! in a bounded queue (full: HTTP 503 at once). The engine thread admits queued
//! jobs while the batch has room for their samples, runs one step, and sends each
//! event to the job's channel. A send that fails means the client went away
//! (the handler's receiver was dropped): the request is cancelled at the next
//! step and its caches freed. Deadlines are checked between steps.
//!
//! The model runs on this one thread (and its rayon pool); the async runtime only
//! moves bytes, so a slow client never slows the batch.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use codelm_generate::{Batch, BatchOptions, Completion, Engine, Event, Logprobs, Request};
use tokio::sync::mpsc::UnboundedSender;

use crate::error::ApiError;
use crate::metrics::Metrics;

/// What a job reports to its handler; `tag` tells a request's jobs apart (the
/// prompt index of a multi-prompt completion).
#[derive(Debug)]
pub(crate) enum JobEvent {
    Token {
        tag: usize,
        sample_idx: usize,
        token: u32,
        text: String,
        logprobs: Option<Logprobs>,
    },
    Done {
        tag: usize,
        sample_idx: usize,
        tail: String,
        completion: Completion,
    },
    Failed(ApiError),
}

struct Job {
    request: Request,
    tag: usize,
    events: UnboundedSender<JobEvent>,
    arrived: Instant,
    deadline: Instant,
}

struct Running {
    tag: usize,
    events: UnboundedSender<JobEvent>,
    arrived: Instant,
    deadline: Instant,
    samples_left: usize,
    seen_token: bool,
}

/// Sizes of the batch and the queue.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// Samples decoded together at most.
    pub max_batch_samples: usize,
    /// Requests waiting for a place in the batch at most.
    pub max_queue: usize,
    /// Prompt chunking and prefix cache.
    pub batch: BatchOptions,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            max_batch_samples: 32,
            max_queue: 64,
            batch: BatchOptions::default(),
        }
    }
}

/// The handle handlers submit jobs through.
pub(crate) struct Scheduler {
    queue: SyncSender<Job>,
    metrics: Arc<Metrics>,
}

impl Scheduler {
    /// Starts the engine thread.
    pub(crate) fn start(
        engine: Arc<Engine>,
        options: SchedulerOptions,
        metrics: Arc<Metrics>,
    ) -> Scheduler {
        let (queue, jobs) = sync_channel(options.max_queue.max(1));
        let thread_metrics = metrics.clone();
        std::thread::Builder::new()
            .name("codelm-engine".into())
            .spawn(move || engine_loop(&engine, &options, &jobs, &thread_metrics))
            .expect("spawning the engine thread");
        Scheduler { queue, metrics }
    }

    /// Queues a job; its events go to `events`, tagged with `tag`.
    pub(crate) fn submit(
        &self,
        request: Request,
        tag: usize,
        events: UnboundedSender<JobEvent>,
        timeout: Duration,
    ) -> Result<(), ApiError> {
        let now = Instant::now();
        let job = Job {
            request,
            tag,
            events,
            arrived: now,
            deadline: now + timeout,
        };
        self.metrics.queue_depth.fetch_add(1, Ordering::Relaxed);
        let result = self.queue.try_send(job);
        if result.is_err() {
            self.metrics.queue_depth.fetch_sub(1, Ordering::Relaxed);
        }
        match result {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_busy",
                Some("queue_full"),
                "the server's request queue is full; retry later",
            )),
            Err(TrySendError::Disconnected(_)) => Err(ApiError::engine_stopped()),
        }
    }
}

fn timed_out(timeout: Duration) -> ApiError {
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        "timeout",
        Some("request_timeout"),
        format!(
            "the request did not finish within the server's limit of {} s",
            timeout.as_secs()
        ),
    )
}

fn engine_loop(
    engine: &Engine,
    options: &SchedulerOptions,
    queue: &Receiver<Job>,
    metrics: &Metrics,
) {
    let mut batch = Batch::new(engine, options.batch.clone());
    let mut running: HashMap<u64, Running> = HashMap::new();
    let mut waiting: Option<Job> = None;
    let mut next_id: u64 = 0;
    loop {
        // Admit queued jobs while their samples fit (one job always fits an
        // empty batch).
        loop {
            let job = match waiting.take() {
                Some(job) => job,
                None if running.is_empty() && batch.is_empty() => match queue.recv() {
                    Ok(job) => job,
                    Err(_) => return,
                },
                None => match queue.try_recv() {
                    Ok(job) => job,
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => break,
                },
            };
            let n = job.request.options.n;
            if !running.is_empty() && batch.n_samples() + n > options.max_batch_samples {
                waiting = Some(job);
                break;
            }
            metrics.queue_depth.fetch_sub(1, Ordering::Relaxed);
            if job.events.is_closed() {
                metrics.cancelled_requests.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if Instant::now() > job.deadline {
                let _ = job
                    .events
                    .send(JobEvent::Failed(timed_out(job.deadline - job.arrived)));
                metrics.cancelled_requests.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let id = next_id;
            next_id += 1;
            let n_prompt = job.request.prompt.len() as u64;
            match batch.add(id, job.request) {
                Ok(n_cached) => {
                    metrics.prompt_tokens.fetch_add(n_prompt, Ordering::Relaxed);
                    metrics
                        .cached_prompt_tokens
                        .fetch_add(n_cached as u64, Ordering::Relaxed);
                    running.insert(
                        id,
                        Running {
                            tag: job.tag,
                            events: job.events,
                            arrived: job.arrived,
                            deadline: job.deadline,
                            samples_left: n,
                            seen_token: false,
                        },
                    );
                }
                Err(err) => {
                    let _ = job
                        .events
                        .send(JobEvent::Failed(ApiError::from_generate(&err)));
                }
            }
        }
        publish_sizes(&batch, metrics);

        let start = Instant::now();
        let mut n_tokens = 0u64;
        let result = batch.step(&mut |event| match event {
            Event::Token {
                id,
                sample_idx,
                token,
                text,
                logprobs,
            } => {
                let Some(job) = running.get_mut(&id) else {
                    return false;
                };
                n_tokens += 1;
                if !job.seen_token {
                    job.seen_token = true;
                    metrics.observe_ttft(job.arrived.elapsed());
                }
                job.events
                    .send(JobEvent::Token {
                        tag: job.tag,
                        sample_idx,
                        token,
                        text,
                        logprobs,
                    })
                    .is_ok()
            }
            Event::Done {
                id,
                sample_idx,
                tail,
                completion,
            } => {
                let Some(job) = running.get_mut(&id) else {
                    return false;
                };
                let _ = job.events.send(JobEvent::Done {
                    tag: job.tag,
                    sample_idx,
                    tail,
                    completion,
                });
                job.samples_left -= 1;
                if job.samples_left == 0 {
                    running.remove(&id);
                }
                true
            }
        });
        let elapsed = start.elapsed();
        metrics
            .generated_tokens
            .fetch_add(n_tokens, Ordering::Relaxed);
        if n_tokens > 0 {
            metrics.set_decode_rate(n_tokens as f64 / elapsed.as_secs_f64().max(1e-9));
        }
        if let Err(err) = result {
            // The model failed on this batch: every request in it gets the error
            // and the batch starts afresh.
            let api_error = ApiError::from_generate(&err);
            for (_, job) in running.drain() {
                let _ = job.events.send(JobEvent::Failed(api_error.clone()));
            }
            batch = Batch::new(engine, options.batch.clone());
            continue;
        }

        // Requests whose client left or whose time is up leave the batch.
        let now = Instant::now();
        let ended: Vec<u64> = running
            .iter()
            .filter(|(_, job)| job.events.is_closed() || now > job.deadline)
            .map(|(&id, _)| id)
            .collect();
        for id in ended {
            if let Some(job) = running.remove(&id) {
                let _ = job
                    .events
                    .send(JobEvent::Failed(timed_out(job.deadline - job.arrived)));
                metrics.cancelled_requests.fetch_add(1, Ordering::Relaxed);
            }
            batch.cancel(id);
        }
        if running.is_empty() && !batch.is_empty() {
            // Only cancelled requests are left: drop what they hold before
            // waiting for work.
            let _ = batch.step(&mut |_| false);
        }
        publish_sizes(&batch, metrics);
    }
}

fn publish_sizes(batch: &Batch, metrics: &Metrics) {
    metrics
        .running_requests
        .store(batch.n_requests() as u64, Ordering::Relaxed);
    metrics
        .running_samples
        .store(batch.n_samples() as u64, Ordering::Relaxed);
}

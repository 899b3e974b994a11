//! Continuous batching: requests join and leave a running batch between steps.
//!
//! A [`Batch`] holds every request being served. Each [`Batch::step`] is one
//! forward pass over all of them: every running sample advances by one token,
//! and requests still reading their prompt advance by a chunk of it (at most
//! [`BatchOptions::prefill_chunk`] prompt tokens per step, so a long new prompt
//! delays the running samples by a bounded amount). A request's `n` samples
//! share its prefill: when the prompt is done its cache is frozen
//! ([`KvCache::freeze`]), and every sample reads the prompt's keys and values in
//! place, one copy in memory whatever `n` is, appending only its own.
//!
//! The design decision a newcomer may question: finished prompts are kept in a
//! small prefix cache (bounded by bytes, least recently used out), and a new
//! request starts from the longest cached prefix of its prompt. IDE completions
//! and chat turns repeat long prefixes; the forward pass computes each position
//! from the tokens before it only, so a reused prefix gives the same logits,
//! bit for bit, as computing it again.
//!
//! [`Engine::generate_batch`] is this loop run to the end; the server keeps one
//! `Batch` alive and adds requests as they arrive.
//!
//! ```no_run
//! use codelm_generate::{Batch, BatchOptions, Engine, Event, GenerateOptions, Request};
//! let engine = Engine::load("model.gguf".as_ref(), None).unwrap();
//! let mut batch = Batch::new(&engine, BatchOptions::default());
//! let prompt = engine.tokenize(&codelm_generate::Prompt::Text("def f():".into())).unwrap();
//! batch.add(7, Request { prompt, stop_tokens: vec![], options: GenerateOptions::default() }).unwrap();
//! while !batch.is_empty() {
//!     batch.step(&mut |event| {
//!         if let Event::Token { text, .. } = event { print!("{text}"); }
//!         true
//!     }).unwrap();
//! }
//! ```

use codelm_model::KvCache;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::generate::Engine;
use crate::request::{Completion, FinishReason, Request};
use crate::sampler::{logprobs, Logprobs, Sampler, SamplingParams};
use crate::stop::{StopMatcher, Utf8Stream};

/// Limits of a [`Batch`].
#[derive(Debug, Clone)]
pub struct BatchOptions {
    /// Prompt tokens at most per step, over all requests still prefilling.
    pub prefill_chunk: usize,
    /// Bytes of key/value cache kept for prompt-prefix reuse (0: off).
    pub prefix_cache_bytes: usize,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions {
            prefill_chunk: 512,
            prefix_cache_bytes: 256 << 20,
        }
    }
}

/// What a step reports, per sample.
#[derive(Debug)]
pub enum Event {
    /// A sample produced a token. `text` is the text it released, which may be
    /// empty while a stop string could be starting or a character is incomplete.
    Token {
        /// The request's id.
        id: u64,
        /// Which of the request's samples.
        sample_idx: usize,
        /// The token id.
        token: u32,
        /// Text released by this token.
        text: String,
        /// The token's log-probability and the top alternatives, when asked.
        logprobs: Option<Logprobs>,
    },
    /// A sample ended. `tail` is text released at the end (held back as a
    /// possible stop-string prefix until then); it is also in `completion.text`.
    Done {
        /// The request's id.
        id: u64,
        /// Which of the request's samples.
        sample_idx: usize,
        /// Text released at the end.
        tail: String,
        /// The whole sample.
        completion: Completion,
    },
}

struct Sample {
    idx: usize,
    cache: KvCache,
    sampler: Sampler,
    utf8: Utf8Stream,
    stop: StopMatcher,
    text: String,
    tokens: Vec<u32>,
    state: State,
}

/// Where a sample is in a step: a forward pass leaves it holding logits, the
/// parallel draw turns them into a token, reporting the token either ends the
/// sample or makes it the input of the next forward pass.
enum State {
    /// Logits to draw the next token from.
    Draw(Vec<f32>),
    /// The token drawn, with its log-probabilities if asked for, not yet
    /// reported.
    Drawn(Result<(u32, Option<Logprobs>)>),
    /// The token to feed in the next forward pass.
    Feed(u32),
    /// The sample ended; `hit_stop_string` says a stop string matched, so no
    /// held-back text is released.
    Finished {
        reason: FinishReason,
        hit_stop_string: bool,
    },
}

impl State {
    const CANCELLED: State = State::Finished {
        reason: FinishReason::Cancelled,
        hit_stop_string: false,
    };
}

enum Stage {
    /// `cache` holds the first `cache.len()` prompt tokens.
    Prefill {
        cache: KvCache,
    },
    Decode {
        samples: Vec<Sample>,
    },
}

struct Active {
    id: u64,
    request: Request,
    n_cached: usize,
    stage: Stage,
    cancelled: bool,
}

/// Requests being decoded together; see the module docs.
pub struct Batch<'e> {
    engine: &'e Engine,
    options: BatchOptions,
    active: Vec<Active>,
    /// Prompts whose prefill finished, least recently used first.
    prefixes: Vec<(Vec<u32>, KvCache)>,
}

impl<'e> Batch<'e> {
    /// An empty batch.
    pub fn new(engine: &'e Engine, options: BatchOptions) -> Self {
        Batch {
            engine,
            options,
            active: Vec::new(),
            prefixes: Vec::new(),
        }
    }

    /// Whether no request is in the batch.
    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    /// Requests in the batch.
    pub fn n_requests(&self) -> usize {
        self.active.len()
    }

    /// Samples decoding or waiting for their prompt (a request counts `n`).
    pub fn n_samples(&self) -> usize {
        self.active.iter().map(|a| a.request.options.n).sum()
    }

    /// Checks that a request can be served: a non-empty prompt that leaves room
    /// for at least one new token, and `n >= 1`.
    pub fn validate(engine: &Engine, request: &Request) -> Result<()> {
        if request.prompt.is_empty() {
            return Err(Error::BadRequest("the prompt is empty".into()));
        }
        if request.options.n == 0 {
            return Err(Error::BadRequest("n must be at least 1".into()));
        }
        if request.prompt.len() >= engine.n_ctx() {
            return Err(codelm_model::Error::ContextOverflow {
                needed: request.prompt.len() + 1,
                n_ctx: engine.n_ctx(),
            }
            .into());
        }
        let n_vocab = engine.tokenizer().n_vocab();
        if let Some(&id) = request.prompt.iter().find(|&&id| id as usize >= n_vocab) {
            return Err(codelm_model::Error::BadToken { id, n_vocab }.into());
        }
        Ok(())
    }

    /// Adds a request under the caller's `id`; it starts reading its prompt in
    /// the next step, from the longest cached prefix. Returns how many prompt
    /// tokens came from the prefix cache.
    pub fn add(&mut self, id: u64, request: Request) -> Result<usize> {
        Self::validate(self.engine, &request)?;
        let cache = self.cached_prefix(&request.prompt);
        let n_cached = cache.len();
        self.active.push(Active {
            id,
            request,
            n_cached,
            stage: Stage::Prefill { cache },
            cancelled: false,
        });
        Ok(n_cached)
    }

    /// Ends a request at the next step; its unfinished samples end as
    /// [`FinishReason::Cancelled`] and their memory is freed.
    pub fn cancel(&mut self, id: u64) {
        for active in self.active.iter_mut().filter(|a| a.id == id) {
            active.cancelled = true;
        }
    }

    /// The cache of the longest cached prefix of `prompt`, leaving at least the
    /// last prompt token to compute (its logits start decoding).
    fn cached_prefix(&mut self, prompt: &[u32]) -> KvCache {
        let best = self
            .prefixes
            .iter()
            .enumerate()
            .map(|(idx, (tokens, _))| {
                let common = tokens.iter().zip(prompt).take_while(|(a, b)| a == b);
                (idx, common.count().min(prompt.len() - 1))
            })
            .max_by_key(|&(idx, len)| (len, idx));
        match best {
            Some((idx, len)) if len > 0 => {
                let entry = self.prefixes.remove(idx);
                let cache = entry.1.prefix(len);
                self.prefixes.push(entry);
                cache
            }
            _ => self.engine.model().new_cache(),
        }
    }

    fn remember_prefix(&mut self, prompt: &[u32], cache: KvCache) {
        let budget = self.options.prefix_cache_bytes;
        if budget == 0 || cache.n_bytes() > budget {
            return;
        }
        // A prompt that extends a cached one replaces it.
        self.prefixes
            .retain(|(tokens, _)| !prompt.starts_with(tokens));
        self.prefixes.push((prompt.to_vec(), cache));
        let mut total: usize = self.prefixes.iter().map(|(_, c)| c.n_bytes()).sum();
        while total > budget {
            total -= self.prefixes.remove(0).1.n_bytes();
        }
    }

    /// One forward pass: samples holding logits pick their next token (events
    /// go to `on_event`; returning `false` cancels that request), then every
    /// running sample and a chunk of every prefilling prompt run through the
    /// model together.
    pub fn step(&mut self, on_event: &mut dyn FnMut(Event) -> bool) -> Result<()> {
        self.sample_tokens(on_event)?;
        self.finish_samples(on_event);
        self.forward()
    }

    fn sample_tokens(&mut self, on_event: &mut dyn FnMut(Event) -> bool) -> Result<()> {
        let engine = self.engine;
        let tokenizer = engine.tokenizer();
        // Each sample draws from its own logits with its own sampler, so the
        // samples draw in parallel and get the same tokens as one by one.
        let mut drawing: Vec<(&Request, &mut Sample)> = Vec::new();
        for active in self.active.iter_mut().filter(|a| !a.cancelled) {
            if let Stage::Decode { samples } = &mut active.stage {
                drawing.extend(samples.iter_mut().map(|sample| (&active.request, sample)));
            }
        }
        drawing.into_par_iter().for_each(|(request, sample)| {
            if let State::Draw(logits) = &mut sample.state {
                let logits = std::mem::take(logits);
                let is_end =
                    |token| request.stop_tokens.contains(&token) || tokenizer.is_eog(token);
                sample.state = State::Drawn(draw(request, sample, logits, is_end));
            }
        });
        for active in self.active.iter_mut().filter(|a| !a.cancelled) {
            let Stage::Decode { samples } = &mut active.stage else {
                continue;
            };
            let request = &active.request;
            for sample in samples.iter_mut() {
                // A draw left unreported (the request was cancelled, or the
                // draw failed) leaves the sample cancelled.
                let drawn = match std::mem::replace(&mut sample.state, State::CANCELLED) {
                    State::Drawn(drawn) => drawn,
                    state => {
                        sample.state = state;
                        continue;
                    }
                };
                if active.cancelled {
                    continue;
                }
                let (token, token_logprobs) = drawn?;
                if request.stop_tokens.contains(&token) || tokenizer.is_eog(token) {
                    sample.state = State::Finished {
                        reason: FinishReason::Stop,
                        hit_stop_string: false,
                    };
                    continue;
                }
                sample.tokens.push(token);
                let piece = sample.utf8.push(tokenizer.token_bytes(token));
                let step = sample.stop.push(&piece);
                sample.text.push_str(&step.text);
                let stopped = step.is_stopped();
                let keep_going = on_event(Event::Token {
                    id: active.id,
                    sample_idx: sample.idx,
                    token,
                    text: step.text,
                    logprobs: token_logprobs,
                });
                sample.state = if !keep_going {
                    active.cancelled = true;
                    State::CANCELLED
                } else if stopped {
                    State::Finished {
                        reason: FinishReason::Stop,
                        hit_stop_string: true,
                    }
                } else if sample.tokens.len() >= request.options.max_tokens
                    || sample.cache.len() + 1 >= engine.n_ctx()
                {
                    State::Finished {
                        reason: FinishReason::Length,
                        hit_stop_string: false,
                    }
                } else {
                    State::Feed(token)
                };
            }
        }
        Ok(())
    }

    /// Reports and drops finished samples, cancelled requests' samples, and
    /// requests with no sample left.
    fn finish_samples(&mut self, on_event: &mut dyn FnMut(Event) -> bool) {
        for active in &mut self.active {
            if active.cancelled {
                let samples = match std::mem::replace(
                    &mut active.stage,
                    Stage::Decode {
                        samples: Vec::new(),
                    },
                ) {
                    Stage::Decode { samples } => samples,
                    // A request cancelled before its prompt was read has
                    // samples that never started.
                    Stage::Prefill { .. } => (0..active.request.options.n)
                        .map(|idx| {
                            new_sample(&active.request, idx, KvCache::default(), State::CANCELLED)
                        })
                        .collect(),
                };
                for mut sample in samples {
                    if !matches!(sample.state, State::Finished { .. }) {
                        sample.state = State::CANCELLED;
                    }
                    done(active, sample, on_event);
                }
                continue;
            }
            let Stage::Decode { samples } = &mut active.stage else {
                continue;
            };
            let (finished, running): (Vec<Sample>, Vec<Sample>) = std::mem::take(samples)
                .into_iter()
                .partition(|s| matches!(s.state, State::Finished { .. }));
            *samples = running;
            for sample in finished {
                done(active, sample, on_event);
            }
        }
        self.active.retain(|a| match &a.stage {
            Stage::Decode { samples } => !samples.is_empty(),
            Stage::Prefill { .. } => true,
        });
    }

    fn forward(&mut self) -> Result<()> {
        /// Where a sequence's logits go.
        enum Slot {
            /// Request index, sample index.
            Sample(usize, usize),
            /// Request index, end of the prompt chunk.
            Prefill(usize, usize),
        }
        // One walk over the requests picks each sequence of the pass, its
        // cache and its new tokens, and where its logits go (`slots`).
        let engine = self.engine;
        let mut slots: Vec<Slot> = Vec::new();
        let mut caches: Vec<&mut KvCache> = Vec::new();
        let mut inputs: Vec<&[u32]> = Vec::new();
        let mut budget = self.options.prefill_chunk.max(1);
        for (a, active) in self.active.iter_mut().enumerate() {
            match &mut active.stage {
                Stage::Decode { samples } => {
                    for (s, sample) in samples.iter_mut().enumerate() {
                        if let State::Feed(token) = &sample.state {
                            slots.push(Slot::Sample(a, s));
                            caches.push(&mut sample.cache);
                            inputs.push(std::slice::from_ref(token));
                        }
                    }
                }
                Stage::Prefill { cache } if budget > 0 => {
                    let prompt = &active.request.prompt;
                    let start = cache.len();
                    let end = prompt.len().min(start + budget);
                    budget -= end - start;
                    slots.push(Slot::Prefill(a, end));
                    caches.push(cache);
                    inputs.push(&prompt[start..end]);
                }
                Stage::Prefill { .. } => {}
            }
        }
        if slots.is_empty() {
            return Ok(());
        }
        let logits = engine
            .model()
            .forward(&mut caches, &inputs, engine.n_ctx(), false)?;

        let mut finished_prompts = Vec::new();
        for (slot, logits) in slots.into_iter().zip(logits) {
            match slot {
                Slot::Sample(a, s) => {
                    let Stage::Decode { samples } = &mut self.active[a].stage else {
                        unreachable!("a sample slot belongs to a decoding request");
                    };
                    samples[s].state = State::Draw(logits);
                }
                Slot::Prefill(a, end) => {
                    let active = &mut self.active[a];
                    if end < active.request.prompt.len() {
                        continue;
                    }
                    let Stage::Prefill { mut cache } = std::mem::replace(
                        &mut active.stage,
                        Stage::Decode {
                            samples: Vec::new(),
                        },
                    ) else {
                        unreachable!("a prefill slot belongs to a prefilling request");
                    };
                    // The samples and the prefix cache share the prompt's rows.
                    cache.freeze();
                    let samples: Vec<Sample> = (0..active.request.options.n)
                        .map(|idx| {
                            let state = State::Draw(logits.clone());
                            new_sample(&active.request, idx, cache.clone(), state)
                        })
                        .collect();
                    finished_prompts.push((a, cache));
                    active.stage = Stage::Decode { samples };
                }
            }
        }
        for (a, cache) in finished_prompts {
            let prompt = std::mem::take(&mut self.active[a].request.prompt);
            self.remember_prefix(&prompt, cache);
            self.active[a].request.prompt = prompt;
        }
        Ok(())
    }
}

/// Draws `sample`'s next token from `logits`, with the log-probabilities the
/// request asks for unless the token ends the sample (`is_end`).
fn draw(
    request: &Request,
    sample: &mut Sample,
    mut logits: Vec<f32>,
    is_end: impl Fn(u32) -> bool,
) -> Result<(u32, Option<Logprobs>)> {
    let window = request.options.sampling.repeat_last_n;
    let total = request.prompt.len() + sample.tokens.len();
    let recent: Vec<u32> = request
        .prompt
        .iter()
        .chain(&sample.tokens)
        .copied()
        .skip(total.saturating_sub(window))
        .collect();
    let raw = request.options.logprobs.map(|_| logits.clone());
    let token = sample.sampler.sample(&mut logits, &recent)?;
    let token_logprobs = match (raw, request.options.logprobs) {
        (Some(raw), Some(n_top)) if !is_end(token) => Some(logprobs(&raw, token, n_top)?),
        _ => None,
    };
    Ok((token, token_logprobs))
}

fn new_sample(request: &Request, idx: usize, cache: KvCache, state: State) -> Sample {
    let opts = &request.options;
    Sample {
        idx,
        cache,
        sampler: Sampler::new(SamplingParams {
            seed: opts.sampling.seed.wrapping_add(idx as u64),
            ..opts.sampling.clone()
        }),
        utf8: Utf8Stream::new(),
        stop: StopMatcher::new(&opts.stop),
        text: String::new(),
        tokens: Vec::new(),
        state,
    }
}

/// Reports a finished sample: text held back as a possible stop-string prefix
/// is released unless a stop string actually matched.
///
/// # Panics
///
/// If `sample` has not finished.
fn done(active: &Active, mut sample: Sample, on_event: &mut dyn FnMut(Event) -> bool) {
    let State::Finished {
        reason,
        hit_stop_string,
    } = sample.state
    else {
        panic!("only a finished sample is reported");
    };
    let mut tail = String::new();
    if !hit_stop_string {
        let step = sample.stop.push(&sample.utf8.finish());
        let stopped = step.is_stopped();
        tail = step.text;
        if !stopped {
            tail.push_str(&sample.stop.finish());
        }
        sample.text.push_str(&tail);
    }
    on_event(Event::Done {
        id: active.id,
        sample_idx: sample.idx,
        tail,
        completion: Completion {
            text: sample.text,
            tokens: sample.tokens,
            finish_reason: reason,
            n_prompt_tokens: active.request.prompt.len(),
            n_cached_tokens: active.n_cached,
        },
    });
}

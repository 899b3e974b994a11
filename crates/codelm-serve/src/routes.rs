//! The HTTP endpoints: each parses its body, builds engine [`Request`]s, submits
//! them to the scheduler, and answers with JSON or server-sent events.
//!
//! One middleware ([`guard`]) checks the API key and counts every answer by
//! endpoint and status; every error body is built by [`ApiError`]. Bodies are
//! the types of [`crate::wire::response`]; completions and chat stream through
//! one function, [`openai_stream`], given a [`ChunkShape`] for their choices.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{Request as HttpRequest, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use codelm_generate::{
    Batch, Engine, FimInput, FinishReason, GenerateOptions, Logprobs, Message, Prompt, Request,
    SamplingParams,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::scheduler::{JobEvent, Scheduler};
use crate::wire::response::{
    ChatChoice, ChatChunkChoice, ChatLogprobs, ChatReply, ChatTokenLogprob, Completion, Delta,
    Health, InfillChunk, InfillDone, InfillTimings, ModelCard, ModelList, ModelMeta, TextChoice,
    TextLogprobs, Usage,
};
use crate::wire::{
    ChatRequest, CompletionRequest, InfillRequest, MessageContent, PromptInput, SamplingFields,
};

/// Everything a handler needs.
pub(crate) struct App {
    pub engine: Arc<Engine>,
    pub scheduler: Scheduler,
    pub metrics: Arc<Metrics>,
    pub model_id: String,
    pub api_key: Option<String>,
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    pub max_n: usize,
}

type AppState = State<Arc<App>>;

/// A body's JSON text.
///
/// # Panics
///
/// If `value` does not serialize, which the types of [`crate::wire::response`]
/// (string keys, no fallible `Serialize`) always do.
fn to_json(value: &impl Serialize) -> String {
    serde_json::to_string(value).expect("response bodies always serialize")
}

/// A JSON answer.
pub(crate) fn json_response(status: StatusCode, value: &impl Serialize) -> Response {
    let mut response = (status, to_json(value)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn endpoint_label(path: &str) -> &'static str {
    match path {
        "/v1/completions" => "completions",
        "/v1/chat/completions" => "chat_completions",
        "/infill" => "infill",
        "/v1/models" => "models",
        "/health" => "health",
        "/metrics" => "metrics",
        "/" => "playground",
        _ => "other",
    }
}

/// Checks the API key (all but `/`, `/health`) and counts the answer.
pub(crate) async fn guard(State(app): AppState, request: HttpRequest, next: Next) -> Response {
    let endpoint = endpoint_label(request.uri().path());
    let open = matches!(endpoint, "health" | "playground");
    let response = match &app.api_key {
        Some(key) if !open && !bearer_matches(&request, key) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            Some("invalid_api_key"),
            "a valid API key is required: send `Authorization: Bearer <key>`",
        )
        .into_response(),
        _ => next.run(request).await,
    };
    app.metrics
        .count_request(endpoint, response.status().as_u16());
    response
}

fn bearer_matches(request: &HttpRequest, key: &str) -> bool {
    let Some(value) = request.headers().get(header::AUTHORIZATION) else {
        return false;
    };
    let Some(given) = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")) else {
        return false;
    };
    // Compare every byte, so the time taken does not reveal the matching prefix.
    given.len() == key.len()
        && given
            .bytes()
            .zip(key.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

pub(crate) async fn not_found() -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        Some("not_found"),
        "no such endpoint",
    )
    .into_response()
}

pub(crate) async fn method_not_allowed() -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request_error",
        Some("method_not_allowed"),
        "this endpoint does not take that method",
    )
    .into_response()
}

pub(crate) async fn health() -> Response {
    json_response(StatusCode::OK, &Health { status: "ok" })
}

pub(crate) async fn metrics(State(app): AppState) -> Response {
    let mut response = app.metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}

pub(crate) async fn playground() -> Response {
    let mut response = include_str!("playground.html").into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

pub(crate) async fn models(State(app): AppState) -> Response {
    json_response(
        StatusCode::OK,
        &ModelList {
            data: vec![ModelCard {
                created: unix_time(),
                id: app.model_id.clone(),
                meta: ModelMeta {
                    fim: app.engine.fim_format().is_some(),
                    n_ctx: app.engine.n_ctx(),
                    n_vocab: app.engine.tokenizer().n_vocab(),
                },
                object: "model",
                owned_by: "codelm",
            }],
            object: "list",
        },
    )
}

fn unix_time() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What every completion answer and stream chunk carries around its choices.
struct Envelope {
    id: String,
    created: u64,
    model: String,
}

impl Envelope {
    fn new(id_prefix: &str, model: &str) -> Self {
        Envelope {
            id: response_id(id_prefix),
            created: unix_time(),
            model: model.to_string(),
        }
    }

    fn wrap<C>(
        &self,
        object: &'static str,
        choices: Vec<C>,
        usage: Option<Usage>,
    ) -> Completion<'_, C> {
        Completion {
            choices,
            created: self.created,
            id: &self.id,
            model: &self.model,
            object,
            usage,
        }
    }
}

fn response_id(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!(
        "{prefix}-{:x}{:04x}",
        nanos,
        COUNTER.fetch_add(1, Ordering::Relaxed) & 0xffff
    )
}

async fn parse<T: DeserializeOwned>(app: &App, body: Body) -> Result<T, ApiError> {
    let bytes: Bytes = axum::body::to_bytes(body, app.max_body_bytes)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                Some("request_too_large"),
                format!(
                    "the request body is larger than the server's limit of {} bytes",
                    app.max_body_bytes
                ),
            )
        })?;
    serde_json::from_slice(&bytes)
        .map_err(|err| ApiError::bad_request(format!("the request body is not valid: {err}")))
}

fn check_model(app: &App, model: Option<&str>) -> Result<(), ApiError> {
    match model {
        None | Some("") => Ok(()),
        Some(name) if name == app.model_id => Ok(()),
        Some(name) => Err(ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!(
                "the model `{name}` is not served here; this server serves `{}`",
                app.model_id
            ),
            kind: "invalid_request_error",
            param: Some("model"),
            code: Some("model_not_found"),
        }),
    }
}

/// Sampling parameters from a request's fields, over the endpoint's defaults.
fn sampling(
    fields: &SamplingFields,
    defaults: &SamplingParams,
) -> Result<SamplingParams, ApiError> {
    let temperature = fields.temperature.unwrap_or(defaults.temperature);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(ApiError::bad_param(
            "temperature",
            "temperature must be between 0 and 2",
        ));
    }
    let top_p = fields.top_p.unwrap_or(defaults.top_p);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(ApiError::bad_param("top_p", "top_p must be in (0, 1]"));
    }
    let min_p = fields.min_p.unwrap_or(defaults.min_p);
    if !(0.0..=1.0).contains(&min_p) {
        return Err(ApiError::bad_param(
            "min_p",
            "min_p must be between 0 and 1",
        ));
    }
    let repetition_penalty = fields.repeat_penalty.unwrap_or(defaults.repetition_penalty);
    if !(repetition_penalty > 0.0 && repetition_penalty.is_finite()) {
        return Err(ApiError::bad_param(
            "repeat_penalty",
            "repeat_penalty must be a positive number",
        ));
    }
    for (name, value) in [
        ("presence_penalty", fields.presence_penalty),
        ("frequency_penalty", fields.frequency_penalty),
    ] {
        if value.is_some_and(|v| v != 0.0) {
            return Err(ApiError::bad_param(
                name,
                format!("{name} is not supported; use repeat_penalty"),
            ));
        }
    }
    if fields.logit_bias.as_ref().is_some_and(|b| !b.is_empty()) {
        return Err(ApiError::bad_param(
            "logit_bias",
            "logit_bias is not supported",
        ));
    }
    let seed = match fields.seed {
        Some(seed) if seed >= 0 => seed as u64,
        // No seed (or llama.cpp's -1): a fresh one, as OpenAI does.
        _ => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    };
    Ok(SamplingParams {
        temperature,
        top_p,
        top_k: fields.top_k.unwrap_or(defaults.top_k),
        min_p,
        repetition_penalty,
        seed,
        ..defaults.clone()
    })
}

fn check_n(app: &App, n: Option<usize>) -> Result<usize, ApiError> {
    let n = n.unwrap_or(1);
    if n == 0 || n > app.max_n {
        return Err(ApiError::bad_param(
            "n",
            format!("n must be between 1 and {}", app.max_n),
        ));
    }
    Ok(n)
}

fn check_stop(stop: Vec<String>) -> Result<Vec<String>, ApiError> {
    if stop.len() > 16 {
        return Err(ApiError::bad_param("stop", "at most 16 stop strings"));
    }
    Ok(stop.into_iter().filter(|s| !s.is_empty()).collect())
}

/// Tokenizes a prompt and checks it against the context.
fn engine_request(
    app: &App,
    prompt: &Prompt,
    options: GenerateOptions,
) -> Result<Request, ApiError> {
    let request = app
        .engine
        .request(prompt, options)
        .map_err(|e| ApiError::from_generate(&e))?;
    Batch::validate(&app.engine, &request).map_err(|e| ApiError::from_generate(&e))?;
    Ok(request)
}

/// Submits every request of one HTTP request; their events share a channel.
fn submit(app: &App, requests: Vec<Request>) -> Result<UnboundedReceiver<JobEvent>, ApiError> {
    let (events, receiver) = unbounded_channel();
    for (tag, request) in requests.into_iter().enumerate() {
        app.scheduler
            .submit(request, tag, events.clone(), app.request_timeout)?;
    }
    Ok(receiver)
}

/// One choice as it accumulates.
#[derive(Default)]
struct Choice {
    text: String,
    tokens: Vec<(u32, Logprobs)>,
    n_tokens: usize,
    finish: Option<FinishReason>,
}

/// Waits for every sample of every job.
async fn collect(
    mut events: UnboundedReceiver<JobEvent>,
    n_choices: usize,
    n: usize,
) -> Result<Vec<Choice>, ApiError> {
    let mut choices: Vec<Choice> = (0..n_choices).map(|_| Choice::default()).collect();
    let mut n_done = 0;
    while n_done < n_choices {
        match events.recv().await {
            Some(JobEvent::Token {
                tag,
                sample_idx,
                token,
                text,
                logprobs,
            }) => {
                let choice = &mut choices[tag * n + sample_idx];
                choice.text.push_str(&text);
                if let Some(logprobs) = logprobs {
                    choice.tokens.push((token, logprobs));
                }
            }
            Some(JobEvent::Done {
                tag,
                sample_idx,
                tail,
                completion,
            }) => {
                let choice = &mut choices[tag * n + sample_idx];
                choice.text.push_str(&tail);
                debug_assert_eq!(choice.text, completion.text);
                choice.n_tokens = completion.tokens.len();
                choice.finish = Some(completion.finish_reason);
                n_done += 1;
            }
            Some(JobEvent::Failed(err)) => return Err(err),
            None => return Err(ApiError::engine_stopped()),
        }
    }
    Ok(choices)
}

fn finish_str(finish: Option<FinishReason>) -> &'static str {
    finish.map_or("length", FinishReason::as_str)
}

fn token_text(engine: &Engine, token: u32) -> String {
    String::from_utf8_lossy(engine.tokenizer().token_bytes(token)).into_owned()
}

/// Legacy completions `logprobs` for a run of tokens starting at `offset`.
fn completion_logprobs(
    engine: &Engine,
    tokens: &[(u32, Logprobs)],
    mut offset: usize,
) -> TextLogprobs {
    let mut body = TextLogprobs::default();
    for (token, logprobs) in tokens {
        let text = token_text(engine, *token);
        body.text_offset.push(offset);
        offset += text.len();
        body.tokens.push(text);
        body.token_logprobs.push(f64::from(logprobs.chosen.logprob));
        let alternatives = logprobs
            .top
            .iter()
            .map(|t| (token_text(engine, t.token), f64::from(t.logprob)))
            .collect();
        body.top_logprobs.push(alternatives);
    }
    body
}

/// Chat `logprobs.content` entries.
fn chat_logprobs(engine: &Engine, tokens: &[(u32, Logprobs)]) -> ChatLogprobs {
    let entry = |token: u32, logprob: f32, top_logprobs| {
        let bytes = engine.tokenizer().token_bytes(token);
        ChatTokenLogprob {
            bytes: bytes.to_vec(),
            logprob: f64::from(logprob),
            token: String::from_utf8_lossy(bytes).into_owned(),
            top_logprobs,
        }
    };
    let content = tokens
        .iter()
        .map(|(token, logprobs)| {
            let top = logprobs
                .top
                .iter()
                .map(|t| entry(t.token, t.logprob, None))
                .collect();
            entry(*token, logprobs.chosen.logprob, Some(top))
        })
        .collect();
    ChatLogprobs { content }
}

/// A `text/event-stream` body: `next` turns each event into `data:` payloads
/// and says when the stream is over; `last` is sent when every sample is done.
fn event_stream<F>(events: UnboundedReceiver<JobEvent>, next: F) -> Response
where
    F: FnMut(Option<JobEvent>) -> (Vec<String>, bool) + Send + 'static,
{
    let state = (events, next, VecDeque::<String>::new(), false);
    let stream = futures_util::stream::unfold(
        state,
        |(mut events, mut next, mut queue, mut ended)| async move {
            loop {
                if let Some(data) = queue.pop_front() {
                    let chunk = Bytes::from(format!("data: {data}\n\n"));
                    return Some((Ok::<_, Infallible>(chunk), (events, next, queue, ended)));
                }
                if ended {
                    return None;
                }
                let (data, over) = next(events.recv().await);
                queue.extend(data);
                ended = over;
            }
        },
    );
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

pub(crate) async fn completions(State(app): AppState, body: Body) -> Response {
    match completions_inner(app, body).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn completions_inner(app: Arc<App>, body: Body) -> Result<Response, ApiError> {
    let request: CompletionRequest = parse(&app, body).await?;
    check_model(&app, request.model.as_deref())?;
    if request.echo {
        return Err(ApiError::bad_param("echo", "echo is not supported"));
    }
    let n = check_n(&app, request.n)?;
    if request.best_of.is_some_and(|b| b != n) {
        return Err(ApiError::bad_param(
            "best_of",
            "best_of is not supported (leave it out or set it equal to n)",
        ));
    }
    if request.logprobs.is_some_and(|k| k > 5) {
        return Err(ApiError::bad_param(
            "logprobs",
            "logprobs must be at most 5",
        ));
    }
    let defaults = SamplingParams {
        temperature: 1.0,
        ..SamplingParams::default()
    };
    let options = GenerateOptions {
        n,
        max_tokens: request.max_tokens.unwrap_or(16),
        sampling: sampling(&request.sampling, &defaults)?,
        stop: check_stop(request.stop.map(|s| s.into_vec()).unwrap_or_default())?,
        logprobs: request.logprobs,
    };
    let prompts: Vec<Prompt> = match (request.prompt, request.suffix) {
        (None, _) => return Err(ApiError::bad_param("prompt", "prompt is required")),
        (Some(PromptInput::Text(text)), None) => vec![Prompt::Text(text)],
        (Some(PromptInput::Texts(texts)), None) => texts.into_iter().map(Prompt::Text).collect(),
        (Some(PromptInput::Tokens(ids)), None) => vec![Prompt::Tokens(ids)],
        (Some(PromptInput::TokenLists(lists)), None) => {
            lists.into_iter().map(Prompt::Tokens).collect()
        }
        (Some(PromptInput::Text(text)), Some(suffix)) => {
            vec![Prompt::Infill(FimInput::new(text, suffix))]
        }
        (Some(PromptInput::Texts(texts)), Some(suffix)) => texts
            .into_iter()
            .map(|text| Prompt::Infill(FimInput::new(text, suffix.clone())))
            .collect(),
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_param(
                "suffix",
                "suffix needs a text prompt, not token ids",
            ))
        }
    };
    if prompts.is_empty() {
        return Err(ApiError::bad_param("prompt", "prompt is an empty list"));
    }
    let requests = prompts
        .iter()
        .map(|prompt| engine_request(&app, prompt, options.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    let n_prompt: usize = requests.iter().map(|r| r.prompt.len()).sum();
    let n_choices = requests.len() * n;
    let events = submit(&app, requests)?;
    let envelope = Envelope::new("cmpl", &app.model_id);

    if !request.stream {
        let choices = collect(events, n_choices, n).await?;
        let n_completion = choices.iter().map(|c| c.n_tokens).sum();
        let choices = choices
            .into_iter()
            .enumerate()
            .map(|(index, c)| TextChoice {
                finish_reason: Some(finish_str(c.finish)),
                index,
                logprobs: options
                    .logprobs
                    .map(|_| completion_logprobs(&app.engine, &c.tokens, 0)),
                text: c.text,
            })
            .collect();
        return Ok(json_response(
            StatusCode::OK,
            &envelope.wrap(
                "text_completion",
                choices,
                Some(Usage::new(n_prompt, n_completion)),
            ),
        ));
    }

    let shape = TextChunks {
        engine: app.engine.clone(),
        offsets: vec![0; n_choices],
    };
    let counts = StreamCounts {
        n,
        n_choices,
        n_prompt,
        include_usage: request.stream_options.is_some_and(|o| o.include_usage),
    };
    Ok(openai_stream(events, shape, envelope, counts))
}

/// What one OpenAI stream needs to know to count its choices and tokens.
struct StreamCounts {
    /// Samples per prompt (a choice's index is `tag * n + sample_idx`).
    n: usize,
    /// Choices over every prompt: the stream ends when they are all done.
    n_choices: usize,
    /// Prompt tokens over every prompt.
    n_prompt: usize,
    /// Send a chunk with the token counts before `[DONE]`.
    include_usage: bool,
}

/// What differs between the completions and the chat stream: the choice each
/// chunk carries, and the chunks' `object`.
trait ChunkShape: Send + 'static {
    /// A chunk's choice.
    type Choice: Serialize;
    /// The chunks' `object`.
    const OBJECT: &'static str;
    /// The choice for a generated piece of choice `index`, or `None` when
    /// there is nothing to send.
    fn token(
        &mut self,
        index: usize,
        token: u32,
        text: String,
        logprobs: Option<Logprobs>,
    ) -> Option<Self::Choice>;
    /// The choice for what choice `index` held back until it finished (text
    /// that could have begun a stop string), or `None` when there is nothing
    /// to send.
    fn tail(&mut self, index: usize, tail: String) -> Option<Self::Choice>;
    /// The last choice of choice `index`, with its finish reason.
    fn finish(&mut self, index: usize, reason: FinishReason) -> Self::Choice;
}

/// An OpenAI stream: a chunk per generated piece, then for each finished
/// choice its tail and a finish chunk; once every choice is done, the usage
/// chunk when it was asked for, then `[DONE]`.
fn openai_stream<S: ChunkShape>(
    events: UnboundedReceiver<JobEvent>,
    mut shape: S,
    envelope: Envelope,
    counts: StreamCounts,
) -> Response {
    let (mut n_done, mut n_completion) = (0, 0);
    let chunk = move |choices: Vec<S::Choice>, usage: Option<Usage>| {
        to_json(&envelope.wrap(S::OBJECT, choices, usage))
    };
    event_stream(events, move |event| match event {
        Some(JobEvent::Token {
            tag,
            sample_idx,
            token,
            text,
            logprobs,
        }) => {
            let index = tag * counts.n + sample_idx;
            let choice = shape.token(index, token, text, logprobs);
            (
                choice.map(|c| chunk(vec![c], None)).into_iter().collect(),
                false,
            )
        }
        Some(JobEvent::Done {
            tag,
            sample_idx,
            tail,
            completion,
        }) => {
            let index = tag * counts.n + sample_idx;
            n_done += 1;
            n_completion += completion.tokens.len();
            let mut out: Vec<String> = shape
                .tail(index, tail)
                .map(|c| chunk(vec![c], None))
                .into_iter()
                .collect();
            out.push(chunk(
                vec![shape.finish(index, completion.finish_reason)],
                None,
            ));
            let over = n_done == counts.n_choices;
            if over {
                if counts.include_usage {
                    let usage = Usage::new(counts.n_prompt, n_completion);
                    out.push(chunk(Vec::new(), Some(usage)));
                }
                out.push("[DONE]".to_string());
            }
            (out, over)
        }
        Some(JobEvent::Failed(err)) => (vec![to_json(&err.body())], true),
        None => (Vec::new(), true),
    })
}

/// `/v1/completions` chunks: text pieces, with legacy `logprobs` whose
/// offsets run on over each choice's text.
struct TextChunks {
    engine: Arc<Engine>,
    /// Per choice, the byte length of its tokens so far.
    offsets: Vec<usize>,
}

impl ChunkShape for TextChunks {
    type Choice = TextChoice;
    const OBJECT: &'static str = "text_completion";

    fn token(
        &mut self,
        index: usize,
        token: u32,
        text: String,
        logprobs: Option<Logprobs>,
    ) -> Option<TextChoice> {
        let logprobs = logprobs.map(|l| {
            let body = completion_logprobs(&self.engine, &[(token, l)], self.offsets[index]);
            self.offsets[index] += token_text(&self.engine, token).len();
            body
        });
        if text.is_empty() && logprobs.is_none() {
            return None;
        }
        Some(TextChoice {
            finish_reason: None,
            index,
            logprobs,
            text,
        })
    }

    fn tail(&mut self, index: usize, tail: String) -> Option<TextChoice> {
        (!tail.is_empty()).then_some(TextChoice {
            finish_reason: None,
            index,
            logprobs: None,
            text: tail,
        })
    }

    fn finish(&mut self, index: usize, reason: FinishReason) -> TextChoice {
        TextChoice {
            finish_reason: Some(reason.as_str()),
            index,
            logprobs: None,
            text: String::new(),
        }
    }
}

/// `/v1/chat/completions` chunks: deltas, the first of each choice carrying
/// the role.
struct ChatChunks {
    engine: Arc<Engine>,
    /// Per choice, whether its first delta was sent.
    started: Vec<bool>,
}

impl ChatChunks {
    fn delta(&mut self, index: usize, content: Option<String>) -> Delta {
        let mut delta = Delta::default();
        if !std::mem::replace(&mut self.started[index], true) {
            delta.role = Some("assistant");
            delta.content = Some(String::new());
        }
        if let Some(content) = content {
            delta.content = Some(content);
        }
        delta
    }
}

impl ChunkShape for ChatChunks {
    type Choice = ChatChunkChoice;
    const OBJECT: &'static str = "chat.completion.chunk";

    fn token(
        &mut self,
        index: usize,
        token: u32,
        text: String,
        logprobs: Option<Logprobs>,
    ) -> Option<ChatChunkChoice> {
        let logprobs = logprobs.map(|l| chat_logprobs(&self.engine, &[(token, l)]));
        if text.is_empty() && logprobs.is_none() {
            return None;
        }
        Some(ChatChunkChoice {
            delta: self.delta(index, Some(text)),
            finish_reason: None,
            index,
            logprobs,
        })
    }

    fn tail(&mut self, index: usize, tail: String) -> Option<ChatChunkChoice> {
        let delta = self.delta(index, (!tail.is_empty()).then_some(tail));
        (!delta.is_empty()).then_some(ChatChunkChoice {
            delta,
            finish_reason: None,
            index,
            logprobs: None,
        })
    }

    fn finish(&mut self, index: usize, reason: FinishReason) -> ChatChunkChoice {
        ChatChunkChoice {
            delta: Delta::default(),
            finish_reason: Some(reason.as_str()),
            index,
            logprobs: None,
        }
    }
}

fn message_text(content: Option<MessageContent>) -> Result<String, ApiError> {
    match content {
        None => Ok(String::new()),
        Some(MessageContent::Text(text)) => Ok(text),
        Some(MessageContent::Parts(parts)) => {
            let mut text = String::new();
            for part in parts {
                if part.kind != "text" {
                    return Err(ApiError::bad_param(
                        "messages",
                        format!(
                            "content parts of type `{}` are not supported; only `text`",
                            part.kind
                        ),
                    ));
                }
                text.push_str(part.text.as_deref().unwrap_or(""));
            }
            Ok(text)
        }
    }
}

pub(crate) async fn chat(State(app): AppState, body: Body) -> Response {
    match chat_inner(app, body).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn chat_inner(app: Arc<App>, body: Body) -> Result<Response, ApiError> {
    let request: ChatRequest = parse(&app, body).await?;
    check_model(&app, request.model.as_deref())?;
    if request.tools.is_some() || request.functions.is_some() {
        return Err(ApiError::bad_param(
            "tools",
            "tool calling is not supported",
        ));
    }
    if let Some(format) = &request.response_format {
        if format.get("type").and_then(Value::as_str) != Some("text") {
            return Err(ApiError::bad_param(
                "response_format",
                "only the `text` response format is supported",
            ));
        }
    }
    if request.messages.is_empty() {
        return Err(ApiError::bad_param("messages", "messages is empty"));
    }
    let n = check_n(&app, request.n)?;
    let top_logprobs = request.top_logprobs.unwrap_or(0);
    if top_logprobs > 20 {
        return Err(ApiError::bad_param(
            "top_logprobs",
            "top_logprobs must be at most 20",
        ));
    }
    let messages = request
        .messages
        .into_iter()
        .map(|m| Ok(Message::new(m.role, message_text(m.content)?)))
        .collect::<Result<Vec<_>, ApiError>>()?;
    let defaults = SamplingParams {
        temperature: 1.0,
        ..SamplingParams::default()
    };
    let options = GenerateOptions {
        n,
        max_tokens: request
            .max_completion_tokens
            .or(request.max_tokens)
            .unwrap_or(app.engine.n_ctx()),
        sampling: sampling(&request.sampling, &defaults)?,
        stop: check_stop(request.stop.map(|s| s.into_vec()).unwrap_or_default())?,
        logprobs: request.logprobs.then_some(top_logprobs),
    };
    let engine_request = engine_request(&app, &Prompt::Chat(messages), options.clone())?;
    let n_prompt = engine_request.prompt.len();
    let events = submit(&app, vec![engine_request])?;
    let envelope = Envelope::new("chatcmpl", &app.model_id);

    if !request.stream {
        let choices = collect(events, n, n).await?;
        let n_completion = choices.iter().map(|c| c.n_tokens).sum();
        let choices = choices
            .into_iter()
            .enumerate()
            .map(|(index, c)| ChatChoice {
                finish_reason: Some(finish_str(c.finish)),
                index,
                logprobs: options
                    .logprobs
                    .map(|_| chat_logprobs(&app.engine, &c.tokens)),
                message: ChatReply {
                    content: c.text,
                    role: "assistant",
                },
            })
            .collect();
        return Ok(json_response(
            StatusCode::OK,
            &envelope.wrap(
                "chat.completion",
                choices,
                Some(Usage::new(n_prompt, n_completion)),
            ),
        ));
    }

    let shape = ChatChunks {
        engine: app.engine.clone(),
        started: vec![false; n],
    };
    let counts = StreamCounts {
        n,
        n_choices: n,
        n_prompt,
        include_usage: request.stream_options.is_some_and(|o| o.include_usage),
    };
    Ok(openai_stream(events, shape, envelope, counts))
}

pub(crate) async fn infill(State(app): AppState, body: Body) -> Response {
    match infill_inner(app, body).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn infill_inner(app: Arc<App>, body: Body) -> Result<Response, ApiError> {
    let request: InfillRequest = parse(&app, body).await?;
    check_model(&app, request.model.as_deref())?;
    if app.engine.fim_format().is_none() {
        return Err(ApiError::bad_request(
            "this model's vocabulary has no fill-in-the-middle tokens",
        ));
    }
    // llama.cpp's /infill defaults.
    let defaults = SamplingParams {
        temperature: 0.8,
        top_k: 40,
        top_p: 0.95,
        min_p: 0.05,
        ..SamplingParams::default()
    };
    let max_tokens = match request.n_predict {
        Some(n) if n >= 0 => n as usize,
        _ => app.engine.n_ctx(),
    };
    if max_tokens == 0 {
        return Err(ApiError::bad_param("n_predict", "n_predict must not be 0"));
    }
    let options = GenerateOptions {
        n: 1,
        max_tokens,
        sampling: sampling(&request.sampling, &defaults)?,
        stop: check_stop(request.stop)?,
        logprobs: None,
    };
    let input = FimInput {
        prefix: format!("{}{}", request.input_prefix, request.prompt),
        suffix: request.input_suffix,
        extra_files: request
            .input_extra
            .into_iter()
            .map(|chunk| (chunk.filename, chunk.text))
            .collect(),
        ..FimInput::default()
    };
    let engine_request = engine_request(&app, &Prompt::Infill(input), options)?;
    let n_prompt = engine_request.prompt.len();
    let events = submit(&app, vec![engine_request])?;
    let model = app.model_id.clone();
    let started = std::time::Instant::now();
    let stats = move |completion: &codelm_generate::Completion, content: String| {
        let stop_type = match completion.finish_reason {
            FinishReason::Stop if completion.tokens.len() < max_tokens => "eos",
            FinishReason::Stop => "word",
            _ => "limit",
        };
        let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
        InfillDone {
            content,
            index: 0,
            model: model.clone(),
            stop: true,
            stop_type,
            timings: InfillTimings {
                predicted_n: completion.tokens.len(),
                predicted_per_second: completion.tokens.len() as f64 / (elapsed_ms / 1e3).max(1e-9),
                prompt_n: n_prompt - completion.n_cached_tokens,
                total_ms: elapsed_ms,
            },
            tokens_cached: completion.n_cached_tokens,
            tokens_evaluated: n_prompt,
            tokens_predicted: completion.tokens.len(),
            truncated: false,
        }
    };

    if !request.stream {
        let mut events = events;
        let mut text = String::new();
        loop {
            match events.recv().await {
                Some(JobEvent::Token { text: piece, .. }) => text.push_str(&piece),
                Some(JobEvent::Done {
                    tail, completion, ..
                }) => {
                    text.push_str(&tail);
                    return Ok(json_response(StatusCode::OK, &stats(&completion, text)));
                }
                Some(JobEvent::Failed(err)) => return Err(err),
                None => return Err(ApiError::engine_stopped()),
            }
        }
    }
    Ok(event_stream(events, move |event| match event {
        Some(JobEvent::Token { text, .. }) if !text.is_empty() => (
            vec![to_json(&InfillChunk {
                content: text,
                index: 0,
                stop: false,
            })],
            false,
        ),
        Some(JobEvent::Token { .. }) => (Vec::new(), false),
        Some(JobEvent::Done {
            tail, completion, ..
        }) => (vec![to_json(&stats(&completion, tail))], true),
        Some(JobEvent::Failed(err)) => (vec![to_json(&err.body())], true),
        None => (Vec::new(), true),
    }))
}

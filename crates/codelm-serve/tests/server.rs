//! The server over real HTTP on loopback, with a tiny random-weight model.
//!
//! The model comes from `codelm_model::testing` (a qwen2-shaped model with
//! ChatML and FIM tokens). Requests go through a minimal HTTP/1.1 client on a
//! plain `TcpStream`, so a test can also hang up mid-stream.
//!
//! Areas: answers equal the engine's own ([`check_completion`]), streaming,
//! errors ([`check_error`]), and load behaviour (queue, disconnects, timeouts).
//! Two more tests drive the server from the official `openai` Python client and
//! from headless Chromium when `CODELM_TEST_PYTHON` and `CODELM_TEST_CHROMIUM`
//! name them (`scripts/test.sh` sets both).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use codelm_generate::{Engine, GenerateOptions, Prompt, SamplingParams};
use codelm_model::quant::GgmlType;
use codelm_model::testing::{write_tiny_model, TinySpec};
use codelm_serve::{SchedulerOptions, ServeOptions, Server};
use serde_json::{json, Value};

const MODEL_ID: &str = "tiny";

fn model_path() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    write_tiny_model(&path, &TinySpec::small(), GgmlType::F32).unwrap();
    (dir, path)
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    server: Server,
}

fn options() -> ServeOptions {
    ServeOptions {
        port: 0,
        model_id: MODEL_ID.into(),
        ..ServeOptions::default()
    }
}

fn start(options: ServeOptions, n_ctx: Option<usize>) -> Fixture {
    let (dir, path) = model_path();
    let engine = Engine::load(&path, n_ctx).unwrap();
    let server = Server::start(engine, options).unwrap();
    Fixture {
        _dir: dir,
        path,
        server,
    }
}

impl Fixture {
    fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let (status, text) = http(self.addr(), "POST", path, &body.to_string(), &[]);
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    fn get(&self, path: &str) -> (u16, String) {
        http(self.addr(), "GET", path, "", &[])
    }

    fn metric(&self, name: &str) -> f64 {
        let (_, text) = self.get("/metrics");
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no metric {name} in\n{text}"))
    }

    /// The engine's own answer for a prompt, to compare the server with.
    fn expected(&self, prompt: &Prompt, opts: &GenerateOptions) -> Vec<String> {
        let engine = Engine::load(&self.path, None).unwrap();
        engine
            .generate(prompt, opts, &mut |_, _| true)
            .unwrap()
            .into_iter()
            .map(|c| c.text)
            .collect()
    }
}

/// Sends one request with `Connection: close` and returns status and body.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    let mut reader = BufReader::new(stream);
    let (status, chunked) = read_head(&mut reader);
    let mut raw = Vec::new();
    reader.read_to_end(&mut raw).unwrap();
    let body = if chunked { dechunk(&raw) } else { raw };
    (status, String::from_utf8(body).unwrap())
}

/// Reads the status line and headers; returns the status and whether the body
/// is chunked.
fn read_head(reader: &mut impl BufRead) -> (u16, bool) {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let status = line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut chunked = false;
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            return (status, chunked);
        }
        let lower = line.to_ascii_lowercase();
        chunked |= lower.starts_with("transfer-encoding:") && lower.contains("chunked");
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let end = raw.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&raw[..end]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[end + 2..end + 2 + size]);
        raw = &raw[end + 2 + size + 2..];
    }
}

/// The `data:` payloads of an event stream.
fn events(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|event| event.strip_prefix("data: "))
        .map(str::to_string)
        .collect()
}

fn gen_options(n: usize, max_tokens: usize, temperature: f32, seed: u64) -> GenerateOptions {
    GenerateOptions {
        n,
        max_tokens,
        sampling: SamplingParams {
            temperature,
            seed,
            ..SamplingParams::default()
        },
        ..GenerateOptions::default()
    }
}

/// The server's choices equal the engine's samples for the same request.
fn check_completion(fixture: &Fixture, request: Value, prompt: Prompt, opts: GenerateOptions) {
    let (status, body) = fixture.post("/v1/completions", &request);
    assert_eq!(status, 200, "{body}");
    let texts: Vec<&str> = body["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, fixture.expected(&prompt, &opts), "{request}");
    assert_eq!(body["object"], "text_completion");
    assert_eq!(body["model"], MODEL_ID);
    let usage = &body["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );
}

/// The request fails with `status` and an OpenAI error body naming `param` or
/// `code` (when not empty).
fn check_error(fixture: &Fixture, path: &str, body: &str, status: u16, param_or_code: &str) {
    let (actual, text) = http(fixture.addr(), "POST", path, body, &[]);
    assert_eq!(actual, status, "{path} {body}: {text}");
    let error: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    let error = &error["error"];
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{text}"
    );
    assert!(error["type"].is_string(), "{text}");
    assert!(
        param_or_code.is_empty()
            || error["param"] == param_or_code
            || error["code"] == param_or_code,
        "{body}: expected {param_or_code} in {text}"
    );
}

#[test]
fn completions_equal_the_engine() {
    let fixture = start(options(), None);
    check_completion(
        &fixture,
        json!({"model": MODEL_ID, "prompt": "def add(a, b):", "max_tokens": 12, "temperature": 0}),
        Prompt::Text("def add(a, b):".into()),
        gen_options(1, 12, 0.0, 0),
    );
    check_completion(
        &fixture,
        json!({"prompt": "import os\n", "max_tokens": 9, "temperature": 0.8, "seed": 7, "n": 3}),
        Prompt::Text("import os\n".into()),
        gen_options(3, 9, 0.8, 7),
    );
    // Fill in the middle through `suffix`.
    let mut infill = codelm_generate::FimInput::new("def f(x):\n    return ", "\n\nprint(f(2))\n");
    infill.order = codelm_generate::FimOrder::Psm;
    check_completion(
        &fixture,
        json!({"prompt": "def f(x):\n    return ", "suffix": "\n\nprint(f(2))\n", "max_tokens": 10, "temperature": 0}),
        Prompt::Infill(infill),
        gen_options(1, 10, 0.0, 0),
    );
}

#[test]
fn several_prompts_and_token_prompts() {
    let fixture = start(options(), None);
    let (status, body) = fixture.post(
        "/v1/completions",
        &json!({"prompt": ["a = ", "print("], "n": 2, "max_tokens": 5, "temperature": 0.5, "seed": 1}),
    );
    assert_eq!(status, 200, "{body}");
    let choices = body["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 4);
    for (idx, choice) in choices.iter().enumerate() {
        assert_eq!(choice["index"], idx);
    }
    let second = fixture.expected(&Prompt::Text("print(".into()), &gen_options(2, 5, 0.5, 1));
    assert_eq!(choices[2]["text"], second[0]);
    assert_eq!(choices[3]["text"], second[1]);

    let (status, body) = fixture.post(
        "/v1/completions",
        &json!({"prompt": [100, 101, 102], "max_tokens": 4, "temperature": 0}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["choices"][0]["text"],
        fixture.expected(
            &Prompt::Tokens(vec![100, 101, 102]),
            &gen_options(1, 4, 0.0, 0)
        )[0]
    );
}

#[test]
fn streams_carry_the_same_text_and_end_with_done() {
    let fixture = start(options(), None);
    let request =
        json!({"prompt": "class A:\n", "max_tokens": 14, "temperature": 0.7, "seed": 3, "n": 2});
    let (_, whole) = fixture.post("/v1/completions", &request);
    let mut streaming = request.clone();
    streaming["stream"] = json!(true);
    streaming["stream_options"] = json!({"include_usage": true});
    let (status, body) = http(
        fixture.addr(),
        "POST",
        "/v1/completions",
        &streaming.to_string(),
        &[],
    );
    assert_eq!(status, 200);
    let data = events(&body);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let mut texts = [String::new(), String::new()];
    let mut finishes = 0;
    for chunk in &data[..data.len() - 1] {
        let chunk: Value = serde_json::from_str(chunk).unwrap();
        for choice in chunk["choices"].as_array().unwrap() {
            let idx = choice["index"].as_u64().unwrap() as usize;
            texts[idx].push_str(choice["text"].as_str().unwrap());
            finishes += usize::from(!choice["finish_reason"].is_null());
        }
    }
    assert_eq!(finishes, 2);
    for idx in 0..2 {
        assert_eq!(texts[idx], whole["choices"][idx]["text"].as_str().unwrap());
    }
    let usage: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(usage["usage"], whole["usage"]);

    // Chat: the first delta carries the role, the last the finish reason.
    let chat = json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 6, "temperature": 0, "stream": true});
    let (status, body) = http(
        fixture.addr(),
        "POST",
        "/v1/chat/completions",
        &chat.to_string(),
        &[],
    );
    assert_eq!(status, 200);
    let data = events(&body);
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(chunks[0]["object"], "chat.completion.chunk");
    assert!(!chunks.last().unwrap()["choices"][0]["finish_reason"].is_null());
    let streamed: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    let mut plain = chat.clone();
    plain["stream"] = json!(false);
    let (_, whole) = fixture.post("/v1/chat/completions", &plain);
    assert_eq!(
        streamed,
        whole["choices"][0]["message"]["content"].as_str().unwrap()
    );
    assert_eq!(whole["choices"][0]["message"]["role"], "assistant");
}

#[test]
fn infill_speaks_llama_cpp() {
    let fixture = start(options(), None);
    let request = json!({
        "input_prefix": "def double(x):\n    return ",
        "input_suffix": "\n",
        "input_extra": [{"filename": "util.py", "text": "def half(x):\n    return x / 2\n"}],
        "n_predict": 8,
        "temperature": 0,
    });
    let (status, body) = fixture.post("/infill", &request);
    assert_eq!(status, 200, "{body}");
    let input = codelm_generate::FimInput {
        prefix: "def double(x):\n    return ".into(),
        suffix: "\n".into(),
        extra_files: vec![("util.py".into(), "def half(x):\n    return x / 2\n".into())],
        ..Default::default()
    };
    let mut opts = gen_options(1, 8, 0.0, 0);
    opts.sampling.top_k = 40;
    opts.sampling.top_p = 0.95;
    opts.sampling.min_p = 0.05;
    let expected = fixture.expected(&Prompt::Infill(input), &opts);
    assert_eq!(body["content"], expected[0]);
    assert_eq!(body["stop"], true);
    assert!(body["tokens_evaluated"].as_u64().unwrap() > 10);

    // The same request again reuses the cached prompt.
    let (_, again) = fixture.post("/infill", &request);
    assert_eq!(again["content"], body["content"]);
    assert_eq!(
        again["tokens_cached"].as_u64().unwrap(),
        body["tokens_evaluated"].as_u64().unwrap() - 1
    );
    assert!(fixture.metric("codelm_prompt_tokens_cached_total") > 0.0);

    let mut streaming = request.clone();
    streaming["stream"] = json!(true);
    let (status, text) = http(
        fixture.addr(),
        "POST",
        "/infill",
        &streaming.to_string(),
        &[],
    );
    assert_eq!(status, 200);
    let chunks: Vec<Value> = events(&text)
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let content: String = chunks
        .iter()
        .map(|c| c["content"].as_str().unwrap())
        .collect();
    assert_eq!(content, expected[0]);
    assert_eq!(chunks.last().unwrap()["stop"], true);
}

#[test]
fn logprobs_are_reported() {
    let fixture = start(options(), None);
    let (status, body) = fixture.post(
        "/v1/completions",
        &json!({"prompt": "x = ", "max_tokens": 4, "temperature": 0, "logprobs": 2}),
    );
    assert_eq!(status, 200, "{body}");
    let logprobs = &body["choices"][0]["logprobs"];
    assert_eq!(logprobs["tokens"].as_array().unwrap().len(), 4);
    let joined: String = logprobs["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(joined, body["choices"][0]["text"].as_str().unwrap());
    for (lp, top) in logprobs["token_logprobs"]
        .as_array()
        .unwrap()
        .iter()
        .zip(logprobs["top_logprobs"].as_array().unwrap())
    {
        assert!(lp.as_f64().unwrap() <= 0.0);
        // Keyed by token text: alternatives that decode alike (lone bytes of
        // a multi-byte character) share one key.
        assert!((1..=2).contains(&top.as_object().unwrap().len()), "{top}");
    }
    let (status, body) = fixture.post(
        "/v1/chat/completions",
        &json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": 3, "temperature": 0, "logprobs": true, "top_logprobs": 3}),
    );
    assert_eq!(status, 200, "{body}");
    let content = body["choices"][0]["logprobs"]["content"]
        .as_array()
        .unwrap();
    assert_eq!(content.len(), 3);
    assert_eq!(content[0]["top_logprobs"].as_array().unwrap().len(), 3);
    assert!(content[0]["bytes"].is_array());
}

#[test]
fn bad_requests_get_openai_errors() {
    let fixture = start(options(), Some(64));
    check_error(&fixture, "/v1/completions", "{not json", 400, "");
    check_error(&fixture, "/v1/completions", r#"{"prompt": 5}"#, 400, "");
    check_error(
        &fixture,
        "/v1/completions",
        r#"{"model": "gpt-4", "prompt": "a"}"#,
        404,
        "model_not_found",
    );
    check_error(
        &fixture,
        "/v1/completions",
        r#"{"prompt": "a", "temperature": 9}"#,
        400,
        "temperature",
    );
    check_error(
        &fixture,
        "/v1/completions",
        r#"{"prompt": "a", "n": 0}"#,
        400,
        "n",
    );
    check_error(
        &fixture,
        "/v1/completions",
        r#"{"prompt": "a", "top_p": 0}"#,
        400,
        "top_p",
    );
    check_error(
        &fixture,
        "/v1/completions",
        r#"{"prompt": "a", "presence_penalty": 1}"#,
        400,
        "presence_penalty",
    );
    check_error(
        &fixture,
        "/v1/completions",
        r#"{"prompt": "a", "echo": true}"#,
        400,
        "echo",
    );
    check_error(
        &fixture,
        "/v1/completions",
        r#"{"prompt": [999999]}"#,
        400,
        "prompt",
    );
    check_error(
        &fixture,
        "/v1/completions",
        r#"{"max_tokens": 3}"#,
        400,
        "prompt",
    );
    let long = json!({"prompt": "word ".repeat(200)}).to_string();
    check_error(
        &fixture,
        "/v1/completions",
        &long,
        400,
        "context_length_exceeded",
    );
    check_error(
        &fixture,
        "/v1/chat/completions",
        r#"{"messages": []}"#,
        400,
        "messages",
    );
    check_error(
        &fixture,
        "/v1/chat/completions",
        r#"{"messages": [{"role": "user", "content": "a"}], "tools": []}"#,
        400,
        "tools",
    );
    check_error(
        &fixture,
        "/v1/chat/completions",
        r#"{"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}"#,
        400,
        "messages",
    );
    check_error(
        &fixture,
        "/infill",
        r#"{"input_prefix": "a", "n_predict": 0}"#,
        400,
        "n_predict",
    );
    check_error(&fixture, "/v1/nothing", "{}", 404, "not_found");
    let (status, text) = fixture.get("/v1/completions");
    assert_eq!(status, 405, "{text}");

    // Bodies over the limit are refused before they are parsed.
    let small = start(
        ServeOptions {
            max_body_bytes: 1000,
            ..options()
        },
        None,
    );
    let big = json!({"prompt": "x".repeat(5000)}).to_string();
    check_error(&small, "/v1/completions", &big, 413, "request_too_large");
}

#[test]
fn api_key_guards_everything_but_health_and_the_page() {
    let (dir, path) = model_path();
    let open_to_all = Server::start(
        Engine::load(&path, None).unwrap(),
        ServeOptions {
            host: "0.0.0.0".into(),
            ..options()
        },
    );
    assert!(matches!(
        open_to_all,
        Err(codelm_serve::Error::ApiKeyRequired { .. })
    ));
    drop(dir);

    let fixture = start(
        ServeOptions {
            api_key: Some("sesame".into()),
            ..options()
        },
        None,
    );
    let body = r#"{"prompt": "a", "max_tokens": 2}"#;
    check_error(&fixture, "/v1/completions", body, 401, "invalid_api_key");
    let wrong = [("Authorization", "Bearer sesamE")];
    assert_eq!(
        http(fixture.addr(), "POST", "/v1/completions", body, &wrong).0,
        401
    );
    let right = [("Authorization", "Bearer sesame")];
    assert_eq!(
        http(fixture.addr(), "POST", "/v1/completions", body, &right).0,
        200
    );
    assert_eq!(fixture.get("/health").0, 200);
    assert_eq!(fixture.get("/").0, 200);
    assert_eq!(fixture.get("/v1/models").0, 401);
}

/// Opens a streaming request and reads until the first event arrives.
fn open_stream(addr: SocketAddr, body: &Value) -> BufReader<TcpStream> {
    let mut stream = TcpStream::connect(addr).unwrap();
    let body = body.to_string();
    write!(
        stream,
        "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let (status, _) = read_head(&mut reader);
    assert_eq!(status, 200);
    let mut line = String::new();
    while !line.contains("data: ") {
        line.clear();
        reader.read_line(&mut line).unwrap();
    }
    reader
}

fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_client_that_hangs_up_stops_its_generation() {
    let fixture = start(options(), None);
    let long = json!({"prompt": "a", "max_tokens": 100000, "temperature": 1, "stream": true});
    let stream = open_stream(fixture.addr(), &long);
    assert_eq!(fixture.metric("codelm_running_requests"), 1.0);
    drop(stream);
    wait_for("the request to leave the batch", || {
        fixture.metric("codelm_running_requests") == 0.0
            && fixture.metric("codelm_cancelled_requests_total") == 1.0
    });
    // The server goes on answering.
    let (status, _) = fixture.post("/v1/completions", &json!({"prompt": "b", "max_tokens": 2}));
    assert_eq!(status, 200);
}

#[test]
fn a_full_queue_answers_503_and_a_slow_request_504() {
    let fixture = start(
        ServeOptions {
            scheduler: SchedulerOptions {
                max_batch_samples: 1,
                max_queue: 1,
                ..SchedulerOptions::default()
            },
            ..options()
        },
        None,
    );
    let long = json!({"prompt": "a", "max_tokens": 100000, "temperature": 1, "stream": true});
    let running = open_stream(fixture.addr(), &long);
    // The batch holds one sample; the engine holds one waiting job and the queue
    // one more, so at the latest the third extra request is refused.
    let mut waiting = Vec::new();
    let mut refused = None;
    for _ in 0..4 {
        let mut stream = TcpStream::connect(fixture.addr()).unwrap();
        let body = long.to_string();
        write!(
            stream,
            "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        if reader.read_line(&mut line).is_ok() && line.contains(" 503 ") {
            let mut rest = String::new();
            let _ = reader.read_to_string(&mut rest);
            refused = Some(rest);
            break;
        }
        waiting.push(reader);
    }
    let refused = refused.expect("a request beyond the queue is refused");
    assert!(refused.contains("queue_full"), "{refused}");
    drop(waiting);
    drop(running);
    wait_for("the batch to empty", || {
        fixture.metric("codelm_running_requests") == 0.0
            && fixture.metric("codelm_queue_depth") == 0.0
    });

    let impatient = start(
        ServeOptions {
            request_timeout: Duration::from_nanos(1),
            ..options()
        },
        None,
    );
    check_error(
        &impatient,
        "/v1/completions",
        r#"{"prompt": "a", "max_tokens": 5}"#,
        504,
        "request_timeout",
    );
}

#[test]
fn concurrent_requests_equal_sequential_ones() {
    let fixture = start(options(), None);
    let requests: Vec<Value> = (0..6)
        .map(|i| json!({"prompt": format!("def f{i}(x):"), "max_tokens": 6 + i, "temperature": 0.9, "seed": i}))
        .collect();
    let sequential: Vec<Value> = requests
        .iter()
        .map(|r| fixture.post("/v1/completions", r).1["choices"].clone())
        .collect();
    let concurrent: Vec<Value> = std::thread::scope(|scope| {
        let handles: Vec<_> = requests
            .iter()
            .map(|r| scope.spawn(|| fixture.post("/v1/completions", r).1["choices"].clone()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(concurrent, sequential);
    let text = fixture.get("/metrics").1;
    assert!(
        text.contains("codelm_requests_total{endpoint=\"completions\",status=\"200\"} 12"),
        "{text}"
    );
    assert!(fixture.metric("codelm_time_to_first_token_seconds_count") >= 12.0);
}

#[test]
fn the_official_openai_client_works() {
    let Some(python) = std::env::var_os("CODELM_TEST_PYTHON") else {
        eprintln!("skipped: CODELM_TEST_PYTHON (a python with `openai`) is not set");
        return;
    };
    let fixture = start(options(), None);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openai_client.py");
    let output = std::process::Command::new(python)
        .arg(script)
        .arg(format!("http://{}/v1", fixture.addr()))
        .arg(MODEL_ID)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_playground_works_in_a_real_browser() {
    let (Some(python), Some(chromium)) = (
        std::env::var_os("CODELM_TEST_PYTHON"),
        std::env::var_os("CODELM_TEST_CHROMIUM"),
    ) else {
        eprintln!("skipped: CODELM_TEST_PYTHON and CODELM_TEST_CHROMIUM are not both set");
        return;
    };
    let fixture = start(options(), None);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/playground_browser.py");
    let output = std::process::Command::new(python)
        .arg(script)
        .arg(chromium)
        .arg(format!("http://{}/", fixture.addr()))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(report["ok"], true, "{report}");
    for tab in ["complete", "infill", "chat"] {
        assert!(
            report[tab].as_str().is_some_and(|t| !t.is_empty()),
            "{tab}: {report}"
        );
    }
    let (_, metrics) = fixture.get("/metrics");
    for endpoint in ["completions", "infill", "chat_completions"] {
        assert!(
            metrics.contains(&format!(
                "codelm_requests_total{{endpoint=\"{endpoint}\",status=\"200\"}} 1"
            )),
            "{endpoint}: {metrics}"
        );
    }
}

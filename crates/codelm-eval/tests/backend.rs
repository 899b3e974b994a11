//! The OpenAI-compatible client against a one-shot local HTTP server: the
//! request it sends and the samples it reads back, through one `check`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;

use codelm_eval::backend::{Backend, GenParams, Generated, OpenAiBackend};
use codelm_eval::prompt::EvalPrompt;

/// Serves `response` once; returns the request line and JSON body seen.
fn serve_once(
    status: &'static str,
    response: &'static str,
) -> (String, std::thread::JoinHandle<(String, serde_json::Value)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut request_line = String::new();
        reader.read_line(&mut request_line).unwrap();
        let mut content_length = 0;
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).unwrap();
            if header.trim().is_empty() {
                break;
            }
            if let Some(value) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                content_length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; content_length];
        reader.read_exact(&mut body).unwrap();
        let mut stream = stream;
        write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{response}",
            response.len()
        )
        .unwrap();
        (
            request_line.trim().to_string(),
            serde_json::from_slice(&body).unwrap(),
        )
    });
    (url, handle)
}

fn params(n: usize) -> GenParams {
    GenParams {
        n,
        max_tokens: 32,
        temperature: 0.0,
        top_p: 1.0,
        seed: 3,
        stop: vec!["\ndef ".to_string()],
    }
}

fn check(
    prompt: EvalPrompt,
    params: GenParams,
    response: &'static str,
    expected_request: &str,
    expected: Result<Vec<Generated>, String>,
) -> serde_json::Value {
    // A body with an `error` object comes with an error status, as from a real server.
    let status = if response.contains(r#""error""#) {
        "400 Bad Request"
    } else {
        "200 OK"
    };
    let (url, server) = serve_once(status, response);
    let mut backend = OpenAiBackend::new(&url, "m", None);
    let result = backend
        .generate(&prompt, &params)
        .map_err(|error| error.to_string().replace(&url, "URL"));
    let (request_line, body) = server.join().unwrap();
    assert_eq!(request_line, expected_request);
    assert_eq!(result, expected);
    body
}

#[test]
fn base_prompts_use_completions() {
    let body = check(
        EvalPrompt::Text("def f():\n".into()),
        params(2),
        r#"{"choices": [{"text": "    return 1\n", "finish_reason": "stop"}, {"text": "    pass", "finish_reason": "length"}], "usage": {"completion_tokens": 10}}"#,
        "POST /v1/completions HTTP/1.1",
        Ok(vec![
            Generated {
                text: "    return 1\n".into(),
                finish_reason: "stop".into(),
                n_tokens: 5,
            },
            Generated {
                text: "    pass".into(),
                finish_reason: "length".into(),
                n_tokens: 5,
            },
        ]),
    );
    assert_eq!(body["prompt"], "def f():\n");
    assert_eq!(body["stop"], serde_json::json!(["\ndef "]));
    assert_eq!(body["n"], 2);
    assert_eq!(body["seed"], 3);
}

#[test]
fn instruct_prompts_use_chat_without_the_response_prefix() {
    let body = check(
        EvalPrompt::Chat {
            user: "Write f".into(),
            response_prefix: "Here:\n```python\n".into(),
        },
        params(1),
        r#"{"choices": [{"message": {"role": "assistant", "content": "```python\ndef f(): pass\n```"}, "finish_reason": "stop"}]}"#,
        "POST /v1/chat/completions HTTP/1.1",
        Ok(vec![Generated {
            text: "```python\ndef f(): pass\n```".into(),
            finish_reason: "stop".into(),
            n_tokens: 0,
        }]),
    );
    assert_eq!(
        body["messages"],
        serde_json::json!([{"role": "user", "content": "Write f"}])
    );
    assert!(body.get("stop").is_none());
}

#[test]
fn server_errors_and_short_answers_are_reported() {
    check(
        EvalPrompt::Text("x".into()),
        params(1),
        r#"{"error": {"message": "model not found"}}"#,
        "POST /v1/completions HTTP/1.1",
        Err(r#"request to URL/completions failed: HTTP 400: {"error": {"message": "model not found"}}"#.into()),
    );
    check(
        EvalPrompt::Text("x".into()),
        params(2),
        r#"{"choices": [{"text": "a", "finish_reason": "stop"}]}"#,
        "POST /v1/completions HTTP/1.1",
        Err("request to URL/completions failed: asked for 2 choices, got 1".into()),
    );
}

#[test]
fn stops_beyond_the_api_limit_are_applied_to_the_reply() {
    let mut five = params(1);
    five.stop = ["\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#"]
        .map(String::from)
        .to_vec();
    let body = check(
        EvalPrompt::Text("def f():\n".into()),
        five,
        r##"{"choices": [{"text": "    return 1\n# done\n", "finish_reason": "length"}], "usage": {"completion_tokens": 8}}"##,
        "POST /v1/completions HTTP/1.1",
        Ok(vec![Generated {
            text: "    return 1".into(),
            finish_reason: "stop".into(),
            n_tokens: 8,
        }]),
    );
    assert_eq!(
        body["stop"],
        serde_json::json!(["\ndef ", "\nclass ", "\nif __name__", "\nprint("])
    );
}

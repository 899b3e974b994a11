//! The OpenAI-compatible backend against a real `codelm-serve` server on
//! loopback: with the same tiny random-weight model (`codelm_model::testing`),
//! prompts and parameters, its samples equal the in-process backend's, text,
//! finish reason and token count alike. One `check` compares the two
//! backends on a list of prompts.
//!
//! Base prompts go to `/v1/completions` with the benchmark's stops; instruct
//! prompts go to `/v1/chat/completions` as the user turn alone, which the
//! local backend reads as an instruct prompt with an empty response prefix
//! (the part a chat server cannot send). The local backend also stops
//! instruct replies at `backend::INSTRUCT_STOPS`, which a chat server is not
//! sent; none of them occurs in these replies.

use std::path::{Path, PathBuf};

use codelm_eval::backend::{Backend, GenParams, Generated, LocalBackend, OpenAiBackend};
use codelm_eval::prompt::{self, EvalPrompt, Mode};
use codelm_eval::{Benchmark, Dataset};
use codelm_generate::Engine;
use codelm_model::quant::GgmlType;
use codelm_model::testing::{write_tiny_model, TinySpec};
use codelm_serve::{ServeOptions, Server};

const MODEL_ID: &str = "tiny";

struct Fixture {
    _dir: tempfile::TempDir,
    model: PathBuf,
    server: Server,
}

/// A tiny model with room for HumanEval prompts (about a token per byte),
/// served on a free loopback port.
fn start() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.gguf");
    let spec = TinySpec {
        n_ctx: 2048,
        ..TinySpec::small()
    };
    write_tiny_model(&model, &spec, GgmlType::F32).unwrap();
    let options = ServeOptions {
        port: 0,
        model_id: MODEL_ID.into(),
        ..ServeOptions::default()
    };
    let server = Server::start(Engine::load(&model, None).unwrap(), options).unwrap();
    Fixture {
        _dir: dir,
        model,
        server,
    }
}

fn params(n: usize, temperature: f32, stop: Vec<String>) -> GenParams {
    GenParams {
        n,
        max_tokens: 24,
        temperature,
        top_p: 1.0,
        seed: 11,
        stop,
    }
}

/// What the local backend is asked for the same request: a chat server gets
/// no response prefix.
fn as_sent(prompt: &EvalPrompt) -> EvalPrompt {
    match prompt {
        EvalPrompt::Text(text) => EvalPrompt::Text(text.clone()),
        EvalPrompt::Chat { user, .. } => EvalPrompt::Chat {
            user: user.clone(),
            response_prefix: String::new(),
        },
    }
}

/// The server's samples for `prompts` have the local backend's texts and
/// finish reasons (the local one decodes the prompts as one batch); returns
/// both, server first, for the token counts.
fn check(
    fixture: &Fixture,
    prompts: &[EvalPrompt],
    params: &GenParams,
) -> Vec<(Vec<Generated>, Vec<Generated>)> {
    let url = format!("http://{}/v1", fixture.server.addr());
    let mut remote = OpenAiBackend::new(&url, MODEL_ID, None);
    let mut local = LocalBackend::new(Engine::load(&fixture.model, None).unwrap());
    let sent: Vec<EvalPrompt> = prompts.iter().map(as_sent).collect();
    let texts = |samples: &[Generated]| -> Vec<(String, String)> {
        samples
            .iter()
            .map(|sample| (sample.text.clone(), sample.finish_reason.clone()))
            .collect()
    };
    prompts
        .iter()
        .zip(local.generate_many(&sent, params))
        .map(|(prompt, expected)| {
            let expected = expected.unwrap();
            let actual = remote.generate(prompt, params).unwrap();
            assert_eq!(texts(&actual), texts(&expected), "{prompt:?}");
            (actual, expected)
        })
        .collect()
}

/// The API reports one token count for all of a request's choices.
fn n_tokens(samples: &[Generated]) -> usize {
    samples.iter().map(|sample| sample.n_tokens).sum()
}

fn humaneval_prompts(mode: Mode) -> Vec<EvalPrompt> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/humaneval-5.jsonl");
    let dataset = Dataset::load(Benchmark::HumanEval, &path).unwrap();
    dataset.tasks[..2]
        .iter()
        .map(|task| prompt::build(&dataset, task, mode))
        .collect()
}

#[test]
fn completions_equal_the_local_backend() {
    let fixture = start();
    let stops = prompt::stops(Benchmark::HumanEval, Mode::Base);
    let prompts = humaneval_prompts(Mode::Base);
    for params in [params(1, 0.0, stops.clone()), params(2, 0.8, stops)] {
        for (remote, local) in check(&fixture, &prompts, &params) {
            assert!(local.iter().all(|sample| !sample.text.is_empty()));
            assert_eq!(n_tokens(&remote) / params.n, n_tokens(&local) / params.n);
        }
    }
}

#[test]
fn chat_equals_the_local_backend() {
    let fixture = start();
    let prompts = humaneval_prompts(Mode::Instruct);
    assert!(matches!(prompts[0], EvalPrompt::Chat { .. }));
    for (remote, local) in check(&fixture, &prompts, &params(1, 0.0, Vec::new())) {
        assert_eq!(remote, local);
    }
}

/// OpenAI's API takes four stops: a reply is cut at a fifth one by the
/// client, where the local engine stops by itself.
#[test]
fn a_fifth_stop_cuts_the_reply_as_the_engine_does() {
    let fixture = start();
    let prompts = vec![EvalPrompt::Text("def add(a, b):\n".into())];
    let free = check(&fixture, &prompts, &params(1, 0.0, Vec::new()));
    let text = free[0].1[0].text.clone();
    // A stop that first occurs in the middle of the unconstrained reply.
    let chars: Vec<char> = text.chars().collect();
    let fifth: String = chars[chars.len() / 2..chars.len() / 2 + 2].iter().collect();
    let mut stops: Vec<String> = (0..4).map(|idx| format!("\u{1}never{idx}")).collect();
    stops.push(fifth.clone());
    let cut = check(&fixture, &prompts, &params(1, 0.0, stops));
    let (remote, local) = &cut[0];
    assert_eq!(local[0].finish_reason, "stop");
    assert_eq!(
        remote[0].text,
        text[..text.find(&fifth).unwrap()],
        "cut at {fifth:?}"
    );
    // The server generated on to `max_tokens`, and counts those tokens.
    assert!(remote[0].n_tokens > local[0].n_tokens);
}

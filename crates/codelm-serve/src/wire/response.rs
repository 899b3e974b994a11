//! Response bodies as codelm sends them: OpenAI's completions, chat
//! completions and their stream chunks, `/v1/models`, llama.cpp's `/infill`,
//! `/health`, and the error body.
//!
//! The design decision a newcomer may question: every struct declares its
//! fields in alphabetical order. The bodies were first written as
//! `serde_json::Value`s, whose maps (without serde_json's `preserve_order`)
//! print their keys sorted; declaring the fields in that order keeps every
//! answer byte-for-byte what clients already receive. Fields that were always
//! present, `null` or not, are plain `Option`s; the few that appear only
//! sometimes carry `skip_serializing_if`. Log-probabilities are `f64`s widened
//! from the engine's `f32`s, as `Value` printed them.
//!
//! ```
//! use codelm_serve::wire::response::{Health, Usage};
//! assert_eq!(serde_json::to_string(&Health { status: "ok" }).unwrap(), r#"{"status":"ok"}"#);
//! let usage = Usage::new(3, 4);
//! assert_eq!(
//!     serde_json::to_string(&usage).unwrap(),
//!     r#"{"completion_tokens":4,"prompt_tokens":3,"total_tokens":7}"#
//! );
//! ```

use std::collections::BTreeMap;

use serde::Serialize;

/// `GET /health`.
#[derive(Debug, Serialize)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
}

/// `GET /v1/models`.
#[derive(Debug, Serialize)]
pub struct ModelList {
    /// The served models (one).
    pub data: Vec<ModelCard>,
    /// Always `list`.
    pub object: &'static str,
}

/// One entry of `/v1/models`.
#[derive(Debug, Serialize)]
pub struct ModelCard {
    /// Unix time of the answer.
    pub created: u64,
    /// The id clients name the model by.
    pub id: String,
    /// What llama.cpp's clients read about the model.
    pub meta: ModelMeta,
    /// Always `model`.
    pub object: &'static str,
    /// Always `codelm`.
    pub owned_by: &'static str,
}

/// `meta` of a [`ModelCard`].
#[derive(Debug, Serialize)]
pub struct ModelMeta {
    /// Whether the vocabulary has fill-in-the-middle tokens.
    pub fim: bool,
    /// Context length in tokens.
    pub n_ctx: usize,
    /// Vocabulary size.
    pub n_vocab: usize,
}

/// Token counts of a request.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Usage {
    /// Tokens generated, over every choice.
    pub completion_tokens: usize,
    /// Prompt tokens, over every prompt.
    pub prompt_tokens: usize,
    /// Their sum.
    pub total_tokens: usize,
}

impl Usage {
    /// The counts, with their total.
    pub fn new(n_prompt: usize, n_completion: usize) -> Self {
        Usage {
            completion_tokens: n_completion,
            prompt_tokens: n_prompt,
            total_tokens: n_prompt + n_completion,
        }
    }
}

/// What every completion answer and stream chunk carries around its choices:
/// `object` says which (`text_completion`, `chat.completion`,
/// `chat.completion.chunk`).
#[derive(Debug, Serialize)]
pub struct Completion<'a, C> {
    /// The choices (none in the usage chunk that ends a stream).
    pub choices: Vec<C>,
    /// Unix time the request was answered.
    pub created: u64,
    /// The answer's id, shared by every chunk of a stream.
    pub id: &'a str,
    /// The served model's id.
    pub model: &'a str,
    /// The object type.
    pub object: &'static str,
    /// Token counts; `null` in every stream chunk but the usage chunk.
    pub usage: Option<Usage>,
}

/// A choice of `/v1/completions`, whole or as a stream chunk.
#[derive(Debug, Serialize)]
pub struct TextChoice {
    /// `stop`, `length`, ...; `null` until the choice's last chunk.
    pub finish_reason: Option<&'static str>,
    /// The choice's index over every prompt's choices.
    pub index: usize,
    /// Present (non-`null`) when the request asked for log-probabilities.
    pub logprobs: Option<TextLogprobs>,
    /// The text (a piece of it in a stream).
    pub text: String,
}

/// Legacy completions `logprobs`: one entry per token in each list.
#[derive(Debug, Default, Serialize)]
pub struct TextLogprobs {
    /// Byte offset of each token in the choice's text.
    pub text_offset: Vec<usize>,
    /// Log-probability of each token.
    pub token_logprobs: Vec<f64>,
    /// Each token's text.
    pub tokens: Vec<String>,
    /// The likeliest alternatives at each position, by text (a later
    /// alternative with the same text replaces an earlier one).
    pub top_logprobs: Vec<BTreeMap<String, f64>>,
}

/// A choice of a whole `/v1/chat/completions` answer.
#[derive(Debug, Serialize)]
pub struct ChatChoice {
    /// `stop`, `length`, ...
    pub finish_reason: Option<&'static str>,
    /// The choice's index.
    pub index: usize,
    /// Present (non-`null`) when the request asked for log-probabilities.
    pub logprobs: Option<ChatLogprobs>,
    /// The assistant's reply.
    pub message: ChatReply,
}

/// `message` of a [`ChatChoice`].
#[derive(Debug, Serialize)]
pub struct ChatReply {
    /// The reply's text.
    pub content: String,
    /// Always `assistant`.
    pub role: &'static str,
}

/// A choice of a chat stream chunk.
#[derive(Debug, Serialize)]
pub struct ChatChunkChoice {
    /// What this chunk adds to the reply.
    pub delta: Delta,
    /// `null` until the choice's last chunk.
    pub finish_reason: Option<&'static str>,
    /// The choice's index.
    pub index: usize,
    /// Present (non-`null`) when the request asked for log-probabilities.
    pub logprobs: Option<ChatLogprobs>,
}

/// `delta` of a [`ChatChunkChoice`]: the role in a choice's first chunk, text
/// in the chunks that add some, nothing (`{}`) in the last.
#[derive(Debug, Default, PartialEq, Serialize)]
pub struct Delta {
    /// Text added.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// `assistant`, in the first chunk of each choice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
}

impl Delta {
    /// Whether the delta adds nothing (prints as `{}`).
    pub fn is_empty(&self) -> bool {
        *self == Delta::default()
    }
}

/// Chat `logprobs`.
#[derive(Debug, Serialize)]
pub struct ChatLogprobs {
    /// One entry per token.
    pub content: Vec<ChatTokenLogprob>,
}

/// One token of [`ChatLogprobs`], or one of its alternatives.
#[derive(Debug, Serialize)]
pub struct ChatTokenLogprob {
    /// The token's bytes (its text may not be valid UTF-8 alone).
    pub bytes: Vec<u8>,
    /// Its log-probability.
    pub logprob: f64,
    /// Its text, lossily decoded.
    pub token: String,
    /// The likeliest alternatives; present on chosen tokens only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<Vec<ChatTokenLogprob>>,
}

/// A piece of a streamed `/infill` answer, before the last.
#[derive(Debug, Serialize)]
pub struct InfillChunk {
    /// Text added.
    pub content: String,
    /// Always 0.
    pub index: usize,
    /// Always `false`.
    pub stop: bool,
}

/// A whole `/infill` answer, or the last chunk of a stream (then `content` is
/// only what the stream had not sent yet).
#[derive(Debug, Serialize)]
pub struct InfillDone {
    /// The text.
    pub content: String,
    /// Always 0.
    pub index: usize,
    /// The served model's id.
    pub model: String,
    /// Always `true`.
    pub stop: bool,
    /// `eos`, `word` (a stop string) or `limit`.
    pub stop_type: &'static str,
    /// Counts and time.
    pub timings: InfillTimings,
    /// Prompt tokens read from the prefix cache.
    pub tokens_cached: usize,
    /// Prompt tokens.
    pub tokens_evaluated: usize,
    /// Tokens generated.
    pub tokens_predicted: usize,
    /// Always `false`.
    pub truncated: bool,
}

/// `timings` of an [`InfillDone`].
#[derive(Debug, Serialize)]
pub struct InfillTimings {
    /// Tokens generated.
    pub predicted_n: usize,
    /// Tokens generated per second of the request.
    pub predicted_per_second: f64,
    /// Prompt tokens not read from the prefix cache.
    pub prompt_n: usize,
    /// Milliseconds since the request was submitted.
    pub total_ms: f64,
}

/// Every error answer: `{"error": {...}}`.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    /// The error.
    pub error: ErrorDetail<'a>,
}

/// `error` of an [`ErrorBody`].
#[derive(Debug, Serialize)]
pub struct ErrorDetail<'a> {
    /// A machine-readable code, or `null`.
    pub code: Option<&'static str>,
    /// Human-readable message.
    pub message: &'a str,
    /// The request field at fault, or `null`.
    pub param: Option<&'static str>,
    /// OpenAI's error type.
    #[serde(rename = "type")]
    pub kind: &'static str,
}

#[cfg(test)]
mod tests {
    //! Each body against the `serde_json::json!` literal it replaced, as bytes.
    use super::*;
    use serde_json::json;

    fn check(typed: &impl Serialize, expected: serde_json::Value) {
        assert_eq!(serde_json::to_string(typed).unwrap(), expected.to_string());
    }

    #[test]
    fn health_and_models() {
        check(&Health { status: "ok" }, json!({"status": "ok"}));
        let models = ModelList {
            object: "list",
            data: vec![ModelCard {
                id: "m".into(),
                object: "model",
                created: 17,
                owned_by: "codelm",
                meta: ModelMeta {
                    n_ctx: 4096,
                    n_vocab: 151_936,
                    fim: true,
                },
            }],
        };
        check(
            &models,
            json!({
                "object": "list",
                "data": [{
                    "id": "m",
                    "object": "model",
                    "created": 17,
                    "owned_by": "codelm",
                    "meta": {"n_ctx": 4096, "n_vocab": 151_936, "fim": true},
                }],
            }),
        );
    }

    #[test]
    fn completions_whole_and_chunks() {
        let logprob: f32 = -0.123_456_79;
        let logprobs = TextLogprobs {
            tokens: vec!["a".into()],
            token_logprobs: vec![f64::from(logprob)],
            top_logprobs: vec![BTreeMap::from([
                ("b".to_string(), f64::from(-1.5f32)),
                ("a".to_string(), f64::from(logprob)),
            ])],
            text_offset: vec![3],
        };
        let whole = Completion {
            id: "cmpl-1",
            object: "text_completion",
            created: 5,
            model: "m",
            choices: vec![TextChoice {
                text: "a".into(),
                index: 0,
                logprobs: Some(logprobs),
                finish_reason: Some("stop"),
            }],
            usage: Some(Usage::new(2, 1)),
        };
        let mut alternatives = serde_json::Map::new();
        alternatives.insert("b".into(), json!(-1.5f32));
        alternatives.insert("a".into(), json!(logprob));
        check(
            &whole,
            json!({
                "id": "cmpl-1",
                "object": "text_completion",
                "created": 5,
                "model": "m",
                "choices": [{
                    "text": "a",
                    "index": 0,
                    "logprobs": {
                        "tokens": ["a"],
                        "token_logprobs": [logprob],
                        "top_logprobs": [alternatives],
                        "text_offset": [3],
                    },
                    "finish_reason": "stop",
                }],
                "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3},
            }),
        );
        let chunk = Completion {
            id: "cmpl-1",
            object: "text_completion",
            created: 5,
            model: "m",
            choices: vec![TextChoice {
                text: "x".into(),
                index: 2,
                logprobs: None,
                finish_reason: None,
            }],
            usage: None,
        };
        check(
            &chunk,
            json!({
                "id": "cmpl-1", "object": "text_completion", "created": 5, "model": "m",
                "choices": [{"text": "x", "index": 2, "logprobs": null, "finish_reason": null}],
                "usage": null,
            }),
        );
        let usage_chunk = Completion::<TextChoice> {
            id: "cmpl-1",
            object: "text_completion",
            created: 5,
            model: "m",
            choices: Vec::new(),
            usage: Some(Usage::new(4, 6)),
        };
        check(
            &usage_chunk,
            json!({
                "id": "cmpl-1", "object": "text_completion", "created": 5, "model": "m",
                "choices": [],
                "usage": {"prompt_tokens": 4, "completion_tokens": 6, "total_tokens": 10},
            }),
        );
    }

    #[test]
    fn chat_whole_and_chunks() {
        let entry = |logprob: f32, top| ChatTokenLogprob {
            token: "é".into(),
            logprob: f64::from(logprob),
            bytes: "é".as_bytes().to_vec(),
            top_logprobs: top,
        };
        let whole = Completion {
            id: "chatcmpl-1",
            object: "chat.completion",
            created: 5,
            model: "m",
            choices: vec![ChatChoice {
                index: 0,
                message: ChatReply {
                    role: "assistant",
                    content: "é".into(),
                },
                logprobs: Some(ChatLogprobs {
                    content: vec![entry(-0.3, Some(vec![entry(f32::NEG_INFINITY, None)]))],
                }),
                finish_reason: Some("length"),
            }],
            usage: Some(Usage::new(9, 1)),
        };
        let old_entry =
            |logprob: f32| json!({"token": "é", "logprob": logprob, "bytes": "é".as_bytes()});
        let mut chosen = old_entry(-0.3);
        chosen["top_logprobs"] = json!([old_entry(f32::NEG_INFINITY)]);
        check(
            &whole,
            json!({
                "id": "chatcmpl-1", "object": "chat.completion", "created": 5, "model": "m",
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": "é"},
                    "logprobs": {"content": [chosen]},
                    "finish_reason": "length",
                }],
                "usage": {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10},
            }),
        );
        for (delta, old) in [
            (
                Delta {
                    role: Some("assistant"),
                    content: Some(String::new()),
                },
                json!({"role": "assistant", "content": ""}),
            ),
            (
                Delta {
                    role: Some("assistant"),
                    content: Some("hi".into()),
                },
                json!({"role": "assistant", "content": "hi"}),
            ),
            (
                Delta {
                    role: None,
                    content: Some("hi".into()),
                },
                json!({"content": "hi"}),
            ),
            (Delta::default(), json!({})),
        ] {
            let chunk = Completion {
                id: "chatcmpl-1",
                object: "chat.completion.chunk",
                created: 5,
                model: "m",
                choices: vec![ChatChunkChoice {
                    index: 1,
                    delta,
                    logprobs: None,
                    finish_reason: None,
                }],
                usage: None,
            };
            check(
                &chunk,
                json!({
                    "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 5, "model": "m",
                    "choices": [{"index": 1, "delta": old, "logprobs": null, "finish_reason": null}],
                    "usage": null,
                }),
            );
        }
    }

    #[test]
    fn infill_and_errors() {
        check(
            &InfillChunk {
                content: "x".into(),
                stop: false,
                index: 0,
            },
            json!({"content": "x", "stop": false, "index": 0}),
        );
        let done = InfillDone {
            stop: true,
            model: "m".into(),
            tokens_predicted: 3,
            tokens_evaluated: 20,
            tokens_cached: 4,
            stop_type: "eos",
            truncated: false,
            timings: InfillTimings {
                prompt_n: 16,
                predicted_n: 3,
                total_ms: 12.5,
                predicted_per_second: 240.0,
            },
            content: "tail".into(),
            index: 0,
        };
        let mut old = json!({
            "stop": true,
            "model": "m",
            "tokens_predicted": 3,
            "tokens_evaluated": 20,
            "tokens_cached": 4,
            "stop_type": "eos",
            "truncated": false,
            "timings": {
                "prompt_n": 16,
                "predicted_n": 3,
                "total_ms": 12.5,
                "predicted_per_second": 240.0,
            },
        });
        old["content"] = json!("tail");
        old["index"] = json!(0);
        check(&done, old);
        check(
            &ErrorBody {
                error: ErrorDetail {
                    message: "no",
                    kind: "invalid_request_error",
                    param: Some("n"),
                    code: None,
                },
            },
            json!({"error": {"message": "no", "type": "invalid_request_error", "param": "n", "code": null}}),
        );
    }
}

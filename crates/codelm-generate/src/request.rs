//! What goes into generation and what comes out: a [`Prompt`] with its
//! [`GenerateOptions`], tokenized into a [`Request`], and each finished sample
//! as a [`Completion`] with its [`FinishReason`].
//!
//! These are plain data, apart from the engine ([`Engine`](crate::Engine),
//! `generate.rs`) that makes requests and the batch ([`Batch`](crate::Batch),
//! `batch.rs`) that serves them, so that both depend on this module and not
//! on each other. The design decision a newcomer may question: a [`Request`]
//! holds token ids, not a [`Prompt`]. Tokenizing needs the model's
//! vocabulary and templates, which the engine owns; the batch only decodes.
//!
//! ```
//! use codelm_generate::{GenerateOptions, Request};
//!
//! let request = Request {
//!     prompt: vec![1, 2, 3],
//!     stop_tokens: Vec::new(),
//!     options: GenerateOptions { n: 2, ..Default::default() },
//! };
//! assert_eq!(request.options.max_tokens, 256);
//! ```

use crate::chat::Message;
use crate::fim::FimInput;
use crate::sampler::SamplingParams;

/// What to generate from.
#[derive(Debug, Clone)]
pub enum Prompt {
    /// Plain text to continue.
    Text(String),
    /// A conversation, rendered with the model's chat template.
    Chat(Vec<Message>),
    /// Fill in the middle between a prefix and a suffix.
    Infill(FimInput),
    /// Token ids, used as they are.
    Tokens(Vec<u32>),
}

/// How to generate.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// Samples to draw for the prompt.
    pub n: usize,
    /// New tokens at most per sample.
    pub max_tokens: usize,
    /// Sampling parameters; sample `i` uses seed `seed + i`.
    pub sampling: SamplingParams,
    /// Stop strings (matched across token boundaries, not included in the output).
    pub stop: Vec<String>,
    /// Report each token's log-probability and this many top alternatives.
    pub logprobs: Option<usize>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            n: 1,
            max_tokens: 256,
            sampling: SamplingParams::default(),
            stop: Vec::new(),
            logprobs: None,
        }
    }
}

/// One tokenized prompt with its own options, for [`Engine::generate_batch`](crate::Engine::generate_batch).
#[derive(Debug, Clone)]
pub struct Request {
    /// Prompt token ids.
    pub prompt: Vec<u32>,
    /// Tokens that end a sample, in addition to the vocabulary's end-of-generation set.
    pub stop_tokens: Vec<u32>,
    /// Sampling, length and stop strings.
    pub options: GenerateOptions,
}

/// Why a sample ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-generation token or a stop string.
    Stop,
    /// `max_tokens` or the context window was reached.
    Length,
    /// The caller's callback asked to stop.
    Cancelled,
}

impl FinishReason {
    /// The OpenAI spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Cancelled => "cancelled",
        }
    }
}

/// One finished sample.
#[derive(Debug, Clone)]
pub struct Completion {
    /// The generated text, cut at the stop string.
    pub text: String,
    /// Generated token ids (the end-of-generation token excluded).
    pub tokens: Vec<u32>,
    /// Why it ended.
    pub finish_reason: FinishReason,
    /// Tokens in the prompt.
    pub n_prompt_tokens: usize,
    /// Prompt tokens whose keys and values came from the prefix cache.
    pub n_cached_tokens: usize,
}

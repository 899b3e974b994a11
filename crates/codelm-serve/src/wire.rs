//! Request bodies as clients send them: OpenAI's completions and chat
//! completions, and llama.cpp's `/infill`.
//!
//! Fields codelm does not implement are still parsed, so that a request using
//! them is refused with a message naming the field instead of being answered as
//! if they were honoured. Fields no answer depends on (`user`) are ignored.
//! The bodies codelm answers with are typed in [`response`].

pub mod response;

use serde::Deserialize;

/// A string or a list of strings (`stop`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum StringOrList {
    /// One string.
    One(String),
    /// Several strings.
    Many(Vec<String>),
}

impl StringOrList {
    /// The strings, in order.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            StringOrList::One(s) => vec![s],
            StringOrList::Many(v) => v,
        }
    }
}

/// OpenAI's `prompt`: text, texts, token ids, or lists of token ids.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum PromptInput {
    /// One prompt.
    Text(String),
    /// Several prompts.
    Texts(Vec<String>),
    /// One tokenized prompt.
    Tokens(Vec<u32>),
    /// Several tokenized prompts.
    TokenLists(Vec<Vec<u32>>),
}

/// `stream_options`.
#[derive(Debug, Default, Deserialize)]
pub struct StreamOptions {
    /// Send a last chunk with the token counts.
    #[serde(default)]
    pub include_usage: bool,
}

/// Sampling fields shared by every endpoint (OpenAI's plus llama.cpp's
/// `top_k`, `min_p` and `repeat_penalty`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SamplingFields {
    /// Softmax temperature; 0 is greedy.
    pub temperature: Option<f32>,
    /// Nucleus threshold.
    pub top_p: Option<f32>,
    /// Keep the k most likely tokens (0: off).
    pub top_k: Option<usize>,
    /// Minimum probability relative to the best token.
    pub min_p: Option<f32>,
    /// Repetition penalty (1: off).
    #[serde(alias = "repetition_penalty")]
    pub repeat_penalty: Option<f32>,
    /// Seed; absent (or negative, llama.cpp's "random") draws one.
    pub seed: Option<i64>,
    /// OpenAI's presence penalty: refused unless 0.
    pub presence_penalty: Option<f32>,
    /// OpenAI's frequency penalty: refused unless 0.
    pub frequency_penalty: Option<f32>,
    /// OpenAI's logit bias: refused unless empty.
    pub logit_bias: Option<serde_json::Map<String, serde_json::Value>>,
}

/// `POST /v1/completions`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CompletionRequest {
    /// Model id; absent means the served model.
    pub model: Option<String>,
    /// What to continue.
    pub prompt: Option<PromptInput>,
    /// Text after the insertion point: makes the request a fill-in-the-middle one.
    pub suffix: Option<String>,
    /// New tokens at most per choice (OpenAI's default: 16).
    pub max_tokens: Option<usize>,
    /// Choices per prompt.
    pub n: Option<usize>,
    /// Stream server-sent events.
    pub stream: bool,
    /// Streaming options.
    pub stream_options: Option<StreamOptions>,
    /// Report log-probabilities with this many alternatives (at most 5).
    pub logprobs: Option<usize>,
    /// Echo the prompt: refused.
    pub echo: bool,
    /// Best-of sampling: refused unless equal to `n`.
    pub best_of: Option<usize>,
    /// Stop strings.
    pub stop: Option<StringOrList>,
    /// Sampling.
    #[serde(flatten)]
    pub sampling: SamplingFields,
}

/// One part of a multi-part message content.
#[derive(Debug, Deserialize)]
pub struct ContentPart {
    /// The part's type; only `text` is served.
    #[serde(rename = "type")]
    pub kind: String,
    /// The text of a `text` part.
    #[serde(default)]
    pub text: Option<String>,
}

/// A message's `content`: a string or a list of parts.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    /// Plain text.
    Text(String),
    /// Parts; only text parts are served.
    Parts(Vec<ContentPart>),
}

/// One chat message.
#[derive(Debug, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant`, ...
    pub role: String,
    /// The text.
    #[serde(default)]
    pub content: Option<MessageContent>,
}

/// `POST /v1/chat/completions`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ChatRequest {
    /// Model id; absent means the served model.
    pub model: Option<String>,
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// New tokens at most per choice.
    pub max_tokens: Option<usize>,
    /// The newer spelling of `max_tokens`.
    pub max_completion_tokens: Option<usize>,
    /// Choices.
    pub n: Option<usize>,
    /// Stream server-sent events.
    pub stream: bool,
    /// Streaming options.
    pub stream_options: Option<StreamOptions>,
    /// Report log-probabilities.
    pub logprobs: bool,
    /// Alternatives per position when `logprobs` is set (at most 20).
    pub top_logprobs: Option<usize>,
    /// Stop strings.
    pub stop: Option<StringOrList>,
    /// Tools: refused.
    pub tools: Option<serde_json::Value>,
    /// Functions: refused.
    pub functions: Option<serde_json::Value>,
    /// Response format: only `{"type": "text"}` is served.
    pub response_format: Option<serde_json::Value>,
    /// Sampling.
    #[serde(flatten)]
    pub sampling: SamplingFields,
}

/// One `input_extra` chunk of llama.cpp's `/infill`.
#[derive(Debug, Deserialize)]
pub struct ExtraChunk {
    /// The file's name.
    #[serde(default)]
    pub filename: String,
    /// The file's text.
    #[serde(default)]
    pub text: String,
}

/// `POST /infill`, as llama.cpp's server takes it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct InfillRequest {
    /// Code before the cursor.
    pub input_prefix: String,
    /// Code after the cursor.
    pub input_suffix: String,
    /// Other files of the project, rendered in the model's repository format.
    pub input_extra: Vec<ExtraChunk>,
    /// Text added after `input_prefix` (what the user is typing).
    pub prompt: String,
    /// New tokens at most; negative means until the context is full.
    pub n_predict: Option<i64>,
    /// Stop strings.
    pub stop: Vec<String>,
    /// Stream server-sent events.
    pub stream: bool,
    /// Model id; absent means the served model.
    pub model: Option<String>,
    /// Sampling.
    #[serde(flatten)]
    pub sampling: SamplingFields,
}

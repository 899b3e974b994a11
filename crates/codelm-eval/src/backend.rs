//! Where samples come from: the in-process engine, or any OpenAI-compatible
//! server.
//!
//! Both backends answer the same [`EvalPrompt`]. The local engine can start
//! the assistant's turn itself (the chat template, then the response prefix
//! as plain text), so its instruct replies continue inside an opened code
//! fence; a chat server cannot, so it gets the user turn alone and the code
//! is extracted from the whole reply. Base prompts go to `/completions`,
//! instruct prompts to `/chat/completions`. OpenAI's API takes four stop
//! sequences; the client cuts replies at any further ones, so a base prompt
//! gets the same sample from a server as from the local engine with the same
//! model and seed (`tests/serve.rs` asserts it against `codelm-serve`).
//!
//! ```
//! use codelm_eval::backend::quantization;
//!
//! assert_eq!(quantization(&[("Q4_K", 600), ("Q6_K", 300), ("F32", 100)]), "Q4_K (Q4_K 60%, Q6_K 30%, F32 10%)");
//! ```

use std::time::Duration;

use codelm_generate::{Engine, GenerateOptions, Message, Prompt, Request, SamplingParams};
use serde_json::{json, Value};

use crate::postprocess::truncate_at_stops;
use crate::prompt::EvalPrompt;
use crate::{Error, Result};

/// Sampling settings shared by every backend.
#[derive(Debug, Clone, PartialEq)]
pub struct GenParams {
    /// Samples per task.
    pub n: usize,
    /// New tokens at most per sample.
    pub max_tokens: usize,
    /// Temperature; 0 is greedy.
    pub temperature: f32,
    /// Nucleus threshold.
    pub top_p: f32,
    /// Seed; sample `i` of a task uses `seed + i` on the local engine.
    pub seed: u64,
    /// Stop sequences for text prompts.
    pub stop: Vec<String>,
}

/// One sample as a backend returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    /// The reply to post-process (for the local engine in instruct mode,
    /// the response prefix followed by the generated text).
    pub text: String,
    /// `stop`, `length`, ...
    pub finish_reason: String,
    /// Generated tokens.
    pub n_tokens: usize,
}

/// A source of samples.
pub trait Backend {
    /// Generates `params.n` samples for `prompt`.
    fn generate(&mut self, prompt: &EvalPrompt, params: &GenParams) -> Result<Vec<Generated>>;

    /// Generates for several prompts; each prompt's result stands alone, so one
    /// rejected prompt does not fail the others. Backends that can decode prompts
    /// together (the local engine) override this; the results are the same.
    fn generate_many(
        &mut self,
        prompts: &[EvalPrompt],
        params: &GenParams,
    ) -> Vec<Result<Vec<Generated>>> {
        prompts
            .iter()
            .map(|prompt| self.generate(prompt, params))
            .collect()
    }

    /// The exact text the model reads for `prompt`, for the report.
    fn render(&self, prompt: &EvalPrompt) -> Result<String>;
}

/// Where the local engine stops an instruct reply. The reply continues
/// inside the response prefix's opened fence, so the closing fence ends the
/// code; the others are top-level test code (example calls, asserts, a
/// `__main__` block), which the sanitizer drops anyway: stopping there only
/// saves generating it, a third of the tokens on CPU.
pub const INSTRUCT_STOPS: [&str; 6] = [
    "\n```",
    "\nif __name__",
    "\nprint(",
    "\nassert ",
    "\n# Test",
    "\n# Example",
];

/// The in-process engine.
pub struct LocalBackend {
    engine: Engine,
}

impl LocalBackend {
    /// Wraps a loaded engine.
    pub fn new(engine: Engine) -> LocalBackend {
        LocalBackend { engine }
    }

    /// The weight storage types, e.g. `Q4_K (Q4_K 62%, Q6_K 31%, ...)`.
    pub fn quantization(&self) -> String {
        let types = self.engine.model().weight_types();
        let named: Vec<(&str, usize)> = types
            .iter()
            .map(|(dtype, n_bytes)| (dtype.name(), *n_bytes))
            .collect();
        quantization(&named)
    }

    fn chat_ids(&self, user: &str, response_prefix: &str) -> Result<Vec<u32>> {
        let prompt = Prompt::Chat(vec![Message::new("user", user)]);
        let mut ids = self.engine.tokenize(&prompt).map_err(Error::Engine)?;
        ids.extend(self.engine.tokenizer().encode(response_prefix, false));
        Ok(ids)
    }
}

/// Describes weight types by their share of bytes, largest first.
pub fn quantization(types: &[(&str, usize)]) -> String {
    let total: usize = types.iter().map(|(_, n_bytes)| n_bytes).sum();
    let mut sorted = types.to_vec();
    sorted.sort_by_key(|(_, n_bytes)| std::cmp::Reverse(*n_bytes));
    let Some((dominant, _)) = sorted.first() else {
        return "unknown".to_string();
    };
    let shares: Vec<String> = sorted
        .iter()
        .map(|(name, n_bytes)| {
            format!(
                "{name} {:.0}%",
                100.0 * *n_bytes as f64 / total.max(1) as f64
            )
        })
        .collect();
    format!("{dominant} ({})", shares.join(", "))
}

impl LocalBackend {
    /// The engine prompt, the reply prefix to put back in front, and the stops.
    fn request(
        &self,
        prompt: &EvalPrompt,
        params: &GenParams,
    ) -> Result<(Prompt, String, Vec<String>)> {
        Ok(match prompt {
            EvalPrompt::Text(text) => (
                Prompt::Text(text.clone()),
                String::new(),
                params.stop.clone(),
            ),
            // Instruct prompts stop at INSTRUCT_STOPS unless the caller
            // names its own (execution-based selection's tests and repairs).
            EvalPrompt::Chat {
                user,
                response_prefix,
            } => (
                Prompt::Tokens(self.chat_ids(user, response_prefix)?),
                response_prefix.clone(),
                if params.stop.is_empty() {
                    INSTRUCT_STOPS.iter().map(|stop| stop.to_string()).collect()
                } else {
                    params.stop.clone()
                },
            ),
        })
    }

    fn options(params: &GenParams, stop: Vec<String>) -> GenerateOptions {
        GenerateOptions {
            n: params.n,
            max_tokens: params.max_tokens,
            sampling: SamplingParams {
                temperature: params.temperature,
                top_p: params.top_p,
                seed: params.seed,
                ..SamplingParams::default()
            },
            stop,
            logprobs: None,
        }
    }
}

fn to_generated(prefix: &str, completions: Vec<codelm_generate::Completion>) -> Vec<Generated> {
    completions
        .into_iter()
        .map(|completion| Generated {
            text: format!("{prefix}{}", completion.text),
            finish_reason: completion.finish_reason.as_str().to_string(),
            n_tokens: completion.tokens.len(),
        })
        .collect()
}

impl Backend for LocalBackend {
    fn generate(&mut self, prompt: &EvalPrompt, params: &GenParams) -> Result<Vec<Generated>> {
        let (engine_prompt, prefix, stop) = self.request(prompt, params)?;
        let opts = LocalBackend::options(params, stop);
        let completions = self
            .engine
            .generate(&engine_prompt, &opts, &mut |_, _| true)
            .map_err(Error::Engine)?;
        Ok(to_generated(&prefix, completions))
    }

    fn generate_many(
        &mut self,
        prompts: &[EvalPrompt],
        params: &GenParams,
    ) -> Vec<Result<Vec<Generated>>> {
        // Prompts that tokenize and fit the context are decoded as one batch.
        let mut results: Vec<Option<Result<Vec<Generated>>>> =
            prompts.iter().map(|_| None).collect();
        let mut batch: Vec<(usize, String, Request)> = Vec::new();
        for (idx, prompt) in prompts.iter().enumerate() {
            let prepared =
                self.request(prompt, params)
                    .and_then(|(engine_prompt, prefix, stop)| {
                        let ids = self
                            .engine
                            .tokenize(&engine_prompt)
                            .map_err(Error::Engine)?;
                        if ids.len() >= self.engine.n_ctx() {
                            let message = format!(
                                "the prompt has {} tokens; the context holds {}",
                                ids.len(),
                                self.engine.n_ctx()
                            );
                            return Err(Error::Engine(codelm_generate::Error::BadRequest(message)));
                        }
                        Ok((prefix, ids, stop))
                    });
            match prepared {
                Ok((prefix, ids, stop)) => batch.push((
                    idx,
                    prefix,
                    Request {
                        prompt: ids,
                        stop_tokens: Vec::new(),
                        options: LocalBackend::options(params, stop),
                    },
                )),
                Err(error) => results[idx] = Some(Err(error)),
            }
        }
        let requests: Vec<Request> = batch
            .iter()
            .map(|(_, _, request)| request.clone())
            .collect();
        match self.engine.generate_batch(&requests, &mut |_, _, _| true) {
            Ok(outputs) => {
                for ((idx, prefix, _), completions) in batch.into_iter().zip(outputs) {
                    results[idx] = Some(Ok(to_generated(&prefix, completions)));
                }
            }
            // A batch-wide failure falls back to one prompt at a time, so each
            // prompt gets its own verdict.
            Err(_) => {
                for (idx, _, _) in batch {
                    results[idx] = Some(self.generate(&prompts[idx], params));
                }
            }
        }
        // Every index was filled above: by its error, the batch, or the fallback.
        results.into_iter().flatten().collect()
    }

    fn render(&self, prompt: &EvalPrompt) -> Result<String> {
        match prompt {
            EvalPrompt::Text(text) => Ok(text.clone()),
            EvalPrompt::Chat {
                user,
                response_prefix,
            } => {
                let chat = self
                    .engine
                    .render_chat(&[Message::new("user", user.as_str())])
                    .map_err(Error::Engine)?;
                Ok(format!("{chat}{response_prefix}"))
            }
        }
    }
}

/// How many stop sequences OpenAI's API accepts; [`OpenAiBackend`] sends the
/// first ones and applies the rest to the replies itself.
const MAX_API_STOPS: usize = 4;

/// An OpenAI-compatible server.
pub struct OpenAiBackend {
    base_url: String,
    model: String,
    api_key: Option<String>,
    agent: ureq::Agent,
}

impl OpenAiBackend {
    /// A client for `base_url` (e.g. `http://localhost:8080/v1`) asking for
    /// `model`; `api_key` is sent as a bearer token.
    pub fn new(base_url: &str, model: &str, api_key: Option<String>) -> OpenAiBackend {
        OpenAiBackend {
            base_url: base_url.trim_end_matches('/').to_string(),
            model: model.to_string(),
            api_key,
            agent: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(10))
                .timeout(Duration::from_secs(3600))
                .build(),
        }
    }

    fn post(&self, endpoint: &str, body: &Value) -> Result<Value> {
        let url = format!("{}/{endpoint}", self.base_url);
        let http_error = |reason: String| Error::Http {
            url: url.clone(),
            reason,
        };
        let mut request = self
            .agent
            .post(&url)
            .set("Content-Type", "application/json");
        if let Some(key) = &self.api_key {
            request = request.set("Authorization", &format!("Bearer {key}"));
        }
        let response = match request.send_string(&body.to_string()) {
            Ok(response) => response,
            Err(ureq::Error::Status(code, response)) => {
                let text = response.into_string().unwrap_or_default();
                return Err(http_error(format!(
                    "HTTP {code}: {}",
                    text.chars().take(300).collect::<String>()
                )));
            }
            Err(error) => return Err(http_error(error.to_string())),
        };
        let text = response
            .into_string()
            .map_err(|error| http_error(error.to_string()))?;
        serde_json::from_str(&text).map_err(|error| http_error(format!("invalid JSON: {error}")))
    }
}

impl Backend for OpenAiBackend {
    fn generate(&mut self, prompt: &EvalPrompt, params: &GenParams) -> Result<Vec<Generated>> {
        let mut body = json!({
            "model": self.model,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "n": params.n,
            "seed": params.seed,
        });
        let endpoint = match prompt {
            EvalPrompt::Text(text) => {
                body["prompt"] = json!(text);
                body["stop"] = json!(params.stop.iter().take(MAX_API_STOPS).collect::<Vec<_>>());
                "completions"
            }
            EvalPrompt::Chat { user, .. } => {
                body["messages"] = json!([{"role": "user", "content": user}]);
                "chat/completions"
            }
        };
        let response = self.post(endpoint, &body)?;
        let choices = response["choices"].as_array().cloned().unwrap_or_default();
        let n_tokens = response["usage"]["completion_tokens"].as_u64().unwrap_or(0) as usize;
        let n_choices = choices.len().max(1);
        let generated: Vec<Generated> = choices
            .iter()
            .map(|choice| {
                let text = choice["text"]
                    .as_str()
                    .or_else(|| choice["message"]["content"].as_str())
                    .unwrap_or_default();
                let mut finish_reason = choice["finish_reason"].as_str().unwrap_or("unknown");
                // The stops beyond the API's four are applied here, so the text
                // is the one the local engine stops with.
                let kept = match prompt {
                    EvalPrompt::Text(_) => truncate_at_stops(text, &params.stop),
                    EvalPrompt::Chat { .. } => text,
                };
                if kept.len() < text.len() {
                    finish_reason = "stop";
                }
                Generated {
                    text: kept.to_string(),
                    finish_reason: finish_reason.to_string(),
                    n_tokens: n_tokens / n_choices,
                }
            })
            .collect();
        if generated.len() != params.n {
            return Err(Error::Http {
                url: format!("{}/{endpoint}", self.base_url),
                reason: format!("asked for {} choices, got {}", params.n, generated.len()),
            });
        }
        Ok(generated)
    }

    fn render(&self, prompt: &EvalPrompt) -> Result<String> {
        Ok(match prompt {
            EvalPrompt::Text(text) => text.clone(),
            EvalPrompt::Chat { user, .. } => format!("[server's chat template]\nuser: {user}"),
        })
    }
}

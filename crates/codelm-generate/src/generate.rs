//! The generation loop: a prompt becomes tokens, the prompt is prefilled once, and
//! `n` samples are decoded together as one batch that shares the prefill.
//!
//! Special tokens come only from places that may hold them: the chat template's own
//! text and the FIM markers. User text (a completion prompt, a message's content, an
//! infill prefix or suffix) is tokenized with special-token parsing off, so a prompt
//! containing `<|im_start|>` cannot forge a turn.
//!
//! ```no_run
//! use codelm_generate::{Engine, GenerateOptions, Prompt};
//! let engine = Engine::load("model.gguf".as_ref(), None).unwrap();
//! let opts = GenerateOptions { max_tokens: 32, ..Default::default() };
//! let out = engine.generate(&Prompt::Text("def add(a, b):".into()), &opts, &mut |_, _| true).unwrap();
//! println!("{}", out[0].text);
//! ```

use std::path::Path;

use codelm_model::{Model, ModelFile, Tokenizer};

use crate::batch::{Batch, BatchOptions, Event};
use crate::chat::{ChatTemplate, Message};
use crate::error::{Error, Result};
use crate::fim::{FimFormat, Segment};
use crate::request::{Completion, GenerateOptions, Prompt, Request};

/// A loaded model with its tokenizer and prompt formats.
pub struct Engine {
    model: Model,
    tokenizer: Tokenizer,
    chat: ChatTemplate,
    fim: Option<FimFormat>,
    n_ctx: usize,
}

/// Private-use characters that cannot occur in a tokenizer's special tokens, used
/// to find message contents inside a rendered chat template.
const CONTENT_OPEN: char = '\u{F8F0}';
const CONTENT_CLOSE: char = '\u{F8F1}';

impl Engine {
    /// Loads a GGUF file or Hugging Face directory; `n_ctx` defaults to the
    /// model's training context.
    pub fn load(path: &Path, n_ctx: Option<usize>) -> Result<Engine> {
        let (model, file) = Model::load(path)?;
        let tokenizer = match &file {
            ModelFile::Gguf(gguf) => Tokenizer::from_gguf(gguf)?,
            ModelFile::HfDir(dir) => Tokenizer::from_hf_json(&dir.join("tokenizer.json"))?,
        };
        let template = match &file {
            ModelFile::Gguf(_) => tokenizer.chat_template().map(str::to_string),
            ModelFile::HfDir(dir) => std::fs::read_to_string(dir.join("tokenizer_config.json"))
                .ok()
                .and_then(|t| template_from_config(&t)),
        };
        let token_text = |id: Option<u32>| {
            id.map(|id| tokenizer.token_text(id).to_string())
                .unwrap_or_default()
        };
        let (bos, eos) = (
            token_text(tokenizer.bos_id()),
            token_text(tokenizer.eos_id()),
        );
        let chat = match template {
            Some(source) => ChatTemplate::new(&source, &bos, &eos)?,
            None => ChatTemplate::chatml()?,
        };
        let fim = FimFormat::detect(&|s| tokenizer.token_to_id(s));
        let n_ctx = n_ctx.unwrap_or(model.config.n_ctx_train);
        Ok(Engine {
            model,
            tokenizer,
            chat,
            fim,
            n_ctx,
        })
    }

    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The FIM format the vocabulary supports, if any.
    pub fn fim_format(&self) -> Option<&FimFormat> {
        self.fim.as_ref()
    }

    /// The context window in tokens.
    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    fn with_bos(&self, mut ids: Vec<u32>) -> Vec<u32> {
        if let Some(bos) = self.tokenizer.bos_id().filter(|_| self.tokenizer.add_bos()) {
            if ids.first() != Some(&bos) {
                ids.insert(0, bos);
            }
        }
        ids
    }

    /// Renders a conversation with the chat template (generation prompt added).
    pub fn render_chat(&self, messages: &[Message]) -> Result<String> {
        self.chat.render(messages, true)
    }

    /// Tokenizes a prompt, adding BOS where the model wants it.
    pub fn tokenize(&self, prompt: &Prompt) -> Result<Vec<u32>> {
        let tok = &self.tokenizer;
        let ids = match prompt {
            Prompt::Tokens(ids) => {
                if let Some(&id) = ids.iter().find(|&&id| id as usize >= tok.n_vocab()) {
                    return Err(codelm_model::Error::BadToken {
                        id,
                        n_vocab: tok.n_vocab(),
                    }
                    .into());
                }
                return Ok(ids.clone());
            }
            Prompt::Text(text) => tok.encode(text, false),
            Prompt::Infill(input) => {
                let fim = self.fim.as_ref().ok_or_else(|| {
                    Error::BadRequest(
                        "this model's vocabulary has no fill-in-the-middle tokens".into(),
                    )
                })?;
                let mut ids = Vec::new();
                for segment in fim.prompt(input) {
                    match segment {
                        Segment::Special(id) => ids.push(id),
                        Segment::Text(text) => ids.extend(tok.encode(&text, false)),
                    }
                }
                ids
            }
            Prompt::Chat(messages) => self.tokenize_chat(messages)?,
        };
        Ok(self.with_bos(ids))
    }

    /// Renders the template with placeholders for contents, so the template's text
    /// is tokenized with special tokens and each content without.
    fn tokenize_chat(&self, messages: &[Message]) -> Result<Vec<u32>> {
        let tok = &self.tokenizer;
        let marked: Vec<Message> = messages
            .iter()
            .enumerate()
            .map(|(idx, m)| {
                Message::new(
                    m.role.clone(),
                    format!("{CONTENT_OPEN}{idx}{CONTENT_CLOSE}"),
                )
            })
            .collect();
        let rendered = self.chat.render(&marked, true)?;
        let mut ids = Vec::new();
        let mut rest = rendered.as_str();
        let mut seen = 0;
        while let Some(open) = rest.find(CONTENT_OPEN) {
            ids.extend(tok.encode(&rest[..open], true));
            let after = &rest[open + CONTENT_OPEN.len_utf8()..];
            let close = after.find(CONTENT_CLOSE);
            let idx = close
                .and_then(|c| after[..c].parse::<usize>().ok())
                .filter(|&i| i < messages.len());
            match (close, idx) {
                (Some(close), Some(idx)) => {
                    ids.extend(tok.encode(&messages[idx].content, false));
                    seen += 1;
                    rest = &after[close + CONTENT_CLOSE.len_utf8()..];
                }
                _ => break,
            }
        }
        if seen == 0 && !messages.is_empty() {
            // The template transformed contents beyond recognition; render them as
            // they are. Special tokens inside contents are then parsed.
            return Ok(tok.encode(&self.chat.render(messages, true)?, true));
        }
        ids.extend(tok.encode(rest, true));
        Ok(ids)
    }

    /// Generates `opts.n` samples for `prompt`, calling `on_text(sample_idx, text)`
    /// with each piece of text as it is decided; returning `false` cancels.
    pub fn generate(
        &self,
        prompt: &Prompt,
        opts: &GenerateOptions,
        on_text: &mut dyn FnMut(usize, &str) -> bool,
    ) -> Result<Vec<Completion>> {
        let request = self.request(prompt, opts.clone())?;
        self.generate_tokens(&request.prompt, &request.stop_tokens, opts, on_text)
    }

    /// Tokenizes a prompt into a [`Request`]. The vocabulary's end-of-generation
    /// tokens always stop a sample; an infill prompt also stops at its format's
    /// end tokens.
    pub fn request(&self, prompt: &Prompt, options: GenerateOptions) -> Result<Request> {
        let stop_tokens: Vec<u32> = match (prompt, &self.fim) {
            (Prompt::Infill(_), Some(fim)) => fim.stop_tokens().to_vec(),
            _ => Vec::new(),
        };
        Ok(Request {
            prompt: self.tokenize(prompt)?,
            stop_tokens,
            options,
        })
    }

    /// [`Engine::generate`] for a tokenized prompt.
    pub fn generate_tokens(
        &self,
        prompt_ids: &[u32],
        stop_tokens: &[u32],
        opts: &GenerateOptions,
        on_text: &mut dyn FnMut(usize, &str) -> bool,
    ) -> Result<Vec<Completion>> {
        let request = Request {
            prompt: prompt_ids.to_vec(),
            stop_tokens: stop_tokens.to_vec(),
            options: opts.clone(),
        };
        let mut out = self.generate_batch(
            std::slice::from_ref(&request),
            &mut |_, sample_idx, text| on_text(sample_idx, text),
        )?;
        Ok(out.pop().unwrap_or_default())
    }

    /// Decodes several requests together in one [`Batch`]: their prompts are
    /// prefilled together and every running sample of every request advances in
    /// one batched step. `on_text(request_idx, sample_idx, text)` streams;
    /// returning `false` cancels that request. Returns each request's
    /// completions, in order.
    pub fn generate_batch(
        &self,
        requests: &[Request],
        on_text: &mut dyn FnMut(usize, usize, &str) -> bool,
    ) -> Result<Vec<Vec<Completion>>> {
        for request in requests {
            Batch::validate(self, request)?;
        }
        let mut batch = Batch::new(self, BatchOptions::default());
        for (request_idx, request) in requests.iter().enumerate() {
            batch.add(request_idx as u64, request.clone())?;
        }
        let mut out: Vec<Vec<Option<Completion>>> =
            requests.iter().map(|r| vec![None; r.options.n]).collect();
        while !batch.is_empty() {
            batch.step(&mut |event| match event {
                Event::Token {
                    id,
                    sample_idx,
                    text,
                    ..
                } => text.is_empty() || on_text(id as usize, sample_idx, &text),
                Event::Done {
                    id,
                    sample_idx,
                    tail,
                    completion,
                } => {
                    if !tail.is_empty() {
                        on_text(id as usize, sample_idx, &tail);
                    }
                    out[id as usize][sample_idx] = Some(completion);
                    true
                }
            })?;
        }
        Ok(out
            .into_iter()
            .map(|samples| samples.into_iter().flatten().collect())
            .collect())
    }
}

/// The `chat_template` string of a `tokenizer_config.json`.
fn template_from_config(text: &str) -> Option<String> {
    let json: serde_json::Value = serde_json::from_str(text).ok()?;
    json["chat_template"].as_str().map(str::to_string)
}

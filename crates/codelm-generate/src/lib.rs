//! Model-independent pieces of text generation: prompt formats (chat
//! templates and fill-in-the-middle), sampling, and streaming text out with
//! stop strings.
//!
//! The crate deliberately knows nothing about tensors or tokenizers: prompts
//! come out as text ([`ChatTemplate`]) or as special-token ids and text
//! ([`Segment`]), a step's logits go in as a plain `&mut [f32]`
//! ([`Sampler`]), and decoded token bytes go through [`Utf8Stream`] and
//! [`StopMatcher`]. The model-driven generation loop is built on top of
//! these.
//!
//! ```
//! use codelm_generate::{Sampler, SamplingParams, StopMatcher};
//!
//! let mut sampler = Sampler::new(SamplingParams::default());
//! let mut logits = vec![0.1, 0.7, 0.2];
//! assert_eq!(sampler.sample(&mut logits, &[]).unwrap(), 1);
//!
//! let mut stops = StopMatcher::new(&["\n\n".to_string()]);
//! assert_eq!(stops.push("return x\n").text, "return x");
//! assert!(stops.push("\nmore").is_stopped());
//! ```

#![deny(missing_docs)]

pub mod batch;
pub mod chat;
pub mod error;
pub mod fim;
pub mod generate;
pub mod request;
pub mod sampler;
pub mod stop;

pub use batch::{Batch, BatchOptions, Event};
pub use chat::{ChatTemplate, Message, CHATML_TEMPLATE};
pub use error::{Error, Result};
pub use fim::{FimFamily, FimFormat, FimInput, FimOrder, Segment};
pub use generate::Engine;
pub use request::{Completion, FinishReason, GenerateOptions, Prompt, Request};
pub use sampler::{log_softmax, logprobs, Logprobs, Sampler, SamplingParams, TokenLogprob};
pub use stop::{StopMatcher, StopStep, Utf8Stream};

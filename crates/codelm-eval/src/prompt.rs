//! Prompt formats: how a task becomes what the model sees, and where its
//! answer stops.
//!
//! * `base` continues text. HumanEval: the prompt itself (signature and
//!   docstring), cut at the Codex paper's stop sequences. MBPP: the
//!   original paper's 3-shot prompt with tasks 2, 3 and 4 as examples and
//!   `[BEGIN]`/`[DONE]` markers.
//! * `instruct` uses the model's chat template with EvalPlus's instruction
//!   (the harness Qwen2.5-Coder's own evaluation of its instruct models
//!   uses): the user asks for a self-contained script in a Markdown block,
//!   and the assistant turn is started with a fixed sentence and an opened
//!   ```` ```python ```` fence that the model continues. Servers that take
//!   only chat messages get the user turn alone.
//!
//! ```
//! use codelm_eval::prompt::{Mode, instruct_user_message};
//!
//! assert_eq!(Mode::from_name("instruct"), Some(Mode::Instruct));
//! assert!(instruct_user_message("def f():").ends_with("```\ndef f():\n```\n"));
//! ```

use crate::dataset::{Benchmark, Dataset, Task};

/// How the model is prompted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Plain text continuation.
    Base,
    /// A chat turn through the model's template.
    Instruct,
}

impl Mode {
    /// `base` or `instruct`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Base => "base",
            Mode::Instruct => "instruct",
        }
    }

    /// Parses `base` or `instruct`.
    pub fn from_name(name: &str) -> Option<Mode> {
        match name {
            "base" => Some(Mode::Base),
            "instruct" => Some(Mode::Instruct),
            _ => None,
        }
    }

    /// The default for a model name: instruct when it says so (all registry
    /// models are instruct models), base otherwise.
    pub fn default_for(model_name: &str) -> Mode {
        let name = model_name.to_ascii_lowercase();
        if name.contains("instruct") || name.contains("chat") {
            Mode::Instruct
        } else {
            Mode::Base
        }
    }
}

/// EvalPlus's instruction, followed by the problem in a Markdown block.
pub const INSTRUCTION_PREFIX: &str =
    "Please provide a self-contained Python script that solves the following problem in a markdown code block:";

/// EvalPlus's start of the assistant turn; the model continues the code.
pub const RESPONSE_PREFIX: &str = "Below is a Python script with a self-contained function that solves the problem and passes corresponding tests:\n```python\n";

/// HumanEval stop sequences in base mode (from the Codex paper, each
/// anchored at a line start).
pub const HUMANEVAL_STOPS: [&str; 5] = ["\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#"];

/// MBPP stop sequences in base mode.
pub const MBPP_STOPS: [&str; 2] = ["[DONE]", "\nYou are an expert Python programmer"];

/// What to send to a backend for one task.
#[derive(Debug, Clone, PartialEq)]
pub enum EvalPrompt {
    /// Text to continue.
    Text(String),
    /// A user turn; `response_prefix` starts the assistant's reply where the
    /// backend can do so.
    Chat {
        /// The user message.
        user: String,
        /// The start of the assistant turn.
        response_prefix: String,
    },
}

/// The user message of instruct mode for a problem statement.
pub fn instruct_user_message(problem: &str) -> String {
    format!("{INSTRUCTION_PREFIX}\n```\n{}\n```\n", problem.trim())
}

/// MBPP as EvalPlus phrases it: the statement and one test in a docstring.
fn mbpp_problem(task: &Task) -> String {
    let first = task.asserts.first().map(String::as_str).unwrap_or_default();
    format!("\"\"\"\n{}\n{first}\n\"\"\"\n", task.prompt.trim())
}

fn mbpp_shot(task: &Task) -> String {
    format!(
        "You are an expert Python programmer, and here is your task: {} Your code should pass these tests:\n\n{}\n",
        task.prompt.trim(),
        task.asserts.join("\n")
    )
}

/// The prompt for `task` in `mode`.
pub fn build(dataset: &Dataset, task: &Task, mode: Mode) -> EvalPrompt {
    match (mode, dataset.benchmark) {
        (Mode::Base, Benchmark::HumanEval) => EvalPrompt::Text(task.prompt.clone()),
        (Mode::Base, _) => {
            let mut text = String::new();
            for shot in &dataset.shots {
                text.push_str(&mbpp_shot(shot));
                text.push_str("[BEGIN]\n");
                text.push_str(shot.reference.as_deref().unwrap_or_default().trim_end());
                text.push_str("\n[DONE]\n");
            }
            text.push_str(&mbpp_shot(task));
            text.push_str("[BEGIN]\n");
            EvalPrompt::Text(text)
        }
        (Mode::Instruct, benchmark) => {
            let problem = if benchmark.is_mbpp() {
                mbpp_problem(task)
            } else {
                task.prompt.clone()
            };
            EvalPrompt::Chat {
                user: instruct_user_message(&problem),
                response_prefix: RESPONSE_PREFIX.to_string(),
            }
        }
    }
}

/// The specification the model is shown for `task` in `mode`, and nothing
/// more: what execution-based selection may read (`select.rs`). Base MBPP
/// prompts list the task's tests, as the original paper's format does.
pub fn spec_text(benchmark: Benchmark, task: &Task, mode: Mode) -> String {
    match (mode, benchmark.is_mbpp()) {
        (Mode::Base, true) => mbpp_shot(task),
        (Mode::Instruct, true) => mbpp_problem(task),
        (_, false) => task.prompt.clone(),
    }
}

/// Stop sequences for `benchmark` in `mode`.
pub fn stops(benchmark: Benchmark, mode: Mode) -> Vec<String> {
    let stops: &[&str] = match (mode, benchmark) {
        (Mode::Base, Benchmark::HumanEval) => &HUMANEVAL_STOPS,
        (Mode::Base, _) => &MBPP_STOPS,
        // Instruct stops depend on the backend (see `backend::INSTRUCT_STOPS`).
        (Mode::Instruct, _) => &[],
    };
    stops.iter().map(|stop| stop.to_string()).collect()
}

/// A one-paragraph description of the format, with placeholders, for the
/// report.
pub fn template(benchmark: Benchmark, mode: Mode) -> String {
    match (mode, benchmark) {
        (Mode::Base, Benchmark::HumanEval) => {
            "base: the task's prompt verbatim, continued; cut at \\ndef , \\nclass , \\nif __name__, \\nprint(, \\n#".to_string()
        }
        (Mode::Base, _) => format!(
            "base, MBPP 3-shot (tasks 2, 3, 4): per example \"You are an expert Python programmer, and here is your task: {{text}} Your code should pass these tests:\\n\\n{{tests}}\\n[BEGIN]\\n{{code}}\\n[DONE]\\n\", then the task up to \"[BEGIN]\\n\"; cut at {MBPP_STOPS:?}"
        ),
        (Mode::Instruct, _) => format!(
            "instruct (EvalPlus): chat template with user message \"{INSTRUCTION_PREFIX}\\n```\\n{{problem}}\\n```\\n\" and the assistant turn started with {RESPONSE_PREFIX:?}; generation stops at {:?}; code is taken from the fence and sanitized", crate::backend::INSTRUCT_STOPS
        ),
    }
}

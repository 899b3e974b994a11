//! Command-line flags and dispatch.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::generate;

/// Run, serve, evaluate and execute code models.
#[derive(Parser)]
#[command(name = "codelm", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Continue a prompt.
    Complete(CompleteArgs),
    /// Chat through the model's template (interactive without a message).
    Chat(ChatArgs),
    /// Fill in the middle between a prefix and a suffix.
    Infill(InfillArgs),
    /// Run a program in the sandbox and print its outcome.
    Exec(crate::exec::ExecArgs),
    /// Serve the model over HTTP (OpenAI-compatible API, llama.cpp /infill).
    Serve(crate::serve::ServeArgs),
    /// Evaluate a model by execution: HumanEval, MBPP, pass@k.
    Eval(crate::eval::EvalArgs),
    /// Curate code corpora for training: license, quality, dedup, PII, decontamination.
    Curate(crate::curate::CurateArgs),
    /// List or fetch registry models, or show which kernels run here.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Registry models and whether they are cached.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Fetch a model into the cache (verified by sha256).
    Pull {
        /// Registry name.
        name: String,
    },
    /// This CPU's features and the kernel each storage type runs with; with a
    /// model, also its weights' storage types.
    Info {
        /// Registry name, GGUF file or Hugging Face model directory.
        model: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `--isolation` of `exec` and `eval`: how far the sandbox confines the programs.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsolationArg {
    /// Every namespace, seccomp and limits.
    Full,
    /// Without a user namespace.
    NoUserns,
    /// None (trusted code only).
    None,
}

impl From<IsolationArg> for codelm_sandbox::Isolation {
    fn from(level: IsolationArg) -> Self {
        use codelm_sandbox::Isolation;
        match level {
            IsolationArg::Full => Isolation::Full,
            IsolationArg::NoUserns => Isolation::NoUserNs,
            IsolationArg::None => Isolation::None,
        }
    }
}

/// Which model to load and how.
#[derive(Args, Clone)]
pub struct ModelArgs {
    /// Registry name, GGUF file or Hugging Face model directory.
    #[arg(long, short, default_value = "qwen2.5-coder-0.5b-instruct")]
    pub model: String,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Context window in tokens (default: the model's).
    #[arg(long)]
    pub ctx: Option<usize>,
    /// Model cache directory (default: $CODELM_CACHE or ~/.cache/codelm).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
}

/// Flags shared by every generating command.
#[derive(Args, Clone)]
pub struct GenArgs {
    #[command(flatten)]
    pub load: ModelArgs,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Nucleus sampling threshold.
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// Keep only the k most likely tokens (0: off).
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// Drop tokens below this fraction of the best token's probability.
    #[arg(long, default_value_t = 0.0)]
    pub min_p: f32,
    /// Repetition penalty (1: off).
    #[arg(long, default_value_t = 1.0)]
    pub repeat_penalty: f32,
    /// New tokens at most.
    #[arg(long, default_value_t = 256)]
    pub max_tokens: usize,
    /// Random seed; the same seed gives the same output.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Samples to draw (decoded as one batch).
    #[arg(long, short, default_value_t = 1)]
    pub n: usize,
    /// Stop string (repeatable).
    #[arg(long)]
    pub stop: Vec<String>,
    /// Print one JSON object instead of streaming text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub verify: VerifyArgs,
}

/// `--verify`: choose among candidates by running them.
#[derive(Args, Clone)]
pub struct VerifyArgs {
    /// Draw --n candidates (8 unless given, at temperature 0.8 unless
    /// given), run each against the prompt's examples and tests the model
    /// writes, in the sandbox, and print the one the evidence supports.
    #[arg(long)]
    pub verify: bool,
    /// How to choose: codet, cluster, repair, codet+repair, cluster+repair.
    #[arg(long, default_value = "codet", value_parser = crate::verify::parse_strategy, requires = "verify")]
    pub select: codelm_verify::Strategy,
    /// The function the tests call (default: the last one the prompt defines).
    #[arg(long, requires = "verify")]
    pub entry: Option<String>,
    /// Language of the candidates: python or javascript.
    #[arg(long, default_value = "python", requires = "verify")]
    pub lang: String,
}

#[derive(Args)]
pub struct CompleteArgs {
    /// The prompt; `-` reads standard input.
    pub prompt: String,
    #[command(flatten)]
    pub gen: GenArgs,
}

#[derive(Args)]
pub struct ChatArgs {
    /// A single message; without it, an interactive session reads standard input.
    pub message: Option<String>,
    /// System prompt.
    #[arg(long)]
    pub system: Option<String>,
    #[command(flatten)]
    pub gen: GenArgs,
}

#[derive(Args)]
pub struct InfillArgs {
    /// Text before the cursor.
    #[arg(long, conflicts_with = "file")]
    pub prefix: Option<String>,
    /// Text after the cursor.
    #[arg(long, conflicts_with = "file")]
    pub suffix: Option<String>,
    /// Source file to infill at `--line`.
    #[arg(long, requires = "line")]
    pub file: Option<PathBuf>,
    /// 1-based line: the cursor sits at its start.
    #[arg(long)]
    pub line: Option<usize>,
    /// Suffix-prefix-middle order instead of prefix-suffix-middle.
    #[arg(long)]
    pub spm: bool,
    #[command(flatten)]
    pub gen: GenArgs,
}

/// Runs a parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Complete(args) => generate::complete(args),
        Command::Chat(args) => generate::chat(args),
        Command::Infill(args) => generate::infill(args),
        Command::Exec(args) => crate::exec::run(&args),
        Command::Serve(args) => crate::serve::run(args),
        Command::Eval(args) => crate::eval::run(args),
        Command::Curate(args) => crate::curate::run(args),
        Command::Models { command } => match command {
            ModelsCommand::List { json } => generate::models_list(json),
            ModelsCommand::Pull { name } => generate::models_pull(&name),
            ModelsCommand::Info { model, json } => generate::models_info(model.as_deref(), json),
        },
    }
}

//! Fill-in-the-middle prompts for each family and order, from fake
//! vocabularies.

use codelm_generate::{FimFamily, FimFormat, FimInput, FimOrder, Segment};

/// Token texts with their ids, as GGUF vocabularies spell them.
const QWEN: &[(&str, u32)] = &[
    ("<|endoftext|>", 151_643),
    ("<|im_end|>", 151_645),
    ("<|fim_prefix|>", 151_659),
    ("<|fim_middle|>", 151_660),
    ("<|fim_suffix|>", 151_661),
    ("<|fim_pad|>", 151_662),
    ("<|repo_name|>", 151_663),
    ("<|file_sep|>", 151_664),
];
const STARCODER: &[(&str, u32)] = &[
    ("<|endoftext|>", 0),
    ("<fim_prefix>", 1),
    ("<fim_middle>", 2),
    ("<fim_suffix>", 3),
    ("<fim_pad>", 4),
    ("<filename>", 5),
    ("<reponame>", 17),
    ("<file_sep>", 18),
];
const CODE_LLAMA: &[(&str, u32)] = &[
    ("</s>", 2),
    ("▁<PRE>", 32_007),
    ("▁<SUF>", 32_008),
    ("▁<MID>", 32_009),
    ("▁<EOT>", 32_010),
];
const CODE_LLAMA_PLAIN: &[(&str, u32)] = &[("<PRE>", 7), ("<SUF>", 8), ("<MID>", 9), ("<EOT>", 10)];
const DEEPSEEK: &[(&str, u32)] = &[
    ("<｜end▁of▁sentence｜>", 32_014),
    ("<｜fim▁hole｜>", 32_015),
    ("<｜fim▁begin｜>", 32_016),
    ("<｜fim▁end｜>", 32_017),
    ("<|EOT|>", 32_021),
];

fn detect(vocab: &[(&str, u32)]) -> Option<FimFormat> {
    let lookup = |text: &str| {
        vocab
            .iter()
            .find(|(token, _)| *token == text)
            .map(|(_, id)| *id)
    };
    FimFormat::detect(&lookup)
}

/// Detects the format of `vocab`, checks its family, and checks the prompt
/// built for `input`.
fn check(vocab: &[(&str, u32)], family: FimFamily, input: &FimInput, expected: &[Segment]) {
    let format = detect(vocab).expect("a FIM format");
    assert_eq!(format.family(), family);
    assert_eq!(format.prompt(input), expected);
}

fn special(id: u32) -> Segment {
    Segment::Special(id)
}

fn text(text: &str) -> Segment {
    Segment::Text(text.to_string())
}

fn spm(prefix: &str, suffix: &str) -> FimInput {
    FimInput {
        order: FimOrder::Spm,
        ..FimInput::new(prefix, suffix)
    }
}

#[test]
fn qwen_psm_and_spm() {
    let psm = [
        special(151_659),
        text("def f(x):\n    "),
        special(151_661),
        text("\n    return y\n"),
        special(151_660),
    ];
    check(
        QWEN,
        FimFamily::Qwen,
        &FimInput::new("def f(x):\n    ", "\n    return y\n"),
        &psm,
    );
    let spm_segments = [
        special(151_661),
        text("\n    return y\n"),
        special(151_659),
        text("def f(x):\n    "),
        special(151_660),
    ];
    check(
        QWEN,
        FimFamily::Qwen,
        &spm("def f(x):\n    ", "\n    return y\n"),
        &spm_segments,
    );
}

#[test]
fn qwen_repo_level_context() {
    let input = FimInput {
        repo_name: Some("library-system".to_string()),
        file_path: Some("library/main.py".to_string()),
        extra_files: vec![
            (
                "library/book.py".to_string(),
                "class Book:\n    pass\n".to_string(),
            ),
            ("library/util.py".to_string(), "X = 1".to_string()),
        ],
        ..FimInput::new("from book import ", "\n")
    };
    check(
        QWEN,
        FimFamily::Qwen,
        &input,
        &[
            special(151_663),
            text("library-system\n"),
            special(151_664),
            text("library/book.py\nclass Book:\n    pass\n"),
            special(151_664),
            text("library/util.py\nX = 1\n"),
            special(151_664),
            text("library/main.py\n"),
            special(151_659),
            text("from book import "),
            special(151_661),
            text("\n"),
            special(151_660),
        ],
    );
}

#[test]
fn qwen_stop_tokens() {
    let format = detect(QWEN).unwrap();
    assert_eq!(
        format.stop_tokens(),
        [151_643, 151_662, 151_664, 151_663, 151_645]
    );
}

#[test]
fn markers_in_user_code_stay_text() {
    let prefix = "s = '<|fim_middle|><|file_sep|>'\n";
    check(
        QWEN,
        FimFamily::Qwen,
        &FimInput::new(prefix, ""),
        &[
            special(151_659),
            text(prefix),
            special(151_661),
            special(151_660),
        ],
    );
}

#[test]
fn starcoder_psm_spm_and_repo_context() {
    check(
        STARCODER,
        FimFamily::StarCoder,
        &FimInput::new("a", "b"),
        &[special(1), text("a"), special(3), text("b"), special(2)],
    );
    check(
        STARCODER,
        FimFamily::StarCoder,
        &spm("a", "b"),
        &[special(3), text("b"), special(1), text("a"), special(2)],
    );
    let input = FimInput {
        repo_name: Some("r".to_string()),
        extra_files: vec![("x.py".to_string(), "pass\n".to_string())],
        ..spm("a", "b")
    };
    check(
        STARCODER,
        FimFamily::StarCoder,
        &input,
        &[
            special(17),
            text("r\n"),
            special(18),
            text("x.py\npass\n"),
            special(3),
            text("b"),
            special(1),
            text("a"),
            special(2),
        ],
    );
    assert_eq!(detect(STARCODER).unwrap().stop_tokens(), [0, 4, 18, 17]);
}

#[test]
fn code_llama_with_and_without_sentencepiece_marker() {
    check(
        CODE_LLAMA,
        FimFamily::CodeLlama,
        &FimInput::new("a", "b"),
        &[
            special(32_007),
            text("a"),
            special(32_008),
            text("b"),
            special(32_009),
        ],
    );
    check(
        CODE_LLAMA,
        FimFamily::CodeLlama,
        &spm("a", "b"),
        &[
            special(32_008),
            text("b"),
            special(32_007),
            text("a"),
            special(32_009),
        ],
    );
    assert_eq!(detect(CODE_LLAMA).unwrap().stop_tokens(), [32_010, 2]);
    check(
        CODE_LLAMA_PLAIN,
        FimFamily::CodeLlama,
        &FimInput::new("a", "b"),
        &[special(7), text("a"), special(8), text("b"), special(9)],
    );
    assert_eq!(detect(CODE_LLAMA_PLAIN).unwrap().stop_tokens(), [10]);
}

#[test]
fn deepseek_psm_spm_and_extra_files_as_text() {
    check(
        DEEPSEEK,
        FimFamily::DeepSeek,
        &FimInput::new("a", "b"),
        &[
            special(32_016),
            text("a"),
            special(32_015),
            text("b"),
            special(32_017),
        ],
    );
    check(
        DEEPSEEK,
        FimFamily::DeepSeek,
        &spm("a", "b"),
        &[
            special(32_015),
            text("b"),
            special(32_016),
            text("a"),
            special(32_017),
        ],
    );
    let input = FimInput {
        repo_name: Some("ignored".to_string()),
        extra_files: vec![("utils.py".to_string(), "def g(): pass".to_string())],
        ..FimInput::new("a", "b")
    };
    check(
        DEEPSEEK,
        FimFamily::DeepSeek,
        &input,
        &[
            special(32_016),
            text("--- utils.py ---\ndef g(): pass\na"),
            special(32_015),
            text("b"),
            special(32_017),
        ],
    );
    assert_eq!(detect(DEEPSEEK).unwrap().stop_tokens(), [32_021, 32_014]);
}

#[test]
fn qwen_markers_win_over_starcoder_markers() {
    let both: Vec<(&str, u32)> = STARCODER.iter().chain(QWEN).copied().collect();
    assert_eq!(detect(&both).unwrap().family(), FimFamily::Qwen);
}

#[test]
fn vocab_without_markers_has_no_format() {
    assert_eq!(detect(&[("<|endoftext|>", 0), ("<PRE>", 1)]), None);
    assert_eq!(detect(&[]), None);
}

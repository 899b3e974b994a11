//! Chat templates, compared with what Python Jinja2 renders.

use codelm_generate::{ChatTemplate, Error, Message};

const QWEN_TEMPLATE: &str = include_str!("fixtures/qwen2.5-coder-chat-template.jinja");
const QWEN_EXPECTED: &str = include_str!("fixtures/qwen2.5-coder-chat-expected.json");

fn check(
    template: &ChatTemplate,
    messages: &[Message],
    add_generation_prompt: bool,
    expected: &str,
) {
    let rendered = template.render(messages, add_generation_prompt).unwrap();
    assert_eq!(rendered, expected);
}

fn qwen() -> ChatTemplate {
    ChatTemplate::new(QWEN_TEMPLATE, "", "<|im_end|>").unwrap()
}

fn messages(pairs: &[(&str, &str)]) -> Vec<Message> {
    pairs
        .iter()
        .map(|(role, content)| Message::new(*role, *content))
        .collect()
}

#[test]
fn qwen_system_and_user_with_generation_prompt() {
    check(
        &qwen(),
        &messages(&[("system", "You are a careful Rust programmer."), ("user", "Write a function that reverses a string.")]),
        true,
        "<|im_start|>system\nYou are a careful Rust programmer.<|im_end|>\n<|im_start|>user\nWrite a function that reverses a string.<|im_end|>\n<|im_start|>assistant\n",
    );
}

#[test]
fn qwen_without_system_inserts_default_system_prompt() {
    check(
        &qwen(),
        &messages(&[("user", "def fib(n):")]),
        true,
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\ndef fib(n):<|im_end|>\n<|im_start|>assistant\n",
    );
}

#[test]
fn qwen_matches_python_jinja2_on_every_fixture_case() {
    let cases: serde_json::Value = serde_json::from_str(QWEN_EXPECTED).unwrap();
    let cases = cases.as_array().unwrap();
    assert!(cases.len() >= 4);
    let template = qwen();
    for case in cases {
        let conversation: Vec<Message> = case["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| Message::new(m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
            .collect();
        check(
            &template,
            &conversation,
            case["add_generation_prompt"].as_bool().unwrap(),
            case["expected"].as_str().unwrap(),
        );
    }
}

#[test]
fn chatml_fallback() {
    check(
        &ChatTemplate::chatml().unwrap(),
        &messages(&[("system", "S"), ("user", "U"), ("assistant", "A")]),
        true,
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n<|im_start|>assistant\n",
    );
}

#[test]
fn python_string_methods_loop_flags_and_special_tokens() {
    // Shaped like the Llama and Mistral templates: bos_token, strip(),
    // startswith(), loop.first / loop.last, tojson and a trimmed block.
    let source = "{{ bos_token }}{% for message in messages %}\n\
        {% if loop.first and message.content.startswith('#') %}[H]{% endif %}\
        {{ message.role.upper() }}: {{ message.content.strip() }}\
        {% if not loop.last %} | {% else %}{{ eos_token }}{% endif %}\n\
        {% endfor %}{{ messages[0].content | tojson }}";
    let template = ChatTemplate::new(source, "<s>", "</s>").unwrap();
    check(
        &template,
        &messages(&[("user", "# title  "), ("assistant", "  body\n")]),
        false,
        "<s>[H]USER: # title | ASSISTANT: body</s>\"# title  \"",
    );
}

#[test]
fn raise_exception_is_a_render_error_with_its_message() {
    let source = "{% if messages[0].role != 'user' %}{{ raise_exception('Conversation must start with user') }}{% endif %}ok";
    let template = ChatTemplate::new(source, "", "").unwrap();
    check(&template, &messages(&[("user", "hi")]), false, "ok");
    let error = template
        .render(&messages(&[("assistant", "hi")]), false)
        .unwrap_err();
    assert!(matches!(error, Error::TemplateRender(_)));
    let source_message = std::error::Error::source(&error).unwrap().to_string();
    assert!(
        source_message.contains("Conversation must start with user"),
        "{source_message}"
    );
}

#[test]
fn strftime_now_and_undefined_tools_render() {
    let source = "{% if tools %}tools{% endif %}{{ strftime_now('%Y') | length }}";
    let template = ChatTemplate::new(source, "", "").unwrap();
    check(&template, &[], true, "4");
}

#[test]
fn invalid_template_is_a_compile_error() {
    assert!(matches!(
        ChatTemplate::new("{% for %}", "", ""),
        Err(Error::TemplateCompile(_))
    ));
}

#[test]
fn tojson_matches_hugging_face_python_output() {
    // Expected output from Python Jinja2 with transformers' tojson filter,
    // json.dumps(x, ensure_ascii=False, indent=indent).
    let source = "{{ messages | tojson }}|{{ messages[0].content | tojson }}|\
        {{ {'b': [1, 2.5, true, none], 'a': {}} | tojson(indent=2) }}|{{ [] | tojson(indent=2) }}";
    let template = ChatTemplate::new(source, "", "").unwrap();
    let expected = r#"[{"role": "user", "content": "if a < b && c > 'd':\n\t\"ok\" é\u0001"}]|"if a < b && c > 'd':\n\t\"ok\" é\u0001"|{
  "b": [
    1,
    2.5,
    true,
    null
  ],
  "a": {}
}|[]"#;
    check(
        &template,
        &messages(&[("user", "if a < b && c > 'd':\n\t\"ok\" é\u{1}")]),
        false,
        expected,
    );
}

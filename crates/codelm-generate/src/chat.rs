//! Chat prompts from Hugging Face chat templates (Jinja), rendered with
//! minijinja.
//!
//! A model's `tokenizer.chat_template` is rendered the way Hugging Face
//! transformers renders it: `trim_blocks` and `lstrip_blocks` on, loop
//! controls, and the globals templates rely on (`messages`, `tools` as none,
//! `add_generation_prompt`, `bos_token`, `eos_token`, `raise_exception`,
//! `strftime_now`). Python string methods such as `.strip()` and
//! `.startswith()` come from minijinja-contrib's pycompat callback, and
//! `tojson` is replaced by Hugging Face's version (Python's `json.dumps`
//! without HTML escaping and with `", "` separators), because minijinja's
//! own escapes `<` as `\u003c`, which would change code inside prompts.
//! Maps keep insertion order (minijinja's `preserve_order`), as Python's do.
//!
//! The design decision a newcomer may question: the output is plain text, and
//! the special-token markers in it (`<|im_start|>`) are turned into special
//! tokens by the tokenizer; user content is not escaped here. Callers that
//! must keep users from injecting markers strip them from message content
//! before rendering.
//!
//! ```
//! use codelm_generate::{ChatTemplate, Message};
//!
//! let template = ChatTemplate::chatml().unwrap();
//! let prompt = template
//!     .render(&[Message::new("user", "Hi")], true)
//!     .unwrap();
//! assert_eq!(prompt, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
//! ```

use minijinja::value::{Kwargs, Value, ValueKind};
use minijinja::{context, Environment, ErrorKind};

use crate::error::{Error, Result};

/// The ChatML template used for models whose files carry no chat template.
pub const CHATML_TEMPLATE: &str = "{%- for message in messages %}\
{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}\
{%- endfor %}\
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

const TEMPLATE_NAME: &str = "chat";

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// The message text.
    pub content: String,
}

impl Message {
    /// A message with the given role and content.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// A compiled chat template with the special tokens it may refer to.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

impl ChatTemplate {
    /// Compiles `template_source`; `bos_token` and `eos_token` are the texts
    /// of the model's special tokens, exposed to the template under those
    /// names.
    ///
    /// # Errors
    ///
    /// [`Error::TemplateCompile`] when the source is not a valid template.
    pub fn new(template_source: &str, bos_token: &str, eos_token: &str) -> Result<Self> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", tojson);
        env.add_template_owned(TEMPLATE_NAME, template_source.to_string())
            .map_err(Error::TemplateCompile)?;
        Ok(Self {
            env,
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
        })
    }

    /// The fallback [`CHATML_TEMPLATE`], for models without a template.
    ///
    /// # Errors
    ///
    /// None in practice: the built-in template is valid (a unit test checks).
    pub fn chatml() -> Result<Self> {
        Self::new(CHATML_TEMPLATE, "", "<|im_end|>")
    }

    /// Renders `messages` into a prompt; with `add_generation_prompt` the
    /// prompt ends where the assistant's reply should begin.
    ///
    /// # Errors
    ///
    /// [`Error::TemplateRender`] when rendering fails, including when the
    /// template calls `raise_exception` (for instance on an unsupported role
    /// order); the template's message is in the source error.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let messages: Vec<Value> = messages
            .iter()
            .map(|message| context! { role => message.role, content => message.content })
            .collect();
        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(Error::TemplateRender)?;
        template
            .render(context! {
                messages,
                tools => Value::from(()),
                add_generation_prompt,
                bos_token => self.bos_token,
                eos_token => self.eos_token,
            })
            .map_err(Error::TemplateRender)
    }
}

/// `raise_exception(message)`: Hugging Face's way for a template to refuse
/// a conversation.
fn raise_exception(message: String) -> std::result::Result<Value, minijinja::Error> {
    Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
}

/// `tojson(indent=None)` as Hugging Face defines it: Python's
/// `json.dumps(value, ensure_ascii=False, indent=indent)`.
fn tojson(value: &Value, kwargs: Kwargs) -> std::result::Result<String, minijinja::Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    kwargs.assert_all_used()?;
    let mut out = String::new();
    write_json(&mut out, value, indent, 0)?;
    Ok(out)
}

fn write_json(
    out: &mut String,
    value: &Value,
    indent: Option<usize>,
    depth: usize,
) -> std::result::Result<(), minijinja::Error> {
    let items: Vec<(Option<Value>, Value)> = match value.kind() {
        ValueKind::Undefined | ValueKind::None => {
            out.push_str("null");
            return Ok(());
        }
        ValueKind::Bool => {
            out.push_str(if value.is_true() { "true" } else { "false" });
            return Ok(());
        }
        ValueKind::Number => {
            out.push_str(&value.to_string());
            return Ok(());
        }
        ValueKind::String => {
            write_json_string(out, value.as_str().unwrap_or_default());
            return Ok(());
        }
        ValueKind::Map => value
            .try_iter()?
            .map(|key| Ok((Some(key.clone()), value.get_item(&key)?)))
            .collect::<std::result::Result<_, minijinja::Error>>()?,
        ValueKind::Seq | ValueKind::Iterable => {
            value.try_iter()?.map(|item| (None, item)).collect()
        }
        _ => {
            return Err(minijinja::Error::new(
                ErrorKind::InvalidOperation,
                format!("tojson cannot serialize a {} value", value.kind()),
            ));
        }
    };
    let is_map = value.kind() == ValueKind::Map;
    let (open, close) = if is_map { ('{', '}') } else { ('[', ']') };
    out.push(open);
    for (idx, (key, item)) in items.iter().enumerate() {
        match indent {
            // Python's separators are "," and newlines once `indent` is set.
            Some(width) => {
                if idx > 0 {
                    out.push(',');
                }
                out.push('\n');
                out.push_str(&" ".repeat(width * (depth + 1)));
            }
            None if idx > 0 => out.push_str(", "),
            None => {}
        }
        if let Some(key) = key {
            write_json_string(out, &key.to_string());
            out.push_str(": ");
        }
        write_json(out, item, indent, depth + 1)?;
    }
    if let (Some(width), false) = (indent, items.is_empty()) {
        out.push('\n');
        out.push_str(&" ".repeat(width * depth));
    }
    out.push(close);
    Ok(())
}

/// A JSON string as Python writes it with `ensure_ascii=False`.
fn write_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `strftime_now(format)`: the current UTC time formatted with the common
/// strftime codes (`%Y %y %m %d %e %H %M %S %b %B %a %A %j %%`); other codes
/// are copied through unchanged.
fn strftime_now(format: String) -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    strftime(&format, seconds)
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// Formats `unix_seconds` (UTC) with a subset of C's strftime.
fn strftime(format: &str, unix_seconds: u64) -> String {
    let days = unix_seconds / 86_400;
    let second_of_day = unix_seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday (index 3 from Monday).
    let weekday_idx = ((days + 3) % 7) as usize;
    let month_idx = (month - 1) as usize;
    let day_of_year = days - days_from_civil(year, 1, 1) + 1;
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&year.to_string()),
            Some('y') => out.push_str(&format!("{:02}", year % 100)),
            Some('m') => out.push_str(&format!("{month:02}")),
            Some('d') => out.push_str(&format!("{day:02}")),
            Some('e') => out.push_str(&format!("{day:2}")),
            Some('H') => out.push_str(&format!("{:02}", second_of_day / 3600)),
            Some('M') => out.push_str(&format!("{:02}", second_of_day / 60 % 60)),
            Some('S') => out.push_str(&format!("{:02}", second_of_day % 60)),
            Some('j') => out.push_str(&format!("{day_of_year:03}")),
            Some('B') => out.push_str(MONTHS[month_idx]),
            Some('b') => out.push_str(&MONTHS[month_idx][..3]),
            Some('A') => out.push_str(WEEKDAYS[weekday_idx]),
            Some('a') => out.push_str(&WEEKDAYS[weekday_idx][..3]),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// Howard Hinnant's `civil_from_days`, for days since 1970-01-01.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Howard Hinnant's `days_from_civil`, for dates from 1970 on.
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let year_of_era = year % 400;
    let shifted_month = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_template_can_be_shared_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<ChatTemplate>();
    }

    #[test]
    fn chatml_compiles_and_renders_every_role() {
        let template = ChatTemplate::chatml().unwrap();
        let prompt = template
            .render(
                &[Message::new("system", "S"), Message::new("user", "U")],
                false,
            )
            .unwrap();
        assert_eq!(
            prompt,
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n"
        );
    }

    #[test]
    fn strftime_formats_known_instants() {
        // 2024-02-29T13:05:09Z, a Thursday, day 60 of a leap year.
        let instant = 1_709_211_909;
        assert_eq!(
            strftime("%d %b %Y %H:%M:%S %a %j %%", instant),
            "29 Feb 2024 13:05:09 Thu 060 %"
        );
        assert_eq!(strftime("%B %e, %y %Q", 0), "January  1, 70 %Q");
        assert_eq!(strftime("%A", 0), "Thursday");
    }

    #[test]
    fn civil_round_trips() {
        for days in [0, 59, 365, 10_956, 19_782, 40_000] {
            let (year, month, day) = civil_from_days(days);
            assert_eq!(days_from_civil(year, month, day), days);
        }
    }
}

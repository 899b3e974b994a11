//! Test cases: the specification's own examples, and tests the model writes.
//!
//! These are the only evidence a selector sees. [`examples`] reads them off
//! the text the model was given (doctest `>>>` lines, `f(x) ➞ y`, `f(x) == y`,
//! `assert f(x) == y`, ...); [`tests_ask`] asks the model for more, and
//! [`model_cases`] parses its replies. A benchmark's graded tests never pass
//! through here: the caller hands over a [`Spec`] (the prompt text and the
//! entry point), nothing else.
//!
//! ```
//! use codelm_verify::{examples, Check, Lang, Spec};
//!
//! let spec = Spec::new(Lang::Python, "def inc(x):\n    \"\"\"\n    >>> inc(1)\n    2\n    inc(5) ➞ 6\n    \"\"\"\n", "inc");
//! let cases = examples(&spec);
//! assert_eq!(cases[0].check, Check::Equals { call: "inc(1)".into(), expected: "2".into() });
//! assert_eq!(cases[1].check, Check::Equals { call: "inc(5)".into(), expected: "6".into() });
//! ```

use serde::Serialize;

use crate::lang::{split_top_level, Lang};

/// What a caller knows about a task: the text the model was given and the
/// function to test. Nothing else reaches a selector.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// The language of the candidates.
    pub lang: Lang,
    /// The specification as the model saw it (signature and docstring, or
    /// the user's request).
    pub text: String,
    /// The function the tests call.
    pub entry_point: String,
}

impl Spec {
    /// A specification.
    pub fn new(lang: Lang, text: impl Into<String>, entry_point: impl Into<String>) -> Spec {
        Spec {
            lang,
            text: text.into(),
            entry_point: entry_point.into(),
        }
    }
}

/// One test of the entry point.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Check {
    /// `call` must equal `expected`.
    Equals {
        /// An expression that calls the entry point.
        call: String,
        /// The expected value, as an expression.
        expected: String,
    },
    /// `condition` (which calls the entry point) must be true.
    Holds {
        /// A boolean expression.
        condition: String,
    },
    /// An input without an expected output: only its result is recorded,
    /// for clustering candidates by behaviour.
    Runs {
        /// An expression that calls the entry point.
        call: String,
    },
}

impl Check {
    /// Whether the check has a verdict (equality or condition), not only an output.
    pub fn is_test(&self) -> bool {
        !matches!(self, Check::Runs { .. })
    }
}

/// Where a case came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// An example in the specification: the user's own statement of
    /// behaviour, trusted as a filter.
    Example,
    /// Written by the model: evidence only by agreement.
    Model,
}

/// A check and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Case {
    /// Where it came from.
    pub origin: Origin,
    /// What it checks.
    #[serde(flatten)]
    pub check: Check,
}

/// Separators between a call and its expected value in prose examples.
const SEPARATORS: [&str; 9] = [
    "➞",
    "==>",
    "=>",
    "->",
    "==",
    "should return",
    "returns",
    "return",
    "→",
];

/// The examples in a specification's text, in order, without repeats.
pub fn examples(spec: &Spec) -> Vec<Case> {
    let lang = spec.lang;
    let entry = spec.entry_point.as_str();
    let lines: Vec<&str> = spec.text.lines().map(strip_comment).collect();
    let mut checks: Vec<Check> = Vec::new();
    let mut idx = 0;
    while idx < lines.len() {
        let line = lines[idx];
        idx += 1;
        if let Some(call) = line.strip_prefix(">>>").map(str::trim) {
            if let Some(check) = prose_example(lang, call, entry) {
                // `>>> f(x) == y` on one line.
                checks.push(check);
                continue;
            }
            if !call.contains(&format!("{entry}(")) || !lang.is_expression(call) {
                continue;
            }
            // The expected output is the next line, unless it is another
            // prompt, a blank line or the docstring's end.
            let expected = lines.get(idx).map(|next| next.trim()).unwrap_or_default();
            let is_output = !expected.is_empty()
                && !expected.starts_with(">>>")
                && !expected.starts_with("\"\"\"")
                && !expected.starts_with("'''");
            if is_output && lang.is_expression(expected) {
                idx += 1;
                checks.push(Check::Equals {
                    call: call.to_string(),
                    expected: expected.to_string(),
                });
            } else if !is_output {
                checks.push(Check::Runs {
                    call: call.to_string(),
                });
            }
            continue;
        }
        let parsed = lang.parse_checks(line, entry);
        if let [check @ (Check::Equals { .. } | Check::Holds { .. })] = parsed.as_slice() {
            checks.push(check.clone());
            continue;
        }
        if let Some(check) =
            prose_example(lang, line, entry).or_else(|| binding_example(lang, line, entry))
        {
            checks.push(check);
        }
    }
    let mut cases: Vec<Case> = Vec::new();
    for check in checks {
        let case = Case {
            origin: Origin::Example,
            check,
        };
        if !cases.contains(&case) {
            cases.push(case);
        }
    }
    cases
}

/// `f(x) ➞ y` and its variants: a balanced call of the entry point, a
/// separator, then an expression (trailing prose punctuation dropped).
fn prose_example(lang: Lang, line: &str, entry: &str) -> Option<Check> {
    let needle = format!("{entry}(");
    line.match_indices(&needle)
        .find_map(|(start, _)| prose_example_at(lang, line, entry, start))
}

fn prose_example_at(lang: Lang, line: &str, entry: &str, start: usize) -> Option<Check> {
    let after_name = start + entry.len();
    let close = matching_paren(line, after_name)?;
    let call = &line[start..=close];
    let rest = line[close + 1..].trim_start();
    let rest = rest.strip_prefix("#").map_or(rest, str::trim_start);
    let separator = SEPARATORS.iter().find(|sep| rest.starts_with(**sep))?;
    let expected = rest[separator.len()..]
        .trim()
        .trim_end_matches([',', ';'])
        .trim_end_matches(". ")
        .trim();
    let expected = expected
        .strip_suffix('.')
        .filter(|e| !e.ends_with(char::is_numeric))
        .unwrap_or(expected);
    let expected = split_top_level(expected, " (")
        .first()
        .copied()
        .unwrap_or(expected)
        .trim();
    let arguments = &call[entry.len()..];
    (lang.is_expression(call)
        && lang.is_expression(expected)
        && is_literal(lang, arguments)
        && is_literal(lang, expected))
    .then(|| Check::Equals {
        call: call.to_string(),
        expected: expected.to_string(),
    })
}

/// Whether `text` names nothing outside string literals but the language's
/// constants: prose examples such as `f(n) -> f(n-1) + 1` or `f(abc)` are
/// definitions or shorthand, not calls that can be run.
fn is_literal(lang: Lang, text: &str) -> bool {
    let constants: &[&str] = match lang {
        Lang::Python => &["True", "False", "None"],
        Lang::JavaScript => &["true", "false", "null", "undefined", "NaN", "Infinity"],
    };
    let mut word = String::new();
    let mut ok = true;
    let mut quote: Option<char> = None;
    let mut previous = ' ';
    for c in text.chars().chain([' ']) {
        if let Some(q) = quote {
            if c == q && previous != '\\' {
                quote = None;
            }
        } else if c.is_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            let is_name = word.starts_with(|w: char| w.is_alphabetic() || w == '_');
            ok &= !is_name || constants.contains(&word.as_str()) || is_number_suffix(&word);
            word.clear();
            if matches!(c, '\'' | '"') {
                quote = Some(c);
            }
        }
        previous = c;
    }
    ok
}

/// `e10` of `1e10`, `j` of `2j` and the like never stand alone.
fn is_number_suffix(word: &str) -> bool {
    word == "j"
        || (word.starts_with('e')
            && word[1..].chars().all(|c| c.is_ascii_digit())
            && word.len() > 1)
}

/// `For lst = [1, 2] the output should be 3`: one argument by name.
fn binding_example(lang: Lang, line: &str, entry: &str) -> Option<Check> {
    let lower = line.to_ascii_lowercase();
    let rest = lower.strip_prefix("for ").map(|_| &line[4..])?;
    let (_, rest) = rest.split_once(" = ")?;
    let at = rest.find(" the output should be ")?;
    let argument = rest[..at].trim().trim_end_matches(',').trim();
    let expected = rest[at + " the output should be ".len()..]
        .trim()
        .trim_end_matches(['.', ','])
        .trim();
    let call = format!("{entry}({argument})");
    (lang.is_expression(&call)
        && lang.is_expression(expected)
        && is_literal(lang, argument)
        && is_literal(lang, expected))
    .then(|| Check::Equals {
        call,
        expected: expected.to_string(),
    })
}

/// The byte index of the `)` that closes the `(` at `open`.
fn matching_paren(text: &str, open: usize) -> Option<usize> {
    let mut depth = 0i64;
    let mut quote: Option<char> = None;
    for (at, c) in text[open..].char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '\'' | '"' => quote = Some(c),
                '(' | '[' | '{' => depth += 1,
                ')' | ']' | '}' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(open + at);
                    }
                }
                _ => {}
            },
        }
    }
    None
}

fn strip_comment(line: &str) -> &str {
    let line = line.trim();
    for prefix in ["///", "//", "#", "*"] {
        if let Some(rest) = line.strip_prefix(prefix) {
            if prefix != "*" || !rest.starts_with('/') {
                return rest.trim();
            }
        }
    }
    line
}

/// The user turn that asks the model for tests of the entry point, and the
/// start of its reply.
pub fn tests_ask(spec: &Spec, n_tests: usize) -> (String, String) {
    let lang = spec.lang;
    let user = format!(
        "```{fence}\n{text}\n```\nWrite {n_tests} different test cases for the function `{entry}` above, as {name} assertions, one per line, each of the form `{form}`. Cover ordinary inputs and edge cases. Write only the assertions.",
        fence = lang.fence(),
        text = spec.text.trim_end(),
        entry = spec.entry_point,
        name = lang.name(),
        form = lang.test_form(&spec.entry_point),
    );
    let start = format!(
        "```{}\n{}",
        lang.fence(),
        lang.test_start(&spec.entry_point)
    );
    (user, start)
}

/// The cases in the model's test replies, without repeats of each other or
/// of the examples, at most `max_cases`.
pub fn model_cases(spec: &Spec, replies: &[String], known: &[Case], max_cases: usize) -> Vec<Case> {
    let mut cases: Vec<Case> = Vec::new();
    for reply in replies {
        for check in spec.lang.parse_checks(reply, &spec.entry_point) {
            let is_known = known.iter().chain(&cases).any(|case| case.check == check);
            if !is_known && cases.len() < max_cases {
                cases.push(Case {
                    origin: Origin::Model,
                    check,
                });
            }
        }
    }
    cases
}

#[cfg(test)]
mod tests {
    use super::*;

    fn equals(call: &str, expected: &str) -> Check {
        Check::Equals {
            call: call.into(),
            expected: expected.into(),
        }
    }

    #[test]
    fn humaneval_example_styles() {
        let text = r#"def f(lst, k=0):
    """ Examples:
    >>> f([1, 2])
    [2, 1]
    >>> f([])
    >>> f('a b')
    'b a'
    f([3]) ➞ [3]
    f([4, 5]) should return [5, 4].
    For f([6]) == [6]
    f([7]) => [7] (since it is one item)
    f([8]) returns True if the list is sorted
    Write `f(lst)` so that f([13]) == [13]
    f(n) -> f(n - 1) + 1
    f("a b") ➞ true
    >>> f([10]) == [10]
    f([11]) ==> [11]
    For lst = [12] the output should be [12]
    assert f([9]) == [9]
    """
"#;
        let cases = examples(&Spec::new(Lang::Python, text, "f"));
        let checks: Vec<Check> = cases.into_iter().map(|case| case.check).collect();
        assert_eq!(
            checks,
            vec![
                equals("f([1, 2])", "[2, 1]"),
                Check::Runs {
                    call: "f([])".into()
                },
                equals("f('a b')", "'b a'"),
                equals("f([3])", "[3]"),
                equals("f([4, 5])", "[5, 4]"),
                equals("f([6])", "[6]"),
                equals("f([7])", "[7]"),
                equals("f([13])", "[13]"),
                equals("f([10])", "[10]"),
                equals("f([11])", "[11]"),
                equals("f([12])", "[12]"),
                equals("f([9])", "[9]"),
            ]
        );
    }

    #[test]
    fn javascript_comment_examples() {
        let text = "// Adds.\n// >>> add(2, 3)\n// 5\nfunction add(a, b) {";
        let cases = examples(&Spec::new(Lang::JavaScript, text, "add"));
        assert_eq!(cases[0].check, equals("add(2, 3)", "5"));
    }

    #[test]
    fn model_cases_skip_known_and_cap() {
        let spec = Spec::new(Lang::Python, "def f(x):", "f");
        let known = vec![Case {
            origin: Origin::Example,
            check: equals("f(1)", "2"),
        }];
        let reply = "```python\nassert f(1) == 2\nassert f(2) == 3\nassert f(2) == 3\nassert f(3) == 4\n```".to_string();
        let cases = model_cases(&spec, &[reply], &known, 1);
        assert_eq!(cases.len(), 1);
        assert_eq!(cases[0].check, equals("f(2)", "3"));
        assert_eq!(cases[0].origin, Origin::Model);
    }
}

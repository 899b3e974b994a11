//! Languages as data: how a language's tests are written, parsed and run.
//!
//! The mechanism is the same for every language; what differs is here: the
//! sandbox runner ([`codelm_sandbox::Language`]), how the model is asked to
//! write a test, how a line of test code becomes a [`Check`], and the
//! harness program that loads a candidate and runs the checks one by one.
//! Adding a language is a variant of [`Lang`] and an arm in each `match`.
//!
//! ```
//! use codelm_verify::{Check, Lang};
//!
//! let checks = Lang::Python.parse_checks("assert add(1, 2) == 3\nadd(5, 5)\n", "add");
//! assert_eq!(checks[0], Check::Equals { call: "add(1, 2)".into(), expected: "3".into() });
//! assert_eq!(checks[1], Check::Runs { call: "add(5, 5)".into() });
//! let js = Lang::JavaScript.parse_checks("assert.deepStrictEqual(add(1, 2), 3);", "add");
//! assert_eq!(js[0], Check::Equals { call: "add(1, 2)".into(), expected: "3".into() });
//! ```

use tree_sitter::{Node, Parser};

use crate::cases::Check;

/// A language candidates and tests are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    /// Python 3.
    Python,
    /// JavaScript, run by Node.js.
    JavaScript,
}

impl Lang {
    /// Every language, in the order `--help` lists them.
    pub const ALL: [Lang; 2] = [Lang::Python, Lang::JavaScript];

    /// `python` or `javascript`.
    pub fn name(self) -> &'static str {
        match self {
            Lang::Python => "python",
            Lang::JavaScript => "javascript",
        }
    }

    /// Parses a name or common alias (`py`, `js`, `node`).
    pub fn from_name(name: &str) -> Option<Lang> {
        match name.to_ascii_lowercase().as_str() {
            "python" | "python3" | "py" => Some(Lang::Python),
            "javascript" | "js" | "node" => Some(Lang::JavaScript),
            _ => None,
        }
    }

    /// The sandbox's runner for this language.
    pub fn runner(self) -> Option<codelm_sandbox::Language> {
        codelm_sandbox::Language::find(match self {
            Lang::Python => "python",
            Lang::JavaScript => "node",
        })
        .copied()
    }

    /// The tag of a Markdown fence around code in this language.
    pub fn fence(self) -> &'static str {
        self.name()
    }

    /// One test in the form the model is asked to write, for `entry`.
    pub fn test_form(self, entry: &str) -> String {
        match self {
            Lang::Python => format!("assert {entry}(...) == expected"),
            Lang::JavaScript => format!("assert.deepStrictEqual({entry}(...), expected);"),
        }
    }

    /// How a test reply starts, so the model writes the form at once.
    pub fn test_start(self, entry: &str) -> String {
        match self {
            Lang::Python => format!("assert {entry}("),
            Lang::JavaScript => format!("assert.deepStrictEqual({entry}("),
        }
    }

    /// A check written back as a line of test code (for prompts and reports).
    pub fn render(self, check: &Check) -> String {
        match (self, check) {
            (Lang::Python, Check::Equals { call, expected }) => {
                format!("assert {call} == {expected}")
            }
            (Lang::Python, Check::Holds { condition }) => format!("assert {condition}"),
            (Lang::JavaScript, Check::Equals { call, expected }) => {
                format!("assert.deepStrictEqual({call}, {expected});")
            }
            (Lang::JavaScript, Check::Holds { condition }) => format!("assert.ok({condition});"),
            (_, Check::Runs { call }) => call.clone(),
        }
    }

    /// The names of the functions `code` defines at its top level, in order.
    pub fn functions(self, code: &str) -> Vec<String> {
        let keyword = match self {
            Lang::Python => "def ",
            Lang::JavaScript => "function ",
        };
        code.lines()
            .filter_map(|line| line.strip_prefix(keyword))
            .filter_map(|rest| {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '$')
                    .collect();
                (!name.is_empty()).then_some(name)
            })
            .collect()
    }

    /// The name of the last function `code` defines at its top level.
    pub fn last_function(self, code: &str) -> Option<String> {
        self.functions(code).pop()
    }

    /// The function a request is about: the last one its text defines; else
    /// the first one a candidate defines that the text names (`f(`); else
    /// the one most candidates define last (the earliest on ties).
    pub fn entry_point(self, text: &str, candidates: &[String]) -> Option<String> {
        if let Some(name) = self.last_function(text) {
            return Some(name);
        }
        let named = candidates
            .iter()
            .flat_map(|code| self.functions(code))
            .find(|name| calls(text, name));
        if named.is_some() {
            return named;
        }
        let lasts: Vec<String> = candidates
            .iter()
            .filter_map(|code| self.last_function(code))
            .collect();
        let count = |name: &String| lasts.iter().filter(|other| *other == name).count();
        let best = lasts.iter().map(count).max()?;
        lasts.iter().find(|name| count(name) == best).cloned()
    }

    /// Whether `text` is one expression of the language.
    pub fn is_expression(self, text: &str) -> bool {
        let text = text.trim();
        if text.is_empty() || text.contains('\n') {
            return false;
        }
        match self {
            Lang::Python => python_tree(&format!("__codelm_x = ({text})\n"))
                .is_some_and(|tree| !tree.root_node().has_error()),
            Lang::JavaScript => split_top_level(text, ";").len() == 1 && is_balanced(text),
        }
    }

    /// The checks of `entry` in test code: equality asserts, other asserts
    /// that call it, and bare calls (inputs without expected outputs). Lines
    /// that are none of these are skipped, so prose and fences do no harm.
    pub fn parse_checks(self, code: &str, entry: &str) -> Vec<Check> {
        logical_lines(code)
            .iter()
            .filter_map(|line| match self {
                Lang::Python => python_check(line, entry),
                Lang::JavaScript => javascript_check(line, entry),
            })
            .collect()
    }

    /// The harness: a program that loads the candidate from `payload` (JSON
    /// with `code`, `tests`, `marker` and the timeouts) and writes one
    /// marker-prefixed JSON record per test to the original stdout.
    pub(crate) fn harness(self, payload: &str) -> String {
        // A JSON string literal is a valid Python and JavaScript literal.
        let literal = serde_json::to_string(payload).unwrap_or_else(|_| "\"{}\"".to_string());
        match self {
            Lang::Python => PYTHON_HARNESS.replace("__PAYLOAD__", &literal),
            Lang::JavaScript => JAVASCRIPT_HARNESS.replace("__PAYLOAD__", &literal),
        }
    }
}

/// The Python harness. The candidate runs in a namespace of its own with
/// `__name__` not `__main__` (its own test block stays quiet), its stdout
/// goes to /dev/null (a flood cannot push the records out), and every test
/// has its own alarm. Sets are compared by sorted contents and floats to 9
/// significant digits for clustering, so hash seeds do not split clusters.
const PYTHON_HARNESS: &str = r#"import json as _j, os as _o, signal as _s, hashlib as _h
_D = _j.loads(__PAYLOAD__)
_OUT = _o.dup(1)
_o.dup2(_o.open(_o.devnull, _o.O_WRONLY), 1)
def _emit(rec):
    _o.write(_OUT, (_D["marker"] + _j.dumps(rec) + "\n").encode())
class _Timeout(BaseException):
    pass
def _alarm(*_):
    raise _Timeout()
_s.signal(_s.SIGALRM, _alarm)
def _canon(x, d=0):
    if d > 30:
        return "..."
    if isinstance(x, bool) or x is None:
        return repr(x)
    if isinstance(x, float):
        return "f:" + format(x, ".9g")
    if isinstance(x, (set, frozenset)):
        return ["set", sorted((_canon(v, d + 1) for v in x), key=repr)]
    if isinstance(x, dict):
        return ["dict", [[_canon(k, d + 1), _canon(v, d + 1)] for k, v in x.items()]]
    if isinstance(x, (list, tuple)):
        return [type(x).__name__, [_canon(v, d + 1) for v in x]]
    return [type(x).__name__, repr(x)[:4096]]
def _err(e):
    if isinstance(e, _Timeout):
        return "timeout"
    text = str(e)
    return (type(e).__name__ + (": " + text if text else ""))[:300]
_g = {"__name__": "__candidate__"}
try:
    _s.setitimer(_s.ITIMER_REAL, _D["load_timeout"])
    exec(compile(_D["code"], "candidate.py", "exec"), _g)
    _s.setitimer(_s.ITIMER_REAL, 0)
    _emit({"load": "ok"})
except BaseException as e:
    _s.setitimer(_s.ITIMER_REAL, 0)
    _emit({"load": "timeout" if isinstance(e, _Timeout) else "error", "error": _err(e)})
    _o._exit(0)
for _i, _t in enumerate(_D["tests"]):
    _r = {"i": _i}
    try:
        _s.setitimer(_s.ITIMER_REAL, _D["test_timeout"])
        _v = eval(_t["expr"], _g)
        _r["out"] = _h.sha256(_j.dumps(_canon(_v)).encode()).hexdigest()[:16]
        _r["shown"] = repr(_v)[:200]
        if _t["kind"] == "equals":
            _r["pass"] = bool(_v == eval(_t["expected"], _g))
        elif _t["kind"] == "holds":
            _r["pass"] = bool(_v)
        _s.setitimer(_s.ITIMER_REAL, 0)
    except BaseException as e:
        _s.setitimer(_s.ITIMER_REAL, 0)
        _r["error"] = _err(e)
        _r["out"] = "error:" + ("timeout" if isinstance(e, _Timeout) else type(e).__name__)
        _r.pop("pass", None)
        if _t["kind"] != "runs":
            _r["pass"] = False
    _emit(_r)
_emit({"done": True})
_o._exit(0)
"#;

/// The JavaScript harness: the candidate runs as a script in this context
/// (its top-level functions and bindings are visible to the tests), each
/// test with a `vm` timeout, and console output is dropped.
const JAVASCRIPT_HARNESS: &str = r#"const _fs = require("fs"), _vm = require("vm"), _util = require("util"), _crypto = require("crypto");
const _D = JSON.parse(__PAYLOAD__);
const _emit = (r) => _fs.writeSync(1, _D.marker + JSON.stringify(r) + "\n");
for (const k of ["log", "info", "warn", "error", "debug", "trace"]) console[k] = () => {};
process.stdout.write = () => true;
globalThis.require = require;
globalThis.module = { exports: {} };
const _canon = (x, d) => {
  if (d > 30) return "...";
  if (x === null || x === undefined || typeof x === "boolean") return String(x);
  if (typeof x === "number") return "n:" + x.toPrecision(9);
  if (typeof x === "bigint" || typeof x === "string") return [typeof x, String(x)];
  if (x instanceof Set) return ["set", [...x].map((v) => JSON.stringify(_canon(v, d + 1))).sort()];
  if (x instanceof Map) return ["map", [...x].map(([k, v]) => [_canon(k, d + 1), _canon(v, d + 1)])];
  if (Array.isArray(x)) return ["array", x.map((v) => _canon(v, d + 1))];
  if (typeof x === "object") return ["object", Object.keys(x).map((k) => [k, _canon(x[k], d + 1)])];
  return [typeof x, String(x).slice(0, 4096)];
};
const _err = (e) => (/timed out/.test(String(e)) ? "timeout" : String(e && e.stack ? e.toString() : e).slice(0, 300));
try {
  _vm.runInThisContext(_D.code, { filename: "candidate.js", timeout: Math.round(_D.load_timeout * 1000) });
  _emit({ load: "ok" });
} catch (e) {
  _emit({ load: _err(e) === "timeout" ? "timeout" : "error", error: _err(e) });
  process.exit(0);
}
for (let i = 0; i < _D.tests.length; i++) {
  const t = _D.tests[i], r = { i }, ms = Math.round(_D.test_timeout * 1000);
  try {
    const v = _vm.runInThisContext("(" + t.expr + ")", { timeout: ms });
    r.out = _crypto.createHash("sha256").update(JSON.stringify(_canon(v, 0))).digest("hex").slice(0, 16);
    r.shown = String(_util.inspect(v)).slice(0, 200);
    if (t.kind === "equals") r.pass = _util.isDeepStrictEqual(v, _vm.runInThisContext("(" + t.expected + ")", { timeout: ms }));
    else if (t.kind === "holds") r.pass = Boolean(v);
  } catch (e) {
    r.error = _err(e);
    r.out = "error:" + (r.error === "timeout" ? "timeout" : (e && e.name) || "Error");
    delete r.pass;
    if (t.kind !== "runs") r.pass = false;
  }
  _emit(r);
}
_emit({ done: true });
process.exit(0);
"#;

fn python_tree(code: &str) -> Option<tree_sitter::Tree> {
    let mut parser = Parser::new();
    parser
        .set_language(&tree_sitter_python::LANGUAGE.into())
        .ok()?;
    parser.parse(code, None)
}

fn calls(text: &str, entry: &str) -> bool {
    let needle = format!("{entry}(");
    text.match_indices(&needle).any(|(at, _)| {
        text[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '.' || c == '$'))
    })
}

fn python_check(line: &str, entry: &str) -> Option<Check> {
    let tree = python_tree(line)?;
    let root = tree.root_node();
    if root.has_error() || root.named_child_count() != 1 {
        return None;
    }
    let statement = root.named_child(0)?;
    let text = |node: Node| line[node.byte_range()].trim().to_string();
    match statement.kind() {
        "assert_statement" => {
            let condition = statement.named_child(0)?;
            if condition.kind() == "comparison_operator" && condition.named_child_count() == 2 {
                let operator = condition.child_by_field_name("operators").map(text);
                let (left, right) = (condition.named_child(0)?, condition.named_child(1)?);
                if operator.as_deref() == Some("==") {
                    let (left, right) = (text(left), text(right));
                    if calls(&left, entry) {
                        return Some(Check::Equals {
                            call: left,
                            expected: right,
                        });
                    }
                    if calls(&right, entry) && !calls(&left, entry) {
                        return Some(Check::Equals {
                            call: right,
                            expected: left,
                        });
                    }
                }
            }
            let condition = text(condition);
            calls(&condition, entry).then_some(Check::Holds { condition })
        }
        "expression_statement" => {
            let mut expr = statement.named_child(0)?;
            // print(f(x)) is the input f(x).
            if expr.kind() == "call"
                && expr.child_by_field_name("function").map(text).as_deref() == Some("print")
            {
                let args = expr.child_by_field_name("arguments")?;
                if args.named_child_count() == 1 {
                    expr = args.named_child(0)?;
                }
            }
            let call = text(expr);
            (expr.kind() == "call"
                && expr.child_by_field_name("function").map(text).as_deref() == Some(entry))
            .then_some(Check::Runs { call })
        }
        _ => None,
    }
}

fn javascript_check(line: &str, entry: &str) -> Option<Check> {
    let line = line.trim().trim_end_matches(';').trim();
    let inner = |prefix: &str| {
        line.strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(')'))
            .filter(|args| is_balanced(args))
    };
    for prefix in [
        "assert.deepStrictEqual(",
        "assert.strictEqual(",
        "assert.deepEqual(",
        "assert.equal(",
    ] {
        if let Some(args) = inner(prefix) {
            let args = split_top_level(args, ",");
            let (call, expected) = (args.first()?.trim(), args.get(1)?.trim());
            return calls(call, entry).then(|| Check::Equals {
                call: call.to_string(),
                expected: expected.to_string(),
            });
        }
    }
    for prefix in ["console.assert(", "assert.ok(", "assert("] {
        if let Some(args) = inner(prefix) {
            let condition = split_top_level(args, ",").first()?.trim().to_string();
            let sides = split_top_level(&condition, "===");
            if let [call, expected] = sides.as_slice() {
                if calls(call, entry) {
                    return Some(Check::Equals {
                        call: call.trim().to_string(),
                        expected: expected.trim().to_string(),
                    });
                }
            }
            return calls(&condition, entry).then_some(Check::Holds { condition });
        }
    }
    let call = inner("console.log(").unwrap_or(line);
    (call.starts_with(&format!("{entry}(")) && call.ends_with(')') && is_balanced(call)).then(
        || Check::Runs {
            call: call.to_string(),
        },
    )
}

/// Lines joined while brackets are open, so a test spread over lines is one.
pub(crate) fn logical_lines(code: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for line in code.lines() {
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(line.trim());
        if depth(&current) <= 0 {
            lines.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        lines.push(current);
    }
    lines
}

/// Bracket depth at the end of `text`, outside string literals.
fn depth(text: &str) -> i64 {
    let mut depth = 0;
    let _ = scan(text, |_, c, outside_string| {
        if outside_string {
            match c {
                '(' | '[' | '{' => depth += 1,
                ')' | ']' | '}' => depth -= 1,
                _ => {}
            }
        }
    });
    depth
}

fn is_balanced(text: &str) -> bool {
    let mut depth = 0i64;
    let mut is_ok = true;
    let ends_outside = scan(text, |_, c, outside_string| {
        if outside_string {
            match c {
                '(' | '[' | '{' => depth += 1,
                ')' | ']' | '}' => {
                    depth -= 1;
                    is_ok &= depth >= 0;
                }
                _ => {}
            }
        }
    });
    is_ok && depth == 0 && ends_outside
}

/// Calls `f(byte_offset, char, outside_string)` for each character; quotes
/// (', ", `) open and close strings, a backslash escapes inside them.
/// Returns whether the text ends outside a string.
fn scan(text: &str, mut f: impl FnMut(usize, char, bool)) -> bool {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (at, c) in text.char_indices() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
                f(at, c, false);
            }
            None => {
                if matches!(c, '\'' | '"' | '`') {
                    quote = Some(c);
                    f(at, c, false);
                } else {
                    f(at, c, true);
                }
            }
        }
    }
    quote.is_none()
}

/// `text` split at `separator` where it is outside brackets and strings.
pub(crate) fn split_top_level<'a>(text: &'a str, separator: &str) -> Vec<&'a str> {
    let mut parts = Vec::new();
    let mut depth = 0i64;
    let mut start = 0;
    let mut skip_until = 0;
    let _ = scan(text, |at, c, outside| {
        if !outside || at < skip_until {
            return;
        }
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            _ => {
                if depth == 0 && text[at..].starts_with(separator) {
                    parts.push(&text[start..at]);
                    start = at + separator.len();
                    skip_until = start;
                }
            }
        }
    });
    parts.push(&text[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_checks_of_each_shape() {
        let code = "```python\nassert f([1, 2]) == [2, 1]\nassert 3 == f(x=2)\nassert abs(f(0.5) - 1) < 1e-6\nassert g(1) == 2\nprint(f('a'))\nassert f(\n    1,\n    2,\n) == 3\nthis is prose\n```";
        let checks = Lang::Python.parse_checks(code, "f");
        assert_eq!(
            checks,
            vec![
                Check::Equals {
                    call: "f([1, 2])".into(),
                    expected: "[2, 1]".into()
                },
                Check::Equals {
                    call: "f(x=2)".into(),
                    expected: "3".into()
                },
                Check::Holds {
                    condition: "abs(f(0.5) - 1) < 1e-6".into()
                },
                Check::Runs {
                    call: "f('a')".into()
                },
                Check::Equals {
                    call: "f( 1, 2, )".into(),
                    expected: "3".into()
                },
            ]
        );
    }

    #[test]
    fn javascript_checks_of_each_shape() {
        let code = "assert.deepStrictEqual(f([1, 2], \"a,b\"), [2, 1]);\nconsole.assert(f(1) === 2);\nassert.ok(f(2) > 1);\nconsole.log(f(3));\nassert.deepStrictEqual(g(1), 2);";
        let checks = Lang::JavaScript.parse_checks(code, "f");
        assert_eq!(
            checks,
            vec![
                Check::Equals {
                    call: "f([1, 2], \"a,b\")".into(),
                    expected: "[2, 1]".into()
                },
                Check::Equals {
                    call: "f(1)".into(),
                    expected: "2".into()
                },
                Check::Holds {
                    condition: "f(2) > 1".into()
                },
                Check::Runs {
                    call: "f(3)".into()
                },
            ]
        );
    }

    #[test]
    fn expressions_and_names() {
        assert!(Lang::Python.is_expression("[1, 'a']"));
        assert!(!Lang::Python.is_expression("True if the list is sorted"));
        assert!(!Lang::JavaScript.is_expression("[1, 2"));
        assert_eq!(
            Lang::Python.last_function("import x\ndef helper():\n    pass\ndef main_fn(a):\n"),
            Some("main_fn".into())
        );
        assert_eq!(
            split_top_level("f(a, b), 'x, y'", ","),
            ["f(a, b)", " 'x, y'"]
        );
        let candidates = [
            "def helper():\n    pass\ndef is_even(n):\n".to_string(),
            "def check(n):\n".to_string(),
        ];
        let entry = |text| Lang::Python.entry_point(text, &candidates);
        assert_eq!(entry("Write `is_even(n)`."), Some("is_even".into()));
        assert_eq!(entry("Write a function."), Some("is_even".into()));
        assert_eq!(entry("def given(x):\n"), Some("given".into()));
        assert!(!calls("self.f(1)", "f") && calls("[f(1)]", "f"));
    }
}

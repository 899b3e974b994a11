//! EvalPlus (HumanEval+, MBPP+) differential tests.
//!
//! EvalPlus files carry test inputs (`base_input`, `plus_input`) rather than
//! assertions; the expected outputs are whatever the reference solution
//! returns. We generate one Python test that runs the reference in its own
//! namespace on each input, runs the candidate on a deep copy of the same
//! input, and compares: equal values pass; otherwise, when the task has an
//! `atol` (or the expected value is a float or a list of floats, which get
//! `1e-6`), values within `atol + 1e-7 × |expected|` pass, as EvalPlus does
//! with `numpy.testing.assert_allclose`. EvalPlus's few per-task special
//! cases (such as HumanEval/32's root check) are not reproduced.
//!
//! ```
//! use codelm_eval::evalplus::differential_test;
//!
//! let inputs = serde_json::json!([[1, 2], [3, 4]]);
//! let test = differential_test("add", "def add(a, b):\n    return a + b\n", &inputs, 0.0);
//! assert!(test.contains("_evalplus_reference = _evalplus_namespace[\"add\"]"));
//! ```

use serde_json::Value;

const HARNESS: &str = r#"
import copy as _evalplus_copy
import json as _evalplus_json

def _evalplus_is_floats(value):
    if isinstance(value, float):
        return True
    if isinstance(value, (list, tuple)) and value:
        return all(isinstance(item, float) for item in value)
    return False

def _evalplus_close(out, expected, atol):
    if out == expected:
        return True
    if atol == 0 and _evalplus_is_floats(expected):
        atol = 1e-6
    if atol == 0:
        return False
    try:
        if isinstance(expected, (list, tuple)):
            return len(out) == len(expected) and all(
                abs(a - b) <= atol + 1e-7 * abs(b) for a, b in zip(out, expected)
            )
        return abs(out - expected) <= atol + 1e-7 * abs(expected)
    except Exception:
        return False

_evalplus_namespace = {}
exec(__REFERENCE__, _evalplus_namespace)
_evalplus_reference = _evalplus_namespace[__ENTRY__]
_evalplus_candidate = globals()[__ENTRY__]
for _evalplus_idx, _evalplus_input in enumerate(_evalplus_json.loads(__INPUTS__)):
    _evalplus_expected = _evalplus_reference(*_evalplus_copy.deepcopy(_evalplus_input))
    _evalplus_out = _evalplus_candidate(*_evalplus_copy.deepcopy(_evalplus_input))
    if not _evalplus_close(_evalplus_out, _evalplus_expected, __ATOL__):
        raise AssertionError("input %d %.200r: expected %.200r, got %.200r" % (_evalplus_idx, _evalplus_input, _evalplus_expected, _evalplus_out))
"#;

/// Python test code comparing the candidate's `entry_point` with
/// `reference` (a complete program) on every input in `inputs` (a JSON
/// array of argument lists).
pub fn differential_test(entry_point: &str, reference: &str, inputs: &Value, atol: f64) -> String {
    // A JSON string literal is a valid Python string literal.
    let quote = |text: &str| serde_json::to_string(text).unwrap_or_default();
    HARNESS
        .replace("__REFERENCE__", &quote(reference))
        .replace("__ENTRY__", &quote(entry_point))
        .replace("__INPUTS__", &quote(&inputs.to_string()))
        .replace("__ATOL__", &format!("{atol:?}"))
}

//! EvalPlus (HumanEval+, MBPP+) differential tests, judged as EvalPlus judges
//! them: evalplus 0.3.1 (the PyPI release) with upstream's later fix #241
//! (see `find_zero` below).
//!
//! EvalPlus files carry test inputs (`base_input`, `plus_input`) rather than
//! assertions; the expected outputs are whatever the reference solution
//! returns. [`Differential::test`] writes one Python test that reproduces
//! `evalplus.evaluate` (`get_groundtruth`, `trusted_exec`) and
//! `evalplus.eval.unsafe_execute`. A sample passes when every input of both
//! parts passes, which is EvalPlus's "plus" verdict (HumanEval+, MBPP+):
//!
//! * For each part (base, then plus), the reference is loaded afresh into its
//!   own namespace and run on a deep copy of every input before the
//!   candidate's function is called. A reference that raises fails the sample
//!   with a `RuntimeError` naming the input (EvalPlus itself stops with a
//!   traceback).
//! * The candidate runs on a deep copy of each input; what either prints is
//!   discarded (EvalPlus's `swallow_io`). An exception fails the sample,
//!   `SystemExit` and `KeyboardInterrupt` included.
//! * An output passes when it equals the expected one. Otherwise, when the
//!   part's `atol` is not 0, it passes when it has the expected type (and
//!   length, for lists and tuples) and `numpy.allclose(out, expected,
//!   rtol=1e-7, atol)` holds; the sandbox has no numpy, so the harness
//!   reimplements `allclose` on nested lists of numbers (broadcasting
//!   included). An expected float, or a non-empty list or tuple of floats,
//!   sets `atol` to `1e-6` when it is 0, and, as in EvalPlus, that value stays
//!   for the rest of the part.
//! * Per-task oracles ([`Oracle`]), keyed like EvalPlus's on the dataset (the
//!   task id's `HumanEval/` or `Mbpp/` prefix) and the entry point:
//!   HumanEval's `find_zero` (task 32) passes when `|poly(xs, out)| <= atol`
//!   (evalplus 0.3.1 as released fails every sample of that task: the
//!   oracle's `continue` skips recording the input's result, fixed upstream
//!   in commit 6eb1e19, #241);
//!   MBPP's set-equality tasks ([`MBPP_OUTPUT_SET_EQ_TASKS`]) compare
//!   `set(out) == set(expected)`; the not-`None` tasks
//!   ([`MBPP_OUTPUT_NOT_NONE_TASKS`]) expect `reference(...) is not None` and
//!   compare a bool output with it, any other output by `is not None`;
//!   `are_equivalent` (164) accepts any output, `sum_div` (295) also 0,
//!   `surface_Area` (581) also the pyramid area from its height within `atol`,
//!   and `digit_distance_nums` (558) also the zero-padded digit distance.
//! * MBPP+ inputs are converted by task number as EvalPlus's
//!   `mbpp_deserialize_inputs` does: tuples, sets and complex numbers, which
//!   the JSON file spells as lists and strings.
//!
//! Not reproduced: EvalPlus's per-input time limits (`max(1 s, 4 × the
//! reference's time)`; codelm gives the whole program one timeout, see
//! [`crate::execute`]) and the fresh process per part (the candidate's module
//! runs once for both parts). The design decision a newcomer may question:
//! the inputs reach Python as the JSON text of the file ([`Differential`]
//! holds text, not a parsed value), because `serde_json` reads integers beyond
//! 64 bits as floats while Python's `json`, like EvalPlus, keeps them exact.
//!
//! ```
//! use codelm_eval::evalplus::{Differential, Oracle};
//!
//! let test = Differential {
//!     task_id: "Mbpp/2",
//!     entry_point: "similar_elements",
//!     reference: "def similar_elements(a, b):\n    return tuple(set(a) & set(b))\n",
//!     base_input: "[[[3, 4, 5], [5, 7, 4]]]",
//!     plus_input: "[]",
//!     atol: 0.0,
//! }
//! .test();
//! assert!(test.contains("\"set_eq\""));
//! assert_eq!(Oracle::for_task("HumanEval/32", "find_zero"), Oracle::PolyRoot);
//! assert_eq!(Oracle::for_task("Mbpp/32", "find_zero"), Oracle::Equal);
//! ```

/// MBPP+ entry points whose outputs are compared as sets
/// (`evalplus.eval._special_oracle.MBPP_OUTPUT_SET_EQ_TASKS`).
pub const MBPP_OUTPUT_SET_EQ_TASKS: [&str; 8] = [
    "similar_elements",       // Mbpp/2
    "find_char_long",         // Mbpp/7
    "common_in_nested_lists", // Mbpp/111
    "extract_singly",         // Mbpp/140
    "larg_nnum",              // Mbpp/232
    "intersection_array",     // Mbpp/249
    "find_dissimilar",        // Mbpp/579
    "Diff",                   // Mbpp/769
];

/// MBPP+ entry points of which only "the output is not `None`" is checked
/// (`evalplus.eval._special_oracle.MBPP_OUTPUT_NOT_NONE_TASKS`).
pub const MBPP_OUTPUT_NOT_NONE_TASKS: [&str; 3] =
    ["check_str", "text_match_three", "text_starta_endb"];

/// How one output is judged against the reference's, per EvalPlus's special
/// oracles in `unsafe_execute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oracle {
    /// Equal, or close within `atol` (every task not listed below).
    Equal,
    /// HumanEval/32 `find_zero`: `|poly(xs, out)| <= atol`; the reference's
    /// root is not used.
    PolyRoot,
    /// `set(out) == set(expected)` ([`MBPP_OUTPUT_SET_EQ_TASKS`]).
    SetEq,
    /// The expected value is whether the reference returned something other
    /// than `None`; a bool output is compared with it, any other output by
    /// `out is not None` ([`MBPP_OUTPUT_NOT_NONE_TASKS`]).
    NotNone,
    /// Mbpp/164 `are_equivalent`: any output that is returned passes.
    Any,
    /// Mbpp/295 `sum_div`: equal, or 0.
    EqualOrZero,
    /// Mbpp/581 `surface_Area`: equal, or within `atol` of the square
    /// pyramid's area with the second argument read as its height.
    SurfaceArea,
    /// Mbpp/558 `digit_distance_nums`: equal, or the digit distance of the
    /// two numbers zero-padded to the same length.
    DigitDistance,
}

impl Oracle {
    /// The oracle EvalPlus applies: the dataset comes from the task id
    /// (`HumanEval/…` or `Mbpp/…`; other ids get none), the case from the
    /// entry point.
    pub fn for_task(task_id: &str, entry_point: &str) -> Oracle {
        if task_id.starts_with("Mbpp/") {
            match entry_point {
                "are_equivalent" => Oracle::Any,
                "sum_div" => Oracle::EqualOrZero,
                "surface_Area" => Oracle::SurfaceArea,
                "digit_distance_nums" => Oracle::DigitDistance,
                name if MBPP_OUTPUT_SET_EQ_TASKS.contains(&name) => Oracle::SetEq,
                name if MBPP_OUTPUT_NOT_NONE_TASKS.contains(&name) => Oracle::NotNone,
                _ => Oracle::Equal,
            }
        } else if task_id.starts_with("HumanEval/") && entry_point == "find_zero" {
            Oracle::PolyRoot
        } else {
            Oracle::Equal
        }
    }

    /// The harness's name for the oracle.
    fn name(self) -> &'static str {
        match self {
            Oracle::Equal => "equal",
            Oracle::PolyRoot => "poly_root",
            Oracle::SetEq => "set_eq",
            Oracle::NotNone => "not_none",
            Oracle::Any => "any",
            Oracle::EqualOrZero => "equal_or_zero",
            Oracle::SurfaceArea => "surface_area",
            Oracle::DigitDistance => "digit_distance",
        }
    }
}

/// One EvalPlus task's differential test, from its record.
#[derive(Debug, Clone, PartialEq)]
pub struct Differential<'a> {
    /// `HumanEval/32`, `Mbpp/2`, ...: chooses the [`Oracle`] and, for MBPP+,
    /// the input conversion.
    pub task_id: &'a str,
    /// The function under test.
    pub entry_point: &'a str,
    /// A complete reference program.
    pub reference: &'a str,
    /// The JSON text of `base_input`: a list of argument lists.
    pub base_input: &'a str,
    /// The JSON text of `plus_input` (`[]` when absent).
    pub plus_input: &'a str,
    /// The record's `atol` (0 when absent).
    pub atol: f64,
}

impl Differential<'_> {
    /// Python test code to append to a candidate program; it raises on the
    /// first input whose output fails.
    pub fn test(&self) -> String {
        // A JSON string literal is a valid Python string literal.
        let quote = |text: &str| serde_json::to_string(text).unwrap_or_default();
        let mbpp_task = self
            .task_id
            .strip_prefix("Mbpp/")
            .and_then(|number| number.parse::<u64>().ok())
            .map_or("None".to_string(), |number| number.to_string());
        let call = format!(
            "_evalplus_run({}, {}, ({}, {}), {:?}, {}, {mbpp_task})\n",
            quote(self.entry_point),
            quote(self.reference),
            quote(self.base_input),
            quote(self.plus_input),
            self.atol,
            quote(Oracle::for_task(self.task_id, self.entry_point).name()),
        );
        format!("{HARNESS}{call}")
    }
}

/// The judging code; names start with `_evalplus_` to stay clear of the
/// candidate's. Each function mirrors the EvalPlus 0.3.1 code named in its
/// comment.
const HARNESS: &str = r#"
import cmath as _evalplus_cmath
import copy as _evalplus_copy
import io as _evalplus_io
import itertools as _evalplus_itertools
import json as _evalplus_json
import math as _evalplus_math
import sys as _evalplus_sys


class _EvalplusSink(_evalplus_io.StringIO):
    # Discards output, like `swallow_io`.
    def write(self, text):
        return len(text)


def _evalplus_call(function, args):
    saved = _evalplus_sys.stdout, _evalplus_sys.stderr
    _evalplus_sys.stdout = _evalplus_sys.stderr = _EvalplusSink()
    try:
        return function(*args)
    finally:
        _evalplus_sys.stdout, _evalplus_sys.stderr = saved


def _evalplus_all_tuples(value):
    if isinstance(value, list):
        return tuple([_evalplus_all_tuples(item) for item in value])
    return value


def _evalplus_mbpp_inputs(task, inputs):
    # `evalplus.data.mbpp.mbpp_deserialize_inputs`.
    if task in (2, 116, 132, 143, 222, 261, 273, 394, 399, 421, 424, 429, 470, 560, 579, 596, 616, 630, 726, 740, 744, 809):
        return [[tuple(lst) for lst in inp] for inp in inputs]
    if task in (63, 64, 70, 94, 120, 237, 272, 299, 400, 409, 417, 438, 473, 614, 780):
        return [[[tuple(lst) for lst in lst_lst] for lst_lst in inp] for inp in inputs]
    if task in (75, 413, 444, 753):
        return [[[tuple(lst) for lst in inp[0]]] + [inp[1]] for inp in inputs]
    if task in (106, 750):
        return [[inp[0]] + [tuple(inp[1])] for inp in inputs]
    if task == 115:
        return [[[set(item) if isinstance(item, list) and len(item) else {} for item in inp[0]]] for inp in inputs]
    if task == 124:
        return [(float(inp[0]), complex(inp[1])) for inp in inputs]
    if task in (250, 405, 446, 617, 720, 763, 808):
        return [[tuple(inp[0])] + [inp[1]] for inp in inputs]
    if task in (259, 401, 445):
        inputs = [[[tuple(lst) for lst in lst_lst] for lst_lst in inp] for inp in inputs]
        return [[tuple(lst) for lst in inp] for inp in inputs]
    if task == 278:
        inputs = [[[tuple(item) if isinstance(item, list) else item for item in inp[0]]] for inp in inputs]
        return [[tuple(lst) for lst in inp] for inp in inputs]
    if task == 307:
        return [[tuple(inp[0])] + [inp[1], inp[2]] for inp in inputs]
    if task == 722:
        return [[{key: tuple(value) for key, value in inp[0].items()}] + inp[1:] for inp in inputs]
    if task == 252:
        return [[complex(inp[0])] for inp in inputs]
    if task in (580, 615, 791):
        return [_evalplus_all_tuples(inp) for inp in inputs]
    return inputs


def _evalplus_poly(xs, x):
    # `_special_oracle._poly`.
    return sum([coeff * _evalplus_math.pow(x, i) for i, coeff in enumerate(xs)])


def _evalplus_surface_area(base_edge, height):
    # `_special_oracle._surface_Area`.
    slant_height = _evalplus_math.sqrt((base_edge / 2) ** 2 + height**2)
    base_area = base_edge**2
    lateral_area = 4 * (base_edge * slant_height) / 2
    return round(base_area + lateral_area)


def _evalplus_digit_distance(num1, num2):
    # `_special_oracle._digit_distance_nums`.
    str_num1, str_num2 = str(num1), str(num2)
    max_length = max(len(str_num1), len(str_num2))
    str_num1, str_num2 = str_num1.zfill(max_length), str_num2.zfill(max_length)
    return sum(abs(int(digit1) - int(digit2)) for digit1, digit2 in zip(str_num1, str_num2))


def _evalplus_is_floats(value):
    # `evalplus.eval.is_floats` (numpy arrays aside).
    if isinstance(value, float):
        return True
    if isinstance(value, (list, tuple)) and value:
        return all(isinstance(item, float) for item in value)
    return False


def _evalplus_isclose(out, expected, atol):
    # `numpy.isclose(out, expected, rtol=1e-07, atol=atol)` on two numbers.
    for value in (out, expected):
        if not isinstance(value, (int, float, complex)):
            raise TypeError("not a number: %.100r" % (value,))
    if isinstance(expected, int):
        expected = float(expected)
    return (
        abs(out - expected) <= atol + 1e-07 * abs(expected) and _evalplus_cmath.isfinite(expected)
    ) or out == expected


def _evalplus_array(value):
    # (shape, elements in row-major order), as `numpy.asarray` reads nested lists and tuples.
    if not isinstance(value, (list, tuple)):
        return (), [value]
    parts = [_evalplus_array(item) for item in value]
    shapes = {shape for shape, _ in parts}
    if len(shapes) > 1:
        raise ValueError("inhomogeneous shape")
    inner = shapes.pop() if shapes else ()
    return (len(value),) + inner, [element for _, elements in parts for element in elements]


def _evalplus_allclose(out, expected, atol):
    # `numpy.allclose(out, expected, rtol=1e-07, atol=atol)`, broadcasting included.
    (out_shape, out_elements), (exp_shape, exp_elements) = _evalplus_array(out), _evalplus_array(expected)
    n_dims = max(len(out_shape), len(exp_shape))
    out_shape = (1,) * (n_dims - len(out_shape)) + out_shape
    exp_shape = (1,) * (n_dims - len(exp_shape)) + exp_shape
    shape = []
    for out_dim, exp_dim in zip(out_shape, exp_shape):
        if out_dim != exp_dim and 1 not in (out_dim, exp_dim):
            raise ValueError("shapes do not broadcast")
        shape.append(exp_dim if out_dim == 1 else out_dim)

    def position(index, operand_shape):
        flat = 0
        for idx, dim in zip(index, operand_shape):
            flat = flat * dim + (0 if dim == 1 else idx)
        return flat

    closes = [
        _evalplus_isclose(out_elements[position(index, out_shape)], exp_elements[position(index, exp_shape)], atol)
        for index in _evalplus_itertools.product(*[range(dim) for dim in shape])
    ]
    return all(closes)


def _evalplus_judge(oracle, args, out, expected, atol):
    # The body of `unsafe_execute`'s loop: whether `out` passes, and the atol
    # the following inputs of the part use.
    exact_match = out == expected
    if oracle == "any":
        exact_match = exact_match or True
    elif oracle == "equal_or_zero":
        exact_match = exact_match or out == 0
    elif oracle == "surface_area":
        exact_match = exact_match or abs(out - _evalplus_surface_area(*args)) <= atol
    elif oracle == "digit_distance":
        exact_match = exact_match or out == _evalplus_digit_distance(*args)
    elif oracle == "set_eq":
        exact_match = set(out) == set(expected)
    elif oracle == "not_none":
        if isinstance(out, bool):
            exact_match = out == expected
        else:
            exact_match = expected == (out is not None)
    elif oracle == "poly_root":
        return bool(abs(_evalplus_poly(*args, out)) <= atol), atol
    if atol == 0 and _evalplus_is_floats(expected):
        atol = 1e-6
    if not exact_match and atol != 0:
        passed = (
            type(out) == type(expected)
            and (not isinstance(expected, (list, tuple)) or len(out) == len(expected))
            and _evalplus_allclose(out, expected, atol)
        )
    else:
        passed = bool(exact_match)
    return passed, atol


def _evalplus_run(entry_point, reference, parts_json, atol, oracle, mbpp_task):
    # Every expected output first (`get_groundtruth`), then the candidate.
    parts = []
    offset = 0
    for text in parts_json:
        inputs = _evalplus_mbpp_inputs(mbpp_task, _evalplus_json.loads(text))
        namespace = {}
        exec(reference, namespace)
        function = namespace[entry_point]
        expected = []
        for idx, inp in enumerate(inputs):
            try:
                value = _evalplus_call(function, _evalplus_copy.deepcopy(inp))
            except BaseException as error:
                raise RuntimeError(
                    "the reference solution failed on input %d %.200r" % (offset + idx, inp)
                ) from error
            expected.append(value is not None if oracle == "not_none" else value)
        parts.append((offset, inputs, expected))
        offset += len(inputs)
    candidate = globals()[entry_point]
    for offset, inputs, expected in parts:
        part_atol = atol
        for idx, (inp, exp) in enumerate(zip(inputs, expected)):
            args = _evalplus_copy.deepcopy(inp)
            try:
                out = _evalplus_call(candidate, args)
            except Exception:
                raise
            except BaseException as error:
                raise AssertionError(
                    "input %d %.200r: the candidate raised %r" % (offset + idx, inp, error)
                ) from None
            try:
                passed, part_atol = _evalplus_judge(oracle, args, out, exp, part_atol)
            except BaseException:
                passed = False
            if not passed:
                if oracle == "poly_root":
                    detail = "|poly(xs, x)| > %r at x = %.200r" % (part_atol, out)
                else:
                    detail = "expected %.200r, got %.200r" % (exp, out)
                raise AssertionError("input %d %.200r: %s" % (offset + idx, inp, detail))


"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oracles_follow_evalplus_keys() {
        let cases = [
            ("HumanEval/32", "find_zero", Oracle::PolyRoot),
            ("HumanEval/2", "truncate_number", Oracle::Equal),
            ("Mbpp/2", "similar_elements", Oracle::SetEq),
            ("Mbpp/769", "Diff", Oracle::SetEq),
            ("Mbpp/737", "check_str", Oracle::NotNone),
            ("Mbpp/164", "are_equivalent", Oracle::Any),
            ("Mbpp/295", "sum_div", Oracle::EqualOrZero),
            ("Mbpp/581", "surface_Area", Oracle::SurfaceArea),
            ("Mbpp/558", "digit_distance_nums", Oracle::DigitDistance),
            // The dataset matters, as EvalPlus's `dataset == "mbpp"` does.
            ("HumanEval/2", "similar_elements", Oracle::Equal),
            ("Mbpp/32", "find_zero", Oracle::Equal),
            ("11", "similar_elements", Oracle::Equal),
        ];
        for (task_id, entry_point, expected) in cases {
            assert_eq!(
                Oracle::for_task(task_id, entry_point),
                expected,
                "{task_id}"
            );
        }
    }

    #[test]
    fn the_call_names_the_oracle_and_the_mbpp_task() {
        let test = Differential {
            task_id: "Mbpp/124",
            entry_point: "angle_complex",
            reference: "x",
            base_input: "[[\"0\", \"1j\"]]",
            plus_input: "[]",
            atol: 0.0,
        }
        .test();
        assert!(test.ends_with(
            "_evalplus_run(\"angle_complex\", \"x\", (\"[[\\\"0\\\", \\\"1j\\\"]]\", \"[]\"), 0.0, \"equal\", 124)\n"
        ));
    }
}

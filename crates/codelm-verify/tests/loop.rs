//! The loop end to end on the real sandbox, with a scripted model: the
//! selectors pick the candidate the evidence supports, hostile candidates
//! and useless tests are contained and fall back, repair keeps only an
//! improvement, and JavaScript runs through the same mechanism.

use codelm_sandbox::{Sandbox, SandboxConfig};
use codelm_verify::{
    extract_code, verify, Ask, Lang, Options, Problem, Reply, Selector, Spec, Strategy,
};

/// Answers each ask from a script keyed by a word in the user turn, and
/// records every ask.
struct Scripted {
    answers: Vec<(&'static str, Vec<&'static str>)>,
    asked: Vec<Ask>,
}

impl codelm_verify::Generate for Scripted {
    fn generate(&mut self, asks: &[Ask]) -> Vec<Result<Vec<Reply>, String>> {
        self.asked.extend(asks.iter().cloned());
        asks.iter()
            .map(|ask| {
                let (_, texts) = self
                    .answers
                    .iter()
                    .find(|(key, _)| ask.user.contains(key))
                    .ok_or_else(|| "no scripted answer".to_string())?;
                Ok(texts
                    .iter()
                    .take(ask.n)
                    .map(|text| Reply {
                        text: format!("{}{text}", ask.response_prefix),
                        n_tokens: 10,
                    })
                    .collect())
            })
            .collect()
    }
}

fn sandbox() -> Sandbox {
    Sandbox::new(SandboxConfig {
        n_jobs: 2,
        ..SandboxConfig::default()
    })
    .unwrap()
}

const SPEC: &str =
    "def add(a, b):\n    \"\"\"Adds two numbers.\n    >>> add(1, 2)\n    3\n    \"\"\"\n";

fn options(strategy: &str) -> Options {
    Options {
        strategy: Strategy::parse(strategy).unwrap(),
        budgets: vec![1, 2, 4],
        ..Options::default()
    }
}

#[test]
fn hostile_candidates_are_contained_and_the_right_one_is_chosen() {
    let candidates: Vec<String> = [
        "def add(a, b):\n    while True:\n        pass\n",
        "import os\ndef add(a, b):\n    os._exit(0)\n",
        "def add(a, b)\n    return a + b\n",
        "print('x' * 10_000_000)\ndef add(a, b):\n    return a - b\n",
        "import os, signal\ndef add(a, b):\n    os.kill(os.getpid(), signal.SIGKILL)\n",
        "def add(a, b):\n    return a + b\n",
        "def add(a, b):\n    return a + b + 0\n",
        "def add(a, b):\n    return a * b\n",
    ]
    .map(String::from)
    .to_vec();
    // The model's tests: two right, one wrong (only a * b "passes" it).
    let mut model = Scripted {
        answers: vec![(
            "test cases",
            vec!["2, 2) == 4\nassert add(0, 5) == 5\nassert add(2, 3) == 6\nadd(10, -3)\n```"],
        )],
        asked: Vec::new(),
    };
    let problem = Problem {
        spec: Spec::new(Lang::Python, SPEC, "add"),
        candidates,
        code_of: &|reply| extract_code(reply),
    };
    let verified = verify(&mut model, &sandbox(), &[problem], &options("codet")).unwrap();
    let verified = &verified[0];
    // add(1, 2) == 3 from the docstring, then the model's four.
    assert_eq!(verified.cases.len(), 5, "{:?}", verified.cases);
    assert_eq!(verified.executions, 8);
    assert!(
        !verified.runs[0].passed(0),
        "the loop is cut by its timeout"
    );
    assert!(!verified.runs[2].loaded(), "the syntax error does not load");
    for selector in [Selector::Codet, Selector::Cluster] {
        let strategy = Strategy {
            selector,
            repair: false,
        };
        let chosen = verified.selection(strategy, 8).unwrap();
        assert_eq!(chosen.choice.index, 5, "{selector:?}: {:#?}", chosen.choice);
        assert!(chosen.choice.fallback.is_none());
        // With only the first four, nothing passes the example.
        let early = verified.selection(strategy, 4).unwrap();
        assert!(early.choice.fallback.is_some(), "{:?}", early.choice);
    }
    // Candidates 5 and 6 agree: a consensus set of two.
    let codet = verified
        .selection(
            Strategy {
                selector: Selector::Codet,
                repair: false,
            },
            8,
        )
        .unwrap();
    assert_eq!(codet.choice.score().consensus, 2);
    assert_eq!(codet.choice.survivors, 2);
}

#[test]
fn no_tests_and_a_failing_model_fall_back() {
    let mut model = Scripted {
        answers: vec![("test cases", vec!["this is not a test\n```"])],
        asked: Vec::new(),
    };
    let spec = "def double(x):\n    \"\"\"Doubles x.\"\"\"\n";
    let problem = Problem {
        spec: Spec::new(Lang::Python, spec, "double"),
        candidates: vec!["def double(x):\n    return 2 * x\n".into(); 2],
        code_of: &|reply| extract_code(reply),
    };
    let verified = verify(&mut model, &sandbox(), &[problem], &options("codet")).unwrap();
    let notes = &verified[0].notes;
    assert!(
        notes.iter().any(|note| note.contains("no parsable tests")),
        "{notes:?}"
    );
    let choice = &verified[0].selections.last().unwrap().choice;
    assert_eq!(choice.index, 0);
    assert!(choice.fallback.is_some());

    let mut silent = Scripted {
        answers: Vec::new(),
        asked: Vec::new(),
    };
    let problem = Problem {
        spec: Spec::new(Lang::Python, spec, "double"),
        candidates: vec!["def double(x):\n    return 2 * x\n".into()],
        code_of: &|reply| extract_code(reply),
    };
    let verified = verify(&mut silent, &sandbox(), &[problem], &options("cluster")).unwrap();
    assert!(verified[0].notes[0].contains("no tests were generated"));
}

#[test]
fn repair_keeps_only_an_improvement() {
    let mut model = Scripted {
        answers: vec![
            ("test cases", vec!["0, 0) == 0\n```"]),
            ("Fix the code", vec!["def add(a, b):\n    return a + b\n"]),
        ],
        asked: Vec::new(),
    };
    let problem = Problem {
        spec: Spec::new(Lang::Python, SPEC, "add"),
        candidates: vec!["def add(a, b):\n    return a - b\n".into()],
        code_of: &|reply| extract_code(reply),
    };
    let verified = verify(&mut model, &sandbox(), &[problem], &options("repair")).unwrap();
    let repaired = verified[0]
        .selection(Strategy::parse("repair").unwrap(), 1)
        .unwrap();
    assert!(repaired.is_repaired(), "{repaired:#?}");
    assert_eq!(repaired.code, "def add(a, b):\n    return a + b\n");
    let repair = repaired.repair.as_ref().unwrap();
    assert_eq!(repair.attempts.len(), 1);
    assert!(repair.attempts[0]
        .feedback
        .contains("assert add(1, 2) == 3"));
    assert!(repair.attempts[0].feedback.contains("The call returns -1."));
    assert_eq!(repair.note.as_deref(), Some("passes every visible test"));

    // A repair that makes things worse is not kept.
    let mut worse = Scripted {
        answers: vec![
            ("test cases", vec!["0, 0) == 0\n```"]),
            ("Fix the code", vec!["def add(a, b)\n    oops\n"]),
        ],
        asked: Vec::new(),
    };
    let problem = Problem {
        spec: Spec::new(Lang::Python, SPEC, "add"),
        candidates: vec!["def add(a, b):\n    return a - b\n".into()],
        code_of: &|reply| extract_code(reply),
    };
    let verified = verify(&mut worse, &sandbox(), &[problem], &options("repair")).unwrap();
    let kept = verified[0]
        .selection(Strategy::parse("repair").unwrap(), 1)
        .unwrap();
    assert!(!kept.is_repaired());
    assert_eq!(kept.repair.as_ref().unwrap().attempts.len(), 2);
    assert_eq!(kept.code, "def add(a, b):\n    return a - b\n");
}

#[test]
fn javascript_goes_through_the_same_loop() {
    let spec = "// Reverses a string.\n// >>> reverse(\"ab\")\n// \"ba\"\nfunction reverse(s) {";
    let mut model = Scripted {
        answers: vec![(
            "test cases",
            vec!["\"abc\"), \"cba\");\nassert.deepStrictEqual(reverse(\"\"), \"\");\n```"],
        )],
        asked: Vec::new(),
    };
    let problem = Problem {
        spec: Spec::new(Lang::JavaScript, spec, "reverse"),
        candidates: vec![
            "function reverse(s) { return s; }".into(),
            "function reverse(s) { while (true) {} }".into(),
            "function reverse(s) { return s.split('').reverse().join(''); }".into(),
            "const reverse = (s) => [...s].reverse().join('');".into(),
        ],
        code_of: &|reply| extract_code(reply),
    };
    let verified = verify(&mut model, &sandbox(), &[problem], &options("codet")).unwrap();
    let verified = &verified[0];
    assert_eq!(verified.cases.len(), 3, "{:?}", verified.cases);
    let codet = verified
        .selection(Strategy::parse("codet").unwrap(), 4)
        .unwrap();
    assert_eq!(codet.choice.index, 2, "{:#?}", verified.runs);
    assert_eq!(codet.choice.score().consensus, 2);
    assert!(!verified.runs[1].passed(0));
}

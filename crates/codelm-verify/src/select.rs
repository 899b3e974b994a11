//! Choosing one candidate from the evidence.
//!
//! Every selector first keeps the candidates that load and pass all the
//! specification's examples, when at least one does (AlphaCode's filter;
//! the examples are the user's own statement of behaviour). Then:
//!
//! * `codet` (CodeT, arXiv:2207.10397): candidates that pass exactly the
//!   same tests form a consensus set, scored by its number of candidates
//!   times the number of tests they pass; the best set wins.
//! * `cluster` (AlphaCode, MBR-exec): candidates with the same outputs on
//!   every input form a cluster; the largest wins.
//! * `first`: the first candidate, unfiltered: the baseline a sampled run
//!   would have kept.
//!
//! Ties go to more tests passed, then to the earliest candidate, and the
//! winner is the earliest member of its set: the same evidence always gives
//! the same choice. When the evidence cannot tell (no tests, nothing
//! loads), the choice falls back to the first survivor and says so.
//!
//! ```
//! use codelm_verify::Selector;
//!
//! assert_eq!(Selector::from_name("codet"), Some(Selector::Codet));
//! assert_eq!(Selector::Cluster.name(), "cluster");
//! ```

use std::collections::BTreeMap;

use serde::Serialize;

use crate::cases::{Case, Origin};
use crate::evidence::Run;

/// A way to choose among candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Selector {
    /// The first candidate (the unselected baseline).
    First,
    /// CodeT's dual execution agreement.
    Codet,
    /// The largest cluster of identical behaviour.
    Cluster,
}

impl Selector {
    /// Every selector.
    pub const ALL: [Selector; 3] = [Selector::First, Selector::Codet, Selector::Cluster];

    /// `first`, `codet` or `cluster`.
    pub fn name(self) -> &'static str {
        match self {
            Selector::First => "first",
            Selector::Codet => "codet",
            Selector::Cluster => "cluster",
        }
    }

    /// Parses a selector's name.
    pub fn from_name(name: &str) -> Option<Selector> {
        Selector::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// A selector, optionally followed by repair of its choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Strategy {
    /// How the candidate is chosen.
    pub selector: Selector,
    /// Whether a chosen candidate that fails a visible test is repaired.
    pub repair: bool,
}

impl Strategy {
    /// Parses `codet`, `cluster`, `repair` (the first candidate, repaired),
    /// `codet+repair` or `cluster+repair`.
    pub fn parse(text: &str) -> Option<Strategy> {
        let (name, repair) = match text.strip_suffix("+repair") {
            Some(name) => (name, true),
            None if text == "repair" => ("first", true),
            None => (text, false),
        };
        let selector = Selector::from_name(name)?;
        (selector != Selector::First || repair).then_some(Strategy { selector, repair })
    }

    /// The name [`Strategy::parse`] reads.
    pub fn name(self) -> String {
        match (self.selector, self.repair) {
            (Selector::First, _) => "repair".to_string(),
            (selector, true) => format!("{}+repair", selector.name()),
            (selector, false) => selector.name().to_string(),
        }
    }
}

/// What the evidence says about one candidate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Score {
    /// The candidate's index.
    pub index: usize,
    /// Whether it loaded.
    pub loaded: bool,
    /// Example tests passed.
    pub examples_passed: usize,
    /// Model-written tests passed.
    pub tests_passed: usize,
    /// Whether it survived the examples filter.
    pub survives: bool,
    /// Size of its consensus set (same tests passed), among survivors.
    pub consensus: usize,
    /// CodeT score of its set: consensus × tests passed (examples included).
    pub codet: usize,
    /// Size of its cluster (same outputs), among survivors.
    pub cluster: usize,
}

/// The selector's pick and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Choice {
    /// The chosen candidate's index.
    pub index: usize,
    /// The selector that chose.
    pub selector: Selector,
    /// Why the evidence could not decide, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// Candidates that survived the examples filter.
    pub survivors: usize,
    /// Every candidate's scores.
    pub scores: Vec<Score>,
}

impl Choice {
    /// The chosen candidate's scores.
    pub fn score(&self) -> &Score {
        &self.scores[self.index]
    }
}

/// Chooses among `runs` (one per candidate, all on `cases`) with `selector`.
/// `runs` must not be empty.
pub fn select(cases: &[Case], runs: &[Run], selector: Selector) -> Choice {
    let is_example =
        |idx: usize| cases[idx].origin == Origin::Example && cases[idx].check.is_test();
    let is_model = |idx: usize| cases[idx].origin == Origin::Model && cases[idx].check.is_test();
    let count = |run: &Run, keep: &dyn Fn(usize) -> bool| {
        (0..cases.len())
            .filter(|&idx| keep(idx) && run.passed(idx))
            .count()
    };
    let n_examples = (0..cases.len()).filter(|&idx| is_example(idx)).count();
    let passes_examples: Vec<bool> = runs
        .iter()
        .map(|run| run.loaded() && count(run, &is_example) == n_examples)
        .collect();
    let any_passes = passes_examples.iter().any(|&ok| ok);
    let survives: Vec<bool> = runs
        .iter()
        .zip(&passes_examples)
        .map(|(run, &ok)| if any_passes { ok } else { run.loaded() })
        .collect();

    // Consensus sets and clusters, among survivors.
    let passed_key = |run: &Run| -> Vec<bool> {
        (0..cases.len())
            .map(|idx| cases[idx].check.is_test() && run.passed(idx))
            .collect()
    };
    let output_key = |run: &Run| -> Vec<String> {
        run.results
            .iter()
            .map(|result| result.output.clone())
            .collect()
    };
    let mut consensus: BTreeMap<Vec<bool>, usize> = BTreeMap::new();
    let mut clusters: BTreeMap<Vec<String>, usize> = BTreeMap::new();
    for (run, _) in runs.iter().zip(&survives).filter(|(_, &ok)| ok) {
        *consensus.entry(passed_key(run)).or_default() += 1;
        *clusters.entry(output_key(run)).or_default() += 1;
    }
    let scores: Vec<Score> = runs
        .iter()
        .enumerate()
        .map(|(index, run)| {
            let ok = survives[index];
            let set = if ok { consensus[&passed_key(run)] } else { 0 };
            let passed = count(run, &|idx| cases[idx].check.is_test());
            Score {
                index,
                loaded: run.loaded(),
                examples_passed: count(run, &is_example),
                tests_passed: count(run, &is_model),
                survives: ok,
                consensus: set,
                codet: set * passed,
                cluster: if ok { clusters[&output_key(run)] } else { 0 },
            }
        })
        .collect();
    let n_survivors = survives.iter().filter(|&&ok| ok).count();
    let first_survivor = survives.iter().position(|&ok| ok);
    let mut choice = Choice {
        index: 0,
        selector,
        fallback: None,
        survivors: n_survivors,
        scores,
    };
    let Some(first_survivor) = first_survivor else {
        choice.fallback = Some("no candidate loads; kept the first".to_string());
        return choice;
    };
    if !any_passes && n_examples > 0 && selector != Selector::First {
        choice.fallback =
            Some("no candidate passes the examples; chose among all that load".into());
    }
    let best = |key: &dyn Fn(&Score) -> (usize, usize)| {
        choice
            .scores
            .iter()
            .filter(|score| score.survives)
            // Largest key, then the earliest index.
            .max_by(|a, b| key(a).cmp(&key(b)).then(b.index.cmp(&a.index)))
            .map(|score| score.index)
            .unwrap_or(first_survivor)
    };
    match selector {
        Selector::First => {}
        Selector::Codet => {
            if choice.scores.iter().all(|score| score.codet == 0) {
                choice.fallback =
                    Some("no candidate passes any test; kept the first that loads".into());
                choice.index = first_survivor;
            } else {
                choice.index =
                    best(&|score| (score.codet, score.examples_passed + score.tests_passed));
            }
        }
        Selector::Cluster => {
            if cases.is_empty() {
                choice.fallback = Some("no inputs to cluster on; kept the first that loads".into());
                choice.index = first_survivor;
            } else {
                choice.index =
                    best(&|score| (score.cluster, score.examples_passed + score.tests_passed));
            }
        }
    }
    choice
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::Check;
    use crate::evidence::{CaseResult, Load};

    fn case(origin: Origin, test: bool) -> Case {
        let check = if test {
            Check::Holds {
                condition: "f()".into(),
            }
        } else {
            Check::Runs { call: "f()".into() }
        };
        Case { origin, check }
    }

    /// A run from (passed, output) per case.
    fn run(results: &[(Option<bool>, &str)]) -> Run {
        Run {
            load: Load::Ok,
            results: results
                .iter()
                .map(|(passed, output)| CaseResult {
                    passed: *passed,
                    output: output.to_string(),
                    shown: None,
                    error: None,
                })
                .collect(),
        }
    }

    #[test]
    fn codet_prefers_a_larger_agreeing_set() {
        let cases = vec![
            case(Origin::Model, true),
            case(Origin::Model, true),
            case(Origin::Model, true),
        ];
        let (t, f) = (Some(true), Some(false));
        // Candidate 0 passes all three tests alone; 1, 2, 3 agree on two.
        let runs = vec![
            run(&[(t, "a"), (t, "b"), (t, "c")]),
            run(&[(t, "a"), (t, "b"), (f, "x")]),
            run(&[(t, "a"), (t, "b"), (f, "y")]),
            run(&[(t, "a"), (t, "b"), (f, "z")]),
        ];
        let choice = select(&cases, &runs, Selector::Codet);
        assert_eq!((choice.index, choice.fallback.is_none()), (1, true));
        assert_eq!(choice.scores[0].codet, 3);
        assert_eq!(choice.scores[1].codet, 6);
        // By outputs all four differ on the third input: the earliest of
        // the (equal) largest clusters wins, breaking the tie by passes.
        let choice = select(&cases, &runs, Selector::Cluster);
        assert_eq!(choice.index, 0);
    }

    #[test]
    fn examples_filter_and_fallbacks() {
        let cases = vec![case(Origin::Example, true), case(Origin::Model, false)];
        let (t, f) = (Some(true), Some(false));
        let runs = vec![
            run(&[(f, "1"), (None, "a")]),
            run(&[(f, "1"), (None, "a")]),
            run(&[(t, "2"), (None, "b")]),
        ];
        // Two candidates agree, but only the third passes the example.
        let choice = select(&cases, &runs, Selector::Cluster);
        assert_eq!((choice.index, choice.survivors), (2, 1));
        let mut broken = runs.clone();
        for run in &mut broken {
            run.load = Load::Error("SyntaxError".into());
        }
        let choice = select(&cases, &broken, Selector::Codet);
        assert_eq!(choice.index, 0);
        assert!(choice.fallback.unwrap().contains("no candidate loads"));
        let choice = select(&[], &[run(&[]), run(&[])], Selector::Codet);
        assert!(choice
            .fallback
            .unwrap()
            .contains("no candidate passes any test"));
    }

    #[test]
    fn strategies_parse() {
        let parse = |s| Strategy::parse(s).map(Strategy::name);
        assert_eq!(parse("codet"), Some("codet".into()));
        assert_eq!(parse("repair"), Some("repair".into()));
        assert_eq!(parse("cluster+repair"), Some("cluster+repair".into()));
        assert_eq!(parse("first"), None);
        assert_eq!(parse("vote"), None);
    }
}

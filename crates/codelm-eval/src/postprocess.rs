//! Turning a model's raw text into a program: cut at stop sequences, pull
//! code out of Markdown fences, and sanitize it.
//!
//! The sanitizer parses the code with tree-sitter's Python grammar and keeps
//! only top-level imports and the definitions the target function reaches
//! (helpers, classes, globals), in source order; `print` calls, asserts,
//! example usage and `if __name__ == "__main__":` blocks go. A reply cut off
//! by the token limit is trimmed back to its longest prefix of whole lines
//! that parses. The design decision a newcomer may question: we use a real
//! parser rather than Python's `ast` in a subprocess, so post-processing is
//! deterministic, fast and needs no interpreter; tree-sitter's error
//! recovery also lets us find the longest valid prefix cheaply.
//!
//! ```
//! use codelm_eval::postprocess::{extract_code, sanitize};
//!
//! let reply = "Sure!\n```python\nimport math\n\ndef area(r):\n    return math.pi * r * r\n\nprint(area(1))\n```\nDone.";
//! let code = sanitize(&extract_code(reply, Some("area")), &["area"])?;
//! assert_eq!(code, "import math\n\ndef area(r):\n    return math.pi * r * r\n");
//! # Ok::<(), codelm_eval::Error>(())
//! ```

use std::collections::{BTreeSet, HashMap};

use tree_sitter::{Node, Parser, Tree};

use crate::Result;

/// Cuts `text` at the earliest occurrence of any stop sequence.
pub fn truncate_at_stops<'a>(text: &'a str, stops: &[String]) -> &'a str {
    let end = stops
        .iter()
        .filter(|stop| !stop.is_empty())
        .filter_map(|stop| text.find(stop.as_str()))
        .min()
        .unwrap_or(text.len());
    &text[..end]
}

/// The code in a chat reply: the first fenced block that defines
/// `entry_point` (else the first Python block, else the first block); an
/// unclosed fence runs to the end; text without fences is returned as is.
pub fn extract_code(reply: &str, entry_point: Option<&str>) -> String {
    let blocks = codelm_verify::fenced_blocks(reply);
    let defines =
        |code: &str| entry_point.is_some_and(|name| code.contains(&format!("def {name}(")));
    blocks
        .iter()
        .find(|(_, code)| defines(code))
        .or_else(|| blocks.iter().find(|(lang, _)| is_python(lang)))
        .or_else(|| blocks.first())
        .map_or_else(|| reply.to_string(), |(_, code)| code.clone())
}

fn is_python(lang: &str) -> bool {
    matches!(lang, "python" | "py" | "python3")
}

fn parse(code: &str) -> Result<Option<Tree>> {
    let mut parser = Parser::new();
    parser.set_language(&tree_sitter_python::LANGUAGE.into())?;
    Ok(parser.parse(code, None))
}

/// The longest prefix of whole lines of `code` that parses without errors
/// (the whole of `code` when none does).
fn longest_valid_prefix(code: &str) -> Result<String> {
    let lines: Vec<&str> = code.split_inclusive('\n').collect();
    for n_lines in (1..=lines.len()).rev() {
        let prefix = lines[..n_lines].concat();
        if parse(&prefix)?.is_some_and(|tree| !tree.root_node().has_error()) {
            return Ok(prefix);
        }
    }
    Ok(code.to_string())
}

/// Keeps imports and the definitions that `roots` (the entry point, and
/// names the tests use) need; drops prints, tests and `__main__` blocks.
/// When the code defines none of the roots, every top-level definition is
/// kept.
pub fn sanitize(code: &str, roots: &[&str]) -> Result<String> {
    let code = longest_valid_prefix(code)?;
    let Some(tree) = parse(&code)? else {
        return Ok(code);
    };
    let root = tree.root_node();
    let mut cursor = root.walk();
    let items: Vec<Item> = root
        .named_children(&mut cursor)
        .filter_map(|node| Item::classify(node, &code))
        .collect();

    let by_name: HashMap<&str, usize> = items
        .iter()
        .enumerate()
        .flat_map(|(idx, item)| item.names.iter().map(move |name| (name.as_str(), idx)))
        .collect();
    let mut keep: BTreeSet<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, item)| item.is_import)
        .map(|(idx, _)| idx)
        .collect();
    let starts: Vec<usize> = roots
        .iter()
        .filter_map(|name| by_name.get(name).copied())
        .collect();
    if starts.is_empty() {
        keep.extend(0..items.len());
    } else {
        let mut stack = starts;
        while let Some(idx) = stack.pop() {
            if !keep.insert(idx) {
                continue;
            }
            for name in &items[idx].references {
                if let Some(&dependency) = by_name.get(name.as_str()) {
                    stack.push(dependency);
                }
            }
        }
    }
    let mut out = String::new();
    for (idx, item) in items.iter().enumerate() {
        if keep.contains(&idx) {
            if !out.is_empty() {
                out.push_str(
                    if items[idx].is_import && idx > 0 && items[idx - 1].is_import {
                        "\n"
                    } else {
                        "\n\n"
                    },
                );
            }
            out.push_str(&item.text);
        }
    }
    if !out.is_empty() {
        out.push('\n');
    }
    Ok(out)
}

/// A top-level statement the sanitizer may keep.
struct Item {
    text: String,
    is_import: bool,
    /// Names this statement defines at module level.
    names: Vec<String>,
    /// Identifiers used anywhere inside it.
    references: BTreeSet<String>,
}

impl Item {
    fn classify(node: Node<'_>, code: &str) -> Option<Item> {
        let text = |node: Node<'_>| node_text(node, code).to_string();
        let item = |names: Vec<String>, is_import: bool| Item {
            text: text(node),
            is_import,
            names,
            references: identifiers(node, code),
        };
        match node.kind() {
            "import_statement" | "import_from_statement" | "future_import_statement" => {
                Some(item(Vec::new(), true))
            }
            "function_definition" | "class_definition" => {
                let name = node.child_by_field_name("name").map(text)?;
                Some(item(vec![name], false))
            }
            "decorated_definition" => {
                let name = node
                    .child_by_field_name("definition")
                    .and_then(|definition| definition.child_by_field_name("name"))
                    .map(text)?;
                Some(item(vec![name], false))
            }
            "expression_statement" => {
                let assignment = node
                    .named_child(0)
                    .filter(|child| child.kind() == "assignment")?;
                let left = assignment.child_by_field_name("left")?;
                let names = identifiers(left, code).into_iter().collect();
                Some(item(names, false))
            }
            _ => None,
        }
    }
}

/// The source of `node`; empty if its range is not on character
/// boundaries (tree-sitter's ranges are, but model output must never panic).
fn node_text<'a>(node: Node<'_>, code: &'a str) -> &'a str {
    code.get(node.byte_range()).unwrap_or_default()
}

fn identifiers(node: Node<'_>, code: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut stack = vec![node];
    while let Some(node) = stack.pop() {
        if node.kind() == "identifier" {
            names.insert(node_text(node, code).to_string());
        }
        let mut cursor = node.walk();
        stack.extend(node.named_children(&mut cursor));
    }
    names
}

/// Top-level function and class definitions of `code` as `(name, source)`.
pub fn definitions(code: &str) -> Result<Vec<(String, String)>> {
    let Some(tree) = parse(code)? else {
        return Ok(Vec::new());
    };
    let root = tree.root_node();
    let mut cursor = root.walk();
    let found = root
        .named_children(&mut cursor)
        .filter(|node| node.kind() != "expression_statement")
        .filter_map(|node| Item::classify(node, code))
        .filter(|item| !item.is_import)
        .filter_map(|item| item.names.into_iter().next().map(|name| (name, item.text)))
        .collect();
    Ok(found)
}

/// Every identifier-like word in `text` (a cheap scan for test code, where
/// extra words only keep more definitions).
pub fn words(text: &str) -> BTreeSet<&str> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|word| {
            word.chars()
                .next()
                .is_some_and(|c| c.is_alphabetic() || c == '_')
        })
        .collect()
}

/// The top-level import statements of `code` (e.g. a HumanEval prompt's
/// `from typing import List`), one per line.
pub fn imports(code: &str) -> Result<Vec<String>> {
    let Some(tree) = parse(code)? else {
        return Ok(Vec::new());
    };
    let root = tree.root_node();
    let mut cursor = root.walk();
    let found = root
        .named_children(&mut cursor)
        .filter(|node| {
            matches!(
                node.kind(),
                "import_statement" | "import_from_statement" | "future_import_statement"
            )
        })
        .map(|node| node_text(node, code).to_string())
        .collect();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_cut_at_the_earliest() {
        let stops = vec!["\ndef ".to_string(), "\nprint(".to_string()];
        assert_eq!(
            truncate_at_stops("  return 1\nprint(f())\ndef g", &stops),
            "  return 1"
        );
        assert_eq!(truncate_at_stops("  return 1", &stops), "  return 1");
    }

    #[test]
    fn fences_prefer_the_block_defining_the_entry_point() {
        let reply = "```bash\npip x\n```\n```python\nprint(1)\n```\n```\ndef f():\n    pass\n```";
        assert_eq!(extract_code(reply, Some("f")), "def f():\n    pass\n");
        assert_eq!(extract_code(reply, Some("g")), "print(1)\n");
        assert_eq!(extract_code("```python\ndef f(", None), "def f(");
        assert_eq!(extract_code("def f(): pass", None), "def f(): pass");
    }

    #[test]
    fn sanitizer_keeps_helpers_imports_and_globals() {
        let code = "import os\nfrom math import sqrt\nLIMIT = 10\nUNUSED = 3\n\n\
                    def helper(x):\n    return sqrt(x) + LIMIT\n\n\
                    @cache\ndef target(x):\n    return helper(x)\n\n\
                    def unrelated():\n    pass\n\n\
                    print(target(4))\nassert target(4) == 12\n\
                    if __name__ == \"__main__\":\n    target(1)\n";
        assert_eq!(
            sanitize(code, &["target"]).unwrap(),
            "import os\nfrom math import sqrt\n\nLIMIT = 10\n\n\
             def helper(x):\n    return sqrt(x) + LIMIT\n\n\
             @cache\ndef target(x):\n    return helper(x)\n"
        );
        let all = sanitize(code, &[]).unwrap();
        assert!(all.contains("def unrelated") && all.contains("UNUSED") && !all.contains("print"));
    }

    #[test]
    fn garbage_and_non_ascii_never_panic() {
        let code = "def f():\n    return 'héllo ünïcode'\n€€€ ((( \u{0}\n";
        assert_eq!(
            sanitize(code, &["f"]).unwrap(),
            "def f():\n    return 'héllo ünïcode'\n"
        );
        for garbage in ["", "\n\n", "(((", "```", "é", "def"] {
            sanitize(garbage, &["f"]).unwrap();
            extract_code(garbage, Some("f"));
        }
    }

    #[test]
    fn truncated_code_keeps_its_valid_prefix() {
        let code = "def f(x):\n    return x\n\ndef g(y):\n    return [y,\n";
        assert_eq!(sanitize(code, &["f"]).unwrap(), "def f(x):\n    return x\n");
    }

    #[test]
    fn names_the_tests_use_are_roots_too() {
        let code = "class Node:\n    pass\n\ndef height(n):\n    return 0\n\nx = Node()\n";
        let tests = "root = Node()\nassert height(root) == 0";
        let roots: Vec<&str> = words(tests).into_iter().collect();
        assert_eq!(
            sanitize(code, &roots).unwrap(),
            "class Node:\n    pass\n\ndef height(n):\n    return 0\n"
        );
        assert_eq!(
            definitions(code).unwrap(),
            [
                ("Node".to_string(), "class Node:\n    pass".to_string()),
                (
                    "height".to_string(),
                    "def height(n):\n    return 0".to_string()
                )
            ]
        );
    }

    #[test]
    fn imports_of_a_prompt() {
        let prompt = "from typing import List\nimport math\n\n\ndef f(x: List[int]) -> int:\n    \"\"\"Doc.\"\"\"\n";
        assert_eq!(
            imports(prompt).unwrap(),
            ["from typing import List", "import math"]
        );
    }
}

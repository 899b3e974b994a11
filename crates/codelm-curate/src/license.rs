//! License detection (SPDX ids) and the allow-list.
//!
//! Three sources, most specific first: a file's own header
//! (`SPDX-License-Identifier:` or a standard license notice), the package it
//! belongs to (`Cargo.toml`'s `license`, `package.json`, `pyproject.toml`, a
//! wheel's `*.dist-info/METADATA`), and `LICENSE`/`COPYING` files in its
//! directory or an ancestor. License texts are recognised by phrases that each
//! license's text contains and others do not; when a file bundles several
//! licenses (numpy's appends the licenses of vendored libraries), the one whose
//! text starts first wins, since bundling files put the project's own license on
//! top. Free-text names (`"Apache 2.0"`, `"BSD License"`) are mapped to SPDX ids
//! through an alias table. Anything unrecognised counts as "no detectable
//! license", which `license.keep_unlicensed` decides.
//!
//! ```
//! use codelm_curate::license::{detect_text, is_allowed, PERMISSIVE};
//! let mit = "Permission is hereby granted, free of charge, to any person obtaining a copy \
//!            of this software ... The above copyright notice and this permission notice \
//!            shall be included in all copies or substantial portions of the Software.";
//! assert_eq!(detect_text(mit).as_deref(), Some("MIT"));
//! let allow: Vec<String> = PERMISSIVE.iter().map(|s| s.to_string()).collect();
//! assert!(is_allowed("MIT OR GPL-3.0-only", &allow));
//! assert!(!is_allowed("MIT AND GPL-3.0-only", &allow));
//! ```

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::OnceLock;

/// Permissive licenses kept by default, after The Stack's permissive list (SPDX ids).
pub const PERMISSIVE: &[&str] = &[
    "MIT",
    "MIT-0",
    "Apache-2.0",
    "Apache-1.1",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "BSD-3-Clause-Clear",
    "0BSD",
    "ISC",
    "Unlicense",
    "CC0-1.0",
    "Zlib",
    "BSL-1.0",
    "PSF-2.0",
    "Python-2.0",
    "Artistic-2.0",
    "X11",
    "NCSA",
    "Unicode-DFS-2016",
    "Unicode-3.0",
    "UPL-1.0",
    "BlueOak-1.0.0",
    "PostgreSQL",
    "HPND",
    "WTFPL",
    "ECL-2.0",
    "AFL-3.0",
    "CC-BY-4.0",
    "CC-BY-3.0",
    "MulanPSL-2.0",
    "CNRI-Python",
    "CDLA-Permissive-1.0",
    "CDLA-Permissive-2.0",
    "ICU",
    "Unicode-TOU",
];

/// Where a record's license came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LicenseSource {
    /// The file's own header.
    Header,
    /// Package metadata (`Cargo.toml`, `package.json`, `pyproject.toml`, wheel metadata).
    Package,
    /// A `LICENSE`/`COPYING` file in the directory or an ancestor.
    LicenseFile,
    /// The input record's own license field (dataset inputs).
    Input,
}

impl LicenseSource {
    /// Name used in output metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            LicenseSource::Header => "header",
            LicenseSource::Package => "package",
            LicenseSource::LicenseFile => "license_file",
            LicenseSource::Input => "input",
        }
    }
}

struct Rule {
    id: &'static str,
    /// Normalized phrases that must all occur; the first anchors the position.
    all: Vec<String>,
    /// Normalized phrases of which none may occur.
    none: Vec<String>,
}

fn rule(id: &'static str, all: &[&str], none: &[&str]) -> Rule {
    Rule {
        id,
        all: all.iter().map(|p| normalize(p)).collect(),
        none: none.iter().map(|p| normalize(p)).collect(),
    }
}

/// Rules for full license texts; on equal anchor position the earlier rule wins.
fn text_rules() -> &'static [Rule] {
    static RULES: OnceLock<Vec<Rule>> = OnceLock::new();
    RULES.get_or_init(|| {
        vec![
            rule("Python-2.0", &["python software foundation license version 2", "beopen"], &[]),
            rule("PSF-2.0", &["python software foundation license version 2"], &[]),
            rule("PSF-2.0", &["psf license agreement for python"], &[]),
            rule("Apache-2.0", &["apache license", "version 2.0"], &[]),
            rule("Apache-1.1", &["apache software license, version 1.1"], &[]),
            rule(
                "MIT",
                &[
                    "permission is hereby granted, free of charge, to any person obtaining a copy",
                    "the above copyright notice and this permission notice shall be included",
                ],
                &[],
            ),
            rule(
                "MIT-0",
                &["permission is hereby granted, free of charge, to any person obtaining a copy"],
                &["the above copyright notice and this permission notice shall be included"],
            ),
            rule(
                "BSD-4-Clause",
                &[
                    "redistribution and use in source and binary forms",
                    "all advertising materials mentioning features",
                ],
                &[],
            ),
            rule(
                "BSD-3-Clause",
                &["redistribution and use in source and binary forms", "neither the name"],
                &[],
            ),
            rule(
                "BSD-3-Clause",
                &[
                    "redistribution and use in source and binary forms",
                    "may not be used to endorse or promote products derived",
                ],
                &[],
            ),
            rule(
                "BSD-2-Clause",
                &["redistribution and use in source and binary forms"],
                &[],
            ),
            rule(
                "ISC",
                &[
                    "permission to use, copy, modify, and/or distribute this software for any purpose with or without fee is hereby granted",
                    "provided that the above copyright notice and this permission notice appear in all copies",
                ],
                &[],
            ),
            rule(
                "ISC",
                &[
                    "permission to use, copy, modify, and distribute this software for any purpose with or without fee is hereby granted",
                    "provided that the above copyright notice and this permission notice appear in all copies",
                ],
                &[],
            ),
            rule(
                "0BSD",
                &["permission to use, copy, modify, and/or distribute this software for any purpose with or without fee is hereby granted"],
                &[],
            ),
            rule(
                "HPND",
                &["permission to use, copy, modify, and distribute this software and its documentation for any purpose"],
                &[],
            ),
            rule("Unlicense", &["this is free and unencumbered software released into the public domain"], &[]),
            rule("CC0-1.0", &["cc0 1.0 universal"], &[]),
            rule("CC0-1.0", &["creative commons legal code", "cc0"], &[]),
            rule(
                "Zlib",
                &[
                    "this software is provided as-is, without any express or implied warranty",
                    "altered source versions must be plainly marked",
                ],
                &[],
            ),
            rule("BSL-1.0", &["boost software license - version 1.0"], &[]),
            rule("MPL-2.0", &["mozilla public license version 2.0"], &[]),
            rule("MPL-2.0", &["mozilla public license, v. 2.0"], &[]),
            rule("MPL-1.1", &["mozilla public license version 1.1"], &[]),
            rule("AGPL-3.0-only", &["gnu affero general public license"], &[]),
            rule("LGPL-3.0-only", &["gnu lesser general public license version 3"], &[]),
            rule("LGPL-2.1-only", &["gnu lesser general public license version 2.1"], &[]),
            rule("LGPL-2.0-only", &["gnu library general public license"], &[]),
            rule("GPL-3.0-only", &["gnu general public license version 3"], &[]),
            rule("GPL-2.0-only", &["gnu general public license version 2"], &[]),
            rule("EPL-2.0", &["eclipse public license - v 2.0"], &[]),
            rule("EPL-1.0", &["eclipse public license - v 1.0"], &[]),
            rule("Artistic-2.0", &["the artistic license 2.0"], &[]),
            rule("WTFPL", &["do what the fuck you want to public license"], &[]),
            rule("CDDL-1.0", &["common development and distribution license"], &[]),
            rule("BlueOak-1.0.0", &["blue oak model license"], &[]),
            rule("UPL-1.0", &["universal permissive license"], &[]),
            rule("Unicode-3.0", &["unicode license v3"], &[]),
            rule("Unicode-DFS-2016", &["unicode, inc. license agreement - data files and software"], &[]),
            rule("NCSA", &["university of illinois/ncsa open source license"], &[]),
            rule("PostgreSQL", &["postgresql license", "permission to use, copy, modify, and distribute this software"], &[]),
        ]
    })
}

/// Header notices recognised in the first lines of a source file.
fn header_rules() -> &'static [Rule] {
    static RULES: OnceLock<Vec<Rule>> = OnceLock::new();
    RULES.get_or_init(|| {
        vec![
            rule("Apache-2.0", &["licensed under the apache license, version 2.0"], &[]),
            rule("MIT", &["permission is hereby granted, free of charge, to any person obtaining"], &[]),
            rule("MIT", &["licensed under the mit license"], &[]),
            rule("MIT", &["released under the mit license"], &[]),
            rule("MIT", &["use of this source code is governed by an mit-style license"], &[]),
            rule("BSD-3-Clause", &["use of this source code is governed by a bsd-style license"], &[]),
            rule("BSD-3-Clause", &["redistribution and use in source and binary forms", "neither the name"], &[]),
            rule("BSD-2-Clause", &["redistribution and use in source and binary forms"], &[]),
            rule("MPL-2.0", &["this source code form is subject to the terms of the mozilla public license, v. 2.0"], &[]),
            rule("AGPL-3.0-or-later", &["gnu affero general public license", "either version 3"], &[]),
            rule("LGPL-2.1-or-later", &["gnu lesser general public license", "either version 2.1"], &[]),
            rule("LGPL-3.0-or-later", &["gnu lesser general public license", "either version 3"], &[]),
            rule("GPL-2.0-or-later", &["gnu general public license", "either version 2"], &[]),
            rule("GPL-3.0-or-later", &["gnu general public license", "either version 3"], &[]),
            rule("GPL-2.0-only", &["gnu general public license version 2 as published"], &[]),
        ]
    })
}

/// Lowercases, drops punctuation that license texts vary in (quotes, comment
/// markers, line breaks), keeps `.` only inside numbers, and collapses spaces.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let chars: Vec<char> = text.chars().collect();
    let mut last_space = true;
    for (i, &c) in chars.iter().enumerate() {
        let keep = if c.is_alphanumeric() {
            Some(c.to_ascii_lowercase())
        } else if matches!(c, '-' | '/' | ',') {
            Some(c)
        } else if c == '.' {
            let digit_before = i > 0 && chars[i - 1].is_ascii_digit();
            let digit_after = chars.get(i + 1).is_some_and(|d| d.is_ascii_digit());
            (digit_before && digit_after).then_some('.')
        } else {
            None
        };
        match keep {
            Some(k) => {
                // Hyphens and commas glue to words; surround-space variants normalize alike.
                if matches!(k, '-' | ',') {
                    if k == '-'
                        && !last_space
                        && chars.get(i + 1).is_some_and(|n| n.is_alphanumeric())
                    {
                        out.push('-');
                        last_space = false;
                    } else if k == ',' {
                        // Commas are dropped: "license, version" and "license version" match alike.
                    } else if !last_space {
                        out.push(' ');
                        last_space = true;
                    }
                    continue;
                }
                for l in k.to_lowercase() {
                    out.push(l);
                }
                last_space = false;
            }
            None => {
                if !last_space {
                    out.push(' ');
                    last_space = true;
                }
            }
        }
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

fn best_match(rules: &[Rule], normalized: &str) -> Option<&'static str> {
    let mut best: Option<(usize, usize)> = None; // (position, rule index)
    for (idx, r) in rules.iter().enumerate() {
        if r.none.iter().any(|p| normalized.contains(p.as_str())) {
            continue;
        }
        let mut anchor = None;
        let mut ok = true;
        for (i, p) in r.all.iter().enumerate() {
            match normalized.find(p.as_str()) {
                Some(pos) => {
                    if i == 0 {
                        anchor = Some(pos);
                    }
                }
                None => {
                    ok = false;
                    break;
                }
            }
        }
        if let (true, Some(pos)) = (ok, anchor) {
            if best.is_none_or(|(bp, _)| pos < bp) {
                best = Some((pos, idx));
            }
        }
    }
    best.map(|(_, idx)| rules[idx].id)
}

/// The SPDX id of a license text (a `LICENSE` file, say), if recognised.
pub fn detect_text(text: &str) -> Option<String> {
    let n = normalize(text);
    // A README-style statement: "licensed under either of Apache License, Version 2.0 or MIT license".
    if n.contains("licensed under either of") || n.contains("dual-licensed under") {
        let apache = n.contains("apache license");
        let mit = n.contains("mit license");
        if apache && mit {
            return Some("Apache-2.0 OR MIT".into());
        }
    }
    best_match(text_rules(), &n).map(str::to_string)
}

/// The license a source file's header declares, if any.
///
/// Looks at the first 50 lines (and at most 8 KiB) for an
/// `SPDX-License-Identifier:` tag or a standard license notice.
pub fn detect_header(content: &str) -> Option<String> {
    let mut end = content.len().min(8192);
    while !content.is_char_boundary(end) {
        end -= 1;
    }
    let head = &content[..end];
    let head = match head.match_indices('\n').nth(49) {
        Some((i, _)) => &head[..i],
        None => head,
    };
    if let Some(i) = head.find("SPDX-License-Identifier:") {
        let rest = &head[i + "SPDX-License-Identifier:".len()..];
        let line = rest.lines().next().unwrap_or("");
        let line = line
            .split("*/")
            .next()
            .unwrap_or("")
            .split("-->")
            .next()
            .unwrap_or("")
            .trim()
            .trim_end_matches(['*', '#', ';', '"', '\''])
            .trim();
        if let Some(expr) = parse_expression(line) {
            return Some(expr);
        }
    }
    best_match(header_rules(), &normalize(head)).map(str::to_string)
}

/// Maps a free-text or SPDX license name from package metadata to an SPDX
/// expression; `None` when it is not recognised.
pub fn normalize_name(name: &str) -> Option<String> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return None;
    }
    if let Some(id) = alias(trimmed) {
        return Some(id.to_string());
    }
    // Cargo's legacy `MIT/Apache-2.0` means OR.
    let candidate = trimmed.replace('/', " OR ");
    if let Some(expr) = parse_expression(&candidate) {
        return Some(expr);
    }
    // Some packages put the whole license text in the field.
    if trimmed.len() > 200 {
        return detect_text(trimmed);
    }
    None
}

fn alias(name: &str) -> Option<&'static str> {
    static ALIASES: OnceLock<HashMap<String, &'static str>> = OnceLock::new();
    let map = ALIASES.get_or_init(|| {
        let pairs: &[(&str, &str)] = &[
            ("mit", "MIT"),
            ("mit license", "MIT"),
            ("the mit license", "MIT"),
            ("mit licence", "MIT"),
            ("expat", "MIT"),
            ("apache", "Apache-2.0"),
            ("apache 2", "Apache-2.0"),
            ("apache 2.0", "Apache-2.0"),
            ("apache-2", "Apache-2.0"),
            ("apache license 2.0", "Apache-2.0"),
            ("apache license, version 2.0", "Apache-2.0"),
            ("apache license version 2.0", "Apache-2.0"),
            ("apache software license", "Apache-2.0"),
            ("apache software license 2.0", "Apache-2.0"),
            ("apache software license (apache-2.0)", "Apache-2.0"),
            ("asl 2.0", "Apache-2.0"),
            ("bsd", "BSD-3-Clause"),
            ("bsd license", "BSD-3-Clause"),
            ("new bsd", "BSD-3-Clause"),
            ("new bsd license", "BSD-3-Clause"),
            ("modified bsd", "BSD-3-Clause"),
            ("modified bsd license", "BSD-3-Clause"),
            ("bsd 3-clause", "BSD-3-Clause"),
            ("bsd 3-clause license", "BSD-3-Clause"),
            ("3-clause bsd", "BSD-3-Clause"),
            ("3-clause bsd license", "BSD-3-Clause"),
            ("bsd-3", "BSD-3-Clause"),
            ("bsd 2-clause", "BSD-2-Clause"),
            ("bsd 2-clause license", "BSD-2-Clause"),
            ("2-clause bsd", "BSD-2-Clause"),
            ("simplified bsd", "BSD-2-Clause"),
            ("freebsd", "BSD-2-Clause"),
            ("isc license", "ISC"),
            ("isc license (iscl)", "ISC"),
            ("psf", "PSF-2.0"),
            ("psf license", "PSF-2.0"),
            ("psfl", "PSF-2.0"),
            ("python software foundation license", "PSF-2.0"),
            ("python software foundation", "PSF-2.0"),
            ("zlib", "Zlib"),
            ("zlib/libpng", "Zlib"),
            ("zlib/libpng license", "Zlib"),
            ("the unlicense", "Unlicense"),
            ("the unlicense (unlicense)", "Unlicense"),
            ("cc0", "CC0-1.0"),
            (
                "cc0 1.0 universal (cc0 1.0) public domain dedication",
                "CC0-1.0",
            ),
            ("boost software license 1.0 (bsl-1.0)", "BSL-1.0"),
            ("boost", "BSL-1.0"),
            ("mozilla public license 2.0 (mpl 2.0)", "MPL-2.0"),
            ("mpl 2.0", "MPL-2.0"),
            ("mpl2", "MPL-2.0"),
            ("gpl", "GPL-2.0-or-later"),
            ("gplv2", "GPL-2.0-only"),
            ("gplv3", "GPL-3.0-only"),
            ("gpl-2", "GPL-2.0-only"),
            ("gpl-3", "GPL-3.0-only"),
            ("gnu general public license v2 (gplv2)", "GPL-2.0-only"),
            ("gnu general public license v3 (gplv3)", "GPL-3.0-only"),
            (
                "gnu general public license v2 or later (gplv2+)",
                "GPL-2.0-or-later",
            ),
            (
                "gnu general public license v3 or later (gplv3+)",
                "GPL-3.0-or-later",
            ),
            ("lgpl", "LGPL-2.1-or-later"),
            ("lgplv3", "LGPL-3.0-only"),
            (
                "gnu lesser general public license v2 or later (lgplv2+)",
                "LGPL-2.0-or-later",
            ),
            (
                "gnu lesser general public license v3 (lgplv3)",
                "LGPL-3.0-only",
            ),
            (
                "gnu lesser general public license v3 or later (lgplv3+)",
                "LGPL-3.0-or-later",
            ),
            (
                "gnu library or lesser general public license (lgpl)",
                "LGPL-2.1-or-later",
            ),
            ("gnu affero general public license v3", "AGPL-3.0-only"),
            ("eclipse public license 2.0 (epl-2.0)", "EPL-2.0"),
            ("artistic license", "Artistic-2.0"),
            ("wtfpl", "WTFPL"),
        ];
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    });
    let key = name.trim().to_lowercase();
    map.get(key.as_str()).copied()
}

/// Maps a trove classifier (`License :: OSI Approved :: MIT License`) to an SPDX id.
pub fn from_classifier(classifier: &str) -> Option<String> {
    let last = classifier.rsplit("::").next()?.trim();
    if last == "OSI Approved" {
        return None;
    }
    alias(last).map(str::to_string)
}

/// Normalizes an SPDX expression (ids, `AND`, `OR`, `WITH`, parentheses; the
/// lowercase operators are accepted). `None` when it does not parse or names
/// no known-looking id.
pub fn parse_expression(text: &str) -> Option<String> {
    let tokens = tokenize(text)?;
    let mut p = Parser { tokens, pos: 0 };
    let expr = p.or()?;
    if p.pos != p.tokens.len() {
        return None;
    }
    Some(expr.render(true))
}

/// Whether an SPDX expression is satisfied by the allow-list: `OR` needs one
/// side, `AND` both, `X WITH exception` the same as `X`. `-only`, `-or-later`
/// and `+` variants of an id match the id. An unparsable expression is not allowed.
pub fn is_allowed(expr: &str, allow: &[String]) -> bool {
    let Some(tokens) = tokenize(expr) else {
        return false;
    };
    let mut p = Parser { tokens, pos: 0 };
    match p.or() {
        Some(e) if p.pos == p.tokens.len() => e.eval(allow),
        _ => false,
    }
}

/// Combines several detected licenses that all apply (e.g. The Stack's list of
/// licenses detected in a repository) into one conservative `AND` expression.
pub fn all_of(ids: &[String]) -> Option<String> {
    let set: BTreeSet<String> = ids.iter().filter_map(|s| normalize_name(s)).collect();
    match set.len() {
        0 => None,
        1 => set.into_iter().next(),
        _ => Some(
            set.into_iter()
                .map(|e| if e.contains(' ') { format!("({e})") } else { e })
                .collect::<Vec<_>>()
                .join(" AND "),
        ),
    }
}

/// Combines alternatives (LICENSE-MIT and LICENSE-APACHE side by side) with `OR`.
pub fn any_of(ids: &BTreeSet<String>) -> Option<String> {
    match ids.len() {
        0 => None,
        1 => ids.iter().next().cloned(),
        _ => Some(
            ids.iter()
                .map(|e| {
                    if e.contains(' ') {
                        format!("({e})")
                    } else {
                        e.clone()
                    }
                })
                .collect::<Vec<_>>()
                .join(" OR "),
        ),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Id(String),
    And,
    Or,
    With,
    Open,
    Close,
}

fn tokenize(text: &str) -> Option<Vec<Token>> {
    let mut tokens = Vec::new();
    let spaced = text.replace('(', " ( ").replace(')', " ) ");
    for word in spaced.split_whitespace() {
        let t = match word {
            "AND" | "and" => Token::And,
            "OR" | "or" => Token::Or,
            "WITH" | "with" => Token::With,
            "(" => Token::Open,
            ")" => Token::Close,
            w if w
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | ':'))
                && w.chars().next().is_some_and(|c| c.is_ascii_alphanumeric()) =>
            {
                Token::Id(canonical_id(w))
            }
            _ => return None,
        };
        tokens.push(t);
    }
    if tokens.is_empty() {
        None
    } else {
        Some(tokens)
    }
}

/// Fixes the case of well-known ids (`mit` → `MIT`, `apache-2.0` → `Apache-2.0`).
fn canonical_id(word: &str) -> String {
    const KNOWN: &[&str] = &[
        "MIT",
        "MIT-0",
        "Apache-2.0",
        "Apache-1.1",
        "BSD-2-Clause",
        "BSD-3-Clause",
        "0BSD",
        "ISC",
        "Unlicense",
        "CC0-1.0",
        "Zlib",
        "BSL-1.0",
        "PSF-2.0",
        "Python-2.0",
        "MPL-2.0",
        "GPL-2.0",
        "GPL-3.0",
        "LGPL-2.1",
        "LGPL-3.0",
        "AGPL-3.0",
        "Unicode-DFS-2016",
        "Unicode-3.0",
        "Artistic-2.0",
        "WTFPL",
        "EPL-2.0",
    ];
    KNOWN
        .iter()
        .find(|k| k.eq_ignore_ascii_case(word))
        .map(|k| k.to_string())
        .unwrap_or_else(|| word.to_string())
}

#[derive(Debug)]
enum Expr {
    Id(String),
    With(Box<Expr>, String),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

impl Expr {
    fn render(&self, top: bool) -> String {
        match self {
            Expr::Id(id) => id.clone(),
            Expr::With(e, exc) => format!("{} WITH {exc}", e.render(false)),
            Expr::And(xs) | Expr::Or(xs) => {
                let op = if matches!(self, Expr::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                let s = xs
                    .iter()
                    .map(|x| x.render(false))
                    .collect::<Vec<_>>()
                    .join(op);
                if top {
                    s
                } else {
                    format!("({s})")
                }
            }
        }
    }

    fn eval(&self, allow: &[String]) -> bool {
        match self {
            Expr::Id(id) => id_allowed(id, allow),
            Expr::With(e, _) => e.eval(allow),
            Expr::And(xs) => xs.iter().all(|x| x.eval(allow)),
            Expr::Or(xs) => xs.iter().any(|x| x.eval(allow)),
        }
    }
}

fn id_allowed(id: &str, allow: &[String]) -> bool {
    let base = id
        .trim_end_matches('+')
        .trim_end_matches("-only")
        .trim_end_matches("-or-later");
    allow
        .iter()
        .any(|a| a.eq_ignore_ascii_case(id) || a.eq_ignore_ascii_case(base))
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn or(&mut self) -> Option<Expr> {
        let mut xs = vec![self.and()?];
        while self.peek() == Some(&Token::Or) {
            self.pos += 1;
            xs.push(self.and()?);
        }
        Some(if xs.len() == 1 {
            xs.pop()?
        } else {
            Expr::Or(xs)
        })
    }

    fn and(&mut self) -> Option<Expr> {
        let mut xs = vec![self.with()?];
        while self.peek() == Some(&Token::And) {
            self.pos += 1;
            xs.push(self.with()?);
        }
        Some(if xs.len() == 1 {
            xs.pop()?
        } else {
            Expr::And(xs)
        })
    }

    fn with(&mut self) -> Option<Expr> {
        let e = self.atom()?;
        if self.peek() == Some(&Token::With) {
            self.pos += 1;
            match self.tokens.get(self.pos) {
                Some(Token::Id(exc)) => {
                    let exc = exc.clone();
                    self.pos += 1;
                    return Some(Expr::With(Box::new(e), exc));
                }
                _ => return None,
            }
        }
        Some(e)
    }

    fn atom(&mut self) -> Option<Expr> {
        match self.tokens.get(self.pos)?.clone() {
            Token::Id(id) => {
                self.pos += 1;
                // Bare words like "Apache" or "BSD" are names, not SPDX ids.
                if !looks_like_spdx(&id) {
                    return None;
                }
                Some(Expr::Id(id))
            }
            Token::Open => {
                self.pos += 1;
                let e = self.or()?;
                if self.peek() != Some(&Token::Close) {
                    return None;
                }
                self.pos += 1;
                Some(e)
            }
            _ => None,
        }
    }
}

fn looks_like_spdx(id: &str) -> bool {
    const SINGLE_WORD: &[&str] = &[
        "MIT",
        "ISC",
        "Unlicense",
        "Zlib",
        "WTFPL",
        "X11",
        "NCSA",
        "HPND",
        "PostgreSQL",
        "curl",
        "Beerware",
    ];
    let has_digit = id.chars().any(|c| c.is_ascii_digit());
    let has_letter = id.chars().any(|c| c.is_ascii_alphabetic());
    SINGLE_WORD.contains(&id)
        || id.starts_with("LicenseRef-")
        // `0BSD`, `X11`: letters and digits in one word.
        || (has_digit && has_letter)
        || (id.contains('-') && id.chars().any(|c| c.is_ascii_uppercase()))
}

/// Names of files whose text is a license (`LICENSE`, `LICENSE-MIT`, `COPYING.txt`, ...).
pub fn is_license_file_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["LICENSE", "LICENCE", "COPYING", "UNLICENSE"]
        .iter()
        .any(|p| upper.starts_with(p))
        && !upper.ends_with(".PY")
        && !upper.ends_with(".RS")
        && !upper.ends_with(".HTML")
}

/// The license declared by a package manifest (`Cargo.toml`, `package.json`,
/// `pyproject.toml`) in `dir`, if it declares a recognisable one.
pub fn from_manifest(dir: &Path) -> Option<String> {
    if let Ok(text) = std::fs::read_to_string(dir.join("Cargo.toml")) {
        if let Ok(doc) = text.parse::<toml::Table>() {
            let package = doc.get("package").and_then(|p| p.as_table());
            if let Some(l) = package
                .and_then(|p| p.get("license"))
                .and_then(|l| l.as_str())
            {
                if let Some(e) = normalize_name(l) {
                    return Some(e);
                }
            }
            if let Some(f) = package
                .and_then(|p| p.get("license-file"))
                .and_then(|l| l.as_str())
            {
                if let Ok(t) = std::fs::read_to_string(dir.join(f)) {
                    if let Some(e) = detect_text(&t) {
                        return Some(e);
                    }
                }
            }
        }
    }
    if let Ok(text) = std::fs::read_to_string(dir.join("package.json")) {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
            let l = match v.get("license") {
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(serde_json::Value::Object(o)) => {
                    o.get("type").and_then(|t| t.as_str()).map(str::to_string)
                }
                _ => None,
            };
            if let Some(e) = l.as_deref().and_then(normalize_name) {
                return Some(e);
            }
        }
    }
    if let Ok(text) = std::fs::read_to_string(dir.join("pyproject.toml")) {
        if let Ok(doc) = text.parse::<toml::Table>() {
            let project = doc.get("project").and_then(|p| p.as_table());
            match project.and_then(|p| p.get("license")) {
                Some(toml::Value::String(s)) => {
                    if let Some(e) = normalize_name(s) {
                        return Some(e);
                    }
                }
                Some(toml::Value::Table(t)) => {
                    if let Some(e) = t
                        .get("text")
                        .and_then(|t| t.as_str())
                        .and_then(normalize_name)
                    {
                        return Some(e);
                    }
                    if let Some(f) = t.get("file").and_then(|f| f.as_str()) {
                        if let Ok(t) = std::fs::read_to_string(dir.join(f)) {
                            if let Some(e) = detect_text(&t) {
                                return Some(e);
                            }
                        }
                    }
                }
                _ => {}
            }
            if let Some(classifiers) = project
                .and_then(|p| p.get("classifiers"))
                .and_then(|c| c.as_array())
            {
                let ids: BTreeSet<String> = classifiers
                    .iter()
                    .filter_map(|c| c.as_str())
                    .filter(|c| c.starts_with("License ::"))
                    .filter_map(from_classifier)
                    .collect();
                if let Some(e) = any_of(&ids) {
                    return Some(e);
                }
            }
        }
    }
    None
}

/// The license of the `LICENSE`/`COPYING` files directly in `dir`: one file's
/// license, or several files' licenses joined with `OR` (`LICENSE-MIT` next to
/// `LICENSE-APACHE` is the usual dual license).
pub fn from_license_files(dir: &Path) -> Option<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| is_license_file_name(n))
        .collect();
    names.sort();
    let mut ids = BTreeSet::new();
    for n in names {
        if let Ok(text) = read_prefix(&dir.join(&n), 256 << 10) {
            if let Some(id) = detect_text(&text) {
                ids.insert(id);
            }
        }
    }
    any_of(&ids)
}

/// A wheel's license from its `*.dist-info` directory: `License-Expression`,
/// then its license files, then the `License:` field, then classifiers.
pub fn from_dist_info(dist_info: &Path) -> Option<String> {
    let metadata = std::fs::read_to_string(dist_info.join("METADATA")).ok()?;
    let mut license_field = None;
    let mut classifiers = BTreeSet::new();
    let mut license_files = Vec::new();
    for line in metadata.lines() {
        if line.is_empty() {
            break; // The body (long description) follows the headers.
        }
        if let Some(v) = line.strip_prefix("License-Expression:") {
            if let Some(e) = parse_expression(v.trim()) {
                return Some(e);
            }
        } else if let Some(v) = line.strip_prefix("License:") {
            license_field = Some(v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("Classifier: License ::") {
            if let Some(id) = from_classifier(&format!("License ::{v}")) {
                classifiers.insert(id);
            }
        } else if let Some(v) = line.strip_prefix("License-File:") {
            license_files.push(v.trim().to_string());
        }
    }
    let mut ids = BTreeSet::new();
    for f in &license_files {
        for candidate in [dist_info.join("licenses").join(f), dist_info.join(f)] {
            if let Ok(text) = read_prefix(&candidate, 256 << 10) {
                if let Some(id) = detect_text(&text) {
                    ids.insert(id);
                }
                break;
            }
        }
    }
    if license_files.is_empty() {
        if let Some(e) = from_license_files(dist_info) {
            return Some(e);
        }
    }
    // Several license files in one wheel (a project's own plus bundled ones)
    // are all in force: the first listed is the project's, the conservative
    // reading is AND, but wheels list NOTICE/AUTHORS too, so only
    // recognised licenses count.
    if !ids.is_empty() {
        let v: Vec<String> = ids.into_iter().collect();
        return all_of(&v);
    }
    if let Some(e) = license_field.as_deref().and_then(normalize_name) {
        return Some(e);
    }
    any_of(&classifiers)
}

fn read_prefix(path: &Path, limit: usize) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut buf = Vec::new();
    f.by_ref().take(limit as u64).read_to_end(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow() -> Vec<String> {
        PERMISSIVE.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn normalization_ignores_layout_and_comment_markers() {
        assert_eq!(
            normalize("# Licensed under the Apache License,\n#   Version 2.0 (the \"License\");"),
            "licensed under the apache license version 2.0 the license"
        );
        assert_eq!(
            normalize("Boost Software License - Version 1.0"),
            "boost software license version 1.0"
        );
        assert_eq!(normalize("as-is"), "as-is");
    }

    #[test]
    fn recognises_license_texts() {
        let bsd3 = "Copyright (c) 2005, NumPy Developers.\nAll rights reserved.\n\n\
            Redistribution and use in source and binary forms, with or without\nmodification, are permitted \
            provided that the following conditions are met:\n ... * Neither the name of the NumPy Developers \
            nor the names of any contributors may be used to endorse";
        assert_eq!(detect_text(bsd3).as_deref(), Some("BSD-3-Clause"));
        let bsd2 =
            "Redistribution and use in source and binary forms, with or without modification, are \
            permitted provided that ... THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS";
        assert_eq!(detect_text(bsd2).as_deref(), Some("BSD-2-Clause"));
        let isc = "Permission to use, copy, modify, and/or distribute this software for any purpose with or \
            without fee is hereby granted, provided that the above copyright notice and this permission \
            notice appear in all copies.";
        assert_eq!(detect_text(isc).as_deref(), Some("ISC"));
        let zero_bsd = "Permission to use, copy, modify, and/or distribute this software for any purpose with or \
            without fee is hereby granted.\n\nTHE SOFTWARE IS PROVIDED \"AS IS\"";
        assert_eq!(detect_text(zero_bsd).as_deref(), Some("0BSD"));
        let apache = "\n                                 Apache License\n                           Version 2.0, January 2004\n";
        assert_eq!(detect_text(apache).as_deref(), Some("Apache-2.0"));
        let lgpl = "GNU LESSER GENERAL PUBLIC LICENSE\n Version 3, 29 June 2007\n ... version 3 of the GNU General Public License";
        assert_eq!(detect_text(lgpl).as_deref(), Some("LGPL-3.0-only"));
        let gpl3 = "GNU GENERAL PUBLIC LICENSE\n                       Version 3, 29 June 2007";
        assert_eq!(detect_text(gpl3).as_deref(), Some("GPL-3.0-only"));
        let unlicense = "This is free and unencumbered software released into the public domain.";
        assert_eq!(detect_text(unlicense).as_deref(), Some("Unlicense"));
        let zlib =
            "This software is provided 'as-is', without any express or implied warranty. ... \
            2. Altered source versions must be plainly marked as such";
        assert_eq!(detect_text(zlib).as_deref(), Some("Zlib"));
        assert_eq!(detect_text("All rights reserved. Do not copy."), None);
    }

    #[test]
    fn bundled_licenses_take_the_first() {
        let numpy_like = "Copyright (c) 2005 NumPy Developers\nRedistribution and use in source and binary forms \
            ... Neither the name of the NumPy Developers ...\n\n----\nThis binary distribution also bundles:\n\
            GNU GENERAL PUBLIC LICENSE\nVersion 3, 29 June 2007";
        assert_eq!(detect_text(numpy_like).as_deref(), Some("BSD-3-Clause"));
    }

    #[test]
    fn cpython_license_is_python_2() {
        let text = "A. HISTORY OF THE SOFTWARE\n... BeOpen.com ...\nB. TERMS AND CONDITIONS\n\
            PYTHON SOFTWARE FOUNDATION LICENSE VERSION 2\n----\n1. This LICENSE AGREEMENT ...\n\
            ZERO-CLAUSE BSD LICENSE FOR CODE IN THE PYTHON DOCUMENTATION\nPermission to use, copy, modify, \
            and/or distribute this software for any purpose with or without fee is hereby granted.";
        assert_eq!(detect_text(text).as_deref(), Some("Python-2.0"));
    }

    #[test]
    fn headers() {
        assert_eq!(
            detect_header("// SPDX-License-Identifier: MIT OR Apache-2.0\nfn main() {}\n")
                .as_deref(),
            Some("MIT OR Apache-2.0")
        );
        assert_eq!(
            detect_header("/* SPDX-License-Identifier: GPL-2.0-only */\nint x;\n").as_deref(),
            Some("GPL-2.0-only")
        );
        assert_eq!(
            detect_header("# Licensed under the Apache License, Version 2.0 (the \"License\");\n# you may not").as_deref(),
            Some("Apache-2.0")
        );
        assert_eq!(
            detect_header("# This program is free software; you can redistribute it and/or modify\n# it under the \
                terms of the GNU General Public License as published by\n# the Free Software Foundation; either \
                version 2 of the License, or\n").as_deref(),
            Some("GPL-2.0-or-later")
        );
        assert_eq!(
            detect_header("import os\n# the MIT license is fine\n"),
            None
        );
    }

    #[test]
    fn names_and_expressions() {
        assert_eq!(
            normalize_name("MIT/Apache-2.0").as_deref(),
            Some("MIT OR Apache-2.0")
        );
        assert_eq!(normalize_name("Apache 2.0").as_deref(), Some("Apache-2.0"));
        assert_eq!(
            normalize_name("BSD License").as_deref(),
            Some("BSD-3-Clause")
        );
        assert_eq!(
            normalize_name("mit or apache-2.0").as_deref(),
            Some("MIT OR Apache-2.0")
        );
        assert_eq!(normalize_name("UNKNOWN"), None);
        assert_eq!(normalize_name("Dual License"), None);
        assert_eq!(
            from_classifier("License :: OSI Approved :: MIT License").as_deref(),
            Some("MIT")
        );
        assert_eq!(
            parse_expression("(MIT OR Apache-2.0) AND Unicode-DFS-2016").as_deref(),
            Some("(MIT OR Apache-2.0) AND Unicode-DFS-2016")
        );
        assert_eq!(
            parse_expression("Apache-2.0 WITH LLVM-exception").as_deref(),
            Some("Apache-2.0 WITH LLVM-exception")
        );
        assert_eq!(parse_expression("MIT OR"), None);
        // Regression (cargo registry, adler2): `0BSD` is an id, not a word.
        assert_eq!(
            normalize_name("0BSD OR MIT OR Apache-2.0").as_deref(),
            Some("0BSD OR MIT OR Apache-2.0")
        );
        assert_eq!(normalize_name("Apache").as_deref(), Some("Apache-2.0"));
        assert_eq!(parse_expression("Apache"), None);
    }

    #[test]
    fn allow_list_evaluation() {
        let a = allow();
        assert!(is_allowed("MIT", &a));
        assert!(is_allowed("Apache-2.0 WITH LLVM-exception", &a));
        assert!(is_allowed("(MIT OR Apache-2.0) AND Unicode-DFS-2016", &a));
        assert!(!is_allowed("GPL-3.0-or-later", &a));
        assert!(!is_allowed("MIT AND LGPL-2.1-only", &a));
        assert!(is_allowed("LGPL-2.1-or-later OR MIT", &a));
        assert!(is_allowed("GPL-2.0-or-later", &["GPL-2.0".to_string()]));
        assert!(!is_allowed("garbage ((", &a));
        assert!(is_allowed("0BSD OR Apache-2.0 OR MIT", &a));
        assert!(is_allowed("Apache-2.0 AND CNRI-Python", &a));
        assert_eq!(
            all_of(&["MIT".into(), "GPL-3.0".into()]).as_deref(),
            Some("GPL-3.0 AND MIT")
        );
    }

    #[test]
    fn manifests_and_license_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("Cargo.toml"),
            "[package]\nname = \"x\"\nlicense = \"MIT/Apache-2.0\"\n",
        )
        .unwrap();
        assert_eq!(
            from_manifest(dir.path()).as_deref(),
            Some("MIT OR Apache-2.0")
        );
        let d2 = tempfile::tempdir().unwrap();
        std::fs::write(d2.path().join("LICENSE-MIT"), "Permission is hereby granted, free of charge, to any person obtaining a copy ... The above copyright notice and this permission notice shall be included").unwrap();
        std::fs::write(
            d2.path().join("LICENSE-APACHE"),
            "Apache License\nVersion 2.0, January 2004",
        )
        .unwrap();
        assert_eq!(
            from_license_files(d2.path()).as_deref(),
            Some("Apache-2.0 OR MIT")
        );
        let d3 = tempfile::tempdir().unwrap();
        let info = d3.path().join("pkg-1.0.dist-info");
        std::fs::create_dir(&info).unwrap();
        std::fs::write(info.join("METADATA"), "Metadata-Version: 2.1\nName: pkg\nLicense: BSD\nClassifier: License :: OSI Approved :: BSD License\n\nbody").unwrap();
        assert_eq!(from_dist_info(&info).as_deref(), Some("BSD-3-Clause"));
    }
}

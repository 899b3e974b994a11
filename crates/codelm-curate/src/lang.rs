//! Language detection from file names, extensions and shebang lines.
//!
//! A table, not a classifier: a file's language is what its name says (as in
//! The Stack, which assigned languages by extension), and a shebang decides
//! only for files whose name says nothing. The table covers every MultiPL-E
//! language and the other languages of The Stack that code models train on.
//! Ambiguous extensions take their most common meaning in code corpora
//! (`.h` is C, `.m` Objective-C, `.pl` Perl, `.v` Verilog).
//!
//! ```
//! use codelm_curate::lang::detect;
//! assert_eq!(detect("src/main.rs", ""), Some("Rust"));
//! assert_eq!(detect("bin/tool", "#!/usr/bin/env python3\nprint(1)\n"), Some("Python"));
//! assert_eq!(detect("README", "hello"), None);
//! ```

/// One language: its name, extensions (lowercase, without the dot), exact file
/// names, and shebang interpreters.
#[derive(Debug, Clone, Copy)]
pub struct Language {
    /// Name as used in reports, records and the allow-list.
    pub name: &'static str,
    /// Extensions, lowercase, without the dot.
    pub extensions: &'static [&'static str],
    /// Exact file names (case-sensitive).
    pub filenames: &'static [&'static str],
    /// Interpreter names in a shebang line (version suffixes are ignored).
    pub interpreters: &'static [&'static str],
}

const fn lang(
    name: &'static str,
    extensions: &'static [&'static str],
    filenames: &'static [&'static str],
    interpreters: &'static [&'static str],
) -> Language {
    Language {
        name,
        extensions,
        filenames,
        interpreters,
    }
}

/// Every language the detector knows. The first 19 rows are MultiPL-E's original
/// languages; the next 7 its later additions.
pub const LANGUAGES: &[Language] = &[
    lang(
        "C++",
        &[
            "cpp", "cc", "cxx", "c++", "hpp", "hh", "hxx", "h++", "ipp", "tpp", "inl",
        ],
        &[],
        &[],
    ),
    lang("C#", &["cs", "csx"], &[], &[]),
    lang("D", &["d", "di"], &[], &[]),
    lang("Go", &["go"], &[], &[]),
    lang("Java", &["java"], &[], &[]),
    lang("Julia", &["jl"], &[], &["julia"]),
    lang(
        "JavaScript",
        &["js", "mjs", "cjs", "jsx"],
        &[],
        &["node", "nodejs"],
    ),
    lang("Lua", &["lua"], &[], &["lua", "luajit"]),
    lang(
        "PHP",
        &["php", "php3", "php4", "php5", "phtml"],
        &[],
        &["php"],
    ),
    lang("Perl", &["pl", "pm", "t", "pod"], &[], &["perl"]),
    lang(
        "Python",
        &["py", "pyi", "pyw"],
        &["SConstruct", "SConscript"],
        &["python", "pypy"],
    ),
    lang("R", &["r", "rmd"], &[], &["rscript"]),
    lang(
        "Ruby",
        &["rb", "rake", "gemspec", "ru"],
        &["Rakefile", "Gemfile", "Podfile", "Vagrantfile"],
        &["ruby"],
    ),
    lang("Racket", &["rkt", "rktl"], &[], &["racket"]),
    lang("Rust", &["rs"], &[], &[]),
    lang("Scala", &["scala", "sc", "sbt"], &[], &["scala"]),
    lang(
        "Shell",
        &["sh", "bash", "zsh", "ksh", "fish"],
        &[".bashrc", ".bash_profile", ".zshrc", ".profile"],
        &["sh", "bash", "zsh", "ksh", "dash", "ash", "fish"],
    ),
    lang("Swift", &["swift"], &[], &["swift"]),
    lang(
        "TypeScript",
        &["ts", "tsx", "mts", "cts"],
        &[],
        &["ts-node", "deno", "bun"],
    ),
    lang(
        "Clojure",
        &["clj", "cljs", "cljc", "edn"],
        &[],
        &["clojure", "bb"],
    ),
    lang("Dart", &["dart"], &[], &["dart"]),
    lang("Elixir", &["ex", "exs"], &[], &["elixir"]),
    lang("Elm", &["elm"], &[], &[]),
    lang("F#", &["fs", "fsi", "fsx"], &[], &[]),
    lang(
        "Haskell",
        &["hs", "lhs"],
        &[],
        &["runhaskell", "runghc", "stack"],
    ),
    lang("OCaml", &["ml", "mli"], &[], &["ocaml"]),
    lang("Ada", &["adb", "ads", "ada"], &[], &[]),
    lang("C", &["c", "h"], &[], &[]),
    lang("Objective-C", &["m", "mm"], &[], &[]),
    lang("Kotlin", &["kt", "kts"], &[], &["kotlin"]),
    lang(
        "Groovy",
        &["groovy", "gradle"],
        &["Jenkinsfile"],
        &["groovy"],
    ),
    lang("Erlang", &["erl", "hrl"], &["rebar.config"], &["escript"]),
    lang(
        "Fortran",
        &["f", "f77", "f90", "f95", "f03", "f08", "for"],
        &[],
        &[],
    ),
    lang("Pascal", &["pas", "pp", "dpr"], &[], &[]),
    lang("Visual Basic", &["vb", "bas", "vbs"], &[], &[]),
    lang(
        "PowerShell",
        &["ps1", "psm1", "psd1"],
        &[],
        &["pwsh", "powershell"],
    ),
    lang("Batchfile", &["bat", "cmd"], &[], &[]),
    lang("Assembly", &["asm", "s", "nasm"], &[], &[]),
    lang("Zig", &["zig"], &[], &[]),
    lang("Nim", &["nim", "nims"], &[], &[]),
    lang("Crystal", &["cr"], &[], &["crystal"]),
    lang("Scheme", &["scm", "ss"], &[], &["guile", "csi"]),
    lang(
        "Common Lisp",
        &["lisp", "lsp", "cl"],
        &[],
        &["sbcl", "clisp"],
    ),
    lang("Emacs Lisp", &["el"], &[], &["emacs"]),
    lang("Prolog", &["pro", "prolog"], &[], &["swipl"]),
    lang("Tcl", &["tcl", "tk"], &[], &["tclsh", "wish"]),
    lang("Awk", &["awk"], &[], &["awk", "gawk", "mawk"]),
    lang("Verilog", &["v", "sv", "svh", "vh"], &[], &[]),
    lang("VHDL", &["vhd", "vhdl"], &[], &[]),
    lang("Solidity", &["sol"], &[], &[]),
    lang("Cython", &["pyx", "pxd", "pxi"], &[], &[]),
    lang("CUDA", &["cu", "cuh"], &[], &[]),
    lang("GLSL", &["glsl", "vert", "frag", "comp"], &[], &[]),
    lang("SQL", &["sql"], &[], &[]),
    lang(
        "Makefile",
        &["mk", "mak"],
        &["Makefile", "makefile", "GNUmakefile"],
        &["make"],
    ),
    lang(
        "Dockerfile",
        &["dockerfile"],
        &["Dockerfile", "Containerfile"],
        &[],
    ),
    lang("CMake", &["cmake"], &["CMakeLists.txt"], &[]),
    lang(
        "Starlark",
        &["bzl", "star"],
        &["BUILD", "BUILD.bazel", "WORKSPACE", "Tiltfile"],
        &[],
    ),
    lang("Protocol Buffer", &["proto"], &[], &[]),
    lang("Thrift", &["thrift"], &[], &[]),
    lang("HTML", &["html", "htm", "xhtml"], &[], &[]),
    lang("CSS", &["css", "scss", "sass", "less"], &[], &[]),
    lang("Vue", &["vue"], &[], &[]),
    lang("Svelte", &["svelte"], &[], &[]),
    lang(
        "XML",
        &["xml", "xsd", "xsl", "xslt", "svg", "plist"],
        &[],
        &[],
    ),
    lang("JSON", &["json", "jsonc", "json5", "ipynb"], &[], &[]),
    lang("YAML", &["yml", "yaml"], &[], &[]),
    lang("TOML", &["toml"], &["Cargo.lock"], &[]),
    lang("Markdown", &["md", "markdown"], &[], &[]),
    lang("reStructuredText", &["rst"], &[], &[]),
    lang("TeX", &["tex", "sty", "cls", "bib"], &[], &[]),
    lang("Jinja", &["jinja", "jinja2", "j2"], &[], &[]),
    lang("Nix", &["nix"], &[], &[]),
    lang("HCL", &["hcl", "tf", "tfvars"], &[], &[]),
    lang("GraphQL", &["graphql", "gql"], &[], &[]),
    lang("Matlab", &["matlab"], &[], &[]),
    lang("Smalltalk", &["st"], &[], &[]),
    lang("COBOL", &["cob", "cbl"], &[], &[]),
    lang("Haxe", &["hx"], &[], &[]),
    lang("PureScript", &["purs"], &[], &[]),
    lang("Idris", &["idr"], &[], &[]),
    lang("Agda", &["agda"], &[], &[]),
    lang("Lean", &["lean"], &[], &[]),
    lang("Coq", &["coq"], &[], &[]),
    lang("Standard ML", &["sml", "sig"], &[], &[]),
    lang("Mojo", &["mojo"], &[], &[]),
    lang("V", &["vv"], &[], &[]),
    lang("Gleam", &["gleam"], &[], &[]),
];

/// The language of a file, from its path and (for a shebang) its content.
///
/// `path` may be a full path; only its last component is looked at.
pub fn detect(path: &str, content: &str) -> Option<&'static str> {
    detect_from_path(path).or_else(|| {
        if has_extension(path) {
            None
        } else {
            detect_from_shebang(content)
        }
    })
}

/// The language named by a file's name or extension alone.
pub fn detect_from_path(path: &str) -> Option<&'static str> {
    let name = file_name(path);
    if let Some(l) = LANGUAGES.iter().find(|l| l.filenames.contains(&name)) {
        return Some(l.name);
    }
    let (_, ext) = name.rsplit_once('.')?;
    if ext.is_empty() || name.starts_with('.') && name.matches('.').count() == 1 {
        return None;
    }
    let ext = ext.to_ascii_lowercase();
    LANGUAGES
        .iter()
        .find(|l| l.extensions.contains(&ext.as_str()))
        .map(|l| l.name)
}

/// Whether a file name has an extension (so a shebang cannot decide its language).
pub fn has_extension(path: &str) -> bool {
    let name = file_name(path);
    match name.rsplit_once('.') {
        Some((stem, ext)) => !stem.is_empty() && !ext.is_empty(),
        None => false,
    }
}

/// The language named by a `#!` first line.
pub fn detect_from_shebang(content: &str) -> Option<&'static str> {
    let first = content.lines().next()?.strip_prefix("#!")?;
    let mut words = first.split_whitespace();
    let mut prog = file_name(words.next()?);
    if prog == "env" {
        // `#!/usr/bin/env -S python3 -u` names the interpreter after env's own flags.
        prog = words.find(|w| !w.starts_with('-') && !w.contains('='))?;
        prog = file_name(prog);
    }
    // `python3.11` and `python3` are `python`.
    let base = prog.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    let base = base.to_ascii_lowercase();
    LANGUAGES
        .iter()
        .find(|l| l.interpreters.contains(&base.as_str()))
        .map(|l| l.name)
}

/// Whether `name` is a language of the table.
pub fn is_known(name: &str) -> bool {
    LANGUAGES.iter().any(|l| l.name == name)
}

fn file_name(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(path: &str, content: &str, expected: Option<&str>) {
        assert_eq!(detect(path, content), expected, "{path}");
    }

    #[test]
    fn every_multipl_e_language_has_its_extension() {
        // MultiPL-E's file extensions, as in its `--lang` names.
        for (ext, name) in [
            ("cpp", "C++"),
            ("cs", "C#"),
            ("d", "D"),
            ("go", "Go"),
            ("java", "Java"),
            ("jl", "Julia"),
            ("js", "JavaScript"),
            ("lua", "Lua"),
            ("php", "PHP"),
            ("pl", "Perl"),
            ("py", "Python"),
            ("r", "R"),
            ("rb", "Ruby"),
            ("rkt", "Racket"),
            ("rs", "Rust"),
            ("scala", "Scala"),
            ("sh", "Shell"),
            ("swift", "Swift"),
            ("ts", "TypeScript"),
            ("clj", "Clojure"),
            ("dart", "Dart"),
            ("ex", "Elixir"),
            ("elm", "Elm"),
            ("fs", "F#"),
            ("hs", "Haskell"),
            ("ml", "OCaml"),
            ("adb", "Ada"),
        ] {
            check(&format!("dir/x.{ext}"), "", Some(name));
        }
    }

    #[test]
    fn names_extensions_and_shebangs() {
        check("a/B.PY", "", Some("Python"));
        check("Makefile", "", Some("Makefile"));
        check("x/CMakeLists.txt", "", Some("CMake"));
        check("notes.txt", "#!/bin/sh\n", None);
        check("run", "#!/bin/bash\necho hi\n", Some("Shell"));
        check(
            "run",
            "#!/usr/bin/env -S node --harmony\n",
            Some("JavaScript"),
        );
        check("run", "#!/usr/local/bin/python3.11\n", Some("Python"));
        check("run", "no shebang", None);
        check(".gitignore", "", None);
        check("archive.tar.gz", "", None);
    }

    #[test]
    fn table_has_no_duplicate_extension() {
        let mut seen = std::collections::HashMap::new();
        for l in LANGUAGES {
            for e in l.extensions {
                if let Some(prev) = seen.insert(*e, l.name) {
                    panic!("extension {e} in both {prev} and {}", l.name);
                }
            }
        }
    }
}

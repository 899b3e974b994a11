//! Languages as data: how to compile and run a source file.
//!
//! Adding a language is adding an entry to [`LANGUAGES`]. Commands are argv
//! templates where `{main}` is the main file name and `{stem}` the main file
//! name without its extension; a program name without `/` is looked up on
//! the sandbox's PATH.

/// How to build and run programs of one language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Language {
    /// Canonical name (`python`, `cpp`, ...).
    pub name: &'static str,
    /// Other accepted names.
    pub aliases: &'static [&'static str],
    /// Source file extension without the dot.
    pub extension: &'static str,
    /// Main file name used when a job gives only source text.
    pub default_main: &'static str,
    /// Optional compile command, run in the sandbox before `run`.
    pub compile: Option<&'static [&'static str]>,
    /// Run command.
    pub run: &'static [&'static str],
    /// Whether `RLIMIT_AS` may cap memory (runtimes reserving large virtual
    /// ranges, such as the JVM, V8 and Go, rely on the cgroup instead).
    pub limits_address_space: bool,
    /// Texts in stderr that mean the program ran out of memory.
    pub memory_error_markers: &'static [&'static str],
}

/// The runner table.
pub const LANGUAGES: &[Language] = &[
    Language {
        name: "python",
        aliases: &["python3", "py"],
        extension: "py",
        default_main: "main.py",
        compile: None,
        run: &["python3", "{main}"],
        limits_address_space: true,
        memory_error_markers: &["MemoryError"],
    },
    Language {
        name: "node",
        aliases: &["javascript", "js"],
        extension: "js",
        default_main: "main.js",
        compile: None,
        run: &["node", "{main}"],
        limits_address_space: false,
        memory_error_markers: &["JavaScript heap out of memory"],
    },
    Language {
        name: "cpp",
        aliases: &["c++", "g++"],
        extension: "cpp",
        default_main: "main.cpp",
        compile: Some(&["g++", "-O2", "-std=c++17", "-o", "{stem}", "{main}"]),
        run: &["./{stem}"],
        limits_address_space: true,
        memory_error_markers: &["std::bad_alloc"],
    },
    Language {
        name: "c",
        aliases: &["gcc"],
        extension: "c",
        default_main: "main.c",
        compile: Some(&["gcc", "-O2", "-o", "{stem}", "{main}", "-lm"]),
        run: &["./{stem}"],
        limits_address_space: true,
        memory_error_markers: &[],
    },
    Language {
        name: "java",
        aliases: &[],
        extension: "java",
        default_main: "Main.java",
        compile: None,
        // Single-file source launch (JEP 330) compiles in memory.
        run: &[
            "java",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-XX:-UsePerfData",
            "{main}",
        ],
        limits_address_space: false,
        memory_error_markers: &["java.lang.OutOfMemoryError"],
    },
    Language {
        name: "rust",
        aliases: &["rs", "rustc"],
        extension: "rs",
        default_main: "main.rs",
        compile: Some(&["rustc", "-O", "-o", "{stem}", "{main}"]),
        run: &["./{stem}"],
        limits_address_space: false,
        memory_error_markers: &["memory allocation of"],
    },
    Language {
        name: "go",
        aliases: &["golang"],
        extension: "go",
        default_main: "main.go",
        compile: Some(&["go", "build", "-o", "{stem}", "{main}"]),
        run: &["./{stem}"],
        limits_address_space: false,
        memory_error_markers: &["out of memory"],
    },
    Language {
        name: "bash",
        aliases: &["sh", "shell"],
        extension: "sh",
        default_main: "main.sh",
        compile: None,
        run: &["bash", "{main}"],
        limits_address_space: true,
        memory_error_markers: &[],
    },
];

impl Language {
    /// Looks a language up by name, alias or file extension.
    pub fn find(name: &str) -> Option<&'static Language> {
        let name = name.to_ascii_lowercase();
        LANGUAGES
            .iter()
            .find(|l| l.name == name || l.aliases.contains(&name.as_str()))
            .or_else(|| LANGUAGES.iter().find(|l| l.extension == name))
    }

    /// Expands one argv template for a main file name.
    pub(crate) fn expand(template: &[&str], main: &str) -> Vec<String> {
        let stem = main.rsplit_once('.').map_or(main, |(stem, _)| stem);
        template
            .iter()
            .map(|arg| arg.replace("{main}", main).replace("{stem}", stem))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_by_name_alias_and_extension() {
        assert_eq!(Language::find("Python3").map(|l| l.name), Some("python"));
        assert_eq!(Language::find("c++").map(|l| l.name), Some("cpp"));
        assert_eq!(Language::find("rs").map(|l| l.name), Some("rust"));
        assert_eq!(Language::find("sh").map(|l| l.name), Some("bash"));
        assert_eq!(Language::find("cobol"), None);
    }

    #[test]
    fn expands_placeholders() {
        let cpp = Language::find("cpp").and_then(|l| l.compile).unwrap_or(&[]);
        assert_eq!(
            Language::expand(cpp, "prog.cpp"),
            ["g++", "-O2", "-std=c++17", "-o", "prog", "prog.cpp"]
        );
    }
}

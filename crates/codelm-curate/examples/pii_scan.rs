//! Lists what PII redaction finds in files, for spot checks: one line per
//! finding with its kind, the text found, and the file.
//!
//! ```text
//! cargo run --release -p codelm-curate --example pii_scan -- FILE... > findings.tsv
//! ```

use codelm_curate::pii::Redactor;
use codelm_curate::Config;

fn main() {
    let redactor = Redactor::new(&Config::default().pii);
    for path in std::env::args().skip(1) {
        let Ok(content) = std::fs::read_to_string(&path) else {
            continue;
        };
        for f in redactor.findings(&content) {
            let found = content[f.start..f.end].replace(['\t', '\n'], " ");
            let line_start = content[..f.start].rfind('\n').map_or(0, |i| i + 1);
            let line_end = content[f.end..]
                .find('\n')
                .map_or(content.len(), |i| f.end + i);
            let line: String = content[line_start..line_end]
                .trim()
                .chars()
                .take(160)
                .collect();
            println!("{:?}\t{found}\t{path}\t{}", f.kind, line.replace('\t', " "));
        }
    }
}

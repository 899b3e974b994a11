//! PII and secret redaction.
//!
//! Detectors find spans; overlapping spans are resolved (the earliest wins,
//! then the longest), and each span is replaced by its kind's placeholder
//! (`<EMAIL>`, `<IP_ADDRESS>`, `<KEY>`, `<PASSWORD>`). The detectors follow
//! bigcode's PII pipeline:
//!
//! - e-mail addresses, whose top-level domain is a country code or a common
//!   generic one (so `logo@2x.png` and `x@self.weight` are not e-mails), except
//!   at the reserved documentation domains (`example.com`, `*.test`);
//! - IPv4 and IPv6 addresses that are globally routable (private, loopback,
//!   link-local, multicast and documentation ranges are kept), skipping
//!   CIDR blocks and dotted quads on a line that says `version` or `oid`;
//! - keys: known token formats (AWS, GitHub, GitLab, Slack, Stripe, Google,
//!   OpenAI, Hugging Face, SendGrid, npm, JWTs, PEM private keys) and, as
//!   detect-secrets does, quoted string literals whose characters are all
//!   base64 (Shannon entropy > 4.5) or hex (> 3.0), except digests and ids
//!   (a line that says `sha`/`hash`/`digest`, a name ending in `Id`),
//!   written-out alphabets, numbers and snake_case identifiers;
//! - passwords: string values assigned to names ending in `password`,
//!   `passwd`, `pwd`, `secret`, `token`, `api_key`... and passwords in URLs
//!   (`scheme://user:pass@host`). A password must hold a digit or a symbol
//!   (a bare word is a field name: botocore's `"input_token": "NextToken"`);
//!   placeholders (`${PASS}`, `<pw>`, `%s`) and pagination or tokenizer
//!   tokens (`next_token`, `eos_token`) are kept.
//!
//! ```
//! use codelm_curate::{pii::Redactor, Config};
//! let r = Redactor::new(&Config::default().pii);
//! let out = r.redact("# Author: Jane Doe <jane.doe@acme.org>\nDB_PASSWORD = \"hunter2!x\"\n").unwrap();
//! assert_eq!(out.content, "# Author: Jane Doe <<EMAIL>>\nDB_PASSWORD = \"<PASSWORD>\"\n");
//! assert_eq!((out.counts.emails, out.counts.passwords), (1, 1));
//! ```

use std::net::{Ipv4Addr, Ipv6Addr};

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::config::PiiConfig;

/// Redactions made in one file, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PiiCounts {
    /// E-mail addresses.
    pub emails: u32,
    /// IP addresses.
    pub ip_addresses: u32,
    /// Keys and tokens.
    pub keys: u32,
    /// Passwords.
    pub passwords: u32,
}

impl PiiCounts {
    /// Total redactions.
    pub fn total(&self) -> u32 {
        self.emails + self.ip_addresses + self.keys + self.passwords
    }

    /// Adds another file's counts.
    pub fn add(&mut self, other: &PiiCounts) {
        self.emails += other.emails;
        self.ip_addresses += other.ip_addresses;
        self.keys += other.keys;
        self.passwords += other.passwords;
    }
}

/// A redacted file.
#[derive(Debug, Clone, PartialEq)]
pub struct Redacted {
    /// The content with placeholders.
    pub content: String,
    /// What was replaced.
    pub counts: PiiCounts,
}

/// What a finding is; on equal spans the earlier kind wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// An API key, token or private key.
    Key,
    /// A password.
    Password,
    /// An e-mail address.
    Email,
    /// An IP address.
    Ip,
}

/// A byte range of the content to be replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Start (byte offset).
    pub start: usize,
    /// End (byte offset, exclusive).
    pub end: usize,
    /// What was found.
    pub kind: Kind,
}

/// The redactor: compiled detectors and placeholders.
#[derive(Debug, Clone)]
pub struct Redactor {
    cfg: PiiConfig,
    email: Regex,
    ipv4: Regex,
    ipv6: Regex,
    known_keys: Vec<Regex>,
    private_key: Regex,
    quoted: Regex,
    password_assign: Regex,
    url_password: Regex,
    hash_context: Regex,
    secret_context: Regex,
    id_name: Regex,
}

const GENERIC_TLDS: &[&str] = &[
    "com",
    "org",
    "net",
    "edu",
    "gov",
    "mil",
    "int",
    "info",
    "biz",
    "name",
    "pro",
    "aero",
    "coop",
    "museum",
    "mobi",
    "asia",
    "tel",
    "travel",
    "jobs",
    "xyz",
    "online",
    "site",
    "tech",
    "dev",
    "app",
    "page",
    "cloud",
    "email",
    "club",
    "space",
    "store",
    "live",
    "blog",
    "io",
    "ai",
    "co",
    "me",
    "tv",
    "cc",
    "ly",
    "sh",
    "gg",
    "icu",
    "top",
    "work",
    "world",
    "today",
    "life",
    "ninja",
    "systems",
    "solutions",
    "digital",
    "network",
    "software",
    "company",
    "agency",
    "studio",
    "codes",
    "rocks",
];

/// File-name extensions that are also two-letter country codes.
const EXTENSION_TLDS: &[&str] = &[
    "py", "rs", "js", "ts", "md", "sh", "pl", "rb", "cs", "go", "mk", "so", "ps", "in",
];

impl Redactor {
    /// Compiles the detectors.
    pub fn new(cfg: &PiiConfig) -> Redactor {
        let re = |p: &str| Regex::new(p).expect("valid PII regex");
        Redactor {
            cfg: cfg.clone(),
            email: re(
                r"[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+([A-Za-z]{2,24})\b",
            ),
            ipv4: re(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"),
            ipv6: re(r"(?i)(?:[0-9a-f]{1,4}:){1,7}(?:(?::[0-9a-f]{1,4}){1,7}|[0-9a-f]{1,4}|:)"),
            known_keys: [
                r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA)[0-9A-Z]{16}\b",
                r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b",
                r"\bgithub_pat_[A-Za-z0-9_]{22,255}\b",
                r"\bglpat-[A-Za-z0-9_-]{20,}",
                r"\bxox[abposr]-[A-Za-z0-9-]{10,}",
                r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}\b",
                r"\bAIza[0-9A-Za-z_-]{35}",
                r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{32,}",
                r"\bhf_[A-Za-z0-9]{30,}\b",
                r"\bSG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}",
                r"\bnpm_[A-Za-z0-9]{36}\b",
                r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}",
            ]
            .iter()
            .map(|p| re(p))
            .collect(),
            private_key: re(
                r"-----BEGIN [A-Z ]*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY(?: BLOCK)?-----",
            ),
            quoted: re(r#""([A-Za-z0-9+/=_.\-]{16,})"|'([A-Za-z0-9+/=_.\-]{16,})'"#),
            password_assign: re(
                r#"(?i)\b([a-z0-9_.\-]*(?:password|passwd|passphrase|pwd|secret|token|api_?key|access_?key|private_?key))["']?\s*(?::=|=|:|=>)\s*[bru]?["']([^"'\s]{4,200})["']"#,
            ),
            url_password: re(r"\b[a-z][a-z0-9+.\-]*://[^\s:@/]+:([^\s:@/]{3,})@[A-Za-z0-9.\-]+"),
            hash_context: re(
                r"(?i)sha|md5|hash|digest|checksum|crc|uuid|guid|integrity|fingerprint|commit|revision",
            ),
            secret_context: re(r"(?i)key|secret|token|passw|auth|credential"),
            id_name: re(
                r#"(?i)(?:id|ids|arn|etag|uuid|guid|sha\d*|md5|hash|digest|checksum|fingerprint)["']?\s*(?::=|=|:|=>)\s*$"#,
            ),
        }
    }

    /// What would be redacted: non-overlapping spans in order (where detectors
    /// overlap, the earliest span wins, then the longest).
    pub fn findings(&self, content: &str) -> Vec<Span> {
        let mut spans = Vec::new();
        if self.cfg.keys {
            self.find_keys(content, &mut spans);
        }
        if self.cfg.passwords {
            self.find_passwords(content, &mut spans);
        }
        if self.cfg.emails && content.contains('@') {
            self.find_emails(content, &mut spans);
        }
        if self.cfg.ip_addresses {
            self.find_ips(content, &mut spans);
        }
        spans.sort_by(|a, b| {
            a.start
                .cmp(&b.start)
                .then((b.end - b.start).cmp(&(a.end - a.start)))
                .then(a.kind.cmp(&b.kind))
        });
        let mut kept: Vec<Span> = Vec::with_capacity(spans.len());
        for s in spans {
            if kept.last().is_none_or(|k| s.start >= k.end) {
                kept.push(s);
            }
        }
        kept
    }

    /// The redacted content and counts, or `None` when there is nothing to redact.
    pub fn redact(&self, content: &str) -> Option<Redacted> {
        let spans = self.findings(content);
        if spans.is_empty() {
            return None;
        }
        let mut out = String::with_capacity(content.len());
        let mut counts = PiiCounts::default();
        let mut pos = 0;
        for s in spans {
            out.push_str(&content[pos..s.start]);
            let placeholder = match s.kind {
                Kind::Email => {
                    counts.emails += 1;
                    &self.cfg.email_placeholder
                }
                Kind::Ip => {
                    counts.ip_addresses += 1;
                    &self.cfg.ip_placeholder
                }
                Kind::Key => {
                    counts.keys += 1;
                    &self.cfg.key_placeholder
                }
                Kind::Password => {
                    counts.passwords += 1;
                    &self.cfg.password_placeholder
                }
            };
            out.push_str(placeholder);
            pos = s.end;
        }
        out.push_str(&content[pos..]);
        Some(Redacted {
            content: out,
            counts,
        })
    }

    fn find_emails(&self, content: &str, spans: &mut Vec<Span>) {
        for caps in self.email.captures_iter(content) {
            let m = caps.get(0).expect("match");
            let tld = caps.get(1).expect("tld").as_str().to_ascii_lowercase();
            let ok = if tld.len() == 2 {
                !EXTENSION_TLDS.contains(&tld.as_str())
            } else {
                GENERIC_TLDS.contains(&tld.as_str())
            };
            // A local part must start with an alphanumeric (not `.` or `-` of a decorator chain).
            let local_ok = m
                .as_str()
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric());
            if ok && local_ok && !is_reserved_domain(m.as_str()) {
                spans.push(Span {
                    start: m.start(),
                    end: m.end(),
                    kind: Kind::Email,
                });
            }
        }
    }

    fn find_ips(&self, content: &str, spans: &mut Vec<Span>) {
        let bytes = content.as_bytes();
        for m in self.ipv4.find_iter(content) {
            // Part of a longer dotted run (1.2.3.4.5, an OID) or of a version string.
            let before = m.start().checked_sub(1).map(|i| bytes[i]);
            let after = bytes.get(m.end()).copied();
            if matches!(before, Some(b'.') | Some(b'-'))
                || before.is_some_and(|b| b.is_ascii_alphanumeric())
                || (after == Some(b'.')
                    && bytes.get(m.end() + 1).is_some_and(|b| b.is_ascii_digit()))
            {
                continue;
            }
            let line_start = content[..m.start()].rfind('\n').map_or(0, |i| i + 1);
            let prefix = content[line_start..m.start()].to_ascii_lowercase();
            if prefix.contains("version")
                || prefix.trim_end().ends_with("v")
                || prefix.contains("oid")
            {
                continue; // Versions and object identifiers (`2.5.29.17`) look like addresses.
            }
            if after == Some(b'/') && bytes.get(m.end() + 1).is_some_and(|b| b.is_ascii_digit()) {
                continue; // A CIDR block names a network, not a host.
            }
            let Ok(ip) = m.as_str().parse::<Ipv4Addr>() else {
                continue;
            };
            if is_public_v4(&ip) {
                spans.push(Span {
                    start: m.start(),
                    end: m.end(),
                    kind: Kind::Ip,
                });
            }
        }
        if !content.contains("::") && !content.contains(':') {
            return;
        }
        for m in self.ipv6.find_iter(content) {
            let before = m.start().checked_sub(1).map(|i| bytes[i]);
            let after = bytes.get(m.end()).copied();
            if before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b':')
                || after.is_some_and(|b| b.is_ascii_alphanumeric() || b == b':')
            {
                continue;
            }
            let text = m.as_str();
            if text.matches(':').count() < 3 {
                continue;
            }
            let Ok(ip) = text.parse::<Ipv6Addr>() else {
                continue;
            };
            let seg = ip.segments();
            let global_unicast = (seg[0] & 0xe000) == 0x2000;
            let documentation = seg[0] == 0x2001 && seg[1] == 0x0db8;
            if global_unicast && !documentation {
                spans.push(Span {
                    start: m.start(),
                    end: m.end(),
                    kind: Kind::Ip,
                });
            }
        }
    }

    fn find_keys(&self, content: &str, spans: &mut Vec<Span>) {
        if content.contains("PRIVATE KEY") {
            for m in self.private_key.find_iter(content) {
                spans.push(Span {
                    start: m.start(),
                    end: m.end(),
                    kind: Kind::Key,
                });
            }
        }
        for re in &self.known_keys {
            for m in re.find_iter(content) {
                spans.push(Span {
                    start: m.start(),
                    end: m.end(),
                    kind: Kind::Key,
                });
            }
        }
        for caps in self.quoted.captures_iter(content) {
            let Some(m) = caps.get(1).or_else(|| caps.get(2)) else {
                continue;
            };
            let s = m.as_str();
            if self.is_high_entropy_secret(content, m.start(), s) {
                spans.push(Span {
                    start: m.start(),
                    end: m.end(),
                    kind: Kind::Key,
                });
            }
        }
    }

    fn is_high_entropy_secret(&self, content: &str, start: usize, s: &str) -> bool {
        let line_start = content[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = content[start..]
            .find('\n')
            .map_or(content.len(), |i| start + i);
        let line = &content[line_start..line_end];
        if is_sequential(s) || s.bytes().all(|b| b.is_ascii_digit()) || s.matches('_').count() >= 3
        {
            return false; // Alphabets, big numbers and snake_case identifiers.
        }
        // The name the literal is assigned to says it is an id or a digest.
        let before = content[line_start..start].trim_end_matches(['"', '\'', '[', '(', ' ']);
        if self.id_name.is_match(before) {
            return false;
        }
        let name_end = before.trim_end_matches([':', '=', '>', ' ', '"', '\'']);
        // The identifier before the literal; the bytes scanned are ASCII, so the
        // cut is on a char boundary whatever precedes it.
        let name_len = name_end
            .bytes()
            .rev()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count();
        if is_public_token_name(&name_end[name_end.len() - name_len..]) {
            return false; // A pagination cursor (`"NextToken": "eyJ..."`).
        }
        let is_hex = s.len() >= 20 && s.bytes().all(|b| b.is_ascii_hexdigit());
        if is_hex {
            let digest_len = matches!(s.len(), 32 | 40 | 56 | 64 | 96 | 128);
            if self.hash_context.is_match(line) && !self.secret_context.is_match(line) {
                return false;
            }
            if digest_len && !self.secret_context.is_match(line) {
                return false;
            }
            let all_digits = s.bytes().all(|b| b.is_ascii_digit());
            let mut e = shannon_entropy(s);
            if all_digits {
                // detect-secrets lowers the entropy of all-digit strings.
                e -= 1.2 / (s.len() as f64).log2();
            }
            return e > self.cfg.hex_entropy;
        }
        // Base64 (standard or URL-safe); `.` is allowed by the quote regex only for hex/paths.
        if s.len() < 20 || s.contains('.') {
            return false;
        }
        let has_digit = s.bytes().any(|b| b.is_ascii_digit());
        let has_upper = s.bytes().any(|b| b.is_ascii_uppercase());
        let has_lower = s.bytes().any(|b| b.is_ascii_lowercase());
        if !(has_digit && has_upper && has_lower) {
            return false;
        }
        // Paths: several `/` and no padding.
        if s.matches('/').count() >= 2 && !s.ends_with('=') {
            return false;
        }
        if self.hash_context.is_match(line) && !self.secret_context.is_match(line) {
            return false;
        }
        shannon_entropy(s) > self.cfg.base64_entropy
    }

    fn find_passwords(&self, content: &str, spans: &mut Vec<Span>) {
        for caps in self.password_assign.captures_iter(content) {
            let name = caps.get(1).expect("name").as_str();
            let v = caps.get(2).expect("value");
            if !is_public_token_name(name)
                && !is_placeholder(v.as_str())
                && is_password_like(v.as_str())
            {
                spans.push(Span {
                    start: v.start(),
                    end: v.end(),
                    kind: Kind::Password,
                });
            }
        }
        if content.contains("://") {
            for caps in self.url_password.captures_iter(content) {
                let v = caps.get(1).expect("password");
                if !is_placeholder(v.as_str()) {
                    spans.push(Span {
                        start: v.start(),
                        end: v.end(),
                        kind: Kind::Password,
                    });
                }
            }
        }
    }
}

/// Names ending in `token` that are not secrets: pagination cursors,
/// idempotency keys, and the special tokens of tokenizers.
fn is_public_token_name(name: &str) -> bool {
    let flat: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    const PUBLIC: &[&str] = &[
        "nexttoken",
        "pagetoken",
        "paginationtoken",
        "continuationtoken",
        "clienttoken",
        "idempotencytoken",
        "synctoken",
        "resumetoken",
        "starttoken",
        "endtoken",
        "eostoken",
        "bostoken",
        "padtoken",
        "unktoken",
        "septoken",
        "clstoken",
        "masktoken",
        "inputtoken",
        "outputtoken",
    ];
    PUBLIC.iter().any(|p| flat.ends_with(p))
}

/// A password has a digit or a symbol; a bare word (`"NextToken"`, `"Marker"`)
/// assigned to a `*_token` or `*password*` name is a field name far more often.
fn is_password_like(value: &str) -> bool {
    value
        .chars()
        .any(|c| c.is_ascii_digit() || !(c.is_ascii_alphabetic() || matches!(c, '_' | '-' | '.')))
}

/// RFC 2606/6761 documentation domains: `example.com`, `*.example`, `*.test`...
fn is_reserved_domain(email: &str) -> bool {
    let domain = email.rsplit('@').next().unwrap_or("").to_ascii_lowercase();
    ["example.com", "example.net", "example.org"]
        .iter()
        .any(|d| domain == *d || domain.ends_with(&format!(".{d}")))
        || [".example", ".test", ".invalid", ".localhost"]
            .iter()
            .any(|t| domain.ends_with(t))
}

/// Whether most neighbouring characters are consecutive (`0123456789abcdef`,
/// `ABCDEFGH...`): an alphabet written out, not a secret (detect-secrets'
/// sequential-string filter).
fn is_sequential(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 2 {
        return false;
    }
    let steps = b
        .windows(2)
        .filter(|w| w[1] == w[0].wrapping_add(1))
        .count();
    steps * 10 >= (b.len() - 1) * 6
}

fn is_placeholder(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    const WORDS: &[&str] = &[
        "password",
        "passwd",
        "secret",
        "token",
        "none",
        "null",
        "true",
        "false",
        "changeme",
        "example",
        "xxxx",
        "****",
        "your",
        "redacted",
        "placeholder",
        "dummy",
        "test",
        "pass",
        "required",
        "optional",
        "string",
        "hidden",
        "undefined",
        "empty",
        "default",
    ];
    value.contains(['{', '}', '$', '%', '<', '>', '*', '(', ')', '[', ']'])
        || WORDS
            .iter()
            .any(|w| lower == *w || lower.starts_with("your") || lower.starts_with("xxx"))
        || value
            .chars()
            .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit())
        || value
            .chars()
            .all(|c| c == value.chars().next().unwrap_or(' '))
}

/// Shannon entropy of a string's characters, in bits per character.
pub fn shannon_entropy(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    let mut n = 0u32;
    for b in s.bytes() {
        counts[b as usize] += 1;
        n += 1;
    }
    if n == 0 {
        return 0.0;
    }
    let n = n as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

fn is_public_v4(ip: &Ipv4Addr) -> bool {
    let o = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_unspecified()
        || ip.is_documentation()
        || o[0] == 0
        || o[0] >= 240
        || (o[0] == 100 && (64..128).contains(&o[1]))
        || (o[0] == 198 && (o[1] == 18 || o[1] == 19))
        || (o[0] == 192 && o[1] == 0 && o[2] == 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    fn redact(content: &str) -> (String, PiiCounts) {
        let r = Redactor::new(&Config::default().pii);
        match r.redact(content) {
            Some(x) => (x.content, x.counts),
            None => (content.to_string(), PiiCounts::default()),
        }
    }

    fn check(content: &str, expected: &str) {
        assert_eq!(redact(content).0, expected, "input: {content}");
    }

    #[test]
    fn emails() {
        check(
            "contact: alice.smith+dev@mail.acme-corp.com.",
            "contact: <EMAIL>.",
        );
        check(
            "__author__ = 'Guido van Rossum <guido@python.org>'",
            "__author__ = 'Guido van Rossum <<EMAIL>>'",
        );
        check("icon = 'logo@2x.png'", "icon = 'logo@2x.png'");
        check("y = x@self.weight", "y = x@self.weight");
        check(
            "@property\ndef f(self): pass",
            "@property\ndef f(self): pass",
        );
        check("git@github.com:org/repo.git", "<EMAIL>:org/repo.git");
    }

    #[test]
    fn ip_addresses() {
        check("server = '8.8.4.4'", "server = '<IP_ADDRESS>'");
        check(
            "bind('127.0.0.1'); lan = '192.168.1.20'; doc = '203.0.113.5'",
            "bind('127.0.0.1'); lan = '192.168.1.20'; doc = '203.0.113.5'",
        );
        check("__version__ = '2.1.0.7'", "__version__ = '2.1.0.7'");
        check("oid = '1.3.6.1.4.1.311'", "oid = '1.3.6.1.4.1.311'");
        check("addr = '2a00:1450:4007:80e::200e'", "addr = '<IP_ADDRESS>'");
        check(
            "doc6 = '2001:db8::1'; lo = '::1'",
            "doc6 = '2001:db8::1'; lo = '::1'",
        );
        check("std::vector<int> v; a::b::c", "std::vector<int> v; a::b::c");
        check("at 12:34:56 on", "at 12:34:56 on");
    }

    #[test]
    fn known_key_formats() {
        let (out, c) = redact("AWS_ACCESS_KEY_ID = AKIAIOSFODNN7EXAMPLE\ngh = ghp_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ\n");
        assert_eq!(out, "AWS_ACCESS_KEY_ID = <KEY>\ngh = <KEY>\n");
        assert_eq!(c.keys, 2);
        let pem = "k = \"\"\"-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nAbC\n-----END RSA PRIVATE KEY-----\"\"\"";
        check(pem, "k = \"\"\"<KEY>\"\"\"");
    }

    #[test]
    fn high_entropy_literals() {
        check(
            "blob = \"Zm9vYmFyMTIzNDU2Nzg5MGFiY2RlZmdoaWprbG1ub3A1Xy9\"",
            "blob = \"<KEY>\"",
        );
        check(
            "client = 'a8F3kL9qZ2xV7mN4pR6tY1wE5uI0oS3d'",
            "client = '<KEY>'",
        );
        // Hex digests on a line that says so are not secrets; an unlabelled random hex is.
        check(
            "sha256 = \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"",
            "sha256 = \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"",
        );
        // A named secret that is also a random literal counts once, as a key.
        check(
            "API_KEY = \"3f8a9c2e7b1d4f6a8c0e2b4d6f8a1c3e\"",
            "API_KEY = \"<KEY>\"",
        );
        check(
            "x = \"1f3870be274f6c49b3e31a0c6728957f3a\"",
            "x = \"<KEY>\"",
        );
        // Alphabets written out stay (regression: CPython's ipaddress.py `_HEX_DIGITS`).
        check(
            "_HEX_DIGITS = frozenset('0123456789abcdefABCDEF')",
            "_HEX_DIGITS = frozenset('0123456789abcdefABCDEF')",
        );
        // Low entropy, words and paths stay.
        check(
            "name = \"aaaaaaaaaaaaaaaaaaaaaaaaaaaa\"",
            "name = \"aaaaaaaaaaaaaaaaaaaaaaaaaaaa\"",
        );
        check(
            "p = \"src/main/java/org/Example2/Foo\"",
            "p = \"src/main/java/org/Example2/Foo\"",
        );
        check(
            "msg = \"ThisIsALongCamelCaseIdentifier\"",
            "msg = \"ThisIsALongCamelCaseIdentifier\"",
        );
    }

    #[test]
    fn passwords() {
        check("password = 'Tr0ub4dor&3'", "password = '<PASSWORD>'");
        check(
            "{\"db_password\": \"s3cr3t-pa55\"}",
            "{\"db_password\": \"<PASSWORD>\"}",
        );
        check(
            "url = 'postgres://admin:hunter2x@db.internal:5432/app'",
            "url = 'postgres://admin:<PASSWORD>@db.internal:5432/app'",
        );
        check(
            "password = os.environ['DB_PASSWORD']",
            "password = os.environ['DB_PASSWORD']",
        );
        check("password = '${DB_PASS}'", "password = '${DB_PASS}'");
        check("PASSWORD_FIELD = 'PASSWORD'", "PASSWORD_FIELD = 'PASSWORD'");
        check("password = '%s'", "password = '%s'");
        // Pagination cursors and tokenizer special tokens are not secrets.
        check(
            "\"NextToken\": \"eyJNYXJrZXIiOiBudWxsfQ\"",
            "\"NextToken\": \"eyJNYXJrZXIiOiBudWxsfQ\"",
        );
        check("eos_token = 'endoftext'", "eos_token = 'endoftext'");
        check(
            "\"SessionToken\": \"AQoDYXdzEPT3\"",
            "\"SessionToken\": \"<PASSWORD>\"",
        );
    }

    #[test]
    fn regressions_from_the_python_and_cargo_corpus() {
        // Documentation domains, CIDR blocks, OIDs (CPython, awscli, winapi).
        check(
            "contact = 'support@example.com'",
            "contact = 'support@example.com'",
        );
        check(
            "--destination-cidr-block 11.12.0.0/16",
            "--destination-cidr-block 11.12.0.0/16",
        );
        check(
            "szOID_SUBJECT_ALT_NAME: &str = \"2.5.29.7\";",
            "szOID_SUBJECT_ALT_NAME: &str = \"2.5.29.7\";",
        );
        // Digests and ids named as such; big numbers; identifiers.
        check(
            "\"CodeSha256\": \"5tT2qgzYUHaqwR716pZ2dpkn/0J1FrzJmlKidWoaCgk=\",",
            "\"CodeSha256\": \"5tT2qgzYUHaqwR716pZ2dpkn/0J1FrzJmlKidWoaCgk=\",",
        );
        check(
            "\"JobId\": \"l7IL5-EkXyEY9Ws95fClzIbk2O5uLYaFdAYOi-azsX\"",
            "\"JobId\": \"l7IL5-EkXyEY9Ws95fClzIbk2O5uLYaFdAYOi-azsX\"",
        );
        check(
            "n = '15448444826108008217972129130625571421904893252804729877353352'",
            "n = '15448444826108008217972129130625571421904893252804729877353352'",
        );
        check(
            "m = \"_Generic_Hd_Mp4_Hev1_Aac_16x9_Sdr_1280x720p\"",
            "m = \"_Generic_Hd_Mp4_Hev1_Aac_16x9_Sdr_1280x720p\"",
        );
        // Pagination cursors are opaque but public (awscli examples).
        check(
            "\"NextToken\": \"eyJNYXJrZXIiOiBudWxsLCAiYm90b190cnVuY2F0ZV9hbW91bnQiOiAyfQ==\",",
            "\"NextToken\": \"eyJNYXJrZXIiOiBudWxsLCAiYm90b190cnVuY2F0ZV9hbW91bnQiOiAyfQ==\",",
        );
        // Paginator configs name fields, not secrets (botocore).
        check(
            "\"output_token\": \"NextToken\",",
            "\"output_token\": \"NextToken\",",
        );
        check(
            "\"input_token\": \"Marker\",",
            "\"input_token\": \"Marker\",",
        );
    }

    #[test]
    fn never_panics_on_multibyte_text() {
        // Regression: a Cyrillic name before a quoted literal cut a char in two.
        check(
            "    'анонимная-ссылка': 'a8F3kL9qZ2xV7mN4pR6tY1wE5uI0oS3d',",
            "    'анонимная-ссылка': '<KEY>',",
        );
        // Random mixes of multibyte characters and the detectors' punctuation.
        let alphabet: Vec<char> = "aZ9_-./+=:@'\" \n\téа€𝄞ñ0xAKIAghp_".chars().collect();
        let r = Redactor::new(&Config::default().pii);
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            let len = (state % 80) as usize;
            let text: String = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    alphabet[(state % alphabet.len() as u64) as usize]
                })
                .collect();
            let _ = r.redact(&format!(
                "token = '{text}' # {text}@example.org 1.2.3.{len} \"{text}{text}\""
            ));
        }
    }

    #[test]
    fn nothing_to_redact_returns_none() {
        let r = Redactor::new(&Config::default().pii);
        assert!(r.redact("def f(x):\n    return x * 2\n").is_none());
    }

    #[test]
    fn entropy() {
        assert_eq!(shannon_entropy("aaaa"), 0.0);
        assert!((shannon_entropy("ab") - 1.0).abs() < 1e-12);
    }
}

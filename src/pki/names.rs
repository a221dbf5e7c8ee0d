//! Depot naming: the one rule that turns a user's name (a CN, a domain, a CA
//! name) into a file stem. Every command uses it, so `sign "web server*1"`
//! finds what `request-cert --cn "web server*1"` wrote (certstrap 1.3.0
//! cleaned names differently in init and sign).

use std::fmt;

/// True for the chain files written beside a certificate.
pub fn is_chain_file(file_name: &str) -> bool {
    file_name.ends_with(".chain.crt") || file_name.ends_with(".fullchain.crt")
}

/// Longest stem we accept. The longest file we derive from a stem is
/// `<stem>.fullchain.crt` (14 more bytes), and file systems stop at 255.
pub const MAX_STEM_LEN: usize = 200;

/// A validated depot file stem: only `[A-Za-z0-9._-]`, at least one ASCII
/// letter or digit, never starting with `.`. It cannot name a directory, so
/// no entry can ever leave the depot (certstrap wrote `../escaped` outside).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryName(String);

/// Why a name cannot be a depot entry.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("the name is empty; give a common name, a domain or a CA name")]
    Empty,
    #[error("the name {raw:?} has no ASCII letter or digit, so it cannot name a file in the depot; choose a name with letters or digits")]
    NoAlphanumeric { raw: String },
    #[error(
        "the name {raw:?} would become the hidden file stem {stem:?}; choose a name that starts with a letter or digit"
    )]
    Hidden { raw: String, stem: String },
    #[error("the name is {len} bytes once cleaned; the limit is {MAX_STEM_LEN}, so choose a shorter name")]
    TooLong { len: usize },
    #[error(
        "the name {raw:?} ends in .chain or .fullchain, which certforge keeps for chain files; choose another name"
    )]
    Reserved { raw: String },
}

/// The naming rule alone: every run of characters outside `[A-Za-z0-9._-]`
/// becomes one `_`.
///
/// ```
/// assert_eq!(certforge::pki::names::sanitize("gRPC Root CA"), "gRPC_Root_CA");
/// assert_eq!(certforge::pki::names::sanitize("web server*1"), "web_server_1");
/// assert_eq!(certforge::pki::names::sanitize("../escaped"), ".._escaped");
/// ```
pub fn sanitize(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut in_run = false;
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
            out.push(c);
            in_run = false;
        } else if !in_run {
            out.push('_');
            in_run = true;
        }
    }
    out
}

impl EntryName {
    /// Applies the naming rule and checks the result can be a file stem.
    pub fn new(raw: &str) -> Result<Self, NameError> {
        if raw.is_empty() {
            return Err(NameError::Empty);
        }
        let stem = sanitize(raw);
        if !stem.bytes().any(|b| b.is_ascii_alphanumeric()) {
            return Err(NameError::NoAlphanumeric { raw: raw.to_string() });
        }
        if stem.starts_with('.') {
            return Err(NameError::Hidden { raw: raw.to_string(), stem });
        }
        if stem.len() > MAX_STEM_LEN {
            return Err(NameError::TooLong { len: stem.len() });
        }
        // NAME.chain.crt and NAME.fullchain.crt belong to NAME.
        if stem.ends_with(".chain") || stem.ends_with(".fullchain") {
            return Err(NameError::Reserved { raw: raw.to_string() });
        }
        Ok(EntryName(stem))
    }

    /// The file stem, e.g. `gRPC_Root_CA`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The file name for this entry with an extension, e.g. `localhost.crt`.
    pub fn file(&self, ext: &str) -> String {
        format!("{}.{}", self.0, ext)
    }
}

impl fmt::Display for EntryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Quotes a word for the shell when it needs it, so that a command line
/// certforge prints works when pasted.
pub fn shell_word(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "._-/+=:@,".contains(c)) {
        s.to_string()
    } else {
        sh_quote(s)
    }
}

/// Quotes a value for POSIX sh, always: inside single quotes nothing is
/// special, so only a single quote itself needs care ('\'').
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The candidate a mistyped name most likely meant: the same stem in
/// another case first (`x` for `X`: file systems here are case-sensitive),
/// else the nearest by edit distance, ignoring case, when it is close
/// enough to be a typo (at most a third of the name's length, at least 1).
///
/// ```
/// let have = ["gRPC_Root_CA".to_string(), "Other_CA".to_string()];
/// assert_eq!(certforge::pki::names::closest("grpc root ca", &have), Some("gRPC_Root_CA"));
/// assert_eq!(certforge::pki::names::closest("Othr CA", &have), Some("Other_CA"));
/// assert_eq!(certforge::pki::names::closest("payments", &have), None);
/// ```
pub fn closest<'a>(wanted: &str, candidates: &'a [String]) -> Option<&'a str> {
    let want = sanitize(wanted).to_ascii_lowercase();
    let limit = (want.chars().count() / 3).max(1);
    candidates
        .iter()
        .map(|c| (edit_distance(&want, &c.to_ascii_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, c)| (*d, c.len()))
        .map(|(_, c)| c.as_str())
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diag + usize::from(ca != *cb)).min(row[j] + 1).min(row[j + 1] + 1);
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spaces_become_underscores_like_certstrap() {
        assert_eq!(EntryName::new("gRPC Root CA").unwrap().as_str(), "gRPC_Root_CA");
    }

    #[test]
    fn runs_of_bad_characters_collapse_to_one_underscore() {
        assert_eq!(EntryName::new("web server*1").unwrap().as_str(), "web_server_1");
        assert_eq!(EntryName::new("a  **  b").unwrap().as_str(), "a_b");
        assert_eq!(EntryName::new("café").unwrap().as_str(), "caf_");
    }

    #[test]
    fn names_never_leave_the_depot() {
        for raw in ["../escaped", "a/../../b", "/etc/passwd", "..\\x", "a/b"] {
            match EntryName::new(raw) {
                Ok(n) => assert!(!n.as_str().contains('/') && !n.as_str().starts_with('.')),
                Err(NameError::Hidden { .. }) => {}
                Err(e) => panic!("unexpected error for {raw}: {e}"),
            }
        }
        assert_eq!(EntryName::new("a/../../b").unwrap().as_str(), "a_.._.._b");
    }

    #[test]
    fn rejects_empty_punctuation_hidden_and_long_names() {
        assert_eq!(EntryName::new(""), Err(NameError::Empty));
        assert!(matches!(EntryName::new(".."), Err(NameError::NoAlphanumeric { .. })));
        assert!(matches!(EntryName::new("***"), Err(NameError::NoAlphanumeric { .. })));
        assert!(matches!(EntryName::new("日本"), Err(NameError::NoAlphanumeric { .. })));
        assert!(matches!(EntryName::new(".hidden"), Err(NameError::Hidden { .. })));
        assert!(matches!(EntryName::new(&"a".repeat(201)), Err(NameError::TooLong { len: 201 })));
        assert!(EntryName::new(&"a".repeat(200)).is_ok());
        assert!(matches!(EntryName::new("web.chain"), Err(NameError::Reserved { .. })));
    }

    #[test]
    fn sanitizing_is_stable() {
        for raw in ["gRPC Root CA", "x y", "a.b-c_d"] {
            let once = sanitize(raw);
            assert_eq!(sanitize(&once), once);
        }
    }

    #[test]
    fn closest_prefers_a_case_only_difference_then_the_nearest_typo() {
        let have: Vec<String> = ["X", "Xy_CA", "Issuing_CA", "localhost"].iter().map(|s| s.to_string()).collect();
        assert_eq!(closest("x", &have), Some("X"));
        assert_eq!(closest("issuing ca", &have), Some("Issuing_CA"));
        assert_eq!(closest("Isuing CA", &have), Some("Issuing_CA"));
        assert_eq!(closest("locahlost", &have), Some("localhost"));
        assert_eq!(closest("database", &have), None, "nothing close: no guess");
        assert_eq!(closest("x", &[]), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}

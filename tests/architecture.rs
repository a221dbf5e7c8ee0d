//! The invariants ARCHITECTURE.md states, checked over the source: the
//! library never imports the binary's modules (main.rs, cli, commands,
//! install), no file imports one that imports it back, and each folder
//! imports only the folders below it.
//!
//! The import graph is read from the text, without a Rust parser: `use`
//! trees are expanded, inline `crate::`/`super::` paths count too, comments
//! and string literals are dropped, and a file's `#[cfg(test)] mod` body is
//! left out (test code may reach anywhere). Each path resolves to the
//! longest module prefix that is a file under src/.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The binary's modules: main.rs and these folders. Everything else under
/// src/ is the library.
const BINARY: &[&str] = &["main", "cli", "commands", "install"];

/// What each library folder may import besides itself. A folder not listed
/// (serve, fuzz, the crate root) may import anything in the library.
const LAYERS: &[(&str, &[&str])] = &[
    ("pki", &[]),
    ("storage", &[]),
    ("depot", &["pki", "sys"]),
    ("sys", &["pki"]),
    ("api", &["pki", "depot"]),
    ("pkcs11", &["pki", "depot", "sys"]),
    ("trust", &["pki", "depot", "sys"]),
    ("authority", &["pki", "depot", "sys", "pkcs11", "storage"]),
    ("acme", &["pki", "storage"]),
];

type Module = Vec<String>;

fn name(m: &[String]) -> String {
    m.join("::")
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Every .rs file under `dir`, keyed by its module path (`pki/mod.rs` and
/// `pki.rs` are both `pki`; lib.rs is the root; main.rs is `main`).
fn modules(src: &Path) -> BTreeMap<Module, String> {
    fn walk(dir: &Path, src: &Path, out: &mut BTreeMap<Module, String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, src, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                let rel = p.strip_prefix(src).unwrap().with_extension("");
                let mut parts: Module = rel.iter().map(|s| s.to_string_lossy().into_owned()).collect();
                if parts.len() > 1 && parts.last().is_some_and(|l| l == "mod") || parts == ["lib"] {
                    parts.pop();
                }
                out.insert(parts, std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(src, src, &mut out);
    out
}

/// The code alone: comments and the contents of string and char literals
/// are dropped, and so is everything from the first `#[cfg(test)] mod`.
fn strip(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let at = |i: usize, s: &str| s.chars().enumerate().all(|(k, ch)| c.get(i + k) == Some(&ch));
    let find = |from: usize, s: &str| (from..c.len()).find(|&j| at(j, s));
    let mut out = String::new();
    let mut i = 0;
    while i < c.len() {
        if at(i, "//") {
            i = find(i, "\n").unwrap_or(c.len());
            continue;
        }
        if at(i, "/*") {
            i = find(i + 2, "*/").map_or(c.len(), |j| j + 2);
            continue;
        }
        // Raw strings: r"…", r#"…"#, br#"…"#.
        let after_word = i > 0 && is_word(c[i - 1]);
        let r = if c[i] == 'b' && c.get(i + 1) == Some(&'r') { i + 1 } else { i };
        if c[r] == 'r' && !after_word {
            let hashes = c[r + 1..].iter().take_while(|&&h| h == '#').count();
            if c.get(r + 1 + hashes) == Some(&'"') {
                let end: String = std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
                i = find(r + 2 + hashes, &end).map_or(c.len(), |j| j + end.len());
                out.push_str("\"\"");
                continue;
            }
        }
        if c[i] == '"' {
            let mut j = i + 1;
            while j < c.len() && c[j] != '"' {
                j += if c[j] == '\\' { 2 } else { 1 };
            }
            i = j + 1;
            out.push_str("\"\"");
            continue;
        }
        // A char literal ('x', '\n', '\u{1F600}'), not a lifetime.
        if c[i] == '\'' {
            let close = match c.get(i + 1) {
                Some('\\') => (i + 3..c.len()).find(|&j| c[j] == '\''),
                Some('\'') | None => None,
                Some(_) => (c.get(i + 2) == Some(&'\'')).then_some(i + 2),
            };
            if let Some(j) = close {
                i = j + 1;
                out.push_str("' '");
                continue;
            }
        }
        out.push(c[i]);
        i += 1;
    }
    if let Some(cut) = test_module_start(&out) {
        out.truncate(cut);
    }
    out
}

/// Where `#[cfg(test)] [pub] mod NAME {` starts, if anywhere.
fn test_module_start(code: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(k) = code[from..].find("#[cfg(test)]") {
        let start = from + k;
        let mut rest = code[start + "#[cfg(test)]".len()..].trim_start();
        if let Some(r) = rest.strip_prefix("pub") {
            rest = r.trim_start();
        }
        if let Some(r) = rest.strip_prefix("mod") {
            let r = r.trim_start();
            let ident = r.chars().take_while(|&ch| is_word(ch)).count();
            if ident > 0 && r[ident..].trim_start().starts_with('{') {
                return Some(start);
            }
        }
        from = start + 1;
    }
    None
}

/// `crate::a::{b, c::{self, D}}` as its paths: `crate::a::b`, `crate::a::c`,
/// `crate::a::c::D`. Renames (`as`) keep the original path.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        return vec![tree.split(" as ").next().unwrap().trim().to_string()];
    };
    let prefix = &tree[..open];
    let body = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let (mut parts, mut depth, mut cur) = (Vec::new(), 0, String::new());
    for ch in body.chars() {
        match ch {
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
        cur.push(ch);
    }
    parts.push(cur);
    let mut out = Vec::new();
    for p in parts.iter().filter(|p| !p.trim().is_empty()) {
        for e in expand(p) {
            out.push(if e == "self" { prefix.trim_end_matches(':').to_string() } else { format!("{prefix}{e}") });
        }
    }
    out
}

/// Every `crate::`/`super::`/`self::` path the code names: in `use` trees
/// and inline.
fn paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let starts = |k: usize| k == 0 || !is_word(code[..k].chars().next_back().unwrap());
    for (k, _) in code.match_indices("use") {
        let rest = &code[k + 3..];
        if !starts(k) || !rest.starts_with(char::is_whitespace) {
            continue;
        }
        let tree = rest.trim_start();
        if ["crate::", "super::", "self::"].iter().any(|p| tree.starts_with(p)) {
            if let Some(end) = tree.find(';') {
                out.extend(expand(&tree[..end]));
            }
        }
    }
    // `super::super::x` is one path, not also `super::x`.
    let mut heads: Vec<(usize, &str)> = code.match_indices("crate").chain(code.match_indices("super")).collect();
    heads.sort();
    let mut done = 0;
    for (k, head) in heads {
        if k < done || !starts(k) {
            continue;
        }
        let mut end = k + head.len();
        while code[end..].starts_with("::") {
            let ident = code[end + 2..].chars().take_while(|&ch| is_word(ch)).map(char::len_utf8).sum::<usize>();
            if ident == 0 {
                break;
            }
            end += 2 + ident;
        }
        if end > k + head.len() {
            out.push(code[k..end].to_string());
            done = end;
        }
    }
    out
}

/// The file a path in module `from` lands in: the longest prefix of the
/// absolute path that is a file's module.
fn resolve(from: &[String], path: &str, files: &BTreeMap<Module, String>) -> Option<Module> {
    let squeezed: String = path.chars().filter(|ch| !ch.is_whitespace()).collect();
    let mut segs = squeezed.split("::").filter(|s| !s.is_empty()).peekable();
    let mut full: Module = match *segs.peek()? {
        "crate" => {
            segs.next();
            vec![]
        }
        "super" | "self" => {
            let mut base = from.to_vec();
            while let Some(&s) = segs.peek() {
                match s {
                    "super" => {
                        base.pop();
                    }
                    "self" => {}
                    _ => break,
                }
                segs.next();
            }
            base
        }
        _ => return None,
    };
    full.extend(segs.map(str::to_string));
    (1..=full.len()).rev().map(|n| full[..n].to_vec()).find(|m| files.contains_key(m))
}

/// The import graph: module → the other files' modules it names.
fn graph() -> BTreeMap<Module, BTreeSet<Module>> {
    let files = modules(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (m, text) in &files {
        // main.rs is the binary's root: its `crate::` is not the library's.
        let from: Module = if m == &["main"] { vec![] } else { m.clone() };
        for p in paths(&strip(text)) {
            if let Some(t) = resolve(&from, &p, &files) {
                if &t != m && !t.is_empty() {
                    edges.entry(m.clone()).or_default().insert(t);
                }
            }
        }
        edges.entry(m.clone()).or_default();
    }
    edges
}

fn folder(m: &[String]) -> &str {
    m.first().map_or("", String::as_str)
}

fn in_binary(m: &[String]) -> bool {
    BINARY.contains(&folder(m))
}

#[test]
fn the_graph_is_read_whole() {
    let g = graph();
    let edges: usize = g.values().map(BTreeSet::len).sum();
    assert!(g.len() > 80 && edges > 300, "{} files, {edges} edges: the reader lost the source", g.len());
    let has = |a: &str, b: &str| g.iter().any(|(m, to)| name(m) == a && to.iter().any(|t| name(t) == b));
    assert!(has("pki::issue", "pki::san"), "use crate::pki::san::… in pki/issue.rs");
    assert!(has("depot", "pki::names"), "an inline crate::pki::names path in depot.rs");
}

#[test]
fn the_reader_expands_use_trees_and_skips_comments_strings_and_tests() {
    let code = strip(concat!(
        "use crate::pki::{keys::{self, KeySpec}, san::San as S};\n",
        "// use crate::commands::x;\n/* crate::cli::Cli */\n",
        "let s = \"crate::install\"; let r = r#\"crate::install\"#; let c = '\"';\n",
        "fn f<'a>(x: &'a str) { super::depot::write(x) }\n",
        "#[cfg(test)]\nmod tests { use crate::commands::sign; }\n",
    ));
    let mut found = paths(&code);
    found.sort();
    assert_eq!(
        found,
        ["crate::pki", "crate::pki::keys", "crate::pki::keys::KeySpec", "crate::pki::san::San", "super::depot::write"]
    );
}

#[test]
fn the_library_never_imports_the_binary() {
    let bad: Vec<String> = graph()
        .iter()
        .filter(|(m, _)| !in_binary(m))
        .flat_map(|(m, to)| to.iter().filter(|t| in_binary(t)).map(move |t| format!("{} -> {}", name(m), name(t))))
        .collect();
    assert!(bad.is_empty(), "library modules import the binary's (cli, commands, install):\n{}", bad.join("\n"));
}

#[test]
fn no_file_imports_one_that_imports_it_back() {
    let g = graph();
    let cycles = strongly_connected(&g);
    let text: Vec<String> = cycles.iter().map(|c| c.iter().map(|m| name(m)).collect::<Vec<_>>().join(", ")).collect();
    assert!(text.is_empty(), "import cycles (each line one set of files):\n{}", text.join("\n"));
}

#[test]
fn each_folder_imports_only_the_folders_below_it() {
    let mut bad = Vec::new();
    for (m, to) in graph() {
        let Some((_, may)) = LAYERS.iter().find(|(f, _)| *f == folder(&m)) else { continue };
        for t in to {
            if folder(&t) != folder(&m) && !may.contains(&folder(&t)) {
                bad.push(format!("{} -> {} ({} may import {:?})", name(&m), name(&t), folder(&m), may));
            }
        }
    }
    assert!(bad.is_empty(), "imports against the layering in ARCHITECTURE.md:\n{}", bad.join("\n"));
}

/// Tarjan's algorithm: the sets of more than one file that reach each other.
fn strongly_connected(g: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct State<'g> {
        g: &'g BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'g Module, usize>,
        low: BTreeMap<&'g Module, usize>,
        stack: Vec<&'g Module>,
        on_stack: BTreeSet<&'g Module>,
        out: Vec<Vec<Module>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g Module) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.g.get(v).into_iter().flatten() {
            let Some((w, _)) = s.g.get_key_value(w) else { continue };
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut set = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                set.push(w.clone());
                if w == v {
                    break;
                }
            }
            if set.len() > 1 {
                set.sort();
                s.out.push(set);
            }
        }
    }
    let mut s = State {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: vec![],
        on_stack: BTreeSet::new(),
        out: vec![],
    };
    for v in g.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out
}

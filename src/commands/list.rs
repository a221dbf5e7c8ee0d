//! `certforge list`: the depot as a table or a tree, sorted by expiry, and
//! a CI check of what expires soon.

use anyhow::Result;
use serde::Serialize;
use time::OffsetDateTime;

use super::common::{colour_for, print_stdout, usage, warn, Exit};
use crate::authority::expiry::prometheus_gauges;
use crate::authority::listing::{scan, Entry, View};
use crate::cli::{ListArgs, ListFormat};
use crate::depot::{self, Depot, Write1, PUBLIC_MODE};
use crate::pki::inspect::{summary, SanEntry};
use crate::pki::validity::Expiry;

/// A row of the listing.
#[derive(Debug, Serialize)]
pub struct Row {
    pub name: String,
    pub kind: String,
    pub issuer: String,
    /// Typed, as `[{"type": "dns", "value": "localhost"}]`; empty for a
    /// CSR not signed yet.
    pub sans: Vec<SanEntry>,
    pub not_after: Option<String>,
    pub days_left: Option<i64>,
    /// "ok", "expiring", "expired", "revoked" or "pending" (a CSR not signed yet).
    pub status: String,
    pub revoked: Option<String>,
    pub file: String,
    /// For a CA whose key is on a PKCS#11 token: where, and whether the
    /// token answers now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_key: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<Row>,
}

/// What counts as expiring soon in the status column.
const SOON_DAYS: i64 = 30;

fn row(e: &Entry) -> Row {
    let status = if e.revoked.is_some() {
        "revoked"
    } else if e.info.status == "expired" {
        "expired"
    } else if e.info.days_left < SOON_DAYS {
        "expiring"
    } else {
        "ok"
    };
    Row {
        name: e.stem.clone(),
        kind: e.kind.to_string(),
        issuer: crate::pki::inspect::display_name_of(&e.info.issuer),
        sans: e.info.sans.entries(),
        not_after: Some(e.info.not_after.clone()),
        days_left: Some(e.info.days_left),
        status: status.into(),
        revoked: e.revoked.clone(),
        file: e.path.display().to_string(),
        token_key: None,
        children: Vec::new(),
    }
}

/// Runs `list`.
pub fn run(depot: &Depot, args: &ListArgs) -> Result<()> {
    let now = OffsetDateTime::now_utc();
    if let Some(missing) = super::inputs::missing_depot(depot) {
        return Err(usage(missing));
    }
    let json = match (args.json, args.format) {
        (true, _) | (_, Some(ListFormat::Json)) => true,
        (_, Some(ListFormat::Prometheus)) => return prometheus(depot, args, now),
        _ => false,
    };
    if args.out.is_some() {
        return Err(usage(
            "--out writes the Prometheus gauges: add --format prometheus (the table and JSON go to stdout)",
        ));
    }
    let view = scan(depot, now);
    if let Some(span) = &args.expiring_within {
        return expiring(&view, span, now, json);
    }
    let mut entries: Vec<&Entry> = view.entries.iter().collect();
    entries.sort_by(|a, b| a.info.days_left.cmp(&b.info.days_left).then(a.stem.cmp(&b.stem)));
    let pending = view.pending.iter().map(|stem| Row {
        name: stem.clone(),
        kind: "CSR only".into(),
        issuer: String::new(),
        sans: Vec::new(),
        not_after: None,
        days_left: None,
        status: "pending".into(),
        revoked: None,
        file: depot.root().join(format!("{stem}.csr")).display().to_string(),
        token_key: None,
        children: Vec::new(),
    });
    let token_keys: Vec<(String, String)> = entries
        .iter()
        .filter(|e| e.info.is_ca)
        .filter_map(|e| {
            let name = crate::pki::names::EntryName::new(&e.stem).ok()?;
            Some((e.stem.clone(), super::pkcs11::depot_status(depot, &name, &args.token)?))
        })
        .collect();
    let with_keys = |mut rows: Vec<Row>| {
        fn set(rows: &mut [Row], keys: &[(String, String)]) {
            for r in rows {
                r.token_key = keys.iter().find(|(s, _)| *s == r.name).map(|(_, k)| k.clone());
                set(&mut r.children, keys);
            }
        }
        set(&mut rows, &token_keys);
        rows
    };
    let footer = if token_keys.is_empty() {
        String::new()
    } else {
        let lines: Vec<String> = token_keys.iter().map(|(s, k)| format!("  {s}: {k}\n")).collect();
        format!("\nCA keys on PKCS#11 tokens:\n{}", lines.concat())
    };
    if args.tree {
        let mut roots: Vec<Row> = entries
            .iter()
            .filter(|e| e.issuer_stem.as_ref().is_none_or(|i| *i == e.stem))
            .map(|e| subtree(e, &entries))
            .collect();
        roots.extend(pending);
        let roots = with_keys(roots);
        return if json { print_json(&roots) } else { print_stdout(&(render_tree(&roots) + &footer)) };
    }
    let mut rows: Vec<Row> = entries.iter().map(|e| row(e)).collect();
    rows.extend(pending);
    let rows = with_keys(rows);
    if json {
        print_json(&rows)
    } else if rows.is_empty() {
        print_stdout(&format!("the depot {} holds no certificates or requests yet\n", depot.root().display()))
    } else {
        print_stdout(&(render_table(&rows) + &footer))
    }
}

fn subtree(e: &Entry, all: &[&Entry]) -> Row {
    let mut r = row(e);
    r.children = all
        .iter()
        .filter(|c| c.issuer_stem.as_deref() == Some(e.stem.as_str()) && c.stem != e.stem)
        .map(|c| subtree(c, all))
        .collect();
    r
}

fn expiring(view: &View, span: &str, now: OffsetDateTime, json: bool) -> Result<()> {
    let e = Expiry::parse(span).map_err(|e| usage(e.naming(super::flags::span("--expiring-within"))))?;
    let until = e.after(now).ok_or_else(|| usage(format!("--expiring-within {span:?} is too long")))?;
    let mut due: Vec<&Entry> =
        view.entries.iter().filter(|e| parse_time(&e.info.not_after).is_some_and(|t| t <= until)).collect();
    due.sort_by_key(|e| e.info.days_left);
    let rows: Vec<Row> = due.iter().map(|e| row(e)).collect();
    if json {
        print_json(&rows)?;
    } else if rows.is_empty() {
        print_stdout(&format!("nothing expires within {span} (before {})\n", crate::pki::validity::fmt_time(until)))?;
    } else {
        print_stdout(&format!("{} certificate(s) expire within {span}:\n{}", rows.len(), render_table(&rows)))?;
    }
    if rows.is_empty() {
        Ok(())
    } else {
        Err(Exit(1).into())
    }
}

/// `--format prometheus`: every certificate's expiry as gauges, on stdout
/// or replacing `--out FILE` atomically (a temporary file beside it, flushed,
/// then renamed over it), so node_exporter's textfile collector, which reads
/// every `*.prom` file of its directory on each scrape, never sees half a
/// file. Mode 0644: node_exporter runs as another user, and expiry dates
/// are no secret.
fn prometheus(depot: &Depot, args: &ListArgs, now: OffsetDateTime) -> Result<()> {
    if args.tree || args.expiring_within.is_some() {
        return Err(usage(
            "--format prometheus gives every certificate, for an alert rule to pick what is due: drop --tree and --expiring-within",
        ));
    }
    let text = prometheus_gauges(&scan(depot, now).entries);
    let Some(path) = &args.out else { return print_stdout(&text) };
    if path.is_dir() {
        return Err(usage(format!(
            "--out {} is a directory; name the file in it, e.g. --out {}",
            path.display(),
            path.join("certforge.prom").display()
        )));
    }
    if path.extension().is_none_or(|e| e != "prom") {
        warn(&format!("node_exporter's textfile collector reads only files named *.prom, not {}", path.display()));
    }
    depot::write_all(&[Write1 {
        path: path.clone(),
        bytes: text.into_bytes().into(),
        mode: PUBLIC_MODE,
        replace: true,
    }])
}

fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

fn print_json<T: Serialize>(v: &T) -> Result<()> {
    print_stdout(&(serde_json::to_string_pretty(v)? + "\n"))
}

fn paint(status: &str, text: &str) -> String {
    // Colour only for a person at a terminal, as clap decides.
    if !colour_for(&std::io::stdout()) {
        return text.to_string();
    }
    let code = match status {
        "expired" | "revoked" => "31",
        "expiring" => "33",
        "pending" => "2",
        _ => "32",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

fn days(r: &Row) -> String {
    r.days_left.map_or_else(|| "-".into(), |d| d.to_string())
}

fn render_table(rows: &[Row]) -> String {
    let headers = ["NAME", "KIND", "ISSUER", "SANS", "NOT AFTER", "DAYS", "STATUS"];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                r.kind.clone(),
                r.issuer.clone(),
                if r.status == "pending" { String::new() } else { truncate(&summary(&r.sans), 48) },
                r.not_after.clone().unwrap_or_else(|| "-".into()),
                days(r),
                r.revoked.as_ref().map_or_else(|| r.status.clone(), |t| format!("revoked {}", &t[..10.min(t.len())])),
            ]
        })
        .collect();
    let mut widths = headers.map(str::len);
    for c in &cells {
        for (i, v) in c.iter().enumerate() {
            widths[i] = widths[i].max(v.chars().count());
        }
    }
    let line = |vals: &[String; 7]| {
        vals.iter()
            .enumerate()
            .map(|(i, v)| if i == 6 { v.clone() } else { format!("{v:<w$}", w = widths[i]) })
            .collect::<Vec<_>>()
            .join("  ")
    };
    let mut out = line(&headers.map(String::from)) + "\n";
    for (r, c) in rows.iter().zip(&cells) {
        let mut c = c.clone();
        c[6] = paint(&r.status, &c[6]);
        out.push_str(line(&c).trim_end());
        out.push('\n');
    }
    out
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max - 1).collect::<String>())
    }
}

fn render_tree(roots: &[Row]) -> String {
    let mut out = String::new();
    for r in roots {
        out.push_str(&format!("{}\n", describe(r)));
        walk(&r.children, "", &mut out);
    }
    out
}

fn walk(children: &[Row], prefix: &str, out: &mut String) {
    for (i, c) in children.iter().enumerate() {
        let last = i + 1 == children.len();
        out.push_str(&format!("{prefix}{}{}\n", if last { "└── " } else { "├── " }, describe(c)));
        walk(&c.children, &format!("{prefix}{}", if last { "    " } else { "│   " }), out);
    }
}

fn describe(r: &Row) -> String {
    let when = match (&r.not_after, r.days_left) {
        (Some(t), Some(d)) => format!(", expires {} ({d} days)", &t[..10.min(t.len())]),
        _ => String::new(),
    };
    let status = if r.status == "ok" { String::new() } else { format!(", {}", paint(&r.status, &r.status)) };
    format!("{} ({}{when}{status})", r.name, r.kind)
}

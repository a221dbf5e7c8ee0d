//! The depot's certificates as Prometheus gauges: when each expires, when
//! it became valid, and whether its issuer's CRL revokes it, in the text
//! exposition format 0.0.4
//! (<https://prometheus.io/docs/instrumenting/exposition_formats/>). That
//! is the format node_exporter's textfile collector reads from `*.prom`
//! files (`list --format prometheus --out`), and `serve` appends the same
//! text to its own `/metrics`, whose other families use this module's
//! [`family`] and [`escape`] too. Pure: entries in, text out.

use std::fmt::Write as _;

use super::listing::Entry;
use crate::pki::inspect::display_name_of;

/// When each certificate expires (notAfter), in unix seconds.
pub const NOT_AFTER: &str = "certforge_certificate_not_after_timestamp_seconds";
/// When each certificate became valid (notBefore), in unix seconds.
pub const NOT_BEFORE: &str = "certforge_certificate_not_before_timestamp_seconds";
/// 1 when the issuer's CRL in the depot revokes the certificate, else 0.
pub const REVOKED: &str = "certforge_certificate_revoked";

/// One gauge family per fact, each with its `# HELP` and `# TYPE` once and
/// one sample per certificate, labelled `name` (the depot name), `issuer`
/// (the issuer's CN), `kind` ([`super::listing::EntryKind::label`]) and
/// `serial` (colon hex, as openssl and `inspect` print it). Samples are
/// sorted by name, then serial, so the same depot always gives the same
/// text. No entries, no text: an empty file is a valid exposition.
pub fn prometheus_gauges(entries: &[Entry]) -> String {
    let mut rows: Vec<Row> = entries.iter().filter_map(Row::of).collect();
    rows.sort_by(|a, b| a.key.cmp(&b.key));
    let mut out = String::new();
    if rows.is_empty() {
        return out;
    }
    for (name, help, value) in FAMILIES {
        family(&mut out, name, GAUGE, help);
        for r in &rows {
            // Writing to a String cannot fail.
            let _ = writeln!(out, "{name}{{{}}} {}", r.labels, value(r));
        }
    }
    out
}

/// The `# TYPE` of a family whose samples go up and down.
pub const GAUGE: &str = "gauge";
/// The `# TYPE` of a family whose sample only goes up.
pub const COUNTER: &str = "counter";

/// A metric family's `# HELP` and `# TYPE` lines, which come once before
/// its samples.
pub fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A gauge family: its name, its help text, and its value for a row.
type Family = (&'static str, &'static str, fn(&Row) -> i64);

const FAMILIES: [Family; 3] = [
    (NOT_AFTER, "When the certificate expires (notAfter), in seconds since the Unix epoch.", |r| r.not_after),
    (NOT_BEFORE, "When the certificate became valid (notBefore), in seconds since the Unix epoch.", |r| r.not_before),
    (REVOKED, "1 when the issuer's CRL in the depot revokes the certificate, else 0.", |r| r.revoked),
];

/// One certificate's sample: its labels, written once, and its values.
struct Row {
    /// Name, then serial: the order of the samples.
    key: (String, String),
    labels: String,
    not_before: i64,
    not_after: i64,
    revoked: i64,
}

impl Row {
    fn of(e: &Entry) -> Option<Row> {
        let (_, c) = x509_parser::parse_x509_certificate(&e.der).ok()?;
        let labels = format!(
            "name=\"{}\",issuer=\"{}\",kind=\"{}\",serial=\"{}\"",
            escape(&e.stem),
            escape(&display_name_of(&e.info.issuer)),
            e.kind.label(),
            escape(&e.info.serial),
        );
        Some(Row {
            key: (e.stem.clone(), e.info.serial.clone()),
            labels,
            not_before: c.validity().not_before.timestamp(),
            not_after: c.validity().not_after.timestamp(),
            revoked: i64::from(e.revoked.is_some()),
        })
    }
}

/// A label value as the text format wants it: backslash, double quote and
/// line feed escaped as `\\`, `\"` and `\n`; everything else as is (UTF-8).
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Ca, Leaf};
    use crate::authority::listing::{scan, EntryKind};
    use crate::depot::Depot;
    use crate::pki::profile::LeafProfile;

    /// A depot with a root CA and a server and a client certificate it
    /// issued, scanned.
    fn entries() -> (tempfile::TempDir, Vec<Entry>) {
        let tmp = tempfile::tempdir().unwrap();
        let ca = Ca::new("Root").unwrap();
        ca.write_to(tmp.path(), "Root").unwrap();
        ca.issue(Leaf::server(["web.test"])).unwrap().write_to(tmp.path(), "web").unwrap();
        ca.issue(Leaf::client("app")).unwrap().write_to(tmp.path(), "app").unwrap();
        let view = scan(&Depot::new(tmp.path()), time::OffsetDateTime::now_utc());
        (tmp, view.entries)
    }

    /// The sample lines of one family, in order.
    fn samples<'a>(text: &'a str, family: &str) -> Vec<&'a str> {
        text.lines().filter(|l| l.starts_with(&format!("{family}{{"))).collect()
    }

    #[test]
    fn escape_follows_the_text_format() {
        assert_eq!(escape(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape("two\nlines"), "two\\nlines");
        assert_eq!(escape("Ünïcode, tabs\tstay"), "Ünïcode, tabs\tstay");
    }

    /// Each family has its HELP and TYPE once, before its samples, and the
    /// samples are sorted by name whatever order the entries came in.
    #[test]
    fn families_are_declared_once_and_samples_sorted_by_name() {
        let (_tmp, mut entries) = entries();
        entries.reverse();
        let text = prometheus_gauges(&entries);
        for family in [NOT_AFTER, NOT_BEFORE, REVOKED] {
            assert_eq!(text.matches(&format!("# HELP {family} ")).count(), 1, "{text}");
            assert_eq!(text.matches(&format!("# TYPE {family} gauge\n")).count(), 1, "{text}");
            let names: Vec<&str> = samples(&text, family).iter().map(|l| l.split('"').nth(1).unwrap()).collect();
            assert_eq!(names, ["Root", "app", "web"], "{text}");
        }
        entries.reverse();
        assert_eq!(prometheus_gauges(&entries), text);
    }

    /// The labels and values of a sample: the issuer's CN, the kind's
    /// label, the serial as `inspect` prints it, notAfter in unix seconds.
    #[test]
    fn a_sample_carries_the_labels_and_unix_seconds() {
        let (_tmp, entries) = entries();
        let web = entries.iter().find(|e| e.stem == "web").unwrap();
        assert_eq!(web.kind, EntryKind::Leaf(LeafProfile::Server));
        let (_, c) = x509_parser::parse_x509_certificate(&web.der).unwrap();
        let want = format!(
            "{NOT_AFTER}{{name=\"web\",issuer=\"Root\",kind=\"server\",serial=\"{}\"}} {}",
            web.info.serial,
            c.validity().not_after.timestamp()
        );
        let text = prometheus_gauges(&entries);
        assert!(samples(&text, NOT_AFTER).contains(&want.as_str()), "{want}\nnot in\n{text}");
        let kinds: Vec<&str> = samples(&text, REVOKED).iter().map(|l| l.split('"').nth(5).unwrap()).collect();
        assert_eq!(kinds, ["ca", "client", "server"]);
    }

    /// Revoked is 1 exactly for the entry the CRL revokes; a name with a
    /// quote, a backslash or a line feed stays one well-formed label.
    #[test]
    fn revoked_flag_and_escaped_names() {
        let (_tmp, mut entries) = entries();
        let web = entries.iter_mut().find(|e| e.stem == "web").unwrap();
        web.revoked = Some("2026-01-01T00:00:00Z".into());
        web.stem = "we\"b\\\nx".into();
        let text = prometheus_gauges(&entries);
        let revoked: Vec<(&str, &str)> = samples(&text, REVOKED)
            .iter()
            .map(|l| (l.split("\",").next().unwrap(), l.rsplit(' ').next().unwrap()))
            .collect();
        assert_eq!(
            revoked,
            [
                (format!("{REVOKED}{{name=\"Root").as_str(), "0"),
                (format!("{REVOKED}{{name=\"app").as_str(), "0"),
                (format!("{REVOKED}{{name=\"we\\\"b\\\\\\nx").as_str(), "1"),
            ]
        );
        assert!(text.lines().all(|l| l.starts_with('#') || l.starts_with("certforge_certificate_")), "{text}");
    }

    #[test]
    fn no_entries_no_text() {
        assert_eq!(prometheus_gauges(&[]), "");
    }
}

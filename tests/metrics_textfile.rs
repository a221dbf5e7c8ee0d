//! `list --format prometheus --out` read by the real consumers: Prometheus's
//! own linter (`promtool check metrics`) and node_exporter's textfile
//! collector, scraped over HTTP. `.ci/run` installs both (Debian packages
//! `prometheus` and `prometheus-node-exporter`) and sets
//! CERTFORGE_REQUIRE_PEERS, so there a missing one fails the test.

mod common;
#[path = "common/prom.rs"]
mod prom;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::{need, with_cert, Env};
use prom::NodeExporter;

const NOT_AFTER: &str = "certforge_certificate_not_after_timestamp_seconds";
const NOT_BEFORE: &str = "certforge_certificate_not_before_timestamp_seconds";
const REVOKED: &str = "certforge_certificate_revoked";
/// The CA's name has quotes, so the `issuer` label needs escaping.
const CA: &str = "Metrics \"Root\"";

/// One sample of an exposition: family, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// The samples of a text exposition (format 0.0.4), label values
/// unescaped. Panics on a line it cannot read, so a malformed line fails.
fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let (name, rest) =
                line.split_once('{').map_or_else(|| (line.split(' ').next().unwrap(), ""), |(n, r)| (n, r));
            let mut labels = BTreeMap::new();
            let mut chars = rest.chars().peekable();
            while chars.peek().is_some_and(|c| *c != '}') {
                let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
                assert_eq!(chars.next(), Some('"'), "{line}");
                let mut value = String::new();
                loop {
                    match chars.next().unwrap_or_else(|| panic!("unterminated label in {line}")) {
                        '\\' => value.push(match chars.next() {
                            Some('n') => '\n',
                            Some(c @ ('\\' | '"')) => c,
                            other => panic!("bad escape {other:?} in {line}"),
                        }),
                        '"' => break,
                        c => value.push(c),
                    }
                }
                labels.insert(key.trim_start_matches(',').to_string(), value);
                if chars.peek() == Some(&',') {
                    chars.next();
                }
            }
            let value = line.rsplit(' ').next().unwrap().parse().unwrap_or_else(|e| panic!("{line}: {e}"));
            (name.to_string(), labels, value)
        })
        .collect()
}

/// The value of `family` for the certificate `name`.
fn value(samples: &[Sample], family: &str, name: &str) -> f64 {
    let found: Vec<f64> =
        samples.iter().filter(|(f, l, _)| f == family && l["name"] == name).map(|(_, _, v)| *v).collect();
    assert_eq!(found.len(), 1, "{family}{{name={name:?}}} in {samples:?}");
    found[0]
}

/// A CA, a server, a client, one revoked, one expiring in 10 days, and a
/// request not signed yet.
fn depot() -> Env {
    let env = Env::new();
    env.ok(&["init", "--cn", CA]);
    for (name, profile, extra) in [
        ("web.test", "server", &[][..]),
        ("app", "client", &[][..]),
        ("gone.test", "server", &[][..]),
        ("soon.test", "server", &["--expires", "10 days"][..]),
    ] {
        let by = if profile == "client" { "--cn" } else { "--domain" };
        env.ok(&["request-cert", by, name]);
        env.ok(&[&["sign", name, "--CA", CA, "--profile", profile][..], extra].concat());
    }
    env.ok(&["revoke", "--CN", "gone.test", "--CA", CA]);
    env.ok(&["request-cert", "--domain", "pending.test"]);
    env
}

/// What the file must say about `stem`: kind, notBefore, notAfter, serial.
fn expected(env: &Env, stem: &str) -> (f64, f64, String) {
    with_cert(&env.file(&format!("{stem}.crt")), |c| {
        let serial = c.raw_serial().iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":");
        (c.validity().not_before.timestamp() as f64, c.validity().not_after.timestamp() as f64, serial)
    })
}

/// Every certificate with its labels and values; the request is left out.
fn assert_depot_gauges(env: &Env, samples: &[Sample]) {
    let rows = [
        ("Metrics_Root_", "ca", 0.0),
        ("app", "client", 0.0),
        ("gone.test", "server", 1.0),
        ("soon.test", "server", 0.0),
        ("web.test", "server", 0.0),
    ];
    for family in [NOT_AFTER, NOT_BEFORE, REVOKED] {
        let names: Vec<&str> =
            samples.iter().filter(|(f, _, _)| f == family).map(|(_, l, _)| l["name"].as_str()).collect();
        assert_eq!(names, rows.map(|r| r.0), "{family}");
    }
    for (name, kind, revoked) in rows {
        let (not_before, not_after, serial) = expected(env, name);
        let (_, labels, _) = samples.iter().find(|(f, l, _)| f == NOT_AFTER && l["name"] == name).unwrap();
        let want: BTreeMap<String, String> = [("name", name), ("issuer", CA), ("kind", kind), ("serial", &serial)]
            .map(|(k, v)| (k.into(), v.into()))
            .into();
        assert_eq!(labels, &want);
        assert_eq!(value(samples, NOT_AFTER, name), not_after, "{name}");
        assert_eq!(value(samples, NOT_BEFORE, name), not_before, "{name}");
        assert_eq!(value(samples, REVOKED, name), revoked, "{name}");
    }
    // What the README's alert rule picks: only the one made to expire in
    // 10 days is due within 30.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let due: Vec<&str> = rows
        .iter()
        .filter(|(n, _, r)| *r == 0.0 && value(samples, NOT_AFTER, n) - now < 30.0 * 86400.0)
        .map(|r| r.0)
        .collect();
    assert_eq!(due, ["soon.test"]);
}

#[test]
fn expiry_gauges_pass_promtool_and_node_exporter_serves_them() {
    if !need("promtool", "prometheus") || !need("prometheus-node-exporter", "prometheus-node-exporter") {
        return;
    }
    let env = depot();
    let dir = env.tmp.path().join("textfile");
    std::fs::create_dir(&dir).unwrap();
    let prom = dir.join("certforge.prom");
    let out = env.ok(&["list", "--format", "prometheus", "--out", prom.to_str().unwrap()]);
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "--out prints nothing: {out:?}");
    assert_eq!(common::mode(&prom), 0o644);
    let text = std::fs::read_to_string(&prom).unwrap();
    // The same text on stdout, and nothing left beside the file.
    assert_eq!(String::from_utf8(env.ok(&["list", "--format", "prometheus"]).stdout).unwrap(), text);
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["certforge.prom"]);
    assert_depot_gauges(&env, &samples(&text));

    // promtool lints as well as parses: no output at all means no problem.
    let lint = Command::new("promtool").args(["check", "metrics"]).stdin(std::fs::File::open(&prom).unwrap()).output();
    let lint = lint.expect("run promtool");
    assert!(
        lint.status.success() && lint.stdout.is_empty() && lint.stderr.is_empty(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );

    let exporter = NodeExporter::start(&dir);
    let scraped = samples(&exporter.scrape());
    let errors: Vec<f64> =
        scraped.iter().filter(|(f, _, _)| f == "node_textfile_scrape_error").map(|(_, _, v)| *v).collect();
    assert_eq!(errors, [0.0], "node_textfile_scrape_error");
    let ours: Vec<Sample> = scraped.into_iter().filter(|(f, _, _)| f.starts_with("certforge_")).collect();
    assert_depot_gauges(&env, &ours);
}

/// A directory is no file to write: the message names it and the file to
/// give instead, and nothing is written.
#[test]
fn out_refuses_a_directory() {
    let env = depot();
    let dir = env.tmp.path().join("textfile");
    std::fs::create_dir(&dir).unwrap();
    let err = env.fails(&["list", "--format", "prometheus", "--out", dir.to_str().unwrap()], 2);
    assert!(err.contains(&format!("--out {} is a directory", dir.display())), "{err}");
    assert!(err.contains(&format!("--out {}", dir.join("certforge.prom").display())), "{err}");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
}

/// --out is for the gauges only, and they cover the whole depot: the table,
/// the tree and --expiring-within are refused with it, naming the fix.
#[test]
fn out_and_prometheus_refuse_what_they_cannot_mean() {
    let env = depot();
    let prom = env.tmp.path().join("certforge.prom");
    let arg = prom.to_str().unwrap();
    let err = env.fails(&["list", "--out", arg], 2);
    assert!(err.contains("add --format prometheus"), "{err}");
    let err = env.fails(&["list", "--format", "prometheus", "--expiring-within", "30d"], 2);
    assert!(err.contains("drop --tree and --expiring-within"), "{err}");
    env.fails(&["list", "--json", "--format", "prometheus"], 2);
    assert!(!prom.exists());
}

/// A refresh replaces the file (a timer rewrites it), with the new facts.
#[test]
fn out_replaces_the_file_on_refresh() {
    let env = depot();
    let prom = env.tmp.path().join("certforge.prom");
    let arg = prom.to_str().unwrap();
    env.ok(&["list", "--format", "prometheus", "--out", arg]);
    env.ok(&["revoke", "--CN", "web.test", "--CA", CA]);
    env.ok(&["list", "--format", "prometheus", "--out", arg]);
    let samples = samples(&std::fs::read_to_string(&prom).unwrap());
    assert_eq!(value(&samples, REVOKED, "web.test"), 1.0);
}

/// The alert rule in the README, as a reader copies it.
fn readme_alert_rule() -> String {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme.find("```yaml\ngroups:\n  - name: certforge\n").expect("the README's alert rule") + 8;
    let len = readme[start..].find("```").unwrap();
    readme[start..start + len].to_string()
}

/// The README's alert rule, run by `promtool test rules` on three
/// certificates at once: one due in 10 days, one due as soon but revoked,
/// and one due in 400 days. Only the first fires, so `and` matches each
/// certificate with its own revoked flag; `$value` is the time left.
#[test]
fn readme_alert_rule_fires_for_the_unrevoked_certificate_due_within_30_days() {
    if !need("promtool", "prometheus") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("rules.yml"), readme_alert_rule()).unwrap();
    let series = |name: &str, not_after: u64, revoked: u8| {
        let labels =
            format!(r#"name="{name}",issuer="Root",kind="server",serial="01",job="node",instance="host:9100""#);
        format!(
            "      - series: '{NOT_AFTER}{{{labels}}}'\n        values: '{not_after}x180'\n      \
             - series: '{REVOKED}{{{labels}}}'\n        values: '{revoked}x180'\n"
        )
    };
    // promtool's clock starts at 0 (the Unix epoch): notAfter is time left.
    let day = 86400;
    let test = format!(
        "rule_files: [rules.yml]\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n{}{}{}\
         \x20   alert_rule_test:\n      - eval_time: 2h\n        alertname: CertificateExpiresSoon\n        exp_alerts:\n          \
         - exp_labels: {{severity: warning, name: soon.test, issuer: Root, kind: server, serial: '01', job: node, instance: 'host:9100'}}\n            \
         exp_annotations: {{summary: 'soon.test (serial 01, issued by Root) expires in 9d 22h 0m 0s'}}\n",
        series("soon.test", 10 * day, 0),
        series("gone.test", 10 * day, 1),
        series("far.test", 400 * day, 0),
    );
    std::fs::write(tmp.path().join("test.yml"), test).unwrap();
    let out = Command::new("promtool").args(["test", "rules", "test.yml"]).current_dir(tmp.path()).output().unwrap();
    assert!(
        out.status.success(),
        "promtool test rules:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

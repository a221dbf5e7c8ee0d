//! What a new user meets around the job: the words the product
//! uses, help for typos, and the benchmark report naming what it measured.

mod common;

// The command-line definition is the binary's own module, not the
// library's: read it from source, with the library paths it uses.
#[path = "../src/cli/mod.rs"]
#[allow(dead_code)]
mod cli;
#[allow(unused_imports)]
use certforge::{authority, depot, pkcs11, pki, serve, trust};

use std::path::Path;
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;
use common::Env;

/// `certforge PATH --help` as a terminal COLUMNS wide shows it (clap reads
/// COLUMNS when stdout is not a terminal), or at clap's default width.
fn certforge_help_at(path: &[String], columns: Option<usize>) -> String {
    let mut c = Command::cargo_bin("certforge").unwrap();
    c.args(path).arg("--help").env_remove("CERTFORGE_DEPOT_PATH").stdin(std::process::Stdio::null());
    match columns {
        Some(n) => c.env("COLUMNS", n.to_string()),
        None => c.env_remove("COLUMNS"),
    };
    let out = c.output().unwrap();
    assert!(out.status.success(), "certforge {path:?} --help");
    String::from_utf8(out.stdout).unwrap()
}

/// The subcommand names listed under "Commands:" in a help text.
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        // A wrapped description continues deeper in; names stand at two spaces.
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

/// Every help page: the top level and each subcommand, recursively.
fn every_help(path: Vec<String>, out: &mut Vec<(String, String)>) {
    every_help_at(path, None, out)
}

fn every_help_at(path: Vec<String>, columns: Option<usize>, out: &mut Vec<(String, String)>) {
    let help = certforge_help_at(&path, columns);
    for sub in subcommands(&help) {
        let mut p = path.clone();
        p.push(sub);
        every_help_at(p, columns, out);
    }
    out.push((format!("certforge {} --help", path.join(" ")), help));
}

/// Our background reading calls the documents behind the product "seed
/// 001" and so on; a user has never seen them. Only the flag
/// `--deterministic-seed` may say "seed".
fn assert_no_seed(what: &str, text: &str) {
    let cleaned = text.replace("deterministic-seed", "");
    if let Some(at) = cleaned.to_lowercase().find("seed") {
        let from = cleaned[..at].rfind('\n').map_or(0, |i| i + 1);
        let to = cleaned[at..].find('\n').map_or(cleaned.len(), |i| at + i);
        panic!("{what} says \"seed\": {}", &cleaned[from..to]);
    }
}

#[test]
fn no_user_facing_text_says_seed() {
    let mut pages = Vec::new();
    every_help(Vec::new(), &mut pages);
    let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
    for expected in ["certforge init --help", "certforge quickstart --help", "certforge templates show --help"] {
        assert!(names.contains(&expected), "{expected} was walked: {names:?}");
    }
    for (what, text) in &pages {
        assert_no_seed(what, text);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for doc in [
        "README.md",
        "BENCHMARKS.md",
        "templates/README.md",
        "templates/grpc-mtls.md",
        "templates/quickstart-usage.txt",
    ] {
        assert_no_seed(doc, &std::fs::read_to_string(root.join(doc)).unwrap());
    }
    // What quickstart prints, and the plan it applies.
    let env = Env::new();
    let out = env.ok(&["quickstart"]);
    assert_no_seed("quickstart output", &String::from_utf8_lossy(&out.stderr));
    assert_no_seed("quickstart output", &String::from_utf8_lossy(&out.stdout));
    assert_no_seed(
        "templates/plans/quickstart.toml",
        &std::fs::read_to_string(root.join("templates/plans/quickstart.toml")).unwrap(),
    );
}

/// A mistyped CA or entry name gets the closest name
/// the depot holds, case-insensitively, and the list of what is there, each
/// as the user types it ("Payments Root", which --CA takes, not the file
/// stem Payments_Root).
#[test]
fn typos_get_the_closest_depot_name() {
    let env = Env::new();
    env.ok(&["init", "--cn", "X"]);
    env.ok(&["init", "--cn", "Payments Root"]);
    env.ok(&["request-cert", "--domain", "localhost"]);
    env.ok(&["request-cert", "--cn", "grpc_client"]);
    env.ok(&["sign", "--CA", "X", "grpc_client", "--profile", "client"]);
    let before = env.snapshot();
    let cases: &[(&[&str], &str)] = &[
        (&["sign", "--CA", "x", "localhost"], "Did you mean \"X\"?"),
        (&["sign", "--CA", "payments root", "localhost"], "Did you mean \"Payments Root\"?"),
        (&["sign", "--CA", "X", "locahlost"], "Did you mean \"localhost\"?"),
        (&["revoke", "--CN", "grpc_clinet", "--CA", "X"], "Did you mean \"grpc_client\"?"),
        (&["revoke", "--CN", "grpc_client", "--CA", "x"], "Did you mean \"X\"?"),
        (&["renew", "grpc-client"], "Did you mean \"grpc_client\"?"),
        (&["renew", "Grpc_Client"], "Did you mean \"grpc_client\"?"),
        (&["export", "grpc_clent", "--format", "bundle"], "Did you mean \"grpc_client\"?"),
        (&["verify", "grpc_clientt"], "Did you mean \"grpc_client\"?"),
        (&["inspect", "LOCALHOST"], "Did you mean \"localhost\"?"),
    ];
    for (args, want) in cases {
        let out = env.run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: expected {want} in: {err}");
        assert_eq!(env.snapshot(), before, "{args:?} changed the depot");
    }
    // The CA list names only CAs; with nothing close there is no guess.
    let err = env.fails(&["sign", "--CA", "Billing", "localhost"], 1);
    assert!(
        err.contains("CAs in") && err.contains("\"Payments Root\", \"X\"") && !err.contains("Did you mean"),
        "{err}"
    );
    assert!(err.contains("init --common-name Billing"), "and how to make it: {err}");
    let empty = Env::new();
    std::fs::create_dir(empty.depot()).unwrap();
    let err = empty.fails(&["sign", "--CA", "X", "localhost"], 1);
    assert!(err.contains("holds no requests yet"), "{err}");
    // A request to make for a host names it in a SAN.
    assert!(err.contains("request-cert --domain localhost"), "{err}");
}

/// The name a "did you mean" offers is the one the user types, the CA's
/// own name, and it works where the mistyped one did not; so does a
/// request's. Before, it was the file stem ("gRPC_Root_CA").
#[test]
fn did_you_mean_offers_the_name_as_typed_and_it_works() {
    let env = Env::new();
    env.blog_workflow();
    env.ok(&["request-cert", "--cn", "My Service"]);
    let err = env.fails(&["sign", "--CA", "grpc root", "My Service", "--profile", "client"], 1);
    let offered =
        err.split("Did you mean \"").nth(1).and_then(|r| r.split('"').next()).unwrap_or_else(|| panic!("{err}"));
    assert_eq!(offered, "gRPC Root CA", "{err}");
    assert!(err.contains("CAs in") && err.contains("\"gRPC Root CA\"."), "{err}");
    let err = env.fails(&["sign", "--CA", offered, "my servce", "--profile", "client"], 1);
    assert!(err.contains("Did you mean \"My Service\"?"), "{err}");
    env.ok(&["sign", "--CA", offered, "My Service", "--profile", "client"]);
    let err = env.fails(&["revoke", "--CA", offered, "--CN", "My Servic"], 1);
    assert!(err.contains("Did you mean \"My Service\"?"), "{err}");
}

/// A mistyped or missing --depot-path is named as such, with the depot
/// beside it that was most likely meant, by every command that looks in a
/// depot; nothing is created. Before, it "held no requests yet" and
/// `request-cert --cn` in the wrong place was suggested.
#[test]
fn a_missing_depot_is_named_with_the_depot_beside_it() {
    let env = Env::new();
    env.blog_workflow();
    let run = |depot: &str, args: &[&str]| {
        Command::cargo_bin("certforge")
            .unwrap()
            .current_dir(env.tmp.path())
            .env_remove("CERTFORGE_DEPOT_PATH")
            .args(["--depot-path", depot])
            .args(args)
            .output()
            .unwrap()
    };
    let commands: &[&[&str]] = &[
        &["sign", "--CA", "gRPC Root CA", "localhost"],
        &["revoke", "--CA", "gRPC Root CA", "--CN", "localhost"],
        &["renew", "localhost"],
        &["renew", "--all", "--expiring-within", "30d"],
        &["export", "localhost", "--format", "bundle"],
        &["list"],
        &["lint", "--all"],
        &["lint", "localhost"],
        &["inspect", "localhost"],
        &["verify", "localhost"],
        &["trust", "install", "--dry-run"],
        &["serve", "--CA", "gRPC Root CA", "--listen", "127.0.0.1:0"],
    ];
    let tmp = env.tmp.path().display().to_string();
    for (depot, meant) in [("cert", "certs".to_string()), (&format!("{tmp}/crts")[..], format!("{tmp}/certs"))] {
        for args in commands {
            let out = run(depot, args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{args:?}: {err}");
            assert!(err.contains(&format!("the depot directory {depot} does not exist")), "{args:?}: {err}");
            assert!(err.contains(&format!("Did you mean --depot-path {meant}?")), "{args:?}: {err}");
            assert!(!err.contains("holds no") && !err.contains("request-cert"), "{args:?}: {err}");
            assert!(!Path::new(&tmp).join("cert").exists() && !Path::new(&tmp).join("crts").exists(), "{args:?}");
        }
    }
    // Nothing close: the depots there are listed; none at all: how to start one.
    let err = String::from_utf8_lossy(&run("pki", &["list"]).stderr).into_owned();
    assert!(err.contains("does not exist. Depots beside it: certs"), "{err}");
    let lone = tempfile::tempdir().unwrap();
    let out = Command::cargo_bin("certforge")
        .unwrap()
        .current_dir(lone.path())
        .env_remove("CERTFORGE_DEPOT_PATH")
        .args(["sign", "--CA", "X", "localhost"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("the depot directory out does not exist")
            && err.contains("certforge --depot-path out init --cn <name>"),
        "{err}"
    );
}

/// BENCHMARKS.md once named certforge "not installed"
/// because the report asked for the binary after the run, by name. The run
/// now records what it measured, and the report falls back to this
/// checkout's build.
#[test]
fn the_benchmark_report_names_the_certforge_it_measured() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let committed = std::fs::read_to_string(root.join("BENCHMARKS.md")).unwrap();
    assert!(!committed.contains("| certforge | not installed |"), "BENCHMARKS.md names the certforge version");
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    std::fs::create_dir(&results).unwrap();
    for e in std::fs::read_dir(root.join("bench/results")).unwrap() {
        let e = e.unwrap();
        if e.file_name() != "run.json" {
            std::fs::copy(e.path(), results.join(e.file_name())).unwrap();
        }
    }
    let report = |results: &Path, certforge: Option<&str>| {
        let md = tmp.path().join("B.md");
        let mut c = Command::new("python3");
        c.arg(root.join("bench/report.py")).arg(results).arg(&md).arg(tmp.path().join("r.svg"));
        c.env("PATH", "/usr/bin:/bin").env_remove("CERTFORGE");
        if let Some(bin) = certforge {
            c.env("CERTFORGE", bin);
        }
        let out = c.output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        std::fs::read_to_string(md).unwrap()
    };
    // Measured now (no run.json): the binary in $CERTFORGE answers.
    let md = report(&results, Some(env!("CARGO_BIN_EXE_certforge")));
    let row = format!("| certforge | certforge {} |", env!("CARGO_PKG_VERSION"));
    assert!(md.contains(&row), "{row} in:\n{}", &md[..md.len().min(800)]);
    // Recorded at measurement time: the report names that, whatever is on
    // this machine now.
    let md = report(&root.join("bench/results"), None);
    assert!(md.contains("| certforge | certforge "), "{}", &md[..md.len().min(800)]);
}

/// The example plan that `apply --help` shows, as a reader copies it: the
/// indented lines under "Example plan (plan.toml):".
fn example_plan(help: &str) -> String {
    let mut lines = help.lines().skip_while(|l| !l.starts_with("Example plan")).skip(1);
    let plan: Vec<&str> = lines.by_ref().take_while(|l| l.is_empty() || l.starts_with("  ")).collect();
    plan.iter().map(|l| l.strip_prefix("  ").unwrap_or(l)).collect::<Vec<_>>().join("\n")
}

/// clap read the `{n}` of `name = "svc-{n}"` in `apply --help` as its own
/// line break, so the copied plan was not TOML. It is a plan that applies.
#[test]
fn the_example_plan_in_apply_help_applies() {
    let env = Env::new();
    for columns in [None, Some(80)] {
        let plan = example_plan(&certforge_help_at(&["apply".to_string()], columns));
        assert!(plan.contains("name = \"svc-{n}\"") && plan.contains("[[leaf]]"), "the plan as shown:\n{plan}");
        let file = env.tmp.path().join("plan.toml");
        std::fs::write(&file, &plan).unwrap();
        let out = env.ok(&["apply", file.to_str().unwrap(), "--dry-run", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let made: Vec<&str> = v["made"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(made.len(), 101, "the CA and 100 leaves: {made:?}");
        assert!(made.contains(&"Test_Root") && made.contains(&"svc-1") && made.contains(&"svc-100"), "{made:?}");
    }
}

/// Splits a command as sh does, for the quoting the examples use: '…',
/// "…" and backslash-newline continuations; stops at a comment, a pipe or
/// a redirection, which are the shell's and not certforge's.
fn shell_words(cmd: &str) -> Vec<String> {
    let (mut words, mut word, mut quote, mut started) = (Vec::new(), String::new(), None, false);
    let mut chars = cmd.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') if chars.peek().is_some_and(|n| "\"\\$`".contains(*n)) => word.extend(chars.next()),
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => (quote, started) = (Some(c), true),
            (None, '\\') if chars.peek() == Some(&'\n') => {
                chars.next();
            }
            (None, '\\') => (word, started) = (word + &chars.next().map(String::from).unwrap_or_default(), true),
            (None, ' ' | '\n' | '\t') => {
                if started {
                    words.push(std::mem::take(&mut word));
                }
                started = false;
            }
            (None, '#' | '|' | '>' | '<' | ';') if !started => break,
            (None, c) => (word, started) = (word + &c.to_string(), true),
        }
    }
    assert!(quote.is_none(), "unbalanced quotes in {cmd:?}");
    if started {
        words.push(word);
    }
    words
}

/// The example commands of a help page as a reader copies them: a line
/// that starts with `certforge` (or `eval "$(certforge`) and the lines
/// its ` \` continues onto. Each comes with the line after it.
fn example_commands(help: &str) -> Vec<(Vec<&str>, Option<&str>)> {
    let lines: Vec<&str> = help.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let t = lines[i].trim_start();
        if t.starts_with("certforge ") || t.starts_with("eval \"$(certforge ") {
            let mut cmd = vec![lines[i]];
            while cmd.last().unwrap().ends_with(" \\") && i + 1 < lines.len() {
                i += 1;
                cmd.push(lines[i]);
            }
            out.push((cmd, lines.get(i + 1).copied()));
        }
        i += 1;
    }
    out
}

/// Help examples were wrapped by clap to the terminal's width in the
/// middle of a command (`--purpose` on one line, `server` on the next), so
/// a pasted example failed. At 80 columns and at 30 each example keeps
/// its lines: each fits 80 columns, ends its command or continues it with
/// ` \`, is followed by no stray fragment, and parses as certforge's own
/// command line; and every page shows its examples exactly as written.
#[test]
fn help_examples_paste_whole_at_any_width() {
    use clap::{CommandFactory, Parser};
    use cli::Cli;
    fn as_written(cmd: &clap::Command, path: String, out: &mut Vec<(String, String)>) {
        let mut cmd = cmd.clone();
        cmd.build();
        if let Some(text) = cmd.get_after_help() {
            out.push((path.clone(), text.to_string()));
        }
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            as_written(sub, format!("{path} {}", sub.get_name()), out);
        }
    }
    let mut written = Vec::new();
    as_written(&Cli::command(), "certforge".into(), &mut written);
    let with_examples: Vec<&str> = written.iter().map(|(p, _)| p.as_str()).collect();
    assert!(with_examples.len() >= 19, "the top level and 18 commands have examples: {with_examples:?}");
    for columns in [80, 30] {
        let mut pages = Vec::new();
        every_help_at(Vec::new(), Some(columns), &mut pages);
        let mut commands = 0;
        for (page, help) in &pages {
            for (cmd, next) in example_commands(help) {
                commands += 1;
                for l in &cmd {
                    assert!(l.chars().count() <= 80, "{page} at {columns} columns: over 80 columns: {l:?}");
                }
                assert!(
                    next.is_none_or(|n| {
                        let t = n.trim_start();
                        t.is_empty() || t.starts_with("certforge ") || t.starts_with("eval ") || t.starts_with('#')
                    }),
                    "{page} at {columns} columns: {next:?} after {cmd:?} is a piece of a wrapped command"
                );
                let text = cmd.join("\n");
                let text = text.trim_start().strip_prefix("eval \"$(").map_or(text.trim_start(), |t| {
                    t.trim_end().strip_suffix(")\"").unwrap_or_else(|| panic!("{page}: {t}"))
                });
                let words = shell_words(text);
                if let Err(e) = Cli::try_parse_from(&words) {
                    panic!("{page} at {columns} columns: the example {cmd:?} does not run as printed:\n{e}");
                }
            }
            let path = page.trim_end_matches(" --help").trim_end();
            if let Some((_, text)) = written.iter().find(|(p, _)| p == path) {
                assert!(
                    help.contains(text.as_str()),
                    "{page} at {columns} columns shows its examples as written:\n{help}"
                );
            }
        }
        assert!(commands >= 40, "{commands} example commands found at {columns} columns");
    }
}

/// `[env: CERTFORGE_DEPOT_PATH=]` read as a variable set to nothing. Help
/// names the variables and never shows their values, set or not.
#[test]
fn help_names_environment_variables_without_values() {
    let mut pages = Vec::new();
    every_help(Vec::new(), &mut pages);
    let flat = |help: &str| help.split_whitespace().collect::<Vec<_>>().join(" ");
    let (_, root) = pages.iter().find(|(p, _)| p == "certforge  --help").expect("the top-level page");
    assert!(flat(root).contains("[env: CERTFORGE_DEPOT_PATH]"), "{root}");
    for (page, help) in &pages {
        let flat = flat(help);
        for at in flat.match_indices("[env: ").map(|(i, _)| i) {
            let tag = &flat[at..at + flat[at..].find(']').unwrap() + 1];
            assert!(!tag.contains('='), "{page}: {tag}");
        }
    }
    let out = Command::cargo_bin("certforge")
        .unwrap()
        .args(["sign", "--help"])
        .env("CERTFORGE_DEPOT_PATH", "/srv/secret-depot")
        .env("CERTFORGE_PKCS11_MODULE", "/opt/secret/module.so")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("CERTFORGE_PKCS11_MODULE") && !help.contains("secret"), "{help}");
}

/// `serve --help` names the options of a fleet and the variable that can
/// hold the database URL, and `acme --help` the commands its operator
/// runs. A URL may carry a password: help never shows the variable's value.
#[test]
fn serve_and_acme_help_name_the_fleet_options_and_never_show_the_database_url() {
    let secret = "postgres://certforge:hunter2-secret@db.internal/certforge";
    let help = |path: &[&str]| {
        let mut c = Command::cargo_bin("certforge").unwrap();
        c.args(path).arg("--help").env_remove("CERTFORGE_DEPOT_PATH").env("CERTFORGE_DATABASE_URL", secret);
        let out = c.stdin(std::process::Stdio::null()).output().unwrap();
        assert!(out.status.success(), "certforge {path:?} --help");
        String::from_utf8(out.stdout).unwrap()
    };
    let serve = help(&["serve"]);
    for flag in [
        "--database <URL>",
        "--external-url <URL>",
        "--rate-orders-per-account <N>",
        "--rate-orders-per-address <N>",
        "--rate-failed-validations <N>",
        "CERTFORGE_DATABASE_URL",
    ] {
        assert!(serve.contains(flag), "serve --help names {flag}:\n{serve}");
    }
    let acme = help(&["acme"]);
    let subs = subcommands(&acme);
    for sub in ["list", "revoke", "eab"] {
        assert!(subs.iter().any(|s| s == sub), "acme --help lists {sub}: {subs:?}");
    }
    let list = help(&["acme", "list"]);
    assert!(list.contains("--json") && list.contains("--database <URL>"), "{list}");
    let revoke = help(&["acme", "revoke"]);
    assert!(revoke.contains("--reason") && revoke.contains("--all"), "{revoke}");
    for (page, text) in [("serve", &serve), ("acme", &acme), ("acme list", &list), ("acme revoke", &revoke)] {
        assert!(!text.contains("hunter2"), "{page} --help shows the database URL's password:\n{text}");
    }
}

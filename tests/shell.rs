//! What users of ripgrep, fd or cargo take for granted. Shell
//! completion that knows the depot, man pages that render clean, and a
//! Debian package that puts every file where the distribution looks.

mod common;

// The command-line definition is the binary's own module, not the
// library's: read it from source, with the library paths it uses.
#[path = "../src/cli/mod.rs"]
#[allow(dead_code)]
mod cli;
#[allow(unused_imports)]
use certforge::{authority, depot, pkcs11, pki, serve, trust};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{have, need, Env};

fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_certforge")).parent().unwrap().to_path_buf()
}

fn path_with(dir: &Path) -> String {
    format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default())
}

fn script(env: &Env, shell: &str) -> PathBuf {
    let out = env.ok(&["completions", shell]);
    let path = env.tmp.path().join(format!("completion.{shell}"));
    std::fs::write(&path, &out.stdout).unwrap();
    path
}

/// What bash's completion function puts in COMPREPLY for `words`, the last
/// being the word under the cursor: the test a real TAB would make.
fn bash_complete(script: &Path, bin: &Path, words: &[&str], extra_env: &[(&str, &str)]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{}'", w.replace('\'', "'\\''"))).collect();
    let cword = words.len() - 1;
    let prev = if cword > 0 { quoted[cword - 1].clone() } else { "''".into() };
    let program = format!(
        "source '{}'; COMP_WORDS=({}); COMP_CWORD={cword}; _clap_complete_certforge certforge {} {prev}; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        quoted.join(" "),
        quoted[cword],
    );
    let mut c = Command::new("bash");
    c.args(["--norc", "--noprofile", "-c", &program]).env("PATH", path_with(bin)).env_remove("CERTFORGE_DEPOT_PATH");
    for (k, v) in extra_env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    assert!(out.status.success(), "bash: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.is_empty()).map(str::to_string).collect()
}

/// A depot with two CAs, a signed server certificate and a pending request.
fn depot_for_completion() -> Env {
    let env = Env::new();
    env.ok(&["init", "--cn", "gRPC Root CA"]);
    env.ok(&["init", "--cn", "Other CA"]);
    env.ok(&["request-cert", "--domain", "localhost"]);
    env.ok(&["sign", "localhost", "--CA", "gRPC Root CA"]);
    env.ok(&["request-cert", "--cn", "grpc_client"]);
    env
}

#[test]
fn bash_completes_subcommands_and_names_from_the_depot() {
    let env = depot_for_completion();
    let s = script(&env, "bash");
    let bin = bin_dir();
    let d = env.depot();
    let d = d.to_str().unwrap();

    let subs = bash_complete(&s, &bin, &["certforge", "re"], &[]);
    for want in ["request-cert", "revoke", "renew"] {
        assert!(subs.contains(&want.to_string()), "{want} in {subs:?}");
    }
    assert!(!subs.iter().any(|c| c == "sign"), "only what starts with `re`: {subs:?}");

    let cas = bash_complete(&s, &bin, &["certforge", "--depot-path", d, "sign", "--CA", ""], &[]);
    assert_eq!(cas, ["Other_CA", "gRPC_Root_CA"], "the depot's CAs, and only CAs");
    let cas = bash_complete(&s, &bin, &["certforge", "--depot-path", d, "sign", "--CA", "g"], &[]);
    assert_eq!(cas, ["gRPC_Root_CA"]);
    let cas = bash_complete(&s, &bin, &["certforge", "--depot-path", d, "sign", "--CA", "G"], &[]);
    assert_eq!(cas, ["gRPC_Root_CA"], "case-insensitive, as the typo help is");
    // bash splits --depot-path=DIR at the `=`; the depot is still found.
    let cas = bash_complete(&s, &bin, &["certforge", "--depot-path", "=", d, "revoke", "--CA", ""], &[]);
    assert_eq!(cas, ["Other_CA", "gRPC_Root_CA"]);
    let cas = bash_complete(&s, &bin, &["certforge", "sign", "--CA", ""], &[("CERTFORGE_DEPOT_PATH", d)]);
    assert_eq!(cas, ["Other_CA", "gRPC_Root_CA"], "the depot from $CERTFORGE_DEPOT_PATH");

    let requests = bash_complete(&s, &bin, &["certforge", "--depot-path", d, "sign", "g"], &[]);
    assert_eq!(requests, ["grpc_client"], "sign offers requests");
    let certs = bash_complete(&s, &bin, &["certforge", "--depot-path", d, "revoke", "--CN", "l"], &[]);
    assert_eq!(certs, ["localhost"]);
    let certs = bash_complete(&s, &bin, &["certforge", "--depot-path", d, "renew", "l"], &[]);
    assert_eq!(certs, ["localhost"]);
    let certs = bash_complete(&s, &bin, &["certforge", "--depot-path", d, "export", "O"], &[]);
    assert_eq!(certs, ["Other_CA"]);
    let empty = bash_complete(&s, &bin, &["certforge", "--depot-path", "/nonexistent", "sign", "--CA", ""], &[]);
    assert!(empty.is_empty(), "no depot, no names, no error: {empty:?}");
}

#[test]
fn every_shell_gets_a_script_and_fish_and_zsh_accept_theirs() {
    let env = depot_for_completion();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let text = std::fs::read_to_string(script(&env, shell)).unwrap();
        assert!(text.contains("COMPLETE") && text.contains("certforge"), "{shell}: {text}");
    }
    let err = env.fails(&["completions", "tcsh"], 2);
    assert!(err.contains("bash") && err.contains("elvish"), "names the shells it knows: {err}");

    if need("zsh", "zsh") {
        let out = Command::new("zsh").arg("-n").arg(script(&env, "zsh")).output().unwrap();
        assert!(out.status.success(), "zsh -n: {}", String::from_utf8_lossy(&out.stderr));
        // Sourced after compinit, it registers its completer for certforge.
        let out = Command::new("zsh")
            .args(["-f", "-c"])
            .arg(format!(
                "autoload -Uz compinit; compinit -u -d {}; source {}; print -r -- $_comps[certforge]",
                env.tmp.path().join("zcompdump").display(),
                script(&env, "zsh").display()
            ))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "_clap_dynamic_completer_certforge");
    }
    if need("fish", "fish") {
        let d = env.depot();
        let cmdline = format!("certforge --depot-path {} sign --CA ", d.display());
        let out = Command::new("fish")
            .args(["--no-config", "-c"])
            .arg(format!("source {}; complete -C '{cmdline}'", script(&env, "fish").display()))
            .env("PATH", path_with(&bin_dir()))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.lines().any(|l| l.starts_with("gRPC_Root_CA")) && text.lines().any(|l| l.starts_with("Other_CA")),
            "fish offers the CAs: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `MANWIDTH=80 man -l FILE` with every groff warning on: nothing on stderr.
fn assert_renders_clean(page: &Path) -> String {
    let out: Output = Command::new("man")
        .args(["--warnings=all", "-l"])
        .arg(page)
        .env("MANWIDTH", "80")
        .env("MANPAGER", "cat")
        .env("LC_ALL", "C.UTF-8")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.trim().is_empty(), "{}: {err}", page.display());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn man_pages_render_without_warnings_one_per_subcommand() {
    if !need("man", "man-db") || !need("groff", "groff-base") {
        return;
    }
    let env = Env::new();
    let page = env.ok(&["man"]).stdout;
    assert!(String::from_utf8_lossy(&page).starts_with(".ie"), "roff on stdout");
    let dir = env.tmp.path().join("man");
    env.ok(&["man", "--dir", dir.to_str().unwrap()]);
    let mut files: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    files.sort();
    for want in ["certforge.1", "certforge-init.1", "certforge-sign.1", "certforge-templates-show.1", "certforge-man.1"]
    {
        assert!(files.contains(&want.to_string()), "{want} in {files:?}");
    }
    for f in &files {
        let text = assert_renders_clean(&dir.join(f));
        assert!(text.contains("NAME") && text.contains("SYNOPSIS"), "{f}: {text}");
    }
    let sign = assert_renders_clean(&dir.join("certforge-sign.1"));
    assert!(sign.contains("--CA") && sign.contains("certforge sign --CA"), "options and examples: {sign}");
    let err = env.fails(&["man", "--dir", dir.to_str().unwrap()], 1);
    assert!(err.contains("already exists"), "never overwrites a page: {err}");
}

/// groff filled and hyphenated the examples of the man pages as it fills
/// prose ("cert-" at the end of a line, "forge.fish" on the next), so a
/// copied command broke. Every page shows each line of its command's
/// examples whole, ` \` continuations included.
#[test]
fn man_pages_show_examples_line_for_line() {
    use clap::CommandFactory;
    if !need("man", "man-db") || !need("groff", "groff-base") {
        return;
    }
    let env = Env::new();
    let dir = env.tmp.path().join("man");
    env.ok(&["man", "--dir", dir.to_str().unwrap()]);
    let mut cli = cli::Cli::command();
    cli.build();
    let mut pages = vec![("certforge.1".to_string(), cli.get_after_help().unwrap().to_string())];
    for sub in cli.get_subcommands() {
        if let Some(text) = sub.get_after_help() {
            pages.push((format!("certforge-{}.1", sub.get_name()), text.to_string()));
        }
    }
    assert!(pages.len() >= 19, "{} pages with examples", pages.len());
    for (page, examples) in &pages {
        let shown = assert_renders_clean(&dir.join(page));
        let shown: Vec<&str> = shown.lines().map(str::trim).collect();
        for line in examples.lines().map(str::trim).filter(|l| l.starts_with("certforge") || l.starts_with('-')) {
            assert!(shown.contains(&line), "{page} shows {line:?} whole:\n{}", shown.join("\n"));
        }
    }
}

#[test]
fn the_deb_puts_every_file_where_debian_looks_and_runs_from_there() {
    let Some(deb) = common::the_deb() else { return };
    let info = Command::new("dpkg-deb").arg("-f").arg(&deb).arg("Package").arg("Version").output().unwrap();
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(info.contains("Package: certforge"), "{info}");
    assert!(info.contains(&format!("Version: {}", env!("CARGO_PKG_VERSION"))), "{info}");

    let list = Command::new("dpkg-deb").arg("-c").arg(&deb).output().unwrap();
    assert!(list.status.success());
    let list = String::from_utf8_lossy(&list.stdout);
    let entry = |path: &str| {
        list.lines()
            .find(|l| l.ends_with(&format!(" {path}")))
            .unwrap_or_else(|| panic!("{path} is not in the package:\n{list}"))
            .to_string()
    };
    assert!(entry("./usr/bin/certforge").starts_with("-rwxr-xr-x"), "the binary is 0755");
    for path in [
        "./usr/share/man/man1/certforge.1.gz",
        "./usr/share/man/man1/certforge-sign.1.gz",
        "./usr/share/man/man1/certforge-init.1.gz",
        "./usr/share/bash-completion/completions/certforge",
        "./usr/share/zsh/vendor-completions/_certforge",
        "./usr/share/fish/vendor_completions.d/certforge.fish",
        "./usr/share/doc/certforge/README.md",
    ] {
        assert!(entry(path).starts_with("-rw-r--r--"), "{path} is 0644");
    }

    // Extracted into a temporary root, it runs and its files work.
    let root = tempfile::tempdir().unwrap();
    common::extract_deb(&deb, root.path());
    let usr_bin = root.path().join("usr/bin");
    let out = Command::new(usr_bin.join("certforge")).arg("--version").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("certforge {}", env!("CARGO_PKG_VERSION")));
    let depot = root.path().join("certs");
    let made = Command::new(usr_bin.join("certforge"))
        .arg("--depot-path")
        .arg(&depot)
        .args(["init", "--cn", "Packaged CA"])
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let cas = bash_complete(
        &root.path().join("usr/share/bash-completion/completions/certforge"),
        &usr_bin,
        &["certforge", "--depot-path", depot.to_str().unwrap(), "sign", "--CA", ""],
        &[],
    );
    assert_eq!(cas, ["Packaged_CA"], "the packaged bash completion works with the packaged binary");
    if have("man") {
        let text = assert_renders_clean(&root.path().join("usr/share/man/man1/certforge.1.gz"));
        assert!(text.contains("certforge"));
    }
}

/// `cargo install --locked --path .` works: .ci/run installs into a
/// temporary root and says where in CERTFORGE_INSTALLED.
#[test]
fn cargo_install_gives_a_working_binary() {
    let Some(bin) = common::the_installed_binary() else { return };
    let out = Command::new(&bin).arg("--version").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("certforge {}", env!("CARGO_PKG_VERSION")));
    let out = Command::new(&bin).args(["completions", "bash"]).output().unwrap();
    assert!(out.status.success() && !out.stdout.is_empty());
}

/// The package a file belongs to, as `dpkg -S` says ("libc6:amd64: /lib/…"
/// gives "libc6"), trying the path as given, then without a merged /usr.
fn owning_package(path: &str) -> Option<String> {
    let real = std::fs::canonicalize(path).map(|p| p.display().to_string()).unwrap_or_default();
    let unmerged = real.strip_prefix("/usr").unwrap_or_default().to_string();
    [path.to_string(), real, unmerged].into_iter().filter(|p| !p.is_empty()).find_map(|p| {
        let out = Command::new("dpkg").arg("-S").arg(&p).output().ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        out.status.success().then(|| text.split([':', ',']).next().unwrap_or_default().trim().to_string())
    })
}

/// The packaged binary is dynamically linked, since PKCS#11 modules are
/// shared libraries it loads and a static glibc program cannot load them,
/// and the .deb depends on the package of every library it needs.
#[test]
fn the_deb_depends_on_every_library_its_binary_needs() {
    let Some(deb) = common::the_deb() else { return };
    if !need("ldd", "libc-bin") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    common::extract_deb(&deb, root.path());
    let ldd = Command::new("ldd").arg(root.path().join("usr/bin/certforge")).output().unwrap();
    let libs = String::from_utf8_lossy(&ldd.stdout).into_owned();
    assert!(ldd.status.success(), "the packaged binary is not dynamically linked: {libs}");
    let info = Command::new("dpkg-deb").arg("-f").arg(&deb).arg("Depends").output().unwrap();
    let depends = String::from_utf8_lossy(&info.stdout).into_owned();
    let packages: Vec<&str> = depends.split(',').filter_map(|d| d.split_whitespace().next()).collect();
    let mut needed = Vec::new();
    for line in libs.lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)"
        let Some(path) = line.split_once("=> ").and_then(|(_, p)| p.split(" (").next()) else { continue };
        let owner = owning_package(path).unwrap_or_else(|| panic!("no package owns {path} (dpkg -S)"));
        assert!(packages.contains(&owner.as_str()), "{path} comes from {owner}, which Depends ({depends}) lacks");
        needed.push(owner);
    }
    assert!(needed.iter().any(|p| p == "libc6"), "ldd names no libc: {libs}");

    // The versions: the newest GLIBC_ and GCC_ symbol versions the binary
    // uses are at most those Depends asks for.
    if !need("objdump", "binutils") {
        return;
    }
    let dump = Command::new("objdump").arg("-T").arg(root.path().join("usr/bin/certforge")).output().unwrap();
    let dump = String::from_utf8_lossy(&dump.stdout).into_owned();
    let version = |v: &str| -> Vec<u32> {
        let mut n: Vec<u32> = v.split('.').map(|p| p.parse().unwrap_or(0)).collect();
        while n.last() == Some(&0) {
            n.pop();
        }
        n
    };
    for (prefix, package) in [("GLIBC_", "libc6"), ("GCC_", "libgcc-s1")] {
        let newest = dump
            .split_whitespace()
            .filter_map(|w| w.trim_matches(['(', ')']).strip_prefix(prefix))
            .map(version)
            .max()
            .unwrap_or_default();
        let clause = depends
            .split(',')
            .map(str::trim)
            .find(|d| d.split_whitespace().next() == Some(package))
            .unwrap_or_else(|| panic!("Depends ({depends}) names no {package}"));
        let asked = clause.split(">=").nth(1).map(|v| version(v.trim().trim_end_matches(')'))).unwrap_or_default();
        assert!(newest <= asked, "the binary needs {prefix}{newest:?}, but Depends asks for {clause}");
    }
}

/// The fleet's commands have their pages, and serve's page names the
/// options that make an instance part of a fleet.
#[test]
fn man_pages_cover_the_fleet_commands() {
    if !need("man", "man-db") || !need("groff", "groff-base") {
        return;
    }
    let env = Env::new();
    let dir = env.tmp.path().join("man");
    env.ok(&["man", "--dir", dir.to_str().unwrap()]);
    for page in ["certforge-acme-list.1", "certforge-acme-revoke.1", "certforge-acme-eab-add.1"] {
        let text = assert_renders_clean(&dir.join(page));
        assert!(text.contains("--database"), "{page} names --database:\n{text}");
    }
    let acme = assert_renders_clean(&dir.join("certforge-acme.1"));
    assert!(acme.contains("CERTFORGE_DATABASE_URL"), "certforge-acme.1 names the variable:\n{acme}");
    // clap_mangen shows no [env: …], so the page's own text must say it.
    let serve = assert_renders_clean(&dir.join("certforge-serve.1"));
    for flag in ["--database", "--external-url", "--rate-orders-per-account", "CERTFORGE_DATABASE_URL"] {
        assert!(serve.contains(flag), "certforge-serve.1 names {flag}:\n{serve}");
    }
}

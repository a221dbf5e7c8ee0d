//! `init --local` says a leaked intermediate key could sign for nothing but
//! localhost and loopback. That is only true where clients enforce the name
//! constraints, so nine real ones fetch a page over HTTPS from a server
//! holding a leaf the CA signed (inside its names) and leaves signed with the
//! intermediate's key by openssl (outside them). Each outside leaf also
//! carries DNS:localhost, the name verified, so the host name check passes
//! and only a name constraint can make a client refuse it.
//!
//! A missing client is SKIPPED on a developer machine and fails under
//! `.ci/run` (CERTFORGE_REQUIRE_PEERS), as in tests/peers.rs.

#[path = "common/clients.rs"]
mod clients;
mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use clients::Trust;
use common::{openssl, openssl_leaked_leaf, openssl_verify_server, Env};

type Probe = fn(&str, u16, Trust, &str) -> Result<(), String>;

/// A client, its probe, and the programs it needs: (program, a harmless
/// invocation, how to install it).
struct Client {
    name: &'static str,
    probe: Probe,
    needs: &'static [(&'static str, &'static [&'static str], &'static str)],
}

const CLIENTS: [Client; 9] = [
    Client {
        name: "openssl",
        probe: clients::openssl_s_client,
        needs: &[("openssl", &["version"], "apt-get install openssl")],
    },
    Client {
        name: "gnutls",
        probe: clients::gnutls,
        needs: &[("gnutls-cli", &["--version"], "apt-get install gnutls-bin")],
    },
    Client { name: "go", probe: clients::go, needs: &[("go", &["version"], "apt-get install golang-go")] },
    Client { name: "python", probe: clients::python, needs: &[("python3", &["--version"], "apt-get install python3")] },
    Client { name: "node", probe: clients::node, needs: &[("node", &["--version"], "apt-get install nodejs")] },
    Client { name: "curl", probe: clients::curl, needs: &[("curl", &["--version"], "apt-get install curl")] },
    Client {
        name: "java",
        probe: clients::java,
        needs: &[
            ("java", &["-version"], "apt-get install openjdk-17-jdk-headless"),
            ("javac", &["-version"], "apt-get install openjdk-17-jdk-headless"),
            ("keytool", &["-help"], "apt-get install openjdk-17-jdk-headless"),
        ],
    },
    Client {
        name: "chromium",
        probe: clients::chromium,
        needs: &[
            ("chromium", &["--version"], "apt-get install chromium"),
            ("certutil", &["--build-flags"], "apt-get install libnss3-tools"),
        ],
    },
    Client { name: "rustls", probe: clients::rustls, needs: &[] },
];

/// A server certificate the server presents, and the name clients verify.
struct Leaf {
    name: &'static str,
    host: &'static str,
    chain: PathBuf,
    key: PathBuf,
    inside: bool,
}

/// A leaf signed with the intermediate's key by openssl, as anyone holding
/// the key could, and `NAME.chain.crt` (leaf + intermediate) for the server.
fn openssl_leaf(
    d: &Path,
    name: &'static str,
    host: &'static str,
    subject: &str,
    san: Option<&str>,
    inside: bool,
) -> Leaf {
    let chain = openssl_leaked_leaf(d, name, subject, san, "Matrix_CA_Issuing");
    let crt = format!("{name}.crt");
    // The fixture is what we think: openssl's own verify refuses an outside
    // leaf for the constraint and nothing else. For `cn` too: without a
    // SAN, OpenSSL checks a CN that looks like a host name against the DNS
    // constraints (NAME_CONSTRAINTS_check_CN, OpenSSL 1.1.0+).
    if inside {
        openssl_verify_server(d, "Matrix_CA.crt", Some("Matrix_CA_Issuing.crt"), &crt);
    } else {
        let (ok, text) =
            openssl(d, &["verify", "-CAfile", "Matrix_CA.crt", "-untrusted", "Matrix_CA_Issuing.crt", &crt]);
        assert!(!ok && text.contains("permitted subtree violation"), "{name}: {text}");
    }
    Leaf { name, host, chain, key: d.join(format!("{name}.key")), inside }
}

/// Why a client refused, in a few words: its most telling line (the rest is
/// connection chatter), from its last "prefix: " on.
fn reason(err: &str) -> String {
    const TELLING: [&str; 10] = [
        "verify error",
        "Status:",
        "Page load failed",
        "Exception",
        "x509:",
        "certificate problem",
        "error",
        "Error",
        "fail",
        "invalid",
    ];
    let lines = || err.lines().map(str::trim).filter(|l| !l.is_empty());
    let line = TELLING.iter().find_map(|w| lines().find(|l| l.contains(w))).or_else(|| lines().next()).unwrap_or("");
    let tail = line.trim_end_matches(':').rsplit(": ").next().unwrap_or(line);
    let tail = tail.trim_end_matches('.').rsplit(". ").next().unwrap_or(tail);
    tail.chars().take(72).collect()
}

#[test]
fn a_local_cas_name_constraints_hold_in_every_client() {
    let started = Instant::now();
    let env = Env::new();
    env.ok(&["init", "--cn", "Matrix CA", "--local"]);
    env.ok(&["request-cert", "--domain", "localhost", "--ip", "127.0.0.1,::1"]);
    env.ok(&["sign", "localhost", "--CA", "Matrix CA", "--profile", "server"]);
    let d = env.depot();
    let root = d.join("Matrix_CA.crt");
    assert!(!d.join("Matrix_CA.key").exists(), "the root's key is never written");

    let leaves = [
        Leaf {
            name: "inside",
            host: "localhost",
            chain: d.join("localhost.chain.crt"),
            key: d.join("localhost.key"),
            inside: true,
        },
        // The control: made like the outside leaves, but with the inside name
        // alone. Every client accepting it shows that they refuse the others
        // for their extra name, not for how openssl made them.
        openssl_leaf(&d, "control", "localhost", "/CN=localhost", Some("DNS:localhost"), true),
        openssl_leaf(&d, "dns", "localhost", "/CN=localhost", Some("DNS:localhost,DNS:www.example.com"), false),
        openssl_leaf(&d, "ipv4", "localhost", "/CN=localhost", Some("DNS:localhost,IP:1.1.1.1"), false),
        openssl_leaf(&d, "ipv6", "localhost", "/CN=localhost", Some("DNS:localhost,IP:2606:4700::1111"), false),
        // No SAN, the site in the CN alone. Modern clients ignore the CN
        // (Chromium since 58, Go since 1.15, rustls always; RFC 9525 drops
        // it) and refuse it for the name. The ones that still fall
        // back to it without a SAN must hold it to the DNS constraints:
        // OpenSSL's verify does (so openssl, curl, Python, Node), and so do
        // GnuTLS and Java.
        openssl_leaf(&d, "cn", "www.example.com", "/CN=www.example.com", None, false),
    ];

    // Chromium on Linux trusts what the NSS database in ~/.pki/nssdb holds;
    // `trust install --store nss` makes it and adds the root.
    let home = env.tmp.path().join("chromium-home");
    let present: Vec<&Client> = CLIENTS
        .iter()
        .filter(|c| c.needs.iter().all(|(program, args, install)| clients::require(program, args, install)))
        .collect();
    if present.iter().any(|c| c.name == "chromium") {
        std::fs::create_dir_all(&home).unwrap();
        let out = env.cmd(&["trust", "install", "--store", "nss"]).env("HOME", &home).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }

    // One server per leaf; its probes run at once, one thread each.
    let mut results: Vec<(&str, &str, bool, Result<(), String>)> = Vec::new();
    for leaf in &leaves {
        let marker = format!("certforge-matrix-{}", leaf.name);
        let server = clients::serve(&leaf.chain, &leaf.key, &marker);
        std::thread::scope(|s| {
            let runs: Vec<_> = present
                .iter()
                .map(|c| {
                    let trust = if c.name == "chromium" { Trust::NssHome(&home) } else { Trust::CaFile(&root) };
                    let (host, port, marker) = (leaf.host, server.port, &marker);
                    (c.name, s.spawn(move || (c.probe)(host, port, trust, marker)))
                })
                .collect();
            for (client, run) in runs {
                // A probe's panic (a broken setup) must not read as a refusal.
                let result = run.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                results.push((client, leaf.name, leaf.inside, result));
            }
        });
    }

    // client × leaf: ok, or refused and why; "!!" marks what contradicts the
    // constraints (an inside leaf refused, an outside one accepted).
    let mut rows = vec![std::iter::once(String::new())
        .chain(leaves.iter().map(|l| format!("{} ({})", l.name, l.host)))
        .collect::<Vec<_>>()];
    let mut wrong = 0;
    for client in &present {
        let mut row = vec![client.name.to_string()];
        for (_, _, inside, result) in results.iter().filter(|r| r.0 == client.name) {
            let bad = *inside != result.is_ok();
            wrong += usize::from(bad);
            let mark = if bad { "!! " } else { "" };
            row.push(match result {
                Ok(()) => format!("{mark}ok"),
                Err(e) => format!("{mark}refused: {}", reason(e)),
            });
        }
        rows.push(row);
    }
    let widths: Vec<usize> =
        (0..rows[0].len()).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap()).collect();
    let table: Vec<String> = rows
        .iter()
        .map(|r| {
            r.iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect::<Vec<_>>()
                .join(" | ")
                .trim_end()
                .to_string()
        })
        .collect();
    let table = table.join("\n");
    eprintln!("{table}\n({} clients, {:.1} s)", present.len(), started.elapsed().as_secs_f64());
    assert_eq!(results.len(), present.len() * leaves.len());
    assert_eq!(wrong, 0, "{wrong} results contradict the name constraints:\n{table}");
}

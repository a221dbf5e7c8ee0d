//! `certforge serve`: checks the command line, loads the CA and prints how
//! to point certbot, lego and Caddy at it; the server is `crate::serve`.

use std::net::{IpAddr, SocketAddr};

use anyhow::{anyhow, Result};
use time::OffsetDateTime;

use super::common::usage;
use super::sign::load_signing_ca;
use crate::acme::policy::Policy;
use crate::acme::Validator;
use crate::cli::{ServeArgs, ServeProfile};
use crate::depot::Depot;
use crate::pki::ca::CaSigner;
use crate::pki::constraints::Subtree;
use crate::pki::names::shell_word;
use crate::pki::profile::LeafProfile;
use crate::pki::san::San;
use crate::pki::validity::Expiry;
use crate::serve::issuer::DepotIssuer;
use crate::serve::log::{Log, SkippedChecks};
use crate::serve::{all_loopback, validate, Config};

pub fn run(depot: &Depot, args: &ServeArgs) -> Result<()> {
    let now = OffsetDateTime::now_utc();
    let lifetime =
        Expiry::parse(&args.cert_lifetime).ok().and_then(|e| e.after(now)).map(|end| end - now).ok_or_else(|| {
            usage(format!("--cert-lifetime {:?}: write e.g. \"45 days\" or \"12 hours\"", args.cert_lifetime))
        })?;
    if args.skip_validation == 1 && !all_loopback(&args.listen) {
        return Err(usage(
            "--skip-validation hands a certificate for any allowed name to anyone who can reach the port, so it is refused on a non-loopback --listen; give it twice (--skip-validation --skip-validation) if that is really meant",
        ));
    }
    let allow = args
        .allow
        .iter()
        .map(|a| Subtree::parse(a).map_err(|e| usage(format!("--allow {a:?}: {e}"))))
        .collect::<Result<Vec<_>>>()?;

    let bind = |a: &SocketAddr| {
        std::net::TcpListener::bind(a).map_err(|e| {
            anyhow!("cannot listen on {a}: {e} (is another server on that port? choose another with --listen)")
        })
    };
    let listeners: Vec<std::net::TcpListener> = args.listen.iter().map(bind).collect::<Result<_>>()?;
    let crl_listeners: Vec<std::net::TcpListener> = args.crl_listen.iter().map(bind).collect::<Result<_>>()?;
    let crl_bound: Vec<SocketAddr> = crl_listeners.iter().map(|l| l.local_addr()).collect::<std::io::Result<_>>()?;
    // Port 0 picks a free port; the URL names the one the system chose.
    let bound: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr()).collect::<std::io::Result<_>>()?;
    let base = base_url(&args.hostname, bound[0])?;
    let loaded = load_signing_ca(depot, &args.ca, &args.pass)?;
    let (ca_name, ca) = (loaded.name, loaded.signer);
    let policy = Policy { constraints: ca.constraints.clone(), allow };
    let validator: Box<dyn Validator> = if args.skip_validation > 0 {
        Box::new(SkippedChecks { log: Log { format: args.log_format } })
    } else {
        Box::new(validate::Checks {
            http01_port: args.http01_port,
            tlsalpn01_port: args.tlsalpn01_port,
            dns_resolver: args.dns_resolver,
            timeout: std::time::Duration::from_secs(10),
        })
    };
    let crl_name = ca_name.file("crl");
    let crls = vec![(crl_name, depot.path(&ca_name, "crl"))];
    let profile = match args.profile {
        ServeProfile::Server => LeafProfile::Server,
        ServeProfile::Peer => LeafProfile::Peer,
    };
    let issuer = DepotIssuer::new(depot, ca_name, ca, profile, lifetime)?;
    let log = Log { format: args.log_format };
    let own_names = own_names(args, &issuer.ca)?;
    // Issued before anything is announced: a CA that may not certify the
    // server's names stops here, not after printing a URL that cannot work.
    let own = crate::serve::tls::issue_own(&issuer.ca, &issuer.chain, &own_names, now)?;
    let crl_urls: Vec<String> =
        crl_bound.iter().map(|a| format!("http://{a}/crl/{}", issuer.ca_name.file("crl"))).collect();
    // Absolute, so that the client lines work from any directory.
    let root_file = std::path::absolute(&issuer.root_file).unwrap_or_else(|_| issuer.root_file.clone());
    let banner = announce(args, &bound, &base, &issuer.ca, &root_file.display().to_string(), &crl_urls);
    let listeners =
        listeners.into_iter().map(|l| (l, true)).chain(crl_listeners.into_iter().map(|l| (l, false))).collect();
    crate::serve::run(Config {
        issuer,
        listeners,
        base,
        own_names,
        own,
        policy,
        validator,
        log,
        crls,
        eab_required: args.require_eab,
        announce: Box::new(move || eprintln!("{banner}")),
    })
}

/// The directory's base URL: the first --hostname, else the first listen
/// address (a wildcard address names no host a client could use).
fn base_url(hostnames: &[String], first: SocketAddr) -> Result<String> {
    let host = match (hostnames.first(), first.ip()) {
        (Some(h), _) => h.clone(),
        (None, ip) if ip.is_unspecified() => {
            return Err(usage(format!(
                "--listen {first} accepts any address, so the directory URL needs a name: add --hostname NAME (the name clients use to reach this machine)"
            )))
        }
        (None, IpAddr::V6(ip)) => format!("[{ip}]"),
        (None, IpAddr::V4(ip)) => ip.to_string(),
    };
    Ok(format!("https://{host}:{}", first.port()))
}

/// The names in the server's own certificate: every --hostname, and the
/// listen addresses (loopback also as "localhost") that the CA may
/// certify; a CA limited to example.com still serves on 127.0.0.1, under
/// its --hostname.
fn own_names(args: &ServeArgs, ca: &crate::pki::ca::CaSigner) -> Result<Vec<San>> {
    let mut names: Vec<San> = args.hostname.iter().map(|h| San::Dns(h.clone())).collect();
    let mut implied = Vec::new();
    for a in &args.listen {
        let ip = a.ip();
        if ip.is_loopback() {
            implied.push(San::Dns("localhost".into()));
        }
        if !ip.is_unspecified() {
            implied.push(San::Ip(ip));
        }
    }
    for name in implied {
        if !names.contains(&name) && ca.names_outside_constraints(std::slice::from_ref(&name), None).is_empty() {
            names.push(name);
        }
    }
    if names.is_empty() {
        return Err(usage(format!(
            "the CA {:?} may not certify the listen addresses, so the server has no name for its own certificate: give --hostname NAME, a name inside the CA's constraints that resolves to this machine",
            ca.name
        )));
    }
    Ok(names)
}

/// What a person starting the server needs: the URL, the CA file, and the
/// exact lines for certbot, lego and Caddy (each needs the CA its own way).
/// Printed only once the server can answer.
fn announce(
    args: &ServeArgs,
    bound: &[SocketAddr],
    base: &str,
    ca: &CaSigner,
    ca_file: &str,
    crl: &[String],
) -> String {
    let dir = format!("{base}/directory");
    let listen: Vec<String> = bound.iter().map(SocketAddr::to_string).collect();
    let profile = match args.profile {
        ServeProfile::Server => "server (serverAuth)",
        ServeProfile::Peer => "peer (serverAuth + clientAuth)",
    };
    let mut lines = vec![
        format!("certforge ACME server for the CA {:?}", ca.name),
        format!("  directory    {dir}"),
        format!("  listening    {}", listen.join(", ")),
        format!("  trust        {ca_file} (the server's own certificate is issued by the same CA)"),
        format!("  issues       {profile} certificates for {}, capped at the CA's expiry", args.cert_lifetime),
    ];
    if let crate::pki::ca::CaKey::Remote(k) = ca.key() {
        lines.push(format!("  CA key       {} (it signs there; the depot holds no key)", k.location()));
    }
    if let Some(url) = &ca.crl_url {
        lines.push(format!("  CRL URL      {url} (in every certificate this CA issues)"));
    }
    lines.extend(crl.iter().map(|c| format!("  CRL          {c} (plain HTTP)")));
    lines.push(String::new());
    let answer = Answer {
        http01: args.http01_port,
        tlsalpn01: args.tlsalpn01_port,
        loopback: all_loopback(&args.listen),
        root: crate::sys::is_root(),
        home: std::env::var_os("HOME").map(std::path::PathBuf::from).unwrap_or_default(),
        unprivileged_from: crate::sys::unprivileged_port_start(),
    };
    lines.extend(client_lines(&dir, ca_file, &answer));
    lines.push(String::new());
    if args.skip_validation > 0 {
        lines.push("warning: --skip-validation: challenges are NOT checked; every client gets a certificate for any name the policy allows".into());
    }
    if !args.require_eab {
        lines.push("warning: without --require-eab, anyone who can reach this port can get certificates for every name the CA and --allow permit".into());
    }
    lines.join("\n")
}

/// Where and how this machine's ACME clients answer challenges, so that
/// their lines work as printed.
struct Answer {
    /// `--http01-port` and `--tlsalpn01-port`: where the server connects.
    http01: u16,
    tlsalpn01: u16,
    /// Every --listen is loopback: the clients run here, and their names
    /// resolve here, so their challenge servers listen on 127.0.0.1 only.
    loopback: bool,
    /// Running as root; if not, certbot's config, work and log directories
    /// go under `home`/.certbot, as /etc/letsencrypt, /var/lib/letsencrypt
    /// and /var/log/letsencrypt are root's.
    root: bool,
    home: std::path::PathBuf,
    /// The lowest port anyone may listen on (ip_unprivileged_port_start).
    unprivileged_from: u16,
}

/// The certbot, lego and Caddy lines for the server at `dir`. certbot's
/// standalone mode answers http-01 only; lego and Caddy either challenge.
fn client_lines(dir: &str, ca_file: &str, a: &Answer) -> Vec<String> {
    let f = shell_word(ca_file);
    let host = if a.loopback { "127.0.0.1" } else { "" };
    let mut certbot = format!(
        "REQUESTS_CA_BUNDLE={f} certbot certonly --standalone --non-interactive --agree-tos --email you@example.com --server {dir} --http-01-port {}",
        a.http01
    );
    if a.loopback {
        certbot.push_str(" --http-01-address 127.0.0.1");
    }
    if !a.root {
        for (flag, sub) in [("--config-dir", "config"), ("--work-dir", "work"), ("--logs-dir", "logs")] {
            let dir = a.home.join(".certbot").join(sub);
            certbot.push_str(&format!(" {flag} {}", shell_word(&dir.display().to_string())));
        }
    }
    let mut lines = vec![
        format!("  certbot  {certbot} -d NAME"),
        format!(
            "  lego     LEGO_CA_CERTIFICATES={f} lego --server {dir} --accept-tos --email you@example.com --domains NAME --http --http.port {host}:{} run",
            a.http01
        ),
        format!("           (tls-alpn-01: --tls --tls.port {host}:{} instead of --http --http.port …)", a.tlsalpn01),
        "  Caddy    in the Caddyfile's global options:".to_string(),
        "           {".to_string(),
        format!("               acme_ca {dir}"),
        format!("               acme_ca_root {}", caddy_word(ca_file)),
    ];
    // Caddy answers http-01 on its http_port and tls-alpn-01 on its https_port.
    if a.http01 != 80 {
        lines.push(format!("               http_port {}", a.http01));
    }
    if a.tlsalpn01 != 443 {
        lines.push(format!("               https_port {}", a.tlsalpn01));
    }
    if a.loopback {
        lines.push("               default_bind 127.0.0.1".to_string());
    }
    lines.push("           }".to_string());
    let low: Vec<String> =
        [a.http01, a.tlsalpn01].iter().filter(|p| **p < a.unprivileged_from).map(u16::to_string).collect();
    if !a.root && !low.is_empty() {
        lines.push(format!(
            "  note     the clients listen on port {}, which only root may open here: run them as root, or start serve with --http01-port and --tlsalpn01-port of {} or above",
            low.join(" and "),
            a.unprivileged_from
        ));
    }
    lines
}

/// A Caddyfile token: quoted when it holds a space or a quote (Caddy's
/// lexer reads `\"` inside quotes as a quote).
fn caddy_word(s: &str) -> String {
    if s.contains(|c: char| c.is_whitespace() || c == '"') {
        format!("\"{}\"", s.replace('"', "\\\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIR: &str = "https://127.0.0.1:14000/directory";

    fn answer(root: bool, loopback: bool, http01: u16) -> Answer {
        Answer { http01, tlsalpn01: 5001, loopback, root, home: "/home/dev".into(), unprivileged_from: 1024 }
    }

    fn line<'a>(lines: &'a [String], label: &str) -> &'a str {
        lines.iter().find_map(|l| l.trim_start().strip_prefix(label)).expect(label).trim_start()
    }

    #[test]
    fn client_lines_follow_the_ports_the_address_and_the_user() {
        let lines = client_lines(DIR, "/d/ACME CA.crt", &answer(false, true, 8080));
        let certbot = line(&lines, "certbot");
        for want in [
            "REQUESTS_CA_BUNDLE='/d/ACME CA.crt' certbot certonly --standalone --non-interactive --agree-tos ",
            " --http-01-port 8080 --http-01-address 127.0.0.1 ",
            " --config-dir /home/dev/.certbot/config --work-dir /home/dev/.certbot/work --logs-dir /home/dev/.certbot/logs -d NAME",
        ] {
            assert!(certbot.contains(want), "{want:?} in {certbot}");
        }
        assert!(line(&lines, "lego").ends_with("--domains NAME --http --http.port 127.0.0.1:8080 run"), "{lines:?}");
        assert!(line(&lines, "(tls-alpn-01:").starts_with("--tls --tls.port 127.0.0.1:5001 "), "{lines:?}");
        let caddy: Vec<&str> = lines.iter().map(|l| l.trim()).skip_while(|l| *l != "{").collect();
        assert_eq!(
            caddy,
            [
                "{",
                &format!("acme_ca {DIR}"),
                "acme_ca_root \"/d/ACME CA.crt\"",
                "http_port 8080",
                "https_port 5001",
                "default_bind 127.0.0.1",
                "}"
            ]
        );
        assert!(!lines.iter().any(|l| l.contains("only root")), "{lines:?}");

        // Root keeps certbot's own directories; a server on every address
        // has the clients listen on every address too.
        let lines = client_lines(DIR, "/d/ca.crt", &answer(true, false, 8080));
        assert!(
            !line(&lines, "certbot").contains("--config-dir") && !line(&lines, "certbot").contains("--http-01-address")
        );
        assert!(line(&lines, "lego").ends_with("--http --http.port :8080 run"), "{lines:?}");
        assert!(!lines.iter().any(|l| l.contains("default_bind")), "{lines:?}");

        // Port 80 is root's alone: said, with the way around it.
        let lines = client_lines(DIR, "/d/ca.crt", &answer(false, true, 80));
        assert!(lines.iter().any(|l| l.contains("port 80, which only root may open here")), "{lines:?}");
        assert!(!lines.iter().any(|l| l.contains("http_port")), "Caddy's default is 80: {lines:?}");
    }
}

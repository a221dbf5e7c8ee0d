//! `certforge serve`: checks the command line, loads the CA and prints how
//! to point certbot, lego and Caddy at it; the server is `crate::serve`.

use std::net::{IpAddr, SocketAddr};

use anyhow::{anyhow, Result};
use time::OffsetDateTime;

use super::common::usage;
use super::database::check_url;
use super::sign::load_signing_ca;
use crate::acme::limits::{Limits, Rate};
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
use crate::serve::crl::CrlSource;
use crate::serve::http::Port;
use crate::serve::issuer::DepotIssuer;
use crate::serve::log::{Log, SkippedChecks};
use crate::serve::{all_loopback, validate, Backend, Config, Started};

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
    let backend = match &args.database {
        None => Backend::Depot,
        Some(url) => {
            check_url(url, "the state stays in the depot's acme.sqlite")?;
            Backend::Postgres { url: url.clone() }
        }
    };
    let external = args.external_url.as_deref().map(external_url).transpose()?;
    let limits = Limits {
        orders_per_account: Rate { per_hour: args.rate_orders_per_account },
        orders_per_address: Rate { per_hour: args.rate_orders_per_address },
        failed_validations: Rate { per_hour: args.rate_failed_validations },
    };

    let listeners = bind_all("--listen", &args.listen)?;
    let crl_listeners = bind_all("--crl-listen", &args.crl_listen)?;
    let crl_bound: Vec<SocketAddr> = crl_listeners.iter().map(|l| l.local_addr()).collect::<std::io::Result<_>>()?;
    let metrics_listeners = bind_all("--metrics-listen", &args.metrics_listen)?;
    let metrics_bound: Vec<SocketAddr> =
        metrics_listeners.iter().map(|l| l.local_addr()).collect::<std::io::Result<_>>()?;
    // Port 0 picks a free port; the URL names the one the system chose.
    let bound: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr()).collect::<std::io::Result<_>>()?;
    let base = match &external {
        Some((base, _)) => base.clone(),
        None => base_url(&args.hostname, bound[0])?,
    };
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
    let crls = vec![(crl_name, CrlSource::File(depot.path(&ca_name, "crl")))];
    let profile = match args.profile {
        ServeProfile::Server => LeafProfile::Server,
        ServeProfile::Peer => LeafProfile::Peer,
    };
    let issuer = DepotIssuer::new(depot, ca_name, ca, profile, lifetime)?;
    let log = Log { format: args.log_format };
    let external_name = external.map(|(_, name)| name);
    let own_names = own_names(args, external_name.as_ref(), &issuer.ca)?;
    // Issued before anything is announced: a CA that may not certify the
    // server's names stops here, not after printing a URL that cannot work.
    let own = crate::serve::tls::issue_own(&issuer.ca, &issuer.chain, &own_names, now)?;
    let crl_urls: Vec<String> =
        crl_bound.iter().map(|a| format!("http://{a}/crl/{}", issuer.ca_name.file("crl"))).collect();
    // Absolute, so that the client lines work from any directory.
    let root_file = std::path::absolute(&issuer.root_file).unwrap_or_else(|_| issuer.root_file.clone());
    let mut banner = announce(args, &bound, &base, &issuer.ca, &root_file.display().to_string(), &crl_urls);
    if let Some(name) = external_name.filter(|n| !own_names.contains(n)) {
        banner.push(format!(
            "warning: the CA may not certify {name}, the --external-url host, so the server's own certificate does not name it: the balancer must end TLS there with a certificate of its own"
        ));
    }
    let metrics_urls: Vec<String> = metrics_bound.iter().map(|a| format!("http://{a}/metrics")).collect();
    // This instance's own URL: behind a balancer, each instance is scraped
    // apart.
    let own_base = base_url(&args.hostname, bound[0]).unwrap_or_else(|_| base.clone());
    let at = banner.iter().position(String::is_empty).unwrap_or(banner.len());
    banner.insert(at, metrics_line(&own_base, &metrics_urls));
    let listeners = (listeners.into_iter().map(|l| (l, Port::Acme)))
        .chain(crl_listeners.into_iter().map(|l| (l, Port::Crl)))
        .chain(metrics_listeners.into_iter().map(|l| (l, Port::Metrics)))
        .collect();
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
        backend,
        limits,
        proxy_protocol: args.proxy_protocol,
        announce: Box::new(move |started: &Started| {
            if let Some((shown, schema)) = started.database {
                let at = banner.iter().position(|l| l.starts_with("  directory")).map_or(1, |i| i + 1);
                banner.insert(at, format!("  database     {shown} (schema {schema}; shared by every instance)"));
            }
            eprintln!("{}", banner.join("\n"));
        }),
    })
}

/// Listens on each of `addrs`, given by `flag`; an error says why in
/// terms of what to do: another port, or the right to a low one.
fn bind_all(flag: &str, addrs: &[SocketAddr]) -> Result<Vec<std::net::TcpListener>> {
    let bind = |a: &SocketAddr| {
        std::net::TcpListener::bind(a).map_err(|e| {
            let why = match e.kind() {
                std::io::ErrorKind::AddrInUse => format!("another server is on that port; choose another with {flag}"),
                // Linux: below net.ipv4.ip_unprivileged_port_start (1024).
                std::io::ErrorKind::PermissionDenied => format!(
                    "ports below 1024 need root or the CAP_NET_BIND_SERVICE capability (the certforge-serve \
                     unit has it; in a container, --cap-add NET_BIND_SERVICE); or choose a port from 1024 up with {flag}"
                ),
                std::io::ErrorKind::AddrNotAvailable => {
                    format!("no interface of this machine has that address; choose one it has with {flag}")
                }
                _ => format!("choose another address with {flag}"),
            };
            anyhow!("cannot listen on {a}: {e} ({why})")
        })
    };
    addrs.iter().map(bind).collect()
}

/// The banner's line for Prometheus: /metrics on the HTTPS port, and on
/// each `--metrics-listen` address.
fn metrics_line(base: &str, plain: &[String]) -> String {
    let mut at = vec![format!("{base}/metrics")];
    at.extend(plain.iter().map(|u| format!("{u} (plain HTTP)")));
    format!("  metrics      {}", at.join(", "))
}

/// `--external-url`: where clients reach the fleet (a balancer), as
/// `https://HOST[:PORT]` and nothing more, since the directory and every
/// URL in it are made under it (RFC 8555 §7.1.1). Returns the base URL and
/// HOST as a name for the server's own certificate.
fn external_url(url: &str) -> Result<(String, San)> {
    let bad = |why: &str| {
        usage(format!(
            "--external-url {url:?}: {why}; write https://HOST or https://HOST:PORT, where clients reach the balancer"
        ))
    };
    let rest = url
        .get(..8)
        .filter(|p| p.eq_ignore_ascii_case("https://"))
        .map(|_| &url[8..])
        .ok_or_else(|| bad("ACME is served over HTTPS only (RFC 8555 §6.1)"))?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#', '@']) {
        return Err(bad("no path, query or user name: the directory is /directory under it"));
    }
    let (host, port) = match rest.strip_prefix('[') {
        Some(v6) => {
            let (ip, after) = v6.split_once(']').ok_or_else(|| bad("an IPv6 address needs its closing ]"))?;
            let port = match after {
                "" => None,
                a => Some(a.strip_prefix(':').ok_or_else(|| bad("after ] comes :PORT or nothing"))?),
            };
            (ip, port)
        }
        None => match rest.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        },
    };
    if let Some(p) = port {
        if !p.parse::<u16>().is_ok_and(|p| p > 0) {
            return Err(bad("the port is a number from 1 to 65535"));
        }
    }
    let name = match host.parse::<IpAddr>() {
        Ok(ip) if rest.starts_with('[') == ip.is_ipv6() => San::Ip(ip),
        Ok(_) => return Err(bad("an IPv6 address goes in brackets, [::1]")),
        Err(_) if rest.starts_with('[') => return Err(bad("brackets hold an IPv6 address only")),
        Err(_) => San::domain(&host.to_ascii_lowercase()).map_err(|e| bad(&e.to_string()))?,
    };
    Ok((format!("https://{}", rest.to_ascii_lowercase()), name))
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
/// --external-url host and the listen addresses (loopback also as
/// "localhost") that the CA may certify; a CA limited to example.com still
/// serves on 127.0.0.1, under its --hostname. A balancer in TCP mode hands
/// the client this certificate, so it must carry the balancer's name.
fn own_names(args: &ServeArgs, external: Option<&San>, ca: &crate::pki::ca::CaSigner) -> Result<Vec<San>> {
    let mut names: Vec<San> = args.hostname.iter().map(|h| San::Dns(h.clone())).collect();
    let mut implied: Vec<San> = external.into_iter().cloned().collect();
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
) -> Vec<String> {
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
    lines
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
    fn external_url_is_https_host_and_port_and_nothing_more() {
        let ok = |url: &str| external_url(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(
            ok("https://acme.staging.internal"),
            ("https://acme.staging.internal".into(), San::Dns("acme.staging.internal".into()))
        );
        assert_eq!(
            ok("HTTPS://ACME.Staging.internal:8443/"),
            ("https://acme.staging.internal:8443".into(), San::Dns("acme.staging.internal".into()))
        );
        assert_eq!(
            ok("https://127.0.0.1:14000"),
            ("https://127.0.0.1:14000".into(), San::Ip("127.0.0.1".parse().unwrap()))
        );
        assert_eq!(ok("https://[::1]:14000"), ("https://[::1]:14000".into(), San::Ip("::1".parse().unwrap())));
        for (bad, why) in [
            ("http://acme.staging.internal", "HTTPS only"),
            ("acme.staging.internal", "HTTPS only"),
            ("https://acme.staging.internal/acme", "no path"),
            ("https://acme.staging.internal/directory", "no path"),
            ("https://acme.staging.internal?x=1", "no path, query"),
            ("https://ops:pw@acme.staging.internal", "user name"),
            ("https://acme.staging.internal:0", "port"),
            ("https://acme.staging.internal:https", "port"),
            ("https://acme.staging.internal:70000", "port"),
            ("https://::1:443", "port"),
            ("https://[::1", "closing ]"),
            ("https://[::1]x", "after ]"),
            ("https://[acme.internal]", "IPv6 address only"),
            ("https://", "write https://HOST"),
            ("https://bad_name!.internal", "write https://HOST"),
        ] {
            let e = external_url(bad).expect_err(bad).to_string();
            assert!(e.starts_with(&format!("--external-url {bad:?}: ")) && e.contains(why), "{bad}: {e}");
            assert!(e.ends_with("write https://HOST or https://HOST:PORT, where clients reach the balancer"), "{e}");
        }
    }

    fn ca(permit: &[&str]) -> CaSigner {
        use crate::pki::issue::{self, CertSpec};
        use crate::pki::keys::{KeySpec, PrivateKey};
        use crate::pki::profile::Kind;
        use crate::pki::subject::Subject;
        use crate::pki::validity::ValidityRequest;
        let now = OffsetDateTime::now_utc();
        let validity = ValidityRequest::default().resolve(now, Expiry::parse("1 day").unwrap()).unwrap();
        let dn = Subject { common_name: Some("Fleet CA".into()), ..Default::default() }.to_dn().unwrap();
        let key = PrivateKey::generate(KeySpec::EcdsaP256).unwrap();
        let kind = Kind::Root { path_len: None, permit_domains: permit.iter().map(|p| p.to_string()).collect() };
        let der = issue::self_signed(&CertSpec::new(dn, vec![], kind, validity), &key).unwrap();
        CaSigner::new(der, key, "Fleet CA", "Fleet CA key").unwrap()
    }

    /// A balancer in TCP mode hands the client the instance's own
    /// certificate, which must then name the balancer's host.
    #[test]
    fn the_external_host_joins_the_servers_own_names_when_the_ca_may_certify_it() {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from([
            "certforge",
            "serve",
            "--CA",
            "Fleet CA",
            "--listen",
            "0.0.0.0:14000",
            "--external-url",
            "https://acme.staging.internal",
        ])
        .unwrap();
        let crate::cli::Command::Serve(args) = &cli.command else { panic!("serve") };
        let (_, host) = external_url(args.external_url.as_deref().unwrap()).unwrap();
        let names = own_names(args, Some(&host), &ca(&[])).unwrap();
        assert_eq!(names, [San::Dns("acme.staging.internal".into())]);
        let names = own_names(args, Some(&host), &ca(&["staging.internal"])).unwrap();
        assert_eq!(names, [San::Dns("acme.staging.internal".into())]);
        // A CA that may not certify it: the server cannot name itself.
        assert!(own_names(args, Some(&host), &ca(&["other.internal"])).is_err());
        assert!(own_names(args, None, &ca(&[])).is_err(), "a wildcard listen alone names nothing");
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

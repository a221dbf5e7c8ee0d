//! dns-01 (RFC 8555 §8.4): a TXT record at _acme-challenge.NAME must hold
//! base64url(SHA-256(key authorization)). The same resolver finds the
//! addresses http-01 and tls-alpn-01 connect to, so that `dns_resolver`
//! (Pebble's challenge test server, say) is the whole truth, as in Pebble.
//!
//! hickory-resolver is async and [`super::Checks::validate`] is not: each
//! lookup runs on a current-thread tokio runtime made for it. The caller's
//! thread is a `spawn_blocking` one, or has no runtime at all (tests), so
//! borrowing the server's runtime through a Handle would not always work,
//! and `block_on` on it is never allowed from inside async code anyway; a
//! runtime of its own serves both cases, drives the resolver's background
//! tasks on this thread, and cancels them when dropped. It costs an epoll
//! descriptor for the length of one check.

use std::future::Future;
use std::net::IpAddr;

use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;

use super::{digest, quote, Checks, Deadline};
use crate::acme::jws::b64;
use crate::acme::model::Ident;
use crate::acme::problem::{Kind, Problem};

pub(super) fn check(
    checks: &Checks,
    ident: &Ident,
    key_authorization: &str,
    deadline: Deadline,
) -> Result<(), Problem> {
    // A wildcard is proved at its base name (§8.4, RFC 8555 §7.1.3).
    let base = ident.value.strip_prefix("*.").unwrap_or(&ident.value);
    let name = format!("_acme-challenge.{}.", base.trim_end_matches('.'));
    let expected = b64(&digest(key_authorization));
    let none =
        |what: &str| Problem::new(Kind::Unauthorized, format!("no TXT record at {name} ({what} from {})", via(checks)));
    let query = name.clone();
    let lookup = match lookup(checks, deadline, |resolver| async move { resolver.txt_lookup(query).await }) {
        Ok(lookup) => lookup,
        Err(Failure::Nothing(what)) => return Err(none(what)),
        Err(Failure::Error(e)) => {
            return Err(Problem::new(Kind::Dns, format!("looking up TXT {name} via {}: {e}", via(checks))))
        }
    };
    // A record's character-strings are one value (joined, as Boulder does).
    let found: Vec<Vec<u8>> = lookup
        .answers()
        .iter()
        .filter_map(|record| match &record.data {
            RData::TXT(txt) => Some(txt.txt_data.concat()),
            _ => None,
        })
        .collect();
    if found.iter().any(|value| value == expected.as_bytes()) {
        return Ok(());
    }
    if found.is_empty() {
        return Err(none("an answer without TXT"));
    }
    let found: Vec<String> = found.iter().map(|value| quote(value)).collect();
    Err(Problem::new(
        Kind::IncorrectResponse,
        format!(
            "TXT {name} holds {}, not {expected:?} (base64url of the key authorization's SHA-256)",
            found.join(", ")
        ),
    ))
}

/// The addresses of a DNS identifier, IPv6 first (hickory's default order).
pub(super) fn addresses(checks: &Checks, name: &str, deadline: Deadline) -> Result<Vec<IpAddr>, Problem> {
    // Fully qualified, so no search domain is tried.
    let fqdn = format!("{}.", name.trim_end_matches('.'));
    let found = lookup(checks, deadline, |resolver| async move { resolver.lookup_ip(fqdn).await });
    let nothing =
        |what: &str| Problem::new(Kind::Dns, format!("{name} has no A or AAAA record ({what} from {})", via(checks)));
    match found {
        Ok(ips) if ips.iter().next().is_none() => Err(nothing("an empty answer")),
        Ok(ips) => Ok(ips.iter().collect()),
        Err(Failure::Nothing(what)) => Err(nothing(what)),
        Err(Failure::Error(e)) => Err(Problem::new(Kind::Dns, format!("resolving {name} via {}: {e}", via(checks)))),
    }
}

/// Why a lookup found nothing: the name has no such record, or asking failed.
enum Failure {
    Nothing(&'static str),
    Error(String),
}

/// Runs `query` on a fresh resolver, within the deadline (see the module
/// comment for the runtime).
fn lookup<T, F>(checks: &Checks, deadline: Deadline, query: impl FnOnce(TokioResolver) -> F) -> Result<T, Failure>
where
    F: Future<Output = Result<T, NetError>>,
{
    let left = deadline.left().map_err(|_| Failure::Error("timed out".into()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Error(format!("starting a DNS client: {e}")))?;
    runtime.block_on(async {
        let resolver = resolver(checks).map_err(Failure::Error)?;
        match tokio::time::timeout(left, query(resolver)).await {
            Ok(Ok(found)) => Ok(found),
            Ok(Err(e)) if e.is_nx_domain() => Err(Failure::Nothing("NXDOMAIN")),
            Ok(Err(e)) if e.is_no_records_found() => Err(Failure::Nothing("no records")),
            Ok(Err(e)) => Err(Failure::Error(e.to_string())),
            Err(_) => Err(Failure::Error("timed out".into())),
        }
    })
}

/// A resolver asking `dns_resolver` over UDP and TCP, or the system's.
/// Made per check, so its cache never answers for a record since changed.
fn resolver(checks: &Checks) -> Result<TokioResolver, String> {
    let builder = match checks.dns_resolver {
        Some(server) => {
            let mut name_server = NameServerConfig::udp_and_tcp(server.ip());
            for connection in &mut name_server.connections {
                connection.port = server.port();
            }
            let config = ResolverConfig::from_name_servers(vec![name_server]);
            let mut builder = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
            // The given server is the whole truth, not /etc/hosts.
            builder.options_mut().use_hosts_file = ResolveHosts::Never;
            builder
        }
        None => TokioResolver::builder_tokio().map_err(|e| format!("reading the system's DNS configuration: {e}"))?,
    };
    builder.build().map_err(|e| format!("setting up the DNS client: {e}"))
}

/// Whom the lookups ask, as a detail says it.
fn via(checks: &Checks) -> String {
    match checks.dns_resolver {
        Some(server) => server.to_string(),
        None => "the system resolver".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;
    use std::time::{Duration, Instant};

    use super::super::testing::{dns, ChallTestSrv, KEY_AUTHORIZATION};
    use super::*;
    use crate::acme::model::ChallengeKind;
    use crate::acme::Validator;

    fn txt(value: &str) -> serde_json::Value {
        serde_json::json!({ "host": "_acme-challenge.example.com.", "value": value })
    }

    #[test]
    fn passes_for_a_name_and_its_wildcard_among_other_records() {
        let Some(srv) = ChallTestSrv::start() else { return };
        srv.post("/set-txt", &txt("an-older-value"));
        srv.post("/set-txt", &txt(&b64(&digest(KEY_AUTHORIZATION))));
        for name in ["example.com", "*.example.com"] {
            assert_eq!(srv.checks().validate(&dns(name), ChallengeKind::Dns01, KEY_AUTHORIZATION), Ok(()), "{name}");
        }
    }

    #[test]
    fn a_wrong_or_missing_record_fails_saying_what_was_found() {
        let Some(srv) = ChallTestSrv::start() else { return };
        srv.post("/set-txt", &txt("not-the-digest"));
        let p = srv.checks().validate(&dns("example.com"), ChallengeKind::Dns01, KEY_AUTHORIZATION).unwrap_err();
        assert_eq!(p.kind, Kind::IncorrectResponse);
        let expected = b64(&digest(KEY_AUTHORIZATION));
        assert!(
            p.detail.starts_with(&format!(
                "dns-01: TXT _acme-challenge.example.com. holds \"not-the-digest\", not {expected:?}"
            )),
            "{}",
            p.detail
        );
        let p = srv.checks().validate(&dns("other.example"), ChallengeKind::Dns01, KEY_AUTHORIZATION).unwrap_err();
        assert_eq!(p.kind, Kind::Unauthorized);
        assert!(p.detail.starts_with("dns-01: no TXT record at _acme-challenge.other.example. ("), "{}", p.detail);
    }

    /// Where the server calls it from: a blocking thread of its
    /// multi-thread runtime, where a runtime of the check's own may run.
    #[test]
    fn runs_on_a_spawn_blocking_thread() {
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let checks = Checks {
            dns_resolver: Some(silent.local_addr().unwrap()),
            timeout: Duration::from_millis(200),
            ..Checks::default()
        };
        let server = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let result = server.block_on(async move {
            tokio::task::spawn_blocking(move || {
                checks.validate(&dns("example.com"), ChallengeKind::Dns01, KEY_AUTHORIZATION)
            })
            .await
            .unwrap()
        });
        assert_eq!(result.unwrap_err().kind, Kind::Dns);
    }

    /// A resolver that never answers holds neither lookup past the deadline.
    #[test]
    fn a_silent_resolver_times_out() {
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let server = silent.local_addr().unwrap();
        let checks = Checks { dns_resolver: Some(server), timeout: Duration::from_millis(300), ..Checks::default() };
        for (kind, detail) in [
            (ChallengeKind::Dns01, format!("dns-01: looking up TXT _acme-challenge.www.example.com. via {server}: ")),
            (ChallengeKind::Http01, format!("http-01: resolving www.example.com via {server}: ")),
        ] {
            let started = Instant::now();
            let p = checks.validate(&dns("www.example.com"), kind, KEY_AUTHORIZATION).unwrap_err();
            assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
            assert_eq!(p.kind, Kind::Dns);
            assert!(p.detail.starts_with(&detail), "{}", p.detail);
        }
    }
}

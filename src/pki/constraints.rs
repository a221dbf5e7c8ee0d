//! Name constraints (RFC 5280 §4.2.1.10): the names a CA may issue for.
//! One type for what `--permit-domain`, templates and plans write and for
//! what `sign` and `verify` check, so both read the rule the same way.
//!
//! RFC 5280 constrains a name type only when the CA lists a subtree of
//! that type: a CA permitted `localhost` and `test` (DNS only) may still
//! sign `IP:8.8.8.8`, and every client accepts it, as the RFC says it
//! must (a name type with no subtree is unconstrained).
//! So a DNS-only list gets the loopback ranges as IP subtrees by default
//! ([`effective`]), and the caller says so.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::san::{check_dns_name, dns_within, San};

/// One subtree of a name constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subtree {
    /// `example.com`: the name and every name below it; `.example.com`:
    /// only the names below it.
    Dns(String),
    /// An address range, stored as its network address.
    Ip { net: IpAddr, prefix: u8 },
    /// rfc822Name: `user@host` (one mailbox), `host`, or `.domain`.
    Email(String),
    /// uniformResourceIdentifier: a host, or `.domain` for those below it.
    Uri(String),
}

impl Subtree {
    /// Parses a `--permit-domain` value: a DNS name, an IP range in CIDR
    /// form (`10.0.0.0/8`, `fc00::/7`), or one IP address.
    pub fn parse(value: &str) -> Result<Subtree, String> {
        let v = value.trim();
        if let Some((addr, prefix)) = v.split_once('/') {
            let net: IpAddr =
                addr.parse().map_err(|_| format!("{addr:?} is not an IP address (write a range as 10.0.0.0/8)"))?;
            let max = if net.is_ipv4() { 32 } else { 128 };
            let prefix: u8 = prefix
                .parse()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("/{prefix} is not a prefix length for {net} (0 to {max})"))?;
            let masked = mask(net, prefix);
            if masked != net {
                return Err(format!("{v} has bits set past its /{prefix} prefix; write {masked}/{prefix}"));
            }
            return Ok(Subtree::Ip { net, prefix });
        }
        if let Ok(ip) = v.parse::<IpAddr>() {
            return Ok(Subtree::Ip { net: ip, prefix: if ip.is_ipv4() { 32 } else { 128 } });
        }
        check_dns_name(v.trim_start_matches('.')).map_err(|why| why.to_string())?;
        if v.contains('*') {
            return Err(format!(
                "{v:?}: a constraint names a domain, not a wildcard; write {:?}",
                v.trim_start_matches("*.")
            ));
        }
        Ok(Subtree::Dns(v.to_ascii_lowercase()))
    }

    /// The subtree as rcgen writes it.
    pub fn to_rcgen(&self) -> Option<rcgen::GeneralSubtree> {
        Some(match self {
            Subtree::Dns(d) => rcgen::GeneralSubtree::DnsName(d.clone()),
            Subtree::Ip { net, prefix } => {
                rcgen::GeneralSubtree::IpAddress(rcgen::CidrSubnet::from_addr_prefix(*net, *prefix))
            }
            Subtree::Email(e) => rcgen::GeneralSubtree::Rfc822Name(e.clone()),
            // rcgen cannot write URI subtrees; certforge never asks it to.
            Subtree::Uri(_) => return None,
        })
    }

    /// The subtree a certificate carries, when certforge understands its type.
    pub fn from_x509(name: &x509_parser::extensions::GeneralName<'_>) -> Option<Subtree> {
        use x509_parser::extensions::GeneralName as G;
        Some(match name {
            G::DNSName(d) => Subtree::Dns(d.to_ascii_lowercase()),
            G::RFC822Name(e) => Subtree::Email(e.to_ascii_lowercase()),
            G::URI(u) => Subtree::Uri(u.to_ascii_lowercase()),
            G::IPAddress(b) if b.len() == 8 => {
                let net = IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]));
                Subtree::Ip { net, prefix: b[4..].iter().map(|m| m.count_ones() as u8).sum() }
            }
            G::IPAddress(b) if b.len() == 32 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(&b[..16]);
                Subtree::Ip {
                    net: IpAddr::V6(Ipv6Addr::from(a)),
                    prefix: b[16..].iter().map(|m| m.count_ones() as u8).sum(),
                }
            }
            _ => return None,
        })
    }

    /// The value as `--permit-domain` takes it (`example.com`, `10.0.0.0/8`).
    pub fn flag_value(&self) -> String {
        match self {
            Subtree::Ip { net, prefix } => format!("{net}/{prefix}"),
            Subtree::Dns(v) | Subtree::Email(v) | Subtree::Uri(v) => v.clone(),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Subtree::Dns(_) => "DNS",
            Subtree::Ip { .. } => "IP",
            Subtree::Email(_) => "email",
            Subtree::Uri(_) => "URI",
        }
    }

    /// Whether this subtree covers `san`; `None` when they are of
    /// different types, so that the subtree says nothing about it.
    pub fn covers(&self, san: &San) -> Option<bool> {
        match (self, san) {
            (Subtree::Dns(base), San::Dns(name)) => Some(dns_within(name, base)),
            (Subtree::Ip { net, prefix }, San::Ip(ip)) => {
                Some(net.is_ipv4() == ip.is_ipv4() && mask(*ip, *prefix) == *net)
            }
            (Subtree::Email(c), San::Email(addr)) => {
                let addr = addr.to_ascii_lowercase();
                Some(if c.contains('@') { addr == *c } else { host_within(addr.rsplit('@').next().unwrap_or(""), c) })
            }
            (Subtree::Uri(c), San::Uri(uri)) => Some(uri_host(uri).is_some_and(|h| host_within(&h, c))),
            _ => None,
        }
    }

    fn same_kind(&self, san: &San) -> bool {
        self.covers(san).is_some()
    }
}

impl fmt::Display for Subtree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subtree::Ip { net, prefix } => write!(f, "IP:{net}/{prefix}"),
            Subtree::Dns(v) | Subtree::Email(v) | Subtree::Uri(v) => write!(f, "{}:{v}", self.kind()),
        }
    }
}

/// A host against an email or URI constraint: `.domain` means the hosts
/// below it, anything else that host exactly (RFC 5280 §4.2.1.10).
fn host_within(host: &str, constraint: &str) -> bool {
    let host = host.to_ascii_lowercase();
    match constraint.strip_prefix('.') {
        Some(domain) => host.ends_with(&format!(".{domain}")),
        None => host == constraint,
    }
}

/// The host of `scheme://host[:port]/…` (a bracketed IPv6 host included).
fn uri_host(uri: &str) -> Option<String> {
    let rest = uri.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit('@').next()?;
    let host =
        if let Some(v6) = host_port.strip_prefix('[') { v6.split(']').next()? } else { host_port.split(':').next()? };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// `ip` with every bit past `prefix` cleared.
fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & m))
        }
        IpAddr::V6(a) => {
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & m))
        }
    }
}

/// The ranges a DNS-only constraint gets: loopback, IPv4 and IPv6.
pub fn loopback() -> Vec<Subtree> {
    vec![
        Subtree::Ip { net: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)), prefix: 8 },
        Subtree::Ip { net: IpAddr::V6(Ipv6Addr::LOCALHOST), prefix: 128 },
    ]
}

/// The permitted subtrees for `values` (already checked by
/// [`Subtree::parse`]): as given, plus the loopback ranges when the list
/// names DNS subtrees but no IP range, so that no IP address is left
/// unconstrained. The flag says whether they were added.
pub fn effective(values: &[String]) -> (Vec<Subtree>, bool) {
    let mut out: Vec<Subtree> = values.iter().filter_map(|v| Subtree::parse(v).ok()).collect();
    let dns = out.iter().any(|s| matches!(s, Subtree::Dns(_)));
    let ip = out.iter().any(|s| matches!(s, Subtree::Ip { .. }));
    let add = dns && !ip;
    if add {
        out.extend(loopback());
    }
    (out, add)
}

/// `init --local`'s presets: the names a locally trusted CA may issue for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum LocalPreset {
    /// localhost and *.test, 127.0.0.0/8 and ::1 (RFC 6761 names).
    Loopback,
    /// Also the private-use names and ranges of a home or office network:
    /// internal, local, home.arpa, RFC 1918, link-local, fc00::/7, fe80::/10.
    Lan,
}

impl LocalPreset {
    /// The `--permit-domain` values of the preset.
    pub fn subtrees(self) -> Vec<String> {
        let mut v = vec!["localhost", "test", "127.0.0.0/8", "::1/128"];
        if self == LocalPreset::Lan {
            v.extend([
                "internal",
                "local",
                "home.arpa",
                "10.0.0.0/8",
                "172.16.0.0/12",
                "192.168.0.0/16",
                "169.254.0.0/16",
                "fc00::/7",
                "fe80::/10",
            ]);
        }
        v.into_iter().map(String::from).collect()
    }
}

/// A CA's name constraints, read from its certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameConstraints {
    pub permitted: Vec<Subtree>,
    pub excluded: Vec<Subtree>,
}

impl NameConstraints {
    /// The constraints `cert` carries (none when it has no extension).
    pub fn of(cert: &x509_parser::certificate::X509Certificate<'_>) -> NameConstraints {
        let Ok(Some(nc)) = cert.name_constraints() else { return NameConstraints::default() };
        let read = |t: &Option<Vec<x509_parser::extensions::GeneralSubtree<'_>>>| -> Vec<Subtree> {
            t.iter().flatten().filter_map(|s| Subtree::from_x509(&s.base)).collect()
        };
        NameConstraints { permitted: read(&nc.value.permitted_subtrees), excluded: read(&nc.value.excluded_subtrees) }
    }

    /// True when the CA may issue for any name.
    pub fn is_empty(&self) -> bool {
        self.permitted.is_empty() && self.excluded.is_empty()
    }

    /// Why `san` breaks these constraints, in words a person can act on;
    /// `None` when the CA may issue for it.
    pub fn violation(&self, san: &San) -> Option<String> {
        if let Some(ex) = self.excluded.iter().find(|s| s.covers(san) == Some(true)) {
            return Some(format!("{san} is inside the excluded subtree {ex}"));
        }
        let same: Vec<&Subtree> = self.permitted.iter().filter(|s| s.same_kind(san)).collect();
        if !same.is_empty() && !same.iter().any(|s| s.covers(san) == Some(true)) {
            let list: Vec<String> = same.iter().map(ToString::to_string).collect();
            return Some(format!("{san} is outside the names the CA may issue for ({})", list.join(", ")));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sans(v: &[&str]) -> Vec<San> {
        v.iter()
            .map(|s| match s.split_once(':') {
                Some(("IP", ip)) => San::Ip(ip.parse().unwrap()),
                Some(("email", e)) => San::Email(e.into()),
                Some(("URI", u)) => San::Uri(u.into()),
                _ => San::Dns(s.to_string()),
            })
            .collect()
    }

    #[test]
    fn flags_take_dns_names_ranges_and_single_addresses() {
        assert_eq!(Subtree::parse("Example.COM").unwrap(), Subtree::Dns("example.com".into()));
        assert_eq!(Subtree::parse("10.0.0.0/8").unwrap().to_string(), "IP:10.0.0.0/8");
        assert_eq!(Subtree::parse("fc00::/7").unwrap().to_string(), "IP:fc00::/7");
        assert_eq!(Subtree::parse("::1").unwrap().to_string(), "IP:::1/128");
        assert!(Subtree::parse("10.0.0.1/8").unwrap_err().contains("write 10.0.0.0/8"));
        assert!(Subtree::parse("10.0.0.0/33").is_err());
        assert!(Subtree::parse("*.example.com").is_err());
        assert!(Subtree::parse("exa mple.com").is_err());
    }

    #[test]
    fn a_dns_only_list_gets_loopback_ranges_so_ips_are_never_unconstrained() {
        let (dns_only, added) = effective(&["localhost".into(), "test".into()]);
        assert!(added);
        let nc = NameConstraints { permitted: dns_only, excluded: vec![] };
        let bad = sans(&["IP:8.8.8.8", "IP:2606:4700::1111", "www.example.com"]);
        for s in &bad {
            assert!(nc.violation(s).is_some(), "{s} must be refused");
        }
        for s in &sans(&["IP:127.0.0.1", "IP:::1", "localhost", "api.test"]) {
            assert_eq!(nc.violation(s), None, "{s} is inside");
        }
        let (with_ip, added) = effective(&["test".into(), "10.0.0.0/8".into()]);
        assert!(!added, "an explicit range is kept alone");
        assert!(!with_ip.contains(&loopback()[0]));
    }

    #[test]
    fn rfc5280_leaves_other_name_types_alone_and_checks_email_and_uri_hosts() {
        let nc = NameConstraints {
            permitted: vec![
                Subtree::Dns("test".into()),
                Subtree::Email(".test".into()),
                Subtree::Uri("svc.test".into()),
            ],
            excluded: vec![Subtree::Dns("secret.test".into())],
        };
        assert_eq!(nc.violation(&San::Ip("8.8.8.8".parse().unwrap())), None, "no IP subtree: IPs unconstrained");
        assert!(nc.violation(&San::Email("a@b.test".into())).is_none());
        assert!(nc.violation(&San::Email("a@example.com".into())).is_some());
        assert!(nc.violation(&San::Uri("https://svc.test:8443/x".into())).is_none());
        assert!(nc.violation(&San::Uri("spiffe://other.org/x".into())).is_some());
        assert!(nc.violation(&San::Dns("a.secret.test".into())).unwrap().contains("excluded"));
    }
}

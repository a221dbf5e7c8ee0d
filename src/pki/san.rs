//! Subject alternative names, parsed once at the edge. gRPC's TLS stacks
//! (BoringSSL in grpcio, Go since 1.15, rustls) match host names against
//! SANs only and never the CN, so these are what make a server cert work.

use std::fmt;
use std::net::IpAddr;

use rcgen::SanType;

/// One SAN, validated.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum San {
    Dns(String),
    Ip(IpAddr),
    Uri(String),
    Email(String),
}

/// A parser for one kind of SAN flag or plan field.
pub type SanParser = fn(&str) -> Result<San, SanError>;

/// Which kind of SAN a value was given as: the list it came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SanField {
    /// A host: a DNS name, or an IP address ([`San::domain`]).
    Domain,
    Ip,
    Uri,
    Email,
}

impl SanField {
    /// The field in words: "DNS name", "IP address", "URI", "email address".
    pub fn noun(self) -> &'static str {
        match self {
            SanField::Domain => "DNS name",
            SanField::Ip => "IP address",
            SanField::Uri => "URI",
            SanField::Email => "email address",
        }
    }
}

/// Why a SAN value was refused. Its `Display` names the field in words;
/// [`SanError::naming`] names it as the caller does (a flag, a plan key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SanError {
    pub field: SanField,
    pub value: String,
    pub why: String,
    /// The value is no address, so it may be a host name, and those go in
    /// [`SanField::Domain`]: the message says so.
    pub is_host: bool,
}

impl SanError {
    /// The message with each field named by `name`, e.g. a command-line
    /// flag (`--domain "a..b": …`) or a plan key (`domains "a..b": …`).
    pub fn naming(&self, name: impl Fn(SanField) -> &'static str) -> String {
        let host =
            if self.is_host { format!(", and put host names in {}", name(SanField::Domain)) } else { String::new() };
        format!("{} {:?}: {}{host}", name(self.field), self.value, self.why)
    }
}

impl fmt::Display for SanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {} {:?}: {}", self.field.noun(), self.value, self.why)?;
        if self.is_host {
            f.write_str("; a host name is a DNS name")?;
        }
        Ok(())
    }
}

impl std::error::Error for SanError {}

fn err(field: SanField, value: &str, why: impl Into<String>) -> SanError {
    SanError { field, value: value.to_string(), why: why.into(), is_host: false }
}

impl San {
    /// A host name. An IP address given here becomes an IP SAN,
    /// because clients never match an IP against a DNS SAN (RFC 6125 §6.2.1;
    /// Go, BoringSSL and rustls all refuse it).
    pub fn domain(value: &str) -> Result<San, SanError> {
        if let Ok(ip) = value.parse::<IpAddr>() {
            return Ok(San::Ip(ip));
        }
        check_dns_name(value).map_err(|why| err(SanField::Domain, value, why))?;
        Ok(San::Dns(value.to_string()))
    }

    /// An IP address: IPv4 or IPv6 (brackets allowed), without a zone.
    pub fn ip(value: &str) -> Result<San, SanError> {
        if value.contains('%') {
            return Err(err(SanField::Ip, value, "an IPv6 zone (%...) cannot go in a certificate; drop it"));
        }
        let trimmed = value.trim_start_matches('[').trim_end_matches(']');
        trimmed.parse::<IpAddr>().map(San::Ip).map_err(|_| SanError {
            is_host: true,
            ..err(SanField::Ip, value, "not an IPv4 or IPv6 address; write e.g. 127.0.0.1 or ::1")
        })
    }

    /// A URI such as `spiffe://example.org/service`: it needs a
    /// scheme (RFC 3986 §3.1) and no spaces.
    pub fn uri(value: &str) -> Result<San, SanError> {
        let Some((scheme, rest)) = value.split_once(':') else {
            return Err(err(SanField::Uri, value, "a URI needs a scheme, e.g. spiffe://example.org/service"));
        };
        let scheme_ok = scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !scheme_ok {
            return Err(err(
                SanField::Uri,
                value,
                format!("{scheme:?} is not a URI scheme; write e.g. spiffe://example.org/service"),
            ));
        }
        if rest.is_empty() {
            return Err(err(SanField::Uri, value, "nothing follows the scheme"));
        }
        if value.chars().any(|c| c.is_whitespace() || c.is_control() || !c.is_ascii()) {
            return Err(err(
                SanField::Uri,
                value,
                "URIs in certificates are ASCII without spaces; percent-encode the rest",
            ));
        }
        Ok(San::Uri(value.to_string()))
    }

    /// An email address: `local@domain`, ASCII (RFC 5280 §4.2.1.6 rfc822Name).
    pub fn email(value: &str) -> Result<San, SanError> {
        let Some((local, domain)) = value.rsplit_once('@') else {
            return Err(err(SanField::Email, value, "an email address needs an @, e.g. ops@example.com"));
        };
        if local.is_empty() || !local.chars().all(|c| c.is_ascii_graphic() && c != '@') {
            return Err(err(SanField::Email, value, "the part before @ must be non-empty printable ASCII"));
        }
        check_dns_name(domain).map_err(|why| err(SanField::Email, value, format!("its domain: {why}")))?;
        if domain.starts_with('*') {
            return Err(err(SanField::Email, value, "an email domain cannot be a wildcard"));
        }
        Ok(San::Email(value.to_string()))
    }

    /// The rcgen form.
    pub fn to_rcgen(&self) -> Result<SanType, rcgen::Error> {
        Ok(match self {
            San::Dns(d) => SanType::DnsName(d.as_str().try_into()?),
            San::Ip(ip) => SanType::IpAddress(*ip),
            San::Uri(u) => SanType::URI(u.as_str().try_into()?),
            San::Email(e) => SanType::Rfc822Name(e.as_str().try_into()?),
        })
    }

    /// The SAN a host-like CN stands for: an IP address, or a DNS name in
    /// RFC 1034 §3.5's preferred syntax (letters, digits and hyphens, which
    /// RFC 5280 §4.2.1.6 asks of a dNSName; a leftmost wildcard allowed).
    /// `None` for a CN that names someone rather than a host: `grpc_client`
    /// (an underscore), `Alice Smith`, `alice@example.com`, `0.0.0.0`.
    ///
    /// ```
    /// use certforge::pki::san::San;
    /// assert_eq!(San::from_host_cn("api.test"), Some(San::Dns("api.test".into())));
    /// assert_eq!(San::from_host_cn("10.0.0.1"), Some(San::Ip("10.0.0.1".parse().unwrap())));
    /// assert_eq!(San::from_host_cn("grpc_client"), None);
    /// ```
    pub fn from_host_cn(cn: &str) -> Option<San> {
        match cn.parse::<IpAddr>() {
            Ok(ip) if ip.is_unspecified() => None,
            Ok(ip) => Some(San::Ip(ip)),
            Err(_) if cn.contains('_') || check_dns_name(cn).is_err() => None,
            Err(_) => Some(San::Dns(cn.to_string())),
        }
    }

    /// The `request-cert` flag that asks for this SAN, e.g. `--domain api.test`.
    /// A wildcard is quoted, so that a shell does not expand it.
    pub fn request_flag(&self) -> String {
        let (flag, value) = match self {
            San::Dns(d) => ("--domain", d.clone()),
            San::Ip(ip) => ("--ip", ip.to_string()),
            San::Uri(u) => ("--uri", u.clone()),
            San::Email(e) => ("--email", e.clone()),
        };
        format!("{flag} {}", super::names::shell_word(&value))
    }

    /// A warning for a SAN that is valid but that no client will match.
    pub fn warning(&self) -> Option<String> {
        match self {
            San::Ip(ip) if ip.is_unspecified() => Some(format!(
                "IP:{ip} is the unspecified address: clients dial a real address such as 127.0.0.1, so this SAN matches nothing"
            )),
            _ => None,
        }
    }
}

impl fmt::Display for San {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            San::Dns(d) => write!(f, "DNS:{d}"),
            San::Ip(ip) => write!(f, "IP:{ip}"),
            San::Uri(u) => write!(f, "URI:{u}"),
            San::Email(e) => write!(f, "email:{e}"),
        }
    }
}

/// How a certificate that serves TLS names its host for clients, which
/// look in its DNS and IP SANs only ([`SANS_ONLY`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostName {
    /// A DNS or IP SAN does.
    InSans,
    /// No SAN does, but the CN names a host, so it goes in as this SAN (as
    /// `step ca certificate` makes the subject the only SAN when given none).
    FromCn(San),
    /// Nothing does: clients accept it for no host.
    Missing,
}

impl HostName {
    /// How a request with `sans` and `common_name` names its host.
    pub fn of(sans: &[San], common_name: Option<&str>) -> HostName {
        if sans.iter().any(|s| matches!(s, San::Dns(_) | San::Ip(_))) {
            return HostName::InSans;
        }
        common_name.and_then(San::from_host_cn).map_or(HostName::Missing, HostName::FromCn)
    }

    /// The certificate's SANs: `sans`, and the CN's when it goes in.
    pub fn sans(&self, sans: &[San]) -> Vec<San> {
        let mut out = sans.to_vec();
        if let HostName::FromCn(san) = self {
            out.push(san.clone());
        }
        out
    }
}

/// Why a TLS server certificate needs a DNS or IP SAN, in the words every
/// message about it uses. RFC 9525 §6.3 drops the CN fallback; Chrome since
/// 58, Go since 1.15, Python since 3.7 and rustls never read the CN.
pub const SANS_ONLY: &str =
    "TLS clients (Go, Python, Chrome, rustls, grpcio) match a server's name against its DNS and IP SANs only, never its CN";

/// Checks a DNS name as TLS clients will: ASCII labels of 1-63 letters,
/// digits, `-` or `_`, no leading or trailing `-`, at most 253 bytes. A `*`
/// may only be the whole leftmost label, with at least two labels after it
/// (browsers and BoringSSL refuse `*.com`), since a wildcard covers exactly
/// one label (RFC 6125 §6.4.3).
pub fn check_dns_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty name".into());
    }
    if !name.is_ascii() {
        return Err("not ASCII: write internationalised names in their punycode (xn--) form".into());
    }
    if name.ends_with('.') {
        return Err("ends with a dot: write the name without the trailing dot".into());
    }
    if name.len() > 253 {
        return Err(format!("{} bytes long; DNS names stop at 253", name.len()));
    }
    let labels: Vec<&str> = name.split('.').collect();
    for (i, label) in labels.iter().enumerate() {
        if label.is_empty() {
            return Err("has an empty label (two dots in a row, or a leading dot)".into());
        }
        if *label == "*" {
            if i != 0 {
                return Err("a * wildcard may only be the leftmost label, as in *.example.com".into());
            }
            if labels.len() < 3 {
                return Err(
                    "a wildcard needs at least two labels after it (*.example.com); clients refuse *.com".into()
                );
            }
            continue;
        }
        if label.contains('*') {
            return Err("a * must be a whole label on its own, as in *.example.com".into());
        }
        if label.len() > 63 {
            return Err(format!("the label {label:?} is {} bytes; DNS labels stop at 63", label.len()));
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(format!("the label {label:?} has a character outside letters, digits, - and _"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("the label {label:?} starts or ends with -"));
        }
    }
    Ok(())
}

/// True when `name` is `base` or a subdomain of it, as a DNS name
/// constraint reads (RFC 5280 §4.2.1.10); a leading dot on `base` means
/// subdomains only.
pub fn dns_within(name: &str, base: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let base = base.to_ascii_lowercase();
    if let Some(sub) = base.strip_prefix('.') {
        return name.ends_with(&format!(".{sub}"));
    }
    name == base || name.ends_with(&format!(".{base}"))
}

/// True when the SAN DNS name `pattern` covers `host`: equal ignoring
/// case, or a leftmost `*` standing for exactly one label (RFC 6125 §6.4.3).
pub fn dns_matches(pattern: &str, host: &str) -> bool {
    let (pattern, host) = (pattern.to_ascii_lowercase(), host.trim_end_matches('.').to_ascii_lowercase());
    match pattern.strip_prefix("*.") {
        Some(rest) => host.split_once('.').is_some_and(|(label, tail)| !label.is_empty() && tail == rest),
        None => pattern == host,
    }
}

/// The SANs of a certificate that certforge can represent (others are
/// left out).
pub fn of_cert(cert: &x509_parser::certificate::X509Certificate<'_>) -> Vec<San> {
    match cert.subject_alternative_name() {
        Ok(Some(ext)) => ext.value.general_names.iter().filter_map(|g| from_general_name(g).ok()).collect(),
        _ => Vec::new(),
    }
}

/// Converts a SAN read from a certificate or CSR.
pub fn from_general_name(name: &x509_parser::extensions::GeneralName<'_>) -> Result<San, String> {
    use x509_parser::extensions::GeneralName as G;
    Ok(match name {
        G::DNSName(d) => San::Dns(d.to_string()),
        G::URI(u) => San::Uri(u.to_string()),
        G::RFC822Name(e) => San::Email(e.to_string()),
        G::IPAddress(bytes) => match bytes.len() {
            4 => San::Ip(IpAddr::from(<[u8; 4]>::try_from(*bytes).expect("length checked"))),
            16 => San::Ip(IpAddr::from(<[u8; 16]>::try_from(*bytes).expect("length checked"))),
            n => return Err(format!("an IP address SAN of {n} bytes")),
        },
        other => return Err(format!("a SAN of a kind certforge cannot copy ({other})")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_like_cn_becomes_the_san_and_a_client_name_does_not() {
        let dns = |d: &str| HostName::FromCn(San::Dns(d.into()));
        assert_eq!(HostName::of(&[], Some("api.test")), dns("api.test"));
        assert_eq!(HostName::of(&[], Some("localhost")), dns("localhost"));
        assert_eq!(HostName::of(&[], Some("*.apps.example.com")), dns("*.apps.example.com"));
        assert_eq!(HostName::of(&[], Some("::1")), HostName::FromCn(San::Ip("::1".parse().unwrap())));
        for client in ["grpc_client", "My Service", "alice@example.com", "0.0.0.0", "api.test.", "*.com"] {
            assert_eq!(HostName::of(&[], Some(client)), HostName::Missing, "{client}");
        }
        assert_eq!(HostName::of(&[], None), HostName::Missing);
        let uri = San::Uri("spiffe://example.org/api".into());
        let with_cn = HostName::of(std::slice::from_ref(&uri), Some("api.test"));
        assert_eq!(with_cn.sans(std::slice::from_ref(&uri)), vec![uri.clone(), San::Dns("api.test".into())]);
        let ip = San::Ip("10.0.0.1".parse().unwrap());
        assert_eq!(HostName::of(std::slice::from_ref(&ip), Some("other.test")), HostName::InSans);
        assert_eq!(San::Dns("*.a.test".into()).request_flag(), "--domain '*.a.test'");
    }

    #[test]
    fn domains_accept_hosts_and_wildcards() {
        for ok in
            ["localhost", "grpc-server", "a.example.com", "*.example.com", "_svc.example.com", "xn--bcher-kva.example"]
        {
            assert_eq!(San::domain(ok).unwrap(), San::Dns(ok.to_string()));
        }
    }

    #[test]
    fn an_ip_given_as_a_domain_becomes_an_ip_san() {
        assert_eq!(San::domain("127.0.0.1").unwrap(), San::Ip("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn domains_refuse_what_clients_refuse() {
        for bad in [
            "",
            "a..b",
            ".a",
            "a.",
            "foo.*.com",
            "*.com",
            "f*o.example.com",
            "bad host",
            "-a.com",
            "a-.com",
            "bücher.de",
            &"a".repeat(64),
        ] {
            assert!(San::domain(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn ips_parse_v4_and_v6_and_refuse_zones() {
        assert_eq!(San::ip("::1").unwrap(), San::Ip("::1".parse().unwrap()));
        assert_eq!(San::ip("[::1]").unwrap(), San::Ip("::1".parse().unwrap()));
        assert!(San::ip("fe80::1%eth0").unwrap_err().why.contains("zone"));
        assert!(San::ip("300.1.1.1").is_err());
        assert!(San::ip("localhost").is_err());
    }

    #[test]
    fn errors_name_the_field_in_words_or_as_the_caller_does() {
        let e = San::ip("localhost").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid IP address \"localhost\": not an IPv4 or IPv6 address; write e.g. 127.0.0.1 or ::1; a host name is a DNS name"
        );
        let flag = |f: SanField| if f == SanField::Ip { "--ip" } else { "--domain" };
        assert_eq!(
            e.naming(flag),
            "--ip \"localhost\": not an IPv4 or IPv6 address; write e.g. 127.0.0.1 or ::1, and put host names in --domain"
        );
        let e = San::domain("a..b").unwrap_err();
        assert_eq!(e.field, SanField::Domain);
        assert!(e.to_string().starts_with("invalid DNS name \"a..b\": has an empty label"), "{e}");
        assert!(!e.to_string().contains("--"), "{e}");
    }

    #[test]
    fn uris_need_a_scheme() {
        assert!(San::uri("spiffe://example.org/svc").is_ok());
        assert!(San::uri("urn:example:a").is_ok());
        for bad in ["example.org/svc", "://x", "1abc:x", "spiffe:", "spiffe://a b"] {
            assert!(San::uri(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn emails_need_a_local_part_and_a_domain() {
        assert!(San::email("ops@example.com").is_ok());
        for bad in ["ops", "@example.com", "ops@", "ops@bad..com"] {
            assert!(San::email(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn wildcards_cover_exactly_one_label() {
        assert!(dns_matches("*.example.com", "a.example.com"));
        assert!(dns_matches("*.Example.com", "A.example.COM"));
        assert!(!dns_matches("*.example.com", "a.b.example.com"));
        assert!(!dns_matches("*.example.com", "example.com"));
        assert!(dns_matches("localhost", "localhost"));
        assert!(!dns_matches("localhost", "grpc.example.com"));
    }

    #[test]
    fn unspecified_address_gets_a_warning() {
        assert!(San::ip("0.0.0.0").unwrap().warning().is_some());
        assert!(San::ip("127.0.0.1").unwrap().warning().is_none());
    }
}

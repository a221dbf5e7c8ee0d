//! The protocols `probe` offers by ALPN (RFC 7301): what `--alpn` means.

/// What curl offers over TLS, most preferred first. gRPC servers close the
/// connection of a client that does not offer `h2` (gRPC over HTTP/2 spec,
/// "TLS": ALPN h2 is mandatory), so offering none misreads every gRPC port.
pub const DEFAULT: [&str; 2] = ["h2", "http/1.1"];

/// [`DEFAULT`], owned.
pub fn default_offer() -> Vec<String> {
    DEFAULT.map(String::from).to_vec()
}

/// Names users type for a protocol whose ALPN identifier is another one
/// (IANA "TLS Application-Layer Protocol Negotiation (ALPN) Protocol IDs").
/// Identifiers are compared byte for byte, so `HTTP/1.1` would never match.
const MISTAKES: [(&str, &str); 8] = [
    ("h2c", "h2c is HTTP/2 without TLS and is never negotiated by ALPN; over TLS it is h2"),
    ("http/2", "HTTP/2's identifier is h2"),
    ("http2", "HTTP/2's identifier is h2"),
    ("grpc", "gRPC runs over HTTP/2, whose identifier is h2"),
    ("http/1", "HTTP/1.1's identifier is http/1.1"),
    ("http1.1", "HTTP/1.1's identifier is http/1.1"),
    ("http/3", "HTTP/3 runs over QUIC, not TLS over TCP; over TLS offer h2"),
    ("h3", "HTTP/3 runs over QUIC, not TLS over TCP; over TLS offer h2"),
];

/// Parses `--alpn`: a comma-separated list of protocol identifiers, most
/// preferred first, or `none` to offer no ALPN extension at all.
pub fn parse(value: &str) -> Result<Vec<String>, String> {
    let bad = |why: String| Err(format!("--alpn {value:?}: {why}"));
    if value.trim().eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    let mut out: Vec<String> = Vec::new();
    for id in value.split(',').map(str::trim) {
        if id.is_empty() {
            return bad("an empty protocol; give a comma-separated list such as h2,http/1.1, or none".into());
        }
        if id.eq_ignore_ascii_case("none") {
            return bad("none stands alone; it offers no protocol at all".into());
        }
        if let Some((_, why)) = MISTAKES.iter().find(|(m, _)| m.eq_ignore_ascii_case(id)) {
            return bad(why.to_string());
        }
        if id != id.to_ascii_lowercase() && DEFAULT.iter().any(|d| d.eq_ignore_ascii_case(id)) {
            return bad(format!("identifiers are matched byte for byte: use {}", id.to_ascii_lowercase()));
        }
        // RFC 7301 §3.1: 1 to 255 bytes. Registered identifiers are
        // printable ASCII; anything else is a typing accident here.
        if id.len() > 255 || !id.bytes().all(|b| b.is_ascii_graphic()) {
            return bad(format!("{id:?} is not a protocol identifier (printable ASCII, at most 255 bytes)"));
        }
        if out.iter().any(|o| o == id) {
            return bad(format!("{id} is listed twice"));
        }
        out.push(id.to_string());
    }
    Ok(out)
}

/// How a list of offered protocols reads in a message.
pub fn shown(offer: &[String]) -> String {
    if offer.is_empty() {
        "none".into()
    } else {
        offer.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_and_none() {
        assert_eq!(parse("h2,http/1.1").unwrap(), ["h2", "http/1.1"]);
        assert_eq!(parse("http/1.1, h2").unwrap(), ["http/1.1", "h2"]);
        assert_eq!(parse("acme-tls/1").unwrap(), ["acme-tls/1"]);
        assert!(parse("none").unwrap().is_empty());
        assert!(parse("NONE").unwrap().is_empty());
    }

    #[test]
    fn refuses_what_no_server_would_match() {
        for (value, says) in [
            ("", "an empty protocol"),
            ("h2,,http/1.1", "an empty protocol"),
            ("h2,none", "none stands alone"),
            ("h2c", "over TLS it is h2"),
            ("grpc", "h2"),
            ("HTTP/1.1", "use http/1.1"),
            ("H2", "use h2"),
            ("h2,h2", "listed twice"),
            ("h 2", "not a protocol identifier"),
            ("é", "not a protocol identifier"),
        ] {
            let err = parse(value).unwrap_err();
            assert!(err.contains(says) && err.starts_with("--alpn"), "{value:?}: {err}");
        }
        assert!(parse(&"x".repeat(256)).unwrap_err().contains("at most 255 bytes"));
    }
}

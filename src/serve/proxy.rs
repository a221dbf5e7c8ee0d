//! The PROXY protocol, version 2 (haproxy's proxy-protocol.txt §2.2): a
//! balancer in TCP mode passes TLS through untouched, so the server sees
//! the balancer's address; with `send-proxy-v2` the balancer first sends a
//! binary header naming the client. `serve --proxy-protocol` reads it, so
//! that per-address rate limits count clients, not the balancer.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::io::AsyncReadExt;

/// The 12 bytes every v2 header starts with.
const SIGNATURE: [u8; 12] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A];

/// The most address and TLV bytes accepted after the fixed 16: the spec
/// allows 65535, but what haproxy sends (addresses, a few TLVs) is far
/// less, and a connection must not make the server buffer 64 KiB.
const MAX_REST: usize = 512;

/// Why a connection's first bytes are not a PROXY v2 header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyError {
    NotProxy,
    Version(u8),
    Command(u8),
    TooLong(usize),
    Short { family: u8, len: usize },
}

impl std::fmt::Display for ProxyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProxyError::NotProxy => write!(f, "the connection did not start with a PROXY protocol v2 header"),
            ProxyError::Version(v) => write!(f, "PROXY protocol version {v} is not supported; send v2"),
            ProxyError::Command(c) => write!(f, "PROXY protocol command {c} is neither LOCAL nor PROXY"),
            ProxyError::TooLong(n) => write!(f, "a PROXY header of {n} bytes is longer than {MAX_REST}"),
            ProxyError::Short { family, len } => {
                write!(f, "a PROXY header for address family {family:#04x} needs more than {len} bytes")
            }
        }
    }
}

impl std::error::Error for ProxyError {}

/// The fixed part: how many bytes follow it, or why it is not a header.
pub fn fixed(head: &[u8; 16]) -> Result<usize, ProxyError> {
    if head[..12] != SIGNATURE {
        return Err(ProxyError::NotProxy);
    }
    let (version, command) = (head[12] >> 4, head[12] & 0x0F);
    if version != 2 {
        return Err(ProxyError::Version(version));
    }
    if command > 1 {
        return Err(ProxyError::Command(command));
    }
    let len = usize::from(u16::from_be_bytes([head[14], head[15]]));
    if len > MAX_REST {
        return Err(ProxyError::TooLong(len));
    }
    Ok(len)
}

/// The client's address from a whole header (`head` and the `rest` it
/// announced): None for LOCAL (the balancer's own health check) and for
/// families other than TCP over IPv4 or IPv6.
pub fn source(head: &[u8; 16], rest: &[u8]) -> Result<Option<SocketAddr>, ProxyError> {
    fixed(head)?;
    if head[12] & 0x0F == 0 {
        return Ok(None);
    }
    let family = head[13];
    let port = |at: usize| u16::from_be_bytes([rest[at], rest[at + 1]]);
    match family {
        // TCP over IPv4: source, destination, source port, destination port.
        0x11 if rest.len() >= 12 => {
            let ip = Ipv4Addr::new(rest[0], rest[1], rest[2], rest[3]);
            Ok(Some(SocketAddr::new(IpAddr::V4(ip), port(8))))
        }
        0x21 if rest.len() >= 36 => {
            let octets: [u8; 16] = rest[..16].try_into().expect("16 bytes");
            Ok(Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(octets)), port(32))))
        }
        0x11 | 0x21 => Err(ProxyError::Short { family, len: rest.len() }),
        _ => Ok(None),
    }
}

/// Reads the header a balancer sent first on `stream`; the caller bounds
/// the wait. Ok(None): a LOCAL connection, whose peer is the balancer.
pub async fn read_header<R: tokio::io::AsyncRead + Unpin>(
    stream: &mut R,
) -> Result<Option<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
    let mut head = [0u8; 16];
    stream.read_exact(&mut head).await?;
    let mut rest = vec![0u8; fixed(&head)?];
    stream.read_exact(&mut rest).await?;
    Ok(source(&head, &rest)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(command: u8, family: u8, rest: &[u8]) -> ([u8; 16], Vec<u8>) {
        let mut head = [0u8; 16];
        head[..12].copy_from_slice(&SIGNATURE);
        head[12] = 0x20 | command;
        head[13] = family;
        head[14..].copy_from_slice(&(rest.len() as u16).to_be_bytes());
        (head, rest.to_vec())
    }

    #[test]
    fn a_proxied_ipv4_and_ipv6_client_is_read_and_a_local_one_is_none() {
        let v4 = [192, 0, 2, 7, 127, 0, 0, 1, 0xC3, 0x50, 0x01, 0xBB];
        let (h, r) = header(1, 0x11, &v4);
        assert_eq!(source(&h, &r).unwrap(), Some("192.0.2.7:50000".parse().unwrap()));
        let mut v6 = Vec::new();
        v6.extend_from_slice(&"2001:db8::9".parse::<Ipv6Addr>().unwrap().octets());
        v6.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        v6.extend_from_slice(&[0x00, 0x50, 0x01, 0xBB]);
        v6.extend_from_slice(&[0x04, 0x00, 0x01, 0x00]); // a TLV, skipped
        let (h, r) = header(1, 0x21, &v6);
        assert_eq!(source(&h, &r).unwrap(), Some("[2001:db8::9]:80".parse().unwrap()));
        let (h, r) = header(0, 0x00, &[]);
        assert_eq!(source(&h, &r).unwrap(), None, "LOCAL: haproxy's health check");
        let (h, r) = header(1, 0x31, &[0; 216]);
        assert_eq!(source(&h, &r).unwrap(), None, "a UNIX socket client has no address to count");
    }

    #[test]
    fn anything_else_is_refused_with_its_reason() {
        let mut tls = [0u8; 16];
        tls[..5].copy_from_slice(&[0x16, 0x03, 0x01, 0x02, 0x00]);
        assert_eq!(fixed(&tls), Err(ProxyError::NotProxy), "a TLS ClientHello straight away");
        let (mut h, _) = header(1, 0x11, &[0; 12]);
        h[12] = 0x11;
        assert_eq!(fixed(&h), Err(ProxyError::Version(1)));
        let (h, _) = header(2, 0x11, &[0; 12]);
        assert_eq!(fixed(&h), Err(ProxyError::Command(2)));
        let (h, r) = header(1, 0x11, &[0; 8]);
        assert_eq!(source(&h, &r), Err(ProxyError::Short { family: 0x11, len: 8 }));
        let (mut h, _) = header(1, 0x11, &[]);
        h[14..].copy_from_slice(&60000u16.to_be_bytes());
        assert_eq!(fixed(&h), Err(ProxyError::TooLong(60000)));
        assert!(ProxyError::NotProxy.to_string().contains("PROXY protocol v2"));
    }

    #[test]
    fn random_and_mutated_headers_never_panic() {
        let (good, rest) = header(1, 0x21, &[7; 40]);
        for i in 0..20_000u32 {
            let mut bytes = [0u8; 64];
            aws_lc_rs::rand::fill(&mut bytes).unwrap();
            let mut head: [u8; 16] = bytes[..16].try_into().unwrap();
            if i % 2 == 0 {
                // Keep the signature so the parser gets past it.
                head[..12].copy_from_slice(&good[..12]);
            }
            let cut = usize::from(bytes[16]) % 48;
            let _ = source(&head, &bytes[16..16 + cut]);
            let _ = source(&good, &rest[..usize::from(bytes[17]) % 41]);
        }
    }

    #[tokio::test]
    async fn the_header_is_read_off_the_stream_and_the_tls_bytes_stay() {
        let (h, r) = header(1, 0x11, &[10, 0, 0, 1, 127, 0, 0, 1, 0, 1, 0, 2]);
        let mut bytes = h.to_vec();
        bytes.extend_from_slice(&r);
        bytes.extend_from_slice(b"\x16\x03\x01");
        let mut stream = &bytes[..];
        assert_eq!(read_header(&mut stream).await.unwrap(), Some("10.0.0.1:1".parse().unwrap()));
        assert_eq!(stream, b"\x16\x03\x01", "what follows is left for TLS");
        let mut short = &bytes[..10];
        assert!(read_header(&mut short).await.is_err());
    }
}

//! The PROXY protocol header (HAProxy's spec, versions 1 and 2), which a
//! load balancer sends before the client's first byte to say whom it is
//! relaying: sans-IO, bytes in, the client's address and the header's
//! length out.
//!
//! - v1: one text line, at most 107 bytes: `PROXY TCP4 <src> <dst>
//!   <sport> <dport>\r\n` (`TCP6` likewise, `PROXY UNKNOWN ...\r\n` names
//!   no one);
//! - v2: a 12-byte signature, a version/command byte (`0x20` LOCAL, `0x21`
//!   PROXY), a family/transport byte (`0x11` TCP over IPv4, `0x21` TCP
//!   over IPv6, others name no one), a 16-bit length, then the addresses
//!   and any TLVs (skipped).
//!
//! Whether a peer may send one is the caller's policy.
//!
//! Leaf: std only.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The v2 signature.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
const V1_PREFIX: &[u8] = b"PROXY ";
/// The longest v1 line, CRLF included.
pub const V1_MAX: usize = 107;

/// What the first bytes of a connection are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detect {
    /// Too few bytes to tell.
    NeedMore,
    /// Not a PROXY header (an HTTP request, say).
    Absent,
    /// The start of a PROXY header.
    Present,
}

/// Tells whether `buf` starts with a PROXY header (v1 or v2).
pub fn detect(buf: &[u8]) -> Detect {
    let starts = |sig: &[u8]| {
        let n = buf.len().min(sig.len());
        buf[..n] == sig[..n]
    };
    match (starts(V1_PREFIX), starts(&V2_SIGNATURE)) {
        (false, false) => Detect::Absent,
        (true, _) if buf.len() >= V1_PREFIX.len() => Detect::Present,
        (_, true) if buf.len() >= V2_SIGNATURE.len() => Detect::Present,
        _ => Detect::NeedMore,
    }
}

/// A parsed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyHeader {
    /// The client the balancer relays; `None` for v2 LOCAL (a health
    /// check of the balancer's own), v1 `UNKNOWN`, or a family other than
    /// TCP over IPv4/IPv6: the connection's own peer stands.
    pub source: Option<SocketAddr>,
}

/// Why a PROXY header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error("PROXY v1 line longer than 107 bytes or without CRLF")]
    V1TooLong,
    #[error("malformed PROXY v1 line")]
    V1Syntax,
    #[error("unsupported PROXY v2 version or command")]
    V2Version,
    #[error("PROXY v2 address block shorter than its family needs")]
    V2Short,
    #[error("not a PROXY protocol header")]
    NotProxy,
}

/// Parses the PROXY header at the front of `buf`: `Ok(None)` while it is
/// incomplete, else the header and its length in bytes.
pub fn parse(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    if buf.starts_with(V1_PREFIX) {
        return parse_v1(buf);
    }
    if buf.starts_with(&V2_SIGNATURE) {
        return parse_v2(buf);
    }
    match detect(buf) {
        Detect::NeedMore => Ok(None),
        _ => Err(ProxyError::NotProxy),
    }
}

fn parse_v1(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(cr) = window.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX {
            Err(ProxyError::V1TooLong)
        } else if window.contains(&b'\n') {
            Err(ProxyError::V1Syntax)
        } else {
            Ok(None)
        };
    };
    let line = std::str::from_utf8(&buf[V1_PREFIX.len()..cr]).map_err(|_| ProxyError::V1Syntax)?;
    let len = cr + 2;
    let fields: Vec<&str> = line.split(' ').collect();
    let proto = fields[0];
    if proto == "UNKNOWN" {
        return Ok(Some((ProxyHeader { source: None }, len)));
    }
    let [_, src, dst, sport, dport] = fields[..] else {
        return Err(ProxyError::V1Syntax);
    };
    let (src, dst): (IpAddr, IpAddr) = match proto {
        "TCP4" => (
            IpAddr::V4(src.parse::<Ipv4Addr>().map_err(|_| ProxyError::V1Syntax)?),
            IpAddr::V4(dst.parse::<Ipv4Addr>().map_err(|_| ProxyError::V1Syntax)?),
        ),
        "TCP6" => (
            IpAddr::V6(src.parse::<Ipv6Addr>().map_err(|_| ProxyError::V1Syntax)?),
            IpAddr::V6(dst.parse::<Ipv6Addr>().map_err(|_| ProxyError::V1Syntax)?),
        ),
        _ => return Err(ProxyError::V1Syntax),
    };
    let _ = dst;
    let port = |p: &str| -> Result<u16, ProxyError> {
        let ok = !p.is_empty()
            && p.len() <= 5
            && p.bytes().all(|b| b.is_ascii_digit())
            && (p == "0" || !p.starts_with('0'));
        ok.then(|| p.parse().ok())
            .flatten()
            .ok_or(ProxyError::V1Syntax)
    };
    let sport = port(sport)?;
    port(dport)?;
    Ok(Some((
        ProxyHeader {
            source: Some(SocketAddr::new(src, sport)),
        },
        len,
    )))
}

fn parse_v2(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    if buf.len() < 16 {
        return Ok(None);
    }
    let ver_cmd = buf[12];
    let fam = buf[13];
    let body_len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let len = 16 + body_len;
    if ver_cmd >> 4 != 2 || ver_cmd & 0x0f > 1 {
        return Err(ProxyError::V2Version);
    }
    if buf.len() < len {
        return Ok(None);
    }
    let body = &buf[16..len];
    if ver_cmd & 0x0f == 0 {
        // LOCAL: the balancer speaking for itself.
        return Ok(Some((ProxyHeader { source: None }, len)));
    }
    let source = match fam {
        0x11 => {
            if body.len() < 12 {
                return Err(ProxyError::V2Short);
            }
            let ip = Ipv4Addr::new(body[0], body[1], body[2], body[3]);
            let port = u16::from_be_bytes([body[8], body[9]]);
            Some(SocketAddr::new(IpAddr::V4(ip), port))
        }
        0x21 => {
            if body.len() < 36 {
                return Err(ProxyError::V2Short);
            }
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&body[..16]);
            let port = u16::from_be_bytes([body[32], body[33]]);
            Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(octets)), port))
        }
        _ => None,
    };
    Ok(Some((ProxyHeader { source }, len)))
}

/// A v2 PROXY header for TCP from `src` to `dst` (for tests and tools).
pub fn v2_header(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let mut out = V2_SIGNATURE.to_vec();
    out.push(0x21);
    match (src, dst) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            out.push(0x11);
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&s.ip().octets());
            out.extend_from_slice(&d.ip().octets());
            out.extend_from_slice(&s.port().to_be_bytes());
            out.extend_from_slice(&d.port().to_be_bytes());
        }
        (s, d) => {
            let v6 = |a: SocketAddr| match a.ip() {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            out.push(0x21);
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&v6(s).octets());
            out.extend_from_slice(&v6(d).octets());
            out.extend_from_slice(&s.port().to_be_bytes());
            out.extend_from_slice(&d.port().to_be_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn detection_waits_for_enough_bytes() {
        assert_eq!(detect(b""), Detect::NeedMore);
        assert_eq!(detect(b"P"), Detect::NeedMore);
        assert_eq!(detect(b"PROXY"), Detect::NeedMore);
        assert_eq!(detect(b"PROXY "), Detect::Present);
        assert_eq!(detect(b"POST /"), Detect::Absent);
        assert_eq!(detect(b"GET / HTTP/1.1"), Detect::Absent);
        assert_eq!(detect(b"\r\n\r\n"), Detect::NeedMore);
        assert_eq!(detect(&V2_SIGNATURE), Detect::Present);
        assert_eq!(detect(b"\r\n\r\nX"), Detect::Absent);
    }

    #[test]
    fn v1_lines_name_the_source() {
        let line = b"PROXY TCP4 192.0.2.7 10.0.0.1 56324 443\r\nGET /";
        let (h, n) = parse(line).unwrap().unwrap();
        assert_eq!(h.source, Some(addr("192.0.2.7:56324")));
        assert_eq!(&line[n..], b"GET /");
        let (h, _) = parse(b"PROXY TCP6 2001:db8::1 ::1 1 2\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.source, Some(addr("[2001:db8::1]:1")));
        let (h, n) = parse(b"PROXY UNKNOWN whatever\r\n").unwrap().unwrap();
        assert_eq!((h.source, n), (None, 24));
        assert_eq!(parse(b"PROXY TCP4 192.0.2.7 10.0.0.1 5").unwrap(), None);
    }

    #[test]
    fn malformed_v1_lines_are_refused() {
        for bad in [
            &b"PROXY TCP4 192.0.2.7 10.0.0.1 56324\r\n"[..],
            b"PROXY TCP4 2001:db8::1 10.0.0.1 1 2\r\n",
            b"PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 1.2.3.4 01 2\r\n",
            b"PROXY TCP4 1.2.3.4 1.2.3.4 65536 2\r\n",
            b"PROXY TCP4  1.2.3.4 1.2.3.4 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\n",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let long = [b"PROXY ".as_slice(), &[b'A'; 120]].concat();
        assert_eq!(parse(&long), Err(ProxyError::V1TooLong));
    }

    #[test]
    fn v2_headers_round_trip_and_skip_tlvs() {
        let h = v2_header(addr("198.51.100.9:4000"), addr("10.0.0.1:443"));
        assert_eq!(h.len(), 28);
        assert_eq!(parse(&h[..20]).unwrap(), None, "incomplete");
        let (p, n) = parse(&h).unwrap().unwrap();
        assert_eq!((p.source, n), (Some(addr("198.51.100.9:4000")), 28));
        let h6 = v2_header(addr("[2001:db8::9]:7"), addr("[::1]:443"));
        assert_eq!(
            parse(&h6).unwrap().unwrap().0.source,
            Some(addr("[2001:db8::9]:7"))
        );
        // A TLV after the addresses: counted in the length, skipped.
        let mut t = h.clone();
        t[15] += 4;
        t.extend_from_slice(&[0x04, 0x00, 0x01, 0xff, b'G']);
        let (p, n) = parse(&t).unwrap().unwrap();
        assert_eq!(
            (p.source, n, t[n]),
            (Some(addr("198.51.100.9:4000")), 32, b'G')
        );
    }

    #[test]
    fn v2_local_unspec_and_bad_versions() {
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(
            parse(&local).unwrap().unwrap(),
            (ProxyHeader { source: None }, 16)
        );
        let mut bad = local.clone();
        bad[12] = 0x11;
        assert_eq!(parse(&bad), Err(ProxyError::V2Version));
        let mut short = V2_SIGNATURE.to_vec();
        short.extend_from_slice(&[0x21, 0x11, 0, 4, 1, 2, 3, 4]);
        assert_eq!(parse(&short), Err(ProxyError::V2Short));
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Err(ProxyError::NotProxy));
    }
}

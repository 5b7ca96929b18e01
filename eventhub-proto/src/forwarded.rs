//! Who the client is behind a proxy: CIDR blocks (which peers are
//! trusted is the caller's policy; this is only the syntax) and the
//! `X-Forwarded-For` chain.
//!
//! `X-Forwarded-For: client, proxy1, proxy2` lists the hops each proxy saw,
//! each appending its own peer; only the hops appended by proxies one
//! trusts are true, so the client is the right-most hop that is not itself
//! a trusted proxy ([`client_from_chain`]). Anything to the left of that
//! hop was written by the client and is never read, so a malformed value
//! there is no error.
//!
//! Leaf: std only.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address block, `10.0.0.0/8` or `fd00::/8` (a bare address is its
/// own block: `/32` or `/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// Why a CIDR block was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("{0:?} is not an IP address or CIDR block (e.g. 10.0.0.0/8, fd00::/8)")]
    Syntax(String),
    #[error("{0:?}: the prefix length is larger than the address")]
    Prefix(String),
}

impl Cidr {
    /// Parses `ADDR` or `ADDR/PREFIX`.
    pub fn parse(s: &str) -> Result<Cidr, CidrError> {
        let t = s.trim();
        let (addr, prefix) = match t.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (t, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| CidrError::Syntax(s.to_string()))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.len() <= 3 => p
                .parse::<u8>()
                .map_err(|_| CidrError::Syntax(s.to_string()))?,
            Some(_) => return Err(CidrError::Syntax(s.to_string())),
        };
        if prefix > max {
            return Err(CidrError::Prefix(s.to_string()));
        }
        Ok(Cidr { addr, prefix })
    }

    /// Whether `ip` lies in the block; an IPv4-mapped IPv6 address
    /// (`::ffff:a.b.c.d`) is taken as the IPv4 address it maps.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = mask32(self.prefix);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = mask128(self.prefix);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

fn mask32(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

fn mask128(prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(prefix))
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it maps; others as
/// they are.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// One hop of `X-Forwarded-For`: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`
/// or `[2001:db8::1]:5678` (ports, which some proxies add, are dropped).
pub fn parse_hop(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix('[') {
        let (addr, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        return addr.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    let (addr, port) = s.rsplit_once(':')?;
    if !is_port(port) {
        return None;
    }
    addr.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

fn is_port(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 5
        && p.bytes().all(|b| b.is_ascii_digit())
        && p.parse::<u16>().is_ok()
}

/// Why no client could be read from `X-Forwarded-For`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForwardedError {
    #[error("X-Forwarded-For hop {0:?} is not an IP address")]
    BadHop(String),
}

/// The client named by the `X-Forwarded-For` header lines `values` (in the
/// order they came; several lines are one list): walking from the right,
/// the first hop for which `trusted` is false. If every hop is trusted, the
/// left-most. `Ok(None)` when there is no hop at all. A hop that is not an
/// address is an error only if it is reached before the client is.
pub fn client_from_chain<'a>(
    values: impl IntoIterator<Item = &'a str>,
    trusted: impl Fn(IpAddr) -> bool,
) -> Result<Option<IpAddr>, ForwardedError> {
    let hops: Vec<&str> = values
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .collect();
    let mut last = None;
    for hop in hops.iter().rev() {
        let ip = parse_hop(hop).ok_or_else(|| ForwardedError::BadHop(hop.to_string()))?;
        let ip = canonical(ip);
        if !trusted(ip) {
            return Ok(Some(ip));
        }
        last = Some(ip);
    }
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_contain_their_addresses_only() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains(ip("10.1.255.3")));
        assert!(!c.contains(ip("10.2.0.1")));
        assert!(c.contains(ip("::ffff:10.1.0.9")), "mapped v4");
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(!Cidr::parse("0.0.0.0/0").unwrap().contains(ip("::1")));
        let one = Cidr::parse("127.0.0.1").unwrap();
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        let v6 = Cidr::parse("fd00::/8").unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
    }

    #[test]
    fn malformed_blocks_are_refused() {
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "x",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hops_may_carry_ports() {
        assert_eq!(parse_hop(" 1.2.3.4 "), Some(ip("1.2.3.4")));
        assert_eq!(parse_hop("1.2.3.4:80"), Some(ip("1.2.3.4")));
        assert_eq!(parse_hop("2001:db8::1"), Some(ip("2001:db8::1")));
        assert_eq!(parse_hop("[2001:db8::1]:443"), Some(ip("2001:db8::1")));
        assert_eq!(parse_hop("[2001:db8::1]"), Some(ip("2001:db8::1")));
        for bad in [
            "unknown",
            "1.2.3.4:x",
            "1.2.3.4:99999",
            "[::1]x",
            "_hidden",
            "",
        ] {
            assert_eq!(parse_hop(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_hop() {
        let trusted = |a: IpAddr| Cidr::parse("10.0.0.0/8").unwrap().contains(a);
        let got = |v: &[&str]| client_from_chain(v.iter().copied(), trusted);
        assert_eq!(
            got(&["6.6.6.6, 1.2.3.4, 10.0.0.2"]),
            Ok(Some(ip("1.2.3.4")))
        );
        assert_eq!(
            got(&["6.6.6.6", "1.2.3.4"]),
            Ok(Some(ip("1.2.3.4"))),
            "two lines are one list"
        );
        assert_eq!(
            got(&["10.0.0.5, 10.0.0.2"]),
            Ok(Some(ip("10.0.0.5"))),
            "all trusted: left-most"
        );
        assert_eq!(got(&[]), Ok(None));
        assert_eq!(got(&[" , "]), Ok(None));
        assert_eq!(
            got(&["garbage, 1.2.3.4"]),
            Ok(Some(ip("1.2.3.4"))),
            "left of the client is not read"
        );
        assert_eq!(
            got(&["1.2.3.4, garbage, 10.0.0.1"]),
            Err(ForwardedError::BadHop("garbage".into()))
        );
    }
}

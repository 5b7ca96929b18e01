//! One-time tickets: a short-lived stand-in for a principal's secret.
//!
//! A browser cannot set headers on a WebSocket handshake, so a page that
//! authenticated with a token would have to put that token in the URL,
//! where it lands in proxies' and servers' logs and the browser's history.
//! Instead the page trades its token (in a header, over `POST
//! /v1/tickets`) for a ticket and opens its socket with `?ticket=`. A
//! ticket is good once, for a few seconds, from the address that asked for
//! it, and stands for the principal that asked: a logged URL is worth
//! nothing by the time anyone reads it.
//!
//! Tickets are held as SHA-256 digests (like the configured secrets), at
//! most [`MAX_OUTSTANDING`] at a time; expired ones are swept as new ones
//! are issued. Time is passed in.
//!
//! Layer: hub. Imports only std, sha2 (through [`super::auth::digest`])
//! and the OS random source.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::auth::digest;

/// Tickets issued and not yet used or expired, at most.
pub const MAX_OUTSTANDING: usize = 16_384;

/// Why a ticket was not issued or not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    #[error("unknown ticket: it was never issued, was used already, or expired")]
    Unknown,
    #[error("this ticket was issued to another address")]
    OtherAddress,
    #[error("too many tickets outstanding; retry shortly")]
    Full,
}

struct Issued {
    principal: usize,
    client: IpAddr,
    expires: Instant,
}

/// The tickets outstanding.
pub struct Tickets {
    ttl: Duration,
    issued: Mutex<HashMap<[u8; 32], Issued>>,
}

impl Tickets {
    pub fn new(ttl: Duration) -> Tickets {
        Tickets {
            ttl,
            issued: Mutex::new(HashMap::new()),
        }
    }

    /// How long a ticket is good for.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new ticket for `principal`, to be used from `client` before
    /// `now + ttl`: 32 random bytes, hex.
    pub fn issue(
        &self,
        principal: usize,
        client: IpAddr,
        now: Instant,
    ) -> Result<String, TicketError> {
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw).expect("the OS random source works");
        let ticket: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let mut issued = self.lock();
        if issued.len() >= MAX_OUTSTANDING {
            issued.retain(|_, t| t.expires > now);
            if issued.len() >= MAX_OUTSTANDING {
                return Err(TicketError::Full);
            }
        }
        issued.insert(
            digest(&ticket),
            Issued {
                principal,
                client,
                expires: now + self.ttl,
            },
        );
        Ok(ticket)
    }

    /// The principal `ticket` stands for, if it is outstanding, unexpired
    /// and presented from the address it was issued to. Used either way:
    /// a ticket presented from another address is spent too, so a stolen
    /// one cannot be tried and then still work for its owner's attacker.
    pub fn redeem(&self, ticket: &str, client: IpAddr, now: Instant) -> Result<usize, TicketError> {
        let found = self.lock().remove(&digest(ticket));
        match found {
            Some(t) if t.expires <= now => Err(TicketError::Unknown),
            Some(t) if t.client != client => Err(TicketError::OtherAddress),
            Some(t) => Ok(t.principal),
            None => Err(TicketError::Unknown),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Issued>> {
        self.issued.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const THERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 7));

    #[test]
    fn a_ticket_stands_for_its_principal_once() {
        let t = Tickets::new(Duration::from_secs(30));
        let now = Instant::now();
        let ticket = t.issue(3, HERE, now).unwrap();
        assert_eq!(ticket.len(), 64);
        assert_eq!(t.redeem(&ticket, HERE, now), Ok(3));
        assert_eq!(t.redeem(&ticket, HERE, now), Err(TicketError::Unknown));
    }

    #[test]
    fn an_expired_ticket_is_unknown() {
        let t = Tickets::new(Duration::from_secs(30));
        let now = Instant::now();
        let ticket = t.issue(0, HERE, now).unwrap();
        let later = now + Duration::from_secs(30);
        assert_eq!(t.redeem(&ticket, HERE, later), Err(TicketError::Unknown));
    }

    #[test]
    fn a_ticket_from_another_address_is_refused_and_spent() {
        let t = Tickets::new(Duration::from_secs(30));
        let now = Instant::now();
        let ticket = t.issue(0, HERE, now).unwrap();
        assert_eq!(
            t.redeem(&ticket, THERE, now),
            Err(TicketError::OtherAddress)
        );
        assert_eq!(t.redeem(&ticket, HERE, now), Err(TicketError::Unknown));
    }

    #[test]
    fn a_made_up_ticket_is_unknown() {
        let t = Tickets::new(Duration::from_secs(30));
        assert_eq!(
            t.redeem("00", HERE, Instant::now()),
            Err(TicketError::Unknown)
        );
    }

    #[test]
    fn expired_tickets_make_room_for_new_ones() {
        let t = Tickets::new(Duration::from_secs(1));
        let now = Instant::now();
        for _ in 0..MAX_OUTSTANDING {
            t.issue(0, HERE, now).unwrap();
        }
        assert_eq!(t.issue(0, HERE, now), Err(TicketError::Full));
        let later = now + Duration::from_secs(2);
        assert!(t.issue(0, HERE, later).is_ok());
    }
}

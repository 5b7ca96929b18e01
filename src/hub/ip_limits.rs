//! The per-IP rules of the subscription endpoints: one active connection
//! per address (by default) and a token bucket of connection attempts.
//!
//! Both are cold-path state shared by every core behind one mutex: they
//! are touched once per connection attempt and once per close, never per
//! event. An admitted connection holds an [`IpSlot`]; dropping it (when the
//! connection's handler is dropped) gives the place back. Without a
//! per-address limit there is no place to hold, and the slot is empty: every
//! subscriber carries one, so it is a single pointer.
//!
//! Beside them, for every route that needs credentials, a stricter bucket
//! of failed authentications per address ([`AuthFailures`]): each unknown
//! token or key takes one, and an address with none left is refused (429)
//! before its credentials are looked at, right or wrong, until it refills.
//!
//! Layer: hub, a leaf (std only).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Why a connection attempt was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpRefusal {
    /// Too many attempts: retry after this many seconds.
    RateLimited { retry_after_s: u64 },
    /// The address already has its allowed connections, which are at
    /// these places (core, slot): worth probing, they may be dead.
    Conflict { max: u32, holders: Vec<Place> },
}

/// Where an admitted connection lives once open: its core and slot.
pub type Place = (u32, u32);

#[derive(Debug)]
struct Entry {
    active: u32,
    tokens: f64,
    refilled: Instant,
    /// The places of the open connections holding this address's places.
    holders: Vec<Place>,
}

/// The rules and the table.
#[derive(Debug)]
pub struct IpLimits {
    /// Connections per address; 0 = unlimited.
    max_active: u32,
    /// Attempts per second per address; 0 = unlimited.
    rate: f64,
    burst: f64,
    table: Mutex<HashMap<IpAddr, Entry>>,
}

/// A place held by an admitted connection (none when places are unlimited).
#[derive(Debug)]
pub struct IpSlot {
    held: Option<Box<Held>>,
}

#[derive(Debug)]
struct Held {
    limits: Arc<IpLimits>,
    ip: IpAddr,
    place: Option<Place>,
}

impl IpSlot {
    /// Records where the connection lives, once open, so that a conflicting
    /// attempt from the same address can have it probed.
    pub fn place(&mut self, core: usize, slot: usize) {
        let Some(held) = self.held.as_deref_mut() else {
            return;
        };
        let place = (core as u32, slot as u32);
        held.place = Some(place);
        let mut table = held.limits.table.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = table.get_mut(&held.ip) {
            e.holders.push(place);
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut table = self.limits.table.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = table.get_mut(&self.ip) {
            e.active = e.active.saturating_sub(1);
            if let Some(i) = self
                .place
                .and_then(|p| e.holders.iter().position(|h| *h == p))
            {
                e.holders.swap_remove(i);
            }
        }
    }
}

impl IpLimits {
    pub fn new(max_active: u32, rate: f64, burst: u32) -> IpLimits {
        IpLimits {
            max_active,
            rate,
            burst: f64::from(burst.max(1)),
            table: Mutex::new(HashMap::new()),
        }
    }

    /// Counts an attempt from `ip` and admits it or says why not.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<IpSlot, IpRefusal> {
        self.admit_at(ip, Instant::now())
    }

    fn admit_at(self: &Arc<Self>, ip: IpAddr, now: Instant) -> Result<IpSlot, IpRefusal> {
        if self.max_active == 0 && self.rate <= 0.0 {
            return Ok(IpSlot { held: None });
        }
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if table.len() > 100_000 {
            // Forget addresses with nothing open and a full bucket.
            let (rate, burst) = (self.rate, self.burst);
            table.retain(|_, e| {
                e.active > 0
                    || e.tokens + now.duration_since(e.refilled).as_secs_f64() * rate < burst
            });
        }
        let e = table.entry(ip).or_insert(Entry {
            active: 0,
            tokens: self.burst,
            refilled: now,
            holders: Vec::new(),
        });
        if self.rate > 0.0 {
            let elapsed = now.duration_since(e.refilled).as_secs_f64();
            e.tokens = (e.tokens + elapsed * self.rate).min(self.burst);
            e.refilled = now;
            if e.tokens < 1.0 {
                let wait = ((1.0 - e.tokens) / self.rate).ceil().max(1.0);
                return Err(IpRefusal::RateLimited {
                    retry_after_s: wait as u64,
                });
            }
            e.tokens -= 1.0;
        }
        if self.max_active == 0 {
            return Ok(IpSlot { held: None });
        }
        if e.active >= self.max_active {
            return Err(IpRefusal::Conflict {
                max: self.max_active,
                holders: e.holders.clone(),
            });
        }
        e.active += 1;
        Ok(IpSlot {
            held: Some(Box::new(Held {
                limits: self.clone(),
                ip,
                place: None,
            })),
        })
    }
}

/// The failed-authentication bucket of every address.
#[derive(Debug)]
pub struct AuthFailures {
    rate: f64,
    burst: f64,
    /// Tokens left and when they were last refilled.
    table: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl AuthFailures {
    /// `burst` failures allowed at once, `rate` forgiven per second.
    pub fn new(burst: u32, rate: f64) -> AuthFailures {
        AuthFailures {
            rate,
            burst: f64::from(burst.max(1)),
            table: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `ip` may try to authenticate now: `Err(retry_after_s)` when
    /// its bucket is empty.
    pub fn check(&self, ip: IpAddr) -> Result<(), u64> {
        self.check_at(ip, Instant::now())
    }

    /// Counts a failed authentication of `ip`.
    pub fn failed(&self, ip: IpAddr) {
        self.failed_at(ip, Instant::now())
    }

    fn refill(&self, entry: &mut (f64, Instant), now: Instant) {
        let elapsed = now.duration_since(entry.1).as_secs_f64();
        entry.0 = (entry.0 + elapsed * self.rate).min(self.burst);
        entry.1 = now;
    }

    fn check_at(&self, ip: IpAddr, now: Instant) -> Result<(), u64> {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = table.get_mut(&ip) else {
            return Ok(());
        };
        self.refill(entry, now);
        if entry.0 >= 1.0 {
            return Ok(());
        }
        Err(((1.0 - entry.0) / self.rate).ceil().max(1.0) as u64)
    }

    fn failed_at(&self, ip: IpAddr, now: Instant) {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if table.len() > 100_000 {
            // Forget addresses whose bucket has refilled.
            let (rate, burst) = (self.rate, self.burst);
            table.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < burst
            });
        }
        let entry = table.entry(ip).or_insert((self.burst, now));
        self.refill(entry, now);
        entry.0 = (entry.0 - 1.0).max(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, n])
    }

    #[test]
    fn second_connection_from_one_address_conflicts_until_the_first_closes() {
        let l = Arc::new(IpLimits::new(1, 0.0, 1));
        let mut first = l.admit(ip(1)).unwrap();
        let conflict = |holders| IpRefusal::Conflict { max: 1, holders };
        assert_eq!(l.admit(ip(1)).unwrap_err(), conflict(vec![]));
        first.place(1, 7);
        assert_eq!(
            l.admit(ip(1)).unwrap_err(),
            conflict(vec![(1, 7)]),
            "the refusal says where the holder lives, to probe it"
        );
        assert!(l.admit(ip(2)).is_ok());
        drop(first);
        let again = l.admit(ip(1)).unwrap();
        drop(again);
        assert_eq!(l.table.lock().unwrap()[&ip(1)].holders, vec![]);
    }

    #[test]
    fn burst_over_the_rate_is_refused_with_a_retry_time_then_refills() {
        let l = Arc::new(IpLimits::new(0, 2.0, 3));
        let t0 = Instant::now();
        for _ in 0..3 {
            l.admit_at(ip(1), t0).unwrap();
        }
        assert_eq!(
            l.admit_at(ip(1), t0).unwrap_err(),
            IpRefusal::RateLimited { retry_after_s: 1 }
        );
        assert!(l.admit_at(ip(1), t0 + Duration::from_millis(600)).is_ok());
    }

    #[test]
    fn failed_authentications_empty_the_bucket_of_their_address_only() {
        let f = AuthFailures::new(3, 0.5);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(f.check_at(ip(1), t0), Ok(()));
            f.failed_at(ip(1), t0);
        }
        assert_eq!(f.check_at(ip(1), t0), Err(2));
        assert_eq!(f.check_at(ip(2), t0), Ok(()), "another address");
        assert_eq!(f.check_at(ip(1), t0 + Duration::from_millis(1500)), Err(1));
        assert_eq!(f.check_at(ip(1), t0 + Duration::from_secs(2)), Ok(()));
    }

    #[test]
    fn zero_means_unlimited() {
        let l = Arc::new(IpLimits::new(0, 0.0, 1));
        let slots: Vec<_> = (0..100).map(|_| l.admit(ip(1)).unwrap()).collect();
        assert_eq!(slots.len(), 100);
        assert!(
            slots.iter().all(|s| s.held.is_none()),
            "nothing to give back"
        );
        assert!(
            l.table.lock().unwrap().is_empty(),
            "no per-address state kept"
        );
    }
}

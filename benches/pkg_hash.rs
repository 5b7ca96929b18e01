//! ahash and foldhash against std's SipHash for the hub's two hash maps
//! (benches/PACKAGES.md has the figures and the verdict).
//!
//! - `ip`: the per-IP table of `src/hub/ip_limits.rs`,
//!   `HashMap<IpAddr, Entry>` (the entry type is copied here, as it is
//!   private): 10,000 addresses, half IPv4 and half IPv6; `lookup` is
//!   `entry(ip).or_insert(..)` on an address already there (a reconnect),
//!   `insert` fills an empty table with 10,000 new addresses.
//! - `filter`: a dimension of `src/hub/filter_index.rs`,
//!   `HashMap<String, (Row, usize)>` (the value type copied): 200 filter
//!   values of 5 to 40 bytes (names, images, actions, `key` and
//!   `key=value` labels); `lookup` is the 16 `get(&str)` calls of one
//!   event's keys (half hits), `insert` interns 200 values into an empty
//!   dimension.
//!
//! Every map is built with a randomly keyed `BuildHasher`: std's
//! `RandomState`, `ahash::RandomState::new()`, `foldhash::fast::RandomState`.
//!
//! `cargo bench --bench pkg_hash`. For instruction counts:
//! `PKG_VARIANT=ahash PKG_INPUT=filter_lookup PKG_N=100000 valgrind
//! --tool=callgrind target/release/deps/pkg_hash-*` (variants `sip`,
//! `ahash`, `foldhash`; inputs `ip_lookup`, `ip_insert`, `filter_lookup`,
//! `filter_insert`; `PKG_N=0` for the setup to subtract).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};

/// A copy of `ip_limits::Entry`.
#[allow(dead_code)]
struct Entry {
    active: u32,
    tokens: f64,
    refilled: Instant,
}

/// A copy of `filter_index::Row`.
#[derive(Default)]
#[allow(dead_code)]
struct Row(Vec<u64>);

const IPS: usize = 10_000;

fn addresses() -> Vec<IpAddr> {
    let mut rng = fastrand::Rng::with_seed(7);
    (0..IPS)
        .map(|i| {
            if i % 2 == 0 {
                IpAddr::V4(Ipv4Addr::from(rng.u32(..)))
            } else {
                // Addresses of a few /48s, as clients behind ISPs use.
                let net = [0x2001_0db8u32, 0x2a02_0598, 0x2600_1f18][rng.usize(..3)];
                let bits = (u128::from(net) << 96) | u128::from(rng.u64(..));
                IpAddr::V6(Ipv6Addr::from(bits))
            }
        })
        .collect()
}

/// 200 filter values as subscribers write them, and one event's 16 keys.
fn filter_values() -> (Vec<String>, Vec<String>) {
    let mut values = Vec::new();
    for i in 0..40 {
        values.push(format!("test{i}"));
        values.push(format!("localhost/busybox:{i}.36"));
        values.push(format!("sh_hyper_instancetype=s{i}"));
        values.push(format!("com.docker.compose.service=web{i}"));
        values.push(format!("tier{i}"));
    }
    let keys = [
        "test4",
        "web",
        "localhost/busybox:4.36",
        "localhost/busybox",
        "start",
        "sh_hyper_instancetype",
        "sh_hyper_instancetype=s4",
        "com.docker.compose.service",
        "com.docker.compose.service=web4",
        "com.docker.compose.project=shop",
        "tier4",
        "tier=frontend",
        "maintainer",
        "maintainer=ops@example.com",
        "org.opencontainers.image.version",
        "org.opencontainers.image.version=1.36.1",
    ];
    (values, keys.iter().map(|k| k.to_string()).collect())
}

fn entry() -> Entry {
    Entry {
        active: 0,
        tokens: 10.0,
        refilled: Instant::now(),
    }
}

struct Inputs {
    ips: Vec<IpAddr>,
    values: Vec<String>,
    keys: Vec<String>,
}

/// The four operations, for one hasher.
struct Maps<S> {
    ip: HashMap<IpAddr, Entry, S>,
    filter: HashMap<String, (Row, usize), S>,
    make: fn() -> S,
}

impl<S: BuildHasher> Maps<S> {
    fn new(make: fn() -> S, inp: &Inputs) -> Maps<S> {
        let mut ip = HashMap::with_hasher(make());
        for &a in &inp.ips {
            ip.insert(a, entry());
        }
        let mut filter = HashMap::with_hasher(make());
        for v in &inp.values {
            filter.insert(v.clone(), (Row::default(), 1));
        }
        Maps { ip, filter, make }
    }

    /// One operation; `i` picks the address.
    fn op(&mut self, name: &str, inp: &Inputs, i: usize) -> usize {
        match name {
            "ip_lookup" => {
                let e = self.ip.entry(inp.ips[i % IPS]).or_insert_with(entry);
                e.active += 1;
                e.active as usize
            }
            "ip_insert" => {
                let mut m = HashMap::with_hasher((self.make)());
                for &a in &inp.ips {
                    m.insert(a, entry());
                }
                m.len()
            }
            "filter_lookup" => inp
                .keys
                .iter()
                .filter(|k| self.filter.contains_key(k.as_str()))
                .count(),
            "filter_insert" => {
                let mut m = HashMap::with_hasher((self.make)());
                for v in &inp.values {
                    let (_, count) = m.entry(v.clone()).or_insert_with(<(Row, usize)>::default);
                    *count += 1;
                }
                m.len()
            }
            _ => panic!("PKG_INPUT: ip_lookup, ip_insert, filter_lookup or filter_insert"),
        }
    }
}

const OPS: [&str; 4] = ["ip_lookup", "ip_insert", "filter_lookup", "filter_insert"];

fn sip() -> std::hash::RandomState {
    std::hash::RandomState::new()
}
fn ahash() -> ahash::RandomState {
    ahash::RandomState::new()
}
fn foldhash() -> foldhash::fast::RandomState {
    foldhash::fast::RandomState::default()
}

fn bench(c: &mut Criterion, inp: &Inputs) {
    let mut s = Maps::new(sip, inp);
    let mut a = Maps::new(ahash, inp);
    let mut f = Maps::new(foldhash, inp);
    for op in OPS {
        let mut g = c.benchmark_group(format!("hash_{op}"));
        // Interleaved: the three hashers of one operation, then the next.
        let mut i = 0;
        g.bench_function(BenchmarkId::from_parameter("sip"), |b| {
            b.iter(|| {
                i += 7919;
                s.op(black_box(op), inp, i)
            })
        });
        g.bench_function(BenchmarkId::from_parameter("ahash"), |b| {
            b.iter(|| {
                i += 7919;
                a.op(black_box(op), inp, i)
            })
        });
        g.bench_function(BenchmarkId::from_parameter("foldhash"), |b| {
            b.iter(|| {
                i += 7919;
                f.op(black_box(op), inp, i)
            })
        });
        g.finish();
    }
}

fn main() {
    let (values, keys) = filter_values();
    let inp = Inputs {
        ips: addresses(),
        values,
        keys,
    };
    if let Ok(variant) = std::env::var("PKG_VARIANT") {
        let op = std::env::var("PKG_INPUT").expect("PKG_INPUT names an operation");
        let n: usize = std::env::var("PKG_N").map_or(1000, |n| n.parse().unwrap());
        let mut total = 0;
        macro_rules! drive {
            ($make:expr) => {{
                let mut m = Maps::new($make, &inp);
                for i in 0..n {
                    total += m.op(black_box(&op), &inp, i * 7919);
                }
            }};
        }
        match variant.as_str() {
            "sip" => drive!(sip),
            "ahash" => drive!(ahash),
            "foldhash" => drive!(foldhash),
            _ => panic!("PKG_VARIANT: sip, ahash or foldhash"),
        }
        println!("{variant} {op} x{n}: {total}");
        return;
    }
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .configure_from_args();
    bench(&mut c, &inp);
    c.final_summary();
}

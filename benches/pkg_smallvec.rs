//! smallvec against Vec for the small lists of the per-event path
//! (benches/PACKAGES.md has the figures and the verdict).
//!
//! - `keys`: the key lists `FilterIndex::for_each_match`
//!   (`src/hub/filter_index.rs`) builds per event per core: `labels`,
//!   `prefixes`, `container_keys` and the image and action lists. The
//!   building is copied here (only the lists, then each key is touched) as
//!   `Vec` (today) and `SmallVec` (labels 16, container keys 4, image 2,
//!   action 1), for three container events: Docker Engine's own (1 label),
//!   the monitor document's (5 labels) and a Compose service's (8 labels,
//!   16 keys). `keys/real_match` is the whole real `for_each_match` over
//!   1,000 subscribers with 40 container filters, for scale.
//! - `seqs`: the `Vec<u64>` of `Sequencer::publish` for one event,
//!   `Vec::with_capacity(1)` against `SmallVec<[u64; 1]>`;
//!   `seqs/real_publish` is the real `publish` of one event and `flush`.
//! - `prepared`: the `Vec<Prepared>` of a one-event publish
//!   (`src/api/publish.rs`), collected into `Vec` and `SmallVec<[_; 1]>`,
//!   `Prepared::new` included.
//!
//! `cargo bench --bench pkg_smallvec`. For instruction counts:
//! `PKG_VARIANT=smallvec PKG_INPUT=keys_compose PKG_N=100000 valgrind
//! --tool=callgrind target/release/deps/pkg_smallvec-*` (variants `vec`,
//! `smallvec`; inputs `keys_docker`, `keys_monitor`, `keys_compose`,
//! `seqs`, `prepared`; `PKG_N=0` for the setup to subtract).

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion};
use eventhub::hub::channels::PDFM;
use eventhub::hub::docker::FilterIndex;
use eventhub::hub::docker::{Action, ContainerEvent, DockerFilter, DockerKeys};
use eventhub::hub::event::Prepared;
use eventhub::hub::sequencer::Sequencer;
use smallvec::SmallVec;

// The hub's allocator (src/main.rs), as allocation is the question here.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EVENTS_DIR: &str = "/work/shared/data/events";

fn docker_keys(json: &str) -> DockerKeys {
    ContainerEvent::from_json(json).unwrap().keys()
}

fn events() -> Vec<(&'static str, DockerKeys)> {
    let file = |n: &str| std::fs::read_to_string(format!("{EVENTS_DIR}/{n}.json")).unwrap();
    let mut compose = docker_keys(&file("docker-engine-start"));
    compose.labels.clear();
    for (k, v) in [
        ("com.docker.compose.project", "shop"),
        ("com.docker.compose.service", "web"),
        ("com.docker.compose.container-number", "1"),
        ("com.docker.compose.oneoff", "False"),
        ("com.docker.compose.version", "2.24.6"),
        ("org.opencontainers.image.version", "1.36.1"),
        ("maintainer", "ops@example.com"),
        ("tier", "frontend"),
    ] {
        compose.labels.push(k.to_string());
        compose.labels.push(format!("{k}={v}"));
    }
    vec![
        ("keys_docker", docker_keys(&file("docker-engine-start"))),
        (
            "keys_monitor",
            docker_keys(&file("container-start-monitor-doc")),
        ),
        ("keys_compose", compose),
    ]
}

/// Container filter values as the index holds them (names and id
/// prefixes), for the prefix scan.
fn container_values() -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for i in 0..20 {
        m.insert(format!("web{i}"), 1);
        m.insert(format!("{:012x}", 0x7c6f_e9b5_49d9u64 + i * 0x1111), 1);
    }
    m.insert("7c6fe9b5".into(), 1); // a prefix of the event's id
    m
}

/// The lists `for_each_match` builds, as `Vec` (copied from it).
fn lists_vec(values: &HashMap<String, usize>, k: &DockerKeys) -> usize {
    let action = k.action.map(Action::as_str).unwrap_or("");
    let labels: Vec<&str> = k.labels.iter().map(String::as_str).collect();
    let prefixes: Vec<&str> = values
        .keys()
        .filter(|v| !v.is_empty() && k.id.starts_with(v.as_str()))
        .map(String::as_str)
        .collect();
    let mut container_keys = vec![k.name.as_str()];
    container_keys.extend(prefixes);
    let per_dim: [Vec<&str>; 4] = [
        container_keys,
        vec![k.image.as_str(), k.image_untagged.as_str()],
        vec![action],
        labels,
    ];
    per_dim.iter().flatten().map(|s| black_box(s.len())).sum()
}

/// The same lists as `SmallVec`.
fn lists_smallvec(values: &HashMap<String, usize>, k: &DockerKeys) -> usize {
    let action = k.action.map(Action::as_str).unwrap_or("");
    let labels: SmallVec<[&str; 16]> = k.labels.iter().map(String::as_str).collect();
    let mut container_keys: SmallVec<[&str; 4]> = smallvec::smallvec![k.name.as_str()];
    container_keys.extend(
        values
            .keys()
            .filter(|v| !v.is_empty() && k.id.starts_with(v.as_str()))
            .map(String::as_str),
    );
    let image: SmallVec<[&str; 2]> =
        smallvec::smallvec![k.image.as_str(), k.image_untagged.as_str()];
    let action: SmallVec<[&str; 1]> = smallvec::smallvec![action];
    let per_dim: [&[&str]; 4] = [&container_keys, &image, &action, &labels];
    per_dim
        .iter()
        .copied()
        .flatten()
        .map(|s| black_box(s.len()))
        .sum()
}

// As `Sequencer::publish` builds it (capacity, then a push per event).
#[allow(clippy::vec_init_then_push)]
fn seqs_vec(seq: u64) -> usize {
    let mut v = Vec::with_capacity(1);
    v.push(black_box(seq));
    black_box(&v).len()
}

fn seqs_smallvec(seq: u64) -> usize {
    let mut v: SmallVec<[u64; 1]> = SmallVec::with_capacity(1);
    v.push(black_box(seq));
    black_box(&v).len()
}

fn prepare(body: &str) -> Prepared {
    Prepared::new(PDFM, "pdfm", "VM_STATE_CHANGED", body)
}

fn prepared_vec(bodies: &[&str]) -> usize {
    let v: Vec<Prepared> = bodies.iter().map(|b| prepare(b)).collect();
    black_box(&v).len()
}

fn prepared_smallvec(bodies: &[&str]) -> usize {
    let v: SmallVec<[Prepared; 1]> = bodies.iter().map(|b| prepare(b)).collect();
    black_box(&v).len()
}

const BODY: &str = r#"{"previous_state":"suspended","current_state":"resuming","vm_id":"fb83295e-0ccb-46b1-8205-b03997f82b00"}"#;

fn run(
    variant: &str,
    input: &str,
    values: &HashMap<String, usize>,
    evs: &[(&str, DockerKeys)],
) -> usize {
    let small = match variant {
        "vec" => false,
        "smallvec" => true,
        _ => panic!("PKG_VARIANT: vec or smallvec"),
    };
    match input {
        "seqs" if small => seqs_smallvec(7),
        "seqs" => seqs_vec(7),
        "prepared" if small => prepared_smallvec(&[BODY]),
        "prepared" => prepared_vec(&[BODY]),
        _ => {
            let (_, k) = evs.iter().find(|(n, _)| *n == input).expect("PKG_INPUT");
            if small {
                lists_smallvec(values, k)
            } else {
                lists_vec(values, k)
            }
        }
    }
}

fn real_index() -> FilterIndex {
    let mut ix = FilterIndex::default();
    for slot in 0..1000 {
        let f = match slot % 5 {
            0 => format!(r#"{{"container":["web{}"]}}"#, slot % 40),
            1 => r#"{"image":["localhost/busybox"]}"#.to_string(),
            2 => r#"{"event":["start"],"label":["tier=frontend"]}"#.to_string(),
            3 => r#"{"label":["sh_hyper_instancetype=s4"]}"#.to_string(),
            _ => "{}".to_string(),
        };
        ix.add(slot, &DockerFilter::parse(&f).unwrap());
    }
    ix
}

fn bench(c: &mut Criterion) {
    let (values, evs) = (container_values(), events());
    let mut g = c.benchmark_group("keys");
    let mut ix = real_index();
    for (name, k) in &evs {
        // Interleaved: both variants of one event, then the next.
        for variant in ["vec", "smallvec"] {
            g.bench_function(BenchmarkId::new(variant, name), |b| {
                b.iter(|| run(variant, black_box(name), &values, &evs))
            });
        }
        g.bench_function(BenchmarkId::new("real_match", name), |b| {
            b.iter(|| {
                let mut n = 0;
                ix.for_each_match(black_box(k), |s| n += s);
                n
            })
        });
    }
    g.finish();
    for input in ["seqs", "prepared"] {
        let mut g = c.benchmark_group(input);
        for variant in ["vec", "smallvec"] {
            g.bench_function(variant, |b| {
                b.iter(|| run(variant, black_box(input), &values, &evs))
            });
        }
        if input == "seqs" {
            let mailbox = std::sync::Arc::new(eventhub::hub::mailbox::Mailbox::new(1));
            let rx = [mailbox.take_receiver(0)];
            let s = Sequencer::new(1024, usize::MAX, mailbox);
            let p = [prepare(BODY)];
            g.bench_function("real_publish", |b| {
                b.iter(|| {
                    let seqs = s.publish(black_box(&p));
                    s.flush();
                    rx[0].drain().count() + seqs.len()
                })
            });
        }
        g.finish();
    }
}

fn main() {
    if let Ok(variant) = std::env::var("PKG_VARIANT") {
        let input = std::env::var("PKG_INPUT").expect("PKG_INPUT names an input");
        let n: usize = std::env::var("PKG_N").map_or(1000, |n| n.parse().unwrap());
        let (values, evs) = (container_values(), events());
        let mut total = 0;
        for _ in 0..n {
            total += run(&variant, black_box(&input), &values, &evs);
        }
        println!("{variant} {input} x{n}: {total}");
        return;
    }
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .configure_from_args();
    bench(&mut c);
    c.final_summary();
}

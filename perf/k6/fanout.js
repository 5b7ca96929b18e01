// Fan-out load test for eventhub: SUBSCRIBERS WebSocket subscribers on one
// channel, one publisher on the publisher WebSocket, and a run that FAILS on
// any lost, duplicated, reordered or malformed delivery.
//
//   k6 run -e HUB=127.0.0.1:8080 -e TOKEN=... -e SUBSCRIBERS=200 perf/k6/fanout.js
//
// The hub must let many subscribers connect from one address: run it with a
// config that has
//
//   [hub]
//   max_connections_per_ip = 0
//   connect_rate_per_ip = 0.0
//
// (or spread the VUs over source addresses with
// `k6 run --local-ips=127.0.1.1-127.0.1.250 ...`, one address per VU, which
// covers max_connections_per_ip = 1 for up to 250 subscribers). TOKEN must
// be allowed to subscribe to and publish on CHANNEL; if it is also an admin
// the publisher waits (via /metrics) until every subscriber is connected,
// otherwise it waits SETTLE_S seconds. Use a hub with no other publishers:
// `seq` is hub-wide, so another producer's events show up here as gaps.
//
// Parameters (-e NAME=value):
//   HUB          host:port of the hub                  (127.0.0.1:8080)
//   TOKEN        bearer token
//   SUBSCRIBERS  subscriber VUs, one connection each   (50)
//   EVENTS       events the publisher sends            (200)
//   RATE         events per second                     (100)
//   SIZE         bytes of padding in each body         (256)
//   CHANNEL      channel to publish and subscribe to   (pdfm)
//   SETTLE_S     wait before publishing when /metrics is not readable (2)
//   TIMEOUT_S    how long a subscriber waits for all events
//                (default: 30 + connect wait + EVENTS/RATE)
// Negative checks (prove the loss thresholds can fail; the run must exit
// non-zero, k6's code 99 for crossed thresholds):
//   EXPECT_EXTRA=N  raise the expected delivery count by N: the `deliveries`
//                   threshold cannot be met
//   INJECT_GAP=1    the publisher also publishes one event, halfway, on a
//                   channel the subscribers do not get; it takes a hub seq,
//                   so every subscriber sees a gap: `gaps` and `checks` fail
//
// What is checked, for every received message: valid JSON; the first
// message is the confirmation on `global`; every later one is on CHANNEL and
// its `seq` is exactly the previous one plus 1 (a jump adds the missing seqs
// to `gaps`, a repeat or step back adds to `duplicates`). The verdicts are
// tallied per connection and reported when it ends, as checks and counter
// samples (one per connection, not per message, so that k6 keeps up at high
// fan-out); the first failures are logged. The publisher sends with
// ack=true and checks every reply is an ack. Metrics: publish_to_receive_ms
// (Date.now() minus body.t; k6 and the publisher share a clock), deliveries,
// gaps, duplicates, published. Thresholds: gaps == 0, duplicates == 0,
// checks rate == 1, deliveries >= SUBSCRIBERS * EVENTS, published >= EVENTS.

import http from 'k6/http';
import { check, sleep } from 'k6';
import { Counter, Trend } from 'k6/metrics';
import { WebSocket } from 'k6/experimental/websockets';
import { setInterval, clearInterval, setTimeout, clearTimeout } from 'k6/timers';
import { intEnv, HUB, TOKEN } from './lib.js';

const SUBSCRIBERS = Math.max(1, Math.floor(intEnv('SUBSCRIBERS', 50)));
const EVENTS = Math.max(1, Math.floor(intEnv('EVENTS', 200)));
const RATE = Math.max(0.001, intEnv('RATE', 100));
const SIZE = Math.floor(intEnv('SIZE', 256));
const CHANNEL = __ENV.CHANNEL || 'pdfm';
const SETTLE_S = intEnv('SETTLE_S', 2);
const EXPECT_EXTRA = Math.floor(intEnv('EXPECT_EXTRA', 0));
const INJECT_GAP = intEnv('INJECT_GAP', 0) > 0;
// Time the publisher may spend waiting for the subscribers to connect.
const CONNECT_WAIT_S = 10 + Math.ceil(SUBSCRIBERS / 100);
const PUBLISH_S = Math.ceil(EVENTS / RATE);
const TIMEOUT_S = intEnv('TIMEOUT_S', 30 + CONNECT_WAIT_S + PUBLISH_S);
const EXPECTED = SUBSCRIBERS * EVENTS + EXPECT_EXTRA;
const GAP_CHANNEL = CHANNEL === 'orchestrator' ? 'pdfm' : 'orchestrator';

const HEADERS = { Authorization: `Bearer ${TOKEN}` };
const CONFIRMATION = 'WebSocket connection established subscribed to global by default';

const publishToReceive = new Trend('publish_to_receive_ms', true);
const deliveries = new Counter('deliveries');
const gaps = new Counter('gaps');
const duplicates = new Counter('duplicates');
const published = new Counter('published');

export const options = {
  scenarios: {
    subscribers: {
      executor: 'per-vu-iterations',
      exec: 'subscriber',
      vus: SUBSCRIBERS,
      iterations: 1,
      maxDuration: `${TIMEOUT_S + 30}s`,
    },
    publisher: {
      executor: 'per-vu-iterations',
      exec: 'publisher',
      vus: 1,
      iterations: 1,
      maxDuration: `${TIMEOUT_S + 30}s`,
    },
  },
  thresholds: {
    gaps: ['count==0'],
    duplicates: ['count==0'],
    checks: ['rate==1'],
    deliveries: [`count>=${EXPECTED}`],
    published: [`count>=${EVENTS}`],
  },
};

export function subscriber() {
  const url = `ws://${HUB}/v1/ws/subscribe?event_types=${CHANNEL}`;
  const ws = new WebSocket(url, null, { headers: HEADERS });
  // Per-message verdicts are tallied here and reported once per connection
  // (checks and counters), so that k6's metric pipeline, not the hub, does
  // not become the bottleneck at high fan-out; the first few failures of
  // each kind are logged.
  const bad = { json: 0, confirmation: 0, channel: 0, seq: 0 };
  let logged = 0;
  let confirmed = false;
  let lastSeq = null;
  let received = 0;
  let missing = 0;
  let repeated = 0;
  let errored = false;
  let closed = false;

  function fail(kind, what) {
    bad[kind] += 1;
    if (logged < 5) {
      logged += 1;
      console.error(`subscriber VU ${__VU}: ${what}`);
    }
  }

  function report() {
    check(null, {
      'every message is valid JSON': () => bad.json === 0,
      'first message is the confirmation on global': () => confirmed && bad.confirmation === 0,
      'every event is on CHANNEL': () => bad.channel === 0,
      'every seq is the previous seq + 1': () => bad.seq === 0,
      'subscriber received every event': () => received >= EVENTS,
      'subscriber connection without error': () => !errored,
    });
    // Added even when zero, so the thresholds always have samples.
    deliveries.add(received);
    gaps.add(missing);
    duplicates.add(repeated);
  }

  const timer = setTimeout(() => {
    if (received < EVENTS) console.error(`subscriber VU ${__VU}: timed out after ${received} of ${EVENTS} events`);
    finish();
  }, TIMEOUT_S * 1000);

  function finish() {
    if (closed) return;
    closed = true;
    clearTimeout(timer);
    report();
    ws.close();
  }

  ws.onmessage = (e) => {
    const now = Date.now();
    let msg = null;
    try {
      msg = JSON.parse(e.data);
    } catch (_) {
      msg = null;
    }
    if (msg === null || typeof msg !== 'object') return fail('json', `not a JSON object: ${e.data}`);
    if (!confirmed) {
      confirmed = true;
      if (msg.event_type !== 'global' || msg.message !== CONFIRMATION) {
        fail('confirmation', `first message is not the confirmation: ${e.data}`);
      }
      return;
    }
    if (msg.event_type !== CHANNEL) return fail('channel', `not on ${CHANNEL}: ${e.data}`);
    const seq = msg.seq;
    if (!Number.isInteger(seq)) return fail('seq', `no integer seq: ${e.data}`);
    if (lastSeq !== null && seq !== lastSeq + 1) {
      fail('seq', `seq ${seq} after ${lastSeq}`);
      if (seq <= lastSeq) {
        repeated += 1;
        return;
      }
      missing += seq - lastSeq - 1;
    }
    lastSeq = seq;
    received += 1;
    if (msg.body && typeof msg.body.t === 'number') publishToReceive.add(now - msg.body.t);
    if (received >= EVENTS) finish();
  };
  ws.onerror = (e) => {
    errored = true;
    console.error(`subscriber VU ${__VU}: ${e.error}`);
  };
  ws.onclose = () => {
    if (!closed) {
      // The hub closed first (slow consumer, shutdown, ...) or the
      // connection failed: the missing events fail the thresholds.
      if (received < EVENTS) console.error(`subscriber VU ${__VU}: connection closed after ${received} of ${EVENTS} events`);
      finish();
    }
  };
}

// Waits until SUBSCRIBERS subscriber connections are open, reading the
// hub's /metrics (admin tokens); falls back to sleeping SETTLE_S seconds.
function waitForSubscribers() {
  const deadline = Date.now() + CONNECT_WAIT_S * 1000;
  for (;;) {
    const res = http.get(`http://${HUB}/metrics`, { headers: HEADERS, tags: { name: 'metrics' } });
    if (res.status !== 200) {
      sleep(SETTLE_S);
      return;
    }
    let open = 0;
    for (const line of String(res.body).split('\n')) {
      if (line.startsWith('eventhub_connections{') && line.includes('endpoint="subscribe"')) {
        open += Number(line.slice(line.lastIndexOf(' ') + 1)) || 0;
      }
    }
    if (open >= SUBSCRIBERS) return;
    if (Date.now() > deadline) {
      console.warn(`publisher: only ${open} of ${SUBSCRIBERS} subscribers connected; publishing anyway`);
      return;
    }
    sleep(0.1);
  }
}

export function publisher() {
  published.add(0);
  waitForSubscribers();
  const pad = 'x'.repeat(SIZE);
  const ws = new WebSocket(`ws://${HUB}/v1/ws/publish?ack=true`, null, { headers: HEADERS });
  const total = EVENTS + (INJECT_GAP ? 1 : 0);
  let sent = 0;
  let sentTotal = 0;
  let acked = 0;
  let ticker = null;
  let closed = false;
  const timer = setTimeout(() => {
    check(acked, { 'publisher got an ack for every event': (a) => a >= total });
    finish();
  }, TIMEOUT_S * 1000);

  function finish() {
    if (closed) return;
    closed = true;
    if (ticker !== null) clearInterval(ticker);
    clearTimeout(timer);
    ws.close();
  }

  function send(channel, n) {
    ws.send(JSON.stringify({ event_type: channel, message: 'k6', body: { t: Date.now(), n: n, pad: pad } }));
    sentTotal += 1;
  }

  ws.onopen = () => {
    const start = Date.now();
    // A tick every 10 ms at most; each tick sends whatever is due, so high
    // rates do not depend on timer precision.
    const tickMs = Math.max(1, Math.min(10, Math.floor(1000 / RATE)));
    const tick = () => {
      const due = Math.min(EVENTS, Math.floor(((Date.now() - start) * RATE) / 1000) + 1);
      while (sent < due) {
        sent += 1;
        send(CHANNEL, sent);
        published.add(1);
        if (INJECT_GAP && sent === Math.ceil(EVENTS / 2)) send(GAP_CHANNEL, 0);
      }
      if (sent >= EVENTS && ticker !== null) {
        clearInterval(ticker);
        ticker = null;
      }
    };
    tick();
    if (sent < EVENTS) ticker = setInterval(tick, tickMs);
  };
  ws.onmessage = (e) => {
    let msg = null;
    try {
      msg = JSON.parse(e.data);
    } catch (_) {
      msg = null;
    }
    const ok = check(msg, {
      'publish acknowledged': (m) => m !== null && m.event_type === 'system' && m.message === 'published',
    });
    if (!ok) {
      console.error(`publisher: unexpected reply ${e.data}`);
      return;
    }
    acked += (msg.body && msg.body.events ? msg.body.events.length : 0);
    if (acked >= total && sentTotal >= total) finish();
  };
  ws.onerror = (e) => {
    check(e, { 'publisher connection without error': () => false });
    console.error(`publisher: ${e.error}`);
  };
  ws.onclose = () => {
    if (!closed) {
      closed = true;
      if (ticker !== null) clearInterval(ticker);
      clearTimeout(timer);
    }
  };
}

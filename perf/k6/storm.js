// Connection storm against eventhub: VUS virtual users share ITERATIONS
// iterations; each one opens a subscriber WebSocket, waits for the hub's
// confirmation message, and closes. The run FAILS if any connection does
// not get its confirmation.
//
//   k6 run -e HUB=127.0.0.1:8080 -e TOKEN=... -e VUS=100 -e ITERATIONS=10000 perf/k6/storm.js
//
// Every iteration is a new subscription from the same address, so the hub's
// per-IP rules must be off: run it with a config that has
//
//   [hub]
//   max_connections_per_ip = 0
//   connect_rate_per_ip = 0.0
//
// (`--local-ips=127.0.1.1-127.0.1.250` spreads the VUs over source addresses,
// which is enough for max_connections_per_ip = 1 but not for the default
// connect_rate_per_ip, since each VU reconnects as fast as it can).
//
// Parameters (-e NAME=value):
//   HUB         host:port of the hub                      (127.0.0.1:8080)
//   TOKEN       bearer token allowed to subscribe to CHANNEL
//   VUS         concurrent virtual users                  (50)
//   ITERATIONS  connections in all, shared by the VUs     (1000)
//   CHANNEL     channel in event_types                    (pdfm)
//   TIMEOUT_S   wait for one confirmation                 (10)
//
// Checks: every connection opens without error and its first message is the
// confirmation on `global` within TIMEOUT_S (threshold: checks rate == 1).
// Metric: connect_to_confirmation_ms, from opening the TCP connection to
// receiving the confirmation (handshake included).

import { check } from 'k6';
import { Trend } from 'k6/metrics';
import { WebSocket } from 'k6/experimental/websockets';
import { setTimeout, clearTimeout } from 'k6/timers';

function intEnv(name, def) {
  const v = __ENV[name];
  if (v === undefined || v === '') return def;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a non-negative number, got ${v}`);
  return n;
}

const HUB = __ENV.HUB || '127.0.0.1:8080';
const TOKEN = __ENV.TOKEN || '';
const VUS = Math.max(1, Math.floor(intEnv('VUS', 50)));
const ITERATIONS = Math.max(VUS, Math.floor(intEnv('ITERATIONS', 1000)));
const CHANNEL = __ENV.CHANNEL || 'pdfm';
const TIMEOUT_S = intEnv('TIMEOUT_S', 10);

const CONFIRMATION = 'WebSocket connection established subscribed to global by default';
const connectToConfirmation = new Trend('connect_to_confirmation_ms', true);

export const options = {
  scenarios: {
    storm: {
      executor: 'shared-iterations',
      vus: VUS,
      iterations: ITERATIONS,
      maxDuration: `${Math.max(60, Math.ceil(ITERATIONS / VUS) * (TIMEOUT_S + 1))}s`,
    },
  },
  thresholds: {
    checks: ['rate==1'],
  },
};

export default function () {
  const url = `ws://${HUB}/v1/ws/subscribe?event_types=${CHANNEL}`;
  const start = Date.now();
  const ws = new WebSocket(url, null, { headers: { Authorization: `Bearer ${TOKEN}` } });
  let done = false;

  function finish(ok, why) {
    if (done) return;
    done = true;
    clearTimeout(timer);
    if (!check(ok, { 'connection got its confirmation': (v) => v === true })) {
      console.error(`VU ${__VU}: ${why}`);
    }
    ws.close();
  }

  const timer = setTimeout(() => finish(false, `no confirmation within ${TIMEOUT_S} s`), TIMEOUT_S * 1000);

  ws.onmessage = (e) => {
    const elapsed = Date.now() - start;
    let msg = null;
    try {
      msg = JSON.parse(e.data);
    } catch (_) {
      msg = null;
    }
    const ok = msg !== null && msg.event_type === 'global' && msg.message === CONFIRMATION;
    if (ok) connectToConfirmation.add(elapsed);
    finish(ok, `first message was not the confirmation: ${e.data}`);
  };
  ws.onerror = (e) => finish(false, `error: ${e.error}`);
  ws.onclose = () => finish(false, 'closed before the confirmation');
}

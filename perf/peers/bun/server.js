'use strict';
// Broadcast server on Bun.serve (uWebSockets underneath) written the way a
// Bun user would: subscribers join the topic "events", and a publisher's
// text message goes to them with server.publish(), which serializes the frame
// once and fans it out inside uWebSockets' topic tree. Same contract as the
// Rust peers and the Node one (perf/peers/node/server.js):
//   bun server.js [--listen HOST:PORT] [--threads N]   (--threads is ignored:
//   Bun runs its event loop on one thread)
// A path starting with /v1/ws/publish is a publisher whose text messages are
// sent verbatim, as text, to every subscriber (any other path).
//
// Slow subscribers: uWebSockets buffers what the kernel does not take up to
// backpressureLimit bytes per connection; with closeOnBackpressureLimit a
// subscriber whose buffer would pass 4 MiB is closed (the other peers'
// 4 MiB rule), instead of the message being dropped for it silently.
//
// The binary: perf/peers/bun/node_modules/@oven/bun-linux-x64/bin/bun after
// `npm install --prefix perf/peers/bun`.

const NAME = 'bun';
const TOPIC = 'events';
const PUBLISH_PREFIX = '/v1/ws/publish';
const MAX_BUFFERED = 4 * 1024 * 1024;

const { parseArgs } = require('../args.js');

const { host, port } = parseArgs(process.argv.slice(2), 'bun server.js');

let server;
try {
  server = Bun.serve({
    hostname: host,
    port,
    fetch(req, srv) {
      const path = new URL(req.url).pathname;
      const publisher = path.startsWith(PUBLISH_PREFIX);
      if (srv.upgrade(req, { data: { publisher } })) return undefined;
      return new Response('WebSocket upgrade required\n', { status: 426 });
    },
    websocket: {
      perMessageDeflate: false,
      maxPayloadLength: 64 * 1024 * 1024,
      backpressureLimit: MAX_BUFFERED,
      closeOnBackpressureLimit: true,
      // The other peers never time out a quiet connection (C's idle
      // subscribers stay for the whole run); uWebSockets would after 120 s.
      idleTimeout: 0,
      sendPings: false,
      open(ws) {
        if (!ws.data.publisher) ws.subscribe(TOPIC);
      },
      message(ws, message) {
        if (!ws.data.publisher || typeof message !== 'string') return;
        server.publish(TOPIC, message);
      },
    },
  });
} catch (err) {
  console.error(err.message);
  process.exit(1);
}

const h = server.hostname.includes(':') ? `[${server.hostname}]` : server.hostname;
process.stdout.write(`peer ${NAME} listening on ws://${h}:${server.port}\n`);

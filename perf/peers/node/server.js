'use strict';
// Broadcast server written the way a `ws` user would (the README's broadcast
// example, with a Set of subscribers instead of wss.clients so publishers are
// not broadcast to). Same contract as the Rust peers:
//   node server.js [--listen HOST:PORT] [--threads N] [--per-message-deflate]
//   (--threads is ignored: Node runs the event loop on one thread)
// A path starting with /v1/ws/publish is a publisher whose text messages are
// sent verbatim, as text, to every subscriber (any other path).
//
// Slow subscribers: ws never drops data on its own; it buffers without bound.
// Before each send we check `bufferedAmount` (bytes queued in ws and in the
// socket's writable buffer) and terminate() a subscriber above 4 MiB.

// --per-message-deflate: ws's permessage-deflate (RFC 7692), as a ws user
// turns it on, with the threshold at eventhub's compression.min_bytes (256;
// ws's own default is 1024) and zlib level 2 like eventhub's
// compression.level. Every send compresses for its own connection (ws
// compresses per socket, through its zlib pool). serverNoContextTakeover and
// clientNoContextTakeover are true, so every message is compressed on its own
// as eventhub's are (and as eventhub-load, which inflates each message with a
// fresh state, can read); ws's default (false: the server keeps its window
// from one message to the next, which compresses similar events further) is
// not what runs here.
const PER_MESSAGE_DEFLATE = {
  threshold: 256,
  serverNoContextTakeover: true,
  clientNoContextTakeover: true,
  zlibDeflateOptions: { level: 2 },
};

const { WebSocketServer } = require('ws');

const NAME = 'node-ws';
const PUBLISH_PREFIX = '/v1/ws/publish';
const MAX_BUFFERED = 4 * 1024 * 1024;

const { parseArgs } = require('../args.js');

const { host, port, perMessageDeflate } = parseArgs(process.argv.slice(2), 'node server.js');
const subscribers = new Set();

const wss = new WebSocketServer({
  host,
  port,
  perMessageDeflate: perMessageDeflate ? PER_MESSAGE_DEFLATE : false,
  clientTracking: false,
  maxPayload: 64 * 1024 * 1024,
});

wss.on('connection', (ws, req) => {
  ws.on('error', () => {}); // a client that vanishes must not crash us
  if (req.url.startsWith(PUBLISH_PREFIX)) {
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      for (const sub of subscribers) {
        if (sub.bufferedAmount > MAX_BUFFERED) {
          subscribers.delete(sub);
          sub.terminate();
          continue;
        }
        sub.send(data, { binary: false });
      }
    });
  } else {
    subscribers.add(ws);
    ws.on('close', () => subscribers.delete(ws));
  }
});

wss.on('listening', () => {
  const a = wss.address();
  const h = a.family === 'IPv6' ? `[${a.address}]` : a.address;
  const pmd = perMessageDeflate ? ' (permessage-deflate)' : '';
  process.stdout.write(`peer ${NAME} listening on ws://${h}:${a.port}${pmd}\n`);
});

wss.on('error', (err) => {
  console.error(err.message);
  process.exit(1);
});

'use strict';
// The command line the JavaScript peers share (perf/peers/node, perf/peers/bun):
//   [--listen HOST:PORT] [--threads N] [--per-message-deflate]
//   (--threads is ignored: Node and Bun run one event-loop thread;
//   --per-message-deflate is read by the Node peer only). Bad arguments exit
//   with status 2.

function parseArgs(argv, usage) {
  let listen = '127.0.0.1:9100';
  let perMessageDeflate = false;
  for (let i = 0; i < argv.length; i++) {
    let [key, value] = argv[i].split(/=(.*)/s);
    const next = () => (value !== undefined ? value : argv[++i]);
    if (key === '--listen') listen = next();
    else if (key === '--threads') next();
    else if (key === '--per-message-deflate') perMessageDeflate = true;
    else if (key === '-h' || key === '--help') {
      console.log(`usage: ${usage} [--listen HOST:PORT] [--threads N] [--per-message-deflate]`);
      process.exit(0);
    } else {
      console.error(`unknown argument ${JSON.stringify(argv[i])}`);
      process.exit(2);
    }
  }
  const m = /^\[?([^\]]*)\]?:(\d+)$/.exec(listen || '');
  if (!m) {
    console.error('--listen needs HOST:PORT');
    process.exit(2);
  }
  return { host: m[1], port: Number(m[2]), perMessageDeflate };
}

module.exports = { parseArgs };

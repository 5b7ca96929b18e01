// What the k6 scripts share: reading -e parameters and the hub's address.

// A non-negative number from `-e NAME=value`, or `def` when unset.
export function intEnv(name, def) {
  const v = __ENV[name];
  if (v === undefined || v === '') return def;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a non-negative number, got ${v}`);
  return n;
}

export const HUB = __ENV.HUB || '127.0.0.1:8080';
export const TOKEN = __ENV.TOKEN || '';

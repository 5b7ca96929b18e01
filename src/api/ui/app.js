// eventhub /ui: the live tail, the hub panel and the publish form.
//
// One ES2020 module, served by the hub beside index.html and app.css; the
// page's Content-Security-Policy allows no other script, no inline code and
// no eval, so everything the page does is here. Being a module, nothing it
// declares lands on `window`.
//
// Flow: the sign-in form takes a token or an API key once and exchanges it
// for a ticket (`POST /v1/tickets` with `Authorization: Bearer` or
// `X-Api-Key`: the hub keeps the two apart); each WebSocket is opened with
// a fresh ticket (`?ticket=`), one use, 30 s, so the secret itself never
// goes into a URL (or a proxy's or the hub's log). The tail
// uses the hub's own filters (`event_types` on /v1/ws/subscribe, Docker's
// `filters` on /events/ws): the browser filters nothing. The panel reads
// `GET /v1/stats` (the counters of /metrics as JSON) once a second.

// ---------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------

/** Rows the tail keeps; older ones are dropped, so a fast stream cannot
 *  grow the DOM (and the tab) without bound. */
const MAX_ROWS = 1000;
/** Docker-event keys remembered for deduplication after a resume. */
const MAX_SEEN_KEYS = 4096;
/** How often the hub panel is refreshed. */
const STATS_INTERVAL_MS = 1000;
/** Points per chart (one a second: a minute). */
const CHART_POINTS = 60;
/** Reconnect backoff: first delay, cap. */
const BACKOFF_FIRST_MS = 200;
const BACKOFF_MAX_MS = 5000;
/** The confirmation message's text, as the Events Hub guide has it. */
const CONFIRMATION = "WebSocket connection established subscribed to global by default";
/** Channels that carry only the hub's own messages: never publishable. */
const HUB_ONLY_CHANNELS = new Set(["system", "health"]);

// ---------------------------------------------------------------------------
// Credentials
// ---------------------------------------------------------------------------

// The secret (a token or an API key) lives in this module's scope only:
// not in sessionStorage or localStorage (readable by any script of the
// origin and, for session restore, written to disk by some browsers), not in a cookie (sent on every
// request, and a CSRF surface), not in the DOM (the input is cleared once
// used). The price is one more sign-in after a reload, which for a
// long-lived secret is the right trade.
/** {kind: "token" | "api_key", secret}, or null when signed out. */
let credential = null;
/** The principal the hub says the credential is: {name, subscribe, publish, admin}. */
let principal = null;

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

const $ = (id) => document.getElementById(id);

/** An element with a class and text; no innerHTML anywhere, so nothing an
 *  event carries can become markup. */
function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

function setCount(id, n) {
  const e = $(id);
  e.dataset.value = String(n);
  e.textContent = n.toLocaleString("en-US");
}

const numberFormat = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });
const fmt = (n) => (n === null || n === undefined || Number.isNaN(n) ? "–" : numberFormat.format(n));

function fmtBytes(n) {
  if (n === null || n === undefined) return "–";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** The text to show for a hub error answer: its JSON `message` (every
 *  error body is `{"error": code, "message": text}`), else the status. */
function hubErrorText(status, body, fallback) {
  if (body && typeof body.message === "string") return body.message;
  return `${fallback || "request failed"} (HTTP ${status})`;
}

/** A request to the hub with the credential; answers {status, body,
 *  headers} with the body parsed as JSON when it is JSON. Throws only when
 *  the hub cannot be reached. */
async function hubFetch(path, { method = "GET", body, auth = credential } = {}) {
  const headers = {};
  if (auth && auth.kind === "api_key") headers["X-Api-Key"] = auth.secret;
  else if (auth) headers.Authorization = `Bearer ${auth.secret}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  // no-store: answers with counters or tickets must never be cached;
  // omit: no cookies (the hub uses none, and none should ride along).
  const resp = await fetch(path, { method, headers, body, cache: "no-store", credentials: "omit" });
  const text = await resp.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch (_) {
    parsed = null;
  }
  return { status: resp.status, body: parsed, headers: resp.headers };
}

/** A one-time ticket for the next WebSocket, or null (the reason shown).
 *  A 401 means the credential stopped being valid (a config reload): back to
 *  the sign-in form with the hub's words. */
async function newTicket() {
  let r;
  try {
    r = await hubFetch("/v1/tickets", { method: "POST" });
  } catch (e) {
    setTailStatus(`cannot reach the hub: ${e.message}`, true);
    return null;
  }
  if (r.status === 201 && r.body && r.body.ticket) return r.body.ticket;
  if (r.status === 401) {
    signOut(hubErrorText(r.status, r.body, "sign-in refused"));
    return null;
  }
  setTailStatus(`ticket refused: ${hubErrorText(r.status, r.body)}`, true);
  return null;
}

/** ws: or wss: to this page's own host (the ticket is bound to this IP). */
function wsUrl(pathAndQuery) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${pathAndQuery}`;
}

// ---------------------------------------------------------------------------
// JSON as sent
// ---------------------------------------------------------------------------
//
// JSON.parse turns every number into a double: a Docker `timeNano`
// (19 digits) or a producer's large integer would be shown rounded. The
// page shows bodies from the frame's own text instead: the hub keeps a
// body verbatim, and so does the page. The frames are valid JSON (they
// were parsed first), so these scanners only need to find where values end.

const WS = " \t\r\n";

function skipWs(text, i) {
  while (i < text.length && WS.includes(text[i])) i++;
  return i;
}

/** Where the JSON value starting at `i` ends. */
function endOfValue(text, i) {
  const c = text[i];
  if (c === '"') {
    for (i += 1; i < text.length; i++) {
      if (text[i] === "\\") i++;
      else if (text[i] === '"') return i + 1;
    }
    return text.length;
  }
  if (c === "{" || c === "[") {
    let depth = 0;
    for (; i < text.length; i++) {
      const d = text[i];
      if (d === '"') i = endOfValue(text, i) - 1;
      else if (d === "{" || d === "[") depth++;
      else if ((d === "}" || d === "]") && --depth === 0) return i + 1;
    }
    return text.length;
  }
  const start = i;
  while (i < text.length && !",}]".includes(text[i]) && !WS.includes(text[i])) i++;
  return i > start ? i : start + 1;
}

/** A JSON object's members, each as its raw text; null if not an object. */
function rawMembers(text) {
  const out = {};
  let i = skipWs(text, 0);
  if (text[i] !== "{") return null;
  i = skipWs(text, i + 1);
  while (i < text.length && text[i] !== "}") {
    const keyEnd = endOfValue(text, i);
    const key = JSON.parse(text.slice(i, keyEnd));
    i = skipWs(text, keyEnd);
    if (text[i] !== ":") return null;
    i = skipWs(text, i + 1);
    const end = endOfValue(text, i);
    out[key] = text.slice(i, end);
    i = skipWs(text, end);
    if (text[i] === ",") i = skipWs(text, i + 1);
  }
  return out;
}

/** The raw text without whitespace outside strings (one line). */
function compactJson(raw) {
  let out = "";
  for (let i = 0; i < raw.length; ) {
    if (raw[i] === '"') {
      const end = endOfValue(raw, i);
      out += raw.slice(i, end);
      i = end;
    } else {
      if (!WS.includes(raw[i])) out += raw[i];
      i++;
    }
  }
  return out;
}

/** The raw text indented by two spaces, numbers and strings untouched. */
function prettyJson(raw) {
  const text = compactJson(raw);
  let out = "";
  let depth = 0;
  const newline = () => `\n${"  ".repeat(depth)}`;
  for (let i = 0; i < text.length; ) {
    const c = text[i];
    if (c === '"') {
      const end = endOfValue(text, i);
      out += text.slice(i, end);
      i = end;
      continue;
    }
    if ((c === "{" || c === "[") && (text[i + 1] === "}" || text[i + 1] === "]")) {
      out += c + text[i + 1]; // {} and [] stay as they are
      i += 2;
      continue;
    }
    if (c === "{" || c === "[") {
      depth++;
      out += c + newline();
    } else if (c === "}" || c === "]") {
      depth--;
      out += newline() + c;
    } else if (c === ",") {
      out += `,${newline()}`;
    } else if (c === ":") {
      out += ": ";
    } else {
      out += c;
    }
    i++;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Sign-in
// ---------------------------------------------------------------------------

async function onSignIn(ev) {
  ev.preventDefault();
  const input = $("token");
  const kind = document.querySelector('input[name="kind"]:checked').value;
  const candidate = { kind, secret: input.value.trim() };
  const err = $("signin-error");
  err.hidden = true;
  if (!candidate.secret) return;
  $("signin-btn").disabled = true;
  let r;
  try {
    r = await hubFetch("/v1/tickets", { method: "POST", auth: candidate });
  } catch (e) {
    showSignInError(0, "unreachable", `cannot reach the hub: ${e.message}`);
    return;
  } finally {
    $("signin-btn").disabled = false;
  }
  if (r.status !== 201 || !r.body || !r.body.principal) {
    let text = hubErrorText(r.status, r.body, "sign-in refused");
    const retry = r.headers.get("Retry-After");
    if (r.status === 429 && retry && !text.includes("retry")) text += ` (retry in ${retry} s)`;
    showSignInError(r.status, r.body && r.body.error, text);
    return;
  }
  // Accepted: the secret moves from the DOM into memory.
  input.value = "";
  credential = candidate;
  principal = r.body.principal;
  startApp(r.body.ticket);
}

function showSignInError(status, code, text) {
  const err = $("signin-error");
  err.textContent = text;
  err.dataset.status = String(status);
  err.dataset.error = code || "";
  err.hidden = false;
}

function signOut(reason) {
  stopTail();
  stopStats();
  credential = null;
  principal = null;
  $("app").hidden = true;
  $("signin").hidden = false;
  $("signout").hidden = true;
  $("who").hidden = true;
  $("tail-body").replaceChildren();
  $("cores-body").replaceChildren();
  coreRows.clear();
  setConnState("signed-out", "signed out");
  if (reason) showSignInError(401, "signed_out", reason);
  $("token").focus();
}

function startApp(firstTicket) {
  $("signin").hidden = true;
  $("app").hidden = false;
  $("signout").hidden = false;
  const who = $("who");
  who.textContent = `${principal.name}${principal.admin ? " (admin)" : ""}`;
  who.hidden = false;
  $("row-limit").textContent = String(MAX_ROWS);
  buildChannelBoxes();
  buildPublishForm();
  startStats();
  resetTail();
  // The sign-in's ticket opens the first socket, so no ticket is wasted.
  tail.spareTicket = firstTicket || null;
  setMode("channels");
}

// ---------------------------------------------------------------------------
// Live tail: connection
// ---------------------------------------------------------------------------

const tail = {
  /** "channels" (/v1/ws/subscribe) or "docker" (/events/ws). */
  mode: "channels",
  ws: null,
  /** Bumped for every new connection: a stale socket's callbacks, or a
   *  ticket request that outlived its connection, see another number and
   *  do nothing. */
  generation: 0,
  /** The hub run the seqs belong to (from the confirmation). */
  epoch: null,
  /** Newest seq shown (or the point a subscription started after): what
   *  a reconnect resumes after. null: nothing to resume from yet. */
  lastSeq: null,
  /** Docker mode: newest event time seen (seconds), and the keys of what
   *  was shown, since Docker's shape carries no seq to resume after. */
  lastDockerTime: null,
  seenKeys: new Set(),
  seenOrder: [],
  /** The Docker filter in force (an object in Docker's JSON shape). */
  dockerFilter: null,
  spareTicket: null,
  retryTimer: null,
  backoffMs: BACKOFF_FIRST_MS,
  /** Whether the current socket got its first message (the connection
   *  really works: only then is the backoff reset). */
  established: false,
  everConnected: false,
  /** The last socket closed without the page asking: the next one that
   *  works is a reconnect. */
  dropped: false,
  reconnects: 0,
  received: 0,
  duplicates: 0,
  /** Rows waiting for the next animation frame (or for Resume). */
  pending: [],
  paused: false,
  frameRequested: false,
};

/** A fresh tail for a new sign-in: nothing to resume, nothing counted. */
function resetTail() {
  Object.assign(tail, {
    mode: "channels", epoch: null, lastSeq: null, lastDockerTime: null, dockerFilter: null,
    spareTicket: null, backoffMs: BACKOFF_FIRST_MS, everConnected: false, dropped: false,
    reconnects: 0, received: 0, duplicates: 0, pending: [], paused: false,
  });
  tail.seenKeys.clear();
  tail.seenOrder = [];
  for (const id of ["reconnects", "received-count", "duplicates", "shown-count"]) setCount(id, 0);
  $("pause").disabled = false;
  $("resume").disabled = true;
  $("buffered").hidden = true;
  $("docker-filter-json").textContent = "";
}

function setConnState(state, text) {
  const s = $("conn-state");
  s.dataset.state = state;
  s.textContent = text;
}

function setTailStatus(text, bad) {
  const s = $("tail-status");
  s.textContent = text;
  s.className = bad ? "small error" : "small muted";
}

/** Closes the current socket without a reconnect. */
function stopTail() {
  tail.generation += 1;
  clearTimeout(tail.retryTimer);
  tail.retryTimer = null;
  if (tail.ws) {
    tail.ws.onclose = tail.ws.onmessage = tail.ws.onerror = tail.ws.onopen = null;
    tail.ws.close(1000, "closed by the page");
    tail.ws = null;
  }
}

/** The path and query of the socket to open (without the ticket). */
function tailPath() {
  const q = new URLSearchParams();
  if (tail.mode === "docker") {
    if (tail.dockerFilter && Object.keys(tail.dockerFilter).length > 0) {
      q.set("filters", JSON.stringify(tail.dockerFilter));
    }
    // Docker's events carry no seq: resume from the newest time seen
    // (inclusive, whole seconds) and drop what was shown already by key.
    if (tail.lastDockerTime !== null) q.set("since", String(tail.lastDockerTime));
    return `/events/ws?${q}`;
  }
  const channels = selectedChannels();
  q.set("event_types", channels.length ? channels.join(",") : "global");
  if (tail.lastSeq !== null) {
    q.set("since", String(tail.lastSeq));
    if (tail.epoch) q.set("epoch", tail.epoch);
  }
  return `/v1/ws/subscribe?${q}`;
}

/** Opens (or re-opens) the tail's socket with a fresh ticket. */
async function connect() {
  stopTail();
  const gen = tail.generation;
  setConnState(tail.everConnected ? "reconnecting" : "connecting", tail.everConnected ? "reconnecting…" : "connecting…");
  let ticket = tail.spareTicket;
  tail.spareTicket = null;
  if (!ticket) ticket = await newTicket();
  if (gen !== tail.generation || credential === null) return; // superseded or signed out
  if (!ticket) {
    scheduleReconnect(gen);
    return;
  }
  const path = tailPath();
  const sep = path.includes("?") ? "&" : "?";
  const ws = new WebSocket(wsUrl(`${path}${sep}ticket=${encodeURIComponent(ticket)}`));
  tail.ws = ws;
  tail.established = false;
  const conn = $("conn-state");
  conn.dataset.endpoint = tail.mode === "docker" ? "events" : "subscribe";
  delete conn.dataset.subscriptions; // until this socket's confirmation
  ws.onopen = () => {
    if (gen !== tail.generation) return;
    // What the browser and the hub agreed on (permessage-deflate or "").
    conn.dataset.extensions = ws.extensions;
    setConnState("open", ws.extensions ? `live · ${ws.extensions.split(";")[0]}` : "live");
  };
  ws.onmessage = (e) => {
    if (gen !== tail.generation) return;
    if (!tail.established) {
      tail.established = true;
      tail.backoffMs = BACKOFF_FIRST_MS;
      // Counted: resumes after a drop (not a new choice of channels).
      if (tail.dropped) {
        tail.reconnects += 1;
        setCount("reconnects", tail.reconnects);
        tail.dropped = false;
      }
      tail.everConnected = true;
    }
    let msg;
    try {
      msg = JSON.parse(e.data);
    } catch (_) {
      return; // the hub sends JSON only; anything else is not ours to show
    }
    if (tail.mode === "docker") onDockerEvent(msg, e.data);
    else onHubMessage(msg, e.data);
  };
  ws.onclose = (e) => {
    if (gen !== tail.generation) return;
    tail.ws = null;
    tail.dropped = true;
    // 1006: the handshake was refused (the browser hides its status) or
    // the connection dropped; 1013: slow consumer; 1001: restart or age.
    const why = e.reason ? `${e.code} ${e.reason}` : `code ${e.code}`;
    setTailStatus(`connection closed (${why}); resuming`, e.code !== 1000 && e.code !== 1001);
    scheduleReconnect(gen);
  };
  // An error is always followed by close, which reconnects.
  ws.onerror = () => {};
}

function scheduleReconnect(gen) {
  if (gen !== tail.generation || credential === null) return;
  setConnState("reconnecting", "reconnecting…");
  const delay = tail.backoffMs;
  // Doubling with jitter: a restarted hub is not hit by every page at once.
  tail.backoffMs = Math.min(BACKOFF_MAX_MS, tail.backoffMs * 2);
  tail.retryTimer = setTimeout(() => {
    if (gen === tail.generation) connect();
  }, delay * (0.75 + Math.random() / 2));
}

// ---------------------------------------------------------------------------
// Live tail: messages
// ---------------------------------------------------------------------------

/** One message from /v1/ws/subscribe. */
function onHubMessage(msg, text) {
  if (typeof msg.seq === "number") {
    onEvent(msg, text);
    return;
  }
  if (msg.event_type === "global" && msg.message === CONFIRMATION && msg.body) {
    onConfirmation(msg.body);
  } else if (msg.event_type === "system" && msg.message === "replay-gap" && msg.body) {
    onReplayGap(msg.body);
  } else if (msg.event_type === "system" && msg.message === "error" && msg.body) {
    setTailStatus(`hub: ${msg.body.message || msg.body.error}`, true);
  }
  // Pongs, client-id and subscription answers: nothing to show.
}

function onConfirmation(body) {
  // A new epoch with a resume point is announced by the hub itself (a
  // replay-gap with "restarted"); the page only keeps the new one.
  if (body.epoch) {
    tail.epoch = body.epoch;
    $("conn-state").dataset.epoch = body.epoch;
  }
  // The hub says where the subscription starts (the seq its events start
  // after): a drop before the first event still resumes without a gap.
  if (tail.lastSeq === null && typeof body.last_seq === "number") tail.lastSeq = body.last_seq;
  const subs = Array.isArray(body.subscriptions) ? body.subscriptions : [];
  const conn = $("conn-state");
  // For scripts and tests: what this subscription is, as the hub says.
  conn.dataset.subscriptions = [...subs].sort().join(",");
  conn.dataset.confirmations = String(Number(conn.dataset.confirmations || 0) + 1);
  setTailStatus(`subscribed: ${subs.join(", ")}`, false);
}

/** The hub no longer holds some events, or it restarted: a visible band,
 *  and (after a restart) seqs start again, so the duplicate check does. */
function onReplayGap(body) {
  let text;
  if (body.restarted) {
    text = `hub restarted (new epoch): seqs start again${body.missed_from !== null && body.missed_from !== undefined ? `; events ${body.missed_from}–${body.missed_to} of the new run are no longer held` : ""}`;
    tail.lastSeq = 0;
  } else {
    text = `replay gap: events ${body.missed_from}–${body.missed_to} are no longer in the hub's ring`;
  }
  const band = { kind: "band", text, from: body.missed_from, to: body.missed_to, restarted: !!body.restarted };
  enqueue(band);
}

/** An event: shown once, in seq order. The hub sends each seq at most
 *  once per connection and resumes after `since`; the check below keeps a
 *  resume that overlaps (or a hub that misbehaves) from doubling rows. */
function onEvent(msg, text) {
  tail.received += 1;
  if (tail.lastSeq !== null && msg.seq <= tail.lastSeq) {
    tail.duplicates += 1;
    setCount("duplicates", tail.duplicates);
    return;
  }
  tail.lastSeq = msg.seq;
  $("conn-state").dataset.lastSeq = String(msg.seq);
  enqueue({
    kind: "event",
    seq: msg.seq,
    time: msg.timestamp,
    channel: msg.event_type,
    message: msg.message,
    // The body as the producer sent it (the hub keeps it verbatim).
    body: msg.body === undefined ? null : (rawMembers(text) || {}).body || JSON.stringify(msg.body),
  });
}

/** One message from /events/ws (Docker's shape). */
function onDockerEvent(msg, text) {
  if (msg.event_type === "system" && msg.body && msg.body.error) {
    setTailStatus(`hub: ${msg.body.message || msg.body.error}`, true);
    return;
  }
  if (!msg.Action) return;
  tail.received += 1;
  // timeNano as its text: as a double, two events in one microsecond
  // could not be told apart.
  const members = rawMembers(text) || {};
  const key = `${msg.id}|${msg.Action}|${members.timeNano || members.time}`;
  if (tail.seenKeys.has(key)) {
    tail.duplicates += 1;
    setCount("duplicates", tail.duplicates);
    return;
  }
  tail.seenKeys.add(key);
  tail.seenOrder.push(key);
  if (tail.seenOrder.length > MAX_SEEN_KEYS) tail.seenKeys.delete(tail.seenOrder.shift());
  if (typeof msg.time === "number") {
    tail.lastDockerTime = Math.max(tail.lastDockerTime || 0, msg.time);
  }
  const attrs = (msg.Actor && msg.Actor.Attributes) || {};
  const nanos = typeof msg.timeNano === "number" ? msg.timeNano : (msg.time || 0) * 1e9;
  enqueue({
    kind: "event",
    seq: null,
    time: new Date(nanos / 1e6).toISOString(),
    channel: "container",
    message: `${msg.Action} ${attrs.name || msg.id}${attrs.image ? ` (${attrs.image})` : ""}`,
    body: text,
    docker: { id: msg.id, action: msg.Action, name: attrs.name || "" },
  });
}

// ---------------------------------------------------------------------------
// Live tail: rows
// ---------------------------------------------------------------------------

/** Queues a row; rows reach the DOM in batches, once per animation frame,
 *  so a burst of thousands of events is one layout, not thousands. */
function enqueue(item) {
  tail.pending.push(item);
  // Bounded even while paused or while the tab is hidden (no frames run):
  // only the newest MAX_ROWS could be shown anyway.
  if (tail.pending.length > MAX_ROWS * 2) tail.pending.splice(0, tail.pending.length - MAX_ROWS);
  setCount("received-count", tail.received);
  if (tail.paused) {
    const b = $("buffered");
    b.hidden = false;
    b.dataset.value = String(Math.min(tail.pending.length, MAX_ROWS));
    b.textContent = `${Math.min(tail.pending.length, MAX_ROWS)} buffered while paused ·`;
    return;
  }
  if (!tail.frameRequested) {
    tail.frameRequested = true;
    requestAnimationFrame(flushRows);
  }
}

function flushRows() {
  tail.frameRequested = false;
  if (tail.paused || tail.pending.length === 0) return;
  let items = tail.pending;
  tail.pending = [];
  if (items.length > MAX_ROWS) items = items.slice(items.length - MAX_ROWS);
  const frag = document.createDocumentFragment();
  for (const item of items) {
    frag.append(item.kind === "band" ? bandRow(item) : item.kind === "info" ? infoBand(item.text) : eventRow(item));
  }
  const body = $("tail-body");
  // Follow the tail (as tail -f does) unless the reader scrolled up.
  const wrap = body.closest(".table-wrap");
  const following = wrap.scrollTop + wrap.clientHeight >= wrap.scrollHeight - 8;
  body.append(frag);
  // Oldest rows go first: the table never holds more than MAX_ROWS.
  let excess = body.rows.length - MAX_ROWS;
  while (excess-- > 0) body.firstElementChild.remove();
  setCount("shown-count", body.rows.length);
  if (following) wrap.scrollTop = wrap.scrollHeight;
}

function eventRow(ev) {
  const tr = el("tr", "event");
  if (ev.seq !== null) tr.dataset.seq = String(ev.seq);
  tr.dataset.channel = ev.channel;
  if (ev.docker) {
    tr.dataset.dockerId = ev.docker.id;
    tr.dataset.action = ev.docker.action;
    tr.dataset.name = ev.docker.name;
  }
  tr.append(
    el("td", "num seq", ev.seq === null ? "–" : String(ev.seq)),
    timeCell(ev.time),
    el("td", "channel", ev.channel),
    el("td", "message", ev.message === undefined || ev.message === null ? "" : String(ev.message)),
    bodyCell(ev.body),
  );
  return tr;
}

function timeCell(ts) {
  const td = el("td", "time");
  if (typeof ts === "string") {
    // RFC 3339 UTC with microseconds: the time of day is what a tail needs;
    // the whole stamp is in the tooltip.
    td.textContent = ts.length >= 19 ? ts.slice(11, 26).replace("Z", "") : ts;
    td.title = ts;
  }
  return td;
}

/** The body (its JSON text), collapsed to one line until opened. */
function bodyCell(raw) {
  const td = el("td", "body");
  if (raw === undefined || raw === null) return td;
  const json = compactJson(raw);
  const details = el("details");
  details.append(el("summary", "", json.length > 80 ? `${json.slice(0, 79)}…` : json));
  const pre = el("pre", "", prettyJson(raw));
  pre.dataset.json = json;
  details.append(pre);
  td.append(details);
  return td;
}

function bandRow(band) {
  const tr = el("tr", band.restarted ? "band restart" : "band");
  tr.dataset.missedFrom = band.from === null || band.from === undefined ? "" : String(band.from);
  tr.dataset.missedTo = band.to === null || band.to === undefined ? "" : String(band.to);
  const td = el("td", "", band.text);
  td.colSpan = 5;
  tr.append(td);
  return tr;
}

function infoBand(text) {
  const tr = el("tr", "band info");
  const td = el("td", "", text);
  td.colSpan = 5;
  tr.append(td);
  return tr;
}

function onPause() {
  tail.paused = true;
  $("pause").disabled = true;
  $("resume").disabled = false;
  $("tail-section").dataset.paused = "true";
}

function onResume() {
  tail.paused = false;
  $("pause").disabled = false;
  $("resume").disabled = true;
  $("tail-section").dataset.paused = "false";
  $("buffered").hidden = true;
  flushRows();
}

function onClear() {
  // Only the view: the resume point and duplicate check stay, so cleared
  // events do not come back on a reconnect.
  tail.pending = [];
  $("tail-body").replaceChildren();
  setCount("shown-count", 0);
  $("buffered").hidden = true;
}

// ---------------------------------------------------------------------------
// Live tail: what to follow
// ---------------------------------------------------------------------------

function buildChannelBoxes() {
  const set = $("channels");
  set.querySelectorAll("label").forEach((l) => l.remove());
  // global is in every subscription, listed in the rights or not.
  const names = principal.subscribe || [];
  for (const name of names.includes("global") ? names : ["global", ...names]) {
    const label = el("label");
    const box = el("input");
    box.type = "checkbox";
    box.value = name;
    box.dataset.channel = name;
    box.checked = true;
    if (name === "global") {
      // Always subscribed: the hub adds it to every subscription.
      box.disabled = true;
      label.title = "every subscription includes global";
    }
    box.addEventListener("change", onChannelsChanged);
    label.append(box, document.createTextNode(` ${name}`));
    set.append(label);
  }
}

function selectedChannels() {
  return [...$("channels").querySelectorAll("input[data-channel]")]
    .filter((b) => b.checked && b.value !== "global")
    .map((b) => b.value);
}

/** The hub's index does the filtering: a new choice is a new subscription,
 *  resumed after the last seq shown so nothing in between is lost. */
function onChannelsChanged() {
  enqueue({ kind: "info", text: `channels: ${["global", ...selectedChannels()].join(", ")}` });
  connect();
}

function setMode(mode) {
  const changed = tail.mode !== mode;
  tail.mode = mode;
  $("mode-channels").setAttribute("aria-selected", String(mode === "channels"));
  $("mode-docker").setAttribute("aria-selected", String(mode === "docker"));
  $("channels-form").hidden = mode !== "channels";
  $("docker-form").hidden = mode !== "docker";
  if (changed) {
    // The two streams have different positions (a seq, a time): each
    // starts live when chosen.
    tail.lastSeq = null;
    tail.lastDockerTime = null;
    tail.seenKeys.clear();
    tail.seenOrder = [];
    onClear();
  }
  if (mode === "channels") connect();
  else if (tail.dockerFilter !== null) connect();
  else {
    stopTail();
    setConnState("idle", "set a Docker filter");
  }
}

/** "a, b" → {"a": true, "b": true}, Docker's `{"key":{"value":true}}`. */
function valuesOf(text) {
  const out = {};
  for (const v of text.split(",").map((s) => s.trim()).filter(Boolean)) out[v] = true;
  return out;
}

function onDockerApply(ev) {
  ev.preventDefault();
  const filter = {};
  for (const key of ["container", "image", "label"]) {
    const values = valuesOf($(`f-${key}`).value);
    if (Object.keys(values).length) filter[key] = values;
  }
  const event = $("f-event").value;
  if (event) filter.event = { [event]: true };
  tail.dockerFilter = filter;
  $("docker-filter-json").textContent = `filters=${JSON.stringify(filter)}`;
  // A new filter is a new stream: live from now on.
  tail.lastDockerTime = null;
  tail.seenKeys.clear();
  tail.seenOrder = [];
  onClear();
  enqueue({ kind: "info", text: `Docker filter: ${JSON.stringify(filter)}` });
  connect();
}

// ---------------------------------------------------------------------------
// Hub panel
// ---------------------------------------------------------------------------

const stats = { timer: null, prev: null, running: false };
const coreRows = new Map();
const charts = { publish: [], deliveries: [] };

/** The samples of /v1/stats, with lookups by family and labels. */
class Metrics {
  constructor(doc) {
    this.families = (doc && doc.metrics) || {};
    this.time = doc && doc.time_ms;
  }
  has(name) {
    return Array.isArray(this.families[name]) && this.families[name].length > 0;
  }
  samples(name) {
    return this.families[name] || [];
  }
  /** Sum of the samples whose labels include `match`. */
  sum(name, match = {}) {
    let total = 0;
    let found = false;
    for (const s of this.samples(name)) {
      if (Object.entries(match).every(([k, v]) => s.labels && s.labels[k] === v)) {
        total += Number(s.value);
        found = true;
      }
    }
    return found ? total : null;
  }
  /** The core labels that appear in the per-core families, in order. */
  cores() {
    const set = new Set();
    for (const name of ["eventhub_connections", "eventhub_deliveries_total", "eventhub_connections_open", "eventhub_core_driver"]) {
      for (const s of this.samples(name)) if (s.labels && s.labels.core !== undefined) set.add(s.labels.core);
    }
    return [...set].sort((a, b) => Number(a) - Number(b));
  }
  /** A label of the first sample whose value is 1 (info-style families). */
  label(name, key, match = {}) {
    for (const s of this.samples(name)) {
      if (Object.entries(match).every(([k, v]) => s.labels[k] === v) && s.labels[key] !== undefined) return s.labels[key];
    }
    return null;
  }
}

/** A rate per second between two snapshots (null on the first, or after a
 *  counter went back: a hub restart). */
function rate(cur, prev, name, match) {
  if (!prev || !cur.time || !prev.time || cur.time <= prev.time) return null;
  const a = cur.sum(name, match);
  const b = prev.sum(name, match);
  if (a === null || b === null || a < b) return null;
  return ((a - b) * 1000) / (cur.time - prev.time);
}

function startStats() {
  stopStats();
  stats.prev = null;
  charts.publish = [];
  charts.deliveries = [];
  stats.running = true;
  pollStats();
}

function stopStats() {
  stats.running = false;
  clearTimeout(stats.timer);
  stats.timer = null;
}

/** One refresh, then the next a second later (never two in flight). */
async function pollStats() {
  if (!stats.running || credential === null) return;
  let r = null;
  try {
    r = await hubFetch("/v1/stats");
  } catch (e) {
    showPanelError(`cannot reach the hub: ${e.message}`);
  }
  if (!stats.running) return;
  if (r && r.status === 200 && r.body) {
    $("panel-error").hidden = true;
    $("panel-body").hidden = false;
    renderStats(new Metrics(r.body));
  } else if (r && r.status === 403) {
    // Not an admin: the hub says so; asking every second would not change it.
    showPanelError(hubErrorText(r.status, r.body));
    $("panel-body").hidden = true;
    return;
  } else if (r && r.status === 401) {
    signOut(hubErrorText(r.status, r.body, "sign-in refused"));
    return;
  } else if (r) {
    showPanelError(hubErrorText(r.status, r.body));
  }
  stats.timer = setTimeout(pollStats, STATS_INTERVAL_MS);
}

function showPanelError(text) {
  const e = $("panel-error");
  e.textContent = text;
  e.hidden = false;
}

/** Sets a figure: the raw number in data-value (what tests and scripts
 *  read), the formatted one as text. */
function setFigure(id, value, text) {
  const e = $(id);
  e.dataset.value = value === null || value === undefined ? "" : String(value);
  e.textContent = text !== undefined ? text : fmt(value);
}

function renderStats(m) {
  const prev = stats.prev;
  stats.prev = m;
  const updated = $("panel-updated");
  updated.dataset.timeMs = String(m.time || 0);
  updated.textContent = `updated ${new Date(m.time || Date.now()).toISOString().slice(11, 19)} UTC`;

  const version = m.label("eventhub_info", "version");
  const epoch = m.label("eventhub_info", "epoch");
  $("hub-identity").textContent = version ? `v${version}` : "";
  setFigure("hub-epoch", epoch, epoch || "–");

  const publishRate = rate(m, prev, "eventhub_events_in_total");
  const deliveryRate = rate(m, prev, "eventhub_deliveries_total");
  setFigure("hub-publish-rate", publishRate);
  setFigure("hub-delivery-rate", deliveryRate);
  const seq = m.sum("eventhub_seq");
  setFigure("hub-seq", seq);
  const oldest = m.sum("eventhub_ring_oldest_seq");
  const ringEvents = m.sum("eventhub_ring_events");
  const ring = $("hub-ring");
  ring.dataset.oldest = oldest === null ? "" : String(oldest);
  ring.dataset.events = ringEvents === null ? "" : String(ringEvents);
  ring.textContent = ringEvents ? `${fmt(oldest)}–${fmt(seq)} (${fmt(ringEvents)} events)` : ringEvents === 0 ? "empty" : "–";
  const docker = m.sum("eventhub_docker_source_connected");
  const dockerEvents = m.sum("eventhub_docker_source_events_total");
  setFigure(
    "hub-docker",
    docker,
    docker === null ? "–" : docker > 0 ? `connected · ${fmt(dockerEvents)} events` : "not connected",
  );

  renderCores(m, prev);
  renderCluster(m);
  renderTls(m);
  renderDeflate(m, prev);

  if (prev) {
    pushPoint(charts.publish, publishRate || 0);
    pushPoint(charts.deliveries, deliveryRate || 0);
    drawChart($("chart-publish"), charts.publish);
    drawChart($("chart-deliveries"), charts.deliveries);
  }
}

/** The per-core table; rows are kept and updated, not rebuilt. */
const CORE_FIELDS = [
  ["driver", (m, c) => m.label("eventhub_core_driver", "driver", { core: c }), (v) => v || "–"],
  ["connections", (m, c) => m.sum("eventhub_connections_open", { core: c })],
  ["subscribers", (m, c) => sumOrNull(m.sum("eventhub_connections", { core: c, endpoint: "subscribe" }), m.sum("eventhub_connections", { core: c, endpoint: "events" }))],
  ["publishers", (m, c) => m.sum("eventhub_connections", { core: c, endpoint: "publish" })],
  ["deliveries_per_s", (m, c, prev) => rate(m, prev, "eventhub_deliveries_total", { core: c })],
  ["deliveries", (m, c) => m.sum("eventhub_deliveries_total", { core: c })],
  ["queue_bytes", (m, c) => m.sum("eventhub_queue_bytes", { core: c }), fmtBytes],
  ["slow_consumer_closes", (m, c) => m.sum("eventhub_slow_consumer_closes_total", { core: c })],
  ["handoffs", (m, c) => m.sum("eventhub_connections_handed_off_total", { core: c })],
  ["deflate_subscribers", (m, c) => m.sum("eventhub_deflate_subscribers", { core: c })],
];

function sumOrNull(...xs) {
  const present = xs.filter((x) => x !== null);
  return present.length ? present.reduce((a, b) => a + b, 0) : null;
}

function renderCores(m, prev) {
  const body = $("cores-body");
  for (const core of m.cores()) {
    let row = coreRows.get(core);
    if (!row) {
      row = el("tr");
      row.dataset.core = core;
      row.append(el("td", "num", core));
      for (const [field] of CORE_FIELDS) {
        const td = el("td", field === "driver" ? "" : "num");
        td.dataset.field = field;
        row.append(td);
      }
      coreRows.set(core, row);
      body.append(row);
    }
    for (const [field, get, show] of CORE_FIELDS) {
      const td = row.querySelector(`td[data-field="${field}"]`);
      const v = get(m, core, prev);
      td.dataset.value = v === null || v === undefined ? "" : String(v);
      td.textContent = show ? show(v) : fmt(v);
    }
  }
}

function renderCluster(m) {
  const panel = $("cluster-panel");
  panel.hidden = !m.has("eventhub_cluster_connected");
  if (panel.hidden) return;
  const connected = m.sum("eventhub_cluster_connected");
  setFigure("cluster-connected", connected, connected > 0 ? "connected" : "disconnected");
  const first = m.sum("eventhub_cluster_stream_first_seq");
  const last = m.sum("eventhub_cluster_stream_last_seq");
  setFigure("cluster-stream", last, `${fmt(first)}–${fmt(last)}`);
  setFigure("cluster-consumed", m.sum("eventhub_cluster_consumed_seq"));
  setFigure("cluster-lag", m.sum("eventhub_cluster_consumer_lag"));
  setFigure("cluster-acks", m.sum("eventhub_cluster_publish_acks_pending"));
}

function renderTls(m) {
  const panel = $("tls-panel");
  panel.hidden = !m.has("eventhub_tls_handshakes_total");
  if (panel.hidden) return;
  setFigure("tls-handshakes", m.sum("eventhub_tls_handshakes_total"));
  setFigure("tls-failures", m.sum("eventhub_tls_handshake_failures_total"));
  const expiry = m.sum("eventhub_tls_certificate_expiry_seconds");
  setFigure("tls-expiry", expiry, expiry === null ? "–" : `${fmt(expiry / 86400)} days`);
  setFigure("tls-reloads", m.sum("eventhub_tls_reloads_total"));
}

function renderDeflate(m, prev) {
  const panel = $("deflate-panel");
  panel.hidden = !m.has("eventhub_deflate_subscribers") && !m.has("eventhub_deflate_frames_total");
  if (panel.hidden) return;
  setFigure("deflate-subscribers", m.sum("eventhub_deflate_subscribers"));
  setFigure("deflate-rate", rate(m, prev, "eventhub_deflated_deliveries_total"));
  const bytesIn = m.sum("eventhub_deflate_bytes_in_total");
  const bytesOut = m.sum("eventhub_deflate_bytes_out_total");
  const ratio = bytesIn ? (100 * bytesOut) / bytesIn : null;
  setFigure("deflate-ratio", ratio, ratio === null ? "–" : `${ratio.toFixed(0)} % of ${fmtBytes(bytesIn)}`);
  setFigure("deflate-skipped", m.sum("eventhub_deflate_skipped_total"));
}

// ---------------------------------------------------------------------------
// Charts: plain canvas (the CSP forbids nothing here; no library needed)
// ---------------------------------------------------------------------------

function pushPoint(series, v) {
  series.push(v);
  if (series.length > CHART_POINTS) series.shift();
}

/** A line of the last CHART_POINTS values, scaled to the largest, in the
 *  canvas's CSS `color`; the newest value written in the corner. */
function drawChart(canvas, series) {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(canvas.clientWidth * dpr));
  const h = Math.max(1, Math.round(canvas.clientHeight * dpr));
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
  }
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, w, h);
  const color = getComputedStyle(canvas).color;
  const max = Math.max(1, ...series);
  const pad = 4 * dpr;
  const step = (w - 2 * pad) / (CHART_POINTS - 1);
  const x0 = w - pad - (series.length - 1) * step;
  const y = (v) => h - pad - (v / max) * (h - 2 * pad);
  ctx.lineWidth = 1.5 * dpr;
  ctx.strokeStyle = color;
  ctx.fillStyle = color;
  ctx.beginPath();
  series.forEach((v, i) => (i === 0 ? ctx.moveTo(x0, y(v)) : ctx.lineTo(x0 + i * step, y(v))));
  ctx.stroke();
  // A light fill under the line.
  if (series.length > 1) {
    ctx.lineTo(x0 + (series.length - 1) * step, h - pad);
    ctx.lineTo(x0, h - pad);
    ctx.closePath();
    ctx.globalAlpha = 0.12;
    ctx.fill();
    ctx.globalAlpha = 1;
  }
  ctx.font = `${11 * dpr}px system-ui, sans-serif`;
  ctx.textAlign = "right";
  ctx.textBaseline = "top";
  ctx.fillText(`${fmt(series[series.length - 1] || 0)}/s (max ${fmt(max)})`, w - pad, pad);
}

// ---------------------------------------------------------------------------
// Publish
// ---------------------------------------------------------------------------

function buildPublishForm() {
  let channels = (principal.publish || []).filter((c) => !HUB_ONLY_CHANNELS.has(c));
  if (channels.includes("*")) {
    // Every channel: the ones this principal sees, as a starting list.
    channels = (principal.subscribe || []).filter((c) => !HUB_ONLY_CHANNELS.has(c));
  }
  $("publish").hidden = channels.length === 0;
  const select = $("pub-channel");
  select.replaceChildren(...channels.map((c) => {
    const o = el("option", "", c);
    o.value = c;
    return o;
  }));
}

/** Sends what the form holds to POST /v1/events. The body text is sent
 *  as typed (not parsed here), so the hub validates it exactly as it would
 *  any producer's, and its error is what the page shows. */
async function onPublish(ev) {
  ev.preventDefault();
  const result = $("pub-result");
  const channel = $("pub-channel").value;
  const message = $("pub-message").value;
  const bodyText = $("pub-body").value.trim();
  let json = `{"event_type":${JSON.stringify(channel)}`;
  if (message) json += `,"message":${JSON.stringify(message)}`;
  if (bodyText) json += `,"body":${bodyText}`;
  json += "}";
  $("pub-send").disabled = true;
  try {
    const r = await hubFetch("/v1/events", { method: "POST", body: json });
    result.dataset.status = String(r.status);
    if (r.status === 202 && r.body) {
      const seqs = (r.body.events || []).map((e) => e.seq).join(", ");
      result.textContent = `published: seq ${seqs}`;
    } else {
      result.dataset.error = (r.body && r.body.error) || "";
      result.textContent = `${r.status} ${(r.body && r.body.error) || ""}: ${hubErrorText(r.status, r.body)}`;
      if (r.status === 401) signOut(hubErrorText(r.status, r.body));
    }
  } catch (e) {
    result.dataset.status = "error";
    result.textContent = `cannot reach the hub: ${e.message}`;
  } finally {
    $("pub-send").disabled = false;
  }
}

// ---------------------------------------------------------------------------
// Wiring
// ---------------------------------------------------------------------------

function init() {
  $("signin-form").addEventListener("submit", onSignIn);
  $("signout").addEventListener("click", () => signOut(null));
  $("pause").addEventListener("click", onPause);
  $("resume").addEventListener("click", onResume);
  $("clear").addEventListener("click", onClear);
  $("mode-channels").addEventListener("click", () => setMode("channels"));
  $("mode-docker").addEventListener("click", () => setMode("docker"));
  $("docker-form").addEventListener("submit", onDockerApply);
  $("channels-form").addEventListener("submit", (e) => e.preventDefault());
  $("publish-form").addEventListener("submit", onPublish);
  document.body.dataset.ready = "true";
  $("token").focus();
}

init();

// session-log's help channel (the npm package's `session_log_help.js`): loaded by the entry the
// first time a page calls onHelp, onNotice or cancelHelp, so a page that never does downloads
// none of it. Plain JavaScript: no WebAssembly.
//
// It polls `GET <endpoint>/help?sessionToken=…` (the session token is the only credential: the
// server answers that session's latest help request and its room's notices) every
// OPEN_EVERY_MS while the session's request is waiting or claimed, and every IDLE_EVERY_MS while
// a callback is registered and nothing is open; it stops when neither holds. Polling was
// chosen over Server-Sent Events (the repository's docs/help-channel.md): a change reaches the page within
// one interval, and a poll costs one small GET that a proxy never buffers.
//
// Callbacks: onHelp(callback) gets `{status, position, helper, note, updatedAt}` on every change
// of the request (`waiting` with its place in the queue, 1 being next; `claimed` by whom;
// `resolved` with the helper's note; `cancelled`), and once at registration when a request
// exists; onNotice(callback) gets each notice to the room once (`{id, message, postedBy,
// postedAt, expiresAt}`), those current at registration included. Nothing here throws into the
// page: a failed poll warns once and is retried after ERROR_EVERY_MS (or the server's
// Retry-After); a callback that throws is skipped.

/** While the session's request is waiting or claimed: how often the channel polls (ms). */
const OPEN_EVERY_MS = 2000;
/** While a callback is registered and no request is open (ms). */
const IDLE_EVERY_MS = 3000;
/** After a failed poll (ms), unless the server said Retry-After. */
const ERROR_EVERY_MS = 10000;

/** The page's fetch when this module loaded. Auto-capture does not log these requests: they
 * go to the configured endpoint's path and below it, which it counts as the client's own. */
const fetcher = typeof fetch == "function" ? fetch.bind(globalThis) : () => Promise.reject(new Error("no fetch"));

// The entry's own `init`, `stats` and `getSessionToken`, handed over by `open` (this module
// imports nothing from the entry, which imports it).
let init, stats, getSessionToken;
const helpCallbacks = [];
const noticeCallbacks = [];
const seenNotices = new Set();
let last = null; // the latest help answer, as JSON text
let status = null; // its status
let timer = null;
let inFlight = false;
let warned = false;

const warn = (message) => {
  try {
    console.warn("session-log: " + message);
  } catch (_) {
    // a page that replaced console with something that throws
  }
};
const isOpen = () => status === "waiting" || status === "claimed";
/** `path` below the endpoint in force, once the module has taken the page's configuration. */
const url = async (path) => {
  await init();
  const u = new URL(String((stats() || {}).endpoint || "/api/session-log"), location.href);
  u.pathname = u.pathname.replace(/\/+$/, "") + path;
  return u;
};
const deliver = (callbacks, value) => {
  for (const callback of callbacks.slice()) {
    try {
      callback(value);
    } catch (_) {
      // the page's callback threw: the others still hear it
    }
  }
};
const schedule = (ms) => {
  clearTimeout(timer);
  timer = null;
  const wanted = isOpen() || helpCallbacks.length || noticeCallbacks.length;
  if (wanted) timer = setTimeout(poll, ms === undefined ? (isOpen() ? OPEN_EVERY_MS : IDLE_EVERY_MS) : ms);
};
const failed = (why, wait) => {
  if (!warned) warn("its help channel could not reach the server (" + why + "); it keeps trying");
  warned = true;
  schedule(wait || ERROR_EVERY_MS);
};
const take = (answer) => {
  const help = answer && answer.help;
  if (help) {
    const view = {
      status: help.status,
      position: help.position ?? null,
      helper: help.helper ?? null,
      note: help.note ?? null,
      updatedAt: help.updatedAt,
    };
    const text = JSON.stringify(view);
    if (text !== last) {
      last = text;
      status = view.status;
      deliver(helpCallbacks, view);
    }
  }
  for (const notice of (answer && answer.notices) || []) {
    if (seenNotices.has(notice.id)) continue;
    seenNotices.add(notice.id);
    deliver(noticeCallbacks, notice);
  }
};
async function poll() {
  if (inFlight) return;
  inFlight = true;
  try {
    const u = await url("/help");
    u.searchParams.set("sessionToken", getSessionToken());
    const response = await fetcher(u, { cache: "no-store", credentials: "omit" });
    if (!response.ok) {
      const after = Number(response.headers.get("Retry-After"));
      return failed("HTTP " + response.status, after > 0 ? after * 1000 : undefined);
    }
    take(await response.json());
    warned = false;
    schedule();
  } catch (error) {
    failed(String((error && error.message) || error));
  } finally {
    inFlight = false;
  }
}
const register = (list, callback) => {
  if (typeof callback !== "function") return;
  list.push(callback);
  if (!inFlight) poll();
};

/** The channel, given the entry's `init`, `stats` and `getSessionToken`: `{onHelp, onNotice,
 * cancel}`. */
export function open(entryInit, entryStats, entryToken) {
  init = entryInit;
  stats = entryStats;
  getSessionToken = entryToken;
  return { onHelp, onNotice, cancel };
}

/** `onHelp(callback)`: see the package's types. The request known now is replayed to it. */
function onHelp(callback) {
  if (last && typeof callback === "function") deliver([callback], JSON.parse(last));
  register(helpCallbacks, callback);
}

/** `onNotice(callback)`: every current notice is delivered again at the next poll, so a
 * callback registered late hears them too. */
function onNotice(callback) {
  seenNotices.clear();
  register(noticeCallbacks, callback);
}

/** `cancelHelp()`: withdraws the session's open request (a 404, none open, is not a problem). */
async function cancel() {
  try {
    const response = await fetcher(await url("/help/cancel"), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ sessionToken: getSessionToken() }),
      credentials: "omit",
    });
    if (response.ok) take(await response.json());
    else if (response.status !== 404) warn("cancelHelp: the server answered HTTP " + response.status);
  } catch (error) {
    warn("cancelHelp could not reach the server (" + String((error && error.message) || error) + ")");
  }
  schedule();
}

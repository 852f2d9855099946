// What every part of the dashboard shares: the state, element builders, the API call and its
// failures, the Server-Sent Events reader, and how times are written.

export const TOKEN_KEY = "session-log:instructor-token";
const SVG = "http://www.w3.org/2000/svg";
export const $ = (selector) => document.querySelector(selector);

export const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || "",
  // The room shown (its join code; "" for every room the token covers; "lobby" for the sessions
  // in no room), bookmarkable as ?room=.
  room: new URLSearchParams(location.search).get("room") || "",
  rooms: [],
  // Whether the token is a helper's (no lobby, no admin panel).
  helper: false,
  sessions: [],
  report: null,
  sort: { key: "lastSeen", dir: -1 },
  selected: null,
  timeline: [],
  lastEventId: null,
  refreshTimer: null,
  live: null,
  alerts: [],
  lastAlertId: null,
  alertsLive: null,
};

/** An element with a class and text (never HTML). */
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

export function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

/** Runs `render`, which rebuilds the children of `container`, and gives the keyboard focus back
 * to the rebuilt element of the same session or alert (and class) if it was inside: a live
 * refresh must not throw a keyboard user back to the top of the page. */
export function keepFocus(container, render) {
  const active = document.activeElement;
  const owner = active && container.contains(active) ? active.closest("[data-session], [data-alert]") : null;
  const key = owner ? (owner.dataset.session ? `[data-session="${CSS.escape(owner.dataset.session)}"]` : `[data-alert="${CSS.escape(owner.dataset.alert)}"]`) : null;
  const role = owner && active !== owner ? `.${[...active.classList].map((c) => CSS.escape(c)).join(".")}` : "";
  render();
  if (!key) return;
  const again = container.querySelector(key);
  const target = again && (role ? again.querySelector(role) : again);
  if (target) target.focus({ preventScroll: true });
}

class Unauthorized extends Error {}

export async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...(options.headers || {}), Authorization: `Bearer ${state.token}` } });
  if (response.status === 401) throw new Unauthorized("the server refused this token");
  if (!response.ok) {
    let message = `HTTP ${response.status}`;
    try { message = (await response.json()).error || message; } catch (_) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

/** `path` limited to the room shown: `?room=CODE` (or `&room=`) added when one is chosen. */
export function inRoom(path) {
  if (!state.room) return path;
  return `${path}${path.includes("?") ? "&" : "?"}room=${encodeURIComponent(state.room)}`;
}

export function filters() {
  const params = new URLSearchParams();
  if (state.room) params.set("room", state.room);
  const status = $("#filter-status").value;
  const email = $("#filter-email").value.trim();
  const since = $("#filter-since").value;
  if (status) params.set("status", status);
  if (email) params.set("studentEmail", email);
  if (since) params.set("since", new Date(since).toISOString());
  return params;
}

export function minutesSince(iso) {
  return (Date.now() - Date.parse(iso)) / 60000;
}

/** `ms` as people read it, to the second: "3m 10s", "45s", "1h 5m". */
export function duration(ms) {
  const total = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(total / 3600), m = Math.floor((total % 3600) / 60), sec = total % 60;
  if (h) return `${h}h${m ? ` ${m}m` : ""}`;
  if (m) return `${m}m${sec ? ` ${sec}s` : ""}`;
  return `${sec}s`;
}

export function ago(iso) {
  const minutes = minutesSince(iso);
  if (minutes < 1) return `${Math.max(0, Math.round(minutes * 60))} s`;
  if (minutes < 120) return `${Math.round(minutes)} min`;
  return `${Math.round(minutes / 60)} h`;
}

/** What the parts do with a failed call: a refused token signs out (through the function
 * `whenUnauthorized` registered), anything else is logged. */
export function handle(error) {
  if (error instanceof Unauthorized) {
    onUnauthorized(error.message);
  } else {
    console.warn("session-log dashboard:", error);
  }
}

let onUnauthorized = () => {};

/** Registers what a refused token does (the page signs out). */
export function whenUnauthorized(callback) {
  onUnauthorized = callback;
}

/** The event `select` dispatches on `document` when the selected session changes. */
export const SELECTED = "session-log:selected";

/** The event `refresh` dispatches on `document` once new session rows are in `state.sessions`
 * (the alerts name students from them). */
export const SESSIONS_LOADED = "session-log:sessions-loaded";

/** Reads the Server-Sent Events of `path` through fetch (it needs an Authorization header) and
 * hands each message's `id` and parsed `data` to `onMessage`, resuming after `lastId()` (the
 * opaque id of the last message) with Last-Event-ID; reconnects after a break. */
export async function readStream(path, slot, lastId, onMessage, onState) {
  if (state[slot]) state[slot].abort();
  const controller = new AbortController();
  state[slot] = controller;
  try {
    const headers = {};
    if (lastId() !== null) headers["Last-Event-ID"] = lastId();
    const response = await api(path, { headers, signal: controller.signal });
    onState(true);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const message = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let id = null, data = "";
        for (const line of message.split("\n")) {
          if (line.startsWith("id: ")) id = line.slice(4);
          else if (line.startsWith("data: ")) data += line.slice(6);
        }
        if (data) onMessage(id, JSON.parse(data));
      }
    }
  } catch (error) {
    if (controller.signal.aborted) return;
    if (error instanceof Unauthorized) return handle(error);
  }
  onState(false);
  if (state[slot] === controller) setTimeout(() => readStream(path, slot, lastId, onMessage, onState), 2000);
}

// session-log: the page's entry (the npm package's `session_log.js`).
//
// Every export works from the moment the module is imported. Calls made before the WebAssembly
// module is ready are kept, in order and with the time they were made, and carried out once it
// is (a navigation's step applies to the calls after it, as it would have). `init()` is optional:
// the first call of any export starts loading; it may be called any number of times, and its
// promise always resolves. When the module cannot load (HTTP error, a Content-Security-Policy
// without 'wasm-unsafe-eval', a browser without WebAssembly), one console.warn says why and every
// call stays a no-op that never throws.
//
// The session token is known from the first line: getSessionToken() reads it from localStorage,
// or makes one (128 random bits) and writes it there, where the module reads it when it loads.
//
// Outside a browser (server-side rendering in Node, Deno or Bun: no window or document), every
// export is a silent no-op: nothing is fetched, nothing is warned, init() and flush() resolve.
import load, * as core from "./session_log_core.js";

/** The localStorage key of the session token (the module reads and writes the same key). */
const TOKEN_KEY = "session-log:sessionToken";
const IN_BROWSER = typeof window === "object" && window !== null && typeof document === "object" && document !== null;

const KINDS = { logNavigation: 0, logError: 1, logAction: 2, logApiCall: 3, logStateChange: 4, logSessionEvent: 5 };
/** Calls kept before the module is ready, at most (oldest kept; the rest are counted). */
const MAX_PENDING = 1000;
let state = 0; // 0: not started, 1: loading, 2: ready, 3: cannot load
let loading;
let pending = [];
let overflow = 0;
let scheduled = false;
let chosen = false; // loading started from an init(input)
let source = null; // () => what `load` compiles by default (the inline variant sets it)
let token = ""; // the token before the module is ready (kept, or made by sessionToken())
let configuredToken = null; // configure({sessionToken}) made before the module was ready
let left = false; // hidden or left before the module was ready: the hand-over waits for a next page
let channel; // the help channel (session_log_help.js), loaded on first use

const warn = (message) => {
  try {
    console.warn("session-log: " + message);
  } catch (_) {
    // a page that replaced console with something that throws
  }
};

function run(name, args, at) {
  try {
    return name in KINDS
      ? core.log(KINDS[name], args[0], args[1], args[2], args[3], at)
      : core[name].apply(null, args);
  } catch (error) {
    warn(name + " failed: " + (error && error.message));
  }
}

/** A token the server takes: 1–128 characters, none of them whitespace or control characters. */
function validToken(value) {
  return typeof value === "string" && value.length > 0 && Array.from(value).length <= 128 && !/[\s\p{Cc}]/u.test(value);
}

/** The session's token before the module is ready: configured, kept in localStorage, or new. */
function sessionToken() {
  if (configuredToken) return configuredToken;
  if (token) return token;
  let kept = null;
  try {
    kept = localStorage.getItem(TOKEN_KEY);
  } catch (_) {
    // storage refused: the token lasts as long as the page
  }
  if (validToken(kept)) return (token = kept);
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  token = "ws_" + Array.from(bytes, (b) => (b < 16 ? "0" : "") + b.toString(16)).join("");
  try {
    localStorage.setItem(TOKEN_KEY, token);
  } catch (_) {
    // handed to the module when it loads instead
  }
  return token;
}

/** The page is hidden or going away before the module is ready: its kept calls leave as a beacon
 * or go to this tab's hand-over (`saveCalls`, which the build appends to the glue from handoff.js). */
function handOff() {
  if (state > 1) return;
  left = true;
  stash();
}

/** Sends or hands over the kept calls. */
function stash() {
  if (pending.length && core.saveCalls(pending, sessionToken())) pending = [];
}

/** Replays the calls a page left in this tab's hand-over, once the module is ready in a page
 * that is shown (a module that finished loading after its page was left leaves them for the next). */
function takeOver() {
  if (state === 2 && !left) for (const [name, args, at] of core.handedCalls()) run(name, args, at);
}

function call(name, args, at) {
  if (!IN_BROWSER) return;
  if (state === 2) return run(name, args, at);
  if (state === 3) return;
  if (name === "configure" && args[0] && typeof args[0] === "object" && "sessionToken" in args[0]) {
    const given = args[0].sessionToken;
    configuredToken = validToken(given) ? given : null;
  }
  // Nothing is kept for a user who opted out (the module would drop it anyway).
  if (name in KINDS && !pending.some((p) => p[0] === "optIn") && hasOptedOut()) return;
  if (pending.length < MAX_PENDING) pending.push([name, args, at || Date.now()]);
  else overflow++;
  // Start loading at the end of this task, so that an init(input) made in the same task (after a
  // first configure, say) still chooses where the module comes from.
  if (!loading && !scheduled) {
    scheduled = true;
    queueMicrotask(init);
  }
}

function explain(error) {
  const text = String((error && error.message) || error);
  if (/unsafe-eval|Content Security Policy/i.test(text)) {
    return "the page's Content-Security-Policy does not allow WebAssembly: add 'wasm-unsafe-eval' to its script-src";
  }
  return "could not load its WebAssembly module (" + text + ")";
}

/**
 * Starts loading the WebAssembly module (the first call of any export does too). `input` is
 * optional: where the `.wasm` is (a URL, a `Response`, a `WebAssembly.Module`, or
 * `{module_or_path}`); by default `session_log_core_bg.wasm` beside this file. Always resolves.
 */
export function init(input) {
  if (!IN_BROWSER) return Promise.resolve();
  if (loading && input !== undefined && !chosen) warn("init(input) came after loading had started; its input was not used");
  if (!loading) {
    chosen = input !== undefined;
    state = 1;
    loading = (async () => {
      if (typeof WebAssembly !== "object") throw new Error("this browser has no WebAssembly");
      const fetched = () => {
        const url = new URL("./session_log_core_bg.wasm", import.meta.url);
        return fetch(url).then((response) => {
          if (!response.ok) throw new Error("HTTP " + response.status + " for " + url);
          return response;
        });
      };
      await load(input && input.module_or_path ? input : { module_or_path: input || (source || fetched)() });
    })().then(
      () => {
        state = 2;
        takeOver();
        // A token shown before the module was ready that it could not read back (storage
        // refused) stays the session's token.
        if (token && !configuredToken && run("getSessionToken", []) !== token) run("configure", [{ sessionToken: token }]);
        // Hidden since its hand-over: calls made meanwhile join it, so they replay after the
        // older ones when the page is shown again (or on the next page).
        if (left) stash();
        const calls = pending;
        pending = [];
        for (const [name, args, at] of calls) run(name, args, at);
        if (overflow) warn(overflow + " call(s) made before the module was ready were not kept (at most " + MAX_PENDING + ")");
      },
      (error) => {
        state = 3;
        const lost = pending.length + overflow;
        pending = [];
        warn(explain(error) + "; logging is off on this page" + (lost ? " (" + lost + " call(s) not logged)" : ""));
      },
    );
  }
  return loading;
}

export default init;

if (IN_BROWSER) {
  const shown = () => {
    left = false;
    takeOver();
  };
  addEventListener("pagehide", handOff);
  addEventListener("pageshow", shown);
  document.addEventListener("visibilitychange", () => (document.visibilityState === "hidden" ? handOff() : shown()));
}

/** An export that hands its arguments to call() under `name` (their types: session_log.d.ts). */
const relay = (name) => (...args) => call(name, args);
export const configure = relay("configure");
export const setStep = relay("setStep");
export const logNavigation = relay("logNavigation");
export const logError = relay("logError");
export const logAction = relay("logAction");
export const logApiCall = relay("logApiCall");
export const logStateChange = relay("logStateChange");
export const logSessionEvent = relay("logSessionEvent");
/** A `help_request` event `{message}`: it joins the room's help queue. */
export function requestHelp(message) {
  call("logSessionEvent", ["help_request", { message: message == null ? "" : String(message).slice(0, 500) }]);
}

/** Calls `name(arg)` of the help channel, loading it on first use (a page that never asks downloads none of it). */
function help(name, arg) {
  if (!IN_BROWSER) return;
  channel = channel || import("./session_log_help.js").then((m) => m.open(init, stats, getSessionToken), warn);
  channel.then((c) => c?.[name](arg));
}
export const onHelp = (callback) => help("onHelp", callback);
export const onNotice = (callback) => help("onNotice", callback);
export const cancelHelp = () => help("cancel");
export const onDeliveryError = relay("onDeliveryError");
export const optOut = relay("optOut");
export const optIn = relay("optIn");

/** Whether the user opted out; before the module is ready, read from localStorage. */
export function hasOptedOut() {
  if (!IN_BROWSER) return false;
  if (state === 2) return run("hasOptedOut", []) === true;
  try {
    return localStorage.getItem("session-log:optOut") === "1";
  } catch (_) {
    return false;
  }
}

export function flush() {
  if (!IN_BROWSER) return Promise.resolve();
  if (state === 2) return run("flush", []) || Promise.resolve();
  return init().then(() => (state === 2 ? run("flush", []) : undefined));
}

/** The session token events are sent with, from the first line on ("" outside a browser). */
export function getSessionToken() {
  if (!IN_BROWSER) return "";
  if (state === 2) return run("getSessionToken", []) || "";
  return state === 3 ? "" : sessionToken();
}

export function stats() {
  if (state === 2) {
    const s = run("stats", []);
    if (s) return s;
  }
  const queued = state === 3 ? 0 : pending.filter((p) => p[0] in KINDS).length;
  return { queued, sent: 0, dropped: 0, retries: 0, lastError: null };
}

/** For `session_log.inline.js`: `make()` gives the module to compile when init() has no input. */
export function __setSource(make) {
  source = make;
}

/** For `session_log.global.js`: calls its stubs kept before this module was imported. */
export function __replay(calls) {
  for (const [name, args, at] of calls) call(name, args, at);
}

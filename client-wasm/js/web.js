// The client's few lines of JavaScript, where promise-shaped or wrapping APIs are clearer than
// in Rust; imported by web.rs (`#[wasm_bindgen(module = "/js/web.js")]`). The package build
// parses it (esbuild minifies it into the package's snippets), so a syntax error fails the build.
//
// Web Locks (https://w3c.github.io/web-locks/): each page holds the lock `session-log:tab:<tab>`
// while it lives. To adopt another tab's stored queue, a page requests that tab's lock: the
// browser grants it once the tab is gone, and to one waiter at a time, so exactly one page adopts
// each orphaned queue.
//
// `send`: the client's own requests go through the `fetch` the page had when this module loaded
// (as Sentry's transport does), never through wrappers installed later (its own capture included).
// `post`: `send`, then `done(response, body text)`, or `done(null, why)` for a network error (a
// callback instead of a Rust future: no async executor in the module), called through `report`
// like every callback here, so that nothing `done` throws becomes an unhandled rejection in the
// page.
//
// `capture`: installs or removes the auto-capture hooks. Each reports raw facts to `callback`
// (decisions are the machine's) and leaves the page's calls as they were: the same promise
// values and errors, the same return values.
const pageFetch = typeof fetch === "function" ? fetch.bind(globalThis) : null;
export const page = () => globalThis.window;
export function send(url, init) {
  return pageFetch ? pageFetch(url, init) : Promise.reject(new Error("this browser has no fetch"));
}
export function post(url, init, done) {
  send(url, init).then(
    (response) => response.text().then((body) => report(done, response, body), () => report(done, response, "")),
    (error) => report(done, null, String((error && error.message) || error)));
}
export function holdLock(name) {
  if (!globalThis.navigator || !navigator.locks) return false;
  navigator.locks.request(name, () => new Promise(() => {})).catch(() => {});
  return true;
}
export function whenLockFree(name, tab, callback) {
  navigator.locks.request(name, () => { callback(tab); }).catch(() => {});
}
const hooks = {};
function report(callback, ...args) { try { callback(...args); } catch (_) { /* never into the page */ } }
export function capture(errors, requests, routes, callback) {
  if (errors && !hooks.errors) {
    const onError = (e) => report(callback, "error", String(e.message), e.error && e.error.stack, e.filename, e.lineno, e.colno);
    const onRejection = (e) => {
      const r = e.reason;
      report(callback, "rejection", r instanceof Error ? r.message : String(r), r && r.stack);
    };
    addEventListener("error", onError);
    addEventListener("unhandledrejection", onRejection);
    hooks.errors = () => { removeEventListener("error", onError); removeEventListener("unhandledrejection", onRejection); };
  } else if (!errors && hooks.errors) { hooks.errors(); delete hooks.errors; }
  if (requests && !hooks.requests) {
    const before = globalThis.fetch;
    const ended = (method, url, status, started) =>
      report(callback, "request", method, url, status, performance.now() - started, location.origin);
    const wrapped = function (input, init) {
      const started = performance.now();
      let method = "GET", url = null;
      try {
        method = String((init && init.method) || (input && input.method) || "GET");
        url = new URL(input && input.url !== undefined ? input.url : String(input), location.href).href;
      } catch (_) { /* a URL fetch itself will refuse */ }
      const result = before.apply(this, arguments);
      if (url === null || !result || typeof result.then !== "function") return result;
      return result.then((response) => { ended(method, url, response.status, started); return response; },
                         (error) => { ended(method, url, 0, started); throw error; });
    };
    globalThis.fetch = wrapped;
    const proto = globalThis.XMLHttpRequest && XMLHttpRequest.prototype;
    const open = proto && proto.open, sendXhr = proto && proto.send;
    if (proto) {
      proto.open = function (method, url) {
        try { this.__sessionLog = [String(method), new URL(String(url), location.href).href]; } catch (_) { this.__sessionLog = null; }
        return open.apply(this, arguments);
      };
      proto.send = function () {
        const info = this.__sessionLog;
        if (info) {
          const started = performance.now();
          this.addEventListener("loadend", () => ended(info[0], info[1], this.status, started));
        }
        return sendXhr.apply(this, arguments);
      };
    }
    hooks.requests = () => {
      if (globalThis.fetch === wrapped) globalThis.fetch = before;
      if (proto) { proto.open = open; proto.send = sendXhr; }
    };
  } else if (!requests && hooks.requests) { hooks.requests(); delete hooks.requests; }
  if (routes && !hooks.routes) {
    const push = history.pushState, replace = history.replaceState;
    const changed = () => report(callback, "route", location.href);
    history.pushState = function () { const r = push.apply(this, arguments); changed(); return r; };
    history.replaceState = function () { const r = replace.apply(this, arguments); changed(); return r; };
    addEventListener("popstate", changed);
    addEventListener("hashchange", changed);
    report(callback, "start", location.href);
    hooks.routes = () => {
      history.pushState = push;
      history.replaceState = replace;
      removeEventListener("popstate", changed);
      removeEventListener("hashchange", changed);
    };
  } else if (!routes && hooks.routes) { hooks.routes(); delete hooks.routes; }
}

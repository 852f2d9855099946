// session-log: where the calls a page made before its WebAssembly module was ready go when the
// page is hidden or left. Not a file of the package: the build appends it to the module's glue
// (session_log_core.js, which the entry imports anyway), where its two exports cost no request.
// A call is `[name, args, at]` (`at`: ms since the epoch).

const HANDOFF_KEY = "session-log:handoff";

/**
 * Sends `calls` (the session token `token`) as one `text/plain` beacon to the configured endpoint,
 * `{"sessionToken": token, "calls": [[name, args, at], …]}`, from which the server makes the
 * events the module would have (an Error argument goes as its message). Else (a beacon refused,
 * an argument JSON cannot hold, or calls the module alone may judge: a configure() with
 * beforeSend, sampleRate, redact or redactKeys, or an optOut()) appends them to this tab's
 * hand-over (sessionStorage, the newest 1,000), for the next page of this origin to replay once
 * its module is ready. Returns whether the calls left this page.
 */
export function saveCalls(calls, token) {
  const o = Object.assign({}, ...calls.map((c) => (c[0] === "optOut" ? { optOut: 1 } : c[0] === "configure" && c[1][0])));
  const plain = calls.filter((c) => c[0] !== "onDeliveryError").map(([name, args, at]) =>
    [name, args.map((a) => (a instanceof Error ? a.message : a)), at]);
  try {
    if (!(o.optOut || o.beforeSend || o.sampleRate != null || o.redact || o.redactKeys) &&
      navigator.sendBeacon(o.endpoint || "/api/session-log", JSON.stringify({ sessionToken: token, calls: plain }))) return true;
  } catch (_) {
    // a refused URL, or an argument JSON cannot hold: handed over instead
  }
  try {
    sessionStorage.setItem(HANDOFF_KEY, JSON.stringify(handedCalls(true).concat(plain).slice(-1000)));
    return true;
  } catch (_) {
    // storage refused, or an argument JSON cannot hold: nothing more can be done on a page going away
  }
}

/** This tab's hand-over: the calls it holds (none without sessionStorage), removed unless `keep`. */
export function handedCalls(keep) {
  try {
    const calls = JSON.parse(sessionStorage.getItem(HANDOFF_KEY) || "[]");
    if (!keep) sessionStorage.removeItem(HANDOFF_KEY);
    return calls;
  } catch (_) {
    return [];
  }
}

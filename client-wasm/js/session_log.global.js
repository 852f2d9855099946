// session-log for pages without modules or a bundler: <script src=".../session_log.global.js">
// defines window.sessionLog (every export of session_log.js) and, unless the tag says
// data-globals="false", the six logging functions as globals, as the reference's inline script
// had them. Calls made before the module has loaded are kept with their time and handed over.
(function () {
  "use strict";
  var script = document.currentScript;
  var base = (script && script.src) || location.href;
  var names = ["init", "configure", "setStep", "logNavigation", "logError", "logAction", "logApiCall",
    "logStateChange", "logSessionEvent", "requestHelp", "onHelp", "onNotice", "cancelHelp", "flush", "getSessionToken", "stats", "onDeliveryError", "optOut", "optIn",
    "hasOptedOut"];
  var kept = [];
  var mod = null;
  var failed = false;
  var ready = import(new URL("session_log.js", base).href).then(function (m) {
    mod = m;
    m.__replay(kept);
    kept = [];
  }, function (error) {
    failed = true;
    kept = [];
    try { console.warn("session-log: could not load session_log.js (" + error + "); logging is off on this page"); } catch (_) {}
  });
  // The session token before the module is ready, as session_log.js keeps it: configured, kept
  // in localStorage, or made (128 random bits) and kept there, where the module reads it.
  var token = "";
  var configured = null;
  var valid = function (t) { return typeof t === "string" && t.length > 0 && Array.from(t).length <= 128 && !/[\s\p{Cc}]/u.test(t); };
  var sessionToken = function () {
    if (configured) return configured;
    if (token) return token;
    var kept = null;
    try { kept = localStorage.getItem("session-log:sessionToken"); } catch (_) {}
    if (valid(kept)) return (token = kept);
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    token = "ws_" + Array.from(bytes, function (b) { return (b < 16 ? "0" : "") + b.toString(16); }).join("");
    try {
      localStorage.setItem("session-log:sessionToken", token);
    } catch (_) {
      // Storage refused: the module could not read it back, so hand it over as configured.
      if (!failed && !mod) kept.push(["configure", [{ sessionToken: token }], Date.now()]);
    }
    return token;
  };
  var api = {};
  names.forEach(function (name) {
    api[name] = function () {
      var args = Array.prototype.slice.call(arguments);
      if (mod) return mod[name].apply(null, args);
      // These act once the entry is loaded (the help channel's are the entry's own, not the module's).
      if (["init", "flush", "onHelp", "onNotice", "cancelHelp"].indexOf(name) >= 0) {
        return ready.then(function () { return mod && mod[name].apply(null, args); });
      }
      if (name === "getSessionToken") return failed ? "" : sessionToken();
      if (name === "configure" && args[0] && typeof args[0] === "object" && "sessionToken" in args[0]) {
        configured = valid(args[0].sessionToken) ? args[0].sessionToken : null;
      }
      if (name === "hasOptedOut") {
        try { return localStorage.getItem("session-log:optOut") === "1"; } catch (_) { return false; }
      }
      if (name === "stats") return { queued: failed ? 0 : kept.length, sent: 0, dropped: 0, retries: 0, lastError: null };
      if (!failed) kept.push([name, args, Date.now()]);
    };
  });
  window.sessionLog = api;
  if (!script || script.getAttribute("data-globals") !== "false") {
    ["logNavigation", "logError", "logAction", "logApiCall", "logStateChange", "logSessionEvent"].forEach(function (name) {
      window[name] = api[name];
    });
  }
})();

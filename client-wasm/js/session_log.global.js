// session-log for pages without modules or a bundler: <script src=".../session_log.global.js">
// defines window.sessionLog (every export of session_log.js) and, unless the tag says
// data-globals="false", the six logging functions as globals, as the reference's inline script
// had them. Calls made before the module has loaded are kept with their time and handed over.
(function () {
  "use strict";
  var script = document.currentScript;
  var base = (script && script.src) || location.href;
  var names = ["init", "configure", "setStep", "logNavigation", "logError", "logAction", "logApiCall",
    "logStateChange", "logSessionEvent", "requestHelp", "flush", "getSessionToken", "stats", "onDeliveryError", "optOut", "optIn",
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
  var api = {};
  names.forEach(function (name) {
    api[name] = function () {
      var args = Array.prototype.slice.call(arguments);
      if (mod) return mod[name].apply(null, args);
      if (name === "init" || name === "flush") return ready.then(function () { return mod && mod[name].apply(null, args); });
      if (name === "getSessionToken") return "";
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

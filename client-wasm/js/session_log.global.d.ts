// Types of `session_log.global.js`, the classic-script loader (`<script src=".../session_log.global.js">`):
// it defines `window.sessionLog`, every export of the entry, and, unless the tag says
// data-globals="false", the six logging functions as globals, as the reference's inline script had them.
import type * as SessionLog from "./session_log.js";

declare global {
  /** Every export of `session-log`, usable at once (calls are kept until the module loads). */
  var sessionLog: typeof SessionLog;
  var logNavigation: typeof SessionLog.logNavigation;
  var logError: typeof SessionLog.logError;
  var logAction: typeof SessionLog.logAction;
  var logApiCall: typeof SessionLog.logApiCall;
  var logStateChange: typeof SessionLog.logStateChange;
  var logSessionEvent: typeof SessionLog.logSessionEvent;
}

export {};

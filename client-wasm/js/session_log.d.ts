// Types of session-log's browser API (`session_log.js`). Every function returns at once and never
// throws; calls made before the WebAssembly module is ready are kept and carried out once it is.

/** A JSON value, as `eventData` fields and state values may hold. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** Extra fields merged into an event's `eventData`. An `Error` gives `errorName`, `detailMessage` and `stack`. */
export type Details = Record<string, unknown> | Error;

/** Options of `configure`; every field is optional, and a field not given keeps its current value (`null` restores the default). */
export interface SessionLogConfig {
  /** Where batches are POSTed: a path or an absolute URL. Default "/api/session-log". */
  endpoint?: string | null;
  /** Step names by step number from 0 (`stepName`, `fromStepName`, `toStepName`). */
  steps?: string[] | null;
  /** Sent with every event; anonymous when absent. */
  studentEmail?: string | null;
  /** Sent with every event. */
  studentName?: string | null;
  /** Session token to use; generated (`ws_` + 128 random bits in hex) and kept in localStorage when absent. */
  sessionToken?: string | null;
  /** Copied into every event's `demoMode`. Default false. */
  demoMode?: boolean | null;
  /** Send as soon as this many events are queued (1–500). Default 50. */
  maxBatchEvents?: number | null;
  /** Send as soon as the queued JSON reaches this many bytes (at least 1024). Default 16384. */
  maxBatchBytes?: number | null;
  /** Send this long after the first queued event (ms). Default 1000. */
  flushIntervalMs?: number | null;
  /** `flush()` rejects after this long (ms). Default 10000. */
  flushTimeoutMs?: number | null;
  /** First retry delay (ms), doubled per failure with full jitter. Default 1000. */
  retryBaseMs?: number | null;
  /** Longest retry delay (ms). Default 8000: a server that comes back gets the queue within 8 s (its `Retry-After` wins when longer). */
  retryMaxMs?: number | null;
  /** Most events kept waiting (in memory and localStorage); past it the oldest are dropped and reported. Default 1000. */
  maxQueueEvents?: number | null;
  /** Most bytes of events' JSON kept waiting. Default 1048576. */
  maxQueueBytes?: number | null;
  /** Redact secrets before an event is queued: values of keys containing password, passwd, secret, token, apikey, api_key, authorization, cookie, credential or private_key, and OpenAI-style keys, Bearer credentials, JSON Web Tokens and card numbers inside text. Default true. */
  redact?: boolean | null;
  /** More key names whose values are redacted (any case), also with `redact: false`. */
  redactKeys?: string[] | null;
  /** Share of sessions whose events are sent, 0 to 1, decided once per session token. Default 1. */
  sampleRate?: number | null;
  /** Called with each event after redaction; return it (edited or not) to send it, `null` to drop it. An exception drops the event. */
  beforeSend?: ((event: SessionLogEvent) => SessionLogEvent | null | void) | null;
}

/** What `beforeSend` receives and returns. */
export interface SessionLogEvent {
  /** The event's type, e.g. "action". */
  eventType: string;
  /** Its fields, context fields included. */
  eventData: Record<string, unknown>;
}

/** What an `onDeliveryError` callback receives. */
export interface SessionLogDeliveryError {
  /** What went wrong, e.g. "the server answered HTTP 503; will retry". */
  message: string;
  /** Whether the events stay queued for another try (false: the server refused them for good). */
  willRetry: boolean;
  /** Events waiting to be delivered. */
  queued: number;
}

/** Delivery counters returned by `stats()`. */
export interface SessionLogStats {
  /** Events waiting to be delivered (before the module is ready: calls kept). */
  queued: number;
  /** Events the server acknowledged. */
  sent: number;
  /** Events refused by the server for good, or dropped from a full queue. */
  dropped: number;
  /** Failed sends that will be (or were) retried. */
  retries: number;
  /** The last delivery problem, or null. */
  lastError: string | null;
  /** The endpoint in force (absent before the module is ready). */
  endpoint?: string;
}

/** Where the `.wasm` is: a URL, a Response (or its promise), a compiled module, or `{module_or_path}`. */
export type InitInput =
  | string
  | URL
  | Request
  | Response
  | Promise<Response>
  | BufferSource
  | WebAssembly.Module
  | { module_or_path: string | URL | Request | Response | Promise<Response> | BufferSource | WebAssembly.Module };

/** Starts loading the module (optional: the first call of any export does too). Always resolves, also when the module cannot load (then one console.warn says why). Outside a browser (no `window`/`document`: server-side rendering) it loads nothing and every export is a silent no-op. `session-log/inline` has the module inside, for bundlers that do not copy the `.wasm`. */
export function init(input?: InitInput): Promise<void>;
export default init;

/** Merges options into those in force; a bad option is reported with console.warn and changes nothing. */
export function configure(options: SessionLogConfig): void;
/** Sets the current step (`currentStep` of the following events), a whole number ≥ 0. */
export function setStep(step: number): void;
/** `navigation` event: `{from, to, fromStepName, toStepName}`; the current step becomes `to`. */
export function logNavigation(from: number, to: number): void;
/** `error` event: `{errorType, errorMessage, ...errorDetails}`; `errorMessage` may be an `Error`. */
export function logError(errorType: string, errorMessage: string | Error, errorDetails?: Details): void;
/** `action` event: `{actionName, ...actionDetails}`. */
export function logAction(actionName: string, actionDetails?: Details): void;
/** `api_call` event: `{endpoint, method, status, success, ...details}`; `success` is a 2xx or 3xx `status` (0: network error). */
export function logApiCall(endpoint: string, method: string, status: number, details?: Details): void;
/** `state_change` event: `{stateName, oldValue, newValue}`. */
export function logStateChange(stateName: string, oldValue: unknown, newValue: unknown): void;
/** An event of your own type (1–50 of `A-Za-z0-9_.-`) with your fields. */
export function logSessionEvent(eventType: string, eventData?: Record<string, unknown>): void;
/** A student asks for help: a `help_request` event `{message}` (at most 500 characters), sent at
 * once, which puts the session in its room's help queue (asking again updates the message). */
export function requestHelp(message: string): void;
/** Where a help request is: `waiting` (with its `position` in the room's queue, 1 being next),
 * `claimed` (by `helper`), `resolved` (with the helper's `note`), or `cancelled`. */
export interface HelpStatus {
  status: "waiting" | "claimed" | "resolved" | "cancelled";
  /** While waiting: 1 is served next. */
  position: number | null;
  /** The helper's name once claimed. */
  helper: string | null;
  /** The helper's note to the student ("on my way"). */
  note: string | null;
  /** When it last changed (ISO 8601 UTC). */
  updatedAt: string;
}
/** A message an instructor posted to the page's room. */
export interface RoomNotice {
  id: number;
  message: string;
  postedBy: string;
  /** ISO 8601 UTC. */
  postedAt: string;
  /** ISO 8601 UTC: when it stops being shown. */
  expiresAt: string;
}
/** Calls `callback` on every change of this session's help request (and at once when one
 * exists). Loads the help channel (`session_log_help.js`) on first use; it polls the server
 * every 2 s while a request is open and every 3 s otherwise. Never throws. */
export function onHelp(callback: (help: HelpStatus) => void): void;
/** Calls `callback` once for each notice to the page's room (those current now included). */
export function onNotice(callback: (notice: RoomNotice) => void): void;
/** Withdraws this session's open help request (it leaves the queue). Never throws. */
export function cancelHelp(): void;
/** Sends now; resolves when every event logged before the call is delivered (captured errors still in their 2 s collapse window included), rejects with an `Error` after `flushTimeoutMs`. Resolves at once outside a browser. */
export function flush(): Promise<void>;
/** The session token events are sent with, from the moment of import: the configured one, or the one kept in `localStorage` (`session-log:sessionToken`), made there when none is; the module takes the same. "" outside a browser, or when the module could not load. */
export function getSessionToken(): string;
/** Delivery counters. */
export function stats(): SessionLogStats;
/** Stops logging in this browser (kept across reloads, for every tab of the origin) and forgets what waits to be sent. */
export function optOut(): void;
/** Resumes logging after `optOut()`. */
export function optIn(): void;
/** Whether the user opted out. */
export function hasOptedOut(): boolean;
/** Calls `callback` after each failed delivery; `null` removes it. */
export function onDeliveryError(callback: ((error: SessionLogDeliveryError) => void) | null): void;

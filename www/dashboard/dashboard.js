// session-log instructor dashboard: plain ES module, no build step.
//
// Reads the instructor API with the token kept in sessionStorage: /api/sessions and /api/report
// for the tables and panels, /api/session-log for a session's timeline, and the live tail
// /api/session-log/stream (Server-Sent Events read through fetch, because EventSource cannot send
// an Authorization header) to update everything as events arrive, resuming with Last-Event-ID.
//
// Every value that comes from events is put in the page with textContent or as an SVG attribute,
// never as HTML: a student's eventData cannot inject markup or script.

const TOKEN_KEY = "session-log:instructor-token";
const SVG = "http://www.w3.org/2000/svg";
const $ = (selector) => document.querySelector(selector);

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || "",
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
function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

/** Runs `render`, which rebuilds the children of `container`, and gives the keyboard focus back
 * to the rebuilt element of the same session or alert (and class) if it was inside: a live
 * refresh must not throw a keyboard user back to the top of the page. */
function keepFocus(container, render) {
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

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...(options.headers || {}), Authorization: `Bearer ${state.token}` } });
  if (response.status === 401) throw new Unauthorized("the server refused this token");
  if (!response.ok) {
    let message = `HTTP ${response.status}`;
    try { message = (await response.json()).error || message; } catch (_) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

function filters() {
  const params = new URLSearchParams();
  const status = $("#filter-status").value;
  const email = $("#filter-email").value.trim();
  const since = $("#filter-since").value;
  if (status) params.set("status", status);
  if (email) params.set("studentEmail", email);
  if (since) params.set("since", new Date(since).toISOString());
  return params;
}

// ---- sessions table and report panels ---------------------------------------------------------

async function refresh() {
  state.refreshTimer = null;
  try {
    const params = filters();
    const reportParams = new URLSearchParams();
    if (params.get("since")) reportParams.set("since", params.get("since"));
    const [sessions, report] = await Promise.all([
      api(`/api/sessions?${params}`).then((r) => r.json()),
      api(`/api/report?${reportParams}`).then((r) => r.json()),
    ]);
    state.sessions = sessions.sessions;
    state.moreSessions = Boolean(sessions.nextCursor);
    state.report = report;
    renderSessions();
    renderReport();
  } catch (error) {
    handle(error);
  }
}

/** Refreshes at most once a second while events stream in. */
function scheduleRefresh() {
  if (state.refreshTimer === null) state.refreshTimer = setTimeout(refresh, 1000);
}

function minutesSince(iso) {
  return (Date.now() - Date.parse(iso)) / 60000;
}

/** Stuck: in an open `stuck` alert (judged against the room by the server), or past the
 * "Stuck after" minutes of the filters. */
function isStuck(session) {
  if (state.alerts.some((a) => a.rule === "stuck" && a.status === "open" && a.sessionTokens.includes(session.sessionToken))) return true;
  const limit = Number($("#stuck-minutes").value) || 10;
  return session.status === "active" && minutesSince(session.lastProgressAt) >= limit;
}

function sortValue(session, key) {
  if (key === "student") return (session.studentEmail || "").toLowerCase();
  if (key === "lastProgressAt") return -Date.parse(session.lastProgressAt);
  const value = session[key];
  return value === null || value === undefined ? -Infinity : value;
}

/** `ms` as people read it, to the second: "3m 10s", "45s", "1h 5m". */
function duration(ms) {
  const total = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(total / 3600), m = Math.floor((total % 3600) / 60), sec = total % 60;
  if (h) return `${h}h${m ? ` ${m}m` : ""}`;
  if (m) return `${m}m${sec ? ` ${sec}s` : ""}`;
  return `${sec}s`;
}

function ago(iso) {
  const minutes = minutesSince(iso);
  if (minutes < 1) return `${Math.max(0, Math.round(minutes * 60))} s`;
  if (minutes < 120) return `${Math.round(minutes)} min`;
  return `${Math.round(minutes / 60)} h`;
}

function renderSessions() {
  keepFocus($("#sessions tbody"), renderSessionRows);
}

function renderSessionRows() {
  const { key, dir } = state.sort;
  const search = $("#filter-search").value.trim().toLowerCase();
  const matching = state.sessions.filter((s) => !search || s.sessionToken.toLowerCase().startsWith(search) ||
    (s.studentEmail || "").toLowerCase().includes(search));
  const rows = matching.sort((a, b) => {
    const x = sortValue(a, key), y = sortValue(b, key);
    return (x < y ? -1 : x > y ? 1 : 0) * dir;
  });
  const body = $("#sessions tbody");
  body.replaceChildren();
  for (const s of rows) {
    const tr = el("tr");
    tr.dataset.session = s.sessionToken;
    if (s.errors > 0 || s.failedApiCalls > 0) tr.classList.add("has-errors");
    if (isStuck(s)) tr.classList.add("stuck");
    if (s.sessionToken === state.selected) tr.classList.add("selected");
    const step = s.currentStep === null ? "–" : `${s.currentStep}${s.stepName ? ` · ${s.stepName}` : ""}`;
    const student = s.studentEmail ? `${s.studentName ? `${s.studentName} ` : ""}<${s.studentEmail}>` : "anonymous";
    const cells = [
      ["Session", "token", s.sessionToken], ["Student", "student", student], ["Status", `status status-${s.status}`, s.status],
      ["Step", "step", step], ["Events", "events", s.events], ["Errors", "errors", s.errors],
      ["Failed API", "failed", s.failedApiCalls], ["No progress for", "progress", ago(s.lastProgressAt)],
      ["Last seen", "seen", `${ago(s.lastSeen)} ago`],
    ];
    for (const [label, className, value] of cells) {
      const td = el("td", className, value);
      td.dataset.label = label; // the phone layout's card shows it before the value
      tr.append(td);
    }
    tr.tabIndex = 0;
    tr.setAttribute("aria-label", `${s.sessionToken}, ${student}, ${s.status}, step ${step}, ${s.errors} errors: open the timeline`);
    tr.addEventListener("click", () => select(s.sessionToken));
    tr.addEventListener("keydown", (event) => { if (event.key === "Enter" || event.key === " ") { event.preventDefault(); select(s.sessionToken); } });
    body.append(tr);
  }
  // The API pages sessions (500 a page, most recently seen first); the table shows the first page.
  $("#session-count").textContent = state.moreSessions
    ? `(the ${rows.length} most recently seen; filter to narrow)`
    : `(${rows.length})`;
  for (const th of document.querySelectorAll("#sessions th[data-sort]")) {
    th.classList.toggle("sorted-asc", th.dataset.sort === key && dir === 1);
    th.classList.toggle("sorted-desc", th.dataset.sort === key && dir === -1);
  }
}

function renderReport() {
  const r = state.report;
  $("#stat-sessions").textContent = r.sessions;
  $("#stat-active").textContent = r.activeSessions;
  $("#stat-completed").textContent = r.completedSessions;
  $("#stat-rate").textContent = `${Math.round(r.completionRate * 100)} %`;
  $("#stat-errors").textContent = r.eventsByType.error || 0;
  const errors = $("#errors tbody");
  errors.replaceChildren();
  for (const e of r.topErrors) {
    const tr = el("tr");
    tr.append(el("td", null, e.errorType), el("td", null, e.count), el("td", null, e.sessions));
    tr.addEventListener("click", () => showSessions(`Sessions with ${e.errorType}`,
      state.sessions.filter((s) => s.errorsByType && s.errorsByType[e.errorType]).map((s) => s.sessionToken)));
    errors.append(tr);
  }
  if (r.topErrors.length === 0) {
    const tr = el("tr");
    tr.append(el("td", "muted", "no errors"));
    errors.append(tr);
  }
  const funnel = $("#funnel");
  funnel.replaceChildren();
  const most = Math.max(1, ...r.funnel.map((f) => f.sessions));
  for (const f of r.funnel) {
    const row = el("div", "row");
    const bar = el("div", "bar");
    bar.style.width = `${(100 * f.sessions) / most}%`;
    const median = f.medianTimeMs === null ? "" : ` · median ${duration(f.medianTimeMs)} on this step`;
    row.append(el("span", "name", `${f.step}${f.stepName ? ` · ${f.stepName}` : ""}`), bar, el("span", "muted", `${f.sessions} sessions${median}`));
    funnel.append(row);
  }
}

// ---- one session's timeline -------------------------------------------------------------------

async function select(token) {
  state.selected = token;
  renderSessions();
  try {
    const events = [];
    let cursor = null;
    do {
      const params = new URLSearchParams({ sessionToken: token, order: "asc", limit: "1000" });
      if (cursor) params.set("cursor", cursor);
      const page = await api(`/api/session-log?${params}`).then((r) => r.json());
      events.push(...page.events);
      cursor = page.nextCursor;
    } while (cursor && events.length < 5000);
    if (state.selected !== token) return;
    state.timeline = events;
    const session = state.sessions.find((s) => s.sessionToken === token);
    $("#detail-token").textContent = token;
    const email = (session && session.studentEmail) || (events.find((e) => e.student_email) || {}).student_email || "";
    $("#detail-student").textContent = email;
    $("#detail-student").hidden = !email;
    fillTimelineFilters(events);
    $("#detail").hidden = false;
    renderTimeline();
  } catch (error) {
    handle(error);
  }
}

function eventTime(e) {
  const client = e.event_data && typeof e.event_data.timestamp === "string" ? Date.parse(e.event_data.timestamp) : NaN;
  return Number.isFinite(client) ? client : Date.parse(e.created_at);
}

function eventStep(e) {
  const d = e.event_data || {};
  const step = e.event_type === "navigation" && Number.isInteger(d.to) ? d.to : d.currentStep;
  return Number.isInteger(step) ? step : null;
}

function isFailedApi(e) {
  const d = e.event_data || {};
  return e.event_type === "api_call" && (d.success === false || (typeof d.status === "number" && (d.status < 100 || d.status >= 400)));
}

/** Fields the sentences below say themselves, or that every event carries. */
const CONTEXT_FIELDS = new Set(["currentStep", "stepName", "userAgent", "timestamp", "demoMode", "sessionToken"]);

/** A value as short text: strings as they are, the rest as JSON. */
function short(value) {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text.length > 80 ? `${text.slice(0, 79)}…` : text;
}

/** The fields of `data` not in `skip`, as "key: value, key: value". */
function details(data, skip) {
  return Object.entries(data).filter(([key]) => !skip.includes(key) && !CONTEXT_FIELDS.has(key))
    .map(([key, value]) => `${key}: ${short(value)}`).join(", ");
}

/** One event as a sentence by its type: "2 → 3 · Provision Services", "deploy_failed: Function
 * deployment timeout (status 504)", "POST /api/deploy → 500 · 1234 ms", "phone_selected ·
 * provider: twilio". The raw JSON stays one click away. */
function sentence(e) {
  const d = e.event_data && typeof e.event_data === "object" && !Array.isArray(e.event_data) ? e.event_data : {};
  const more = (text, skip) => { const rest = details(d, skip); return rest ? `${text} · ${rest}` : text; };
  switch (e.event_type) {
    case "navigation": {
      const name = d.toStepName || d.stepName;
      return more(`${short(d.from ?? "–")} → ${short(d.to ?? "–")}${name ? ` · ${short(name)}` : ""}`, ["from", "to", "fromStepName", "toStepName"]);
    }
    case "error": {
      const status = d.statusCode ?? d.status;
      return more(`${short(d.errorType ?? "error")}: ${short(d.errorMessage ?? "")}${status !== undefined ? ` (status ${short(status)})` : ""}`,
        ["errorType", "errorMessage", "statusCode", "status"]);
    }
    case "api_call": {
      const ms = [d.duration, d.durationMs, d.deploymentTime, d.responseTime, d.latencyMs].find((v) => typeof v === "number");
      return more(`${short(d.method ?? "")} ${short(d.endpoint ?? "")} → ${short(d.status ?? "–")}${ms !== undefined ? ` · ${ms} ms` : ""}`.trim(),
        ["method", "endpoint", "status", "success", "duration", "durationMs", "deploymentTime", "responseTime", "latencyMs"]);
    }
    case "action":
      return more(short(d.actionName ?? "action"), ["actionName"]);
    case "state_change":
      return more(`${short(d.stateName ?? "state")}: ${short(d.oldValue ?? null)} → ${short(d.newValue ?? null)}`, ["stateName", "oldValue", "newValue"]);
    case "help_request":
      return `asked for help: ${short(d.message ?? "")}`;
    default:
      return details(d, []) || e.event_type;
  }
}

function renderTimeline() {
  const events = state.timeline;
  const box = $("#timeline");
  box.replaceChildren();
  const width = box.clientWidth || 900, height = 260, left = 170, right = 20, top = 20, bottom = 30;
  const times = events.map(eventTime);
  const t0 = Math.min(...times), t1 = Math.max(...times, t0 + 1000);
  let maxStep = 0;
  const names = new Map();
  for (const e of events) {
    const step = eventStep(e);
    if (step !== null) maxStep = Math.max(maxStep, step);
    const d = e.event_data || {};
    const name = e.event_type === "navigation" ? d.toStepName : d.stepName;
    if (step !== null && typeof name === "string") names.set(step, name);
  }
  const x = (t) => left + ((t - t0) / (t1 - t0)) * (width - left - right);
  const y = (step) => top + (maxStep === 0 ? 0.5 : step / maxStep) * (height - top - bottom);
  box.setAttribute("viewBox", `0 0 ${width} ${height}`);
  for (let step = 0; step <= maxStep; step++) {
    box.append(svg("line", { class: "axis", x1: left, x2: width - right, y1: y(step), y2: y(step) }));
    const label = `${step}${names.has(step) ? ` · ${names.get(step)}` : ""}`;
    box.append(svg("text", { x: 4, y: y(step) + 4 }, label.length > 26 ? `${label.slice(0, 25)}…` : label));
  }
  box.append(svg("text", { x: left, y: height - 8 }, new Date(t0).toLocaleTimeString()));
  box.append(svg("text", { x: width - right, y: height - 8, "text-anchor": "end" }, new Date(t1).toLocaleTimeString()));
  // The step line: horizontal while on a step, vertical when moving.
  let current = null, points = [];
  events.forEach((e, i) => {
    const step = eventStep(e);
    if (step === null) return;
    if (current !== null && step !== current) points.push(`${x(times[i])},${y(current)}`);
    points.push(`${x(times[i])},${y(step)}`);
    current = step;
  });
  if (points.length) box.append(svg("polyline", { class: "steps", points: points.join(" ") }));
  // Markers: errors and failed API calls stand out; other events are small dots.
  current = 0;
  events.forEach((e, i) => {
    const step = eventStep(e);
    if (step !== null) current = step;
    const cx = x(times[i]), cy = y(current);
    let marker;
    if (e.event_type === "error") marker = svg("circle", { class: "error", cx, cy, r: 6 });
    else if (isFailedApi(e)) marker = svg("path", { class: "api", d: `M${cx},${cy - 7} l6,11 h-12 z` });
    else marker = svg("circle", { class: "other", cx, cy, r: 3 });
    marker.append(svg("title", {}, `${e.event_type} at ${new Date(times[i]).toLocaleTimeString()}`));
    box.append(marker);
  });
  const body = $("#events tbody");
  body.replaceChildren();
  const type = $("#timeline-type").value, errorType = $("#timeline-error").value;
  const shown = events.filter((e) => (!type || e.event_type === type) &&
    (!errorType || (e.event_type === "error" && e.event_data && e.event_data.errorType === errorType)));
  for (const e of shown) {
    const tr = el("tr", e.event_type === "error" || isFailedApi(e) ? "error" : "");
    const step = eventStep(e);
    const what = el("td", "what");
    const raw = el("details");
    raw.append(el("summary", null, "JSON"), el("pre", null, JSON.stringify(e.event_data, null, 2)));
    what.append(el("span", "sentence", sentence(e)), raw);
    tr.append(
      el("td", null, new Date(eventTime(e)).toLocaleTimeString()), el("td", null, e.event_type),
      el("td", null, step === null ? "" : step), what,
    );
    body.append(tr);
  }
}

/** The timeline's filters offer the event and error types of the session's events. */
function fillTimelineFilters(events) {
  for (const [id, values] of [
    ["#timeline-type", events.map((e) => e.event_type)],
    ["#timeline-error", events.filter((e) => e.event_type === "error").map((e) => e.event_data && e.event_data.errorType)],
  ]) {
    const select = $(id);
    const keep = select.value;
    select.replaceChildren(el("option", null, "all"));
    select.firstChild.value = "";
    for (const value of [...new Set(values.filter((v) => typeof v === "string"))].sort()) {
      const option = el("option", null, value);
      option.value = value;
      select.append(option);
    }
    select.value = [...select.options].some((o) => o.value === keep) ? keep : "";
  }
}

// ---- live tail --------------------------------------------------------------------------------

function setLive(on) {
  const badge = $("#live");
  badge.textContent = on ? "live" : "offline";
  badge.className = `badge ${on ? "on" : "off"}`;
}

/** Reads the Server-Sent Events of `path` through fetch (it needs an Authorization header) and
 * hands each message's `id` and parsed `data` to `onMessage`, resuming after `lastId()` (the
 * opaque id of the last message) with Last-Event-ID; reconnects after a break. */
async function readStream(path, slot, lastId, onMessage, onState) {
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

function connectLive() {
  readStream("/api/session-log/stream", "live", () => state.lastEventId, onEvent, setLive);
}

function onEvent(id, event) {
  if (id !== null) state.lastEventId = id;
  scheduleRefresh();
  if (event.session_token === state.selected) {
    state.timeline.push(event);
    renderTimeline();
  }
}

// ---- alerts -----------------------------------------------------------------------------------

const RULE_NAMES = {
  error_burst: "Error burst", error_pattern: "Error pattern", stuck: "Stuck", api_failures: "API failing",
  help_request: "Help request", room_paused: "Room paused", help_flood: "Help flood (flagged)",
};

/** At most this many help requests get a toast of their own within TOAST_HELP_WINDOW_MS; the
 * rest make one "N more help requests" toast (a flood cannot cover the screen). */
const MAX_HELP_TOASTS = 3;
const TOAST_HELP_WINDOW_MS = 10000;
const helpToastTimes = [];

/** How soon after the first of several alerts opened together they make one toast (ms). */
const TOAST_GATHER_MS = 1500;
/** At most this many toasts on screen; help requests are never pushed out. */
const MAX_TOASTS = 3;

/** The server's order (GET /api/alerts): open first, help requests, then critical, warning,
 * info, each by lastSeenAt newest first; resolved by openedAt newest first. */
function rankAlerts(alerts) {
  const urgency = (a) => (a.rule === "help_request" ? 0 : { critical: 1, warning: 2, info: 3 }[a.severity] ?? 4);
  return alerts.sort((a, b) => {
    const open = (b.status === "open") - (a.status === "open");
    if (open) return open;
    if (a.status === "open") {
      return urgency(a) - urgency(b) || b.lastSeenAt.localeCompare(a.lastSeenAt) || b.id.localeCompare(a.id);
    }
    return b.openedAt.localeCompare(a.openedAt) || b.id.localeCompare(a.id);
  });
}

async function loadAlerts() {
  try {
    const answer = await api("/api/alerts?status=all&limit=200").then((r) => r.json());
    state.alerts = answer.alerts;
    renderAlerts();
  } catch (error) {
    handle(error);
  }
}

/** An alert's students as people read them: "Ada Lovelace <ada@example.com>" for one student;
 * names (or emails) for several, the first three and "+N more". */
function studentsOf(alert) {
  const nameOf = (email) => (state.sessions.find((s) => s.studentEmail === email && s.studentName) || {}).studentName;
  const emails = alert.studentEmails;
  if (emails.length === 1) {
    const name = nameOf(emails[0]);
    return name ? `${name} <${emails[0]}>` : emails[0];
  }
  const shown = emails.slice(0, 3).map((email) => nameOf(email) || email).join(", ");
  return emails.length > 3 ? `${shown} +${emails.length - 3} more` : shown;
}

function ackButton(alert) {
  const ack = el("button", "ack", "Acknowledge");
  ack.type = "button";
  ack.setAttribute("aria-label", `Acknowledge: ${RULE_NAMES[alert.rule] || alert.rule}, ${alert.message}`);
  ack.addEventListener("click", (event) => { event.stopPropagation(); acknowledge(alert.id); });
  return ack;
}

/** "Mute": resolves the alert and silences its session (help request) or address (flood). */
function muteButton(alert) {
  const what = alert.rule === "help_flood" ? `address ${alert.address}` : `session ${alert.sessionTokens[0]}`;
  const mute = el("button", "mute", "Mute");
  mute.type = "button";
  mute.setAttribute("aria-label", `Mute ${what}: no more help alerts from it`);
  mute.addEventListener("click", (event) => { event.stopPropagation(); act(alert.id, "mute"); });
  return mute;
}

function alertRow(alert) {
  const li = el("li", `${alert.severity} ${alert.status}`);
  li.dataset.alert = alert.id;
  const who = studentsOf(alert);
  const open = el("button", "link message", `${alert.message}${who ? ` · ${who}` : ""}`);
  open.type = "button";
  open.addEventListener("click", () => openAlert(alert));
  const counts = alert.rule === "stuck" ? `${alert.sessions} ${alert.sessions === 1 ? "session" : "sessions"}`
    : `×${alert.count}${alert.sessions > 1 ? ` · ${alert.sessions} sessions` : ""}`;
  li.append(
    el("span", "rule", RULE_NAMES[alert.rule] || alert.rule), open,
    el("span", "meta", `${counts} · ${ago(alert.lastSeenAt)} ago${alert.status === "open" ? "" : " · resolved"}`),
  );
  li.append(alert.acknowledgedAt ? el("span", "meta", alert.mutedAt ? "muted" : "acknowledged") : ackButton(alert));
  if (alert.rule === "help_flood" && alert.status === "open" && !alert.mutedAt) li.append(muteButton(alert));
  return li;
}

function renderAlerts() {
  keepFocus($("#alerts"), renderAlertLists);
}

function renderAlertLists() {
  rankAlerts(state.alerts);
  const open = state.alerts.filter((a) => a.status === "open");
  const help = open.filter((a) => a.rule === "help_request");
  const notices = open.filter((a) => a.severity === "info");
  const others = open.filter((a) => a.rule !== "help_request" && a.severity !== "info");
  const resolved = state.alerts.filter((a) => a.status !== "open").slice(0, 20);
  const paging = help.length + others.length;
  $("#alert-count").textContent = paging ? `(${paging} open)` : "(none open)";
  document.title = `${paging ? `(${paging}) ` : ""}session-log · instructor dashboard`;
  const paused = notices.find((a) => a.rule === "room_paused");
  $("#room-paused").hidden = !paused;
  if (paused) $("#room-paused").textContent = `Room paused: ${paused.count} of ${paused.sessions} active students are on their step longer than usual (the instructor is talking?), so no more students are flagged as stuck meanwhile. Since ${new Date(paused.openedAt).toLocaleTimeString()}.`;
  // Help requests are pinned above the list, each with its student's words, until acknowledged.
  const helpList = $("#help-list");
  helpList.replaceChildren();
  for (const alert of help) {
    const li = el("li", "help");
    li.dataset.alert = alert.id;
    const who = studentsOf(alert) || alert.sessionTokens[0];
    const open = el("button", "link who", `${who} asks for help`);
    open.type = "button";
    open.addEventListener("click", () => openAlert(alert));
    const asked = alert.count > 1 ? ` · asked ${alert.count} times` : "";
    li.append(open, el("span", "said", "wrote:"), el("q", "words", alert.message),
      el("span", "meta", `${ago(alert.openedAt)} ago · ${alert.sessionTokens[0]}${asked}`), ackButton(alert), muteButton(alert));
    helpList.append(li);
  }
  helpList.hidden = help.length === 0;
  const list = $("#alert-list");
  list.replaceChildren();
  for (const alert of [...others, ...resolved]) list.append(alertRow(alert));
  if (!others.length && !resolved.length) list.append(el("li", "muted", help.length ? "No other alerts." : "No alerts."));
}

/** Shows `tokens` as a clickable list under the alerts, titled `title`. */
function showSessions(title, tokens) {
  const box = $("#alert-sessions");
  $("#alert-sessions-title").textContent = title;
  const list = box.querySelector("ul");
  list.replaceChildren();
  for (const token of tokens) {
    const session = state.sessions.find((s) => s.sessionToken === token);
    const li = el("li");
    const link = el("button", "link", session && session.studentEmail ? `${token} · ${session.studentEmail}` : token);
    link.type = "button";
    link.addEventListener("click", () => select(token));
    li.append(link);
    list.append(li);
  }
  box.hidden = false;
}

function openAlert(alert) {
  if (alert.sessionTokens.length === 1) {
    $("#alert-sessions").hidden = true;
    select(alert.sessionTokens[0]);
  } else {
    showSessions(`Sessions of “${alert.message}”`, alert.sessionTokens);
  }
}

function acknowledge(id) {
  return act(id, "ack");
}

/** `POST /api/alerts/{id}/ack` or `…/mute`, then the alert as answered; its toast goes. */
async function act(id, action) {
  try {
    const answer = await api(`/api/alerts/${encodeURIComponent(id)}/${action}`, { method: "POST" }).then((r) => r.json());
    upsertAlert(answer.alert);
    for (const node of document.querySelectorAll("#toasts .toast")) if (node.dataset.alert === id) node.remove();
  } catch (error) {
    handle(error);
  }
}

function upsertAlert(alert) {
  const i = state.alerts.findIndex((a) => a.id === alert.id);
  if (i >= 0) state.alerts[i] = alert; else state.alerts.unshift(alert);
  renderAlerts();
}

/** Shows a toast; a help request's stays until dismissed, the others go after 10 s, and the
 * oldest non-help toast gives way past MAX_TOASTS. */
function showToast(text, className, onOpen, sticky, id) {
  const node = el("div", `toast ${className}`);
  if (id) node.dataset.alert = id;
  const body = el("button", "toast-body", text);
  body.type = "button";
  body.addEventListener("click", () => { onOpen(); node.remove(); });
  node.append(body);
  if (sticky) {
    const close = el("button", "dismiss", "Dismiss");
    close.type = "button";
    close.addEventListener("click", () => node.remove());
    node.append(close);
  } else {
    setTimeout(() => node.remove(), 10000);
  }
  const box = $("#toasts");
  box.append(node);
  for (;;) {
    const all = [...box.children];
    if (all.length <= MAX_TOASTS) break;
    const victim = all.find((t) => !t.classList.contains("help"));
    if (!victim) break;
    victim.remove();
  }
}

/** Alerts opened within TOAST_GATHER_MS of each other make one toast ("5 new alerts"); a help
 * request always gets its own. Updates (sessions joining a group) make none. */
const gathered = [];
function toastOpened(alert) {
  if (alert.severity === "info") return; // a room pause is a quiet notice, not a page
  if (alert.rule === "help_request") {
    const now = Date.now();
    while (helpToastTimes.length && helpToastTimes[0] < now - TOAST_HELP_WINDOW_MS) helpToastTimes.shift();
    helpToastTimes.push(now);
    if (helpToastTimes.length > MAX_HELP_TOASTS) {
      // Many at once: one quiet toast pointing at the pinned list instead of one each.
      for (const node of document.querySelectorAll("#toasts .toast.more-help")) node.remove();
      const more = helpToastTimes.length - MAX_HELP_TOASTS;
      showToast(`${more} more help ${more === 1 ? "request" : "requests"} (see the list)`, "warning more-help", () => $("#alerts").scrollIntoView(), false);
      return;
    }
    const who = studentsOf(alert) || alert.sessionTokens[0];
    showToast(`Help request from ${who}, who wrote: “${alert.message}”`, "critical help", () => openAlert(alert), true, alert.id);
    return;
  }
  gathered.push(alert);
  if (gathered.length > 1) return;
  setTimeout(() => {
    const batch = gathered.splice(0);
    if (batch.length === 1) {
      const [one] = batch;
      showToast(`${RULE_NAMES[one.rule] || one.rule}: ${one.message}`, one.severity, () => openAlert(one), false, one.id);
    } else {
      const critical = batch.some((a) => a.severity === "critical");
      showToast(`${batch.length} new alerts`, critical ? "critical" : "warning", () => $("#alerts").scrollIntoView(), false);
    }
  }, TOAST_GATHER_MS);
}

function onAlert(id, alert) {
  if (id !== null) state.lastAlertId = id;
  const { change, ...rest } = alert;
  upsertAlert(rest);
  if (change === "alert.opened") toastOpened(rest);
  // A request folded into a flood, acknowledged or muted elsewhere: its toast goes.
  if (change === "alert.resolved") {
    for (const node of document.querySelectorAll("#toasts .toast")) if (node.dataset.alert === rest.id) node.remove();
  }
}

function connectAlerts() {
  readStream("/api/alerts/stream", "alertsLive", () => state.lastAlertId, onAlert, () => {});
}

// ---- one student ------------------------------------------------------------------------------

async function showStudent(email) {
  try {
    const page = await api(`/api/students/${encodeURIComponent(email)}`).then((r) => r.json());
    $("#student-email").textContent = page.studentEmail;
    $("#student-name").textContent = page.studentName || "";
    const t = page.totals;
    $("#student-totals").textContent = `${t.sessions} sessions, ${t.completedSessions} completed · ${t.events} events, ` +
      `${t.errors} errors, ${t.failedApiCalls} failed API calls · ${Math.round(t.durationMs / 60000)} min · furthest step ${t.maxStep ?? "–"}`;
    const body = $("#student-sessions tbody");
    body.replaceChildren();
    for (const s of page.sessions) {
      const tr = el("tr");
      tr.append(
        el("td", null, s.sessionToken), el("td", `status-${s.status}`, s.status),
        el("td", null, new Date(s.firstSeen).toLocaleString()), el("td", null, `${Math.round(s.durationMs / 60000)} min`),
        el("td", null, s.maxStep ?? "–"), el("td", null, s.events), el("td", null, s.errors), el("td", null, s.failedApiCalls),
      );
      tr.addEventListener("click", () => select(s.sessionToken));
      body.append(tr);
    }
    $("#student").hidden = false;
  } catch (error) {
    handle(error);
  }
}

// ---- export, token, wiring --------------------------------------------------------------------

async function exportAs(format) {
  try {
    const params = new URLSearchParams({ format });
    const current = filters();
    for (const name of ["since", "studentEmail"]) if (current.get(name)) params.set(name, current.get(name));
    const response = await api(`/api/session-log/export?${params}`);
    const blob = await response.blob();
    const link = el("a");
    link.href = URL.createObjectURL(blob);
    link.download = `session-log-${new Date().toISOString().replaceAll(":", "-")}.${format}`;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  } catch (error) {
    handle(error);
  }
}

function handle(error) {
  if (error instanceof Unauthorized) {
    signOut(error.message);
  } else {
    console.warn("session-log dashboard:", error);
  }
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = "";
  for (const slot of ["live", "alertsLive"]) {
    if (state[slot]) state[slot].abort();
    state[slot] = null;
  }
  setLive(false);
  $("#board").hidden = true;
  $("#sign-out").hidden = true;
  $("#token-form").hidden = false;
  $("#token-error").textContent = message || "";
}

function open() {
  $("#token-form").hidden = true;
  $("#board").hidden = false;
  $("#sign-out").hidden = false;
  refresh();
  loadAlerts();
  connectLive();
  connectAlerts();
}

$("#token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.token = $("#token").value.trim();
  if (!state.token) return;
  sessionStorage.setItem(TOKEN_KEY, state.token);
  open();
});
$("#sign-out").addEventListener("click", () => signOut(""));
for (const th of document.querySelectorAll("#sessions th[data-sort]")) {
  th.addEventListener("click", () => {
    const key = th.dataset.sort;
    state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : 1 };
    renderSessions();
  });
}
for (const id of ["#filter-status", "#filter-email", "#filter-since"]) $(id).addEventListener("change", refresh);
$("#stuck-minutes").addEventListener("change", renderSessions);
$("#filter-search").addEventListener("input", renderSessions);
for (const id of ["#timeline-type", "#timeline-error"]) $(id).addEventListener("change", renderTimeline);
$("#detail-student").addEventListener("click", () => showStudent($("#detail-student").textContent));
$("#export-csv").addEventListener("click", () => exportAs("csv"));
$("#export-ndjson").addEventListener("click", () => exportAs("ndjson"));
setInterval(() => { if (state.token) refresh(); }, 30000); // statuses and "no progress for" move with time
window.addEventListener("resize", () => { if (state.selected) renderTimeline(); });

if (state.token) open(); else signOut("");

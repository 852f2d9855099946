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

function isStuck(session) {
  const limit = Number($("#stuck-minutes").value) || 10;
  return session.status === "active" && minutesSince(session.lastProgressAt) >= limit;
}

function sortValue(session, key) {
  if (key === "student") return (session.studentEmail || "").toLowerCase();
  if (key === "lastProgressAt") return -Date.parse(session.lastProgressAt);
  const value = session[key];
  return value === null || value === undefined ? -Infinity : value;
}

function ago(iso) {
  const minutes = minutesSince(iso);
  if (minutes < 1) return `${Math.max(0, Math.round(minutes * 60))} s`;
  if (minutes < 120) return `${Math.round(minutes)} min`;
  return `${Math.round(minutes / 60)} h`;
}

function renderSessions() {
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
    tr.append(
      el("td", null, s.sessionToken), el("td", null, student), el("td", `status-${s.status}`, s.status),
      el("td", null, step), el("td", null, s.events), el("td", null, s.errors), el("td", null, s.failedApiCalls),
      el("td", null, ago(s.lastProgressAt)), el("td", null, `${ago(s.lastSeen)} ago`),
    );
    tr.addEventListener("click", () => select(s.sessionToken));
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
    const median = f.medianTimeMs === null ? "" : ` · median ${Math.round(f.medianTimeMs / 1000)} s`;
    row.append(el("span", null, `${f.step}${f.stepName ? ` · ${f.stepName}` : ""}`), bar, el("span", "muted", `${f.sessions} sessions${median}`));
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
    tr.append(
      el("td", null, new Date(eventTime(e)).toLocaleTimeString()), el("td", null, e.event_type),
      el("td", null, step === null ? "" : step), el("td", null, JSON.stringify(e.event_data)),
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
  help_request: "Help request",
};

async function loadAlerts() {
  try {
    const answer = await api("/api/alerts?status=all&limit=200").then((r) => r.json());
    state.alerts = answer.alerts;
    renderAlerts();
  } catch (error) {
    handle(error);
  }
}

function renderAlerts() {
  const open = state.alerts.filter((a) => a.status === "open");
  const resolved = state.alerts.filter((a) => a.status !== "open").slice(0, 20);
  $("#alert-count").textContent = open.length ? `(${open.length} open)` : "(none open)";
  document.title = `${open.length ? `(${open.length}) ` : ""}session-log · instructor dashboard`;
  const list = $("#alert-list");
  list.replaceChildren();
  for (const alert of [...open, ...resolved]) {
    const li = el("li", `${alert.severity} ${alert.status}`);
    li.dataset.alert = alert.id;
    const who = alert.studentEmails.length ? ` · ${alert.studentEmails.join(", ")}` : "";
    li.append(
      el("span", "rule", RULE_NAMES[alert.rule] || alert.rule),
      el("span", "message", `${alert.message}${who}`),
      el("span", "muted", `×${alert.count} · ${ago(alert.lastSeenAt)} ago${alert.status === "open" ? "" : " · resolved"}`),
    );
    if (!alert.acknowledgedAt) {
      const ack = el("button", "ack", "Acknowledge");
      ack.type = "button";
      ack.addEventListener("click", (event) => { event.stopPropagation(); acknowledge(alert.id); });
      li.append(ack);
    } else {
      li.append(el("span", "muted", "acknowledged"));
    }
    li.addEventListener("click", () => openAlert(alert));
    list.append(li);
  }
  if (!open.length && !resolved.length) list.append(el("li", "muted", "No alerts."));
}

/** Shows `tokens` as a clickable list under the alerts, titled `title`. */
function showSessions(title, tokens) {
  const box = $("#alert-sessions");
  $("#alert-sessions-title").textContent = title;
  const list = box.querySelector("ul");
  list.replaceChildren();
  for (const token of tokens) {
    const session = state.sessions.find((s) => s.sessionToken === token);
    const li = el("li", null, session && session.studentEmail ? `${token} · ${session.studentEmail}` : token);
    li.addEventListener("click", () => select(token));
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

async function acknowledge(id) {
  try {
    const answer = await api(`/api/alerts/${encodeURIComponent(id)}/ack`, { method: "POST" }).then((r) => r.json());
    upsertAlert(answer.alert);
  } catch (error) {
    handle(error);
  }
}

function upsertAlert(alert) {
  const i = state.alerts.findIndex((a) => a.id === alert.id);
  if (i >= 0) state.alerts[i] = alert; else state.alerts.unshift(alert);
  renderAlerts();
}

function toast(alert) {
  const node = el("div", `toast ${alert.severity}`, `${RULE_NAMES[alert.rule] || alert.rule}: ${alert.message}`);
  node.addEventListener("click", () => { openAlert(alert); node.remove(); });
  $("#toasts").append(node);
  setTimeout(() => node.remove(), 10000);
}

function onAlert(id, alert) {
  if (id !== null) state.lastAlertId = id;
  const { change, ...rest } = alert;
  upsertAlert(rest);
  if (change === "alert.opened") toast(rest);
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

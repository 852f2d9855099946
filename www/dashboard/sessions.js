// The sessions table and the report panels.

import { $, ago, api, duration, el, filters, handle, keepFocus, minutesSince, SESSIONS_LOADED, state } from "./common.js";
import { select } from "./timeline.js";

export async function refresh() {
  state.refreshTimer = null;
  try {
    const params = filters();
    const reportParams = new URLSearchParams();
    for (const name of ["since", "room"]) if (params.get(name)) reportParams.set(name, params.get(name));
    const [sessions, report] = await Promise.all([
      api(`/api/sessions?${params}`).then((r) => r.json()),
      api(`/api/report?${reportParams}`).then((r) => r.json()),
    ]);
    state.sessions = sessions.sessions;
    state.moreSessions = Boolean(sessions.nextCursor);
    state.report = report;
    renderSessions();
    renderReport();
    document.dispatchEvent(new Event(SESSIONS_LOADED));
  } catch (error) {
    handle(error);
  }
}

/** Refreshes at most once a second while events stream in. */
export function scheduleRefresh() {
  if (state.refreshTimer === null) state.refreshTimer = setTimeout(refresh, 1000);
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

export function renderSessions() {
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
    let median = f.medianTimeMs === null ? "" : ` · median ${duration(f.medianTimeMs)} on this step`;
    // One room's report also gives the workshop's earlier rooms' median.
    if (f.earlierMedianTimeMs !== undefined) median += ` · earlier runs ${duration(f.earlierMedianTimeMs)}`;
    row.append(el("span", "name", `${f.step}${f.stepName ? ` · ${f.stepName}` : ""}`), bar, el("span", "muted", `${f.sessions} sessions${median}`));
    funnel.append(row);
  }
}

/** Shows `tokens` as a clickable list under the alerts, titled `title`. */
export function showSessions(title, tokens) {
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

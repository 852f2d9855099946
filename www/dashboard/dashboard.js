// session-log instructor dashboard: plain ES module, no build step.
//
// Reads the instructor API with the token kept in sessionStorage: /api/sessions and /api/report
// for the tables and panels, /api/session-log for a session's timeline, and the live tail
// /api/session-log/stream (Server-Sent Events read through fetch, because EventSource cannot send
// an Authorization header) to update everything as events arrive, resuming with Last-Event-ID.
//
// Every value that comes from events is put in the page with textContent or as an SVG attribute,
// never as HTML: a student's eventData cannot inject markup or script.
//
// This file wires the page; the parts are ES modules beside it (no build step): common.js,
// sessions.js, timeline.js, live.js, alerts.js, student.js, rooms.js, admin.js.

// Export, the token form, and the wiring of the page.

import { connectAlerts, loadAlerts, renderAlerts } from "./alerts.js";
import { $, api, el, filters, handle, SELECTED, SESSIONS_LOADED, state, TOKEN_KEY, whenUnauthorized } from "./common.js";
import { setUpHelperName } from "./help.js";
import { connectLive, setLive } from "./live.js";
import { loadAdmin, wireAdmin } from "./admin.js";
import { chooseRoom, loadRooms, showProjector } from "./rooms.js";
import { refresh, renderSessions } from "./sessions.js";
import { showStudent } from "./student.js";
import { renderTimeline } from "./timeline.js";

async function exportAs(format) {
  try {
    const params = new URLSearchParams({ format });
    const current = filters();
    for (const name of ["since", "studentEmail", "room"]) if (current.get(name)) params.set(name, current.get(name));
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

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = "";
  for (const slot of ["live", "alertsLive"]) {
    if (state[slot]) state[slot].abort();
    state[slot] = null;
  }
  setLive(false);
  $("#board").hidden = true;
  $("#room-bar").hidden = true;
  $("#admin").hidden = true;
  $("#sign-out").hidden = true;
  $("#token-form").hidden = false;
  $("#token-error").textContent = message || "";
}

/** Reads everything for the room shown, and follows its live tail and alerts from now on. */
function load() {
  state.lastEventId = null;
  state.lastAlertId = null;
  refresh();
  setUpHelperName();
  loadAlerts();
  connectLive();
  connectAlerts();
}

async function open() {
  $("#token-form").hidden = true;
  $("#board").hidden = false;
  $("#sign-out").hidden = false;
  await loadRooms();
  load();
  loadAdmin();
}

whenUnauthorized(signOut);
// The live tail and the alert stream end with the page: a browser holds at most six connections
// to a server, and streams left to time out would starve the next page's reads.
window.addEventListener("pagehide", () => {
  for (const slot of ["live", "alertsLive"]) if (state[slot]) state[slot].abort();
});
document.addEventListener(SELECTED, renderSessions);
// A help request names its student once the sessions that carry the name are loaded.
document.addEventListener(SESSIONS_LOADED, renderAlerts);
$("#token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.token = $("#token").value.trim();
  if (!state.token) return;
  sessionStorage.setItem(TOKEN_KEY, state.token);
  open();
});
$("#sign-out").addEventListener("click", () => signOut(""));
$("#room").addEventListener("change", () => {
  chooseRoom($("#room").value);
  state.selected = null;
  $("#detail").hidden = true;
  load();
});
wireAdmin();
$("#show-join").addEventListener("click", () => showProjector(true));
$("#hide-join").addEventListener("click", () => showProjector(false));
$("#projector").addEventListener("keydown", (event) => { if (event.key === "Escape") showProjector(false); });
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

/** A sign-in link carries the token in the fragment (#token=…), which no server or proxy log
 * sees: it is kept in this tab and taken out of the address bar at once. Returns whether the
 * address had one. */
function takeLinkToken() {
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  if (!token) return false;
  state.token = token;
  sessionStorage.setItem(TOKEN_KEY, token);
  history.replaceState(null, "", location.pathname + location.search);
  return true;
}
// A sign-in link opened in a tab already on the dashboard changes only the fragment.
window.addEventListener("hashchange", () => {
  if (!takeLinkToken()) return;
  state.room = new URLSearchParams(location.search).get("room") || "";
  open();
});
takeLinkToken();
if (state.token) open(); else signOut("");

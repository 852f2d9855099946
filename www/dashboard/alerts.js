// Alerts: the list, the toasts, acknowledging and muting, the alert stream.

import { $, ago, api, el, handle, inRoom, keepFocus, readStream, state } from "./common.js";
import { renderHelpQueue, tellTheRoom } from "./help.js";
import { showSessions } from "./sessions.js";
import { select } from "./timeline.js";

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

export async function loadAlerts() {
  try {
    const answer = await api(inRoom("/api/alerts?status=all&limit=200")).then((r) => r.json());
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
  const help = alert.help || {};
  const done = help.status === "cancelled" ? "cancelled by the student"
    : help.status === "resolved" && help.claimedBy ? `resolved by ${help.claimedBy}` : "acknowledged";
  li.append(alert.acknowledgedAt ? el("span", "meta", alert.mutedAt ? "muted" : done) : ackButton(alert));
  if (alert.rule === "help_flood" && alert.status === "open" && !alert.mutedAt) li.append(muteButton(alert));
  const tell = tellTheRoom(alert);
  if (tell) li.append(tell);
  return li;
}

export function renderAlerts() {
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
  // Help requests are the queue above the list (help.js), until resolved or cancelled.
  renderHelpQueue(help, (alert) => studentsOf(alert) || alert.sessionTokens[0], upsertAlert);
  const list = $("#alert-list");
  list.replaceChildren();
  for (const alert of [...others, ...resolved]) list.append(alertRow(alert));
  if (!others.length && !resolved.length) list.append(el("li", "muted", help.length ? "No other alerts." : "No alerts."));
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
  // A change (a claim's answer, the stream) carries no evidence: it is filled in on reads, so
  // the card keeps what the last read found.
  if (i >= 0 && !alert.evidence && state.alerts[i].evidence) alert = { ...alert, evidence: state.alerts[i].evidence };
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

/** A help request changed: the queue's places, groups and evidence are read again (the stream
 * carries the request, not its neighbours' places), at most once per HELP_RELOAD_MS. */
const HELP_RELOAD_MS = 1000;
let helpReload = null;
function reloadSoon() {
  if (!helpReload) helpReload = setTimeout(() => { helpReload = null; loadAlerts(); }, HELP_RELOAD_MS);
}

function onAlert(id, alert) {
  if (id !== null) state.lastAlertId = id;
  const { change, ...rest } = alert;
  const before = state.alerts.find((a) => a.id === rest.id);
  // Keep what only reads fill in (evidence, place) until they are read again.
  if (before && before.evidence && !rest.evidence) rest.evidence = before.evidence;
  upsertAlert(rest);
  if (rest.rule === "help_request") reloadSoon();
  if (change === "alert.opened") toastOpened(rest);
  // A request folded into a flood, acknowledged or muted elsewhere: its toast goes.
  if (change === "alert.resolved") {
    for (const node of document.querySelectorAll("#toasts .toast")) if (node.dataset.alert === rest.id) node.remove();
  }
}

export function connectAlerts() {
  readStream(inRoom("/api/alerts/stream"), "alertsLive", () => state.lastAlertId, onAlert, () => {});
}

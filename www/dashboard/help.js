// The help queue: the room's open help requests, first come first served, each with its place
// or its helper, the student's words and the evidence (step against the room's median, latest
// errors and failed calls), claimable with one tap. Requests that share a cause are one group
// that one helper claims and answers with one note. Also "Tell the room" for a failing provider.

import { $, api, duration, el, handle, state } from "./common.js";
import { select } from "./timeline.js";

const NAME_KEY = "session-log:helper-name";
/** An `api_failures` alert offers "Tell the room" when its sessions are at least this share of
 * the room's active sessions. */
const TELL_SHARE = 0.3;
/** A session is active while its last event is this recent (the server's default, ms). */
const ACTIVE_MS = 5 * 60 * 1000;

/** Notices sent for an alert (its id → the endpoint), to offer "it's back" once it resolves. */
const told = new Map();

/** Who claims with a server-wide token (a helper token claims under its own name). */
function helperName() {
  return ($("#helper-name") && $("#helper-name").value.trim()) || localStorage.getItem(NAME_KEY) || "instructor";
}

export function setUpHelperName() {
  const input = $("#helper-name");
  if (!input) return;
  input.value = localStorage.getItem(NAME_KEY) || "";
  input.addEventListener("change", () => localStorage.setItem(NAME_KEY, input.value.trim()));
}

/** `POST /api/alerts/{id}/{action}` with `{note, name, group}` (and `to`, a claim's hand-over);
 * `upsert` takes each alert answered. */
async function change(alert, action, note, group, upsert, to) {
  try {
    const body = { name: helperName(), group: Boolean(group) };
    if (note) body.note = note;
    if (to) body.to = to;
    const answer = await api(`/api/alerts/${encodeURIComponent(alert.id)}/${action}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    }).then((r) => r.json());
    if (!answer.alert) throw new Error(answer.error || "the server refused it");
    for (const changed of [answer.alert, ...(answer.group || [])]) {
      upsert(changed);
      // Someone is on it (or it is closed): its toast goes.
      for (const node of document.querySelectorAll("#toasts .toast")) if (node.dataset.alert === changed.id) node.remove();
    }
  } catch (error) {
    handle(error);
  }
}

function button(text, label, onClick) {
  const b = el("button", "", text);
  b.type = "button";
  b.setAttribute("aria-label", label);
  b.addEventListener("click", (event) => { event.stopPropagation(); onClick(); });
  return b;
}

/** "Step 3 · Provision Services · 12m here (the room: 4m)". */
function stepLine(evidence) {
  if (!evidence || evidence.step == null) return "";
  const parts = [`Step ${evidence.step}`];
  if (evidence.stepName) parts.push(evidence.stepName);
  if (evidence.onStepMs != null) {
    parts.push(`${duration(evidence.onStepMs)} here${evidence.typicalMs != null ? ` (the room: ${duration(evidence.typicalMs)})` : ""}`);
  }
  return parts.join(" · ");
}

function evidenceBox(evidence) {
  const recent = (evidence && evidence.recent) || [];
  if (!recent.length) return el("span", "meta", "No errors or failed calls in the last 15 min");
  const errors = recent.filter((e) => e.eventType === "error").length;
  const calls = recent.length - errors;
  const box = el("details", "evidence");
  const words = [errors && `${errors} ${errors === 1 ? "error" : "errors"}`, calls && `${calls} failed ${calls === 1 ? "call" : "calls"}`];
  box.append(el("summary", "", `${words.filter(Boolean).join(", ")} in the last 15 min`));
  // Lines, not list items: `#help-list li` is one per request.
  const list = el("div", "lines");
  for (const e of recent) {
    const at = new Date(e.at).toLocaleTimeString();
    const what = e.eventType === "error"
      ? `${e.errorType || "error"}${e.message ? `: ${e.message}` : ""}`
      : `${e.method || ""} ${e.endpoint || ""} → ${e.status ?? "failed"}`.trim();
    list.append(el("div", "line", `${at} ${what}`));
  }
  box.append(list);
  return box;
}

/** "Hand over": the name of the helper who takes a claimed request over (the helpers named on
 * the room's requests are offered), with the card's note. */
function handOver(alert, who, take, upsert) {
  const box = el("details", "hand-over");
  box.append(el("summary", "", "Hand over"));
  const to = el("input", "to-input");
  to.type = "text";
  to.maxLength = 80;
  to.placeholder = "Helper's name";
  to.setAttribute("aria-label", `Hand the request of ${who} over to`);
  to.setAttribute("list", "helper-names");
  const send = () => to.value.trim() && change(alert, "claim", take(), false, upsert, to.value.trim());
  to.addEventListener("keydown", (event) => event.key === "Enter" && send());
  box.append(to, button("Hand over", `Hand the request of ${who} over to the helper named`, send));
  return box;
}

/** The helpers named on `help` requests (claimed, or claimed before), for the hand-over's list. */
function helperNames(help) {
  const names = new Set(help.map((a) => a.help && a.help.claimedBy).filter(Boolean));
  const own = helperName();
  if (own !== "instructor") names.add(own);
  const list = $("#helper-names") || document.body.appendChild(el("datalist"));
  list.id = "helper-names";
  list.replaceChildren(...[...names].sort().map((name) => Object.assign(el("option"), { value: name })));
}

/** One request's card. */
function card(alert, who, upsert) {
  const help = alert.help || { status: "waiting" };
  const li = el("li", `help ${help.status}`);
  li.dataset.alert = alert.id;
  const head = el("div", "head");
  const open = el("button", "link who", who);
  open.type = "button";
  open.setAttribute("aria-label", `Open the timeline of ${who}`);
  open.addEventListener("click", () => select(alert.sessionTokens[0]));
  const place = help.status === "claimed" ? `${help.claimedBy} is on it` : help.position ? `#${help.position} in line` : "waiting";
  head.append(open, el("span", `place ${help.status}`, place), el("span", "meta", `asked ${new Date(alert.openedAt).toLocaleTimeString()}${alert.count > 1 ? ` · ${alert.count} times` : ""}`));
  li.append(head, el("q", "words", alert.message));
  const step = stepLine(alert.evidence);
  if (step) li.append(el("span", "step", step));
  li.append(evidenceBox(alert.evidence));
  if (help.note) li.append(el("span", "meta note", `Note: ${help.note}`));
  const actions = el("div", "actions");
  const note = el("input", "note-input");
  note.type = "text";
  note.maxLength = 280;
  note.placeholder = "Note to the student (optional)";
  note.setAttribute("aria-label", `Note to ${who}`);
  const take = () => note.value.trim();
  if (help.status === "claimed") {
    actions.append(
      note,
      button("Resolve", `Resolve the request of ${who}`, () => change(alert, "resolve", take(), false, upsert)),
      button("Unclaim", `Unclaim: put the request of ${who} back in the queue`, () => change(alert, "unclaim", take(), false, upsert)),
      handOver(alert, who, take, upsert),
    );
  } else {
    const ack = button("Acknowledge", `Acknowledge: ${who} asked for help, ${alert.message}`, () => change(alert, "ack", "", false, upsert));
    ack.classList.add("ack");
    actions.append(note, button("Claim", `Claim the request of ${who}`, () => change(alert, "claim", take(), false, upsert)), ack);
  }
  // Mute: resolves it and silences the session's help requests (not for an assistant's token).
  const mute = button("Mute", `Mute session ${alert.sessionTokens[0]}: no more help alerts from it`, () => change(alert, "mute", "", false, upsert));
  mute.classList.add("mute");
  actions.append(mute);
  li.append(actions);
  return li;
}

/** Renders the queue into `#help-list`: groups of waiting requests that share a cause first
 * (by their first request), then each request by its place. `who(alert)` names its student. */
export function renderHelpQueue(help, who, upsert) {
  const list = $("#help-list");
  list.replaceChildren();
  helperNames(help);
  const byPlace = help.slice().sort((a, b) => a.openedAt.localeCompare(b.openedAt) || a.id.localeCompare(b.id));
  const groups = new Map();
  for (const alert of byPlace) {
    const group = alert.help && alert.help.group;
    if (group) groups.set(group, [...(groups.get(group) || []), alert]);
  }
  const shown = new Set();
  for (const alert of byPlace) {
    if (shown.has(alert.id)) continue;
    const group = alert.help && alert.help.group;
    const members = group ? groups.get(group) : null;
    if (members && members.length > 1) {
      const cause = group.replace(/^(error|endpoint):/, "");
      const box = el("li", "group");
      const head = el("div", "head");
      const note = el("input", "note-input");
      note.type = "text";
      note.maxLength = 280;
      note.placeholder = "One note to all of them (optional)";
      note.setAttribute("aria-label", `Note to the ${members.length} students of ${cause}`);
      head.append(el("strong", "", `${members.length} students: ${cause}`), note,
        button("Claim all", `Claim all ${members.length} requests of ${cause}`, () => change(members[0], "claim", note.value.trim(), true, upsert)));
      const inner = el("ul", "members");
      for (const member of members) {
        inner.append(card(member, who(member), upsert));
        shown.add(member.id);
      }
      box.append(head, inner);
      list.append(box);
      continue;
    }
    list.append(card(alert, who(alert), upsert));
    shown.add(alert.id);
  }
  list.hidden = help.length === 0;
  $("#help-title").hidden = help.length === 0;
  $("#help-title").textContent = `Help queue (${help.length})`;
}

/** Whether `alert` (an open `api_failures`) covers at least TELL_SHARE of the room's active sessions. */
function roomWide(alert) {
  const active = state.sessions.filter((s) => Date.now() - Date.parse(s.lastSeen) < ACTIVE_MS).length;
  return Boolean(state.room) && active > 0 && alert.sessions / active >= TELL_SHARE;
}

/** The prefilled notice for a failing endpoint. */
function failingText(endpoint) {
  return `${endpoint}: the provider is failing for many of you right now; it is not your setup; we'll tell you when it's back.`;
}

/** `POST /api/rooms/{room}/notices`. */
async function tell(message) {
  const response = await api(`/api/rooms/${encodeURIComponent(state.room)}/notices`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ message, minutes: 30 }),
  });
  if (!response.ok) throw new Error((await response.json()).error || `HTTP ${response.status}`);
}

/** "Tell the room" on an open `api_failures` alert across much of the room; "Tell the room it's
 * back" once an alert the room was told about resolves. `null` when neither applies. */
export function tellTheRoom(alert) {
  const open = alert.status === "open";
  if (alert.rule !== "api_failures" || !state.room || (open ? !roomWide(alert) : !told.has(alert.id))) return null;
  const box = el("div", "tell");
  const text = el("textarea", "tell-text");
  text.rows = 2;
  text.maxLength = 500;
  text.setAttribute("aria-label", "Notice to every page of the room");
  text.value = open ? failingText(alert.endpoint) : `${alert.endpoint} works again: please try once more.`;
  const label = open ? "Tell the room" : "Tell the room it's back";
  const send = button(label, `${label}: send this notice to every page of the room`, async () => {
    try {
      await tell(text.value.trim());
      if (open) told.set(alert.id, alert.endpoint); else told.delete(alert.id);
      send.disabled = true;
      send.textContent = "Sent";
    } catch (error) {
      handle(error);
    }
  });
  box.append(text, send);
  return box;
}

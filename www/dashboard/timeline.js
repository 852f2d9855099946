// One session's timeline.

import { $, api, el, handle, SELECTED, state, svg } from "./common.js";

export async function select(token) {
  state.selected = token;
  document.dispatchEvent(new Event(SELECTED));
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

export function renderTimeline() {
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

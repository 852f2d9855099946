// The live tail: /api/session-log/stream read through fetch, resumed with Last-Event-ID.

import { $, inRoom, readStream, state } from "./common.js";
import { scheduleRefresh } from "./sessions.js";
import { renderTimeline } from "./timeline.js";

export function setLive(on) {
  const badge = $("#live");
  badge.textContent = on ? "live" : "offline";
  badge.className = `badge ${on ? "on" : "off"}`;
}

export function connectLive() {
  readStream(inRoom("/api/session-log/stream"), "live", () => state.lastEventId, onEvent, setLive);
}

function onEvent(id, event) {
  if (id !== null) state.lastEventId = id;
  scheduleRefresh();
  if (event.session_token === state.selected) {
    state.timeline.push(event);
    renderTimeline();
  }
}

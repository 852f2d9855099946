// The room bar: the rooms the token covers (GET /api/rooms, open ones first) and, for a
// server-wide token, the lobby; the room shown (bookmarkable as ?room=CODE or ?room=lobby), its
// join code and link, and the projector view of the code.

import { $, api, el, handle, state } from "./common.js";

/** The room bar's value for the lobby: every instructor read takes `room=lobby`. */
const LOBBY = "lobby";

/** The page a student opens to join `code`: this server's demo page with ?room= (a workshop's
 * own page reads the same parameter: `configure({room: new URLSearchParams(location.search).get("room")})`). */
function joinLink(code) {
  return `${location.origin}/?room=${encodeURIComponent(code)}`;
}

/** Reads the rooms and fills the bar; a ?room= the token does not cover falls back to every
 * room, with a note. Returns whether the room shown changed. */
export async function loadRooms() {
  try {
    const answer = await api("/api/rooms").then((r) => r.json());
    state.rooms = answer.rooms;
    // An assistant's token neither exports nor mutes: those buttons go.
    document.body.classList.toggle("assistant", answer.role === "assistant");
    document.body.classList.toggle("helper", Boolean(answer.role));
    state.helper = Boolean(answer.role);
  } catch (error) {
    handle(error);
    return false;
  }
  const select = $("#room");
  select.replaceChildren(el("option", null, "All rooms"));
  select.firstChild.value = "";
  for (const room of state.rooms) {
    const option = el("option", null, `${room.name} · ${room.code}${room.open ? "" : " (closed)"}`);
    option.value = room.code;
    select.append(option);
  }
  // The lobby (sessions that joined no room) is the server-wide tokens' to read (room=lobby).
  const lobby = !state.helper && state.rooms.length > 0;
  if (lobby) {
    const option = el("option", null, "Lobby: sessions in no room");
    option.value = LOBBY;
    select.append(option);
  }
  $("#room-bar").hidden = state.rooms.length === 0 && !state.room;
  const wanted = state.room.toUpperCase().replace(/[\s-]/g, "");
  const found = state.rooms.find((r) => r.code === wanted) || (lobby && wanted === LOBBY.toUpperCase() ? { code: LOBBY } : null);
  const changed = Boolean(state.room) && !found;
  $("#room-state").textContent = changed ? `No room ${state.room} for this token: showing every room.` : "";
  state.room = found ? found.code : "";
  select.value = state.room;
  renderJoin();
  return changed;
}

/** Shows the join code and link of the room shown (none for every room). */
export function renderJoin() {
  const room = state.rooms.find((r) => r.code === state.room);
  $("#join").hidden = !room;
  document.title = room ? `${room.name} · session-log` : "session-log · instructor dashboard";
  if (!room) return;
  $("#join-code").textContent = room.code;
  const link = $("#join-link");
  link.href = joinLink(room.code);
  link.textContent = joinLink(room.code);
  $("#projector-code").textContent = room.code;
  $("#projector-link").textContent = joinLink(room.code);
}

/** Shows `code` ("" for every room): the URL says so (a bookmark reopens it). */
export function chooseRoom(code) {
  state.room = code;
  const url = new URL(location.href);
  if (code) url.searchParams.set("room", code); else url.searchParams.delete("room");
  history.replaceState(null, "", url);
  $("#room-state").textContent = "";
  renderJoin();
}

export function showProjector(on) {
  $("#projector").hidden = !on;
  if (on) $("#hide-join").focus(); else $("#show-join").focus();
}

// The admin panel: workshops (write keys), rooms and helper tokens, for a token that may manage
// them (GET /api/workshops answers it). Creating a helper token shows it once, with a sign-in
// link that carries it in the URL fragment (#token=…), which no server log sees.

import { $, api, el, handle, state } from "./common.js";
import { loadRooms } from "./rooms.js";

/** A button of `text` that runs `action` on click. */
function button(text, label, action) {
  const node = el("button", null, text);
  node.type = "button";
  if (label) node.setAttribute("aria-label", label);
  node.addEventListener("click", action);
  return node;
}

/** A table row of cells (text, or a node). */
function row(cells) {
  const tr = el("tr");
  for (const cell of cells) {
    const td = el("td");
    if (cell instanceof Node) td.append(cell); else td.textContent = cell ?? "";
    tr.append(td);
  }
  return tr;
}

async function post(path, body, method = "POST") {
  const options = { method, headers: { "Content-Type": "application/json" } };
  if (body !== undefined) options.body = JSON.stringify(body);
  return (await api(path, options)).json();
}

/** Shows the panel when the token may manage (otherwise it stays hidden). */
export async function loadAdmin() {
  let workshops, tokens;
  try {
    const answer = await fetch("/api/workshops", { headers: { Authorization: `Bearer ${state.token}` } });
    if (!answer.ok) { $("#admin").hidden = true; return; }
    workshops = (await answer.json()).workshops;
    tokens = (await api("/api/tokens").then((r) => r.json())).tokens;
  } catch (error) {
    handle(error);
    return;
  }
  $("#admin").hidden = false;
  renderWorkshops(workshops);
  renderRooms(workshops);
  renderTokens(tokens);
}

function renderWorkshops(workshops) {
  const body = $("#admin-workshops tbody");
  body.replaceChildren();
  for (const w of workshops) {
    const revoke = w.revokedAt || !w.writeKey ? (w.revokedAt ? "revoked" : "") :
      button("Revoke key", `Revoke key of ${w.slug}`, () => act(`/api/workshops/${encodeURIComponent(w.slug)}/revoke`));
    body.append(row([w.slug, w.name, w.writeKey || "none (keyless events)", w.allowedOrigins.join(", ") || "any", revoke]));
  }
  const select = $("#new-room-workshop");
  select.replaceChildren();
  for (const w of workshops) {
    const option = el("option", null, w.slug);
    option.value = w.slug;
    select.append(option);
  }
}

function renderRooms() {
  const body = $("#admin-rooms tbody");
  body.replaceChildren();
  for (const r of state.rooms) body.append(row([r.name, r.code, r.workshop, r.open ? "open" : "closed"]));
  const boxes = $("#new-token-rooms");
  boxes.replaceChildren();
  for (const r of state.rooms) {
    const label = el("label");
    const box = el("input");
    box.type = "checkbox";
    box.value = r.code;
    label.append(box, ` ${r.name} · ${r.code}`);
    boxes.append(label);
  }
}

function renderTokens(tokens) {
  const body = $("#admin-tokens tbody");
  body.replaceChildren();
  for (const t of tokens) {
    const revoke = t.revokedAt ? "revoked" : button("Revoke", `Revoke ${t.name}'s token`, () => act(`/api/tokens/${t.id}`, "DELETE"));
    body.append(row([t.name, t.role, t.rooms.join(", "), t.lastUsedAt ? new Date(t.lastUsedAt).toLocaleString() : "never", revoke]));
  }
}

async function act(path, method = "POST") {
  try {
    await post(path, undefined, method);
    await loadAdmin();
  } catch (error) {
    handle(error);
    $("#admin-error").textContent = error.message;
  }
}

/** Runs a form's `submit` through `work`, showing its error beside the forms. */
function onSubmit(form, work) {
  $(form).addEventListener("submit", async (event) => {
    event.preventDefault();
    $("#admin-error").textContent = "";
    try {
      await work();
      await loadRooms();
      await loadAdmin();
    } catch (error) {
      handle(error);
      $("#admin-error").textContent = error.message;
    }
  });
}

export function wireAdmin() {
  onSubmit("#new-workshop", async () => {
    const origins = $("#new-workshop-origins").value.split(/[\s,]+/).filter(Boolean);
    await post("/api/workshops", { slug: $("#new-workshop-slug").value.trim(), name: $("#new-workshop-name").value.trim(), allowedOrigins: origins });
    $("#new-workshop").reset();
  });
  onSubmit("#new-room", async () => {
    const body = { name: $("#new-room-name").value.trim() };
    for (const [id, field] of [["#new-room-opens", "opensAt"], ["#new-room-closes", "closesAt"]]) {
      if ($(id).value) body[field] = new Date($(id).value).toISOString();
    }
    await post(`/api/workshops/${encodeURIComponent($("#new-room-workshop").value)}/rooms`, body);
    $("#new-room").reset();
  });
  onSubmit("#new-token", async () => {
    const rooms = [...document.querySelectorAll("#new-token-rooms input:checked")].map((b) => b.value);
    const made = await post("/api/tokens", { name: $("#new-token-name").value.trim(), role: $("#new-token-role").value, rooms });
    const link = `${location.origin}/dashboard/?room=${encodeURIComponent(rooms[0] || "")}#token=${made.token}`;
    $("#new-token-made").hidden = false;
    $("#new-token-value").textContent = made.token;
    $("#new-token-link").value = link;
    $("#new-token").reset();
  });
  $("#copy-token-link").addEventListener("click", () => navigator.clipboard?.writeText($("#new-token-link").value));
}

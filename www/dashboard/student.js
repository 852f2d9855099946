// One student: every session of an email.

import { $, api, el, handle } from "./common.js";
import { select } from "./timeline.js";

export async function showStudent(email) {
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

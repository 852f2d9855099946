// The demo workshop: five steps that call every session-log function, as a workshop author would.
import init, {
  configure, setStep, logSessionEvent, logNavigation, logError, logAction,
  logApiCall, logStateChange, requestHelp, cancelHelp, onHelp, onNotice, flush, getSessionToken, stats,
} from "/pkg/session_log.js";

const STEPS = ["Connect Accounts", "Choose Use Case", "Provision Services", "Deploy", "Test"];
const $ = (id) => document.getElementById(id);

await init();
// ?email=…&name=… identify the student (optional: sessions may be anonymous); ?demo marks demo mode;
// ?room=CODE joins a room (the dashboard's join link), ?key=wk_… sends a workshop's write key.
const params = new URLSearchParams(location.search);
configure({
  room: params.get("room") || undefined,
  writeKey: params.get("key") || undefined,
  steps: STEPS,
  studentEmail: params.get("email") || undefined,
  studentName: params.get("name") || undefined,
  demoMode: params.has("demo"),
  capture: { errors: true },  // uncaught errors and unhandled rejections are logged by themselves
});

let current = 0;
let voiceEnabled = false;
let keyValidated = false;
const startedAt = Date.now();

const token = getSessionToken();
$("session-token").textContent = token;
$("query-url").textContent = `${location.origin}/api/session-log?sessionToken=${token}`;
$("copy-token").addEventListener("click", () => navigator.clipboard?.writeText(token));

$("stepper").replaceChildren(...STEPS.map((name) => {
  const li = document.createElement("li");
  li.textContent = name;
  return li;
}));

function setStatus(id, text, ok) {
  const el = $(id);
  el.textContent = text;
  el.className = `status ${ok ? "ok" : "error"}`;
}

function show(step) {
  document.querySelectorAll(".step").forEach((section) => {
    section.hidden = Number(section.dataset.step) !== step;
  });
  [...$("stepper").children].forEach((li, i) => {
    li.className = i < step ? "done" : i === step ? "current" : "";
  });
  $("back").disabled = step === 0;
  $("next").disabled = step === STEPS.length - 1;
}

function go(to) {
  if (to < 0 || to >= STEPS.length) return;
  logNavigation(current, to);
  current = to;
  show(current);
}

$("next").addEventListener("click", () => go(current + 1));
$("back").addEventListener("click", () => go(current - 1));

// Step 0: a form whose validation can fail. The key itself is never logged.
$("validate-key").addEventListener("click", () => {
  const key = $("api-key").value.trim();
  if (!/^sk-[A-Za-z0-9_-]{20,}$/.test(key)) {
    logError("openai_validation_failed", "Incorrect API key provided", {
      statusCode: 401,
      keyLength: key.length,
    });
    setStatus("key-status", "That key was refused: it should start with sk- and be at least 23 characters.", false);
    return;
  }
  logAction("openai_connected", { validated: true });
  logStateChange("openaiConnected", keyValidated, true);
  keyValidated = true;
  setStatus("key-status", "Key accepted.", true);
});

// Step 1: a choice.
document.querySelectorAll("input[name=use-case]").forEach((radio) => {
  radio.addEventListener("change", () => {
    logAction("use_case_selected", { useCase: radio.value });
    setStatus("use-case-status", `Selected: ${radio.parentElement.textContent.trim()}`, true);
  });
});

// Steps 2 and 3: calls to API endpoints, one that works and one that does not exist.
async function callApi(endpoint, method, details) {
  const t0 = performance.now();
  try {
    const response = await fetch(endpoint, { method });
    const duration = Math.round(performance.now() - t0);
    logApiCall(endpoint, method, response.status, { ...details, duration });
    return response;
  } catch (error) {
    logApiCall(endpoint, method, 0, { ...details, duration: Math.round(performance.now() - t0) });
    logError("network_error", error, { endpoint });
    return null;
  }
}

$("check-health").addEventListener("click", async () => {
  const response = await callApi("/healthz", "GET", {});
  if (response?.ok) setStatus("health-status", "All services are up.", true);
  else setStatus("health-status", `Health check failed (${response?.status ?? "network error"}).`, false);
});

$("deploy").addEventListener("click", async () => {
  const t0 = performance.now();
  const response = await callApi("/api/deploy-function", "POST", { functionName: "voice-handler" });
  if (response?.ok) {
    setStatus("deploy-status", "Deployed.", true);
    return;
  }
  const status = response?.status ?? 0;
  logError("function_deploy_failed", `Function deployment failed with HTTP ${status}`, {
    statusCode: status,
    functionName: "voice-handler",
    deploymentTime: Math.round(performance.now() - t0),
  });
  setStatus("deploy-status", `Deployment failed (HTTP ${status}). Ask your instructor, quoting your session token.`, false);
});

// Step 4: a state toggle, and the end of the workshop.
$("voice-enabled").addEventListener("change", (e) => {
  logStateChange("voiceEnabled", voiceEnabled, e.target.checked);
  voiceEnabled = e.target.checked;
});

// Any step: the student asks for help. The request joins the room's queue; the status line
// follows it ("2 ahead of you", "Alex is on the way", the helper's note), and notices to the
// room appear above the steps.
$("ask-help").addEventListener("click", async () => {
  const message = $("help-message").value.trim() || `Help needed on step ${current} (${STEPS[current]})`;
  requestHelp(message);
  $("help-message").value = "";
  setStatus("help-status", "Sending your request…", true);
  try {
    await flush();
  } catch (error) {
    setStatus("help-status", `Not sent yet (${error.message}); it will be.`, false);
  }
});
$("cancel-help").addEventListener("click", () => cancelHelp());

/** The status line of a help request (`onHelp`'s `{status, position, helper, note}`). */
function helpLine({ status, position, helper, note }) {
  const said = note ? ` ${helper || "Your helper"} says: “${note}”` : "";
  if (status === "waiting") {
    const ahead = (position || 1) - 1;
    return ahead === 0 ? "You are next in line." : `${ahead} ${ahead === 1 ? "student" : "students"} ahead of you.`;
  }
  if (status === "claimed") return `${helper} is on the way.${said}`;
  if (status === "resolved") return `Resolved.${said}`;
  return "You withdrew your request.";
}
onHelp((help) => {
  setStatus("help-status", helpLine(help), help.status !== "cancelled");
  $("cancel-help").hidden = !(help.status === "waiting" || help.status === "claimed");
});
onNotice((notice) => {
  const item = document.createElement("li");
  item.textContent = `${notice.postedBy}: ${notice.message}`;
  $("notices").append(item);
  $("notices").hidden = false;
});

$("finish").addEventListener("click", async () => {
  logSessionEvent("workshop_completed", { stepsCompleted: STEPS.length, durationMs: Date.now() - startedAt });
  setStatus("finish-status", "Sending your events…", true);
  try {
    await flush();
    setStatus("finish-status", "Workshop complete: all events delivered.", true);
  } catch (error) {
    setStatus("finish-status", `Workshop complete; events will be sent later (${error.message}).`, false);
  }
});

// What the client has delivered, for the curious student.
setInterval(() => {
  const s = stats();
  $("delivery").textContent = `Events: ${s.sent} delivered, ${s.queued} queued` +
    (s.lastError ? ` — last problem: ${s.lastError}` : "");
}, 500);

setStep(current);
show(current);

// Shared by every page of the analyst UI: the API token, API calls, DOM and SVG builders,
// formatting, colours and the tooltip. Plain ES module, no dependencies.

const TOKEN_KEY = "journeys.apiToken";
const SVG_NS = "http://www.w3.org/2000/svg";

// ---- token ------------------------------------------------------------------------------
// The token lives in sessionStorage (this tab only, gone when it closes). A `?token=` in the
// address is taken once and removed from the address bar (and never sent as a Referer).

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

function takeTokenFromAddress() {
  const url = new URL(location.href);
  if (!url.searchParams.has("token")) return;
  const value = url.searchParams.get("token");
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  url.searchParams.delete("token");
  history.replaceState(history.state, "", url.pathname + url.search + url.hash);
}

let pendingPrompt = null;

/** Ask for the token (one prompt however many requests were refused); resolves when entered. */
function askForToken(message) {
  if (pendingPrompt) return pendingPrompt;
  pendingPrompt = new Promise((resolve) => {
    const input = h("input", { type: "password", id: "token-input", name: "token", autocomplete: "off",
                               required: "", "aria-label": "API token" });
    const form = h("form", { class: "token-form", id: "token-form" },
      h("h2", {}, "API token"),
      h("p", {}, "This tracker's API needs a token (JOURNEYS_API_TOKEN). It is kept for this tab only."),
      message ? h("p", { class: "error" }, message) : null,
      input,
      h("button", { type: "submit", id: "token-submit" }, "Continue"));
    const overlay = h("div", { class: "overlay", id: "token-overlay" }, form);
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      overlay.remove();
      pendingPrompt = null;
      showForget();
      resolve();
    });
    document.body.append(overlay);
    input.focus();
  });
  return pendingPrompt;
}

function showForget() {
  const button = document.getElementById("forget-token");
  if (button) button.hidden = !token();
}

// ---- API --------------------------------------------------------------------------------

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** GET a JSON API path with query parameters (empty ones dropped); asks for the token on 401. */
export async function api(path, params = {}) {
  const url = new URL(path, location.origin);
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
  }
  for (;;) {
    const headers = { Accept: "application/json" };
    const sent = token();
    if (sent) headers.Authorization = `Bearer ${sent}`;
    const response = await fetch(url, { headers, cache: "no-store" });
    if (response.status === 401) {
      await askForToken(sent ? "That token was not accepted; try again." : "");
      continue;
    }
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    if (!response.ok) {
      throw new ApiError(response.status, (body && body.error) || `${response.status} ${response.statusText}`);
    }
    return body;
  }
}

/** The rows of a named report (streams/reports.py). */
export async function report(name, params = {}) {
  const body = await api(`/api/v1/reports/${encodeURIComponent(name)}`, params);
  return body.rows;
}

/** An alert's webhook delivery ("delivered", "failed", "failed N of M", "" = none yet), failures
 *  named in the tooltip and flagged with the class "delivery-failed". */
export function deliveryCell(value, row) {
  if (!value) return "–";
  const failed = value.startsWith("failed");
  return h("span", { class: failed ? "delivery delivery-failed" : "delivery", title: row.delivery_errors || null },
           value);
}

/** The alerts report, or null when this tracker has no such report (400 "unknown report"). */
export async function alertsOrNull(params = {}) {
  try {
    return await report("alerts", params);
  } catch (err) {
    if (err instanceof ApiError && err.status === 400 && /unknown report/.test(err.message)) return null;
    throw err;
  }
}

// ---- DOM --------------------------------------------------------------------------------

function build(el, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** An HTML element; text children are text nodes (never parsed as HTML). */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** An SVG element. */
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

export function section(id, title, ...children) {
  return h("section", { id, class: "card" }, h("h2", {}, title), ...children);
}

export function empty(text, attrs = {}) {
  return h("p", { class: "empty", ...attrs }, text);
}

export function errorBox(err) {
  return h("p", { class: "error", role: "alert" }, `Could not load: ${err && err.message ? err.message : err}`);
}

/** A table: columns are {key, label, fmt?(value, row) → string|Node, num?: true}. */
export function table(columns, rows, attrs = {}) {
  const head = h("tr", {}, columns.map((c) => h("th", { class: c.num ? "num" : null }, c.label)));
  const body = rows.map((row) => h("tr", {}, columns.map((c) => {
    const value = c.fmt ? c.fmt(row[c.key], row) : row[c.key];
    return h("td", { class: c.num ? "num" : null }, value === null || value === undefined ? "–" : value);
  })));
  return h("table", { class: "data", ...attrs }, h("thead", {}, head), h("tbody", {}, body));
}

/** A small horizontal bar (share 0..1) with its label. */
export function shareBar(share, label, cls = "") {
  const fill = h("span", { class: "fill" });
  fill.style.width = `${Math.max(0, Math.min(1, Number(share) || 0)) * 100}%`;
  return h("span", { class: `sharebar ${cls}`.trim() }, h("span", { class: "track" }, fill),
           h("span", { class: "label" }, label));
}

// ---- formatting -------------------------------------------------------------------------

export function parseTime(iso) {
  return iso ? Date.parse(iso.endsWith("Z") || /[+-]\d\d:\d\d$/.test(iso) ? iso : `${iso}Z`) : NaN;
}

const pad = (n) => String(n).padStart(2, "0");

export function fmtTime(iso) {
  const t = typeof iso === "number" ? iso : parseTime(iso);
  if (Number.isNaN(t)) return "–";
  const d = new Date(t);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
         `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())} UTC`;
}

export function fmtNum(value, digits = 1) {
  if (value === null || value === undefined || value === "") return "–";
  const n = Number(value);
  return Number.isInteger(n) ? n.toLocaleString("en") : n.toLocaleString("en", { maximumFractionDigits: digits });
}

export function fmtPct(value) {
  if (value === null || value === undefined) return "–";
  return `${(Number(value) * 100).toFixed(Number(value) >= 0.995 || Number(value) === 0 ? 0 : 1)}%`;
}

export function person(event) {
  return event.email || event.contact_id || event.user_id || (event.anonymous_id ? "anonymous device" : "");
}

// ---- colours ----------------------------------------------------------------------------

export const CHANNEL_COLORS = {
  web: "#2563eb", ads: "#7c3aed", content: "#0891b2", webinar: "#059669", email: "#65a30d",
  call: "#ea580c", meeting: "#dc2626", chat: "#d97706", social: "#db2777",
  crm: "#475569", identity: "#94a3b8",
};

export const STAGE_COLORS = {
  engaged: "#e0f2fe", mql: "#ede9fe", sal: "#fef3c7", sql: "#fce7f3",
  opportunity: "#dcfce7", won: "#bbf7d0", lost: "#fee2e2",
};

function hashHue(text) {
  let x = 0;
  for (const ch of String(text)) x = (x * 31 + ch.charCodeAt(0)) % 360;
  return x;
}

export function channelColor(channel) {
  return CHANNEL_COLORS[channel] || `hsl(${hashHue(channel)} 55% 45%)`;
}

export function stageColor(stage) {
  return STAGE_COLORS[stage] || `hsl(${hashHue(stage)} 60% 93%)`;
}

export function swatch(color) {
  const el = h("span", { class: "swatch" });
  el.style.background = color;
  return el;
}

// ---- tooltip ----------------------------------------------------------------------------

/** Show `lines()` ([label, value] pairs) near the pointer while it is over `el` (or it has focus). */
export function tooltip(el, lines) {
  const tip = document.getElementById("tooltip");
  const show = (x, y) => {
    clear(tip).append(h("dl", {}, lines().filter(([, v]) => v).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])));
    tip.hidden = false;
    const box = tip.getBoundingClientRect();
    tip.style.left = `${Math.min(x + 14, window.innerWidth - box.width - 8) + window.scrollX}px`;
    tip.style.top = `${Math.max(8, y - box.height - 12) + window.scrollY}px`;
  };
  const hide = () => { tip.hidden = true; };
  el.addEventListener("mouseenter", (ev) => show(ev.clientX, ev.clientY));
  el.addEventListener("mousemove", (ev) => show(ev.clientX, ev.clientY));
  el.addEventListener("mouseleave", hide);
  el.addEventListener("focus", () => {
    const r = el.getBoundingClientRect();
    show(r.right, r.top);
  });
  el.addEventListener("blur", hide);
}

// ---- page start -------------------------------------------------------------------------

/** Common start of every page: token from the address, active nav link, the main element. */
export function initPage(page) {
  takeTokenFromAddress();
  for (const a of document.querySelectorAll("nav a[data-nav]")) {
    if (a.dataset.nav === page) a.setAttribute("aria-current", "page");
  }
  const forget = document.getElementById("forget-token");
  if (forget) {
    forget.addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      showForget();
    });
  }
  showForget();
  return clear(document.getElementById("main"));
}

/** Mark the page as drawn (tests and screenshots wait for data-state="ready"). */
export function ready(main, state = "ready") {
  main.dataset.state = state;
}

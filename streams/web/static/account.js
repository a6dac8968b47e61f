// /ui/account/{id}: one account's journey — swimlanes of touches over time on stage bands,
// the buying committee, scores over time and the account's alerts.

import { lineChart, legend, linear, timeAxis, timeDomain } from "./charts.js";
import {
  alertsOrNull, api, channelColor, deliveryCell, clear, empty, errorBox, fmtNum, fmtTime, h, initPage, parseTime,
  person, ready, report, s, section, stageColor, table, tooltip,
} from "./common.js";

const LANES = [
  { key: "digital", label: "Digital self-service", height: 96, rows: 4, r: 6 },
  { key: "human", label: "1:1 conversations", height: 96, rows: 4, r: 7 },
  { key: "records", label: "CRM & identity", height: 30, rows: 1, r: 4 },
];
const TIMELINE_LIMIT = 5000;
const PERSONA_ORDER = ["executive", "manager", "practitioner", "unknown"];

/** Which swimlane an event belongs to: human touches, CRM/identity records, or digital. */
export function laneOf(event) {
  if (event.side === "human") return "human";
  if (event.side === "crm" || event.channel === "identity" || event.channel === "crm") return "records";
  return "digital";
}

const main = initPage("account");
const accountId = decodeURIComponent(location.pathname.replace(/^\/ui\/account\//, "").replace(/\/$/, ""));
const timings = {};
window.journeyTimings = timings;

async function timed(name, promise) {
  const start = performance.now();
  try {
    return await promise;
  } finally {
    timings[name] = Math.round(performance.now() - start);
  }
}

function settle(promise) {
  return promise.then((value) => ({ ok: true, value }), (error) => ({ ok: false, error }));
}

async function load() {
  const started = performance.now();
  const path = `/api/v1/timeline/${encodeURIComponent(accountId)}`;
  const [timeline, stages, snapshot, scores, alerts, contacts] = await Promise.all([
    settle(timed("timeline", api(path, { limit: TIMELINE_LIMIT }))),
    settle(timed("stages", report("stages", { account: accountId }))),
    settle(timed("snapshot", report("snapshot", { account: accountId }))),
    settle(timed("scores", report("scores", { account: accountId }))),
    settle(timed("alerts", alertsOrNull({ account: accountId }))),
    settle(timed("contacts", report("contacts", { account: accountId }))),
  ]);
  timings.total = Math.round(performance.now() - started);
  render({ timeline, stages, snapshot, scores, alerts, contacts });
}

function render(data) {
  clear(main);
  const events = data.timeline.ok ? data.timeline.value.events : [];
  const snap = data.snapshot.ok && data.snapshot.value.length ? data.snapshot.value[0] : null;
  main.append(header(snap, events));
  const chart = data.timeline.ok
    ? journey(events, data.stages.ok ? data.stages.value : [], data.stages.ok ? null : data.stages.error)
    : errorBox(data.timeline.error);
  main.append(section("journey", "Journey", chart));
  if (chart.draw) chart.draw(); // once in the page, so it can take the page's width
  const scoresBox = data.scores.ok ? scoreChart(data.scores.value) : errorBox(data.scores.error);
  main.append(h("div", { class: "grid2" },
    section("committee", "Buying committee", data.snapshot.ok ? committee(snap) : errorBox(data.snapshot.error)),
    section("scores", "Scores over time", scoresBox)));
  if (scoresBox.draw) scoresBox.draw();
  main.append(section("contacts", "Contacts", data.contacts.ok ? contactTable(data.contacts.value) : errorBox(data.contacts.error)));
  main.append(section("alerts", "Alerts", data.alerts.ok ? alertList(data.alerts.value) : errorBox(data.alerts.error)));
  main.append(section("events", "Events", eventTable(events)));
  ready(main);
}

function header(snap, events) {
  const name = (snap && snap.name) || accountId;
  const facts = [
    ["id", accountId],
    ["domain", snap && snap.domain],
    ["stage", snap && snap.stage],
    ["score", snap && snap.score !== null ? fmtNum(snap.score) : null],
    ["owner", snap && snap.owner],
    ["source", snap && snap.source],
    ["events", String(events.length)],
    ["last event", events.length ? fmtTime(events[events.length - 1].event_time) : null],
  ].filter(([, v]) => v);
  return h("div", { class: "account-head" },
    h("h1", { id: "account-name" }, name),
    h("dl", { class: "facts" }, facts.map(([k, v]) => h("div", {}, h("dt", {}, k),
      h("dd", { class: k === "stage" ? "badge" : null }, v)))));
}

// ---- the journey chart ------------------------------------------------------------------

function journey(events, stages, stagesError) {
  const wrap = h("div", { class: "journey-wrap" });
  if (!events.length) {
    wrap.append(empty("No events for this account (yet).", { id: "journey-empty" }));
    return wrap;
  }
  const draw = () => {
    clear(wrap);
    const width = Math.max(640, wrap.clientWidth || 960);
    wrap.append(journeySvg(events, stages, width));
    const counts = {};
    for (const e of events) counts[e.channel] = (counts[e.channel] || 0) + 1;
    wrap.append(legend(Object.keys(counts).sort().map((c) => [c, channelColor(c), counts[c]]), "legend channels"));
    if (stagesError) wrap.append(errorBox(stagesError));
    if (events.length >= TIMELINE_LIMIT) wrap.append(empty(`Showing the first ${TIMELINE_LIMIT} events.`));
  };
  wrap.draw = draw;
  let timer = null;
  window.addEventListener("resize", () => {
    clearTimeout(timer);
    timer = setTimeout(draw, 150);
  });
  return wrap;
}

function journeySvg(events, stages, width) {
  const m = { left: 168, right: 16, top: 26, bottom: 30 };
  const lanesHeight = LANES.reduce((acc, l) => acc + l.height, 0);
  const height = m.top + lanesHeight + m.bottom;
  const times = events.map((e) => parseTime(e.event_time));
  const stageTimes = stages.map((st) => parseTime(st.at));
  const [t0, t1] = timeDomain([...times, ...stageTimes]);
  const x = linear(t0, t1, m.left, width - m.right);
  const svg = s("svg", { id: "journey-chart", class: "chart journey", viewBox: `0 0 ${width} ${height}`,
                         width, height, role: "img", "aria-label": `journey of ${accountId}` });
  const bottom = m.top + lanesHeight;
  svg.append(stageBands(stages, x, t1, m.top, bottom));

  let y = m.top;
  const laneTop = {};
  for (const lane of LANES) {
    laneTop[lane.key] = y;
    const count = events.filter((e) => laneOf(e) === lane.key).length;
    svg.append(s("rect", { x: m.left, y, width: width - m.left - m.right, height: lane.height, class: `lane-bg lane-${lane.key}` }));
    svg.append(s("text", { x: 8, y: y + lane.height / 2 + 4, class: "lane-label" }, `${lane.label} (${count})`));
    y += lane.height;
  }
  svg.append(timeAxis(x, t0, t1, bottom, m.top, Math.max(3, Math.floor((width - m.left) / 120))));

  for (const lane of LANES) {
    const g = s("g", { class: "lane", "data-lane": lane.key });
    const rows = Array.from({ length: lane.rows }, () => []);
    const rowGap = lane.height / (lane.rows + 1);
    events.forEach((e, i) => {
      if (laneOf(e) !== lane.key) return;
      const cx = x(times[i]);
      let row = rows.findIndex((xs) => xs.every((ox) => Math.abs(ox - cx) > lane.r * 2 + 1));
      if (row < 0) row = rows.reduce((best, xs, k) => (xs.length < rows[best].length ? k : best), 0);
      rows[row].push(cx);
      const cy = laneTop[lane.key] + rowGap * (row + 1);
      g.append(mark(e, lane, cx, cy));
    });
    svg.append(g);
  }
  return svg;
}

function mark(e, lane, cx, cy) {
  const attrs = { class: "touch", fill: channelColor(e.channel), tabindex: 0, "data-lane": lane.key,
                  "data-channel": e.channel, "data-event-id": e.event_id, "data-side": e.side };
  const el = lane.key === "records"
    ? s("rect", { ...attrs, x: cx - lane.r, y: cy - lane.r, width: lane.r * 2, height: lane.r * 2,
                  transform: `rotate(45 ${cx} ${cy})` })
    : s("circle", { ...attrs, cx, cy, r: lane.r });
  const rep = e.rep_id ? `${e.rep_id}${e.rep_role ? ` (${e.rep_role})` : ""}` : "";
  tooltip(el, () => [["time", fmtTime(e.event_time)], ["channel", `${e.channel} · ${e.side}`],
                     ["name", e.name || e.event_type], ["person", person(e)], ["rep", rep]]);
  return el;
}

/** Bands between stage changes (the last runs to the end of the axis), behind the lanes. */
function stageBands(stages, x, tEnd, top, bottom) {
  const g = s("g", { class: "stage-bands" });
  const sorted = [...stages].sort((a, b) => parseTime(a.at) - parseTime(b.at));
  sorted.forEach((st, i) => {
    const from = parseTime(st.at);
    const to = i + 1 < sorted.length ? parseTime(sorted[i + 1].at) : tEnd;
    const x0 = x(from);
    const w = Math.max(1, x(to) - x0);
    const band = s("rect", { x: x0, y: top - 18, width: w, height: bottom - top + 18, fill: stageColor(st.to_stage),
                             class: "stage-band", "data-stage": st.to_stage, tabindex: 0 });
    tooltip(band, () => [["stage", st.to_stage], ["from", st.from_stage || "–"], ["since", fmtTime(st.at)],
                         ["rule", st.rule], ["contact", st.contact_id], ["definitions", st.definitions_version]]);
    g.append(band, s("line", { x1: x0, x2: x0, y1: top - 18, y2: bottom, class: "stage-edge" }));
    if (w > 28) g.append(s("text", { x: x0 + 4, y: top - 6, class: "stage-label" }, st.to_stage));
  });
  return g;
}

// ---- committee, scores, alerts, events --------------------------------------------------

function committee(snap) {
  const now = snap && snap.committee ? snap.committee : {};
  const ever = snap && snap.committee_ever ? snap.committee_ever : {};
  const wrap = h("div", {});
  if (Object.keys(now).length) {
    wrap.append(personaCards(now, "member"));
  } else {
    wrap.append(empty("No engaged contacts at the latest event.", { id: "committee-empty" }));
  }
  const current = new Set(Object.values(now).flat());
  const past = Object.fromEntries(Object.entries(ever)
    .map(([persona, people]) => [persona, people.filter((who) => !current.has(who))])
    .filter(([, people]) => people.length));
  if (Object.keys(past).length) {
    wrap.append(h("h3", { class: "subhead" }, "Engaged earlier"), personaCards(past, "member past"));
  }
  return wrap;
}

function personaCards(groups, cls) {
  const personas = Object.keys(groups).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  return h("div", { class: "committee" }, personas.map((persona) =>
    h("div", { class: "persona", "data-persona": persona },
      h("h3", {}, persona, h("span", { class: "muted" }, ` ${groups[persona].length}`)),
      h("ul", {}, groups[persona].map((who) => h("li", { class: cls }, who))))));
}

function rank(persona) {
  const i = PERSONA_ORDER.indexOf(persona);
  return i < 0 ? PERSONA_ORDER.length : i;
}

function scoreChart(points) {
  if (!points.length) return empty("No scores yet.", { id: "scores-empty" });
  const series = [
    { key: "total", label: "total", color: "#1d4ed8", width: 2.5 },
    { key: "engagement", label: "engagement", color: "#059669" },
    { key: "fit", label: "fit", color: "#d97706" },
  ];
  const wrap = h("div", { class: "scores-wrap" });
  wrap.draw = () => {
    const width = Math.max(320, wrap.clientWidth || 520);
    clear(wrap).append(lineChart(points, series, { width, height: 200 }),
                       legend(series.map((sr) => [sr.label, sr.color])));
  };
  return wrap;
}

function contactTable(contacts) {
  if (!contacts.length) return empty("No scored contacts yet.", { id: "contacts-empty" });
  return table([
    { key: "contact_id", label: "contact" },
    { key: "persona", label: "persona" },
    { key: "title", label: "title" },
    { key: "score_now", label: "score now", fmt: (v) => fmtNum(v) },
    { key: "last_touch_at", label: "last scoring touch", fmt: fmtTime },
    { key: "engaged", label: "engaged", fmt: (v) => (v ? "yes" : "") },
  ], contacts, { id: "contacts-table" });
}

function alertList(alerts) {
  if (alerts === null) return empty("No alerts (alerting is not enabled on this tracker).", { id: "alerts-empty" });
  if (!alerts.length) return empty("No alerts.", { id: "alerts-empty" });
  return table([
    { key: "at", label: "time", fmt: fmtTime },
    { key: "rule", label: "rule" },
    { key: "summary", label: "summary" },
    { key: "owner", label: "owner" },
    { key: "delivery", label: "delivery", fmt: deliveryCell },
  ], alerts, { id: "alerts-table" });
}

function eventTable(events) {
  if (!events.length) return empty("No events.");
  const details = h("details", {}, h("summary", {}, `${events.length} events`));
  details.append(table([
    { key: "event_time", label: "time", fmt: fmtTime },
    { key: "side", label: "side" },
    { key: "channel", label: "channel" },
    { key: "event_type", label: "type" },
    { key: "name", label: "name" },
    { key: "person", label: "person", fmt: (_, e) => person(e) },
    { key: "rep_id", label: "rep", fmt: (v, e) => (v ? `${v}${e.rep_role ? ` (${e.rep_role})` : ""}` : "") },
  ], events, { id: "events-table" }));
  return details;
}

load().catch((err) => {
  clear(main).append(errorBox(err));
  ready(main, "error");
});

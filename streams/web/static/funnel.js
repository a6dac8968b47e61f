// /ui/funnel: conversion between stages (funnel report, by source/persona/segment/period,
// mode any/strict), MQL acceptance and rejection reasons, sales handoff latency and SLA.

import { linear } from "./charts.js";
import {
  clear, empty, errorBox, fmtNum, fmtPct, h, initPage, ready, report, s, section, shareBar, stageColor, table,
} from "./common.js";

const main = initPage("funnel");
const params = new URLSearchParams(location.search);
const state = {
  by: params.get("by") || "source",
  mode: params.get("mode") || "any",
  handoff: params.get("handoff") || "team",
};

function select(id, value, options, label) {
  const el = h("select", { id, name: id, "aria-label": label },
    options.map(([v, text]) => h("option", { value: v, selected: v === value }, text)));
  return h("label", {}, `${label} `, el);
}

const controls = h("form", { class: "toolbar", id: "funnel-controls" },
  select("by", state.by, [["source", "source"], ["persona", "persona"], ["segment", "segment (ICP fit)"],
                          ["period", "period (month)"]], "group by"),
  select("mode", state.mode, [["any", "any order"], ["strict", "strict order"]], "count"),
  select("handoff", state.handoff, [["team", "team"], ["rep", "rep"]], "handoff by"));
const funnelBox = h("div");
const acceptanceBox = h("div");
const handoffBox = h("div");
const comparisonsBox = h("div");
main.append(h("h1", {}, "Funnel"), controls,
  section("funnel", "Stage conversion", funnelBox),
  section("acceptance", "MQL acceptance", acceptanceBox),
  section("handoff", "Sales handoff (MQL → first 1:1 touch)", handoffBox),
  section("comparisons", "Definitions versions compared (journeys definitions backfill)", comparisonsBox));

controls.addEventListener("change", (ev) => {
  state[ev.target.name] = ev.target.value;
  const url = new URL(location.href);
  for (const [k, v] of Object.entries(state)) url.searchParams.set(k, v);
  history.replaceState(null, "", url.pathname + url.search);
  load(ev.target.name === "handoff" ? ["handoff"] : ["funnel"]);
});

// ---- funnel -----------------------------------------------------------------------------

function stagesOf(rows) {
  return rows.length ? Object.keys(rows[0]).filter((k) => k !== "group_key" && k !== "accounts") : [];
}

function funnelChart(stages, totals, width = 760) {
  const m = { left: 110, right: 130, top: 8, row: 30 };
  const height = m.top * 2 + stages.length * m.row;
  const max = Math.max(1, ...stages.map((st) => totals[st]));
  const x = linear(0, max, 0, width - m.left - m.right);
  const svg = s("svg", { id: "funnel-chart", class: "chart funnel", viewBox: `0 0 ${width} ${height}`, width, height,
                         role: "img", "aria-label": "accounts reaching each stage" });
  stages.forEach((st, i) => {
    const y = m.top + i * m.row;
    const w = Math.max(1, x(totals[st]));
    const prev = i ? totals[stages[i - 1]] : null;
    const conv = prev ? totals[st] / prev : null;
    svg.append(
      s("text", { x: m.left - 8, y: y + 18, "text-anchor": "end", class: "stage-label" }, st),
      s("rect", { x: m.left + (x(max) - w) / 2, y: y + 3, width: w, height: m.row - 6, rx: 3,
                  fill: stageColor(st), stroke: "#64748b", class: "funnel-bar", "data-stage": st }),
      s("text", { x: m.left + x(max) / 2, y: y + 18, "text-anchor": "middle", class: "bar-value" }, fmtNum(totals[st])),
      s("text", { x: width - m.right + 8, y: y + 18, class: "conversion" },
        conv === null ? "" : `${fmtPct(conv)} of ${stages[i - 1]}`));
  });
  return svg;
}

function renderFunnel(rows) {
  clear(funnelBox);
  if (!rows.length) {
    funnelBox.append(empty("No stage changes yet.", { id: "funnel-empty" }));
    return;
  }
  const stages = stagesOf(rows);
  const totals = Object.fromEntries(stages.map((st) => [st, rows.reduce((a, r) => a + Number(r[st] || 0), 0)]));
  funnelBox.append(funnelChart(stages, totals));
  const columns = [
    { key: "group_key", label: state.by },
    { key: "accounts", label: "accounts", num: true },
    ...stages.map((st, i) => ({
      key: st, label: st, num: true,
      fmt: (v, row) => {
        const base = i ? Number(row[stages[i - 1]]) : Number(row.accounts);
        return h("span", {}, fmtNum(v), h("span", { class: "muted conv" }, base ? ` ${fmtPct(Number(v) / base)}` : ""));
      },
    })),
  ];
  funnelBox.append(table(columns, rows, { id: "funnel-table" }),
    h("p", { class: "muted" }, state.mode === "strict"
      ? "Strict: an account counts for a stage only if it reached every earlier stage before it, in order."
      : "Any order: an account counts for every stage it ever reached. Percentages: of the previous column."));
}

// ---- acceptance and handoff -------------------------------------------------------------

function renderAcceptance(rows) {
  clear(acceptanceBox).append(rows.length ? table([
    { key: "source", label: "lead source" },
    { key: "mqls", label: "MQLs", num: true },
    { key: "accepted", label: "accepted", num: true },
    { key: "rejected", label: "rejected", num: true },
    { key: "acceptance_rate", label: "acceptance", fmt: (v) => (v === null ? "–" : shareBar(v, fmtPct(v))) },
    { key: "top_rejection_reasons", label: "top rejection reasons" },
  ], rows, { id: "acceptance-table" }) : empty("No lead status changes yet.", { id: "acceptance-empty" }));
}

function renderHandoff(rows) {
  const key = state.handoff;
  clear(handoffBox).append(rows.length ? table([
    { key, label: key },
    { key: "mqls", label: "MQLs", num: true },
    { key: "touched", label: "touched", num: true },
    { key: "median_hours", label: "median h", num: true, fmt: (v) => fmtNum(v) },
    { key: "max_hours", label: "max h", num: true, fmt: (v) => fmtNum(v) },
    { key: "within_sla", label: "within SLA", num: true },
    { key: "sla_compliance", label: "SLA compliance",
      fmt: (v) => shareBar(v, fmtPct(v), Number(v) >= 0.9 ? "good" : Number(v) >= 0.7 ? "warn" : "bad") },
  ], rows, { id: "handoff-table" }) : empty("No MQLs yet.", { id: "handoff-empty" }));
}

// ---- load -------------------------------------------------------------------------------

function renderComparisons(rows) {
  clear(comparisonsBox);
  if (!rows.length) {
    comparisonsBox.append(empty("No comparison yet: run journeys definitions backfill --version FILE --from … --to …",
                                { id: "comparisons-empty" }));
    return;
  }
  comparisonsBox.append(table([
    { key: "computed_at", label: "run", fmt: (v) => String(v).slice(0, 16).replace("T", " ") },
    { key: "version", label: "version", fmt: (v, r) => `${r.recorded_version} → ${v}` },
    { key: "period_start", label: "period", fmt: (v, r) => `${String(v).slice(0, 10)} … ${String(r.period_end).slice(0, 10)}` },
    { key: "stage", label: "stage" },
    { key: "recorded_accounts", label: "recorded", num: true },
    { key: "accounts", label: "under the version", num: true },
    { key: "difference", label: "difference", num: true, fmt: (v) => (v > 0 ? `+${v}` : String(v)) },
  ], rows, { id: "comparisons-table" }));
}

async function load(parts = ["funnel", "acceptance", "handoff", "comparisons"]) {
  main.dataset.state = "loading";
  const jobs = {
    funnel: () => report("funnel", { by: state.by, mode: state.mode }).then(renderFunnel),
    acceptance: () => report("acceptance").then(renderAcceptance),
    handoff: () => report("handoff", { by: state.handoff }).then(renderHandoff),
    comparisons: () => report("definitions-comparisons").then(renderComparisons),
  };
  const boxes = { funnel: funnelBox, acceptance: acceptanceBox, handoff: handoffBox, comparisons: comparisonsBox };
  await Promise.all(parts.map((p) => jobs[p]().catch((err) => clear(boxes[p]).append(errorBox(err)))));
  ready(main);
}

load();

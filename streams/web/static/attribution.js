// /ui/attribution: revenue credit of won deals by channel for one model, the
// marketing/sales split (split=team) as one bar per currency, and the split by rep role.

import { linear } from "./charts.js";
import {
  channelColor, clear, empty, errorBox, fmtNum, fmtPct, h, initPage, ready, report, s, section, table,
} from "./common.js";

// sinks/clickhouse/attribution.py MODELS (the API answers 400 naming them if this list goes stale)
const MODELS = [
  ["w_shaped", "W-shaped (first touch, lead creation, opportunity)"],
  ["u_shaped", "U-shaped (first touch, lead creation)"],
  ["first_touch", "first touch"],
  ["last_touch", "last touch"],
  ["lead_creation", "lead creation"],
  ["full_path", "full path (first, lead, opportunity, last touch)"],
  ["linear", "linear"],
  ["time_decay", "time decay"],
];
const TEAM_COLORS = { marketing: "#2563eb", sales: "#ea580c" };

const main = initPage("attribution");
const params = new URLSearchParams(location.search);
let model = params.get("model") || "w_shaped";
const modelSelect = h("select", { id: "model", name: "model", "aria-label": "model" },
  MODELS.map(([v, label]) => h("option", { value: v, selected: v === model }, label)));
const splitBox = h("div");
const roleBox = h("div");
const channelBox = h("div");
main.append(h("h1", {}, "Attribution"), h("form", { class: "toolbar" }, h("label", {}, "model ", modelSelect)),
  section("split", "Marketing / sales credit", splitBox),
  section("roles", "Credit by role (marketing, SDR, AE)", roleBox),
  section("channels", "Credit by channel", channelBox));

function currencies(rows) {
  return [...new Set(rows.map((r) => r.currency || ""))];
}

function splitBar(rows, currency, width = 760, height = 46) {
  const total = rows.reduce((a, r) => a + Number(r.credit || 0), 0) || 1;
  const x = linear(0, total, 0, width);
  const svg = s("svg", { id: currency ? `split-bar-${currency}` : "split-bar", class: "chart split", viewBox: `0 0 ${width} ${height}`, width, height,
                         role: "img", "aria-label": "marketing and sales credit" });
  let at = 0;
  for (const r of rows) {
    const w = x(Number(r.credit || 0));
    const color = TEAM_COLORS[r.team] || channelColor(r.team);
    svg.append(s("rect", { x: at, y: 4, width: Math.max(0, w), height: height - 8, fill: color, class: "team-part",
                           "data-team": r.team }));
    if (w > 90) {
      svg.append(s("text", { x: at + 8, y: height / 2 + 5, class: "on-bar" }, `${r.team} ${fmtPct(r.share)}`));
    }
    at += w;
  }
  return svg;
}

function channelBars(rows, width = 760) {
  const m = { left: 100, right: 150, row: 26 };
  const height = rows.length * m.row + 8;
  const max = Math.max(1, ...rows.map((r) => Number(r.credit || 0)));
  const x = linear(0, max, 0, width - m.left - m.right);
  const svg = s("svg", { id: "channel-bars", class: "chart bars", viewBox: `0 0 ${width} ${height}`, width, height,
                         role: "img", "aria-label": "credit by channel" });
  rows.forEach((r, i) => {
    const y = 4 + i * m.row;
    svg.append(
      s("text", { x: m.left - 8, y: y + 16, "text-anchor": "end" }, r.channel),
      s("rect", { x: m.left, y: y + 3, width: Math.max(1, x(Number(r.credit || 0))), height: m.row - 8, rx: 2,
                  fill: channelColor(r.channel), class: "channel-bar", "data-channel": r.channel }),
      s("text", { x: m.left + x(Number(r.credit || 0)) + 6, y: y + 16, class: "bar-value" },
        `${fmtNum(r.credit, 0)} · ${fmtPct(r.share)}`));
  });
  return svg;
}

async function load() {
  main.dataset.state = "loading";
  try {
    const [byChannel, byTeam, byRole] = await Promise.all([
      report("attribution", { model }),
      report("attribution", { model, split: "team" }),
      report("attribution", { model, split: "role" }),
    ]);
    clear(splitBox);
    clear(roleBox);
    clear(channelBox);
    if (!byChannel.length) {
      splitBox.append(empty("No won deals yet.", { id: "attribution-empty" }));
    } else {
      const curs = currencies(byTeam);
      curs.forEach((cur, i) => {
        // amounts in different currencies are never summed: one bar per currency
        const bar = splitBar(byTeam.filter((r) => (r.currency || "") === cur), cur);
        if (i === 0) bar.id = "split-bar";
        splitBox.append(h("p", { class: "currency" }, cur || "no currency"), bar);
      });
      roleBox.append(table([
        { key: "currency", label: "currency" },
        { key: "role", label: "role" },
        { key: "credit", label: "credit", num: true, fmt: (v) => fmtNum(v, 0) },
        { key: "share", label: "share", num: true, fmt: fmtPct },
      ], byRole, { id: "role-table" }));
      splitBox.append(table([
        { key: "currency", label: "currency" },
        { key: "team", label: "team" },
        { key: "credit", label: "credit", num: true, fmt: (v) => fmtNum(v, 0) },
        { key: "share", label: "share", num: true, fmt: fmtPct },
      ], byTeam, { id: "split-table" }));
      channelBox.append(channelBars(byChannel), table([
        { key: "currency", label: "currency" },
        { key: "channel", label: "channel" },
        { key: "team", label: "team" },
        { key: "credit", label: "credit", num: true, fmt: (v) => fmtNum(v, 0) },
        { key: "share", label: "share", num: true, fmt: fmtPct },
      ], byChannel, { id: "channel-table" }));
    }
    ready(main);
  } catch (err) {
    clear(splitBox).append(errorBox(err));
    clear(channelBox);
    ready(main, "error");
  }
}

modelSelect.addEventListener("change", () => {
  model = modelSelect.value;
  const url = new URL(location.href);
  url.searchParams.set("model", model);
  history.replaceState(null, "", url.pathname + url.search);
  load();
});

load();

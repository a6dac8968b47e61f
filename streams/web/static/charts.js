// Scales, time ticks and the small SVG charts of the UI (hand-written; no chart library).

import { fmtNum, fmtTime, h, s, tooltip } from "./common.js";

const HOUR = 3600e3;
const DAY = 24 * HOUR;
const STEPS = [HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY, 14 * DAY, 30 * DAY,
               91 * DAY, 182 * DAY, 365 * DAY];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

export function linear(d0, d1, r0, r1) {
  const span = d1 - d0 || 1;
  return (v) => r0 + ((v - d0) / span) * (r1 - r0);
}

/** [t0, t1] widened a little (and to a day at least) so marks at the ends stay visible. */
export function timeDomain(times) {
  const ok = times.filter((t) => !Number.isNaN(t));
  if (!ok.length) {
    const now = Date.now();
    return [now - 7 * DAY, now];
  }
  let t0 = Math.min(...ok);
  let t1 = Math.max(...ok);
  if (t1 - t0 < DAY) {
    t0 -= DAY / 2;
    t1 += DAY / 2;
  }
  const padding = (t1 - t0) * 0.03;
  return [t0 - padding, t1 + padding];
}

/** About `count` round UTC instants in [t0, t1] with labels (hours, days, weeks or months). */
export function timeTicks(t0, t1, count = 8) {
  const step = STEPS.find((st) => (t1 - t0) / st <= count) || STEPS[STEPS.length - 1];
  const ticks = [];
  if (step >= 30 * DAY) {
    const months = Math.round(step / (30 * DAY));
    const d = new Date(t0);
    let y = d.getUTCFullYear();
    let m = d.getUTCMonth() + 1;
    for (;;) {
      if (m >= 12) { y += Math.floor(m / 12); m %= 12; }
      const t = Date.UTC(y, m, 1);
      if (t > t1) break;
      if (m % months === 0) ticks.push([t, `${MONTHS[m]} ${y}`]);
      m += 1;
    }
    return ticks;
  }
  const start = Math.ceil(t0 / step) * step;
  for (let t = start; t <= t1; t += step) {
    const d = new Date(t);
    const day = `${MONTHS[d.getUTCMonth()]} ${d.getUTCDate()}`;
    ticks.push([t, step < DAY ? `${day} ${String(d.getUTCHours()).padStart(2, "0")}:00` : day]);
  }
  return ticks;
}

/** A time axis (ticks and labels) at `y` between x scale bounds, with grid lines up to `top`. */
export function timeAxis(x, t0, t1, y, top, count) {
  const g = s("g", { class: "axis" });
  g.append(s("line", { x1: x(t0), x2: x(t1), y1: y, y2: y, class: "axis-line" }));
  for (const [t, label] of timeTicks(t0, t1, count)) {
    g.append(s("line", { x1: x(t), x2: x(t), y1: top, y2: y, class: "grid" }));
    g.append(s("text", { x: x(t), y: y + 16, "text-anchor": "middle" }, label));
  }
  return g;
}

/**
 * A small step-line chart over time: `series` is [{key, label, color, width?}], `points` rows
 * with `at` (ISO) and one number per series key. Hovering a point shows every series there.
 */
export function lineChart(points, series, { width = 520, height = 200 } = {}) {
  const m = { left: 40, right: 12, top: 10, bottom: 26 };
  const times = points.map((p) => Date.parse(p.at.endsWith("Z") ? p.at : `${p.at}Z`));
  const [t0, t1] = timeDomain(times);
  const max = Math.max(1, ...points.flatMap((p) => series.map((sr) => Number(p[sr.key]) || 0)));
  const x = linear(t0, t1, m.left, width - m.right);
  const y = linear(0, max * 1.1, height - m.bottom, m.top);
  const svg = s("svg", { class: "chart line-chart", viewBox: `0 0 ${width} ${height}`, width, height,
                         role: "img", "aria-label": "scores over time" });
  const yAxis = s("g", { class: "axis" });
  for (const v of niceSteps(max * 1.1, 4)) {
    yAxis.append(s("line", { x1: m.left, x2: width - m.right, y1: y(v), y2: y(v), class: "grid" }));
    yAxis.append(s("text", { x: m.left - 6, y: y(v) + 4, "text-anchor": "end" }, fmtNum(v, 0)));
  }
  svg.append(yAxis, timeAxis(x, t0, t1, height - m.bottom, m.top, Math.max(2, Math.floor(width / 110))));
  for (const sr of series) {
    let d = "";
    points.forEach((p, i) => {
      const px = x(times[i]);
      const py = y(Number(p[sr.key]) || 0);
      d += i === 0 ? `M${px},${py}` : `H${px}V${py}`;
    });
    if (points.length) d += `H${x(t1)}`;
    svg.append(s("path", { d, class: `series series-${sr.key}`, stroke: sr.color, "stroke-width": sr.width || 1.5,
                           fill: "none" }));
  }
  points.forEach((p, i) => {
    const dot = s("circle", { cx: x(times[i]), cy: y(Number(p[series[0].key]) || 0), r: 3,
                              fill: series[0].color, class: "score-point", tabindex: 0 });
    tooltip(dot, () => [["time", fmtTime(p.at)], ["stage", p.stage],
                        ...series.map((sr) => [sr.label, fmtNum(p[sr.key])])]);
    svg.append(dot);
  });
  return svg;
}

function niceSteps(max, count) {
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw || 1));
  const step = [1, 2, 5, 10].map((f) => f * mag).find((st) => st >= raw) || raw;
  const out = [];
  for (let v = 0; v <= max; v += step) out.push(v);
  return out;
}

/** A legend: [label, color] pairs as swatches. */
export function legend(items, cls = "legend") {
  return h("ul", { class: cls }, items.map(([label, color, count]) => {
    const sw = h("span", { class: "swatch" });
    sw.style.background = color;
    return h("li", {}, sw, label, count !== undefined ? h("span", { class: "muted" }, ` ${count}`) : null);
  }));
}

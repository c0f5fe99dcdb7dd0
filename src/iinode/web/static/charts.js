// Small SVG line charts: no library, a series is a list of [time (s), value].

const NS = "http://www.w3.org/2000/svg";
export const COLOURS = ["#1565c0", "#ef6c00", "#2e7d32", "#8e24aa", "#c62828", "#00838f"];

function el(name, attrs, parent) {
  const node = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

function fmt(v) {
  if (Math.abs(v) >= 1000) return v.toFixed(0);
  if (Math.abs(v) >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

export function lineChart(series, { width = 600, height = 140, min, max } = {}) {
  const svg = el("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`,
    preserveAspectRatio: "none", role: "img" });
  const points = series.flatMap((s) => s.points);
  if (!points.length) {
    el("text", { x: 10, y: height / 2 }, svg).textContent = "no data yet";
    return svg;
  }
  const pad = { l: 42, r: 8, t: 8, b: 18 };
  const t0 = Math.min(...points.map((p) => p[0]));
  const t1 = Math.max(...points.map((p) => p[0]));
  let lo = min ?? Math.min(...points.map((p) => p[1]));
  let hi = max ?? Math.max(...points.map((p) => p[1]));
  if (hi === lo) { hi += 1; lo -= lo > 0 ? 1 : 0; }
  const x = (t) => pad.l + (t1 === t0 ? 0 : ((t - t0) / (t1 - t0)) * (width - pad.l - pad.r));
  const y = (v) => height - pad.b - ((v - lo) / (hi - lo)) * (height - pad.t - pad.b);
  for (const v of [lo, (lo + hi) / 2, hi]) {
    el("line", { class: "grid", x1: pad.l, x2: width - pad.r, y1: y(v), y2: y(v) }, svg);
    el("text", { x: 2, y: y(v) + 3 }, svg).textContent = fmt(v);
  }
  const clock = (t) => new Date(t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  el("text", { x: pad.l, y: height - 4 }, svg).textContent = clock(t0);
  el("text", { x: width - pad.r - 50, y: height - 4 }, svg).textContent = clock(t1);
  series.forEach((s, i) => {
    if (!s.points.length) return;
    const d = s.points.map((p, j) => `${j ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join("");
    el("path", { d, fill: "none", stroke: s.colour || COLOURS[i % COLOURS.length],
      "stroke-width": 1.8, "vector-effect": "non-scaling-stroke" }, svg);
  });
  return svg;
}

export function legend(series) {
  const div = document.createElement("div");
  div.className = "legend";
  series.forEach((s, i) => {
    const span = document.createElement("span");
    const mark = document.createElement("i");
    mark.style.background = s.colour || COLOURS[i % COLOURS.length];
    span.append(mark, s.name);
    div.appendChild(span);
  });
  return div;
}

/** A bounded history of samples kept between polls. */
export class History {
  constructor(limit = 120) { this.limit = limit; this.series = new Map(); }
  add(name, t, v) {
    if (v === null || v === undefined || Number.isNaN(v)) return;
    const s = this.series.get(name) || [];
    s.push([t, v]);
    if (s.length > this.limit) s.shift();
    this.series.set(name, s);
  }
  get(name) { return this.series.get(name) || []; }
}

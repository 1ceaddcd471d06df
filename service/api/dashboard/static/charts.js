// Small SVG charts drawn from plain arrays: grouped horizontal bars, step lines, a scatter, stacked columns
// and stacked areas. Each mark carries a class (bar, pt, seg, area) and a data-series index so tests and
// readers can count what is drawn; native <title> tooltips give exact values.

import { h, num, svg } from "./ui.js";

export const PALETTE = [
  "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
  "#79706e", "#1f77b4", "#aec7e8", "#ffbb78", "#98df8a", "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d",
  "#9edae5", "#17becf",
];

export const colorFor = (i) => PALETTE[i % PALETTE.length];

function scale(d0, d1, r0, r1) {
  const k = d1 === d0 ? 0 : (r1 - r0) / (d1 - d0);
  return (v) => r0 + (v - d0) * k;
}

/** Round tick values covering [lo, hi] (about ``n`` of them). */
function ticks(lo, hi, n = 5) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const err = raw / mag;
  const step = mag * (err >= 7.5 ? 10 : err >= 3.5 ? 5 : err >= 1.5 ? 2 : 1);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
  return out;
}

function extent(values, pad = 0.05) {
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (!Number.isFinite(lo)) return [0, 1];
  if (hi === lo) { const d = Math.abs(lo) * 0.01 || 1; lo -= d; hi += d; }
  const p = (hi - lo) * pad;
  return [lo - p, hi + p];
}

function frame(width, height, label) {
  return svg("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", class: "chart", role: "img", "aria-label": label });
}

/** Grid lines, tick labels and axis titles for a plot area [left, right] x [top, bottom]. */
function axes(root, box, x, y, xt, yt, opts) {
  const g = svg("g", { class: "axes" });
  for (const t of yt) {
    g.append(svg("line", { x1: box.left, x2: box.right, y1: y(t), y2: y(t), class: "grid" }),
      svg("text", { x: box.left - 6, y: y(t) + 3.5, "text-anchor": "end" }, opts.yFormat(t)));
  }
  for (const t of xt) {
    g.append(svg("line", { x1: x(t), x2: x(t), y1: box.bottom, y2: box.bottom + 4, class: "tick" }),
      svg("text", { x: x(t), y: box.bottom + 16, "text-anchor": "middle" }, opts.xFormat(t)));
  }
  g.append(svg("line", { x1: box.left, x2: box.right, y1: box.bottom, y2: box.bottom, class: "axis" }));
  if (opts.xLabel) {
    const at = { x: (box.left + box.right) / 2, y: box.bottom + 32 };
    g.append(svg("text", { ...at, "text-anchor": "middle", class: "label" }, opts.xLabel));
  }
  if (opts.yLabel) {
    const transform = `translate(12 ${(box.top + box.bottom) / 2}) rotate(-90)`;
    g.append(svg("text", { transform, "text-anchor": "middle", class: "label" }, opts.yLabel));
  }
  root.append(g);
}

export function legend(items) {
  return h("div", { class: "legend" }, items.map((it) =>
    h("span", { class: "item" }, swatch(it.color), it.name)));
}

/** A colour chip (an SVG rect: the page's CSP allows no inline style attributes). */
export function swatch(color) {
  return svg("svg", { width: 10, height: 10, class: "swatch", "aria-hidden": "true" },
    svg("rect", { width: 10, height: 10, rx: 2, fill: color }));
}

/**
 * Grouped horizontal bars: one row per category, one bar per series.
 * series: [{name, color, values: number[] (per category), testid}]
 */
export function hbars({ categories, series, format, width = 600, labelWidth = 140, max }) {
  const barH = series.length > 1 ? Math.max(5, 16 / series.length + 2) : 14;
  const rowH = barH * series.length + 7;
  const m = { top: 6, right: 58, bottom: 22, left: labelWidth };
  const height = m.top + m.bottom + rowH * categories.length;
  const vmax = max ?? Math.max(1e-9, ...series.flatMap((s) => s.values.filter(Number.isFinite)));
  const x = scale(0, vmax, m.left, width - m.right);
  const root = frame(width, height, "bar chart");
  const xt = ticks(0, vmax, 4);
  axes(root, { left: m.left, right: width - m.right, top: m.top, bottom: height - m.bottom }, x, () => 0, xt, [],
    { xFormat: format, yFormat: String });
  categories.forEach((cat, i) => {
    const top = m.top + i * rowH + 3;
    root.append(svg("text", { x: m.left - 6, y: top + (barH * series.length) / 2 + 3.5, "text-anchor": "end", class: "cat" }, cat));
    series.forEach((s, j) => {
      const v = s.values[i];
      if (!Number.isFinite(v)) return;
      const y0 = top + j * barH;
      const box = { x: m.left, y: y0, width: Math.max(0.5, x(v) - m.left), height: barH - 1 };
      root.append(svg("rect", { ...box, fill: s.color, class: "bar", "data-series": j },
        svg("title", {}, `${cat} · ${s.name}: ${format(v)}`)));
      if (barH >= 9) root.append(svg("text", { x: x(v) + 3, y: y0 + barH / 2 + 3, class: "value" }, format(v)));
    });
  });
  return root;
}

/**
 * Lines through points, as steps (value holds until the next point) or straight segments.
 * series: [{name, color, points: [[x, y], ...]}]
 */
export function lines({
  series, xLabel, yLabel, xFormat = num, yFormat = num, step = true, width = 600, height = 300, xFrom, xLog = false,
}) {
  const m = { top: 10, right: 16, bottom: 40, left: 64 };
  const all = series.flatMap((s) => s.points);
  const tx = xLog ? Math.log10 : (v) => v;
  const xs = [...(xFrom === undefined || xLog ? [] : [xFrom]), ...all.map((p) => p[0])].filter((v) => !xLog || v > 0).map(tx);
  const [x0, x1] = extent(xs, 0.02);
  const [y0, y1] = extent(all.map((p) => p[1]));
  const box = { left: m.left, right: width - m.right, top: m.top, bottom: height - m.bottom };
  const xt = scale(x0, x1, box.left, box.right);
  const x = (v) => xt(tx(v));
  const y = scale(y0, y1, box.bottom, box.top);
  const root = frame(width, height, "line chart");
  const xTicks = xLog
    ? Array.from({ length: Math.floor(x1) - Math.ceil(x0) + 1 }, (_, i) => 10 ** (Math.ceil(x0) + i))
    : ticks(x0, x1, 6);
  axes(root, box, x, y, xTicks, ticks(y0, y1, 5), { xFormat, yFormat, xLabel, yLabel });
  series.forEach((s, i) => {
    const pts = xLog ? s.points.filter((p) => p[0] > 0) : s.points;
    if (!pts.length) return;
    let d = `M${x(pts[0][0])},${y(pts[0][1])}`;
    for (const [px, py] of pts.slice(1)) d += step ? `H${x(px)}V${y(py)}` : `L${x(px)},${y(py)}`;
    root.append(svg("path", { d, stroke: s.color, class: "line", "data-series": i }));
    for (const [px, py] of pts) {
      root.append(svg("circle", { cx: x(px), cy: y(py), r: 3, fill: s.color, class: "pt", "data-series": i },
        svg("title", {}, `${s.name}: ${yFormat(py)} at ${xFormat(px)}`)));
    }
  });
  return root;
}

/** Points with the y = x line: predicted against observed. */
export function scatter({ points, xLabel, yLabel, format = num, width = 600, height = 320, color = PALETTE[0] }) {
  const m = { top: 10, right: 16, bottom: 40, left: 64 };
  const [lo, hi] = extent(points.flat());
  const box = { left: m.left, right: width - m.right, top: m.top, bottom: height - m.bottom };
  const x = scale(lo, hi, box.left, box.right);
  const y = scale(lo, hi, box.bottom, box.top);
  const root = frame(width, height, "scatter chart");
  const t = ticks(lo, hi, 5);
  axes(root, box, x, y, t, t, { xFormat: format, yFormat: format, xLabel, yLabel });
  root.append(svg("line", { x1: x(lo), y1: y(lo), x2: x(hi), y2: y(hi), class: "diagonal" }));
  for (const [px, py] of points) {
    root.append(svg("circle", { cx: x(px), cy: y(py), r: 2.6, fill: color, class: "pt" },
      svg("title", {}, `observed ${format(px)}, predicted ${format(py)}`)));
  }
  return root;
}

/**
 * Stacked columns of shares (each column sums to about 1): one column per refit.
 * columns: [{label, title, values: number[] (per key)}]; keys: names; colors: per key.
 */
export function stackedColumns({ columns, keys, colors, xLabel, width = 600, height = 280 }) {
  const m = { top: 10, right: 12, bottom: 40, left: 48 };
  const box = { left: m.left, right: width - m.right, top: m.top, bottom: height - m.bottom };
  const step = (box.right - box.left) / Math.max(1, columns.length);
  const y = scale(0, 1, box.bottom, box.top);
  const root = frame(width, height, "stacked columns");
  const every = Math.ceil(columns.length / 12);
  axes(root, box, () => 0, y, [], [0, 0.25, 0.5, 0.75, 1], { xFormat: String, yFormat: (v) => `${v * 100}%`, xLabel });
  columns.forEach((col, i) => {
    const g = svg("g", { class: "col", "data-index": i }, svg("title", {}, col.title || col.label));
    const total = col.values.reduce((a, b) => a + b, 0) || 1;
    let acc = 0;
    col.values.forEach((v, k) => {
      if (!(v > 0)) return;
      const [top, bottom] = [y((acc + v) / total), y(acc / total)];
      const rect = { x: box.left + i * step + step * 0.1, width: step * 0.8, y: top, height: bottom - top };
      g.append(svg("rect", { ...rect, fill: colors[k], class: "seg", "data-series": k },
        svg("title", {}, `${keys[k]}: ${(100 * v / total).toFixed(1)}% (${col.title || col.label})`)));
      acc += v;
    });
    root.append(g);
    if (i % every === 0 || i === columns.length - 1) {
      root.append(svg("text", { x: box.left + (i + 0.5) * step, y: box.bottom + 16, "text-anchor": "middle" }, col.label));
    }
  });
  return root;
}

/** Stacked areas of shares over a numeric x (weights over training steps). rows[i][k]: share of key k at xs[i]. */
export function stackedArea({ xs, rows, keys, colors, xLabel, xFormat = num, width = 600, height = 280 }) {
  const m = { top: 10, right: 24, bottom: 40, left: 48 };
  const box = { left: m.left, right: width - m.right, top: m.top, bottom: height - m.bottom };
  const x = scale(xs[0], xs[xs.length - 1], box.left, box.right);
  const y = scale(0, 1, box.bottom, box.top);
  const root = frame(width, height, "stacked areas");
  axes(root, box, x, y, ticks(xs[0], xs[xs.length - 1], 6), [0, 0.25, 0.5, 0.75, 1],
    { xFormat, yFormat: (v) => `${v * 100}%`, xLabel });
  const totals = rows.map((r) => r.reduce((a, b) => a + b, 0) || 1);
  const base = rows.map(() => 0);
  keys.forEach((key, k) => {
    const lower = base.slice();
    rows.forEach((r, i) => { base[i] += r[k] / totals[i]; });
    const top = xs.map((xv, i) => `${x(xv)},${y(base[i])}`);
    const bottom = xs.map((xv, i) => `${x(xv)},${y(lower[i])}`).reverse();
    root.append(svg("path", { d: `M${top.join("L")}L${bottom.join("L")}Z`, fill: colors[k], class: "area", "data-series": k },
      svg("title", {}, key)));
  });
  return root;
}

/** Every ``k``-th item so at most ``max`` remain, always keeping the last (the current state). */
export function every(items, max) {
  if (items.length <= max) return items;
  const stride = Math.ceil(items.length / max);
  const out = items.filter((_, i) => i % stride === 0);
  if (out[out.length - 1] !== items[items.length - 1]) out[out.length - 1] = items[items.length - 1];
  return out;
}

/** A mixture as one thin stacked bar, domains in experiment order and colour. */
export function mixtureBar(mixture, domains, width = 120) {
  const root = svg("svg", { width, height: 10, viewBox: `0 0 ${width} 10`, class: "mixbar", role: "img", "aria-label": "mixture" });
  let acc = 0;
  domains.forEach((d, i) => {
    const w = mixture[d] || 0;
    if (w <= 0) return;
    root.append(svg("rect", { x: acc * width, width: w * width, height: 10, fill: colorFor(i) },
      svg("title", {}, `${d}: ${(100 * w).toFixed(1)}%`)));
    acc += w;
  });
  return root;
}

/**
 * A trade-off front: observed runs as points (those on the observed front filled), the predicted front as
 * a line through its points with 90% interval whiskers on y, and bounds as dashed lines.
 * front: [[x, y, yLow, yHigh]]; observed: [[x, y, onFront, label]]; bounds: {x?: number, y?: number}.
 */
export function front({ front: pts, observed, bounds = {}, xLabel, yLabel, format = num, width = 600, height = 320 }) {
  const m = { top: 10, right: 16, bottom: 40, left: 64 };
  const xs = [...pts.map((p) => p[0]), ...observed.map((p) => p[0]), ...(bounds.x === undefined ? [] : [bounds.x])];
  const ys = [...pts.map((p) => p[1]), ...observed.map((p) => p[1]), ...(bounds.y === undefined ? [] : [bounds.y])];
  const [x0, x1] = extent(xs);
  const [y0, y1] = extent(ys);
  const box = { left: m.left, right: width - m.right, top: m.top, bottom: height - m.bottom };
  const x = scale(x0, x1, box.left, box.right);
  const y = scale(y0, y1, box.bottom, box.top);
  const root = frame(width, height, "front chart");
  axes(root, box, x, y, ticks(x0, x1, 6), ticks(y0, y1, 5), { xFormat: format, yFormat: format, xLabel, yLabel });
  if (bounds.x !== undefined) root.append(svg("line", { x1: x(bounds.x), x2: x(bounds.x), y1: box.top, y2: box.bottom, class: "bound" }));
  if (bounds.y !== undefined) root.append(svg("line", { x1: box.left, x2: box.right, y1: y(bounds.y), y2: y(bounds.y), class: "bound" }));
  for (const [px, py, on, label] of observed) {
    root.append(svg("circle", { cx: x(px), cy: y(py), r: 3, class: on ? "pt observed on-front" : "pt observed", "data-series": 1 },
      svg("title", {}, `${label}: ${format(px)}, ${format(py)}${on ? " (on the observed front)" : ""}`)));
  }
  if (pts.length) {
    const d = pts.map(([px, py], i) => `${i ? "L" : "M"}${x(px)},${y(py)}`).join("");
    root.append(svg("path", { d, stroke: PALETTE[0], class: "line", "data-series": 0 }));
  }
  for (const [px, py, lo, hi] of pts) {
    root.append(svg("line", { x1: x(px), x2: x(px), y1: y(lo), y2: y(hi), stroke: PALETTE[0], class: "whisker" }),
      svg("circle", { cx: x(px), cy: y(py), r: 2.6, fill: PALETTE[0], class: "pt predicted", "data-series": 0 },
        svg("title", {}, `predicted ${format(px)}, ${format(py)} [${format(lo)}, ${format(hi)}]`)));
  }
  return root;
}

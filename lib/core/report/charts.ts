/**
 * Inline SVG charts: per-class bars against a threshold, histograms, a scatter. No script, no external font; the
 * SVG scales to the width of the page (viewBox), carries a title and a description for screen readers, and each
 * chart is followed by a table of the same figures in its section. Flagged items differ by a marker and by shape,
 * not only by colour. Coordinates are numbers we computed; labels are escaped text.
 */
import { type Html, html } from "./html";
import { fmt } from "./read";
import type { Ctx } from "./widgets";

const W = 720;
const H = 280;
const M = { left: 56, right: 16, top: 24, bottom: 44 };
const PW = W - M.left - M.right;
const PH = H - M.top - M.bottom;

const r1 = (v: number) => Math.round(v * 10) / 10;

/** About five round tick values covering [lo, hi]. */
export function ticks(lo: number, hi: number, want = 5): number[] {
	if (!(hi > lo)) return [lo];
	const raw = (hi - lo) / want;
	const mag = 10 ** Math.floor(Math.log10(raw));
	const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
	const out: number[] = [];
	for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
	return out;
}

function frame(ctx: Ctx, title: string, desc: string, body: Html): Html {
	const t = ctx.id("chart-title");
	const d = ctx.id("chart-desc");
	return html`<figure class="chart"><svg class="chart" viewBox="0 0 ${W} ${H}" role="img" aria-labelledby="${t} ${d}" xmlns="http://www.w3.org/2000/svg"><title id="${t}">${title}</title><desc id="${d}">${desc}</desc>${body}</svg><figcaption>${title}</figcaption></figure>`;
}

function yAxis(lo: number, hi: number, y: (v: number) => number, label: string): Html {
	return html`<g class="axis">${ticks(lo, hi).map(
		(v) =>
			html`<line class="grid" x1="${M.left}" x2="${W - M.right}" y1="${r1(y(v))}" y2="${r1(y(v))}"/><text x="${M.left - 6}" y="${r1(y(v) + 4)}" text-anchor="end">${fmt(v)}</text>`,
	)}<text class="axis-label" transform="translate(14 ${M.top + PH / 2}) rotate(-90)" text-anchor="middle">${label}</text></g>`;
}

export interface Line {
	value: number;
	label: string;
}

function hLines(lines: readonly Line[], y: (v: number) => number): Html {
	return html`${lines.map(
		(l) =>
			html`<g class="threshold"><line x1="${M.left}" x2="${W - M.right}" y1="${r1(y(l.value))}" y2="${r1(y(l.value))}"/><text x="${W - M.right - 4}" y="${r1(y(l.value) - 5)}" text-anchor="end">${l.label}</text></g>`,
	)}`;
}

export interface BarSpec {
	title: string;
	desc: string;
	/** one label per bar (class numbers) */
	labels: readonly string[];
	/** null: infinite (drawn full height, marked ∞) */
	values: ReadonlyArray<number | null>;
	flagged: readonly boolean[];
	lines?: readonly Line[];
	yLabel: string;
	xLabel: string;
}

/** Bars per class with threshold lines; flagged bars are filled differently and marked ▲. */
export function barChart(ctx: Ctx, s: BarSpec): Html {
	const finite = s.values.filter((v): v is number => v !== null);
	const lineValues = (s.lines ?? []).map((l) => l.value);
	let lo = Math.min(0, ...finite, ...lineValues);
	let hi = Math.max(0, ...finite, ...lineValues);
	if (!(hi > lo)) hi = lo + 1;
	const pad = (hi - lo) * 0.08;
	hi += pad;
	if (lo < 0) lo -= pad;
	const y = (v: number) => M.top + PH - ((v - lo) / (hi - lo)) * PH;
	const n = Math.max(1, s.values.length);
	const bw = PW / n;
	const every = Math.max(1, Math.ceil(n / 24));
	const bars = s.values.map((v, i) => {
		const x = M.left + i * bw + bw * 0.15;
		const top = v === null ? M.top : y(Math.max(v, 0));
		const bottom = v === null ? y(0) : y(Math.min(v, 0));
		const flagged = s.flagged[i] === true;
		const cx = r1(x + bw * 0.35);
		return html`<rect class="bar${flagged ? " flagged" : ""}" x="${r1(x)}" y="${r1(top)}" width="${r1(Math.max(bw * 0.7, 0.5))}" height="${r1(Math.max(bottom - top, 0.5))}"><title>${s.xLabel} ${s.labels[i] ?? i}: ${v === null ? "∞" : fmt(v)}${flagged ? " (flagged)" : ""}</title></rect>${v === null ? html`<text class="mark" x="${cx}" y="${M.top + 12}" text-anchor="middle">∞</text>` : ""}${flagged ? html`<text class="mark flagged" x="${cx}" y="${r1(Math.max(top - 4, 10))}" text-anchor="middle">▲</text>` : ""}${i % every === 0 ? html`<text class="tick" x="${cx}" y="${H - M.bottom + 16}" text-anchor="middle">${s.labels[i] ?? i}</text>` : ""}`;
	});
	return frame(
		ctx,
		s.title,
		s.desc,
		html`${yAxis(lo, hi, y, s.yLabel)}<line class="zero" x1="${M.left}" x2="${W - M.right}" y1="${r1(y(0))}" y2="${r1(y(0))}"/>${bars}${hLines(s.lines ?? [], y)}<text class="axis-label" x="${M.left + PW / 2}" y="${H - 6}" text-anchor="middle">${s.xLabel}</text>`,
	);
}

export interface Series {
	name: string;
	counts: readonly number[];
	/** CSS class of its bars: clean, trigger or input */
	kind: "clean" | "trigger" | "input";
}

export interface HistogramSpec {
	title: string;
	desc: string;
	lo: number;
	hi: number;
	series: readonly Series[];
	/** vertical lines (the STRIP boundary) */
	lines?: readonly Line[];
	xLabel: string;
}

/** Histograms over the same bins, each series as its share of its own total, bars side by side in each bin. */
export function histogram(ctx: Ctx, s: HistogramSpec): Html {
	const bins = Math.max(1, ...s.series.map((x) => x.counts.length));
	const shares = s.series.map((x) => {
		const total = x.counts.reduce((a, b) => a + b, 0);
		return x.counts.map((c) => (total > 0 ? c / total : 0));
	});
	const top = Math.max(0.01, ...shares.flat()) * 1.1;
	const lo = s.lo;
	const hi = s.hi > s.lo ? s.hi : s.lo + 1;
	const x = (v: number) => M.left + ((v - lo) / (hi - lo)) * PW;
	const y = (v: number) => M.top + PH - (v / top) * PH;
	const bw = PW / bins;
	const sub = bw / Math.max(1, s.series.length);
	const bars = shares.map((sh, k) =>
		sh.map((v, b) =>
			v > 0
				? html`<rect class="hist ${s.series[k]?.kind ?? "clean"}" x="${r1(M.left + b * bw + k * sub)}" y="${r1(y(v))}" width="${r1(Math.max(sub - 0.5, 0.5))}" height="${r1(Math.max(y(0) - y(v), 0.5))}"><title>${s.series[k]?.name ?? ""}: ${fmt(v * 100)}% in [${fmt(lo + ((hi - lo) * b) / bins)}, ${fmt(lo + ((hi - lo) * (b + 1)) / bins)})</title></rect>`
				: "",
		),
	);
	const xt = ticks(lo, hi, 6).map(
		(v) => html`<text class="tick" x="${r1(x(v))}" y="${H - M.bottom + 16}" text-anchor="middle">${fmt(v)}</text>`,
	);
	const vlines = (s.lines ?? []).map(
		(l) =>
			html`<g class="threshold"><line x1="${r1(x(l.value))}" x2="${r1(x(l.value))}" y1="${M.top}" y2="${M.top + PH}"/><text x="${r1(x(l.value) + 4)}" y="${M.top + 10}">${l.label}</text></g>`,
	);
	const legend = s.series.map(
		(k, i) =>
			html`<g class="legend"><rect class="hist ${k.kind}" x="${W - M.right - 170}" y="${M.top + 18 + i * 16}" width="10" height="10"/><text x="${W - M.right - 155}" y="${M.top + 27 + i * 16}">${k.name}</text></g>`,
	);
	return frame(
		ctx,
		s.title,
		s.desc,
		html`${yAxis(0, top, y, "share of inputs")}<line class="zero" x1="${M.left}" x2="${W - M.right}" y1="${r1(y(0))}" y2="${r1(y(0))}"/>${bars}${xt}${vlines}${legend}<text class="axis-label" x="${M.left + PW / 2}" y="${H - 6}" text-anchor="middle">${s.xLabel}</text>`,
	);
}

export interface ScatterSpec {
	title: string;
	desc: string;
	points: ReadonlyArray<{ x: number; y: number; label: string; flagged: boolean }>;
	xLabel: string;
	yLabel: string;
	/** a vertical and a horizontal threshold */
	xLine?: Line;
	yLine?: Line;
	xRange: [number, number];
	yRange: [number, number];
}

/** Points labelled by class; flagged ones are triangles, the others circles. */
export function scatter(ctx: Ctx, s: ScatterSpec): Html {
	const [x0, x1] = s.xRange;
	const [y0, y1] = s.yRange;
	const x = (v: number) => M.left + ((Math.min(Math.max(v, x0), x1) - x0) / (x1 - x0 || 1)) * PW;
	const y = (v: number) => M.top + PH - ((Math.min(Math.max(v, y0), y1) - y0) / (y1 - y0 || 1)) * PH;
	const pts = s.points.map((p) => {
		const px = r1(x(p.x));
		const py = r1(y(p.y));
		const shape = p.flagged
			? html`<polygon class="pt flagged" points="${px},${r1(py - 6)} ${r1(px - 6)},${r1(py + 5)} ${r1(px + 6)},${r1(py + 5)}"/>`
			: html`<circle class="pt" cx="${px}" cy="${py}" r="4.5"/>`;
		return html`<g>${shape}<text class="pt-label" x="${r1(px + 7)}" y="${r1(py - 5)}">${p.label}</text><title>${s.xLabel} ${fmt(p.x)}, ${s.yLabel} ${fmt(p.y)}${p.flagged ? " (flagged)" : ""}</title></g>`;
	});
	const xt = ticks(x0, x1, 6).map(
		(v) => html`<text class="tick" x="${r1(x(v))}" y="${H - M.bottom + 16}" text-anchor="middle">${fmt(v)}</text>`,
	);
	return frame(
		ctx,
		s.title,
		s.desc,
		html`${yAxis(y0, y1, y, s.yLabel)}${xt}${s.yLine ? hLines([s.yLine], y) : ""}${s.xLine ? html`<g class="threshold"><line x1="${r1(x(s.xLine.value))}" x2="${r1(x(s.xLine.value))}" y1="${M.top}" y2="${M.top + PH}"/><text x="${r1(x(s.xLine.value) + 4)}" y="${M.top + 10}">${s.xLine.label}</text></g>` : ""}${pts}<text class="axis-label" x="${M.left + PW / 2}" y="${H - 6}" text-anchor="middle">${s.xLabel}</text>`,
	);
}

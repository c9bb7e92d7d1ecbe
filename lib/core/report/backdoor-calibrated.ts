/**
 * The sections of an image classifier's backdoor report (lib/core/backdoor/scan.ts BackdoorReport) that the
 * calibrated verdict reads: the verdict itself (each class's score against clean models), Neural Cleanse per
 * (source, target) pair and MM-BD's maximum margin per class. Every figure is read defensively (read.ts) and every
 * table, chart and grid is bounded.
 */
import { normalQuantile } from "../proportion";
import { barChart } from "./charts";
import { clip, type Html, html } from "./html";
import { arr, bool, count, counts, fmt, LIMITS, num, obj, pct, str } from "./read";
import { type Column, type Ctx, code, type Level, more, section, table } from "./widgets";

type Obj = Record<string, unknown> | undefined;

/** Rows and columns of the [target][source] pair grid shown on a page. */
export const PAIR_GRID = 20;
/**
 * Cells of the pair grid read at most: a scan searches at most 100,000 pairs (policy pairs.maxPairs), each searched
 * target's row holding C cells, so this covers any scan; a hostile report may carry a huge grid.
 */
export const PAIR_CELLS = 1_000_000;
/** Classes of a per-class array read at most (more than any scan makes; a hostile report may hold millions). */
export const READ_CLASSES = 100_000;
/** Statistics (z columns) of the calibrated verdict shown at most. */
const MAX_STATISTICS = 8;

/** What each statistic of the calibrated verdict measures (lib/core/backdoor/calibration.ts). */
const STATISTIC_TEXT: Record<string, string> = {
	nc_area: "the all-source trigger's L1 against the mask size",
	nc_relative: "the all-source trigger's L1 against the median class",
	pair_area: "the smallest pair trigger's L1 against the mask size",
	pair_relative: "the smallest pair trigger's L1 against the median pair",
	mm_relative: "the maximum margin against the median class",
	nc_concentration: "how localised the all-source trigger's mask is against the median class",
};

/** A p-value in scientific notation (3 significant digits). */
export function sci(p: number | undefined): string {
	if (p === undefined) return "–";
	if (p === 0) return "0";
	return p.toExponential(2);
}

/** A value for a chart: absent as 0, and far from the limits of a double so the axes stay finite. */
const bar = (v: number | undefined) => (v === undefined ? 0 : Math.max(-1e12, Math.min(1e12, v)));

function medianOf(values: readonly number[]): number | undefined {
	if (values.length === 0) return undefined;
	const v = Float64Array.from(values).sort();
	const h = v.length >> 1;
	return v.length % 2 === 1 ? v[h] : ((v[h - 1] ?? 0) + (v[h] ?? 0)) / 2;
}

/** The class count the verdict splits its false-alarm rate over. */
function numClasses(r: Obj, fallback: number): number {
	const c = count(obj(r?.model)?.num_classes);
	return c !== undefined && c > 0 ? c : fallback;
}

/**
 * At most `max` items, the most telling first (`first`, then by `rank` ascending), shown in class order; how many
 * were left out.
 */
function pick<T extends { cls: number }>(
	items: readonly T[],
	max: number,
	first: (t: T) => boolean,
	rank: (t: T) => number,
): { shown: T[]; more: number } {
	if (items.length <= max) return { shown: [...items].sort((a, b) => a.cls - b.cls), more: 0 };
	const chosen = [...items]
		.sort((a, b) => Number(first(b)) - Number(first(a)) || rank(a) - rank(b) || a.cls - b.cls)
		.slice(0, max);
	return { shown: chosen.sort((a, b) => a.cls - b.cls), more: items.length - max };
}

interface CalibratedClass {
	cls: number;
	score: number | undefined;
	p: number | undefined;
	z: Obj;
	flagged: boolean;
	/** flagged on nc_area alone once another class was (the second stage) */
	second: boolean;
	/** the detector families its score was judged over (its p-value is their count × the score's tail) */
	families: number;
}

function calibratedClasses(cal: Obj): CalibratedClass[] {
	const seen = new Map<number, CalibratedClass>();
	for (const p of arr(cal?.per_class).slice(0, READ_CLASSES)) {
		const o = obj(p);
		const c = count(o?.cls);
		if (o === undefined || c === undefined || seen.has(c)) continue;
		seen.set(c, {
			cls: c,
			score: num(o.score),
			p: num(o.p_value),
			z: obj(o.z),
			flagged: bool(o.flagged) === true,
			second: o.stage === 2,
			families: Math.max(1, Object.keys(obj(o.scores) ?? {}).length),
		});
	}
	return [...seen.values()];
}

/** The calibrated verdict: what the rule is, each class's score, p-value and standardised statistics. */
export function calibratedSection(ctx: Ctx, r: Obj, level: Level): Html {
	const cal = obj(obj(r?.detectors)?.calibrated);
	if (cal === undefined) return html``;
	const fit = obj(cal.calibration);
	const outside = obj(cal.outside);
	const per = calibratedClasses(cal);
	// the statistics the calibration names, else those the first classes carry
	const named = arr(fit?.statistics).flatMap((s) => (typeof s === "string" ? [s] : []));
	const names = [
		...new Set(named.length > 0 ? named.slice(0, 100) : per.slice(0, 10).flatMap((p) => Object.keys(p.z ?? {}))),
	].slice(0, MAX_STATISTICS);
	const alpha = num(cal.false_alarm_rate);
	const C = numClasses(r, per.length);
	const perClass = alpha === undefined || C === 0 ? undefined : alpha / C;
	// flagged exactly when p = F · tail(score) < α/C (F families, Bonferroni), i.e. when the score is above the normal
	// quantile of 1 − α/(C·F) (computed as −q(α/(C·F)): the same number, without 1 − α/(C·F) rounding to 1)
	const F = Math.max(1, ...per.filter((p) => !p.second).map((p) => p.families));
	const scoreAbove = (q: number | undefined) => (q !== undefined && q > 0 && q < 1 ? -normalQuantile(q) : undefined);
	const zLine = scoreAbove(perClass === undefined ? undefined : perClass / F);
	const second = per.filter((p) => p.second).map((p) => p.cls);
	const threshold = zLine !== undefined && Number.isFinite(zLine) ? zLine : undefined;
	const flagged = counts(cal.flagged_classes);
	const isFlagged = (p: CalibratedClass) => p.flagged;
	const byScore = (p: CalibratedClass) => -(p.score ?? -Infinity);
	const chart = pick(per, LIMITS.chartClasses, isFlagged, byScore);
	const rows = pick(per, LIMITS.rows, isFlagged, byScore);
	const statText = names.map((n, i) => {
		const what = STATISTIC_TEXT[n];
		return html`${i > 0 ? ", " : ""}${code(n, 40)}${what === undefined ? "" : ` (${what})`}`;
	});
	const models = count(fit?.models);
	const classes = count(fit?.classes);
	const source = str(fit?.source);
	const key = str(fit?.key);
	const columns: Column[] = [
		{ label: "class", numeric: true },
		{ label: "score", numeric: true },
		{ label: "p-value", numeric: true },
		...names.map((n) => ({ label: `z ${clip(n, 40)}`, numeric: true })),
		{ label: "flagged" },
	];
	return section(
		ctx,
		level,
		"Calibrated verdict",
		html`${
			outside === undefined
				? ""
				: html`<p><strong>Outside the calibration population.</strong> This model's typical class lies ${fmt(num(outside.shift))} robust standard deviations beyond the clean models' (limit ${fmt(num(outside.limit))}): every class's trigger is smaller than theirs — an architecture unlike the population's, or a backdoor that shrinks every class's trigger. No stated false-alarm rate holds: the p-values below are the relative statistics', reported only, and Neural Cleanse's own rule decided which classes are flagged.</p>`
		}<p>${outside === undefined ? "This rule decides. " : ""}Each class's statistics — ${names.length > 0 ? statText : "none named"} — are standardised against a population of clean models${key === undefined ? "" : html` (calibration ${code(key, 40)})`}, fitted on <strong>${models ?? "?"}</strong> clean models and <strong>${classes ?? "?"}</strong> classes${source === undefined ? "" : html` (${clip(source, LIMITS.cell)})`}; per detector family their mean (for ${code("localised_margin", 40)} the lesser: localised and an outlying margin must agree), standardised again, is the class's score and its normal upper tail its p-value: the chance a clean class scores as high. A class is flagged when its p-value is below the false-alarm rate α = ${fmt(alpha)} split over the ${C} classes: α / C = ${sci(perClass)}${threshold === undefined ? "" : `, a score above ${fmt(threshold)}`}. Flagged: <strong>${flagged.length > 0 ? flagged.slice(0, LIMITS.items).join(", ") : "none"}</strong>${flagged.length > LIMITS.items ? ` … (${flagged.length})` : ""}.${
			second.length === 0
				? ""
				: html` Of those, ${second.slice(0, LIMITS.items).join(", ")}${second.length > LIMITS.items ? " …" : ""} ${second.length === 1 ? "was" : "were"} flagged in the second stage: once a class is flagged the model's own classes are no clean reference (several may be targets), so the others are judged on ${code("nc_area", 40)} alone against clean models (their score is that z; the threshold is then ${fmt(scoreAbove(perClass))}).`
		}</p>${
			chart.shown.length === 0
				? ""
				: barChart(ctx, {
						title: "Calibrated score per class",
						desc: `Bars are each class's score (standardised against clean models); ${threshold === undefined ? "" : `the dashed line is the score ${fmt(threshold)} whose p-value is α / C = ${sci(perClass)}; `}flagged classes are marked with a triangle: ${flagged.slice(0, LIMITS.items).join(", ") || "none"}.`,
						labels: chart.shown.map((p) => String(p.cls)),
						values: chart.shown.map((p) => bar(p.score)),
						flagged: chart.shown.map((p) => p.flagged),
						lines: threshold === undefined ? [] : [{ value: threshold, label: `threshold ${fmt(threshold)}` }],
						yLabel: "score",
						xLabel: "class",
					})
		}${more(chart.more, "classes not drawn (flagged and highest scores drawn)")}${table(
			ctx,
			"Calibrated verdict per class",
			columns,
			rows.shown.map((p) => [
				p.cls,
				fmt(p.score),
				sci(p.p),
				...names.map((n) => fmt(num(p.z?.[n]))),
				p.flagged ? (p.second ? "flagged (nc_area, second stage)" : "flagged") : "no",
			]),
			rows.more,
			"classes (flagged and highest scores shown)",
		)}${more(arr(cal.per_class).length - READ_CLASSES, `classes past the first ${READ_CLASSES.toLocaleString("en-US")} not read`)}`,
	);
}

interface PairTarget {
	cls: number;
	/** the smallest pair trigger's L1 and its source (undefined: no pair of this target has a number) */
	min: number | undefined;
	source: number | undefined;
	success: number | undefined;
	searched: number;
}

/** Neural Cleanse per (source, target) pair: the smallest pair trigger per target, and the [target][source] grid. */
export function pairsSection(ctx: Ctx, r: Obj, level: Level): Html {
	const np = obj(obj(r?.detectors)?.neural_cleanse_pairs);
	if (np === undefined) return html``;
	const grid = arr(np.l1);
	const success = arr(np.attack_success);
	const C = numClasses(r, grid.length);
	const listed = [...new Set(counts(np.targets))].filter((t) => t < grid.length);
	const targets =
		listed.length > 0
			? listed
			: grid.slice(0, READ_CLASSES).flatMap((row, t) => (arr(row).some((v) => num(v) !== undefined) ? [t] : []));
	let budget = PAIR_CELLS;
	let unread = 0;
	const all: number[] = [];
	const found: PairTarget[] = [];
	for (const t of targets) {
		const row = arr(grid[t]);
		const width = Math.min(row.length, Math.max(C, 1));
		if (width > budget) {
			unread += 1;
			continue;
		}
		budget -= width;
		let min: number | undefined;
		let source: number | undefined;
		let searched = 0;
		for (let s = 0; s < width; s++) {
			const v = num(row[s]);
			if (v === undefined) continue;
			searched += 1;
			all.push(v);
			if (min === undefined || v < min) {
				min = v;
				source = s;
			}
		}
		found.push({
			cls: t,
			min,
			source,
			success: source === undefined ? undefined : num(arr(success[t])[source]),
			searched,
		});
	}
	const median = medianOf(all);
	const decided = new Set([
		...counts(r?.suspect_classes),
		...counts(obj(obj(r?.detectors)?.calibrated)?.flagged_classes),
	]);
	const ncL1 = arr(obj(obj(r?.detectors)?.neural_cleanse)?.l1_norms);
	const isSuspect = (p: PairTarget) => decided.has(p.cls);
	const bySize = (p: PairTarget) => p.min ?? Infinity;
	const chart = pick(found, LIMITS.chartClasses, isSuspect, bySize);
	const rows = pick(found, LIMITS.rows, isSuspect, bySize);
	const smallest = [...found].sort((a, b) => bySize(a) - bySize(b) || a.cls - b.cls)[0];
	const summary = table(
		ctx,
		"Smallest pair trigger per target",
		[
			{ label: "target", numeric: true },
			{ label: "smallest pair L1", numeric: true },
			{ label: "from source", numeric: true },
			{ label: "× median pair", numeric: true },
			{ label: "attack success", numeric: true },
			{ label: "all-source L1", numeric: true },
			{ label: "sources searched", numeric: true },
			{ label: "suspect" },
		],
		rows.shown.map((p) => [
			p.cls,
			fmt(p.min),
			p.source ?? "–",
			p.min === undefined || median === undefined || median <= 0 ? "–" : fmt(p.min / median),
			pct(p.success),
			fmt(num(ncL1[p.cls])),
			p.searched,
			isSuspect(p) ? "suspect" : "no",
		]),
		rows.more,
		"targets (suspect and smallest shown)",
	);
	// the grid: rows of the suspect and smallest targets; columns of every source while they fit, else those rows'
	// smallest sources and then the lowest-numbered
	const gridRows = pick(found, PAIR_GRID, isSuspect, bySize).shown;
	const width = Math.min(C, PAIR_CELLS);
	let sources: number[];
	if (width <= PAIR_GRID) sources = Array.from({ length: width }, (_, s) => s);
	else {
		const keep = new Set(gridRows.flatMap((p) => (p.source === undefined ? [] : [p.source])));
		for (let s = 0; keep.size < PAIR_GRID && s < width; s++) keep.add(s);
		sources = [...keep].slice(0, PAIR_GRID).sort((a, b) => a - b);
	}
	const gridHtml =
		gridRows.length === 0
			? html``
			: html`${table(
					ctx,
					"Pair trigger L1 by target (rows) and source (columns); each row's smallest in bold",
					[{ label: "target \\ source", numeric: true }, ...sources.map((s) => ({ label: String(s), numeric: true }))],
					gridRows.map((p) => {
						const row = arr(grid[p.cls]);
						return [
							p.cls,
							...sources.map((s) => {
								const v = num(row[s]);
								if (v === undefined) return s === p.cls ? "·" : "–";
								return s === p.source ? html`<strong>${fmt(v)}</strong>` : fmt(v);
							}),
						];
					}),
					found.length - gridRows.length,
					"targets not in this grid (the table above has each one's smallest)",
				)}${more(width - sources.length, "sources (columns) not in this grid")}`;
	return section(
		ctx,
		level,
		"Neural Cleanse per source–target pair",
		html`<p>A source-specific backdoor sends only one class's inputs to its target, so an all-source trigger for it need not be small. Here a trigger was reverse-engineered for each (source, target) pair (${count(np.steps) ?? "?"} steps × ${count(np.restarts) ?? "?"} restarts) on the source's inputs alone: a target with an abnormally small pair trigger is suspect. ${found.length} target${found.length === 1 ? "" : "s"} of ${C} searched${smallest?.min === undefined ? "" : html`; the smallest pair trigger is <strong>${smallest.source ?? "?"} → ${smallest.cls}</strong>, L1 ${fmt(smallest.min)}${median === undefined ? "" : ` (median pair ${fmt(median)})`}`}. “–”: not searched (the budget covers whole targets); “·”: the diagonal.</p>${
			unread > 0
				? html`<p class="more">${unread} targets were not read: the grid is larger than ${PAIR_CELLS.toLocaleString("en-US")} cells.</p>`
				: ""
		}${
			chart.shown.length === 0
				? ""
				: barChart(ctx, {
						title: "Smallest pair trigger L1 per target",
						desc: `Bars are each searched target's smallest pair trigger L1 (over its sources)${median === undefined ? "" : `; the dashed line is the median of every searched pair, ${fmt(median)}`}. Suspect targets are marked with a triangle.`,
						labels: chart.shown.map((p) => String(p.cls)),
						values: chart.shown.map((p) => bar(p.min)),
						flagged: chart.shown.map(isSuspect),
						lines: median === undefined ? [] : [{ value: median, label: `median pair ${fmt(median)}` }],
						yLabel: "smallest pair L1",
						xLabel: "target",
					})
		}${more(chart.more, "targets not drawn (suspect and smallest drawn)")}${summary}${gridHtml}`,
	);
}

/** MM-BD: the largest margin reachable per class; the paper's own p-value is reported only. */
export function maxMarginSection(ctx: Ctx, r: Obj, level: Level): Html {
	const mm = obj(obj(r?.detectors)?.max_margin);
	if (mm === undefined) return html``;
	const raw = arr(mm.margins);
	const margins = raw.slice(0, READ_CLASSES).map((v) => num(v));
	const median = medianOf(margins.filter((v): v is number => v !== undefined));
	const decided = new Set([
		...counts(r?.suspect_classes),
		...counts(obj(obj(r?.detectors)?.calibrated)?.flagged_classes),
	]);
	const per = margins.map((m, cls) => ({ cls, m }));
	const isSuspect = (p: { cls: number }) => decided.has(p.cls);
	const byMargin = (p: { m: number | undefined }) => -(p.m ?? -Infinity);
	const chart = pick(per, LIMITS.chartClasses, isSuspect, byMargin);
	const rows = pick(per, LIMITS.rows, isSuspect, byMargin);
	const mmbd = obj(mm.mmbd);
	const mmbdCls = count(mmbd?.cls);
	const mmbdP = num(mmbd?.p_value);
	const paper =
		mm.mmbd === null || mmbd === undefined
			? html`The paper's own test (a gamma distribution fitted to the other classes' margins) was not computed: it needs 3 classes or more.`
			: html`The paper's own test (a gamma distribution fitted to the other classes' margins) gives class <strong>${mmbdCls ?? "?"}</strong> p = ${sci(mmbdP)}: <strong>reported only</strong>, it does not decide.`;
	return section(
		ctx,
		level,
		"Maximum margin (MM-BD)",
		html`<p>For each class, the largest margin (its logit minus the largest other logit) any input in the data's range can reach, found by gradient ascent (${count(mm.steps) ?? "?"} steps × ${count(mm.restarts) ?? "?"} starts). A backdoor target's is abnormally large, whatever the size of its trigger. ${paper}${median === undefined ? "" : ` Median margin ${fmt(median)}.`}</p>${
			chart.shown.length === 0
				? ""
				: barChart(ctx, {
						title: "Maximum margin per class",
						desc: `Bars are the largest margin reached for each class${median === undefined ? "" : `; the dashed line is the median, ${fmt(median)}`}. Suspect classes are marked with a triangle.`,
						labels: chart.shown.map((p) => String(p.cls)),
						values: chart.shown.map((p) => bar(p.m)),
						flagged: chart.shown.map(isSuspect),
						lines: median === undefined ? [] : [{ value: median, label: `median ${fmt(median)}` }],
						yLabel: "maximum margin",
						xLabel: "class",
					})
		}${more(chart.more, "classes not drawn (suspect and largest drawn)")}${table(
			ctx,
			"Maximum margin per class",
			[
				{ label: "class", numeric: true },
				{ label: "margin", numeric: true },
				{ label: "× median", numeric: true },
				{ label: "suspect" },
			],
			rows.shown.map((p) => [
				p.cls,
				fmt(p.m),
				p.m === undefined || median === undefined || median <= 0 ? "–" : fmt(p.m / median),
				isSuspect(p) ? "suspect" : "no",
			]),
			rows.more,
			"classes (suspect and largest shown)",
		)}${more(raw.length - READ_CLASSES, `classes past the first ${READ_CLASSES.toLocaleString("en-US")} not read`)}`,
	);
}

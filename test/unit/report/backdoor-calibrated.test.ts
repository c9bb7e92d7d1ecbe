/**
 * The image backdoor report's sections for the calibrated verdict (lib/core/report/backdoor-calibrated.ts): the
 * calibrated verdict per class, Neural Cleanse per (source, target) pair, MM-BD's maximum margins, and the Neural
 * Cleanse sentence under the calibrated rule; hostile values (strings where numbers belong, NaN, markup, huge arrays)
 * render as absent or as text, and bounded.
 */
import { describe, expect, it } from "vitest";
import { normalQuantile } from "../../../lib/core/proportion";
import { LIMITS, renderReport } from "../../../lib/core/report";
import { PAIR_CELLS, PAIR_GRID, READ_CLASSES, sci } from "../../../lib/core/report/backdoor-calibrated";
import { escapeHtml } from "../../../lib/core/report/html";

const XSS = `<img src=x onerror=alert(1)></script><script>alert(2)</script>" onmouseover="alert(3)' javascript:alert(4)`;
const STATS = ["nc_area", "nc_relative", "pair_area", "pair_relative", "mm_relative"];
const N = 10;

/** The [target][source] pair L1 grid: target 5's smallest trigger comes from source 8. */
function pairGrid(n: number): Array<Array<number | null>> {
	return Array.from({ length: n }, (_, t) =>
		Array.from({ length: n }, (_, s) =>
			s === t ? null : t === 5 ? (s === 8 ? 1.15 : 2 + s / 10) : 4 + s / 10 + t / 100,
		),
	);
}

function report(over: Record<string, unknown> = {}, rule = "calibrated"): Record<string, unknown> {
	return {
		verdict: "suspect",
		suspect_classes: [5],
		reasons: ["calibrated: p = 2.7e-10 < 0.001 (score 6.21; standardised nc_area 3.1)"],
		model: { sha256: "ab".repeat(32), input_shape: [1, 8, 8], num_classes: N },
		data: { sha256: "cd".repeat(32), kind: "reference", samples: 200, lo: 0, hi: 1 },
		provider: "cpu",
		detectors: {
			neural_cleanse: {
				rule,
				l1_norms: Array.from({ length: N }, (_, c) => (c === 5 ? 2.5 : 10 + c / 10)),
				anomaly_indices: Array.from({ length: N }, (_, c) => (c === 5 ? null : 0.5)),
				log_anomaly_indices: Array.from({ length: N }, (_, c) => (c === 5 ? 6.7 : -0.3)),
				relative_l1: Array.from({ length: N }, (_, c) => (c === 5 ? 0.25 : 1)),
				flagged_classes: [5],
				flagged_classes_vanilla: [5],
				max_anomaly_index: 6.7,
				mask_size: 64,
				attack_success: Array.from({ length: N }, () => 0.99),
				restarts: 1,
				steps: 40,
			},
			neural_cleanse_pairs: {
				steps: 100,
				restarts: 1,
				targets: Array.from({ length: N }, (_, c) => c),
				l1: pairGrid(N),
				attack_success: Array.from({ length: N }, (_, t) =>
					Array.from({ length: N }, (_, s) => (s === t ? null : 0.97)),
				),
			},
			max_margin: {
				steps: 300,
				restarts: 8,
				margins: Array.from({ length: N }, (_, c) => (c === 5 ? 58.6027 : 25 + c)),
				mmbd: { cls: 5, p_value: 0.00015268332599920634 },
			},
			calibrated: {
				false_alarm_rate: 0.01,
				calibration: {
					key: "nc+pairs+mm",
					statistics: STATS,
					models: 120,
					classes: 1200,
					source: "test/fixtures/backdoor-wide fit split",
				},
				per_class: Array.from({ length: N }, (_, c) => ({
					cls: c,
					score: c === 5 ? 6.21 : 0.25 * c - 1,
					p_value: c === 5 ? 2.66e-10 : 0.3 + c / 100,
					z: Object.fromEntries(STATS.map((s, i) => [s, c === 5 ? 3.1 + i / 10 : -0.2])),
					flagged: c === 5,
				})),
				flagged_classes: [5],
			},
		},
		policy: { neuralCleanse: { anomalyThreshold: 2, maxRelativeL1: 0.5 } },
		timings: { total_ms: 529 },
		...over,
	};
}

const render = (doc: unknown) => renderReport({ doc, source: "test.json" }).html;
const detectors = (over: Record<string, unknown>) => ({ ...(report().detectors as object), ...over });
const headings = (page: string) => [...page.matchAll(/<h2[^>]*>([^<]*)<\/h2>/g)].map((m) => m[1]);

describe("calibrated verdict section", () => {
	it("comes first and says the rule: statistics, clean models and classes, α, α / C and the score threshold", () => {
		const page = render(report());
		const h = headings(page);
		expect(h.indexOf("Calibrated verdict")).toBeGreaterThan(-1);
		expect(h.indexOf("Calibrated verdict")).toBeLessThan(h.indexOf("Neural Cleanse"));
		expect(h).toEqual(
			expect.arrayContaining(["Neural Cleanse per source–target pair", "Maximum margin (MM-BD)", "Neural Cleanse"]),
		);
		for (const s of STATS) expect(page).toContain(`<code>${s}</code>`);
		expect(page).toContain("<strong>120</strong> clean models and <strong>1200</strong> classes");
		expect(page).toContain("calibration <code>nc+pairs+mm</code>");
		expect(page).toContain("α = 0.01 split over the 10 classes: α / C = 1.00e-3, a score above 3.09");
		// the threshold line is the normal quantile of 1 − α/C
		expect(Number((-normalQuantile(0.001)).toPrecision(3))).toBe(3.09);
		expect(page).toMatch(/<g class="threshold">.*threshold 3\.09<\/text>/);
		expect(page).toContain("Calibrated score per class");
		// the table: score, p-value in scientific notation, each z, flagged
		expect(page).toContain('<th scope="col" class="num">z pair_relative</th>');
		expect(page).toMatch(
			/<th scope="row" class="num">5<\/th><td class="num">6\.21<\/td><td class="num">2\.66e-10<\/td><td class="num">3\.1<\/td><td class="num">3\.2<\/td><td class="num">3\.3<\/td><td class="num">3\.4<\/td><td class="num">3\.5<\/td><td>flagged<\/td>/,
		);
		expect(page).toContain('<td class="num">3.00e-1</td>');
	});

	it("the threshold counts the detector families (p = F · tail), and a second-stage class says how it was flagged", () => {
		const cal = (report().detectors as { calibrated: { per_class: Array<Record<string, unknown>> } }).calibrated;
		const per = cal.per_class.map((c) => ({
			...c,
			scores: { neural_cleanse: c.score, pairs: 0 },
			...(c.cls === 2 ? { flagged: true, stage: 2, score: 3.3, p_value: 0.00048 } : {}),
		}));
		const page = render(
			report({ detectors: detectors({ calibrated: { ...cal, per_class: per, flagged_classes: [2, 5] } }) }),
		);
		// two families: flagged when 2 · tail(score) < α / C, a score above −q(0.0005) = 3.29
		expect(Number((-normalQuantile(0.0005)).toPrecision(3))).toBe(3.29);
		expect(page).toContain("α / C = 1.00e-3, a score above 3.29");
		expect(page).toContain("Of those, 2 was flagged in the second stage");
		expect(page).toContain("the threshold is then 3.09");
		expect(page).toMatch(
			/<th scope="row" class="num">2<\/th><td class="num">3\.3<\/td>.*?<td>flagged \(nc_area, second stage\)<\/td>/,
		);
	});

	it("outside the calibration population it says no stated rate holds and that Neural Cleanse's own rule decided", () => {
		const cal = (report().detectors as { calibrated: Record<string, unknown> }).calibrated;
		const page = render(
			report({
				detectors: detectors({
					calibrated: { ...cal, outside: { shift: 4.74, limit: 2.326, decided_by: "neural_cleanse" } },
				}),
			}),
		);
		expect(page).toContain("Outside the calibration population.</strong> This model's typical class lies 4.74 robust");
		expect(page).toContain("limit 2.33");
		expect(page).toContain("Neural Cleanse's own rule decided which classes are flagged");
		expect(page).not.toContain("This rule decides.");
		// inside the population the rule decides, and nothing is said of a population
		const inside = render(report());
		expect(inside).toContain("This rule decides.");
		expect(inside).not.toContain("Outside the calibration population");
		// hostile: a markup string where the shift belongs renders as absent, never as markup
		const hostile = render(
			report({ detectors: detectors({ calibrated: { ...cal, outside: { shift: XSS, limit: XSS } } }) }),
		);
		expect(hostile).not.toContain("<img src=x");
		expect(hostile).toContain("Outside the calibration population");
	});

	it("formats p-values in scientific notation", () => {
		expect(sci(2.66e-10)).toBe("2.66e-10");
		expect(sci(0.3)).toBe("3.00e-1");
		expect(sci(0)).toBe("0");
		expect(sci(undefined)).toBe("–");
	});

	it("is absent, and Neural Cleanse keeps its own rule's sentence, when the scan did not use the calibrated rule", () => {
		const doc = report({}, "ftguard");
		(doc.detectors as Record<string, unknown>).calibrated = undefined;
		const page = render(doc);
		expect(headings(page)).not.toContain("Calibrated verdict");
		expect(page).toContain("rule <strong>ftguard</strong> — log-scale anomaly index above 2");
		expect(page).not.toContain("judged beside the calibrated p-values");
		const vanilla = render(report({}, "vanilla"));
		expect(vanilla).toContain("rule <strong>vanilla</strong> — anomaly index above 2 and L1 below the median");
	});

	it("under the calibrated rule, Neural Cleanse's flags are judged beside the calibrated p-values", () => {
		const page = render(report());
		expect(page).toContain(
			"Verdict rule <strong>calibrated</strong>: the flags below are those of the ftguard rule (log-scale anomaly index above 2 and L1 at most 0.5× the median), <strong>judged beside the calibrated p-values</strong>: a class either flags is suspect",
		);
		expect(page).toContain("Flagged by the ftguard rule: <strong>5</strong>");
	});
});

describe("pair and maximum margin sections", () => {
	it("per target the smallest pair trigger and its source, and the full [target][source] grid", () => {
		const page = render(report());
		expect(page).toContain("the smallest pair trigger is <strong>8 → 5</strong>, L1 1.15");
		expect(page).toContain("Smallest pair trigger per target");
		// target 5: smallest 1.15 from source 8, 97% success, its all-source L1 2.5, 9 sources searched, suspect
		expect(page).toMatch(
			/<th scope="row" class="num">5<\/th><td class="num">1\.15<\/td><td class="num">8<\/td><td class="num">[0-9.]+<\/td><td class="num">97%<\/td><td class="num">2\.5<\/td><td class="num">9<\/td><td>suspect<\/td>/,
		);
		// the grid: every source a column, the diagonal "·", each row's smallest in bold
		expect(page).toContain("Pair trigger L1 by target (rows) and source (columns)");
		expect(page).toContain('<td class="num"><strong>1.15</strong></td>');
		expect(page.match(/<td class="num">·<\/td>/g)).toHaveLength(N);
		expect(page).toContain("Smallest pair trigger L1 per target");
	});

	it("MM-BD: margins as a chart and numbers, the paper's p-value reported only", () => {
		const page = render(report());
		expect(page).toContain("Maximum margin per class");
		expect(page).toContain("300 steps × 8 starts");
		expect(page).toContain("gives class <strong>5</strong> p = 1.53e-4: <strong>reported only</strong>");
		expect(page).toContain('<td class="num">58.6</td>');
		// three bar charts of ten classes beside Neural Cleanse's two: calibrated scores, pair minima, margins
		expect(page.match(/<rect class="bar/g)).toHaveLength(5 * N);
		const none = render(
			report({ detectors: detectors({ max_margin: { steps: 1, restarts: 1, margins: [1, 2], mmbd: null } }) }),
		);
		expect(none).toContain("was not computed: it needs 3 classes or more");
	});

	it("a grid wider than the page shows the suspect and smallest targets' rows and at most PAIR_GRID columns", () => {
		const n = 300;
		const l1 = pairGrid(n);
		const page = render(
			report({
				model: { num_classes: n, input_shape: [1, 8, 8] },
				detectors: detectors({
					neural_cleanse_pairs: {
						steps: 1,
						restarts: 1,
						targets: Array.from({ length: n }, (_, c) => c),
						l1,
						attack_success: [],
					},
				}),
			}),
		);
		const grid = page.slice(page.indexOf("Pair trigger L1 by target"));
		const head = grid.slice(0, grid.indexOf("</thead>"));
		expect(head.match(/<th scope="col"/g)).toHaveLength(PAIR_GRID + 1);
		expect(head).toContain('class="num">8</th>'); // target 5's smallest source is a column
		expect(grid).toContain(`… and ${n - PAIR_GRID} more targets not in this grid`);
		expect(grid).toContain(`… and ${n - PAIR_GRID} more sources (columns) not in this grid`);
		expect(page).toContain(`… and ${n - LIMITS.chartClasses} more targets not drawn`);
		expect(page).toContain(`… and ${n - LIMITS.rows} more targets (suspect and smallest shown)`);
		// the suspect target is shown although it is not among the first rows by number
		expect(grid).toContain('<td class="num"><strong>1.15</strong></td>');
	});
});

describe("hostile calibrated reports", () => {
	it("strings, NaN, Infinity and objects where numbers belong render as absent, never as markup or a crash", () => {
		const page = render(
			report({
				model: { num_classes: XSS, input_shape: [1, 8, 8] },
				detectors: detectors({
					calibrated: {
						false_alarm_rate: XSS,
						calibration: { key: XSS, statistics: [XSS, 7, null, "nc_area"], models: XSS, classes: -3, source: XSS },
						per_class: [
							null,
							XSS,
							{ cls: XSS, score: 1 },
							{ cls: 1, score: Number.NaN, p_value: XSS, z: XSS, flagged: XSS },
							{ cls: 2, score: Number.POSITIVE_INFINITY, p_value: Number.NaN, z: { [XSS]: 1, nc_area: XSS } },
							{ cls: 3, score: 1e308, p_value: -1e308, z: { nc_area: -1.7e308 }, flagged: true },
						],
						flagged_classes: XSS,
					},
					neural_cleanse_pairs: {
						steps: XSS,
						restarts: Number.NaN,
						targets: [XSS, 0, 1, 99, -1, 1.5],
						l1: [[null, XSS, Number.NaN], XSS, [1e308, -1e308, { a: 1 }]],
						attack_success: XSS,
					},
					max_margin: {
						steps: XSS,
						restarts: null,
						margins: [XSS, Number.NaN, 1e308, -1e308, 3],
						mmbd: { cls: XSS, p_value: XSS },
					},
				}),
			}),
		);
		expect(page).not.toMatch(/<script/i);
		expect(page).not.toMatch(/<img src=x/);
		expect(page).not.toMatch(/<[^>]*\son[a-z]+=/i);
		expect(page).toContain(escapeHtml(XSS).slice(0, 40));
		expect(page).not.toMatch(/NaN|Infinity/);
		expect(page).toContain("Calibrated verdict");
		expect(page).toContain("Maximum margin (MM-BD)");
		expect(page).toContain("Neural Cleanse per source–target pair");
	});

	it("every string a markup payload (names of statistics, the calibration's key and source): shown as text", () => {
		// every string value poisoned (keys kept, so the shape is still recognised); the z keys name the statistics
		const poison = (v: unknown, key = ""): unknown => {
			if (typeof v === "string") return key === "rule" || key === "verdict" ? v : `${v}${XSS}`;
			if (Array.isArray(v)) return v.map((x) => poison(x, key));
			if (v !== null && typeof v === "object")
				return Object.fromEntries(Object.entries(v).map(([k, x]) => [key === "z" ? `${k}${XSS}` : k, poison(x, k)]));
			return v;
		};
		const page = render(poison(report()));
		expect(page).not.toMatch(/<script/i);
		expect(page).not.toMatch(/<img src=x/);
		expect(page).not.toMatch(/<[^>]*\son[a-z]+=/i);
		expect(page).toContain(`<code>nc_area${escapeHtml(XSS).slice(0, 30)}`);
		expect(page).toContain(`calibration <code>nc+pairs+mm${escapeHtml(XSS).slice(0, 30)}`);
		expect(page).toContain(`(test/fixtures/backdoor-wide fit split${escapeHtml(XSS).slice(0, 30)}`);
		// the figures are still there
		expect(page).toContain("<strong>8 → 5</strong>");
		expect(page).toContain("2.66e-10");
	});

	it("a whole section of the wrong type is skipped or empty, never a crash", () => {
		for (const bad of [XSS, 3, [], null, { per_class: XSS, calibration: [] }])
			expect(() =>
				render(report({ detectors: detectors({ calibrated: bad, neural_cleanse_pairs: bad, max_margin: bad }) })),
			).not.toThrow();
	});

	it("huge arrays make a bounded page that says how much was left out", () => {
		const n = 150_000;
		const row = new Array(3000).fill(1.5);
		const page = render(
			report({
				model: { num_classes: n, input_shape: [1, 8, 8] },
				detectors: detectors({
					calibrated: {
						false_alarm_rate: 0.01,
						calibration: {
							key: "k",
							statistics: Array.from({ length: 1000 }, (_, i) => `s${i}`),
							models: 1,
							classes: 1,
						},
						per_class: Array.from({ length: n }, (_, c) => ({
							cls: c,
							score: c % 97,
							p_value: 0.5,
							z: {},
							flagged: c === 7,
						})),
						flagged_classes: [7],
					},
					// 3000 × 3000 cells, past PAIR_CELLS: the targets past the budget are not read
					neural_cleanse_pairs: {
						steps: 1,
						restarts: 1,
						targets: [],
						l1: new Array(3000).fill(row),
						attack_success: [],
					},
					max_margin: { steps: 1, restarts: 1, margins: Array.from({ length: n }, (_, c) => c % 13), mmbd: null },
				}),
			}),
		);
		expect(page.length).toBeLessThan(3_000_000);
		expect(page).toContain(
			`… and ${(READ_CLASSES - LIMITS.rows).toLocaleString("en-US")} more classes (flagged and highest scores shown)`,
		);
		expect(page).toContain(
			`… and ${(n - READ_CLASSES).toLocaleString("en-US")} more classes past the first 100,000 not read`,
		);
		expect(page).toContain(
			`targets were not read: the grid is larger than ${PAIR_CELLS.toLocaleString("en-US")} cells`,
		);
		expect(page).toContain('<th scope="col" class="num">z s7</th>');
		expect(page).not.toContain("z s8<");
		// the charts stay at LIMITS.chartClasses bars each (Neural Cleanse's two charts have 10)
		expect(page.match(/<rect class="bar/g)?.length).toBe(3 * LIMITS.chartClasses + 2 * N);
	});
});

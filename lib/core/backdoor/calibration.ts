/**
 * The calibrated backdoor verdict for image classifiers (docs/backdoor.md, "Calibrated verdict"): the
 * default rule, its table in calibration-table.ts.
 *
 * Each detector yields, per class, statistics oriented so that larger means more backdoor-like.
 * None is judged against a constant tuned on one family: each is standardised against its
 * distribution over every class of a population of clean models (varied architectures, class
 * counts, data: test/fixtures/backdoor-wide, fit split). A detector family's statistics (its
 * absolute and its relative figure) are averaged, so a class must be unusual both in absolute
 * terms and next to the model's other classes — one figure's noise does not decide — and the
 * average is standardised again against the same clean classes. Each kind of backdoor shows in its
 * own detector (all-to-one in Neural Cleanse, source-specific in the pair search), so a class's
 * p-value is the strongest family's normal upper tail times the number of families (Bonferroni);
 * a class is flagged when p < falseAlarmRate / C (Bonferroni over the C classes), so a clean model
 * is flagged with probability at most about falseAlarmRate whatever its class count. Once one class is flagged, the
 * others are judged again on nc_area alone (secondStage), so that several targets do not hide each other.
 */
import { FtguardError } from "../errors";
import { incompleteGamma } from "./gamma";
import { median } from "./summary-stats";
import { judgeNeuralCleanse, type NcRule } from "./verdict";

/** What the scan measured on one model (the report's detectors, as numbers). */
export interface ModelEvidence {
	numClasses: number;
	/** elements of one mask (H·W): trigger L1 / maskSize is the share of the input it covers */
	maskSize: number;
	/** all-source Neural Cleanse: per class, the smallest trigger's L1 */
	ncL1: readonly number[];
	/** pair search: [target][source] trigger L1, null where not searched (and on the diagonal) */
	pairL1?: ReadonlyArray<ReadonlyArray<number | null>> | undefined;
	/** MM-BD: per class, the largest margin reached */
	margins?: readonly number[] | undefined;
	/** all-source Neural Cleanse: per class, the share of the mask's mass in its densest window (mask-shape.ts) */
	ncConcentration?: readonly number[] | undefined;
}

export const STATISTICS = [
	"nc_area",
	"nc_relative",
	"nc_concentration",
	"pair_area",
	"pair_relative",
	"mm_relative",
] as const;
export type StatisticName = (typeof STATISTICS)[number];
export type ClassStatistics = Partial<Record<StatisticName, number>>;

const FLOOR = 1e-6;
const nlog = (v: number) => -Math.log(Math.max(v, FLOOR));

/**
 * Per class, every statistic the evidence allows (larger = more backdoor-like):
 * - nc_area: −log(L1 / mask size), how small the all-source trigger is in absolute terms;
 * - nc_relative: −log(L1 / median L1), how small it is next to the model's other classes;
 * - nc_concentration: log(c / median c), c the share of the trigger's mass in its densest 3/8-side window: how much
 *   more localised it is than the model's other classes' — whatever its size (mask-shape.ts);
 * - pair_area, pair_relative: the same for the class's smallest pair trigger (over its sources),
 *   the second against the median of every searched pair — a source-specific backdoor;
 * - mm_relative: log(margin / median margin), how far beyond the other classes the largest margin
 *   reachable for the class lies (MM-BD) — whatever the trigger's size.
 */
export function classStatistics(e: ModelEvidence): ClassStatistics[] {
	const C = e.numClasses;
	if (e.ncL1.length !== C)
		throw new FtguardError("DATA_INVALID", "calibration: Neural Cleanse norms do not cover every class");
	// a NaN would compare false everywhere and read as "not anomalous": refuse it
	const numbers = [
		...e.ncL1,
		...(e.margins ?? []),
		...(e.ncConcentration ?? []),
		...(e.pairL1 ?? []).flat().filter((v) => v !== null),
	];
	if (!numbers.every((v) => Number.isFinite(v)) || !(e.maskSize > 0))
		throw new FtguardError("DATA_INVALID", "calibration: a detector's figure is not a finite number");
	const ncMed = median(e.ncL1);
	const out: ClassStatistics[] = e.ncL1.map((l1) => ({
		nc_area: nlog(l1 / e.maskSize),
		nc_relative: nlog(l1 / Math.max(ncMed, FLOOR)),
	}));
	if (e.ncConcentration) {
		if (e.ncConcentration.length !== C)
			throw new FtguardError("DATA_INVALID", "calibration: mask concentrations do not cover every class");
		logRelative(e.ncConcentration).forEach((v, k) => {
			(out[k] as ClassStatistics).nc_concentration = v;
		});
	}
	if (e.pairL1) {
		const all = e.pairL1.flatMap((row) => row.filter((v): v is number => v !== null));
		if (all.length > 0) {
			const pairMed = median(all);
			e.pairL1.forEach((row, t) => {
				const mine = row.filter((v): v is number => v !== null);
				const s = out[t];
				if (mine.length === 0 || s === undefined) return;
				const min = Math.min(...mine);
				s.pair_area = nlog(min / e.maskSize);
				s.pair_relative = nlog(min / Math.max(pairMed, FLOOR));
			});
		}
	}
	if (e.margins) {
		if (e.margins.length !== C) throw new FtguardError("DATA_INVALID", "calibration: margins do not cover every class");
		// a margin can be ≤ 0 (a class the search cannot make win): floored, it reads as "not anomalous"
		logRelative(e.margins).forEach((v, k) => {
			(out[k] as ClassStatistics).mm_relative = v;
		});
	}
	return out;
}

/** Per class, log(v / the median class's v), v floored at FLOOR: larger = further above the model's other classes. */
function logRelative(values: readonly number[]): number[] {
	const logs = values.map((v) => Math.log(Math.max(v, FLOOR)));
	const med = median(logs);
	return logs.map((l) => l - med);
}

/** Location and scale of a clean distribution (median, 1.4826 · MAD: robust to the odd clean outlier). */
export interface NullFit {
	loc: number;
	scale: number;
}

/** The search settings the statistics depend on; the calibration holds for the search it was fitted on. */
export interface CalibratedSearch {
	nc: { steps: number; restarts: number; batch: number };
	/** maxPairs: the budget, which decides which pairs are searched and so the median pair_relative compares with */
	pairs: { steps: number; restarts: number; maxPairs: number };
	mm: { steps: number; restarts: number };
}

export function calibratedSearch(p: {
	neuralCleanse: { steps: number; restarts: number; batch: number };
	pairs: { steps: number; restarts: number; maxPairs: number };
	maxMargin: { steps: number; restarts: number };
}): CalibratedSearch {
	return {
		nc: { steps: p.neuralCleanse.steps, restarts: p.neuralCleanse.restarts, batch: p.neuralCleanse.batch },
		pairs: { steps: p.pairs.steps, restarts: p.pairs.restarts, maxPairs: p.pairs.maxPairs },
		mm: { steps: p.maxMargin.steps, restarts: p.maxMargin.restarts },
	};
}

/** Statistics averaged into one detector's evidence: each detector sees one kind of backdoor. */
export interface DetectorFamily {
	name: string;
	statistics: StatisticName[];
	/**
	 * "min": the least of the standardised statistics instead of their mean — evidence that holds only where every
	 * statistic agrees (two detectors confirming each other: neither's noise alone raises the score)
	 */
	combine?: "min";
}

export interface Calibration {
	/** per detector, the statistics averaged into its score */
	families: DetectorFamily[];
	nulls: Record<string, NullFit>;
	/** per family, the null of its averaged score */
	scores: Record<string, NullFit>;
	/**
	 * With area statistics: the clean models' typical class — per model, the median over its classes of nc_area's z —
	 * and its null over the models fitted on (modelShift). A model whose every class has a small trigger (an
	 * architecture unlike the population's, or a backdoor on most classes) lies far above it.
	 */
	typical?: NullFit;
	/** what it was fitted on: the clean models and classes, and the search that measured them */
	fitted: {
		models: number;
		classes: number;
		source: string;
		search: CalibratedSearch;
		/** the mask sizes (input H·W) of the models it was fitted on: an area statistic holds at those alone */
		maskSizes: number[];
	};
}

function robustFit(values: readonly number[]): NullFit {
	if (values.length < 2) throw new FtguardError("DATA_INVALID", "calibration: fewer than two clean classes");
	// + 0: a median of −log(1) is −0, which a written table cannot tell from 0
	const loc = median(values) + 0;
	const scale = 1.4826 * median(values.map((v) => Math.abs(v - loc)));
	if (!(scale > 0)) throw new FtguardError("DATA_INVALID", "calibration: clean classes show no spread");
	return { loc, scale };
}

const standard = (v: number, f: NullFit) => (v - f.loc) / f.scale;

/** The averaged standardised statistics of one family (undefined when the class lacks one). */
function rawScore(s: ClassStatistics, family: DetectorFamily, nulls: Record<string, NullFit>) {
	const z: number[] = [];
	for (const name of family.statistics) {
		const v = s[name];
		const f = nulls[name];
		if (v === undefined || f === undefined) return undefined;
		z.push(standard(v, f));
	}
	return family.combine === "min" ? Math.min(...z) : z.reduce((a, b) => a + b, 0) / z.length;
}

/**
 * The families a model of C classes is judged on: the pair search needs 3 classes or more (with two, a
 * pair is the all-source search itself); a mask's concentration needs an image input.
 */
export function familiesFor(numClasses: number, cal: Calibration, image = true): DetectorFamily[] {
	return cal.families.filter(
		(f) =>
			(numClasses >= 3 || !f.statistics.some((s) => s.startsWith("pair_"))) &&
			// a mask's concentration is a property of an image's mask (mask-shape.ts): not for other inputs
			(image || !f.statistics.includes("nc_concentration")),
	);
}

/** Fits the nulls on clean models' evidence: each statistic's, then each family's averaged score's. */
export function fitCalibration(
	clean: readonly ModelEvidence[],
	families: readonly DetectorFamily[],
	source: string,
	search: CalibratedSearch,
): Calibration {
	const perModel = clean.map((e) => ({ e, stats: classStatistics(e) }));
	const nulls: Record<string, NullFit> = {};
	for (const name of new Set(families.flatMap((f) => f.statistics)))
		nulls[name] = robustFit(
			perModel.flatMap(({ stats }) => stats.flatMap((s) => (s[name] === undefined ? [] : [s[name] as number]))),
		);
	const scores: Record<string, NullFit> = {};
	let classes = 0;
	for (const f of families) {
		const raw = perModel.flatMap(({ stats }) =>
			stats.flatMap((s) => {
				const r = rawScore(s, f, nulls);
				return r === undefined ? [] : [r];
			}),
		);
		classes = Math.max(classes, raw.length);
		scores[f.name] = robustFit(raw);
	}
	const area = nulls.nc_area;
	const typical =
		area === undefined
			? undefined
			: robustFit(perModel.map(({ stats }) => median(stats.map((s) => standard(s.nc_area as number, area)))));
	return {
		families: families.map((f) => ({
			name: f.name,
			statistics: [...f.statistics],
			...(f.combine ? { combine: f.combine } : {}),
		})),
		nulls,
		scores,
		...(typical ? { typical } : {}),
		fitted: {
			models: clean.length,
			classes,
			source,
			search,
			maskSizes: [...new Set(clean.map((e) => e.maskSize))].sort((a, b) => a - b),
		},
	};
}

/** P(Z > z) for a standard normal Z. */
export function normalUpperTail(z: number): number {
	if (Number.isNaN(z)) return Number.NaN;
	const half = incompleteGamma(0.5, (z * z) / 2).q / 2;
	return z >= 0 ? half : 1 - half;
}

export interface ClassScore {
	cls: number;
	/** each statistic standardised against its clean null */
	z: Partial<Record<StatisticName, number>>;
	/** per detector family, its averaged score standardised against its clean null */
	scores: Record<string, number>;
	/** the family with the most extreme score */
	strongest: string;
	/** Bonferroni over the families: (families) × the strongest family's normal upper tail */
	pValue: number;
	flagged: boolean;
	/**
	 * 2 when flagged only in the second stage (secondStage): another class of the model was flagged, and this one's
	 * nc_area alone (against clean models, not the model's own classes) was beyond the threshold; `strongest` is then
	 * "nc_area" and `pValue` its normal upper tail
	 */
	stage: 1 | 2;
}

export function scoreModel(e: ModelEvidence, cal: Calibration, falseAlarmRate: number): ClassScore[] {
	const use = familiesFor(e.numClasses, cal, e.ncConcentration !== undefined);
	const stats = classStatistics(e);
	const alpha = falseAlarmRate / e.numClasses;
	const has = (s: ClassStatistics, f: DetectorFamily) => f.statistics.every((n) => s[n] !== undefined);
	for (const f of use)
		if (!stats.some((s) => has(s, f)))
			throw new FtguardError(
				"DATA_INVALID",
				`calibrated verdict: no class has the statistics of ${f.name} (${f.statistics.join(", ")}): a detector did not run`,
			);
	const scored = stats.map((s, cls) => {
		const z: Partial<Record<StatisticName, number>> = {};
		const scores: Record<string, number> = {};
		let strongest = "";
		let best = Number.NEGATIVE_INFINITY;
		// every class on every family: a target the pair search's budget skipped has no pair statistics, and judging
		// it on the rest would state a rate the calibration never measured
		const lacking = use.filter((f) => !has(s, f));
		if (lacking.length > 0)
			throw new FtguardError(
				"DATA_INVALID",
				`calibrated verdict: class ${cls} lacks the statistics of ${lacking.map((f) => f.name).join(", ")}`,
			);
		for (const f of use) {
			const raw = rawScore(s, f, cal.nulls);
			const fit = cal.scores[f.name];
			if (raw === undefined || fit === undefined)
				throw new FtguardError("DATA_INVALID", `calibrated verdict: the calibration has no null for ${f.name}`);
			for (const name of f.statistics) z[name] = standard(s[name] as number, cal.nulls[name] as NullFit);
			const score = standard(raw, fit);
			scores[f.name] = score;
			if (score > best) {
				best = score;
				strongest = f.name;
			}
		}
		const pValue = Math.min(1, use.length * normalUpperTail(best));
		return { cls, z, scores, strongest, pValue, flagged: pValue < alpha, stage: 1 as const };
	});
	return secondStage(scored, use, alpha);
}

/**
 * Once a class is flagged the model is quarantined whatever else is found, but its own classes are no longer a clean
 * reference: when most classes are targets (3 or 4 of 5) the relative statistics compare targets with targets and
 * hide all but the strongest. So the other classes are judged again on nc_area alone — the all-source trigger's share
 * of the image, against clean models only — at the same per-class level. This cannot flag a clean model the first
 * stage left alone, so the model's false-alarm rate is unchanged; it names the other targets of a model already
 * flagged (C ≥ 3: with two classes there is no other target to name). Not pair_area: the smallest of C − 1 pair triggers shrinks with C, and on a 20-class model it named half
 * the classes. Without nc_area (inputs of a size the table was not fitted at) nothing changes.
 */
function secondStage(scored: ClassScore[], families: readonly DetectorFamily[], alpha: number): ClassScore[] {
	// with two classes the other class is what the flagged one is told from: nothing is left to name
	if (scored.length < 3 || !scored.some((c) => c.flagged) || !families.some((f) => f.statistics.includes("nc_area")))
		return scored;
	return scored.map((c) => {
		const z = c.z.nc_area;
		if (c.flagged || z === undefined) return c;
		const p = normalUpperTail(z);
		return p < alpha ? { ...c, strongest: "nc_area", pValue: p, flagged: true, stage: 2 } : c;
	});
}

/**
 * How far beyond the clean models of the population a model's typical class lies: the median over its classes of
 * nc_area's z, standardised against the table's `typical` null (undefined when the table has none). Clean models of
 * an architecture the population lacks can have every class's trigger small — a patch-embedding + LayerNorm net's
 * triggers are a fifth of a convolutional net's — and then the area statistics, fitted on convolutional and MLP
 * models, flag most of their classes with p down to 1e-14 (second red team; the population's patchln models).
 */
export function modelShift(e: ModelEvidence, cal: Calibration): number | undefined {
	const area = cal.nulls.nc_area;
	if (cal.typical === undefined || area === undefined) return undefined;
	const z = classStatistics(e).map((s) => standard(s.nc_area as number, area));
	return standard(median(z), cal.typical);
}

/**
 * The shift beyond which a model is outside the population its area statistics were fitted on: the normal upper
 * 1% point (2.33). Fixed, not the policy's false-alarm rate: a lower rate must not let a shifted model be judged on
 * area statistics that do not hold for it. On the population: no clean model of the architectures fitted on is beyond
 * it (the highest, a binary ResNet, at 2.2), every clean patchln model is (3.2 to 6.2).
 */
export const SHIFT_LIMIT = 2.326;

export interface ModelJudgement {
	/** the calibration the classes were judged against */
	calibration: Calibration;
	scores: ClassScore[];
	/** inside the population: its shift (modelShift), where the table has a `typical` null */
	shift?: number;
	/**
	 * The classes Neural Cleanse's own ftguard rule flags (verdict.ts, at the policy's settings). They are flagged
	 * beside the calibrated p-values: on the population it flags no clean class the p-values leave alone, and the
	 * red team's 4×4 patch (target p 0.0013 against 0.001) it caught. Outside the population they alone decide.
	 */
	ncFlagged: number[];
	/**
	 * When the model lies outside the population the area statistics were fitted on (modelShift > SHIFT_LIMIT): its
	 * shift, and `scores` are the relative statistics' alone (reported, not judged). No calibrated verdict holds then:
	 * not "clean" — a backdoor on most classes, or a low-amplitude one, also makes every class's trigger small — and
	 * the relative statistics flagged 3 clean patchln models of 10 (p down to 3e-11: pair triggers between look-alike
	 * classes are tiny too). Neural Cleanse's own ftguard rule (verdict.ts), which flagged none of them, names the
	 * classes it flags (`ncFlagged`, suspect); when it flags none the scan is could not check (checkInsidePopulation).
	 */
	outside?: { shift: number; limit: number };
}

/**
 * Refuses (OUT_OF_CALIBRATION) a model outside the population that Neural Cleanse's own rule flags nothing in:
 * neither clean nor suspect can be said. The message names what the relative statistics would flag, for a reviewer.
 */
export function checkInsidePopulation(j: ModelJudgement, falseAlarmRate: number): void {
	if (j.outside === undefined || j.ncFlagged.length > 0) return;
	const alpha = falseAlarmRate / j.scores.length;
	const candidates = j.scores
		.filter((c) => c.pValue < alpha)
		.sort((a, b) => a.pValue - b.pValue)
		.map((c) => ({ cls: c.cls, p_value: c.pValue, strongest: c.strongest }));
	const named =
		candidates.length === 0
			? "they name no class"
			: `they would name ${candidates
					.slice(0, 5)
					.map((c) => `class ${c.cls} (p ${c.p_value.toPrecision(2)}, ${c.strongest})`)
					.join(", ")}${candidates.length > 5 ? ", …" : ""}`;
	throw new FtguardError(
		"OUT_OF_CALIBRATION",
		`the calibrated verdict does not hold for this model: every class's trigger is smaller than the clean models' it was fitted on (its typical class ${j.outside.shift.toFixed(2)} robust SDs beyond theirs, limit ${j.outside.limit.toFixed(2)}) — an architecture unlike the population's (e.g. patch embeddings), or a backdoor that shrinks every class's trigger (low-amplitude, most classes targeted); Neural Cleanse's own rule flags no class, and relative statistics alone hold no stated rate here: ${named}`,
		{ details: { shift: j.outside.shift, limit: j.outside.limit, relative_candidates: candidates } },
	);
}

/**
 * The calibrated verdict on one model: the table for its input size (calibrationFor), unless the model lies outside
 * the population that table's area statistics were fitted on — then the table without area statistics.
 */
export function judgeModel(
	e: ModelEvidence,
	cals: readonly Calibration[],
	falseAlarmRate: number,
	ncRule: Omit<NcRule, "rule">,
): ModelJudgement {
	const cal = calibrationFor(e.maskSize, cals);
	const shift = modelShift(e, cal);
	const ncFlagged = judgeNeuralCleanse(e.ncL1, { rule: "ftguard", ...ncRule })
		.filter((c) => c.flagged)
		.map((c) => c.cls);
	if (shift === undefined || !(shift > SHIFT_LIMIT))
		return {
			calibration: cal,
			scores: scoreModel(e, cal, falseAlarmRate),
			ncFlagged,
			...(shift === undefined ? {} : { shift }),
		};
	const relative = cals.find((c) => !usesArea(c));
	if (relative === undefined)
		throw new FtguardError(
			"OUT_OF_CALIBRATION",
			`the model lies outside the calibration population (typical class's trigger z ${shift.toFixed(2)} > ${SHIFT_LIMIT}) and no table without area statistics exists`,
		);
	return {
		calibration: relative,
		scores: scoreModel(e, relative, falseAlarmRate),
		ncFlagged,
		outside: { shift, limit: SHIFT_LIMIT },
	};
}

/** Whether a calibration uses a statistic tied to the input's size (the trigger's share of the image). */
export const usesArea = (cal: Calibration) => cal.families.some((f) => f.statistics.some((n) => n.endsWith("_area")));

/**
 * The calibration that holds for a model whose mask has `maskSize` elements: the first whose area statistics were
 * fitted at that size, else the first without area statistics — a trigger's share of an 8×8 image is no measure of
 * one on a 16×16 or 224×224 image, while a class's trigger next to the same model's others is (docs/backdoor.md).
 */
export function calibrationFor(maskSize: number, cals: readonly Calibration[]): Calibration {
	const cal = cals.find((c) => !usesArea(c) || c.fitted.maskSizes.includes(maskSize));
	if (cal === undefined)
		throw new FtguardError("DATA_INVALID", `no calibration holds for inputs of ${maskSize} pixels`);
	return cal;
}

/** Whether two searches are the same (the calibration holds only for the search it was fitted on). */
export function sameSearch(a: CalibratedSearch, b: CalibratedSearch): boolean {
	return (
		a.nc.steps === b.nc.steps &&
		a.nc.restarts === b.nc.restarts &&
		a.nc.batch === b.nc.batch &&
		a.pairs.steps === b.pairs.steps &&
		a.pairs.restarts === b.pairs.restarts &&
		a.pairs.maxPairs === b.pairs.maxPairs
	);
}

const searchText = (s: CalibratedSearch) =>
	`Neural Cleanse ${s.nc.steps} steps × ${s.nc.restarts} restarts, batch ${s.nc.batch}; pairs ${s.pairs.steps} steps × ${s.pairs.restarts}, at most ${s.pairs.maxPairs}`;

/**
 * Why the calibrated rule cannot judge a scan (undefined when it can), under every table it may pick: a detector it
 * is fitted on not run, or a search other than the one its table was fitted on — the statistics' null distribution
 * depends on both, and a verdict against the wrong null would state a false-alarm rate that does not hold.
 */
export function calibratedScanProblem(
	detectors: ReadonlySet<string>,
	numClasses: number,
	search: CalibratedSearch,
	cals: readonly Calibration[],
): string | undefined {
	for (const cal of cals) {
		const needs = familiesFor(numClasses, cal).map((f) =>
			f.statistics.some((n) => n.startsWith("pair_"))
				? "pairs"
				: f.statistics.some((n) => n.startsWith("mm_"))
					? "mm"
					: "nc",
		);
		const missing = needs.filter((d) => !detectors.has(d));
		if (missing.length > 0)
			return `the calibrated verdict needs detectors ${[...new Set(needs)].join(", ")} (missing ${missing.join(", ")}); add them, or choose rule ftguard`;
		// the pair search covers every pair only while C(C − 1) fits its budget: beyond (C > 20 at the default) a
		// target would be judged without its pairs, against nulls fitted with them
		if (needs.includes("pairs") && numClasses * (numClasses - 1) > search.pairs.maxPairs)
			return `the calibrated verdict searches every (source, target) pair: ${numClasses} classes need ${numClasses * (numClasses - 1)} pairs, more than its budget of ${search.pairs.maxPairs}; choose rule ftguard for this model`;
		if (!sameSearch(search, cal.fitted.search))
			return `the calibrated verdict holds for the search it was fitted on (${searchText(cal.fitted.search)}), not ${searchText(search)}: use that search, or choose rule ftguard`;
	}
	return undefined;
}

/**
 * Reference inputs every class needs under the calibrated rule: the population was scanned with 20 per class (10 on
 * 20 classes). With one input of a class the pair search flips it with a tiny trigger and a clean model reads as
 * source-specific backdoored (red team: p 0.00096 on a clean 6-class model with 1 input of class 0).
 */
export const MIN_REFERENCE_PER_CLASS = 10;

/** Refuses (DATA_INVALID) reference labels with fewer than MIN_REFERENCE_PER_CLASS inputs of some class. */
export function checkCalibratedData(labels: ArrayLike<number | bigint>, numClasses: number): void {
	const counts = new Array<number>(numClasses).fill(0);
	for (let i = 0; i < labels.length; i++) {
		const c = Number(labels[i]);
		if (c >= 0 && c < numClasses) counts[c] = (counts[c] as number) + 1;
	}
	const short = counts.flatMap((n, c) => (n < MIN_REFERENCE_PER_CLASS ? [`class ${c}: ${n}`] : []));
	if (short.length > 0)
		throw new FtguardError(
			"DATA_INVALID",
			`the calibrated verdict needs at least ${MIN_REFERENCE_PER_CLASS} reference inputs of every class (it was fitted with 10–20): ${short.slice(0, 5).join(", ")}${short.length > 5 ? ", …" : ""}; add reference data, or choose rule ftguard`,
		);
}

/**
 * The least accuracy on the reference data the calibrated rule judges a model at: halfway from chance (1 / C) to
 * perfect. The population's models were all ≥ 0.85; near chance the labels do not match the model's classes (wrong
 * data, a shuffled label order) or the model ignores its input — and a model that always answers class 0 reads as
 * "class 0 has a trigger of size 0" (red team: p 0, suspect), a verdict about nothing.
 */
export const minReferenceAccuracy = (numClasses: number) => (1 + 1 / numClasses) / 2;

/**
 * Refuses (DATA_INVALID) a model that does not classify its reference data: overall below minReferenceAccuracy, or
 * some class at or below chance (1 / C) — two classes' labels swapped leave the overall accuracy at 0.8 but read
 * as a backdoor between them (red team: p 5e-63 on a clean model).
 */
export function checkReferenceAccuracy(accuracy: number, perClass: readonly number[], numClasses: number): void {
	const min = minReferenceAccuracy(numClasses);
	const chance = 1 / numClasses;
	const low = perClass.flatMap((a, c) => (a <= chance ? [c] : []));
	if (accuracy >= min && low.length === 0) return;
	const details = { accuracy, min_accuracy: min, per_class: [...perClass], chance };
	throw new FtguardError(
		"DATA_INVALID",
		accuracy >= min
			? `the model classifies the reference inputs of class ${low.slice(0, 5).join(", ")}${low.length > 5 ? ", …" : ""} at accuracy ${low
					.map((c) => (perClass[c] as number).toFixed(3))
					.slice(0, 5)
					.join(
						", ",
					)} (chance ${chance.toFixed(3)}): those labels do not match the model's classes (swapped or shifted labels)`
			: `the model classifies its reference data at accuracy ${accuracy.toFixed(3)} (chance ${chance.toFixed(3)}; the calibrated verdict needs ${min.toFixed(3)}): the labels do not match the model's classes, or the model ignores its input`,
		{ details },
	);
}

/** Refuses (USAGE) a scan the calibrated rule cannot judge (calibratedScanProblem). */
export function checkCalibratedScan(
	detectors: ReadonlySet<string>,
	numClasses: number,
	search: CalibratedSearch,
	cals: readonly Calibration[],
): void {
	const problem = calibratedScanProblem(detectors, numClasses, search, cals);
	if (problem !== undefined) throw new FtguardError("USAGE", problem);
}

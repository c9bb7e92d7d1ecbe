/**
 * The calibrated backdoor verdict for image classifiers (docs/backdoor.md, "Calibrated verdict").
 *
 * Each detector yields, per class, a statistic oriented so that larger means more
 * backdoor-like. None of them is judged against a constant tuned on one family: each is
 * standardised against its distribution over every class of a population of clean models
 * (varied architectures, class counts, data: test/fixtures/backdoor-wide, fit split), the
 * standardised statistics are averaged into one score per class, and that score is
 * standardised again against the same clean classes. A class's p-value is the normal upper
 * tail of its score; a class is flagged when p < falseAlarmRate / C (Bonferroni over the C
 * classes), so a clean model is flagged with probability at most about falseAlarmRate
 * whatever its class count — the rate ftguard states, measured on the test split.
 *
 * Averaging is the point: a class is flagged by evidence several detectors agree on, or by
 * one so extreme that the others' silence cannot dilute it (a large trigger leaves Neural
 * Cleanse silent but its maximum margin far outside anything clean); one detector's noise
 * (a clean class that is merely easy to reach) does not decide alone.
 */
import { FtguardError } from "../errors";
import { incompleteGamma } from "./gamma";
import { median } from "./summary-stats";

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
}

export const STATISTICS = ["nc_area", "nc_relative", "pair_area", "pair_relative", "mm_relative"] as const;
export type StatisticName = (typeof STATISTICS)[number];
export type ClassStatistics = Partial<Record<StatisticName, number>>;

const FLOOR = 1e-6;
const nlog = (v: number) => -Math.log(Math.max(v, FLOOR));

/**
 * Per class, every statistic the evidence allows (larger = more backdoor-like):
 * - nc_area: −log(L1 / mask size), how small the all-source trigger is in absolute terms;
 * - nc_relative: −log(L1 / median L1), how small it is next to the model's other classes;
 * - pair_area, pair_relative: the same for the class's smallest pair trigger (over its sources),
 *   the second against the median of every searched pair — a source-specific backdoor;
 * - mm_relative: log(margin / median margin), how far beyond the other classes the largest margin
 *   reachable for the class lies (MM-BD) — whatever the trigger's size.
 */
export function classStatistics(e: ModelEvidence): ClassStatistics[] {
	const C = e.numClasses;
	if (e.ncL1.length !== C)
		throw new FtguardError("DATA_INVALID", "calibration: Neural Cleanse norms do not cover every class");
	const ncMed = median(e.ncL1);
	const out: ClassStatistics[] = e.ncL1.map((l1) => ({
		nc_area: nlog(l1 / e.maskSize),
		nc_relative: nlog(l1 / Math.max(ncMed, FLOOR)),
	}));
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
		const logs = e.margins.map((m) => Math.log(Math.max(m, FLOOR)));
		const mmMed = median(logs);
		logs.forEach((l, k) => {
			(out[k] as ClassStatistics).mm_relative = l - mmMed;
		});
	}
	return out;
}

/** Location and scale of a clean distribution (median, 1.4826 · MAD: robust to the odd clean outlier). */
export interface NullFit {
	loc: number;
	scale: number;
}

export interface Calibration {
	/** the statistics averaged, in order */
	statistics: StatisticName[];
	nulls: Record<string, NullFit>;
	/** null of the averaged score */
	score: NullFit;
	/** what it was fitted on */
	fitted: { models: number; classes: number; source: string };
}

function robustFit(values: readonly number[]): NullFit {
	if (values.length < 2) throw new FtguardError("DATA_INVALID", "calibration: fewer than two clean classes");
	const loc = median(values);
	const scale = 1.4826 * median(values.map((v) => Math.abs(v - loc)));
	if (!(scale > 0)) throw new FtguardError("DATA_INVALID", "calibration: clean classes show no spread");
	return { loc, scale };
}

const standard = (v: number, f: NullFit) => (v - f.loc) / f.scale;

/** The averaged standardised statistic of one class (undefined when it lacks one of them). */
function rawScore(s: ClassStatistics, statistics: readonly StatisticName[], nulls: Record<string, NullFit>) {
	let sum = 0;
	for (const name of statistics) {
		const v = s[name];
		const f = nulls[name];
		if (v === undefined || f === undefined) return undefined;
		sum += standard(v, f);
	}
	return sum / statistics.length;
}

/**
 * Which statistics a model of C classes is scored on: the pair statistics need the pair search
 * (3 classes or more: with two, a pair is the all-source search itself).
 */
export function statisticsFor(numClasses: number, cal: Calibration): StatisticName[] {
	return cal.statistics.filter((s) => numClasses >= 3 || (s !== "pair_area" && s !== "pair_relative"));
}

/** Fits the nulls on clean models' evidence: each statistic's, then the averaged score's. */
export function fitCalibration(
	clean: readonly ModelEvidence[],
	statistics: readonly StatisticName[],
	source: string,
): Calibration {
	const perModel = clean.map((e) => ({ e, stats: classStatistics(e) }));
	const nulls: Record<string, NullFit> = {};
	for (const name of statistics)
		nulls[name] = robustFit(
			perModel.flatMap(({ stats }) => stats.flatMap((s) => (s[name] === undefined ? [] : [s[name] as number]))),
		);
	const partial: Calibration = {
		statistics: [...statistics],
		nulls,
		score: { loc: 0, scale: 1 },
		fitted: { models: clean.length, classes: 0, source },
	};
	const scores = perModel.flatMap(({ e, stats }) => {
		const use = statisticsFor(e.numClasses, partial);
		return stats.flatMap((s) => {
			const r = rawScore(s, use, nulls);
			return r === undefined ? [] : [r];
		});
	});
	return { ...partial, score: robustFit(scores), fitted: { ...partial.fitted, classes: scores.length } };
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
	/** the averaged score, standardised against its clean null */
	score: number;
	/** normal upper tail of the score: the chance a clean class scores this high */
	pValue: number;
	flagged: boolean;
}

export function scoreModel(e: ModelEvidence, cal: Calibration, falseAlarmRate: number): ClassScore[] {
	const use = statisticsFor(e.numClasses, cal);
	const stats = classStatistics(e);
	const alpha = falseAlarmRate / e.numClasses;
	return stats.map((s, cls) => {
		const raw = rawScore(s, use, cal.nulls);
		if (raw === undefined)
			throw new FtguardError(
				"DATA_INVALID",
				`calibrated verdict: class ${cls} lacks one of the statistics ${use.join(", ")} (a detector did not run)`,
			);
		const z: Partial<Record<StatisticName, number>> = {};
		for (const name of use) z[name] = standard(s[name] as number, cal.nulls[name] as NullFit);
		const score = standard(raw, cal.score);
		const pValue = normalUpperTail(score);
		return { cls, z, score, pValue, flagged: pValue < alpha };
	});
}

/**
 * From detector outputs to clean / suspect. The rules and their thresholds are
 * in docs/backdoor.md with the measurements that set them; the short version:
 *
 * - Neural Cleanse, vanilla rule (the paper): MAD anomaly index over raw L1
 *   norms > threshold and L1 ≤ median. Measured on our fixtures it both misses
 *   (a wide spread of clean classes' norms hides the target) and false-flags (a
 *   clean class that is simply easy to reach scores > 2).
 * - Neural Cleanse, ftguard rule (default): a class is flagged when its trigger
 *   is an outlier on the log scale — norms are scale quantities whose clean
 *   spread is multiplicative — AND its trigger is small relative to the other
 *   classes' (L1 ≤ maxRelativeL1 × median). The first condition alone still
 *   flags "easy" clean classes; the second alone flags any model whose norms are
 *   widely spread; a backdoor target satisfies both by a wide margin.
 * - Activation Clustering decides only on training-set samples (what it was
 *   designed for); on clean reference data it is reported, never a verdict.
 */
import { MAD_CONSISTENCY, madAnomaly, median } from "./summary-stats";

export interface NcEvidence {
	cls: number;
	l1: number;
	/** the paper's MAD index over raw norms, |l1 − median| / MAD */
	anomalyIndex: number;
	/** MAD index over log norms, one-sided */
	logAnomalyIndex: number;
	/** l1 / median(l1) */
	relativeL1: number;
	flaggedVanilla: boolean;
	flagged: boolean;
}

export interface NcRule {
	rule: "ftguard" | "vanilla";
	anomalyThreshold: number;
	maxRelativeL1: number;
}

/**
 * The MAD anomaly index of each value, signed so that a value below the median
 * is positive. A zero MAD (half the classes share one value) would make every
 * other class infinitely anomalous; it is floored at a small fraction of the
 * median instead, so identical norms give index 0 and tiny differences stay tiny.
 */
export function lowSideIndex(values: readonly number[]): { indices: number[]; median: number; mad: number } {
	const med = median(values);
	const mad = MAD_CONSISTENCY * median(values.map((v) => Math.abs(v - med)));
	const floor = Math.max(Math.abs(med) * 1e-6, 1e-12);
	const scale = Math.max(mad, floor);
	return { indices: values.map((v) => (med - v) / scale), median: med, mad };
}

export function judgeNeuralCleanse(l1Norms: readonly number[], rule: NcRule): NcEvidence[] {
	const vanilla = madAnomaly(l1Norms, rule.anomalyThreshold);
	const med = vanilla.median;
	// L1 of a mask in [0, 1] is ≥ 0; a mask that collapsed to zero still has a finite log
	const logs = lowSideIndex(l1Norms.map((v) => Math.log(Math.max(v, 1e-6))));
	return l1Norms.map((l1, cls) => {
		const logAnomalyIndex = logs.indices[cls] ?? 0;
		const relativeL1 = med > 0 ? l1 / med : 1;
		const flaggedVanilla = vanilla.flagged.includes(cls);
		const flaggedFtguard = logAnomalyIndex > rule.anomalyThreshold && relativeL1 <= rule.maxRelativeL1;
		return {
			cls,
			l1,
			anomalyIndex: vanilla.indices[cls] ?? 0,
			logAnomalyIndex,
			relativeL1,
			flaggedVanilla,
			flagged: rule.rule === "vanilla" ? flaggedVanilla : flaggedFtguard,
		};
	});
}

/**
 * Summary statistics of a sample: mean, standard deviation, range, median,
 * quantiles, and the median-absolute-deviation anomaly index Neural Cleanse
 * flags classes with.
 */

/** Rounded to d decimals for a report (a non-finite value as is). */
export const round = (v: number, d = 4) => (Number.isFinite(v) ? Number(v.toFixed(d)) : v);

export function mean(a: ArrayLike<number>): number {
	let s = 0;
	for (let i = 0; i < a.length; i++) s += a[i] as number;
	return a.length === 0 ? Number.NaN : s / a.length;
}

/** Population standard deviation. */
export function std(a: ArrayLike<number>): number {
	const m = mean(a);
	let s = 0;
	for (let i = 0; i < a.length; i++) s += ((a[i] as number) - m) ** 2;
	return a.length === 0 ? Number.NaN : Math.sqrt(s / a.length);
}

/** Smallest and largest value (±Infinity when empty): the input range of reference data. */
export function minMax(x: ArrayLike<number>): { lo: number; hi: number } {
	let lo = Number.POSITIVE_INFINITY;
	let hi = Number.NEGATIVE_INFINITY;
	for (let i = 0; i < x.length; i++) {
		const v = x[i] as number;
		if (v < lo) lo = v;
		if (v > hi) hi = v;
	}
	return { lo, hi };
}

/** Median (the mean of the two middle values for an even count; NaN when empty). */
export function median(a: ArrayLike<number>): number {
	const s = Float64Array.from(a).sort();
	const n = s.length;
	if (n === 0) return Number.NaN;
	const h = n >> 1;
	return n % 2 ? (s[h] as number) : ((s[h - 1] as number) + (s[h] as number)) / 2;
}

/** Quantile q ∈ [0, 1] with linear interpolation (numpy's default). */
export function quantile(a: ArrayLike<number>, q: number): number {
	const s = Float64Array.from(a).sort();
	const n = s.length;
	if (n === 0) return Number.NaN;
	const pos = Math.min(Math.max(q, 0), 1) * (n - 1);
	const lo = Math.floor(pos);
	const hi = Math.min(lo + 1, n - 1);
	return (s[lo] as number) + (pos - lo) * ((s[hi] as number) - (s[lo] as number));
}

export const MAD_CONSISTENCY = 1.4826;

export interface AnomalyResult {
	median: number;
	/** consistency · median(|x − median|) */
	mad: number;
	/** |x − median| / mad; with mad = 0, 0 for values at the median and Infinity for the rest */
	indices: number[];
	/** positions i with x[i] ≤ median and index > threshold (Neural Cleanse's vanilla rule) */
	flagged: number[];
}

/** The Neural Cleanse anomaly index (docs/backdoor.md): flags unusually small values. */
export function madAnomaly(values: ArrayLike<number>, threshold = 2): AnomalyResult {
	const med = median(values);
	const dev = Array.from(values, (v) => Math.abs(v - med));
	const mad = MAD_CONSISTENCY * median(dev);
	const indices = dev.map((d) => (mad > 0 ? d / mad : d === 0 ? 0 : Number.POSITIVE_INFINITY));
	const flagged: number[] = [];
	for (let i = 0; i < values.length; i++) {
		if ((values[i] as number) <= med && (indices[i] as number) > threshold) flagged.push(i);
	}
	return { median: med, mad, indices, flagged };
}

/**
 * Confidence bounds of a proportion, shared by the verdicts that judge a share of few observations: the text
 * scan's attack success on held-out texts (lib/core/backdoor/text-scan.ts) and the output monitor's repetition share
 * of a window not yet full (lib/core/monitor/window.ts).
 */

/** The standard normal quantile (Acklam's rational approximation, relative error < 1.2e-9). */
export function normalQuantile(p: number): number {
	const a = [
		-39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716, 2.506628277459239,
	];
	const b = [-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572];
	const c = [
		-0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968,
		2.938163982698783,
	];
	const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
	const lo = 0.02425;
	const poly = (k: number[], x: number) => k.reduce((acc, v) => acc * x + v, 0);
	if (p < lo) {
		const q = Math.sqrt(-2 * Math.log(p));
		return poly(c, q) / (poly(d, q) * q + 1);
	}
	if (p > 1 - lo) return -normalQuantile(1 - p);
	const q = p - 0.5;
	const r = q * q;
	return (poly(a, r) * q) / (poly(b, r) * r + 1);
}

/**
 * The one-sided Wilson score lower confidence bound of a proportion: `hits` of `n` at level `confidence`. A share of
 * few texts has a low bound (17 of 17 at 0.9: 0.91; 4 of 4: 0.71), so a handful of texts cannot pass a threshold.
 */
export function wilsonLower(hits: number, n: number, confidence: number): number {
	if (n === 0) return 0;
	const z = normalQuantile(confidence);
	const p = hits / n;
	const z2 = z * z;
	const centre = p + z2 / (2 * n);
	const spread = z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
	return Math.max(0, (centre - spread) / (1 + z2 / n));
}

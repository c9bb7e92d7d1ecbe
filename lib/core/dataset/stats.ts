/**
 * The statistics behind "how unlikely is this by chance": hypergeometric tail probabilities in log space (exact for
 * the counts a dataset scan meets), and the Benjamini–Hochberg step-up over many tests.
 */

const LANCZOS = [
	0.9999999999998099, 676.5203681218851, -1259.1392167224028, 771.3234287776531, -176.6150291621406, 12.507343278686905,
	-0.13857109526572012, 9.984369578019572e-6, 1.5056327351493116e-7,
];

/** ln Γ(x) for x > 0 (Lanczos, g = 7): ~15 significant digits. */
export function logGamma(x: number): number {
	if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
	const z = x - 1;
	let a = LANCZOS[0] as number;
	const t = z + 7.5;
	for (let i = 1; i < 9; i++) a += (LANCZOS[i] as number) / (z + i);
	return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

export function logChoose(n: number, k: number): number {
	if (k < 0 || k > n) return Number.NEGATIVE_INFINITY;
	return logGamma(n + 1) - logGamma(k + 1) - logGamma(n - k + 1);
}

/**
 * ln P(X ≥ x) for X ~ Hypergeometric(population N, K successes, n draws): the chance that n records chosen at random
 * include at least x of K marked ones.
 */
export function logHypergeomTail(N: number, K: number, n: number, x: number): number {
	const hi = Math.min(K, n);
	const lo = Math.max(x, n - (N - K), 0);
	if (lo > hi) return Number.NEGATIVE_INFINITY;
	const denom = logChoose(N, n);
	return logTail(lo, hi, (i) => logChoose(K, i) + logChoose(N - K, n - i) - denom);
}

/** ln Σ exp(term(i)) for i = lo…hi, terms that fall off geometrically past the mode: stops once they no longer matter. */
function logTail(lo: number, hi: number, term: (i: number) => number): number {
	let max = Number.NEGATIVE_INFINITY;
	const terms: number[] = [];
	for (let i = lo; i <= hi; i++) {
		const t = term(i);
		terms.push(t);
		if (t > max) max = t;
		if (t < max - 40) break;
	}
	let sum = 0;
	for (const t of terms) sum += Math.exp(t - max);
	return Math.min(0, max + Math.log(sum));
}

/** ln P(X ≥ x) for X ~ Binomial(n, p). */
export function logBinomialTail(n: number, p: number, x: number): number {
	if (x <= 0) return 0;
	if (x > n) return Number.NEGATIVE_INFINITY;
	const lp = Math.log(p);
	const lq = Math.log1p(-p);
	return logTail(x, n, (i) => logChoose(n, i) + i * lp + (n - i) * lq);
}

/** Indices of the tests BH keeps at false-discovery rate `q`, given their log p-values. */
export function benjaminiHochberg(logP: readonly number[], q: number, tests = logP.length): Set<number> {
	const order = logP.map((p, i) => [p, i] as const).sort((a, b) => a[0] - b[0]);
	let cut = -1;
	for (let r = 0; r < order.length; r++) {
		if ((order[r] as readonly [number, number])[0] <= Math.log((q * (r + 1)) / tests)) cut = r;
	}
	return new Set(order.slice(0, cut + 1).map(([, i]) => i));
}

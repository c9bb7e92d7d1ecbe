/**
 * The privacy a DP-SGD run spent: the Rényi-DP accountant of the sampled Gaussian mechanism (Mironov, Talwar and
 * Zhang, "Rényi Differential Privacy of the Sampled Gaussian Mechanism", 2019, section 3.3), the analysis TensorFlow
 * Privacy and Opacus implement, composed over the run's steps and converted to (ε, δ).
 *
 * Two conversions (docs/dp.md): Balle et al. 2020 ("Hypothesis testing interpretations and Rényi differential
 * privacy", Theorem 21), which Opacus reports and ftguard reports by default — a proven bound, tighter than the
 * classic one (Mironov 2017, Proposition 3) that older TensorFlow Privacy tutorials quote. On TensorFlow Privacy's
 * MNIST setting (σ 1.1, q 256/60,000, 14,063 steps, δ 1e-5) they give 2.60 and 3.01.
 *
 * Written here rather than taken from a package: the one special function it needs (log erfc, far into the tail) is
 * a few lines, where the maintained JavaScript implementations bring 136 packages — a supply-chain tool keeps its
 * dependency tree small. Checked against a scipy implementation of the same analysis (test/fixtures/dp/).
 */

/** The orders (α) ε is minimised over: Opacus's and TensorFlow Privacy's defaults, 1.1 … 10.9 and 12 … 63. */
export const DEFAULT_ORDERS: readonly number[] = [
	...Array.from({ length: 99 }, (_, x) => 1 + (x + 1) / 10),
	...Array.from({ length: 52 }, (_, k) => 12 + k),
];

export type Conversion = "balle2020" | "classic";

const LOG_SQRT_PI = 0.5 * Math.log(Math.PI);

/** log(e^a + e^b), exact for -Infinity. */
function logAdd(a: number, b: number): number {
	const lo = Math.min(a, b);
	const hi = Math.max(a, b);
	if (lo === Number.NEGATIVE_INFINITY) return hi;
	return Math.log1p(Math.exp(lo - hi)) + hi;
}

/** log(e^a − e^b), a ≥ b (the series' partial sums stay positive; anything else is a numerical failure). */
function logSub(a: number, b: number): number {
	// equal to rounding (terms of magnitude 1e16 and more, σ huge): the difference is nothing
	if (a < b && b - a <= 1e-12 * Math.abs(b)) return Number.NEGATIVE_INFINITY;
	if (a < b) throw new Error(`RDP accountant: log-space subtraction went negative (${a} < ${b})`);
	if (b === Number.NEGATIVE_INFINITY) return a;
	if (a === b) return Number.NEGATIVE_INFINITY;
	const d = a - b;
	return d > 700 ? a : Math.log(Math.expm1(d)) + b;
}

/**
 * log(erfc(x)) to near double precision for every x, including far into the tail (x in the hundreds, where erfc
 * underflows): erf from its series with positive terms below 2, erfc from its continued fraction above.
 */
export function logErfc(x: number): number {
	if (Number.isNaN(x)) return Number.NaN;
	// the limits exactly: the continued fraction at ±Infinity would run its whole length on NaN
	if (x === Number.POSITIVE_INFINITY) return Number.NEGATIVE_INFINITY;
	if (x === Number.NEGATIVE_INFINITY) return Math.LN2;
	if (x < 0) return Math.log(2 - Math.exp(logErfc(-x)));
	if (x < 2) {
		// erf(x) = 2/√π · e^(−x²) · Σ (2x²)^n x / (2n+1)!!: no cancellation between terms
		let term = x;
		let sum = x;
		for (let n = 1; n < 200 && term > sum * 1e-17; n++) {
			term *= (2 * x * x) / (2 * n + 1);
			sum += term;
		}
		const erf = (2 / Math.sqrt(Math.PI)) * Math.exp(-x * x) * sum;
		return Math.log1p(-erf);
	}
	// erfc(x) = e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))): modified Lentz
	const tiny = 1e-300;
	let f = x;
	let c = x;
	let d = 0;
	for (let k = 1; k < 5000; k++) {
		const a = k / 2;
		d = x + a * d;
		d = Math.abs(d) < tiny ? tiny : d;
		c = x + a / c;
		c = Math.abs(c) < tiny ? tiny : c;
		d = 1 / d;
		const delta = c * d;
		f *= delta;
		if (Math.abs(delta - 1) < 1e-16) break;
	}
	return -x * x - LOG_SQRT_PI - Math.log(f);
}

/** log(A_α) for an integer α: a finite binomial sum. */
function logAInteger(q: number, sigma: number, alpha: number): number {
	let logA = Number.NEGATIVE_INFINITY;
	let logBinom = 0;
	for (let i = 0; i <= alpha; i++) {
		if (i > 0) logBinom += Math.log(alpha - i + 1) - Math.log(i);
		const s = logBinom + i * Math.log(q) + (alpha - i) * Math.log1p(-q) + (i * i - i) / (2 * sigma * sigma);
		logA = logAdd(logA, s);
	}
	return logA;
}

/** log(A_α) for a fractional α: two series over the halves of the real line split at z0, until terms fall below e^−30. */
function logAFractional(q: number, sigma: number, alpha: number): number {
	let logA0 = Number.NEGATIVE_INFINITY;
	let logA1 = Number.NEGATIVE_INFINITY;
	const z0 = sigma * sigma * Math.log(1 / q - 1) + 0.5;
	const s2 = Math.SQRT2 * sigma;
	// the generalised binomial coefficient C(α, i), as log |C| and its sign
	let logCoef = 0;
	let sign = 1;
	for (let i = 0; i < 100_000; i++) {
		if (i > 0) {
			const f = (alpha - (i - 1)) / i;
			if (f === 0) break;
			logCoef += Math.log(Math.abs(f));
			if (f < 0) sign = -sign;
		}
		const j = alpha - i;
		const logT0 = logCoef + i * Math.log(q) + j * Math.log1p(-q);
		const logT1 = logCoef + j * Math.log(q) + i * Math.log1p(-q);
		const logE0 = Math.log(0.5) + logErfc((i - z0) / s2);
		const logE1 = Math.log(0.5) + logErfc((z0 - j) / s2);
		const logS0 = logT0 + (i * i - i) / (2 * sigma * sigma) + logE0;
		const logS1 = logT1 + (j * j - j) / (2 * sigma * sigma) + logE1;
		// a term beyond floating point (σ → 0): A_α is unbounded, and the series would run its whole length
		if (logS0 === Number.POSITIVE_INFINITY || logS1 === Number.POSITIVE_INFINITY) return Number.POSITIVE_INFINITY;
		// a NaN term (z0 or σ² out of floating point) passes every stopping test: refuse rather than loop
		if (Number.isNaN(logS0) || Number.isNaN(logS1))
			throw new Error(`RDP accountant: no finite series at q ${q}, σ ${sigma}, α ${alpha}`);
		if (sign > 0) {
			logA0 = logAdd(logA0, logS0);
			logA1 = logAdd(logA1, logS1);
		} else {
			logA0 = logSub(logA0, logS0);
			logA1 = logSub(logA1, logS1);
		}
		if (Math.max(logS0, logS1) < -30) break;
	}
	return logAdd(logA0, logA1);
}

/** RDP at order α of one step of the sampled Gaussian mechanism: sampling rate q, noise multiplier σ. */
export function rdpSampledGaussian(q: number, sigma: number, alpha: number): number {
	if (q === 0) return 0;
	if (sigma === 0) return Number.POSITIVE_INFINITY;
	if (q === 1) return alpha / (2 * sigma * sigma);
	const logA = Number.isInteger(alpha) ? logAInteger(q, sigma, alpha) : logAFractional(q, sigma, alpha);
	// RDP is never negative; a rounding residue below 0 (A_α − 1 lost in the series' cutoff) must not lower ε
	return Math.max(0, logA / (alpha - 1));
}

/** ε at δ from RDP values at `orders` (the best order), by the chosen conversion; never below 0. */
export function epsilonFromRdp(
	orders: readonly number[],
	rdp: readonly number[],
	delta: number,
	conversion: Conversion,
): { epsilon: number; order: number } {
	let best = Number.POSITIVE_INFINITY;
	let order = Number.NaN;
	for (const [k, a] of orders.entries()) {
		const r = rdp[k] as number;
		const eps =
			conversion === "classic"
				? r - Math.log(delta) / (a - 1)
				: r - (Math.log(delta) + Math.log(a)) / (a - 1) + Math.log((a - 1) / a);
		if (eps < best) {
			best = eps;
			order = a;
		}
	}
	return { epsilon: Math.max(0, best), order };
}

/**
 * The parameters ftguard accounts (dpRunProblem refuses the rest): every DP-SGD run in use sits far inside. Past
 * them the fractional-order series leave floating point (σ² ln(1/q − 1) overflows, σ² underflows) or a step's RDP
 * falls under the series' cutoff (e^−30), whose residue times 1e13 steps is no longer small (docs/dp.md).
 */
export const ACCOUNTED_RANGE = {
	minNoiseMultiplier: 0.01,
	maxNoiseMultiplier: 1000,
	minSampleRate: 1e-10,
	maxSteps: 1e9,
} as const;

export interface DpSgdRun {
	/** noise standard deviation / clipping norm */
	noiseMultiplier: number;
	/** the chance each example is in a step's batch (batch size / dataset size under Poisson sampling) */
	sampleRate: number;
	steps: number;
	delta: number;
}

export interface DpSgdEpsilon {
	epsilon: number;
	order: number;
	conversion: Conversion;
	/** the best order is the smallest or the largest tried: a wider range might give a smaller ε */
	orderAtEdge: boolean;
}

/** The steps of `epochs` passes over the data at sampling rate q: ⌈epochs / q⌉ (60 epochs of 256 of 60,000: 14,063). */
export function stepsForEpochs(epochs: number, sampleRate: number): number {
	return Math.ceil(epochs / sampleRate - 1e-9);
}

/** What a DP-SGD run spent, ε at its δ. The caller validates the parameters first (dpRunProblem). */
export function dpSgdEpsilon(
	run: DpSgdRun,
	opts: { orders?: readonly number[]; conversion?: Conversion } = {},
): DpSgdEpsilon {
	const orders = opts.orders ?? DEFAULT_ORDERS;
	const conversion = opts.conversion ?? "balle2020";
	const rdp = orders.map((a) => rdpSampledGaussian(run.sampleRate, run.noiseMultiplier, a) * run.steps);
	const { epsilon, order } = epsilonFromRdp(orders, rdp, run.delta, conversion);
	const edge = Number.isFinite(epsilon) && (order === orders[0] || order === orders[orders.length - 1]);
	return { epsilon, order, conversion, orderAtEdge: edge };
}

/**
 * Why these DP-SGD parameters cannot be accounted, if they cannot: each must be a finite number in its range, the
 * steps a whole number. (σ = 0 is no privacy at all: its ε is unbounded, not a number to gate on.)
 */
export function dpRunProblem(run: DpSgdRun): string | undefined {
	const { noiseMultiplier: sigma, sampleRate: q, steps, delta } = run;
	if (!Number.isFinite(sigma) || sigma <= 0)
		return `the noise multiplier must be a number above 0 (${sigma}; 0 is no privacy: ε is unbounded)`;
	if (!Number.isFinite(q) || q <= 0 || q > 1) return `the sampling rate must be in (0, 1] (${q})`;
	if (!Number.isSafeInteger(steps) || steps < 1) return `the steps must be a whole number of at least 1 (${steps})`;
	// outside these the series leave floating point or their cutoff outweighs a step's RDP: no number to gate on
	const r = ACCOUNTED_RANGE;
	if (sigma < r.minNoiseMultiplier || sigma > r.maxNoiseMultiplier)
		return `the noise multiplier ${sigma} is outside [${r.minNoiseMultiplier}, ${r.maxNoiseMultiplier}], the range ftguard's accountant is checked for`;
	if (q < r.minSampleRate)
		return `the sampling rate ${q} is below ${r.minSampleRate}, the range ftguard's accountant is checked for`;
	if (steps > r.maxSteps)
		return `${steps} steps are more than ${r.maxSteps}, the range ftguard's accountant is checked for`;
	if (!Number.isFinite(delta) || delta <= 0 || delta >= 1) return `δ must be in (0, 1) (${delta})`;
	return undefined;
}

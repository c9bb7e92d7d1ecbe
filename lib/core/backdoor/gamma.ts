/**
 * The gamma distribution as MM-BD's null model needs it: a maximum-likelihood
 * fit of shape and scale (location 0) and the regularized incomplete gamma
 * functions for its CDF and upper tail (Numerical Recipes' series and Lentz
 * continued fraction; log-gamma by Lanczos, g = 7).
 */
import { logGamma } from "../dataset/stats";

/** ln Γ(x) for x > 0: one definition (the dataset scanner's, lib/core/dataset/stats.ts), re-exported for the gamma null. */
export { logGamma };

export function digamma(x: number): number {
	let r = 0;
	while (x < 6) {
		r -= 1 / x;
		x += 1;
	}
	const f = 1 / (x * x);
	return r + Math.log(x) - 0.5 / x - f * (1 / 12 - f * (1 / 120 - f * (1 / 252 - f * (1 / 240 - f / 132))));
}

/** ψ′(x) for x > 0. */
export function trigamma(x: number): number {
	let r = 0;
	while (x < 6) {
		r += 1 / (x * x);
		x += 1;
	}
	const f = 1 / (x * x);
	return r + 1 / x + f / 2 + (f / x) * (1 / 6 - f * (1 / 30 - f * (1 / 42 - f / 30)));
}

/** Regularized incomplete gamma: lower P(a, x) and upper Q(a, x) = 1 − P, each computed directly where accurate. */
export function incompleteGamma(a: number, x: number): { p: number; q: number } {
	if (!(a > 0)) throw new RangeError(`incomplete gamma: shape ${a} must be positive`);
	if (x <= 0) return { p: 0, q: 1 };
	const lead = a * Math.log(x) - x - logGamma(a);
	if (x < a + 1) {
		let ap = a;
		let term = 1 / a;
		let sum = term;
		for (let n = 0; n < 1000; n++) {
			ap += 1;
			term *= x / ap;
			sum += term;
			if (Math.abs(term) < Math.abs(sum) * 1e-16) break;
		}
		const p = Math.min(1, sum * Math.exp(lead));
		return { p, q: 1 - p };
	}
	const tiny = 1e-300;
	let b = x + 1 - a;
	let c = 1 / tiny;
	let d = 1 / b;
	let h = d;
	for (let i = 1; i < 1000; i++) {
		const an = -i * (i - a);
		b += 2;
		d = an * d + b;
		if (Math.abs(d) < tiny) d = tiny;
		c = b + an / c;
		if (Math.abs(c) < tiny) c = tiny;
		d = 1 / d;
		const del = d * c;
		h *= del;
		if (Math.abs(del - 1) < 1e-16) break;
	}
	const q = Math.min(1, Math.exp(lead) * h);
	return { p: 1 - q, q };
}

export interface GammaFit {
	shape: number;
	scale: number;
}

/**
 * Maximum-likelihood gamma (location 0) for positive samples: Minka's starting
 * value for the shape, then Newton on ln a − ψ(a) = ln mean − mean ln x; scale =
 * mean / shape. Undefined (null) for fewer than two samples, a non-positive
 * sample or samples all (nearly) equal.
 */
export function fitGamma(samples: readonly number[]): GammaFit | null {
	const n = samples.length;
	if (n < 2 || samples.some((v) => !(v > 0) || !Number.isFinite(v))) return null;
	const mean = samples.reduce((s, v) => s + v, 0) / n;
	const meanLog = samples.reduce((s, v) => s + Math.log(v), 0) / n;
	const s = Math.log(mean) - meanLog;
	if (!(s > 1e-12)) return null;
	let a = (3 - s + Math.sqrt((s - 3) ** 2 + 24 * s)) / (12 * s);
	for (let i = 0; i < 100; i++) {
		const step = (Math.log(a) - digamma(a) - s) / (1 / a - trigamma(a));
		let next = a - step;
		if (!(next > 0)) next = a / 2;
		const done = Math.abs(next - a) <= 1e-12 * a;
		a = next;
		if (done) break;
	}
	return { shape: a, scale: mean / a };
}

/**
 * The RDP accountant against published values (TensorFlow Privacy's MNIST tutorial, Opacus's documented example) and
 * against an independent scipy implementation of the same analysis (test/fixtures/dp/make_reference.py).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
	type Conversion,
	DEFAULT_ORDERS,
	dpSgdEpsilon,
	epsilonFromRdp,
	logErfc,
	rdpSampledGaussian,
	stepsForEpochs,
} from "../../../lib/core/dp/rdp";

interface Reference {
	epsilon: {
		sample_rate: number;
		noise_multiplier: number;
		steps: number;
		delta: number;
		conversion: Conversion;
		epsilon: number;
		order: number;
	}[];
	rdp: { sample_rate: number; noise_multiplier: number; order: number; rdp: number }[];
	log_erfc: { x: number; log_erfc: number }[];
}
const ref = JSON.parse(
	readFileSync(join(import.meta.dirname, "..", "..", "fixtures", "dp", "reference.json"), "utf8"),
) as Reference;

// both sides sum terms much larger than a small RDP value in log space: agreement to 1e-8 relative, 1e-13 absolute
const close = (a: number, b: number, rel: number) => Math.abs(a - b) <= rel * Math.abs(b) + 1e-13;

describe("published values", () => {
	const mnist = { noiseMultiplier: 1.1, sampleRate: 256 / 60_000, steps: 14_063, delta: 1e-5 };

	it("TensorFlow Privacy's MNIST tutorial: 60 epochs of batch 256 of 60,000 is 14,063 steps", () => {
		expect(stepsForEpochs(60, 256 / 60_000)).toBe(14_063);
		expect(stepsForEpochs(1, 0.5)).toBe(2);
		expect(stepsForEpochs(3, 1 / 3)).toBe(9);
	});

	it("gives ε ≈ 3.01 there with the classic conversion and ≈ 2.60 with Balle et al. 2020 (Opacus's)", () => {
		const classic = dpSgdEpsilon(mnist, { conversion: "classic" });
		expect(classic.epsilon).toBeCloseTo(3.01, 2);
		const tight = dpSgdEpsilon(mnist);
		expect(tight.conversion).toBe("balle2020");
		expect(tight.epsilon).toBeCloseTo(2.6, 2);
		expect(tight.orderAtEdge).toBe(false);
	});

	it("Opacus's documented composition: (q 1e-5, σ 1, 10 steps) then (q 1e-4, σ 3, 4 steps), orders 2…32: ε 0.336 at order 23", () => {
		const orders = Array.from({ length: 31 }, (_, k) => k + 2);
		const rdp = orders.map((a) => 10 * rdpSampledGaussian(1e-5, 1, a) + 4 * rdpSampledGaussian(1e-4, 3, a));
		const { epsilon, order } = epsilonFromRdp(orders, rdp, 1e-5, "balle2020");
		expect(epsilon).toBeCloseTo(0.336, 3);
		expect(order).toBe(23);
	});
});

describe("against the scipy implementation", () => {
	it(`log erfc at ${ref.log_erfc.length} points from -30 to 1000 (the tail where erfc underflows included)`, () => {
		for (const p of ref.log_erfc) expect(close(logErfc(p.x), p.log_erfc, 1e-12), `x ${p.x}`).toBe(true);
		// the limits exactly (the continued fraction would otherwise run its whole length on NaN)
		expect(logErfc(Number.POSITIVE_INFINITY)).toBe(Number.NEGATIVE_INFINITY);
		expect(logErfc(Number.NEGATIVE_INFINITY)).toBe(Math.LN2);
	});

	it(`RDP of one step at ${ref.rdp.length} (q, σ, α), integer and fractional orders`, () => {
		for (const p of ref.rdp)
			expect(
				close(rdpSampledGaussian(p.sample_rate, p.noise_multiplier, p.order), p.rdp, 1e-8),
				JSON.stringify(p),
			).toBe(true);
	});

	it(`ε and its order in ${ref.epsilon.length} runs (q 0.001…1, σ 0.5…5, 1…14,063 steps, δ 1e-5 and 1e-7, both conversions)`, () => {
		for (const c of ref.epsilon) {
			const run = { noiseMultiplier: c.noise_multiplier, sampleRate: c.sample_rate, steps: c.steps, delta: c.delta };
			const got = dpSgdEpsilon(run, { conversion: c.conversion });
			expect(close(got.epsilon, c.epsilon, 1e-9), JSON.stringify(c)).toBe(true);
			expect(got.order, JSON.stringify(c)).toBe(c.order);
		}
	});
});

describe("the accountant's shape", () => {
	const base = { noiseMultiplier: 1, sampleRate: 0.01, steps: 1000, delta: 1e-5 };

	it("spends more with more steps, a higher sampling rate or less noise", () => {
		const e = dpSgdEpsilon(base).epsilon;
		expect(dpSgdEpsilon({ ...base, steps: 2000 }).epsilon).toBeGreaterThan(e);
		expect(dpSgdEpsilon({ ...base, sampleRate: 0.02 }).epsilon).toBeGreaterThan(e);
		expect(dpSgdEpsilon({ ...base, noiseMultiplier: 0.9 }).epsilon).toBeGreaterThan(e);
		expect(dpSgdEpsilon({ ...base, delta: 1e-7 }).epsilon).toBeGreaterThan(e);
	});

	it("the classic conversion is never the smaller one", () => {
		for (const steps of [1, 10, 1000, 100_000]) {
			const run = { ...base, steps };
			expect(dpSgdEpsilon(run, { conversion: "classic" }).epsilon).toBeGreaterThanOrEqual(dpSgdEpsilon(run).epsilon);
		}
	});

	it("full batches are the Gaussian mechanism: RDP α / 2σ²", () => {
		expect(rdpSampledGaussian(1, 2, 8)).toBe(1);
		expect(rdpSampledGaussian(0, 2, 8)).toBe(0);
		expect(rdpSampledGaussian(0.1, 0, 8)).toBe(Number.POSITIVE_INFINITY);
	});

	it("says when the best order is at the end of the range tried", () => {
		// very little noise spends its privacy at the smallest order
		expect(dpSgdEpsilon({ ...base, noiseMultiplier: 0.3, steps: 100_000, sampleRate: 0.5 }).order).toBe(
			DEFAULT_ORDERS[0],
		);
		expect(dpSgdEpsilon({ ...base, noiseMultiplier: 0.3, steps: 100_000, sampleRate: 0.5 }).orderAtEdge).toBe(true);
	});
});

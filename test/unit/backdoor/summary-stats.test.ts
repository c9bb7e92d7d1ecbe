/** Median, quantile and the MAD anomaly index (summary-stats.ts) against hand-computed values and invariances. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { madAnomaly, median, quantile } from "../../../lib/core/backdoor/summary-stats";

describe("median, quantile, MAD anomaly index", () => {
	it("match hand-computed values", () => {
		expect(median([3, 1, 2])).toBe(2);
		expect(median([4, 1, 3, 2])).toBe(2.5);
		expect(median([])).toBeNaN();
		expect(quantile([4, 1, 3, 2], 0.5)).toBe(2.5);
		expect(quantile([1, 2, 3, 4], 0.01)).toBeCloseTo(1.03, 12);
		expect(quantile([1, 2, 3, 4], 1)).toBe(4);

		// median 21, |x − 21| = [1, 0, 1, 2, 20], their median 1, mad = 1.4826
		const a = madAnomaly([20, 21, 22, 23, 1]);
		expect(a.median).toBe(21);
		expect(a.mad).toBeCloseTo(1.4826, 12);
		expect(a.indices[4]).toBeCloseTo(20 / 1.4826, 10);
		expect(a.indices[3]).toBeCloseTo(2 / 1.4826, 10);
		expect(a.flagged).toEqual([4]);
		// a large outlier above the median is not flagged (vanilla rule: small L1 only)
		expect(madAnomaly([1, 2, 3, 4, 100]).flagged).toEqual([]);
		// index exactly 2 is not > 2: median 10, deviations [0, 0, 1, 1, 2.9652]
		expect(madAnomaly([10, 10, 11, 9, 10 - 2 * 1.4826]).flagged).toEqual([]);
		// mad = 0: values at the median score 0, others Infinity
		expect(madAnomaly([5, 5, 5, 2]).indices).toEqual([0, 0, 0, Number.POSITIVE_INFINITY]);
	});

	it("is invariant to shift and positive scale", () => {
		fc.assert(
			fc.property(
				fc.array(fc.integer({ min: -1000, max: 1000 }), { minLength: 3, maxLength: 30 }),
				fc.double({ min: 0.01, max: 100, noNaN: true }),
				fc.double({ min: -1000, max: 1000, noNaN: true }),
				(ints, s, t) => {
					const xs = ints.map((v) => v / 7);
					const base = madAnomaly(xs);
					fc.pre(base.mad > 0);
					const moved = madAnomaly(xs.map((x) => s * x + t));
					for (let i = 0; i < xs.length; i++) {
						const want = base.indices[i] as number;
						expect(Math.abs((moved.indices[i] as number) - want)).toBeLessThanOrEqual(1e-6 * Math.max(1, want));
					}
					expect(moved.flagged.length).toBeLessThanOrEqual(xs.length);
				},
			),
			{ numRuns: 200 },
		);
	});
});

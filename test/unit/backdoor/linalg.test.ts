/** Symmetric eigen-decomposition and PCA (linalg.ts) on every path: covariance, Gram matrix, subspace iteration. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { pca, symmetricEigen } from "../../../lib/core/backdoor/linalg";
import { Rng } from "../../../lib/core/backdoor/rng";

describe("PCA", () => {
	it("matches a hand-computed 2-D case and a 2×2 eigenproblem", () => {
		const e = symmetricEigen([2, 1, 1, 2], 2);
		expect(Array.from(e.values)).toEqual([expect.closeTo(3, 12), expect.closeTo(1, 12)]);
		expect(Array.from(e.vectors)).toEqual([
			expect.closeTo(Math.SQRT1_2, 12),
			expect.closeTo(Math.SQRT1_2, 12),
			expect.closeTo(Math.SQRT1_2, 12),
			expect.closeTo(-Math.SQRT1_2, 12),
		]);
		// points on y = x: variance (2 + 2 + 8 + 8) / 3 along (1, 1)/√2, none across
		const p = pca([1, 1, -1, -1, 2, 2, -2, -2], 4, 2, 2);
		expect(p.variances[0]).toBeCloseTo(20 / 3, 10);
		expect(p.variances[1]).toBeCloseTo(0, 10);
		expect(p.components[0]).toBeCloseTo(Math.SQRT1_2, 10);
		expect(p.components[1]).toBeCloseTo(Math.SQRT1_2, 10);
		expect(Array.from(p.projected.filter((_, i) => i % 2 === 0))).toEqual(
			[Math.SQRT2, -Math.SQRT2, 2 * Math.SQRT2, -2 * Math.SQRT2].map((v) => expect.closeTo(v, 10)),
		);
	});

	it("recovers a planted direction (covariance, Gram and subspace-iteration paths)", () => {
		const check = (n: number, d: number, seed: number) => {
			const rng = new Rng(seed);
			const u = Array.from({ length: d }, () => rng.normal());
			const nu = Math.hypot(...u);
			const dir = u.map((v) => v / nu);
			const data = new Float64Array(n * d);
			for (let i = 0; i < n; i++) {
				const t = 5 * rng.normal();
				for (let j = 0; j < d; j++) data[i * d + j] = 3 + t * (dir[j] as number) + 0.1 * rng.normal();
			}
			const p = pca(data, n, d, 3);
			let dot = 0;
			for (let j = 0; j < d; j++) dot += (p.components[j] as number) * (dir[j] as number);
			expect(Math.abs(dot)).toBeGreaterThan(0.99);
			expect(p.variances[0]).toBeGreaterThan(10 * (p.variances[1] as number));
			// deterministic, sign-normalised
			expect(Array.from(pca(data, n, d, 3).components)).toEqual(Array.from(p.components));
		};
		fc.assert(
			fc.property(fc.integer({ min: 2, max: 12 }), fc.integer({ min: 20, max: 80 }), fc.integer(), (d, n, s) =>
				check(n, d, s),
			),
			{ numRuns: 40 },
		);
		check(40, 300, 1); // n < d: Gram matrix
		check(260, 200, 2); // both above the Jacobi limit: subspace iteration
	});
});

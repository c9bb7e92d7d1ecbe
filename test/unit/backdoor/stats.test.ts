import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
	kmeans,
	madAnomaly,
	mean,
	median,
	pca,
	quantile,
	Rng,
	silhouette,
	softmax,
	softmaxEntropy,
	std,
	symmetricEigen,
} from "../../../lib/core/backdoor/stats";

/** Two Gaussian blobs around c0 and c1 (n0 and n1 rows of dimension d). */
function detBlobs(rng: Rng, d: number, n0: number, n1: number, c0: number[], c1: number[], sigma: number) {
	const data = new Float64Array((n0 + n1) * d);
	const truth = new Int32Array(n0 + n1);
	for (let i = 0; i < n0 + n1; i++) {
		const c = i < n0 ? c0 : c1;
		truth[i] = i < n0 ? 0 : 1;
		for (let j = 0; j < d; j++) data[i * d + j] = (c[j] ?? 0) + sigma * rng.normal();
	}
	return { data, truth };
}

describe("Rng", () => {
	it("is deterministic per seed and stream, and differs across them", () => {
		const a = Array.from(
			{ length: 5 },
			(
				(r) => () =>
					r.nextU32()
			)(new Rng(7)),
		);
		const b = Array.from(
			{ length: 5 },
			(
				(r) => () =>
					r.nextU32()
			)(new Rng(7)),
		);
		const c = Array.from(
			{ length: 5 },
			(
				(r) => () =>
					r.nextU32()
			)(new Rng(8)),
		);
		const d = Array.from(
			{ length: 5 },
			(
				(r) => () =>
					r.nextU32()
			)(new Rng(7, 1)),
		);
		expect(a).toEqual(b);
		expect(a).not.toEqual(c);
		expect(a).not.toEqual(d);
	});

	it("gives uniforms in (0, 1), standard normals and permutations", () => {
		const r = new Rng(1);
		const u = Array.from({ length: 20000 }, () => r.uniform());
		expect(Math.min(...u)).toBeGreaterThan(0);
		expect(Math.max(...u)).toBeLessThan(1);
		expect(mean(u)).toBeCloseTo(0.5, 1);
		const z = Array.from({ length: 20000 }, () => r.normal());
		expect(Math.abs(mean(z))).toBeLessThan(0.03);
		expect(std(z)).toBeCloseTo(1, 1);
		const p = r.permutation(50);
		expect(Array.from(p).sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => i));
		expect(Array.from(p)).not.toEqual(Array.from({ length: 50 }, (_, i) => i));
	});
});

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

describe("softmax entropy", () => {
	it("matches hand-computed values in bits", () => {
		expect(softmaxEntropy([0, 0, 0, 0])).toBeCloseTo(2, 12);
		expect(softmaxEntropy([1000, 0, 0])).toBeCloseTo(0, 12);
		// p = [1/4, 3/4]: −(0.25 log2 0.25 + 0.75 log2 0.75) = 0.811278...
		expect(softmaxEntropy([0, Math.log(3)])).toBeCloseTo(0.8112781244591328, 12);
		expect(Array.from(softmax([9, 0, Math.log(3), 9], 1, 2))).toEqual([
			expect.closeTo(0.25, 14),
			expect.closeTo(0.75, 14),
		]);
		expect(softmaxEntropy([7, 0, Math.log(3), 7], 1, 2)).toBeCloseTo(0.8112781244591328, 12);
	});
});

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

describe("k-means and silhouette", () => {
	it("match hand-computed values on a 1-D example", () => {
		const km = kmeans([0, 1, 10, 11], 4, 1, 2, { seed: 3 });
		expect(km.inertia).toBeCloseTo(1, 12);
		expect(km.labels[0]).toBe(km.labels[1]);
		expect(km.labels[2]).toBe(km.labels[3]);
		expect(km.labels[0]).not.toBe(km.labels[2]);
		// a = 1; b = 10.5, 9.5, 9.5, 10.5 → s = (1 − 1/10.5 + 1 − 1/9.5) / 2
		expect(silhouette([0, 1, 10, 11], 4, 1, [0, 0, 1, 1])).toBeCloseTo((2 - 1 / 10.5 - 1 / 9.5) / 2, 12);
		expect(silhouette([0, 1, 10, 11], 4, 1, [0, 0, 0, 0])).toBe(0);
		// a singleton cluster scores 0 for its point: (0 + s1 + s2) / 3 with a = 1, b = 0.5·? — compute directly
		const s = silhouette([0, 10, 11], 3, 1, [0, 1, 1]);
		expect(s).toBeCloseTo((0 + (1 - 1 / 10) + (1 - 1 / 11)) / 3, 12);
	});

	it("find two separated blobs, with silhouette near 1, whatever their sizes", () => {
		fc.assert(
			fc.property(
				fc.integer({ min: 2, max: 10 }),
				fc.integer({ min: 3, max: 60 }),
				fc.integer({ min: 3, max: 60 }),
				fc.integer(),
				(d, n0, n1, seed) => {
					const rng = new Rng(seed);
					const c1 = Array.from({ length: d }, () => rng.normal());
					const norm = Math.hypot(...c1);
					const { data, truth } = detBlobs(
						rng,
						d,
						n0,
						n1,
						Array(d).fill(0),
						c1.map((v) => (50 * v) / norm),
						0.5,
					);
					const km = kmeans(data, n0 + n1, d, 2, { seed });
					const flip = km.labels[0] !== 0;
					for (let i = 0; i < n0 + n1; i++) expect(flip ? 1 - (km.labels[i] as number) : km.labels[i]).toBe(truth[i]);
					expect(silhouette(data, n0 + n1, d, km.labels)).toBeGreaterThan(0.9);
				},
			),
			{ numRuns: 60 },
		);
	});

	it("is deterministic for a seed and keeps the best of several inits", () => {
		const rng = new Rng(11);
		const { data } = detBlobs(rng, 3, 100, 100, [0, 0, 0], [1, 1, 1], 1);
		const a = kmeans(data, 200, 3, 2, { seed: 5 });
		const b = kmeans(data, 200, 3, 2, { seed: 5 });
		expect(Array.from(a.labels)).toEqual(Array.from(b.labels));
		const single = kmeans(data, 200, 3, 2, { seed: 5, inits: 1 });
		expect(a.inertia).toBeLessThanOrEqual(single.inertia);
		expect(a.sizes).toHaveLength(2);
		expect((a.sizes[0] ?? 0) + (a.sizes[1] ?? 0)).toBe(200);
	});

	it("samples rows for the silhouette of large sets, deterministically", () => {
		const rng = new Rng(2);
		const { data, truth } = detBlobs(rng, 2, 300, 300, [0, 0], [20, 0], 1);
		const full = silhouette(data, 600, 2, truth);
		const sampled = silhouette(data, 600, 2, truth, { maxSamples: 200, seed: 1 });
		expect(sampled).toBe(silhouette(data, 600, 2, truth, { maxSamples: 200, seed: 1 }));
		expect(Math.abs(sampled - full)).toBeLessThan(0.02);
	});
});

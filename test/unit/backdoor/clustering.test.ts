/** k-means and the silhouette score (clustering.ts): hand-computed cases, separated blobs, determinism. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { kmeans, silhouette } from "../../../lib/core/backdoor/clustering";
import { Rng } from "../../../lib/core/backdoor/rng";

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

import { describe, expect, it } from "vitest";
import { activationClustering, clusterActivations } from "../../../lib/core/backdoor/activation-clustering";
import { Rng } from "../../../lib/core/backdoor/rng";
import type { InferenceRunner } from "../../../lib/core/backdoor/types";
import { FtguardError } from "../../../lib/core/errors";

/**
 * A fake runner over inputs of shape [2] whose first value is the sample's index:
 * penultimate() looks the activations up in a table, and records the batch sizes.
 */
function detTableRunner(table: Float32Array, dim: number, numClasses: number) {
	const calls: number[] = [];
	const runner: InferenceRunner = {
		numClasses,
		inputShape: [2],
		async logits() {
			throw new Error("not used");
		},
		async penultimate(x, n) {
			calls.push(n);
			const data = new Float32Array(n * dim);
			for (let i = 0; i < n; i++) {
				const id = x[i * 2] as number;
				data.set(table.subarray(id * dim, id * dim + dim), i * dim);
			}
			return { data, dim };
		},
		async dispose() {},
	};
	return { runner, calls };
}

/** perClass samples per class, dim features, N(0, 1) around a per-class centre; class `poisoned` gets a planted cluster. */
function detActivations(opts: {
	classes: number;
	perClass: number;
	dim: number;
	seed: number;
	poisoned?: number;
	fraction?: number;
	sep?: number;
}) {
	const { classes, perClass, dim, seed } = opts;
	const rng = new Rng(seed);
	const n = classes * perClass;
	const table = new Float32Array(n * dim);
	const labels = new BigInt64Array(n);
	const planted: number[] = [];
	const centres = Array.from({ length: classes }, () => Array.from({ length: dim }, () => 10 * rng.normal()));
	const order = rng.permutation(n); // interleave the classes
	for (let r = 0; r < n; r++) {
		const i = order[r] as number;
		const cls = r % classes;
		labels[i] = BigInt(cls);
		const k = Math.floor(r / classes);
		const isPoison = cls === opts.poisoned && k < Math.round((opts.fraction ?? 0.15) * perClass);
		if (isPoison) planted.push(i);
		for (let j = 0; j < dim; j++)
			table[i * dim + j] = (centres[cls]?.[j] ?? 0) + rng.normal() + (isPoison && j < 2 ? (opts.sep ?? 8) : 0);
	}
	const x = new Float32Array(n * 2);
	for (let i = 0; i < n; i++) x[i * 2] = i;
	return { table, labels, planted: planted.sort((a, b) => a - b), x, n };
}

describe("activation clustering", () => {
	it("flags the class with a planted 15% cluster and recovers exactly its samples", async () => {
		const d = detActivations({ classes: 4, perClass: 120, dim: 32, seed: 3, poisoned: 2 });
		const { runner, calls } = detTableRunner(d.table, 32, 4);
		const r = await activationClustering(runner, { x: d.x, n: d.n, labels: d.labels }, { batch: 100, seed: 1 });
		expect(calls).toEqual([100, 100, 100, 100, 80]);
		expect(r.dim).toBe(32);
		expect(r.flaggedClasses).toEqual([2]);
		const c2 = r.perClass[2];
		expect(c2?.n).toBe(120);
		expect(c2?.minorityIndices).toEqual(d.planted);
		expect(c2?.minorityFraction).toBeCloseTo(18 / 120, 12);
		expect(c2?.clusterSizes).toEqual([18, 102]);
		expect(c2?.silhouette).toBeGreaterThan(0.3);
		for (const c of r.perClass.filter((p) => p.cls !== 2)) {
			expect(c.flagged).toBe(false);
			expect(c.silhouette).toBeLessThan(0.15);
		}
		// deterministic
		expect(await activationClustering(runner, { x: d.x, n: d.n, labels: d.labels }, { batch: 100, seed: 1 })).toEqual(
			r,
		);
	});

	it("flags nothing when every class is a single Gaussian", () => {
		for (const seed of [1, 2, 3]) {
			const d = detActivations({ classes: 5, perClass: 80, dim: 24, seed });
			const r = clusterActivations(d.table, d.n, 24, d.labels, 5, { seed });
			expect(r.flaggedClasses).toEqual([]);
			for (const c of r.perClass) expect(c.silhouette).toBeLessThan(0.15);
		}
	});

	it("applies both thresholds: a large second mode or a weak split is not flagged", () => {
		// 45% second mode: well separated but not a minority
		const big = detActivations({ classes: 2, perClass: 100, dim: 16, seed: 4, poisoned: 0, fraction: 0.45 });
		const r1 = clusterActivations(big.table, big.n, 16, big.labels, 2);
		expect(r1.perClass[0]?.silhouette).toBeGreaterThan(0.3);
		expect(r1.perClass[0]?.flagged).toBe(false);
		expect(clusterActivations(big.table, big.n, 16, big.labels, 2, { minorityThreshold: 0.5 }).flaggedClasses).toEqual([
			0,
		]);
		// a 15% cluster only 1σ away does not separate
		const weak = detActivations({ classes: 2, perClass: 100, dim: 16, seed: 4, poisoned: 0, sep: 1 });
		expect(clusterActivations(weak.table, weak.n, 16, weak.labels, 2).flaggedClasses).toEqual([]);
	});

	it("skips classes below the minimum size, analyses only the requested classes, and checks labels", async () => {
		const d = detActivations({ classes: 3, perClass: 8, dim: 6, seed: 5 });
		const r = clusterActivations(d.table, d.n, 6, d.labels, 3);
		expect(r.perClass.map((c) => [c.cls, c.n, c.skipped, c.flagged])).toEqual([
			[0, 8, true, false],
			[1, 8, true, false],
			[2, 8, true, false],
		]);
		const r2 = clusterActivations(d.table, d.n, 6, d.labels, 3, { minClassSize: 5, classes: [1] });
		expect(r2.perClass.map((c) => [c.cls, c.skipped])).toEqual([[1, false]]);
		expect(r2.perClass[0]?.clusterSizes.reduce((a, b) => a + b, 0)).toBe(8);
		const code = (f: () => unknown) => {
			try {
				f();
			} catch (e) {
				return e instanceof FtguardError ? e.code : "other";
			}
			return "ok";
		};
		expect(code(() => clusterActivations(d.table, d.n, 6, d.labels.subarray(1), 3))).toBe("DATA_INVALID");
		const bad = BigInt64Array.from(d.labels);
		bad[3] = 7n;
		expect(code(() => clusterActivations(d.table, d.n, 6, bad, 3))).toBe("DATA_INVALID");
		const { runner } = detTableRunner(d.table, 6, 3);
		await expect(activationClustering(runner, { x: d.x.subarray(1), n: d.n, labels: d.labels })).rejects.toMatchObject({
			code: "DATA_INVALID",
		});
	});
});

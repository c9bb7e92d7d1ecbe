import { describe, expect, it } from "vitest";
import { BatchOrder, ncInit, neuralCleanse } from "../../../lib/core/backdoor/neural-cleanse";
import { Rng } from "../../../lib/core/backdoor/rng";
import type { NcBackend, NcBatchResult } from "../../../lib/core/backdoor/types";
import { FtguardError } from "../../../lib/core/errors";

/**
 * A linear softmax classifier z = W x' + c over flat inputs of D features, with
 * exact gradients through the stamp x' = (1 − m) x + m p and the tanh
 * parametrisation — the same loss an ONNX backend computes.
 */
function detLinearBackend(W: number[][], c: number[], opts: { trials: number; batch: number; lo: number; hi: number }) {
	const C = W.length;
	const D = (W[0] as number[]).length;
	const { trials: K, batch: B, lo, hi } = opts;
	const backend: NcBackend & { calls: number } = {
		trials: K,
		batch: B,
		inputShape: [D],
		maskShape: [D],
		numClasses: C,
		calls: 0,
		async run(x, maskRaw, patternRaw, target, cost): Promise<NcBatchResult> {
			backend.calls++;
			const ce = new Float32Array(K);
			const l1 = new Float32Array(K);
			const acc = new Float32Array(K);
			const gradMask = new Float32Array(K * D);
			const gradPattern = new Float32Array(K * D);
			for (let k = 0; k < K; k++) {
				const t = Number(target[k]);
				const m = new Float64Array(D);
				const p = new Float64Array(D);
				for (let j = 0; j < D; j++) {
					m[j] = (Math.tanh(maskRaw[k * D + j] as number) + 1) / 2;
					p[j] = lo + ((hi - lo) * (Math.tanh(patternRaw[k * D + j] as number) + 1)) / 2;
				}
				const dm = new Float64Array(D);
				const dp = new Float64Array(D);
				let ceSum = 0;
				let hits = 0;
				for (let i = 0; i < B; i++) {
					const xs = Array.from(
						{ length: D },
						(_, j) => (1 - (m[j] as number)) * (x[i * D + j] as number) + (m[j] as number) * (p[j] as number),
					);
					const z = W.map((row, r) => row.reduce((s, w, j) => s + w * (xs[j] as number), c[r] as number));
					const mx = Math.max(...z);
					const e = z.map((v) => Math.exp(v - mx));
					const se = e.reduce((a, b) => a + b, 0);
					const prob = e.map((v) => v / se);
					ceSum += -Math.log(prob[t] as number);
					if (z.indexOf(mx) === t) hits++;
					for (let j = 0; j < D; j++) {
						let g = 0;
						for (let r = 0; r < C; r++)
							g += ((W[r] as number[])[j] as number) * ((prob[r] as number) - (r === t ? 1 : 0));
						dm[j] = (dm[j] as number) + (g * ((p[j] as number) - (x[i * D + j] as number))) / B;
						dp[j] = (dp[j] as number) + (g * (m[j] as number)) / B;
					}
				}
				ce[k] = ceSum / B;
				acc[k] = hits / B;
				l1[k] = m.reduce((a, b) => a + b, 0);
				for (let j = 0; j < D; j++) {
					const th = Math.tanh(maskRaw[k * D + j] as number);
					const tp = Math.tanh(patternRaw[k * D + j] as number);
					gradMask[k * D + j] = ((dm[j] as number) + (cost[k] as number)) * ((1 - th * th) / 2);
					gradPattern[k * D + j] = (dp[j] as number) * (((hi - lo) * (1 - tp * tp)) / 2);
				}
			}
			return { ce, l1, acc, gradMask, gradPattern };
		},
		async dispose() {},
	};
	return backend;
}

/**
 * Three clean classes, each driven by its own group of 5 features, and class 3
 * with a planted backdoor: feature 0 at its maximum beats every other logit.
 */
function detPlanted(trials: number) {
	const D = 16;
	const W: number[][] = [0, 1, 2].map((k) =>
		Array.from({ length: D }, (_, j) => (j >= 1 + 5 * k && j < 6 + 5 * k ? 4 : 0)),
	);
	W.push(Array.from({ length: D }, (_, j) => (j === 0 ? 60 : 0)));
	const c = [0, 0, 0, -30];
	const n = 64;
	const rng = new Rng(99);
	const x = Float32Array.from({ length: n * D }, () => rng.uniform());
	return { backend: detLinearBackend(W, c, { trials, batch: 16, lo: 0, hi: 1 }), data: { x, n }, D };
}

/** A backend whose attack success, L1 and gradients follow a script per step; it records every cost it is given. */
function detScripted(
	K: number,
	B: number,
	batchesPerStep: number,
	script: (step: number, slot: number, maskRaw: Float32Array) => { acc: number; l1?: number },
) {
	const costs: number[][] = [];
	const targets: bigint[][] = [];
	const masks: Float32Array[] = [];
	let call = 0;
	const backend: NcBackend = {
		trials: K,
		batch: B,
		inputShape: [2, 3, 3],
		maskShape: [1, 3, 3],
		numClasses: 5,
		async run(_x, maskRaw, _patternRaw, target, cost) {
			const step = Math.floor(call++ / batchesPerStep);
			costs.push(Array.from(cost));
			targets.push(Array.from(target));
			masks.push(Float32Array.from(maskRaw));
			const acc = new Float32Array(K);
			const l1 = new Float32Array(K);
			for (let s = 0; s < K; s++) {
				const r = script(step, s, maskRaw.subarray(s * 9, s * 9 + 9));
				acc[s] = r.acc;
				l1[s] = r.l1 ?? 1;
			}
			return {
				ce: new Float32Array(K),
				l1,
				acc,
				gradMask: new Float32Array(K * 9),
				gradPattern: new Float32Array(K * 18),
			};
		},
		async dispose() {},
	};
	return { backend, costs, targets, masks };
}

const sumMask = (raw: ArrayLike<number>) => Array.from(raw).reduce((a, v) => a + (Math.tanh(v) + 1) / 2, 0);

describe("neural cleanse on an analytic linear model with a planted backdoor", () => {
	it("finds the backdoored class with a clearly smaller L1 and flags it; results do not depend on K", async () => {
		const a = detPlanted(3);
		const progress: number[] = [];
		const r = await neuralCleanse(a.backend, a.data, {
			steps: 120,
			seed: 1,
			onProgress: (p) => {
				progress.push(p.done);
				expect(p.total).toBe(4 * 120);
			},
		});
		expect(r.lo).toBeCloseTo(0, 1);
		expect(r.hi).toBeCloseTo(1, 1);
		expect(r.perClass.map((p) => p.cls)).toEqual([0, 1, 2, 3]);
		for (const p of r.perClass) {
			expect(p.succeeded).toBe(true);
			expect(p.success).toBeGreaterThanOrEqual(0.99);
			expect(p.bestStep).toBeGreaterThanOrEqual(0);
			expect(p.mask).toHaveLength(16);
			expect(p.pattern).toHaveLength(16);
			expect(Math.min(...p.pattern)).toBeGreaterThanOrEqual(r.lo);
			expect(Math.max(...p.pattern)).toBeLessThanOrEqual(r.hi);
			expect(p.l1).toBeCloseTo(
				p.mask.reduce((s, v) => s + v, 0),
				4,
			);
		}
		const l1 = r.l1Norms;
		expect(l1[3]).toBeLessThan(2);
		expect(Math.min(l1[0] as number, l1[1] as number, l1[2] as number)).toBeGreaterThan(3 * (l1[3] as number));
		// the backdoor trigger is feature 0 set high
		const trig = r.perClass[3];
		expect(trig?.mask.indexOf(Math.max(...(trig?.mask ?? [])))).toBe(0);
		expect(trig?.pattern[0]).toBeGreaterThan(0.9);
		expect(r.flaggedClasses).toEqual([3]);
		expect(r.anomalyIndices[3]).toBeGreaterThan(2);
		expect(progress.at(-1)).toBe(4 * 120);
		// 4 trials in groups of 3: two groups × 120 steps × 4 batches
		expect(a.backend.calls).toBe(2 * 120 * 4);

		const b = detPlanted(1);
		const r1 = await neuralCleanse(b.backend, b.data, { steps: 120, seed: 1 });
		expect(r1).toEqual(r);
	});

	it("is deterministic for a seed, and another seed gives another initialisation", async () => {
		const run = async (seed: number) => {
			const p = detPlanted(4);
			const res = await neuralCleanse(p.backend, p.data, { steps: 8, seed, classes: [3, 1] });
			return res;
		};
		const a = await run(5);
		const b = await run(5);
		expect(b).toEqual(a);
		expect(a.perClass.map((p) => p.cls)).toEqual([3, 1]);
		const first = (seed: number) => {
			const rec = detScripted(2, 4, 1, () => ({ acc: 0 }));
			return neuralCleanse(
				rec.backend,
				{ x: new Float32Array(4 * 18).fill(0.5).map((v, i) => v * (i % 3)), n: 4 },
				{ steps: 1, seed, classes: [0, 1] },
			).then(() => rec.masks[0] as Float32Array);
		};
		const m5 = await first(5);
		expect(Array.from(await first(5))).toEqual(Array.from(m5));
		expect(Array.from(await first(6))).not.toEqual(Array.from(m5));
		// the two trials of one run get different inits too
		expect(Array.from(m5.subarray(0, 9))).not.toEqual(Array.from(m5.subarray(9, 18)));
		// seeded init: raw = atanh((2u − 1)·0.999999), so the mask lies strictly inside (0, 1) and matches ncInit
		expect(Array.from(m5.subarray(0, 9))).toEqual(Array.from(ncInit(5, 0, 0, 9, 18).maskRaw));
		for (const v of m5) expect(Math.abs(Math.tanh(v))).toBeLessThan(0.999999 + 1e-6);
	});
});

describe("neural cleanse cost schedule and best mask", () => {
	const x = Float32Array.from({ length: 6 * 18 }, (_, i) => (i % 7) / 6);

	it("keeps cost 0 until patience successes, then init_cost, ×2 after patience successes, ÷2^1.5 after patience failures", async () => {
		// step:   0-3 ok, 4 fail, 5-9 ok, 10-13 ok, 14-18 fail, 19-24 ok
		const ok = (s: number) => s !== 4 && !(s >= 14 && s <= 18);
		const rec = detScripted(1, 3, 2, (step) => ({ acc: ok(step) ? 1 : 0.5 }));
		await neuralCleanse(rec.backend, { x, n: 6 }, { steps: 25, classes: [2] });
		expect(rec.costs).toHaveLength(50);
		const perStep = rec.costs.filter((_, i) => i % 2 === 0).map((c) => c[0] as number);
		// both batches of a step see the same cost
		expect(rec.costs.filter((_, i) => i % 2 === 1).map((c) => c[0])).toEqual(perStep);
		const expected = [
			...Array(10).fill(0), // the failure at step 4 resets the count; 5 in a row end at step 9
			...Array(4).fill(1e-3), // counters reset at step 9, which counts as the first success: ×2 after step 13
			...Array(5).fill(2e-3), // 5 failures (14-18): ÷2^1.5
			...Array(5).fill(2e-3 / 2 ** 1.5), // 5 successes (19-23): ×2
			4e-3 / 2 ** 1.5,
		];
		expect(perStep).toEqual(expected.map((v) => expect.closeTo(v, 9)));
		expect(rec.targets.every((t) => t[0] === 2n)).toBe(true);
	});

	it("uses the given init_cost, patience and threshold", async () => {
		const rec = detScripted(1, 3, 2, () => ({ acc: 0.9 }));
		await neuralCleanse(
			rec.backend,
			{ x, n: 6 },
			{ steps: 6, classes: [0], initCost: 0.5, patience: 2, successThreshold: 0.85 },
		);
		// step 1 completes 2 successes: cost 0.5, counters reset, step 1 is the first up-count; ×2 after steps 2 and 4
		expect(rec.costs.filter((_, i) => i % 2 === 0).map((c) => c[0])).toEqual([0, 0, 0.5, 1, 1, 2]);
	});

	it("keeps the step with the smallest mean L1 among successful steps; a class that never succeeds reports the mask size", async () => {
		const l1s = [5, 2, 1, 2, 0.5, 4]; // steps 1 and 3 tie: the earlier is kept, as the original's strict <
		const okSteps = new Set([0, 1, 3, 5]); // steps 2 and 4 have smaller L1 but fail
		const rec = detScripted(2, 3, 2, (step, slot) =>
			slot === 0 ? { acc: okSteps.has(step) ? 1 : 0.2, l1: l1s[step] as number } : { acc: 0.3 },
		);
		const r = await neuralCleanse(rec.backend, { x, n: 6 }, { steps: 6, classes: [1, 4], seed: 3 });
		const [c1, c4] = r.perClass;
		expect(c1?.bestStep).toBe(1);
		expect(c1?.succeeded).toBe(true);
		expect(c1?.success).toBe(1);
		// zero gradients: the mask is its initialisation, and the reported L1 is its sum
		expect(c1?.l1).toBeCloseTo(sumMask(ncInit(3, 1, 0, 9, 18).maskRaw), 5);
		expect(c4).toMatchObject({ cls: 4, succeeded: false, bestStep: -1, l1: 9 });
		expect(c4?.success).toBeCloseTo(0.3, 6);
		expect(c4?.mask).toHaveLength(9);
		expect(c4?.pattern).toHaveLength(18);
	});

	it("restarts keep the smallest successful L1", async () => {
		// L1 is the sum of the (unchanging) initial mask; a trial succeeds only when that sum is below 4.6
		const rec = detScripted(4, 3, 2, (_s, _k, raw) => ({ acc: sumMask(raw) < 4.6 ? 1 : 0, l1: sumMask(raw) }));
		const seed = 17;
		const r = await neuralCleanse(rec.backend, { x, n: 6 }, { steps: 2, classes: [0, 3], restarts: 3, seed });
		for (const res of r.perClass) {
			const sums = [0, 1, 2].map((k) => sumMask(ncInit(seed, res.cls, k, 9, 18).maskRaw));
			const okSums = sums.filter((s) => s < 4.6);
			if (okSums.length > 0) {
				expect(res.succeeded).toBe(true);
				expect(res.l1).toBeCloseTo(Math.min(...okSums), 5);
				expect(res.restart).toBe(sums.indexOf(Math.min(...okSums)));
			} else expect(res).toMatchObject({ succeeded: false, l1: 9 });
		}
		// 2 classes × 3 restarts = 6 trials → 2 groups of 4 (2 padding slots)
		expect(rec.costs).toHaveLength(2 * 2 * 2);
		expect(rec.targets[0]).toEqual([0n, 0n, 0n, 3n]);
		expect(rec.targets[4]).toEqual([3n, 3n, 3n, 3n]);
		// the padding slots copy the group's first trial
		expect(Array.from((rec.masks[4] as Float32Array).subarray(18, 27))).toEqual(
			Array.from(ncInit(seed, 3, 1, 9, 18).maskRaw),
		);
		expect(Array.from((rec.masks[4] as Float32Array).subarray(27, 36))).toEqual(
			Array.from(ncInit(seed, 3, 1, 9, 18).maskRaw),
		);
		// restarts of one class start from different inits
		expect(sumMask(ncInit(seed, 0, 0, 9, 18).maskRaw)).not.toBe(sumMask(ncInit(seed, 0, 1, 9, 18).maskRaw));
	});
});

describe("neural cleanse batching and validation", () => {
	it("visits every input once per step in full batches, completing the last from the next shuffle", () => {
		const o = new BatchOrder(4, 10, 4);
		expect(o.batchesPerStep).toBe(3);
		const s0 = o.step(0);
		const s1 = o.step(1);
		expect(s0).toHaveLength(12);
		expect(new Set(s0.subarray(0, 10)).size).toBe(10);
		expect(Array.from(s0.subarray(10))).toEqual(Array.from(s1.subarray(0, 2)));
		expect(new Set(s1.subarray(0, 10)).size).toBe(10);
		expect(Array.from(s1.subarray(0, 10))).not.toEqual(Array.from(s0.subarray(0, 10)));
		// a batch larger than the data takes several shuffles
		const tiny = new BatchOrder(4, 3, 8).step(0);
		expect(tiny).toHaveLength(8);
		expect(new Set(tiny.subarray(0, 3)).size).toBe(3);
		expect(Array.from(new BatchOrder(4, 10, 4).step(0))).toEqual(Array.from(s0));
	});

	it("refuses bad data, bad classes and bad backend output with stable codes", async () => {
		const x = new Float32Array(6 * 18).map((_, i) => i % 2);
		const codeOf = async (p: Promise<unknown>) => {
			try {
				await p;
				return "ok";
			} catch (e) {
				return e instanceof FtguardError ? e.code : `other ${String(e)}`;
			}
		};
		const ok = () => detScripted(1, 3, 2, () => ({ acc: 1 })).backend;
		expect(await codeOf(neuralCleanse(ok(), { x: x.subarray(1), n: 6 }, { steps: 1 }))).toBe("DATA_INVALID");
		expect(await codeOf(neuralCleanse(ok(), { x: new Float32Array(18).fill(0.3), n: 1 }, { steps: 1 }))).toBe(
			"DATA_INVALID",
		);
		expect(await codeOf(neuralCleanse(ok(), { x, n: 6 }, { steps: 1, classes: [5] }))).toBe("USAGE");
		expect(await codeOf(neuralCleanse(ok(), { x, n: 6 }, { steps: 0 }))).toBe("USAGE");
		expect(await codeOf(neuralCleanse(ok(), { x, n: 6 }, { steps: 1, classes: [1, 1] }))).toBe("USAGE");
		expect(
			await codeOf(neuralCleanse(detScripted(1, 3, 2, () => ({ acc: Number.NaN })).backend, { x, n: 6 }, { steps: 1 })),
		).toBe("BACKEND_ERROR");
		const short = {
			...ok(),
			run: async () => ({
				ce: new Float32Array(1),
				l1: new Float32Array(1),
				acc: new Float32Array(1),
				gradMask: new Float32Array(2),
				gradPattern: new Float32Array(18),
			}),
		};
		expect(await codeOf(neuralCleanse(short, { x, n: 6 }, { steps: 1 }))).toBe("BACKEND_ERROR");
		const ac = new AbortController();
		ac.abort();
		expect(await codeOf(neuralCleanse(ok(), { x, n: 6 }, { steps: 1, signal: ac.signal }))).toBe("ABORTED");
	});
});

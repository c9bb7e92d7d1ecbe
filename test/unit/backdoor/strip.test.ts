import { describe, expect, it } from "vitest";
import { Rng } from "../../../lib/core/backdoor/rng";
import { stampTrigger, stripCalibrate, stripOnTriggers, stripScore } from "../../../lib/core/backdoor/strip";
import { quantile } from "../../../lib/core/backdoor/summary-stats";
import type { InferenceRunner } from "../../../lib/core/backdoor/types";
import { FtguardError } from "../../../lib/core/errors";

const D = 4;
const C = 5;

/**
 * A fake classifier over 4 features in [0, 1]: feature 0 at ≥ 0.9 is the trigger
 * (a peaked softmax on class 3); otherwise the logits are small and depend on the
 * input, so superimposed clean inputs give a nearly flat softmax. Records each
 * call's size and every input it saw.
 */
function detRunner() {
	const calls: number[] = [];
	const seen: Float32Array[] = [];
	const runner: InferenceRunner = {
		numClasses: C,
		inputShape: [D],
		async logits(x, n) {
			calls.push(n);
			const out = new Float32Array(n * C);
			for (let i = 0; i < n; i++) {
				const v = x.subarray(i * D, i * D + D);
				seen.push(Float32Array.from(v));
				if ((v[0] as number) >= 0.9) out.set([0, 0, 0, 20, 0], i * C);
				else out.set([v[1] as number, v[2] as number, v[3] as number, v[0] as number, 0.5], i * C);
			}
			return out;
		},
		async penultimate() {
			throw new Error("not used");
		},
		async dispose() {},
	};
	return { runner, calls, seen };
}

/** n clean inputs: feature 0 in [0, 0.4] (two of them never reach the trigger level), the rest in [0, 0.5]. */
function detClean(n: number, seed: number): Float32Array {
	const rng = new Rng(seed);
	const x = new Float32Array(n * D);
	for (let i = 0; i < n; i++) {
		x[i * D] = 0.4 * rng.uniform();
		for (let j = 1; j < D; j++) x[i * D + j] = 0.5 * rng.uniform();
	}
	x[0] = 0; // the range is [0, 1]
	x[1] = 1;
	return x;
}

const entropyOf = (z: number[]) => {
	const m = Math.max(...z);
	const e = z.map((v) => Math.exp(v - m));
	const s = e.reduce((a, b) => a + b, 0);
	return -e.reduce((h, v) => h + (v / s) * Math.log2(v / s), 0);
};

describe("STRIP", () => {
	it("calibrates the boundary at the FRR-quantile of held-out clean scores, batching the model calls", async () => {
		const ref = { x: detClean(200, 1), n: 200 };
		const { runner, calls } = detRunner();
		const cal = await stripCalibrate(runner, ref, { seed: 7, overlays: 50, batch: 1024, frr: 0.05 });
		expect(cal.heldOutIndices).toHaveLength(100);
		expect(cal.poolIndices).toHaveLength(100);
		expect(new Set([...cal.heldOutIndices, ...cal.poolIndices]).size).toBe(200);
		expect(cal.lo).toBe(0);
		expect(cal.hi).toBe(1);
		// 100 inputs × 50 overlays = 5000 perturbed inputs in calls of 1024
		expect(calls).toEqual([1024, 1024, 1024, 1024, 904]);
		expect(cal.cleanScores).toHaveLength(100);
		expect(cal.boundary).toBe(quantile(cal.cleanScores, 0.05));
		expect(cal.cleanScores.filter((s) => s < cal.boundary).length).toBeLessThanOrEqual(5);
		// clean superimpositions stay near the flat softmax's log2(5) = 2.32 bits
		expect(cal.clean.mean).toBeGreaterThan(2.1);
		expect(cal.clean.min).toBeGreaterThan(1.5);
		expect(cal.clean.max).toBeLessThanOrEqual(Math.log2(5) + 1e-9);
		const median = await stripCalibrate(detRunner().runner, ref, { seed: 7, overlays: 50, frr: 0.5 });
		expect(median.boundary).toBe(quantile(median.cleanScores, 0.5));
		expect(median.cleanScores).toEqual(cal.cleanScores); // batch size does not change the result
		// another seed, another split
		const other = await stripCalibrate(detRunner().runner, ref, { seed: 8, overlays: 50 });
		expect(Array.from(other.heldOutIndices)).not.toEqual(Array.from(cal.heldOutIndices));
	});

	it("scores by mean entropy of x + x_j clipped to [lo, hi], x_j from the overlay pool", async () => {
		const ref = { x: detClean(40, 2), n: 40 };
		const cal = await stripCalibrate(detRunner().runner, ref, { seed: 1, overlays: 8 });
		const { runner, seen } = detRunner();
		const input = Float32Array.from([0.7, 0.6, 0.1, 0.2]);
		const { scores } = await stripScore(runner, ref, { x: input, n: 1 }, cal);
		expect(seen).toHaveLength(8);
		let expected = 0;
		for (const p of seen) {
			const j = Array.from(cal.poolIndices).find((k) =>
				[0, 1, 2, 3].every(
					(e) =>
						Math.abs((p[e] as number) - Math.min(1, Math.max(0, (input[e] as number) + (ref.x[k * D + e] as number)))) <
						1e-6,
				),
			);
			expect(j).toBeDefined();
			expected +=
				(p[0] as number) >= 0.9 ? entropyOf([0, 0, 0, 20, 0]) : entropyOf([p[1], p[2], p[3], p[0], 0.5] as number[]);
		}
		expect(scores[0]).toBeCloseTo(expected / 8, 6);
	});

	it("flags trojaned inputs (peaked softmax, low entropy) and passes clean ones", async () => {
		const ref = { x: detClean(200, 3), n: 200 };
		const cal = await stripCalibrate(detRunner().runner, ref, { seed: 2 });
		const clean = detClean(50, 4);
		const trojan = Float32Array.from(clean);
		for (let i = 0; i < 50; i++) trojan[i * D] = 1;
		const { runner, calls } = detRunner();
		const c = await stripScore(runner, ref, { x: clean.subarray(D), n: 49 }, cal);
		const t = await stripScore(runner, ref, { x: trojan, n: 50 }, cal);
		expect(calls.length).toBeLessThanOrEqual(6); // 4900 and 5000 perturbed inputs, 2048 a call
		expect(t.flagged.every(Boolean)).toBe(true);
		expect(Math.max(...t.scores)).toBeLessThan(0.01);
		expect(c.flagged.filter(Boolean).length).toBeLessThanOrEqual(2);
		// same seed, same scores
		expect((await stripScore(runner, ref, { x: trojan, n: 50 }, cal)).scores).toEqual(t.scores);
	});

	it("reports, per reversed trigger, the fraction of stamped clean inputs below the boundary", async () => {
		const ref = { x: detClean(120, 5), n: 120 };
		const { runner } = detRunner();
		const cal = await stripCalibrate(runner, ref, { seed: 3, overlays: 20 });
		const res = await stripOnTriggers(runner, ref, cal, [
			{ cls: 3, mask: Float32Array.from([1, 0, 0, 0]), pattern: Float32Array.from([1, 0, 0, 0]) },
			{ cls: 1, mask: Float32Array.from([0, 0, 1, 0]), pattern: Float32Array.from([0, 0, 0.5, 0]) },
		]);
		expect(res.map((r) => [r.cls, r.count])).toEqual([
			[3, 60],
			[1, 60],
		]);
		expect(res[0]?.fractionBelow).toBe(1);
		expect(res[0]?.meanScore).toBeLessThan(0.01);
		expect(res[1]?.fractionBelow).toBeLessThan(0.1);
		const few = await stripOnTriggers(
			runner,
			ref,
			cal,
			[{ cls: 3, mask: new Float32Array(4).fill(0), pattern: new Float32Array(4) }],
			{
				count: 10,
			},
		);
		expect(few[0]?.count).toBe(10);
	});

	it("stamps with the mask broadcast over channels for [C, H, W] inputs", () => {
		const x = Float32Array.from({ length: 2 * 8 }, (_, i) => i);
		const mask = Float32Array.from([1, 0, 0.5, 0]);
		const pattern = Float32Array.from([-1, -1, -1, -1, -2, -2, -2, -2]);
		const s = stampTrigger(x, 2, [2, 2, 2], mask, pattern);
		expect(Array.from(s)).toEqual([-1, 1, 0.5, 3, -2, 5, 2, 7, -1, 9, 4.5, 11, -2, 13, 6, 15]);
		expect(Array.from(stampTrigger(x.subarray(0, 8), 1, [8], new Float32Array(8).fill(1), pattern))).toEqual(
			Array.from(pattern),
		);
		expect(() => stampTrigger(x, 2, [2, 2, 2], new Float32Array(3), pattern)).toThrow(FtguardError);
	});

	it("refuses unusable reference data and options", async () => {
		const { runner } = detRunner();
		await expect(stripCalibrate(runner, { x: new Float32Array(4), n: 1 })).rejects.toMatchObject({
			code: "DATA_INVALID",
		});
		await expect(stripCalibrate(runner, { x: new Float32Array(7), n: 2 })).rejects.toMatchObject({
			code: "DATA_INVALID",
		});
		await expect(stripCalibrate(runner, { x: new Float32Array(8).fill(0.5), n: 2 })).rejects.toMatchObject({
			code: "DATA_INVALID",
		});
		await expect(stripCalibrate(runner, { x: detClean(10, 1), n: 10 }, { frr: 0 })).rejects.toMatchObject({
			code: "USAGE",
		});
		const bad: InferenceRunner = { ...runner, logits: async (_x, n) => new Float32Array(n * C - 1) };
		await expect(stripCalibrate(bad, { x: detClean(10, 1), n: 10 })).rejects.toMatchObject({ code: "BACKEND_ERROR" });
	});
});

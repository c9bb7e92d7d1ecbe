/**
 * Neural Cleanse per (source, target) pair (nc-pairs.ts): the per-trial-input graph agrees
 * with the shared-input one when every trial gets the same inputs, each pair stamps only its
 * source's inputs, the budget plan, and on a real backdoored model the pairs into the target
 * need the smallest triggers.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { allPairs, neuralCleansePairs, smallestPair } from "../../../lib/core/backdoor/nc-pairs";
import { readNpyFloat32, readNpyInt64 } from "../../../lib/core/backdoor/npy";
import { readOnnxModel } from "../../../lib/core/backdoor/onnx-model";
import { NcRunner } from "../../../lib/core/backdoor/runtime";
import { pairPlan } from "../../../lib/core/backdoor/scan";
import { median } from "../../../lib/core/backdoor/summary-stats";
import type { NcBackend, NcBatchResult } from "../../../lib/core/backdoor/types";
import { FtguardError } from "../../../lib/core/errors";
import { uniform } from "./grad-check";

const DIR = "test/fixtures/backdoor/digits16c";
const model = () => readOnnxModel(readFileSync(`${DIR}/cnn-badnets-t1-p5.onnx`));

describe("the per-trial-input graph", () => {
	it("computes what the shared-input graph does when every trial stamps the same inputs", async () => {
		const K = 3;
		const B = 4;
		const S = 3 * 16 * 16;
		const M = 16 * 16;
		const m = await model();
		const shared = await NcRunner.create(m, { device: "cpu", trials: K, batch: B, lo: 0, hi: 1 });
		const own = await NcRunner.create(m, { device: "cpu", trials: K, batch: B, lo: 0, hi: 1, perTrialInputs: true });
		try {
			expect(own.perTrialInputs).toBe(true);
			const x = uniform(B * S, 1, 0, 1);
			const xk = new Float32Array(K * B * S);
			for (let k = 0; k < K; k++) xk.set(x, k * B * S);
			const args = [
				uniform(K * M, 2, -2, 2),
				uniform(K * S, 3, -2, 2),
				BigInt64Array.of(1n, 4n, 7n),
				Float32Array.of(0, 1e-3, 1e-2),
			] as const;
			const a = await shared.run(x, ...args);
			const b = await own.run(xk, ...args);
			for (const key of ["ce", "l1", "acc", "gradMask", "gradPattern"] as const)
				for (let i = 0; i < a[key].length; i++) expect(b[key][i]).toBeCloseTo(a[key][i] as number, 4);
			// x of the shared shape is refused: the graph would silently read it as K × B inputs otherwise
			await expect(own.run(x, ...args)).rejects.toThrow(/x/);
		} finally {
			await shared.dispose();
			await own.dispose();
		}
	});
});

/** A backend that records which inputs each trial was given (every input is its own index). */
function recordingBackend(K: number, B: number): NcBackend & { seen: number[][] } {
	const seen: number[][] = Array.from({ length: K }, () => []);
	return {
		trials: K,
		batch: B,
		inputShape: [1],
		maskShape: [1],
		numClasses: 4,
		perTrialInputs: true,
		seen,
		async run(x: Float32Array): Promise<NcBatchResult> {
			for (let k = 0; k < K; k++) for (let i = 0; i < B; i++) seen[k]?.push(x[k * B + i] as number);
			return {
				ce: new Float32Array(K),
				l1: new Float32Array(K).fill(0.5),
				acc: new Float32Array(K).fill(1),
				gradMask: new Float32Array(K),
				gradPattern: new Float32Array(K),
			};
		},
		async dispose() {},
	};
}

describe("neuralCleansePairs", () => {
	const labels = BigInt64Array.from([0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3].map(BigInt));
	const x = Float32Array.from(labels, (_, i) => i);

	it("stamps each pair's source inputs only, and returns one result per pair", async () => {
		const be = recordingBackend(3, 2);
		const pairs: Array<[number, number]> = [
			[2, 0],
			[3, 1],
			[0, 1],
		];
		const r = await neuralCleansePairs(be, { x, y: labels, n: 12 }, pairs, { steps: 4, lo: 0, hi: 1 });
		expect(r.map((p) => [p.source, p.cls])).toEqual(pairs);
		pairs.forEach(([s], k) => {
			const got = be.seen[k] as number[];
			expect(got.length).toBeGreaterThan(0);
			for (const i of got) expect(Number(labels[i])).toBe(s);
			// every one of the source's inputs is visited
			expect(new Set(got).size).toBe(3);
		});
	});

	it("refuses a pair of one class, a class out of range, a source without inputs, a shared-input backend", async () => {
		const be = recordingBackend(2, 2);
		const data = { x, y: labels, n: 12 };
		for (const bad of [[[1, 1]], [[0, 4]], [[-1, 2]]] as Array<Array<[number, number]>>)
			await expect(neuralCleansePairs(be, data, bad, { steps: 1, lo: 0, hi: 1 })).rejects.toBeInstanceOf(FtguardError);
		const noThree = { x, y: labels.map((v) => (v === 3n ? 2n : v)), n: 12 };
		await expect(neuralCleansePairs(be, noThree, [[3, 0]], { steps: 1, lo: 0, hi: 1 })).rejects.toThrow(
			/source class 3/,
		);
		await expect(
			neuralCleansePairs({ ...be, perTrialInputs: false }, data, [[1, 0]], { steps: 1, lo: 0, hi: 1 }),
		).rejects.toThrow(/per-trial/);
	});
});

describe("pairPlan (the budget)", () => {
	it("searches every pair while C(C − 1) fits, none with two classes", () => {
		expect(pairPlan(5, 400)).toEqual([0, 1, 2, 3, 4]);
		expect(pairPlan(2, 400)).toEqual([]);
		expect(pairPlan(5, 0)).toEqual([]);
		expect(allPairs(3)).toEqual([
			[1, 0],
			[2, 0],
			[0, 1],
			[2, 1],
			[0, 2],
			[1, 2],
		]);
	});
	it("over budget, takes whole targets with the smallest all-source triggers first", () => {
		// 10 classes, 9 pairs per target: 30 pairs buy three targets
		const l1 = [9, 3, 8, 7, 1, 6, 5, 4, 2, 10];
		expect(pairPlan(10, 30, l1)).toEqual([1, 4, 8]);
		expect(pairPlan(10, 30)).toEqual([0, 1, 2]);
	});
});

describe("on a backdoored model (digits16c cnn-badnets-t1, all-to-one → 1)", () => {
	it("the pairs into the target need smaller triggers than the pairs into other classes", async () => {
		const xr = await readNpyFloat32(`${DIR}/ref-x.npy`);
		const yr = await readNpyInt64(`${DIR}/ref-y.npy`);
		const targets = [0, 1, 5];
		const pairs = allPairs(10, targets);
		const runner = await NcRunner.create(await model(), {
			device: "cpu",
			trials: pairs.length,
			batch: 32,
			lo: 0,
			hi: 1,
			perTrialInputs: true,
			threads: 1,
		});
		try {
			const r = await neuralCleansePairs(runner, { x: xr.data, y: yr.data, n: xr.shape[0] as number }, pairs, {
				steps: 60,
				lo: 0,
				hi: 1,
			});
			const med = targets.map((t) => median(r.filter((p) => p.cls === t).map((p) => p.l1)));
			expect(med[1]).toBeLessThan(0.7 * Math.min(med[0] as number, med[2] as number));
		} finally {
			await runner.dispose();
		}
	}, 120_000);
});

describe("smallestPair", () => {
	it("is a target's smallest searched pair trigger and its source (the first on a tie); none when nothing was searched", () => {
		expect(smallestPair([null, 7.5, 3.25, null, 3.25])).toEqual({ source: 2, l1: 3.25 });
		expect(smallestPair([0, null])).toEqual({ source: 0, l1: 0 });
		expect(smallestPair([null, null])).toBeUndefined();
		expect(smallestPair([])).toBeUndefined();
	});
});

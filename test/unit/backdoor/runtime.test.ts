/**
 * The backdoor graphs run by onnxruntime (runtime.ts): the Neural Cleanse step's
 * outputs and gradients checked against direct computation and finite
 * differences, the inference graph, the shape probe, and session creation.
 */
import { readFileSync } from "node:fs";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildInferenceGraph, buildNeuralCleanseGraph } from "../../../lib/core/backdoor/nc-graph";
import { type OnnxModel, readOnnxModel } from "../../../lib/core/backdoor/onnx-model";
import { createSession, NcRunner, OnnxInferenceRunner, probeShapes } from "../../../lib/core/backdoor/runtime";
import type { NcBatchResult } from "../../../lib/core/backdoor/types";
import { rng, size, uniform } from "./grad-check";
import { rgbClassifier } from "./grad-models";

const FIXTURES = "test/fixtures/formats/onnx/torch";
const load = (name: string) => readOnnxModel(readFileSync(`${FIXTURES}/${name}`));
const K = 3;
const B = 4;

interface Params {
	x: Float32Array;
	maskRaw: Float32Array;
	patternRaw: Float32Array;
	target: BigInt64Array;
	cost: Float32Array;
}

function params(r: NcRunner, seed: number): Params {
	const ns = size(r.inputShape);
	const nm = size(r.maskShape);
	return {
		x: uniform(B * ns, seed, 0, 1),
		maskRaw: uniform(K * nm, seed + 1, -2, 2),
		patternRaw: uniform(K * ns, seed + 2, -2, 2),
		target: BigInt64Array.from({ length: K }, (_, k) => BigInt(k % r.numClasses)),
		cost: new Float32Array(K),
	};
}

const run = (r: NcRunner, p: Params): Promise<NcBatchResult> => r.run(p.x, p.maskRaw, p.patternRaw, p.target, p.cost);
const sum = (a: Float32Array) => a.reduce((s, v) => s + v, 0);

const MODELS = [
	{ name: "cnn.onnx", model: () => load("cnn.onnx"), maskShape: [1, 8, 8], classes: 3, lo: 0, hi: 1 },
	{ name: "mlp.onnx", model: () => load("mlp.onnx"), maskShape: [8], classes: 4, lo: 0, hi: 1 },
	{
		name: "an RGB BatchNorm/AveragePool/MatMul model",
		model: async () => rgbClassifier(),
		maskShape: [1, 6, 6],
		classes: 5,
		lo: -1,
		hi: 2,
	},
];

for (const spec of MODELS) {
	describe(`Neural Cleanse graph on ${spec.name} (K=${K}, B=${B})`, () => {
		let runner: NcRunner;
		let model: OnnxModel;
		beforeAll(async () => {
			model = await spec.model();
			runner = await NcRunner.create(model, {
				trials: K,
				batch: B,
				lo: spec.lo,
				hi: spec.hi,
				device: "cpu",
				threads: 1,
			});
		});
		afterAll(() => runner.dispose());

		it("has the documented shapes", () => {
			expect(runner.maskShape).toEqual(spec.maskShape);
			expect(runner.numClasses).toBe(spec.classes);
		});

		it("ce, l1 and acc equal a direct computation from the model's logits", async () => {
			const p = params(runner, 10);
			const out = await run(runner, p);
			const inf = await OnnxInferenceRunner.create(model, { device: "cpu", threads: 1 });
			const S = runner.inputShape;
			const ns = size(S);
			const nm = size(runner.maskShape);
			const C = runner.numClasses;
			const stamped = new Float32Array(K * B * ns);
			for (let k = 0; k < K; k++) {
				let l1 = 0;
				for (let j = 0; j < nm; j++) l1 += (Math.tanh(p.maskRaw[k * nm + j] as number) + 1) / 2;
				expect(out.l1[k]).toBeCloseTo(l1, 3);
				for (let b = 0; b < B; b++)
					for (let i = 0; i < ns; i++) {
						const m = (Math.tanh(p.maskRaw[k * nm + (i % nm)] as number) + 1) / 2;
						const pat = spec.lo + ((spec.hi - spec.lo) * (Math.tanh(p.patternRaw[k * ns + i] as number) + 1)) / 2;
						stamped[(k * B + b) * ns + i] = (1 - m) * (p.x[b * ns + i] as number) + m * pat;
					}
			}
			const logits = await inf.logits(stamped, K * B);
			await inf.dispose();
			for (let k = 0; k < K; k++) {
				let ce = 0;
				let hits = 0;
				const t = Number(p.target[k]);
				for (let b = 0; b < B; b++) {
					const row = Array.from(logits.subarray((k * B + b) * C, (k * B + b + 1) * C));
					const max = Math.max(...row);
					const lse = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
					ce += (lse - (row[t] as number)) / B;
					if (row.indexOf(max) === t) hits++;
				}
				expect(out.ce[k]).toBeCloseTo(ce, 4);
				expect(out.acc[k]).toBeCloseTo(hits / B, 6);
			}
		});

		it("the cross-entropy gradients match central finite differences of its own ce output", async () => {
			const p = params(runner, 20);
			const out = await run(runner, p);
			const eps = 3e-3;
			const analytic: number[] = [];
			const numeric: number[] = [];
			for (const [arr, grad] of [
				[p.maskRaw, out.gradMask],
				[p.patternRaw, out.gradPattern],
			] as const) {
				for (let i = 0; i < arr.length; i++) {
					const o = arr[i] as number;
					arr[i] = o + eps;
					const plus = sum((await run(runner, p)).ce);
					arr[i] = o - eps;
					const minus = sum((await run(runner, p)).ce);
					arr[i] = o;
					numeric.push((plus - minus) / (2 * eps));
					analytic.push(grad[i] as number);
				}
			}
			// Relu and MaxPool kinks make a few coordinates non-differentiable within ±eps;
			// everywhere else the difference is float32 noise
			const ok = analytic.filter((a, i) => Math.abs(a - (numeric[i] as number)) <= 2e-4 + 2e-2 * Math.abs(a));
			expect(ok.length / analytic.length).toBeGreaterThanOrEqual(0.97);
			let err = 0;
			let norm = 0;
			analytic.forEach((a, i) => {
				err += (a - (numeric[i] as number)) ** 2;
				norm += a * a;
			});
			expect(Math.sqrt(err / norm)).toBeLessThan(0.02);
			expect(norm).toBeGreaterThan(0);
		});

		it("the L1 term adds cost_k · d l1 / d mask_raw to the mask gradient only", async () => {
			const p = params(runner, 30);
			const free = await run(runner, p);
			p.cost = Float32Array.from([0.5, 0.01, 2]);
			const costly = await run(runner, p);
			const nm = size(runner.maskShape);
			for (let i = 0; i < K * nm; i++) {
				const k = Math.floor(i / nm);
				const t = Math.tanh(p.maskRaw[i] as number);
				const expected = (p.cost[k] as number) * 0.5 * (1 - t * t);
				expect((costly.gradMask[i] as number) - (free.gradMask[i] as number)).toBeCloseTo(expected, 5);
			}
			expect(costly.gradPattern).toEqual(free.gradPattern);
			expect(costly.ce).toEqual(free.ce);
		});

		it("trials are independent: changing trial 2 changes only trial 2's outputs", async () => {
			const p = params(runner, 40);
			const before = await run(runner, p);
			const ns = size(runner.inputShape);
			const nm = size(runner.maskShape);
			const r = rng(41);
			for (let i = 2 * nm; i < 3 * nm; i++) p.maskRaw[i] = r() * 4 - 2;
			for (let i = 2 * ns; i < 3 * ns; i++) p.patternRaw[i] = r() * 4 - 2;
			p.target[2] = 1n;
			p.cost[2] = 0.3;
			const after = await run(runner, p);
			const trial = (a: Float32Array, k: number, n: number) => Array.from(a.subarray(k * n, (k + 1) * n));
			for (const k of [0, 1]) {
				for (const key of ["ce", "l1", "acc"] as const)
					expect(trial(after[key], k, 1)[0]).toBeCloseTo(trial(before[key], k, 1)[0] as number, 6);
				trial(after.gradMask, k, nm).forEach((v, i) => {
					expect(v).toBeCloseTo(trial(before.gradMask, k, nm)[i] as number, 6);
				});
				trial(after.gradPattern, k, ns).forEach((v, i) => {
					expect(v).toBeCloseTo(trial(before.gradPattern, k, ns)[i] as number, 6);
				});
			}
			expect(trial(after.gradPattern, 2, ns)).not.toEqual(trial(before.gradPattern, 2, ns));
			expect(after.l1[2]).not.toBe(before.l1[2]);
		});

		it("refuses inputs of the wrong size and targets out of range with DATA_INVALID", async () => {
			const p = params(runner, 50);
			await expect(runner.run(p.x.subarray(1), p.maskRaw, p.patternRaw, p.target, p.cost)).rejects.toMatchObject({
				code: "DATA_INVALID",
			});
			p.target[0] = 99n;
			await expect(run(runner, p)).rejects.toMatchObject({ code: "DATA_INVALID" });
		});
	});
}

describe("inference graph", () => {
	it("exposes the logits before a trailing Softmax and the input of the last Gemm (mlp)", async () => {
		const model = await load("mlp.onnx");
		const g = await buildInferenceGraph(model, { penultimate: true }, probeShapes);
		expect(g.numClasses).toBe(4);
		expect(g.penultimateDim).toBe(16);
		const x = uniform(5 * 8, 60);
		const inf = await OnnxInferenceRunner.create(model, { device: "cpu", chunk: 2 });
		const logits = await inf.logits(x, 5);
		const pen = await inf.penultimate(x, 5);
		await inf.dispose();
		expect(pen.dim).toBe(16);
		expect(pen.data.length).toBe(5 * 16);
		expect(pen.data.every((v) => v >= 0)).toBe(true); // it is the Relu output
		const orig = await ort.InferenceSession.create(readFileSync(`${FIXTURES}/mlp.onnx`));
		for (let n = 0; n < 5; n++) {
			const probs = (await orig.run({ input: new ort.Tensor("float32", x.slice(n * 8, n * 8 + 8), [1, 8]) })).logits
				?.data as Float32Array;
			const row = Array.from(logits.subarray(n * 4, n * 4 + 4));
			const z = row.reduce((s, v) => s + Math.exp(v), 0);
			row.forEach((v, i) => {
				expect(Math.exp(v) / z).toBeCloseTo(probs[i] as number, 5);
			});
		}
	});

	it("looks through a bias Add to the MatMul input", async () => {
		const g = await buildInferenceGraph(rgbClassifier(), { penultimate: true }, probeShapes);
		expect(g.numClasses).toBe(5);
		expect(g.penultimateDim).toBe(36);
	});

	it("the NC graph describes its inputs and outputs", async () => {
		const g = await buildNeuralCleanseGraph(await load("cnn.onnx"), { trials: 2, batch: 5, lo: 0, hi: 1 }, probeShapes);
		expect(g.inputs).toEqual([
			{ name: "x", type: "float32", dims: [5, 1, 8, 8] },
			{ name: "mask_raw", type: "float32", dims: [2, 1, 8, 8] },
			{ name: "pattern_raw", type: "float32", dims: [2, 1, 8, 8] },
			{ name: "target", type: "int64", dims: [2] },
			{ name: "cost", type: "float32", dims: [2] },
		]);
		expect(g.outputs.map((o) => `${o.name}[${o.dims.join(",")}]`)).toEqual([
			"ce[2]",
			"l1[2]",
			"acc[2]",
			"grad_mask[2,1,8,8]",
			"grad_pattern[2,1,8,8]",
		]);
	});

	it("exposes the flattened pooled features of the cnn", async () => {
		const g = await buildInferenceGraph(await load("cnn.onnx"), { penultimate: true }, probeShapes);
		expect(g.inputShape).toEqual([1, 8, 8]);
		expect(g.numClasses).toBe(3);
		expect(g.penultimateDim).toBe(64);
	});
});

describe("probeShapes", () => {
	it("gives the shape of every tensor at the batch size asked", async () => {
		const model = await load("mlp.onnx");
		model.graph.inputs = [{ name: "input", elemType: 1, shape: ["N", 8] }];
		const shapes = await probeShapes(model, { input: { type: "float32", dims: [6, 8] } });
		expect(Object.fromEntries(shapes)).toEqual({
			input: [6, 8],
			"/net/net.0/Gemm_output_0": [6, 16],
			"/net/net.1/Relu_output_0": [6, 16],
			"/net/net.3/Gemm_output_0": [6, 4],
			logits: [6, 4],
		});
	});

	it("is MODEL_UNSUPPORTED when the model does not run at the shape asked", async () => {
		const model = await load("mlp.onnx");
		model.graph.inputs = [{ name: "input", elemType: 1, shape: ["N", null] }];
		await expect(probeShapes(model, { input: { type: "float32", dims: [6, 5] } })).rejects.toMatchObject({
			code: "MODEL_UNSUPPORTED",
			message: expect.stringContaining("does not run at the requested batch shape"),
		});
	});
});

describe("createSession", () => {
	it("falls back to CPU with one log line when the provider is unavailable, and says what ran", async () => {
		const bytes = readFileSync(`${FIXTURES}/mlp.onnx`);
		const lines: string[] = [];
		const s = await createSession(bytes, { device: "cuda", log: (l) => lines.push(l) });
		expect(lines.length).toBe(s.provider === "cpu" ? 1 : 0);
		if (s.provider === "cpu") expect(lines[0]).toMatch(/cuda .*running on cpu/);
		await s.session.release();
	});

	it("garbage is BACKEND_ERROR", async () => {
		await expect(createSession(Uint8Array.of(1, 2, 3), { device: "cpu" })).rejects.toMatchObject({
			code: "BACKEND_ERROR",
		});
	});
});

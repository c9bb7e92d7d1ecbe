/**
 * The graph builders on their own: shapes are given by a probe written here,
 * and onnxruntime cannot be loaded at all (the mock below throws), so these
 * tests fail if building a graph ever needs the runtime again. The graphs
 * running in onnxruntime are tested in runtime.test.ts.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it, vi } from "vitest";
import {
	buildInferenceGraph,
	buildNeuralCleanseGraph,
	type ProbeInput,
	type ShapeProbe,
} from "../../../lib/core/backdoor/nc-graph";
import { type OnnxGraph, type OnnxModel, readOnnxModel } from "../../../lib/core/backdoor/onnx-model";
import { FtguardError } from "../../../lib/core/errors";

vi.mock("onnxruntime-node", () => {
	throw new Error("graph building must not load onnxruntime");
});

const FIXTURES = "test/fixtures/formats/onnx/torch";
const load = (name: string) => readOnnxModel(readFileSync(`${FIXTURES}/${name}`));
const K = 3;
const B = 4;

/**
 * Shape inference for the few ops of the mlp fixture (Gemm with transB, Relu,
 * Flatten, Identity), in place of running the model: a probe that records its calls.
 */
function givenShapes(): ShapeProbe & { calls: Array<{ model: OnnxModel; inputs: Record<string, ProbeInput> }> } {
	const calls: Array<{ model: OnnxModel; inputs: Record<string, ProbeInput> }> = [];
	const probe = async (model: OnnxModel, inputs: Record<string, ProbeInput>) => {
		calls.push({ model, inputs });
		const shapes = new Map<string, number[]>(Object.entries(inputs).map(([name, i]) => [name, [...i.dims]]));
		const dims = new Map(model.graph.initializers.map((t) => [t.name, t.dims]));
		for (const n of model.graph.nodes) {
			const x = shapes.get(n.inputs[0] ?? "") as number[];
			let y: number[];
			if (n.opType === "Gemm") y = [x[0] as number, (dims.get(n.inputs[1] ?? "") as number[])[0] as number];
			else if (n.opType === "Flatten") y = [x[0] as number, x.slice(1).reduce((a, b) => a * b, 1)];
			else if (n.opType === "Relu" || n.opType === "Identity") y = [...x];
			else throw new Error(`no shape rule for ${n.opType}`);
			shapes.set(n.outputs[0] as string, y);
		}
		return shapes;
	};
	return Object.assign(probe, { calls });
}

const neverCalled: ShapeProbe = () => {
	throw new Error("the probe must not be reached");
};

/** Every node input is a graph input, an initializer or an earlier node's output; every graph output is produced. */
function expectClosed(g: OnnxGraph): void {
	const known = new Set(["", ...g.inputs.map((v) => v.name), ...g.initializers.map((t) => t.name)]);
	for (const n of g.nodes) {
		for (const i of n.inputs) expect(known, `${n.opType} "${n.name}" reads ${i}`).toContain(i);
		for (const o of n.outputs) known.add(o);
	}
	for (const o of g.outputs) expect(known).toContain(o.name);
}

describe("the Neural Cleanse graph from shapes given", () => {
	it("probes the classifier once at K×B and builds losses and input gradients from the shapes", async () => {
		const probe = givenShapes();
		const g = await buildNeuralCleanseGraph(await load("mlp.onnx"), { trials: K, batch: B, lo: 0, hi: 1 }, probe);
		expect(probe.calls).toHaveLength(1);
		const call = probe.calls[0];
		// the classifier as renamed, its trailing Softmax removed, at the batch of all trials
		expect(call?.inputs).toEqual({ "model/input": { type: "float32", dims: [K * B, 8] } });
		expect(call?.model.graph.nodes.map((n) => n.opType)).toEqual(["Gemm", "Relu", "Gemm"]);
		expect(call?.model.opsetImports).toEqual([{ domain: "", version: 17 }]);

		expect(g).toMatchObject({ trials: K, batch: B, inputShape: [8], maskShape: [8], numClasses: 4 });
		expect(g.inputs).toEqual([
			{ name: "x", type: "float32", dims: [B, 8] },
			{ name: "mask_raw", type: "float32", dims: [K, 8] },
			{ name: "pattern_raw", type: "float32", dims: [K, 8] },
			{ name: "target", type: "int64", dims: [K] },
			{ name: "cost", type: "float32", dims: [K] },
		]);
		expect(g.outputs.map((o) => `${o.name}[${o.dims.join(",")}]`)).toEqual([
			"ce[3]",
			"l1[3]",
			"acc[3]",
			"grad_mask[3,8]",
			"grad_pattern[3,8]",
		]);

		const written = await readOnnxModel(g.bytes);
		expect(written.producerName).toBe("ftguard");
		expect(written.opsetImports).toEqual([{ domain: "", version: 17 }]);
		expectClosed(written.graph);
		// the backward pass of the two Gemm layers is there: Gemm nodes beyond the model's own two
		expect(written.graph.nodes.filter((n) => n.opType === "Gemm").length).toBeGreaterThan(2);
		// the class count came from the probed logits shape: the one-hot depth is 4
		const oneHot = written.graph.nodes.find((n) => n.opType === "OneHot");
		const depth = written.graph.initializers.find((t) => t.name === oneHot?.inputs[1]);
		expect(depth?.data).toEqual(BigInt64Array.of(4n));
	});

	it("logits that are not [batch, classes] are MODEL_UNSUPPORTED", async () => {
		const probe = givenShapes();
		const flat: ShapeProbe = async (m, i) => {
			const shapes = await probe(m, i);
			shapes.set("model//net/net.3/Gemm_output_0", [K * B * 4]);
			return shapes;
		};
		await expect(
			buildNeuralCleanseGraph(await load("mlp.onnx"), { trials: K, batch: B, lo: 0, hi: 1 }, flat),
		).rejects.toMatchObject({ code: "MODEL_UNSUPPORTED", message: expect.stringContaining("[batch, classes]") });
	});
});

describe("the inference graph from shapes given", () => {
	it("takes the class count and the penultimate width from the shapes at batch 1", async () => {
		const probe = givenShapes();
		const g = await buildInferenceGraph(await load("mlp.onnx"), { penultimate: true }, probe);
		expect(probe.calls.map((c) => c.inputs)).toEqual([{ x: { type: "float32", dims: [1, 8] } }]);
		expect(g).toMatchObject({ inputShape: [8], numClasses: 4, penultimateDim: 16 });
		const written = await readOnnxModel(g.bytes);
		expect(written.graph.outputs.map((o) => o.name)).toEqual(["logits", "penultimate"]);
		expectClosed(written.graph);
	});

	it("is MODEL_UNSUPPORTED when no Gemm/MatMul feeds the logits", async () => {
		const model = await load("cnn.onnx");
		model.graph.nodes = model.graph.nodes.slice(0, 4);
		model.graph.outputs = [{ name: "/Flatten_output_0", elemType: 1, shape: null }];
		await expect(buildInferenceGraph(model, { penultimate: true }, neverCalled)).rejects.toMatchObject({
			code: "MODEL_UNSUPPORTED",
			message: expect.stringContaining("Gemm/MatMul"),
		});
	});
});

describe("refusals, before any shape is probed", () => {
	it("a model with an LSTM is MODEL_UNSUPPORTED naming the LSTM node", async () => {
		const model = await load("mlp.onnx");
		const relu = model.graph.nodes[1];
		if (relu === undefined) throw new Error("fixture changed");
		model.graph.nodes[1] = { ...relu, opType: "LSTM", name: "/rnn/LSTM" };
		const e = await buildNeuralCleanseGraph(model, { trials: K, batch: B, lo: 0, hi: 1 }, neverCalled).catch(
			(x: unknown) => x,
		);
		expect(e).toBeInstanceOf(FtguardError);
		expect(e).toMatchObject({ code: "MODEL_UNSUPPORTED", message: expect.stringContaining('LSTM node "/rnn/LSTM"') });
	});

	it("a custom-domain op is MODEL_UNSUPPORTED naming it, before onnxruntime sees it", async () => {
		const model = await load("cnn.onnx");
		const relu = model.graph.nodes[1];
		if (relu === undefined) throw new Error("fixture changed");
		model.graph.nodes[1] = { ...relu, domain: "com.example", opType: "FancyAct" };
		await expect(
			buildNeuralCleanseGraph(model, { trials: K, batch: B, lo: 0, hi: 1 }, neverCalled),
		).rejects.toMatchObject({
			code: "MODEL_UNSUPPORTED",
			message: expect.stringContaining("com.example:FancyAct"),
		});
	});

	it("an empty input range is DATA_INVALID", async () => {
		await expect(
			buildNeuralCleanseGraph(await load("mlp.onnx"), { trials: 1, batch: 1, lo: 1, hi: 1 }, neverCalled),
		).rejects.toMatchObject({ code: "DATA_INVALID" });
	});
});

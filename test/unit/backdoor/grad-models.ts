/**
 * Models written with the model writer, covering what the torch fixtures lack:
 * a small RGB classifier (three input channels, the mask shared across them;
 * BatchNormalization, AveragePool, a MatMul + Add last layer) and a one-layer
 * BERT-style encoder for the gradient checks.
 */
import type { OnnxAttribute, OnnxModel, OnnxNode, OnnxTensor } from "../../../lib/core/backdoor/onnx-model";
import { DataType } from "../../../lib/core/formats/onnx-wire";
import { f32, type GradCase, i64, node, size, uniform } from "./grad-check";

export function rgbClassifier(): OnnxModel {
	const ints = (name: string, value: number[]) => ({ name, type: "ints" as const, value });
	return {
		irVersion: 7,
		opsetImports: [{ domain: "", version: 13 }],
		producerName: "test",
		graph: {
			name: "rgb",
			nodes: [
				node("Conv", ["input", "w1", "b1"], ["c"], [ints("kernel_shape", [3, 3]), ints("pads", [1, 1, 1, 1])]),
				node("BatchNormalization", ["c", "scale", "shift", "mean", "var"], ["bn"]),
				node("Relu", ["bn"], ["r"]),
				node("AveragePool", ["r"], ["p"], [ints("kernel_shape", [2, 2]), ints("strides", [2, 2])]),
				node("Flatten", ["p"], ["f"]),
				node("MatMul", ["f", "w2"], ["mm"]),
				node("Add", ["mm", "b2"], ["z"]),
				node("Softmax", ["z"], ["probs"], [{ name: "axis", type: "int", value: 1 }]),
			],
			initializers: [
				f32("w1", [4, 3, 3, 3], uniform(108, 201, -0.5, 0.5)),
				f32("b1", [4], uniform(4, 202, -0.1, 0.1)),
				f32("scale", [4], uniform(4, 203, 0.5, 1.5)),
				f32("shift", [4], uniform(4, 204, -0.2, 0.2)),
				f32("mean", [4], uniform(4, 205, -0.1, 0.1)),
				f32("var", [4], uniform(4, 206, 0.5, 1.5)),
				f32("w2", [36, 5], uniform(180, 207, -1, 1)),
				f32("b2", [5], uniform(5, 208, -0.1, 0.1)),
			],
			inputs: [{ name: "input", elemType: DataType.FLOAT, shape: ["N", 3, 6, 6] }],
			outputs: [{ name: "probs", elemType: DataType.FLOAT, shape: ["N", 5] }],
		},
	};
}

/**
 * One BERT-style encoder layer as torch.onnx.export (torch 1.13) writes it, from
 * the word-embedding output to the logits: position embeddings looked up by a
 * Shape/Range chain, a mask built from an int64 attention_mask by Cast/Sub/Mul,
 * two-head attention, an Erf GELU feed-forward, a [CLS] Gather, a Tanh pooler and
 * a classifier. Opset 17 uses LayerNormalization; opset 14 the decomposed form
 * (ReduceMean, Sub, Pow, Add, Sqrt, Div, Mul, Add) that the exporter writes there.
 */
export function attentionBlock(opset: 14 | 17): GradCase {
	const [B, L, D, H, F, C] = [2, 4, 8, 2, 16, 3];
	let seed = 300;
	const initializers: OnnxTensor[] = [];
	const weight = (dims: number[], lo = -0.5, hi = 0.5) => {
		const name = `w${seed}`;
		initializers.push(f32(name, dims, uniform(size(dims), seed++, lo, hi)));
		return name;
	};
	const constant = (t: OnnxTensor) => {
		initializers.push(t);
		return t.name;
	};
	const scalarI64 = (name: string, v: number) =>
		constant({ name, dataType: DataType.INT64, dims: [], data: BigInt64Array.of(BigInt(v)) });
	const scalarF32 = (name: string, v: number) => constant(f32(name, [], Float32Array.of(v)));
	const nodes: OnnxNode[] = [];
	let k = 0;
	const op = (opType: string, inputs: string[], attrs: OnnxAttribute[] = []) => {
		const out = `${opType.toLowerCase()}_${k++}`;
		nodes.push(node(opType, inputs, [out], attrs));
		return out;
	};
	const int = (name: string, value: number): OnnxAttribute => ({ name, type: "int", value });
	const ints = (name: string, value: number[]): OnnxAttribute => ({ name, type: "ints", value });
	const float = (name: string, value: number): OnnxAttribute => ({ name, type: "float", value });
	const linear = (x: string, din: number, dout: number) =>
		op("Add", [op("MatMul", [x, weight([din, dout])]), weight([dout], -0.1, 0.1)]);
	const layerNorm = (x: string) => {
		const scale = weight([D], 0.5, 1.5);
		const bias = weight([D], -0.1, 0.1);
		if (opset === 17) return op("LayerNormalization", [x, scale, bias], [int("axis", -1), float("epsilon", 1e-12)]);
		const mean = (t: string) => op("ReduceMean", [t], [ints("axes", [-1])]);
		const centred = op("Sub", [x, mean(x)]);
		const variance = mean(op("Pow", [centred, scalarF32("two", 2)]));
		const std = op("Sqrt", [op("Add", [variance, scalarF32("eps", 1e-12)])]);
		return op("Add", [op("Mul", [op("Div", [centred, std]), scale]), bias]);
	};
	const heads = constant(i64("heads_shape", [0, 0, H, -1]));
	const toHeads = (x: string, perm: number[]) => op("Transpose", [op("Reshape", [x, heads])], [ints("perm", perm)]);

	// position ids 0..L-1 from the input's shape, looked up in a table that is not on the path
	const seqLen = op("Gather", [op("Shape", ["embeddings"]), scalarI64("one_i", 1)], [int("axis", 0)]);
	const positions = op("Range", [scalarI64("zero_i", 0), seqLen, scalarI64("one_i", 1)]);
	const posIds = op("Unsqueeze", [positions, constant(i64("axes0", [0]))]);
	const pos = op("Gather", [weight([6, D]), posIds], [int("axis", 0)]);
	const ln1 = layerNorm(op("Add", ["embeddings", pos]));

	const q = toHeads(linear(ln1, D, D), [0, 2, 1, 3]);
	const kT = toHeads(linear(ln1, D, D), [0, 2, 3, 1]);
	const v = toHeads(linear(ln1, D, D), [0, 2, 1, 3]);
	const scores = op("Div", [op("MatMul", [q, kT]), scalarF32("sqrt_dk", Math.sqrt(D / H))]);
	// (1 − mask) · finfo(float32).min, broadcast as (B, 1, 1, L)
	const mask4 = op("Cast", [op("Unsqueeze", ["attention_mask", constant(i64("axes12", [1, 2]))])], [int("to", 1)]);
	const additive = op("Mul", [op("Sub", [scalarF32("one_f", 1), mask4]), scalarF32("min_f", -3.4028234663852886e38)]);
	const probs = op("Softmax", [op("Add", [scores, additive])], [int("axis", -1)]);
	const context = op("Transpose", [op("MatMul", [probs, v])], [ints("perm", [0, 2, 1, 3])]);
	const merged = op("Reshape", [context, constant(i64("merged_shape", [0, 0, -1]))]);
	const ln2 = layerNorm(op("Add", [linear(merged, D, D), ln1]));

	const up = linear(ln2, D, F);
	const erf = op("Erf", [op("Div", [up, scalarF32("sqrt2", Math.SQRT2)])]);
	const gelu = op("Mul", [op("Mul", [up, op("Add", [erf, scalarF32("one_f", 1)])]), scalarF32("half", 0.5)]);
	const ln3 = layerNorm(op("Add", [linear(gelu, F, D), ln2]));

	const cls = op("Gather", [ln3, scalarI64("zero_i", 0)], [int("axis", 1)]);
	const pooled = op("Tanh", [op("Gemm", [cls, weight([D, D]), weight([D], -0.1, 0.1)], [int("transB", 1)])]);
	const logits = op("Gemm", [pooled, weight([C, D], -1, 1), weight([C], -0.1, 0.1)], [int("transB", 1)]);
	return {
		inputs: [{ name: "embeddings", dims: [B, L, D], data: uniform(B * L * D, 299) }],
		fixed: [
			{ name: "attention_mask", dims: [B, L], type: "int64", data: BigInt64Array.of(1n, 1n, 1n, 1n, 1n, 1n, 0n, 0n) },
		],
		// a constant named twice (one_i, one_f …) is registered once
		initializers: initializers.filter((t, i) => initializers.findIndex((u) => u.name === t.name) === i),
		nodes,
		output: logits,
		opset,
	};
}

import { describe, expect, it } from "vitest";
import { differentiate } from "../../../lib/core/backdoor/gradient";
import type { OnnxAttribute, OnnxNode } from "../../../lib/core/backdoor/onnx-model";
import { FtguardError } from "../../../lib/core/errors";
import { checkGradient, f32, type GradCase, i64, node, size, spread, uniform } from "./grad-check";
import { attentionBlock } from "./grad-models";

const int = (name: string, value: number): OnnxAttribute => ({ name, type: "int", value });
const float = (name: string, value: number): OnnxAttribute => ({ name, type: "float", value });
const ints = (name: string, value: number[]): OnnxAttribute => ({ name, type: "ints", value });
const str = (name: string, value: string): OnnxAttribute => ({ name, type: "string", value });

let seed = 1;
const inp = (name: string, dims: number[], kind: "smooth" | "spread" | "positive" = "smooth") => ({
	name,
	dims,
	data:
		kind === "spread"
			? spread(size(dims), seed++)
			: kind === "positive"
				? uniform(size(dims), seed++, 0.5, 2)
				: uniform(size(dims), seed++),
});
const op = (opType: string, inputs: string[], attrs: OnnxAttribute[] = []) => node(opType, inputs, ["y"], attrs);
const scalarI64 = (name: string, v: number) => ({ name, dataType: 7, dims: [], data: BigInt64Array.of(BigInt(v)) });
const scalarF32 = (name: string, v: number) => f32(name, [], Float32Array.of(v));

/** One single-op graph: y = op(inputs…), every input named in `wrt` differentiated. */
function single(
	opType: string,
	wrt: ReturnType<typeof inp>[],
	attrs: OnnxAttribute[] = [],
	extra: { initializers?: GradCase["initializers"]; constInputs?: string[]; opset?: number } = {},
): GradCase {
	return {
		inputs: wrt,
		nodes: [op(opType, [...wrt.map((w) => w.name), ...(extra.constInputs ?? [])], attrs)],
		initializers: extra.initializers ?? [],
		output: "y",
		...(extra.opset === undefined ? {} : { opset: extra.opset }),
	};
}

const cases: [string, () => GradCase][] = [
	["Add with broadcasting (both operands)", () => single("Add", [inp("a", [2, 3, 4]), inp("b", [3, 1])])],
	["Sub with broadcasting", () => single("Sub", [inp("a", [2, 3]), inp("b", [3])])],
	["Mul with broadcasting", () => single("Mul", [inp("a", [2, 3, 4]), inp("b", [1, 3, 1])])],
	["Div with broadcasting", () => single("Div", [inp("a", [2, 3]), inp("b", [2, 1], "positive")])],
	["Relu", () => single("Relu", [inp("x", [3, 5], "spread")])],
	["LeakyRelu alpha 0.2", () => single("LeakyRelu", [inp("x", [3, 5], "spread")], [float("alpha", 0.2)])],
	["Sigmoid", () => single("Sigmoid", [inp("x", [2, 5])])],
	["Tanh", () => single("Tanh", [inp("x", [2, 5])])],
	[
		"Clip with both bounds (ReLU6)",
		() =>
			single("Clip", [inp("x", [4, 5], "spread")], [], {
				initializers: [f32("lo", [], Float32Array.of(-0.2)), f32("hi", [], Float32Array.of(0.3))],
				constInputs: ["lo", "hi"],
			}),
	],
	[
		"Clip with only a lower bound",
		() =>
			single("Clip", [inp("x", [4, 5], "spread")], [], {
				initializers: [f32("lo", [], Float32Array.of(0.1))],
				constInputs: ["lo"],
			}),
	],
	["Erf", () => single("Erf", [inp("x", [2, 5])])],
	["Exp", () => single("Exp", [inp("x", [2, 5])])],
	["Log", () => single("Log", [inp("x", [2, 5], "positive")])],
	["Neg", () => single("Neg", [inp("x", [2, 5])])],
	["Sqrt", () => single("Sqrt", [inp("x", [2, 5], "positive")])],
	[
		"Gemm transB alpha beta (A and C)",
		() => ({
			inputs: [inp("a", [3, 4]), inp("c", [5])],
			initializers: [f32("w", [5, 4], uniform(20, 7))],
			nodes: [op("Gemm", ["a", "w", "c"], [float("alpha", 0.5), float("beta", 2), int("transB", 1)])],
			output: "y",
		}),
	],
	["Gemm (A and B, no transpose)", () => single("Gemm", [inp("a", [3, 4]), inp("b", [4, 2])])],
	[
		"Gemm transA transB (A and B)",
		() => single("Gemm", [inp("a", [4, 3]), inp("b", [2, 4])], [int("transA", 1), int("transB", 1)]),
	],
	["Gemm transA (A and B)", () => single("Gemm", [inp("a", [4, 3]), inp("b", [4, 2])], [int("transA", 1)])],
	["MatMul batched × matrix", () => single("MatMul", [inp("a", [2, 3, 4]), inp("b", [4, 5])])],
	["MatMul broadcast batch", () => single("MatMul", [inp("a", [2, 1, 3, 4]), inp("b", [3, 4, 2])])],
	[
		"Conv stride 2, pads, group 2",
		() =>
			single("Conv", [inp("x", [2, 4, 7, 7])], [ints("strides", [2, 2]), ints("pads", [1, 0, 1, 2]), int("group", 2)], {
				initializers: [f32("w", [6, 2, 3, 3], uniform(108, 11)), f32("bias", [6], uniform(6, 12))],
				constInputs: ["w", "bias"],
			}),
	],
	[
		"Conv auto_pad SAME_LOWER, stride 2",
		() =>
			single("Conv", [inp("x", [1, 2, 6, 5])], [str("auto_pad", "SAME_LOWER"), ints("strides", [2, 2])], {
				initializers: [f32("w", [3, 2, 3, 2], uniform(36, 13))],
				constInputs: ["w"],
			}),
	],
	[
		"Conv dilation 2, explicit pads",
		() =>
			single("Conv", [inp("x", [1, 2, 7, 6])], [ints("dilations", [2, 1]), ints("pads", [2, 1, 1, 0])], {
				initializers: [f32("w", [3, 2, 3, 2], uniform(36, 15))],
				constInputs: ["w"],
			}),
	],
	[
		// stride 1: the input gradient is emitted as a Conv with flipped, transposed weights
		"Conv stride 1, asymmetric pads and kernel, bias",
		() =>
			single("Conv", [inp("x", [2, 3, 6, 5])], [ints("pads", [1, 0, 2, 1])], {
				initializers: [f32("w", [4, 3, 3, 2], uniform(72, 16)), f32("bias", [4], uniform(4, 17))],
				constInputs: ["w", "bias"],
			}),
	],
	[
		"Conv stride 1, 1-D, no padding",
		() =>
			single("Conv", [inp("x", [2, 2, 7])], [], {
				initializers: [f32("w", [3, 2, 3], uniform(18, 18))],
				constInputs: ["w"],
			}),
	],
	[
		"Conv 1-D",
		() =>
			single("Conv", [inp("x", [2, 3, 9])], [ints("strides", [3]), ints("pads", [2, 1])], {
				initializers: [f32("w", [2, 3, 4], uniform(24, 14))],
				constInputs: ["w"],
			}),
	],
	[
		"MaxPool kernel 3 stride 2 pads 1 (overlapping windows)",
		() =>
			single(
				"MaxPool",
				[inp("x", [2, 2, 7, 7], "spread")],
				[ints("kernel_shape", [3, 3]), ints("strides", [2, 2]), ints("pads", [1, 1, 1, 1])],
			),
	],
	[
		"MaxPool ceil_mode, stride 1 × 2",
		() =>
			single(
				"MaxPool",
				[inp("x", [1, 2, 5, 6], "spread")],
				[ints("kernel_shape", [2, 3]), ints("strides", [1, 2]), int("ceil_mode", 1)],
			),
	],
	...[0, 1].map((cip): [string, () => GradCase] => [
		`AveragePool count_include_pad ${cip}`,
		() =>
			single(
				"AveragePool",
				[inp("x", [2, 2, 7, 6])],
				[
					ints("kernel_shape", [3, 3]),
					ints("strides", [2, 2]),
					ints("pads", [1, 1, 1, 0]),
					int("count_include_pad", cip),
				],
			),
	]),
	...[0, 1].map((cip): [string, () => GradCase] => [
		`AveragePool ceil_mode, count_include_pad ${cip}`,
		() =>
			single(
				"AveragePool",
				[inp("x", [1, 2, 6, 6])],
				[
					ints("kernel_shape", [3, 3]),
					ints("strides", [2, 2]),
					ints("pads", [1, 1, 1, 1]),
					int("ceil_mode", 1),
					int("count_include_pad", cip),
				],
			),
	]),
	[
		// windows that tile the input: the gradient is a broadcast, not a ConvTranspose
		"AveragePool tiling (kernel = stride, divisible input)",
		() => single("AveragePool", [inp("x", [2, 3, 6, 4])], [ints("kernel_shape", [3, 2]), ints("strides", [3, 2])]),
	],
	[
		"AveragePool tiling, 1-D",
		() => single("AveragePool", [inp("x", [2, 2, 8])], [ints("kernel_shape", [4]), ints("strides", [4])]),
	],
	["GlobalAveragePool", () => single("GlobalAveragePool", [inp("x", [2, 3, 4, 5])])],
	["Flatten axis 2", () => single("Flatten", [inp("x", [2, 3, 4])], [int("axis", 2)])],
	[
		"Reshape",
		() =>
			single("Reshape", [inp("x", [2, 3, 4])], [], { initializers: [i64("shape", [4, -1])], constInputs: ["shape"] }),
	],
	["Transpose", () => single("Transpose", [inp("x", [2, 3, 4])], [ints("perm", [1, 2, 0])])],
	["Concat axis 1", () => single("Concat", [inp("a", [2, 3, 2]), inp("b", [2, 1, 2])], [int("axis", 1)])],
	[
		"Pad (constant, asymmetric)",
		() =>
			single("Pad", [inp("x", [1, 2, 3, 3])], [], {
				initializers: [i64("pads", [0, 0, 1, 0, 0, 0, 2, 1])],
				constInputs: ["pads"],
			}),
	],
	[
		"Slice with negative start and clamped end",
		() =>
			single("Slice", [inp("x", [2, 5, 6])], [], {
				initializers: [i64("starts", [-4, 1]), i64("ends", [1000, 4]), i64("axes", [2, 1])],
				constInputs: ["starts", "ends", "axes"],
			}),
	],
	[
		"Squeeze",
		() => single("Squeeze", [inp("x", [2, 1, 3])], [], { initializers: [i64("axes", [1])], constInputs: ["axes"] }),
	],
	[
		"Unsqueeze",
		() => single("Unsqueeze", [inp("x", [2, 3])], [], { initializers: [i64("axes", [0, 2])], constInputs: ["axes"] }),
	],
	[
		"BatchNormalization (inference)",
		() =>
			single("BatchNormalization", [inp("x", [2, 3, 2, 2])], [float("epsilon", 1e-3)], {
				initializers: [
					f32("scale", [3], uniform(3, 21)),
					f32("bias", [3], uniform(3, 22)),
					f32("mean", [3], uniform(3, 23)),
					f32("var", [3], uniform(3, 24, 0.5, 2)),
				],
				constInputs: ["scale", "bias", "mean", "var"],
			}),
	],
	["Identity", () => single("Identity", [inp("x", [2, 3])])],
	["Dropout (inference)", () => single("Dropout", [inp("x", [2, 3])])],
	["Softmax axis 1", () => single("Softmax", [inp("x", [2, 3, 4])], [int("axis", 1)])],
	["Softmax axis -1 (default)", () => single("Softmax", [inp("x", [2, 3, 4])])],
	["LogSoftmax axis 0", () => single("LogSoftmax", [inp("x", [3, 4])], [int("axis", 0)])],
	[
		"ReduceSum axes input, keepdims 0",
		() =>
			single("ReduceSum", [inp("x", [2, 3, 4])], [int("keepdims", 0)], {
				initializers: [i64("axes", [0, 2])],
				constInputs: ["axes"],
			}),
	],
	["ReduceMean axes attribute (opset 17)", () => single("ReduceMean", [inp("x", [2, 3, 4])], [ints("axes", [1])])],
	[
		"ReduceMean axes input (opset 18), keepdims 0",
		() =>
			single("ReduceMean", [inp("x", [2, 3, 4])], [int("keepdims", 0)], {
				initializers: [i64("axes", [-1])],
				constInputs: ["axes"],
				opset: 18,
			}),
	],
	[
		"Shape/Gather/Unsqueeze/Concat chain feeding Reshape",
		() => ({
			inputs: [inp("x", [2, 3, 4])],
			initializers: [i64("zero", [0]), i64("minus1", [-1])],
			nodes: [
				node("Shape", ["x"], ["s"]),
				node("Gather", ["s", "zero"], ["n"], [int("axis", 0)]),
				node("Concat", ["n", "minus1"], ["target"], [int("axis", 0)]),
				node("Reshape", ["x", "target"], ["flat"]),
				node("Tanh", ["flat"], ["y"]),
			],
			output: "y",
		}),
	],
	[
		"Where (both branches, constant condition)",
		() => ({
			inputs: [inp("a", [2, 3]), inp("b", [3])],
			initializers: [{ name: "cond", dataType: 9, dims: [2, 3], data: Uint8Array.of(1, 0, 1, 0, 0, 1) }],
			nodes: [op("Where", ["cond", "a", "b"])],
			output: "y",
		}),
	],
	["Sum with broadcasting", () => single("Sum", [inp("a", [2, 3]), inp("b", [3]), inp("c", [2, 1])])],
	["Cast float to float", () => single("Cast", [inp("x", [2, 3])], [int("to", 1)])],
	[
		"A tensor used twice (gradients summed)",
		() => ({
			inputs: [inp("x", [2, 3])],
			nodes: [node("Tanh", ["x"], ["t"]), node("Mul", ["t", "x"], ["y"])],
			output: "y",
		}),
	],
	[
		"Gather axis 0, 2-D indices with a repeat and a negative index (data differentiated)",
		() => ({
			inputs: [inp("data", [5, 3])],
			initializers: [{ name: "idx", dataType: 7, dims: [2, 2], data: BigInt64Array.of(0n, 2n, 2n, -1n) }],
			nodes: [op("Gather", ["data", "idx"], [int("axis", 0)])],
			output: "y",
		}),
	],
	[
		"Gather axis 1, scalar index (the [CLS] token)",
		() =>
			single("Gather", [inp("h", [2, 4, 3])], [int("axis", 1)], {
				initializers: [scalarI64("zero", 0)],
				constInputs: ["zero"],
			}),
	],
	[
		"Gather axis 1, indices from an int64 input with a repeat and a negative index",
		() => ({
			inputs: [inp("data", [2, 4, 3])],
			fixed: [{ name: "idx", dims: [3], type: "int64", data: BigInt64Array.of(1n, -3n, 3n) }],
			nodes: [op("Gather", ["data", "idx"], [int("axis", 1)])],
			output: "y",
		}),
	],
	[
		"Gather from a position-embedding table (not on the path) added to the input",
		() => ({
			inputs: [inp("x", [2, 4, 3])],
			initializers: [f32("table", [6, 3], uniform(18, 31)), i64("pos", [0, 1, 2, 3])],
			nodes: [node("Gather", ["table", "pos"], ["p"], [int("axis", 0)]), op("Add", ["x", "p"])],
			output: "y",
		}),
	],
	[
		"LayerNormalization axis -1 (X, Scale and B)",
		() => single("LayerNormalization", [inp("x", [2, 3, 4]), inp("scale", [4]), inp("b", [4])]),
	],
	[
		"LayerNormalization axis -2 (two axes), broadcast Scale, Mean and InvStdDev outputs unused",
		() => ({
			inputs: [inp("x", [2, 3, 4]), inp("scale", [1, 4])],
			initializers: [f32("b", [3, 4], uniform(12, 32))],
			nodes: [
				node(
					"LayerNormalization",
					["x", "scale", "b"],
					["y", "mean", "inv_std"],
					[int("axis", -2), float("epsilon", 1e-3)],
				),
			],
			output: "y",
		}),
	],
	[
		"LayerNormalization axis 1 of a 4-D input, no B",
		() =>
			single("LayerNormalization", [inp("x", [2, 2, 3, 2])], [int("axis", 1)], {
				initializers: [f32("scale", [2, 3, 2], uniform(12, 33, 0.5, 1.5))],
				constInputs: ["scale"],
			}),
	],
	[
		"Pow, constant exponent 2",
		() => single("Pow", [inp("x", [2, 3])], [], { initializers: [scalarF32("p", 2)], constInputs: ["p"] }),
	],
	[
		"Pow, constant exponent tensor (broadcast)",
		() =>
			single("Pow", [inp("x", [2, 3], "positive")], [], {
				initializers: [f32("p", [3], Float32Array.of(0.5, 3, -1.5))],
				constInputs: ["p"],
			}),
	],
	[
		"Pow, int64 constant exponent 3",
		() => single("Pow", [inp("x", [2, 3])], [], { initializers: [scalarI64("p", 3)], constInputs: ["p"] }),
	],
	[
		"Pow, exponent from an input that is not differentiated",
		() => ({
			inputs: [inp("x", [2, 3], "positive")],
			fixed: [{ name: "p", dims: [2, 1], type: "float32", data: Float32Array.of(2.5, -0.5) }],
			nodes: [op("Pow", ["x", "p"])],
			output: "y",
		}),
	],
	[
		"Decomposed LayerNorm of opset 14 (ReduceMean, Sub, Pow, Add, Sqrt, Div, Mul, Add)",
		() => ({
			inputs: [inp("x", [2, 3, 4])],
			initializers: [
				scalarF32("two", 2),
				scalarF32("eps", 1e-5),
				f32("scale", [4], uniform(4, 34, 0.5, 1.5)),
				f32("bias", [4], uniform(4, 35)),
			],
			nodes: [
				node("ReduceMean", ["x"], ["mean"], [ints("axes", [-1])]),
				node("Sub", ["x", "mean"], ["centred"]),
				node("Pow", ["centred", "two"], ["sq"]),
				node("ReduceMean", ["sq"], ["var"], [ints("axes", [-1])]),
				node("Add", ["var", "eps"], ["var_eps"]),
				node("Sqrt", ["var_eps"], ["std"]),
				node("Div", ["centred", "std"], ["norm"]),
				node("Mul", ["norm", "scale"], ["scaled"]),
				op("Add", ["scaled", "bias"]),
			],
			output: "y",
			opset: 14,
		}),
	],
	[
		"MatMul of two differentiated 4-D tensors (q @ kᵀ)",
		() => single("MatMul", [inp("q", [2, 2, 3, 4]), inp("kt", [2, 2, 4, 3])]),
	],
	[
		"Reshape with 0 and -1 in the shape",
		() =>
			single("Reshape", [inp("x", [2, 3, 4])], [], {
				initializers: [i64("shape", [0, -1, 2])],
				constInputs: ["shape"],
			}),
	],
	[
		"Transpose to heads (perm 0 2 1 3)",
		() => single("Transpose", [inp("x", [2, 3, 2, 4])], [ints("perm", [0, 2, 1, 3])]),
	],
	[
		"Mul and Div by constant scalars",
		() => ({
			inputs: [inp("x", [2, 3])],
			initializers: [scalarF32("half", 0.5), scalarF32("sqrt_dk", 2)],
			nodes: [node("Mul", ["x", "half"], ["m"]), op("Div", ["m", "sqrt_dk"])],
			output: "y",
		}),
	],
	[
		// followed by the Softmax it feeds: scores near −1e4 alone have float32 steps coarser than the difference step
		"Add of an additive mask (not on the path) broadcast as (B, 1, 1, L), then Softmax",
		() => ({
			inputs: [inp("scores", [2, 2, 3, 4])],
			initializers: [f32("mask", [2, 1, 1, 4], Float32Array.of(0, 0, 0, -1e4, 0, 0, -1e4, -1e4))],
			nodes: [node("Add", ["scores", "mask"], ["masked"]), op("Softmax", ["masked"], [int("axis", -1)])],
			output: "y",
		}),
	],
	[
		"Where with a constant fill (masked_fill)",
		() => ({
			inputs: [inp("x", [2, 3])],
			initializers: [
				{ name: "cond", dataType: 9, dims: [2, 3], data: Uint8Array.of(0, 1, 0, 0, 0, 1) },
				scalarF32("fill", -1e4),
			],
			nodes: [op("Where", ["cond", "fill", "x"])],
			output: "y",
		}),
	],
	[
		"Expand to more axes",
		() => single("Expand", [inp("x", [3, 1])], [], { initializers: [i64("shape", [2, 3, 4])], constInputs: ["shape"] }),
	],
	[
		"Expand with a shape smaller than the input (bidirectional broadcast)",
		() => single("Expand", [inp("x", [1, 4])], [], { initializers: [i64("shape", [3, 1])], constInputs: ["shape"] }),
	],
	[
		"Slice with steps -2 and 2, negative starts, INT64_MIN end",
		() =>
			single("Slice", [inp("x", [2, 7, 5])], [], {
				initializers: [
					i64("starts", [-1, 1]),
					{ name: "ends", dataType: 7, dims: [2], data: BigInt64Array.of(-(2n ** 63n), 1000n) },
					i64("axes", [1, 2]),
					i64("steps", [-2, 2]),
				],
				constInputs: ["starts", "ends", "axes", "steps"],
			}),
	],
	[
		"Slice with step 3 on one axis and step 1 on another",
		() =>
			single("Slice", [inp("x", [3, 8])], [], {
				initializers: [i64("starts", [1, -7]), i64("ends", [3, 8]), i64("axes", [0, -1]), i64("steps", [1, 3])],
				constInputs: ["starts", "ends", "axes", "steps"],
			}),
	],
	[
		"GELU with Erf: x · 0.5 · (1 + erf(x / √2))",
		() => ({
			inputs: [inp("x", [2, 5])],
			initializers: [scalarF32("sqrt2", Math.SQRT2), scalarF32("one", 1), scalarF32("half", 0.5)],
			nodes: [
				node("Div", ["x", "sqrt2"], ["s"]),
				node("Erf", ["s"], ["e"]),
				node("Add", ["e", "one"], ["a"]),
				node("Mul", ["x", "a"], ["m"]),
				op("Mul", ["m", "half"]),
			],
			output: "y",
		}),
	],
	[
		"Split with a split input, one part without a gradient",
		() => ({
			inputs: [inp("x", [2, 6, 3])],
			initializers: [i64("split", [2, 3, 1]), scalarF32("three", 3)],
			nodes: [
				node("Split", ["x", "split"], ["a", "b", "c"], [int("axis", 1)]),
				node("Tanh", ["a"], ["ta"]),
				node("Mul", ["c", "three"], ["mc"]),
				op("Concat", ["ta", "mc"], [int("axis", 1)]),
			],
			output: "y",
		}),
	],
	[
		"Split into equal parts, only the second used (no gradient for output 0)",
		() => ({
			inputs: [inp("x", [4, 3])],
			nodes: [node("Split", ["x"], ["p0", "p1"]), op("Tanh", ["p1"])],
			output: "y",
		}),
	],
	[
		"Split at opset 18 (num_outputs), parts recombined",
		() => ({
			inputs: [inp("x", [2, 6])],
			nodes: [
				node("Split", ["x"], ["p0", "p1", "p2"], [int("axis", -1), int("num_outputs", 3)]),
				node("Mul", ["p0", "p1"], ["m"]),
				op("Concat", ["m", "p2", "p0"], [int("axis", 0)]),
			],
			output: "y",
			opset: 18,
		}),
	],
	[
		"Side chain of non-differentiable ops (Shape, Gather on a shape, Range, Equal, Not, ConstantOfShape, Cast to int and bool)",
		() => ({
			inputs: [inp("x", [2, 4], "spread")],
			initializers: [scalarI64("zero", 0), scalarI64("one", 1), scalarF32("zero_f", 0)],
			nodes: [
				node("Shape", ["x"], ["s"]),
				node("Gather", ["s", "one"], ["len"], [int("axis", 0)]),
				node("Range", ["zero", "len", "one"], ["pos"]),
				node("Cast", ["pos"], ["pos_f"], [int("to", 1)]),
				node("Equal", ["x", "zero_f"], ["is_zero"]),
				node("Not", ["is_zero"], ["keep"]),
				node("ConstantOfShape", ["s"], ["zeros"]),
				node("Where", ["keep", "x", "zeros"], ["kept"]),
				node("Add", ["kept", "pos_f"], ["shifted"]),
				node("Cast", ["x"], ["x_int"], [int("to", 7)]),
				node("Cast", ["x_int"], ["x_trunc"], [int("to", 1)]),
				node("Cast", ["x"], ["x_bool"], [int("to", 9)]),
				node("Cast", ["x_bool"], ["x_nonzero"], [int("to", 1)]),
				node("Add", ["shifted", "x_trunc"], ["t"]),
				node("Add", ["t", "x_nonzero"], ["u"]),
				op("Tanh", ["u"]),
			],
			output: "y",
		}),
	],
	["One BERT-style encoder layer, opset 17 (LayerNormalization)", () => attentionBlock(17)],
	["One BERT-style encoder layer, opset 14 (decomposed LayerNorm)", () => attentionBlock(14)],
];

describe("differentiate: analytic gradients match central finite differences", () => {
	for (const [name, make] of cases) {
		it(name, async () => {
			const { worst, analytic } = await checkGradient(make());
			expect(analytic.some((v) => v !== 0)).toBe(true);
			expect(worst).toBeLessThanOrEqual(1);
		});
	}
});

describe("differentiate: refusals", () => {
	const graph = (n: OnnxNode) => ({
		name: "g",
		nodes: [n],
		initializers: [],
		inputs: [{ name: "x", elemType: 1, shape: [1, 2, 3] }],
		outputs: [{ name: "y", elemType: 1, shape: null }],
	});
	const shapes = new Map([
		["x", [1, 2, 3]],
		["y", [1, 2, 4]],
	]);
	const attempt = (n: OnnxNode, opset = 17) => {
		try {
			differentiate(graph(n), { loss: "y", wrt: ["x"], shapes, opset });
		} catch (e) {
			return e;
		}
		return undefined;
	};

	it("an op without a rule is MODEL_UNSUPPORTED naming the op and the node", () => {
		const e = attempt({ ...node("LSTM", ["x", "w", "r"], ["y"]), name: "/rnn/LSTM" });
		expect(e).toBeInstanceOf(FtguardError);
		expect((e as FtguardError).code).toBe("MODEL_UNSUPPORTED");
		expect((e as FtguardError).message).toContain("LSTM");
		expect((e as FtguardError).message).toContain("/rnn/LSTM");
	});

	it("a cast to another float width on the path is refused, not a gradient silently stopped there", () => {
		for (const to of [10, 11, 16]) {
			const e = attempt({
				...node("Cast", ["x"], ["y"], [{ name: "to", type: "int", value: to }]),
				name: "/cast",
			});
			expect((e as FtguardError).code).toBe("MODEL_UNSUPPORTED");
			expect((e as FtguardError).message).toContain("not float32");
		}
	});

	it("a custom-domain op is MODEL_UNSUPPORTED naming its domain", () => {
		const e = attempt({ ...node("Relu", ["x"], ["y"]), domain: "com.example", name: "custom" });
		expect((e as FtguardError).code).toBe("MODEL_UNSUPPORTED");
		expect((e as FtguardError).message).toContain("com.example:Relu");
	});

	it("Conv weights on the differentiated path are refused, not silently ignored", () => {
		const e = attempt(node("Conv", ["w", "x"], ["y"]));
		expect((e as FtguardError).code).toBe("MODEL_UNSUPPORTED");
		expect((e as FtguardError).message).toContain("Conv");
	});

	it("Pow with the exponent on the differentiated path is refused", () => {
		const e = attempt(node("Pow", ["x", "x"], ["y"]));
		expect((e as FtguardError).code).toBe("MODEL_UNSUPPORTED");
		expect((e as FtguardError).message).toContain("exponent");
	});

	it("a gradient reaching an output its rule does not cover (LayerNormalization's Mean) is refused", () => {
		const n = node("LayerNormalization", ["x", "scale"], ["normed", "y"]);
		const e = (() => {
			try {
				differentiate(
					{ ...graph(n), initializers: [f32("scale", [3], Float32Array.of(1, 1, 1))] },
					{
						loss: "y",
						wrt: ["x"],
						shapes: new Map([
							["x", [1, 2, 3]],
							["normed", [1, 2, 3]],
							["y", [1, 2, 1]],
						]),
						opset: 17,
					},
				);
			} catch (err) {
				return err;
			}
			return undefined;
		})();
		expect((e as FtguardError).code).toBe("MODEL_UNSUPPORTED");
		expect((e as FtguardError).message).toContain("output 1");
	});

	it("opsets before 13 are refused", () => {
		expect((attempt(node("Relu", ["x"], ["y"]), 11) as FtguardError).code).toBe("MODEL_UNSUPPORTED");
	});
});

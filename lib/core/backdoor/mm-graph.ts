/**
 * The MM-BD graph (Wang, Xiang, Miller, Kesidis, S&P 2024): K trials, one input
 * each, through the classifier in one call; per trial the margin of its target
 * class and that margin's gradient with respect to the raw input.
 *
 * The input lives in the box [lo, hi] through the tanh parametrisation Neural
 * Cleanse uses for its pattern: x = lo + (hi − lo) · (tanh(x_raw) + 1) / 2, with
 * lo and hi graph inputs of the input's shape (a scalar box is a constant fill),
 * so one session serves any box.
 *
 * The margin logit_t − max_{j≠t} logit_j is written as Σ_j logits_j · w_j with
 * w = onehot(t) − onehot(runner-up), the runner-up found by ArgMax over the logits
 * with the target's entry set to −∞. ArgMax and OneHot carry no gradient, so the
 * gradient emitter (gradient.ts) differentiates only the Mul and ReduceSum: the
 * subgradient of the max at its argmax, exactly what a ReduceMax rule would give,
 * with no new rule needed.
 */
import { FtguardError } from "../errors";
import { DataType } from "../formats/onnx-wire";
import { differentiablePath, differentiate, GRADIENT_OPSET } from "./gradient";
import {
	Builder,
	floatInput,
	gradientModel,
	MODEL_PREFIX,
	prepareClassifier,
	type ShapeProbe,
	type TensorSpec,
	takenNames,
	tensorSpec,
} from "./nc-graph";
import { attrInt } from "./node-attributes";
import { type OnnxGraph, type OnnxModel, writeOnnxModel } from "./onnx-model";

export interface MmGraph {
	bytes: Uint8Array;
	inputs: TensorSpec[];
	outputs: TensorSpec[];
	trials: number;
	inputShape: number[];
	numClasses: number;
}

/**
 * The max-margin step graph for `trials` = K: inputs x_raw [K, …S], target int64
 * [K], lo […S], hi […S]; outputs margin [K] (logit_target − max over the other
 * classes, at x) and grad [K, …S] = d margin / d x_raw (the ascent direction).
 */
export async function buildMaxMarginGraph(
	model: OnnxModel,
	opts: { trials: number },
	probeShapes: ShapeProbe,
): Promise<MmGraph> {
	const K = opts.trials;
	if (!Number.isInteger(K) || K < 1) throw new FtguardError("DATA_INVALID", `trials (${K}) must be a positive integer`);
	const c = prepareClassifier(model);
	differentiablePath({ ...c.graph, inputs: [floatInput(c.input, [])] }, [c.input]);
	const S = c.inputShape;

	const modelShapes = await probeShapes(gradientModel(c, { ...c.graph, inputs: [floatInput(c.input, [K, ...S])] }), {
		[c.input]: { type: "float32", dims: [K, ...S] },
	});
	const logitsShape = modelShapes.get(c.logits);
	if (logitsShape === undefined || logitsShape.length !== 2 || logitsShape[0] !== K)
		throw new FtguardError(
			"MODEL_UNSUPPORTED",
			`the model's logits ${c.logits.slice(MODEL_PREFIX.length)} have shape [${(logitsShape ?? []).join(", ")}]; [batch, classes] is expected`,
		);
	const C = logitsShape[1] as number;
	if (C < 2) throw new FtguardError("MODEL_UNSUPPORTED", `the model has ${C} output class; a margin needs two`);

	const b = new Builder(takenNames(c.graph));
	const e = b.e;
	for (const [name, s] of [
		["x_raw", [K, ...S]],
		["lo", S],
		["hi", S],
	] as const)
		b.shapes.set(name, [...s]);

	const unit = b.op(
		"Mul",
		[b.op("Add", [b.op("Tanh", ["x_raw"], [K, ...S]), e.f32(1)], [K, ...S]), e.f32(0.5)],
		[K, ...S],
	);
	const span = b.op("Sub", ["hi", "lo"], S);
	e.nodes.push({
		opType: "Add",
		domain: "",
		name: c.input,
		inputs: [b.op("Mul", [unit, span], [K, ...S]), "lo"],
		outputs: [c.input],
		attributes: [],
	});
	b.shapes.set(c.input, [K, ...S]);
	const pre = [...e.nodes];
	e.nodes.length = 0;

	const oneHot = b.op(
		"OneHot",
		["target", e.i64([C]), e.tensor(DataType.FLOAT, [2], Float32Array.of(0, 1))],
		[K, C],
		[attrInt("axis", -1)],
	);
	const isTarget = b.op("Cast", [oneHot], [K, C], [attrInt("to", DataType.BOOL)]);
	const others = b.op("Where", [isTarget, e.f32(Number.NEGATIVE_INFINITY), c.logits], [K, C]);
	const runnerUp = b.op("ArgMax", [others], [K], [attrInt("axis", 1), attrInt("keepdims", 0)]);
	const runnerUpHot = b.op(
		"OneHot",
		[runnerUp, e.i64([C]), e.tensor(DataType.FLOAT, [2], Float32Array.of(0, 1))],
		[K, C],
		[attrInt("axis", -1)],
	);
	const w = b.op("Sub", [oneHot, runnerUpHot], [K, C]);
	const margin = b.op("ReduceSum", [b.op("Mul", [c.logits, w], [K, C]), e.i64([1])], [K], [attrInt("keepdims", 0)]);
	const post = [...e.nodes];

	const forward: OnnxGraph = {
		name: "max_margin",
		nodes: [...pre, ...c.graph.nodes, ...post],
		initializers: [...c.graph.initializers, ...e.initializers],
		inputs: [
			floatInput("x_raw", [K, ...S]),
			{ name: "target", elemType: DataType.INT64, shape: [K] },
			floatInput("lo", S),
			floatInput("hi", S),
		],
		outputs: [],
	};
	const shapes = new Map([...modelShapes, ...b.shapes]);
	const { graph, grads } = differentiate(forward, {
		loss: margin,
		wrt: ["x_raw"],
		shapes,
		opset: Math.max(c.opset, GRADIENT_OPSET),
	});
	const tail = new Builder(new Set());
	tail.alias(margin, "margin");
	tail.alias(grads.get("x_raw") as string, "grad");
	graph.nodes = [...graph.nodes, ...tail.e.nodes];
	graph.outputs = [floatInput("margin", [K]), floatInput("grad", [K, ...S])];
	return {
		bytes: writeOnnxModel(gradientModel(c, graph)),
		inputs: graph.inputs.map(tensorSpec),
		outputs: graph.outputs.map(tensorSpec),
		trials: K,
		inputShape: [...S],
		numClasses: C,
	};
}

/**
 * The graphs the backdoor detectors run: the Neural Cleanse step (all K trials
 * × B inputs through the model in one call, losses and input gradients out) and
 * plain inference with the penultimate activations exposed.
 *
 * The classifier's own tensors are renamed under "model/" so that the fixed
 * names of the outer graph (x, mask_raw, ce, …) can never collide with them.
 *
 * Static shapes come from a ShapeProbe the caller passes (runtime.ts runs the
 * model in onnxruntime for them), so building a graph needs no runtime itself.
 */
import { FtguardError } from "../errors";
import { DataType } from "../formats/onnx-wire";
import { differentiablePath, differentiate, GRADIENT_OPSET } from "./gradient";
import { Emitter } from "./graph-emitter";
import { attrInt } from "./node-attributes";
import {
	defaultOpset,
	type OnnxGraph,
	type OnnxModel,
	type OnnxNode,
	type OnnxValueInfo,
	writeOnnxModel,
} from "./onnx-model";

export interface NcGraphOptions {
	trials: number;
	batch: number;
	/** Input range of the reference data: the pattern lives in [lo, hi]. */
	lo: number;
	hi: number;
	/**
	 * Each trial stamps its own inputs: x is [K, B, …S] instead of [B, …S] shared by all
	 * trials (the source-specific pair search: trial (s, t) stamps only inputs of class s).
	 */
	perTrialInputs?: boolean;
}

/** A graph input or output: name, element type and static dimensions. */
export interface TensorSpec {
	name: string;
	type: "float32" | "int64";
	dims: number[];
}

export const tensorSpec = (v: OnnxValueInfo): TensorSpec => ({
	name: v.name,
	type: v.elemType === DataType.INT64 ? "int64" : "float32",
	dims: (v.shape ?? []) as number[],
});

export interface NcGraph {
	bytes: Uint8Array;
	perTrialInputs: boolean;
	inputs: TensorSpec[];
	outputs: TensorSpec[];
	trials: number;
	batch: number;
	inputShape: number[];
	maskShape: number[];
	numClasses: number;
}

export interface InferenceGraph {
	bytes: Uint8Array;
	inputShape: number[];
	numClasses: number;
	/** Width of the `penultimate` output (0 when not requested). */
	penultimateDim: number;
}

/** A graph input the probe feeds (zeros of this type and shape). */
export interface ProbeInput {
	type: "float32" | "int64";
	dims: readonly number[];
}

/**
 * The concrete shapes of `model`'s tensors (its inputs and node outputs) when it
 * runs on `inputs`: exact at the batch size the built graph will run with. A
 * model that cannot run so is MODEL_UNSUPPORTED.
 */
export type ShapeProbe = (model: OnnxModel, inputs: Record<string, ProbeInput>) => Promise<Map<string, number[]>>;

export const MODEL_PREFIX = "model/";

/** A classifier renamed under MODEL_PREFIX, its logits tensor found and a trailing Softmax removed. */
export interface RenamedClassifier {
	graph: OnnxGraph;
	/** The model's data inputs (not initializers), renamed. */
	dataInputs: OnnxValueInfo[];
	logits: string;
	opset: number;
	irVersion: number;
	opsetImports: OnnxModel["opsetImports"];
}

/** The image classifier: a single float data input with fixed non-batch dimensions. */
export interface Classifier extends RenamedClassifier {
	input: string;
	inputShape: number[];
}

export const renamed = (n: string) => (n === "" ? n : MODEL_PREFIX + n);

export function renameClassifier(model: OnnxModel): RenamedClassifier {
	const opset = defaultOpset(model);
	if (opset < 13)
		throw new FtguardError(
			"MODEL_UNSUPPORTED",
			`ONNX opset ${opset} is older than 13; re-export the model with opset_version >= 13`,
		);
	const rename = renamed;
	const g = model.graph;
	const initNames = new Set(g.initializers.map((t) => t.name));
	const out = g.outputs[0];
	if (out === undefined) throw new FtguardError("MODEL_MALFORMED", "ONNX model: no outputs");
	let nodes: OnnxNode[] = g.nodes.map((n) => ({ ...n, inputs: n.inputs.map(rename), outputs: n.outputs.map(rename) }));
	let logits = rename(out.name);
	const last = nodes.find((n) => n.outputs.includes(logits));
	const usedElsewhere = nodes.some((n) => n.inputs.includes(logits));
	if (last !== undefined && last.opType === "Softmax" && last.domain === "" && !usedElsewhere) {
		// a probability output: the loss needs the logits (log of a softmax is not stable)
		logits = last.inputs[0] as string;
		nodes = nodes.filter((n) => n !== last);
	}
	return {
		graph: {
			name: g.name,
			nodes,
			initializers: g.initializers.map((t) => ({ ...t, name: rename(t.name) })),
			inputs: [],
			outputs: [],
		},
		dataInputs: g.inputs.filter((v) => !initNames.has(v.name)).map((v) => ({ ...v, name: rename(v.name) })),
		logits,
		opset,
		irVersion: model.irVersion,
		opsetImports: model.opsetImports,
	};
}

export function prepareClassifier(model: OnnxModel): Classifier {
	const r = renameClassifier(model);
	const dataInputs = r.dataInputs;
	const inputInfo = dataInputs[0];
	if (dataInputs.length !== 1 || inputInfo === undefined)
		throw new FtguardError("MODEL_UNSUPPORTED", `the model has ${dataInputs.length} data inputs; one is expected`);
	const name = inputInfo.name.slice(MODEL_PREFIX.length);
	if (inputInfo.elemType !== DataType.FLOAT)
		throw new FtguardError("MODEL_UNSUPPORTED", `model input ${name} is not float32`);
	const dims = inputInfo.shape?.slice(1) ?? [];
	if (inputInfo.shape === null || inputInfo.shape.length < 2 || dims.some((d) => typeof d !== "number" || d <= 0))
		throw new FtguardError(
			"MODEL_UNSUPPORTED",
			`model input ${name} needs a batch axis and fixed other dimensions (got [${(inputInfo.shape ?? []).join(", ")}])`,
		);
	return { ...r, input: inputInfo.name, inputShape: dims as number[] };
}

/** Opset imports with the default domain raised to what the gradient ops need; IR 8 is the first to allow opset 17. */
export function gradientModel(c: RenamedClassifier, graph: OnnxGraph): OnnxModel {
	const version = Math.max(c.opset, GRADIENT_OPSET);
	const others = c.opsetImports.filter((o) => o.domain !== "" && o.domain !== "ai.onnx");
	return {
		irVersion: Math.max(c.irVersion, 8),
		opsetImports: [{ domain: "", version }, ...others],
		producerName: "ftguard",
		graph,
	};
}

/** Emits nodes and records the static shape of each result. */
export class Builder {
	readonly shapes = new Map<string, number[]>();
	readonly e: Emitter;
	constructor(taken: Set<string>) {
		this.e = new Emitter(taken, "nc/");
	}
	op(opType: string, inputs: string[], shape: number[], attrs: Parameters<Emitter["op1"]>[2] = []): string {
		const name = this.e.op1(opType, inputs, attrs);
		this.shapes.set(name, shape);
		return name;
	}
	/** Copies `from` into a fixed graph-level name. */
	alias(from: string, to: string): void {
		this.e.nodes.push({ opType: "Identity", domain: "", name: to, inputs: [from], outputs: [to], attributes: [] });
	}
}

export function takenNames(g: OnnxGraph): Set<string> {
	return new Set([...g.initializers.map((t) => t.name), ...g.nodes.flatMap((n) => [...n.inputs, ...n.outputs])]);
}

export const floatInput = (name: string, shape: number[]) => ({ name, elemType: DataType.FLOAT, shape });

/**
 * The Neural Cleanse graph for `trials` × `batch`: inputs x [B, …S] ([K, B, …S] with perTrialInputs), mask_raw
 * [K, …M], pattern_raw [K, …S], target int64 [K], cost [K]; outputs ce, l1, acc
 * [K], grad_mask [K, …M], grad_pattern [K, …S] (see types.ts NcBatchResult).
 */
export async function buildNeuralCleanseGraph(
	model: OnnxModel,
	opts: NcGraphOptions,
	probeShapes: ShapeProbe,
): Promise<NcGraph> {
	const { trials: K, batch: B, lo, hi } = opts;
	if (!Number.isInteger(K) || !Number.isInteger(B) || K < 1 || B < 1)
		throw new FtguardError("DATA_INVALID", `trials (${K}) and batch (${B}) must be positive integers`);
	if (!Number.isFinite(lo) || !Number.isFinite(hi) || !(hi > lo))
		throw new FtguardError("DATA_INVALID", `input range [${lo}, ${hi}] is empty or not finite`);
	const c = prepareClassifier(model);
	// refuse an op we cannot differentiate before onnxruntime gets a chance to fail on it less clearly
	differentiablePath({ ...c.graph, inputs: [floatInput(c.input, [])] }, [c.input]);
	const S = c.inputShape;
	const M = S.length === 3 ? [1, S[1] as number, S[2] as number] : [...S];
	const N = K * B;
	const xShape = opts.perTrialInputs ? [K, B, ...S] : [B, ...S];

	const modelShapes = await probeShapes(gradientModel(c, { ...c.graph, inputs: [floatInput(c.input, [N, ...S])] }), {
		[c.input]: { type: "float32", dims: [N, ...S] },
	});
	const logitsShape = modelShapes.get(c.logits);
	if (logitsShape === undefined || logitsShape.length !== 2 || logitsShape[0] !== N)
		throw new FtguardError(
			"MODEL_UNSUPPORTED",
			`the model's logits ${c.logits.slice(MODEL_PREFIX.length)} have shape [${(logitsShape ?? []).join(", ")}]; [batch, classes] is expected`,
		);
	const C = logitsShape[1] as number;

	const b = new Builder(takenNames(c.graph));
	const e = b.e;
	for (const [name, s] of [
		["x", xShape],
		["mask_raw", [K, ...M]],
		["pattern_raw", [K, ...S]],
		["cost", [K]],
	] as const)
		b.shapes.set(name, [...s]);

	const unit = (raw: string, shape: number[]) =>
		b.op("Mul", [b.op("Add", [b.op("Tanh", [raw], shape), e.f32(1)], shape), e.f32(0.5)], shape);
	const mask = unit("mask_raw", [K, ...M]);
	const pattern = b.op(
		"Add",
		[b.op("Mul", [unit("pattern_raw", [K, ...S]), e.f32(hi - lo)], [K, ...S]), e.f32(lo)],
		[K, ...S],
	);
	const m5 = b.op("Unsqueeze", [mask, e.i64([1])], [K, 1, ...M]);
	const p5 = b.op("Unsqueeze", [pattern, e.i64([1])], [K, 1, ...S]);
	const x5 = opts.perTrialInputs ? "x" : b.op("Unsqueeze", ["x", e.i64([0])], [1, B, ...S]);
	const diff = b.op("Sub", [p5, x5], [K, B, ...S]);
	const stamped = b.op("Add", [x5, b.op("Mul", [m5, diff], [K, B, ...S])], [K, B, ...S]);
	e.nodes.push({
		opType: "Reshape",
		domain: "",
		name: c.input,
		inputs: [stamped, e.i64([N, ...S])],
		outputs: [c.input],
		attributes: [],
	});
	const pre = [...e.nodes];
	e.nodes.length = 0;

	const { ce, acc } = targetLoss(b, c.logits, K, B, C);
	const l1 = b.op("ReduceSum", [mask, e.i64(M.map((_, i) => i + 1))], [K], [attrInt("keepdims", 0)]);
	const loss = b.op("Add", [ce, b.op("Mul", ["cost", l1], [K])], [K]);
	const post = [...e.nodes];

	const forward: OnnxGraph = {
		name: "neural_cleanse",
		nodes: [...pre, ...c.graph.nodes, ...post],
		initializers: [...c.graph.initializers, ...e.initializers],
		inputs: [
			floatInput("x", xShape),
			floatInput("mask_raw", [K, ...M]),
			floatInput("pattern_raw", [K, ...S]),
			{ name: "target", elemType: DataType.INT64, shape: [K] },
			floatInput("cost", [K]),
		],
		outputs: [],
	};
	const shapes = new Map([...modelShapes, ...b.shapes]);
	const { graph, grads } = differentiate(forward, {
		loss,
		wrt: ["mask_raw", "pattern_raw"],
		shapes,
		opset: Math.max(c.opset, GRADIENT_OPSET),
	});
	const tail = new Builder(new Set());
	tail.alias(ce, "ce");
	tail.alias(l1, "l1");
	tail.alias(acc, "acc");
	tail.alias(grads.get("mask_raw") as string, "grad_mask");
	tail.alias(grads.get("pattern_raw") as string, "grad_pattern");
	graph.nodes = [...graph.nodes, ...tail.e.nodes];
	graph.outputs = [
		floatInput("ce", [K]),
		floatInput("l1", [K]),
		floatInput("acc", [K]),
		floatInput("grad_mask", [K, ...M]),
		floatInput("grad_pattern", [K, ...S]),
	];
	return {
		bytes: writeOnnxModel(gradientModel(c, graph)),
		perTrialInputs: opts.perTrialInputs === true,
		inputs: graph.inputs.map(tensorSpec),
		outputs: graph.outputs.map(tensorSpec),
		trials: K,
		batch: B,
		inputShape: [...S],
		maskShape: M,
		numClasses: C,
	};
}

/**
 * The loss tail both inversion graphs share: `logits` [K·B, C] read as K trials of B inputs; per trial the mean
 * cross-entropy against its `target` (an int64 graph input [K]) and the fraction of its inputs classified as it.
 */
export function targetLoss(b: Builder, logits: string, K: number, B: number, C: number): { ce: string; acc: string } {
	const e = b.e;
	const logits3 = b.op("Reshape", [logits, e.i64([K, B, C])], [K, B, C]);
	const logp = b.op("LogSoftmax", [logits3], [K, B, C], [attrInt("axis", 2)]);
	const oneHot = b.op(
		"OneHot",
		["target", e.i64([C]), e.tensor(DataType.FLOAT, [2], Float32Array.of(0, 1))],
		[K, C],
		[attrInt("axis", -1)],
	);
	const picked = b.op("Mul", [logp, b.op("Unsqueeze", [oneHot, e.i64([1])], [K, 1, C])], [K, B, C]);
	const ceSum = b.op("ReduceSum", [picked, e.i64([1, 2])], [K], [attrInt("keepdims", 0)]);
	const ce = b.op("Mul", [ceSum, e.f32(-1 / B)], [K]);
	const hits = b.op(
		"Equal",
		[
			b.op("ArgMax", [logits3], [K, B], [attrInt("axis", 2), attrInt("keepdims", 0)]),
			b.op("Unsqueeze", ["target", e.i64([1])], [K, 1]),
		],
		[K, B],
	);
	const hitSum = b.op(
		"ReduceSum",
		[b.op("Cast", [hits], [K, B], [attrInt("to", DataType.FLOAT)]), e.i64([1])],
		[K],
		[attrInt("keepdims", 0)],
	);
	return { ce, acc: b.op("Mul", [hitSum, e.f32(1 / B)], [K]) };
}

/** Ops that carry the last linear layer's output unchanged in meaning to the logits. */
const PASS_THROUGH = new Set(["Identity", "Dropout", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Cast"]);

/** The input of the last Gemm / MatMul on the way to the logits (bias Adds and reshapes are looked through). */
function findPenultimate(c: Classifier): string {
	const producer = new Map<string, OnnxNode>();
	for (const n of c.graph.nodes) for (const o of n.outputs) producer.set(o, n);
	const constant = new Set(c.graph.initializers.map((t) => t.name));
	for (const n of c.graph.nodes) if (n.opType === "Constant") for (const o of n.outputs) constant.add(o);
	let t = c.logits;
	for (;;) {
		const n = producer.get(t);
		if (n === undefined) break;
		if (n.opType === "Gemm" || n.opType === "MatMul") return n.inputs[0] as string;
		if (PASS_THROUGH.has(n.opType)) t = n.inputs[0] as string;
		else if ((n.opType === "Add" || n.opType === "Sub") && n.inputs.filter((i) => !constant.has(i)).length === 1)
			t = n.inputs.find((i) => !constant.has(i)) as string;
		else
			throw new FtguardError(
				"MODEL_UNSUPPORTED",
				`no Gemm/MatMul layer produces the logits (found ${n.opType} node "${n.name}" first)`,
			);
	}
	throw new FtguardError("MODEL_UNSUPPORTED", "no Gemm/MatMul layer produces the logits");
}

/** The classifier with input `x` [N, …S] and outputs `logits` [N, C] and, when asked, `penultimate` [N, D]. */
export async function buildInferenceGraph(
	model: OnnxModel,
	opts: { penultimate: boolean },
	probeShapes: ShapeProbe,
): Promise<InferenceGraph> {
	const c = prepareClassifier(model);
	const S = c.inputShape;
	const b = new Builder(takenNames(c.graph));
	b.e.nodes.push({ opType: "Identity", domain: "", name: c.input, inputs: ["x"], outputs: [c.input], attributes: [] });
	b.alias(c.logits, "logits");
	const outputs = [{ name: "logits", elemType: DataType.FLOAT, shape: ["N", null] }];
	if (opts.penultimate) {
		const flat = b.op("Flatten", [findPenultimate(c)], [], [attrInt("axis", 1)]);
		b.alias(flat, "penultimate");
		outputs.push({ name: "penultimate", elemType: DataType.FLOAT, shape: ["N", null] });
	}
	const graph: OnnxGraph = {
		name: "inference",
		nodes: [b.e.nodes[0] as OnnxNode, ...c.graph.nodes, ...b.e.nodes.slice(1)],
		initializers: c.graph.initializers,
		inputs: [{ name: "x", elemType: DataType.FLOAT, shape: ["N", ...S] }],
		outputs,
	};
	const om: OnnxModel = { irVersion: c.irVersion, opsetImports: c.opsetImports, producerName: "ftguard", graph };
	const shapes = await probeShapes(om, { x: { type: "float32", dims: [1, ...S] } });
	const logitsShape = shapes.get("logits") ?? [];
	if (logitsShape.length !== 2)
		throw new FtguardError(
			"MODEL_UNSUPPORTED",
			`the model's logits have shape [${logitsShape.join(", ")}]; [batch, classes] is expected`,
		);
	return {
		bytes: writeOnnxModel(om),
		inputShape: [...S],
		numClasses: logitsShape[1] as number,
		penultimateDim: opts.penultimate ? ((shapes.get("penultimate") ?? [])[1] ?? 0) : 0,
	};
}

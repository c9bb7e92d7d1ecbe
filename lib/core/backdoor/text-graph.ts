/**
 * The trigger-inversion graph for text classifiers (a transformer encoder taking token ids). A trigger cannot be a
 * gradient w.r.t. token ids, so the model is cut at its word-embedding lookup (the Gather of the embedding table by
 * `input_ids`) and the trigger is written into that lookup's output:
 *
 *   emb = Gather(E, input_ids) ⊙ keep + place @ trigger
 *
 * `place` [K, B, L, T] says where each of the T trigger vectors goes in each sequence (the host picks the insertion
 * positions, so one static graph serves every position) and `keep` [K·B, L, 1] zeroes the placeholder tokens there.
 * Position and token-type embeddings are added by the model after the cut, so an inserted trigger gets them as a
 * real token would. The trigger is either
 *   - "token": softmax(z · inv_temp) @ E, a relaxed distribution over the vocabulary per position (z [K, T, V]), the
 *     token-level search of the NLP scanning papers, or
 *   - "embedding": free vectors [K, T, d] in embedding space (the continuous search).
 * K trials (one target label each) × B sequences per run; outputs ce and acc [K] and the gradient of Σ ce.
 */
import { FtguardError } from "../errors";
import { DataType } from "../formats/onnx-wire";
import { differentiablePath, differentiate, GRADIENT_OPSET } from "./gradient";
import {
	Builder,
	floatInput,
	gradientModel,
	MODEL_PREFIX,
	type RenamedClassifier,
	renameClassifier,
	type ShapeProbe,
	type TensorSpec,
	takenNames,
	targetLoss,
	tensorSpec,
} from "./nc-graph";
import { attrInt, getInt } from "./node-attributes";
import { type OnnxModel, type OnnxNode, type OnnxValueInfo, writeOnnxModel } from "./onnx-model";

export type TriggerMode = "token" | "embedding";

/** The token-id inputs a text model may take, by the names Hugging Face exports give them. */
export const TEXT_INPUTS = ["input_ids", "attention_mask", "token_type_ids"] as const;
export type TextInput = (typeof TEXT_INPUTS)[number];

/** What the scanner needs to know of a text classifier's graph. */
export interface TextModelInfo {
	/** The inputs the model takes, in TEXT_INPUTS order, and those it takes as int32 (the rest are int64). */
	inputs: TextInput[];
	int32: TextInput[];
	/** The word-embedding table's initializer name (renamed) and its [V, d]. */
	embedding: string;
	vocab: number;
	dim: number;
	/** Rows of the position-embedding table when one is found: the longest sequence the model takes. */
	maxLength: number | undefined;
}

export interface TextGraphOptions {
	trials: number;
	batch: number;
	/** Sequence length every input is padded to. */
	length: number;
	/** Trigger tokens inserted per sequence. */
	triggerLength: number;
	mode: TriggerMode;
}

export interface TextGraph {
	bytes: Uint8Array;
	inputs: TensorSpec[];
	outputs: TensorSpec[];
	info: TextModelInfo;
	numClasses: number;
}

const unsupported = (msg: string) => new FtguardError("MODEL_UNSUPPORTED", msg);

/** The model's inputs as TEXT_INPUTS names; anything else is not a text classifier this scanner can drive. */
function textInputs(c: RenamedClassifier): TextInput[] {
	const names = c.dataInputs.map((v) => v.name.slice(MODEL_PREFIX.length));
	const odd = names.filter((n) => !(TEXT_INPUTS as readonly string[]).includes(n));
	if (!names.includes("input_ids") || odd.length > 0)
		throw unsupported(
			`a text model needs an int64 input "input_ids" and at most "attention_mask" and "token_type_ids" (found ${names.join(", ") || "none"})`,
		);
	for (const v of c.dataInputs)
		if (v.elemType !== DataType.INT64 && v.elemType !== DataType.INT32)
			throw unsupported(`text model input ${v.name.slice(MODEL_PREFIX.length)} is not an integer tensor`);
	return TEXT_INPUTS.filter((n) => names.includes(n));
}

function int32Inputs(c: RenamedClassifier): TextInput[] {
	return c.dataInputs
		.filter((v) => v.elemType === DataType.INT32)
		.map((v) => v.name.slice(MODEL_PREFIX.length) as TextInput);
}

/**
 * The word-embedding lookup: a Gather (axis 0) of a 2-D float initializer by `input_ids` (looked through Cast and
 * Identity, as exporters insert them). Exactly one is expected.
 */
function findEmbedding(c: RenamedClassifier): { node: OnnxNode; table: string; vocab: number; dim: number } {
	const producer = new Map<string, OnnxNode>();
	for (const n of c.graph.nodes) for (const o of n.outputs) producer.set(o, n);
	const ids = `${MODEL_PREFIX}input_ids`;
	const fromIds = (t: string): boolean => {
		for (let k = 0; k < 8; k++) {
			if (t === ids) return true;
			const p = producer.get(t);
			if (p === undefined || (p.opType !== "Cast" && p.opType !== "Identity")) return false;
			t = p.inputs[0] as string;
		}
		return false;
	};
	const inits = new Map(c.graph.initializers.map((t) => [t.name, t]));
	const found = c.graph.nodes.filter((n) => {
		if (n.opType !== "Gather" || !fromIds(n.inputs[1] ?? "")) return false;
		const t = inits.get(n.inputs[0] ?? "");
		return t?.dataType === DataType.FLOAT && t.dims.length === 2 && getInt(n, "axis", 0) === 0;
	});
	const node = found[0];
	if (found.length !== 1 || node === undefined)
		throw unsupported(
			`expected one word-embedding lookup (a Gather of a float table by input_ids), found ${found.length}`,
		);
	const t = inits.get(node.inputs[0] as string) as { dims: number[] };
	return { node, table: node.inputs[0] as string, vocab: t.dims[0] as number, dim: t.dims[1] as number };
}

/** The position table: another [P, d] float Gather table whose indices do not come from input_ids. */
function findMaxLength(c: RenamedClassifier, word: OnnxNode, dim: number): number | undefined {
	const inits = new Map(c.graph.initializers.map((t) => [t.name, t]));
	const rows = c.graph.nodes
		.filter((n) => n !== word && n.opType === "Gather")
		.map((n) => inits.get(n.inputs[0] ?? ""))
		.filter((t) => t?.dataType === DataType.FLOAT && t.dims.length === 2 && t.dims[1] === dim && (t.dims[0] ?? 0) > 2)
		.map((t) => t?.dims[0] as number);
	// token-type tables have 1–2 rows; the position table is the largest remaining one
	return rows.length === 0 ? undefined : Math.max(...rows);
}

/** Reads a text classifier's inputs and embedding table without building anything. */
export function textModelInfo(model: OnnxModel): TextModelInfo {
	return infoOf(renameClassifier(model)).info;
}

function infoOf(c: RenamedClassifier): { info: TextModelInfo; emb: ReturnType<typeof findEmbedding> } {
	const emb = findEmbedding(c);
	const info: TextModelInfo = {
		inputs: textInputs(c),
		int32: int32Inputs(c),
		embedding: emb.table,
		vocab: emb.vocab,
		dim: emb.dim,
		maxLength: findMaxLength(c, emb.node, emb.dim),
	};
	return { info, emb };
}

export async function buildTextTriggerGraph(
	model: OnnxModel,
	opts: TextGraphOptions,
	probeShapes: ShapeProbe,
): Promise<TextGraph> {
	const { trials: K, batch: B, length: L, triggerLength: T, mode } = opts;
	for (const [what, v] of Object.entries({ trials: K, batch: B, length: L, triggerLength: T }))
		if (!Number.isInteger(v) || v < 1)
			throw new FtguardError("DATA_INVALID", `${what} (${v}) must be a positive integer`);
	const c = renameClassifier(model);
	const { info, emb } = infoOf(c);
	const inputs = info.inputs;
	if (info.maxLength !== undefined && L > info.maxLength)
		throw new FtguardError("DATA_INVALID", `sequence length ${L} exceeds the model's ${info.maxLength} positions`);
	const N = K * B;
	const d = emb.dim;
	const V = emb.vocab;

	// the lookup writes a fresh name; the original name becomes the stamped embeddings
	const looked = `${MODEL_PREFIX}ftguard/word_embeddings`;
	const wemb = emb.node.outputs[0] as string;
	const nodes = c.graph.nodes.map((n) => (n === emb.node ? { ...n, outputs: [looked] } : n));
	const idInputs: OnnxValueInfo[] = inputs.map((n) => ({ name: n, elemType: DataType.INT64, shape: [N, L] }));
	// the model's renamed id inputs are fed from the outer graph's int64 ones (cast for a model that takes int32)
	const feeds: OnnxNode[] = inputs.map((n) => ({
		opType: info.int32.includes(n) ? "Cast" : "Identity",
		domain: "",
		name: MODEL_PREFIX + n,
		inputs: [n],
		outputs: [MODEL_PREFIX + n],
		attributes: info.int32.includes(n) ? [attrInt("to", DataType.INT32)] : [],
	}));
	const modelGraph = { ...c.graph, nodes: [...feeds, ...nodes], inputs: [...idInputs, floatInput(wemb, [N, L, d])] };
	// refuse an op we cannot differentiate before onnxruntime gets a chance to fail on it less clearly
	differentiablePath(modelGraph, [wemb]);
	const modelShapes = await probeShapes(
		gradientModel(c, modelGraph),
		Object.fromEntries([
			...inputs.map((n) => [n, { type: "int64" as const, dims: [N, L] }]),
			[wemb, { type: "float32" as const, dims: [N, L, d] }],
		]),
	);
	const logitsShape = modelShapes.get(c.logits);
	if (logitsShape === undefined || logitsShape.length !== 2 || logitsShape[0] !== N)
		throw unsupported(
			`the model's logits ${c.logits.slice(MODEL_PREFIX.length)} have shape [${(logitsShape ?? []).join(", ")}]; [batch, classes] is expected`,
		);
	const C = logitsShape[1] as number;

	const b = new Builder(takenNames(c.graph));
	const e = b.e;
	for (const [name, s] of [
		["place", [K, B, L, T]],
		["keep", [N, L, 1]],
		["z", [K, T, V]],
		["trigger", [K, T, d]],
		["inv_temp", [K, 1, 1]],
	] as const)
		b.shapes.set(name, [...s]);
	b.shapes.set(looked, [N, L, d]);
	const trigger =
		mode === "token"
			? b.op(
					"MatMul",
					[b.op("Softmax", [b.op("Mul", ["z", "inv_temp"], [K, T, V])], [K, T, V], [attrInt("axis", -1)]), emb.table],
					[K, T, d],
				)
			: "trigger";
	const placed = b.op("MatMul", ["place", b.op("Unsqueeze", [trigger, e.i64([1])], [K, 1, T, d])], [K, B, L, d]);
	const kept = b.op("Mul", [looked, "keep"], [N, L, d]);
	e.nodes.push({
		opType: "Add",
		domain: "",
		name: wemb,
		inputs: [kept, b.op("Reshape", [placed, e.i64([N, L, d])], [N, L, d])],
		outputs: [wemb],
		attributes: [],
	});
	const pre = e.nodes.splice(0);
	const { ce, acc } = targetLoss(b, c.logits, K, B, C);
	const loss = b.op("ReduceSum", [ce, e.i64([0])], [1], [attrInt("keepdims", 1)]);
	const post = e.nodes.splice(0);

	const wrt = mode === "token" ? "z" : "trigger";
	const at = nodes.findIndex((n) => n.outputs[0] === looked) + 1;
	const forward = {
		name: "text_trigger",
		nodes: [...feeds, ...nodes.slice(0, at), ...pre, ...nodes.slice(at), ...post],
		initializers: [...c.graph.initializers, ...e.initializers],
		inputs: [
			...idInputs,
			floatInput("place", [K, B, L, T]),
			floatInput("keep", [N, L, 1]),
			...(mode === "token"
				? [floatInput("z", [K, T, V]), floatInput("inv_temp", [K, 1, 1])]
				: [floatInput("trigger", [K, T, d])]),
			{ name: "target", elemType: DataType.INT64, shape: [K] },
		],
		outputs: [],
	};
	const shapes = new Map([...modelShapes, ...b.shapes]);
	const { graph, grads } = differentiate(forward, {
		loss,
		wrt: [wrt],
		shapes,
		opset: Math.max(c.opset, GRADIENT_OPSET),
	});
	const tail = new Builder(new Set());
	tail.alias(ce, "ce");
	tail.alias(acc, "acc");
	tail.alias(grads.get(wrt) as string, "grad");
	graph.nodes = [...graph.nodes, ...tail.e.nodes];
	graph.outputs = [
		floatInput("ce", [K]),
		floatInput("acc", [K]),
		floatInput("grad", mode === "token" ? [K, T, V] : [K, T, d]),
	];
	return {
		bytes: writeOnnxModel(gradientModel(c, graph)),
		inputs: graph.inputs.map(tensorSpec),
		outputs: graph.outputs.map(tensorSpec),
		info,
		numClasses: C,
	};
}

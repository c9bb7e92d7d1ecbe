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
import { Emitter } from "./graph-emitter";
import { TEXT_INPUTS, type TextInput } from "./text-inputs";

export { TEXT_INPUTS, type TextInput } from "./text-inputs";

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
import { attrInt, getAttr, getInt, getInts } from "./node-attributes";
import { type OnnxModel, type OnnxNode, type OnnxTensor, type OnnxValueInfo, writeOnnxModel } from "./onnx-model";

export type TriggerMode = "token" | "embedding";

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
	// the classifier reads one position ([CLS]) of the last layer: that layer's per-position tail runs on it alone
	const sliced = slicePooledRows(nodes, c.graph.initializers, modelShapes, [c.logits, looked]);

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
	const modelNodes = sliced.nodes;
	const at = modelNodes.findIndex((n) => n.outputs[0] === looked) + 1;
	const forward = {
		name: "text_trigger",
		nodes: [...feeds, ...modelNodes.slice(0, at), ...pre, ...modelNodes.slice(at), ...post],
		initializers: [...c.graph.initializers, ...sliced.initializers, ...e.initializers],
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
	const shapes = new Map([...modelShapes, ...sliced.shapes, ...b.shapes]);
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

/** Elementwise ops: each position of the output comes from the same position of each input (broadcasting aside). */
const ELEMENTWISE = new Set(["Add", "Sub", "Mul", "Div", "Pow", "Max", "Min"]);
/** Unary elementwise ops. */
const UNARY = new Set([
	"Erf",
	"Tanh",
	"Relu",
	"Sigmoid",
	"Sqrt",
	"Exp",
	"Log",
	"Neg",
	"Abs",
	"Reciprocal",
	"Identity",
	"Softplus",
	"LeakyRelu",
	"Elu",
]);

/** Reductions that keep their dimensions, taken along axes other than the sequence. */
const REDUCE = new Set(["ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceL2", "ReduceSumSquare"]);

const sameDims = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((v, k) => v === b[k]);
const product = (a: readonly number[]) => a.reduce((x, y) => x * y, 1);

/**
 * A classifier that reads one position of its last hidden states (BERT's pooler takes [CLS]: a Gather on axis 1 by a
 * constant scalar) needs everything after the last layer's keys and values at that position only: the attention
 * queries, scores and softmax of that one row, the output projection, feed-forward block, LayerNorms and residual
 * adds. This pass moves the read up through those ops (elementwise, reductions and normalisations along other axes,
 * MatMul rows, Transpose and Reshape, the sequence axis followed wherever it goes) as long as the tensor it passes is
 * needed at full length by nothing else (a Shape of it aside: the moved ops get static shapes); there it reads the
 * row. The full-length tensors nothing reads any more are dropped. Every remaining value is computed by the same
 * kernels from the same inputs, and every dropped one only ever added exact zeros to gradients, so logits and
 * gradients are the same, bit for bit on the fixtures (the text-graph gradient tests and the scan's outputs); the
 * last layer costs a fraction of what it did, forward and backward (about a third less per step on the fixture
 * encoders). A model without such a read is returned as it is.
 */
function slicePooledRows(
	nodes: readonly OnnxNode[],
	initializers: readonly OnnxTensor[],
	shapes: ReadonlyMap<string, number[]>,
	roots: readonly string[],
): { nodes: OnnxNode[]; initializers: OnnxTensor[]; shapes: Map<string, number[]> } {
	const producer = new Map<string, OnnxNode>();
	for (const n of nodes) for (const o of n.outputs) if (o !== "") producer.set(o, n);
	const consts = new Map<string, OnnxTensor>(initializers.map((t) => [t.name, t]));
	for (const n of nodes) {
		const v = getAttr(n, "value");
		if (n.opType === "Constant" && v?.type === "tensor" && n.outputs[0]) consts.set(n.outputs[0], v.value);
	}
	const shapeOf = (t: string): readonly number[] | undefined => shapes.get(t) ?? consts.get(t)?.dims;
	// moving through a tensor that something else still reads at full length would compute it twice (and sum its
	// gradient in another order): such tensors are read as rows instead, found by trying again until none is left
	const stop = new Set<string>();
	for (;;) {
		const r = attempt(stop);
		const again = r.through.filter((t) => r.made.has(t));
		if (again.length === 0) return r.result;
		for (const t of again) stop.add(t);
	}

	function attempt(stop: ReadonlySet<string>) {
		const taken = new Set<string>([...consts.keys(), ...nodes.flatMap((n) => [...n.inputs, ...n.outputs])]);
		const e = new Emitter(taken, "rows/");
		const newShapes = new Map<string, number[]>();
		/** new nodes by the original node they go before: a clone where its original was, a row read where its reader is */
		const before = new Map<OnnxNode, OnnxNode[]>();
		const put = (where: OnnxNode, n: OnnxNode) => before.set(where, [...(before.get(where) ?? []), n]);
		const replaced = new Map<OnnxNode, OnnxNode>();
		const through: string[] = [];

		for (const g of nodes) {
			if (g.opType !== "Gather" || g.domain !== "" || g.outputs.length !== 1) continue;
			const x = g.inputs[0] as string;
			const xs = shapeOf(x);
			const idx = consts.get(g.inputs[1] ?? "");
			if (xs === undefined || xs.length < 3 || !producer.has(x) || idx === undefined || idx.dims.length !== 0) continue;
			const axis = getInt(g, "axis", 0);
			if (axis !== 1 && axis !== 1 - xs.length) continue;
			const L = xs[1] as number;
			let i = Number(idx.data[0]);
			if (i < 0) i += L;
			if (!Number.isInteger(i) || i < 0 || i >= L || L < 2) continue;
			// two rows, the read one and a neighbour: a one-row batched MatMul takes another kernel in onnxruntime (MLAS's
			// M = 1 path), which rounds differently; from two rows on every row is computed as in the full product
			const pick = i + 1 < L ? [i, i + 1] : [i - 1, i];
			const R = pick.length;
			const memo = new Map<string, string>();
			let readers = 0;
			const readerId = new Map<OnnxNode, number>();
			/**
			 * `t` with only the picked positions of its sequence axis `ax`, for `reader`. A row read is made per reader (and
			 * placed with it) so that each reader's gradient reaches `t` in the order it did.
			 */
			const slice = (t: string, ax: number, reader: OnnxNode): string => {
				const p = producer.get(t);
				const s = shapeOf(t) as number[];
				const out = s.map((v, k) => (k === ax ? R : v));
				const hit = memo.get(`${ax}|${t}`);
				if (hit !== undefined) return hit;
				const node = p !== undefined && !stop.has(t) ? moved(p, t, s, ax) : undefined;
				if (node !== undefined) {
					const name = e.fresh("row");
					through.push(t);
					put(p as OnnxNode, { ...node, name, outputs: [name] });
					newShapes.set(name, out);
					memo.set(`${ax}|${t}`, name);
					return name;
				}
				if (!readerId.has(reader)) readerId.set(reader, readers++);
				const key = `${ax}|${t}|${readerId.get(reader)}`;
				const read = memo.get(key);
				if (read !== undefined) return read;
				const name = e.fresh("row");
				put(reader, {
					opType: "Gather",
					domain: "",
					name,
					inputs: [t, e.i64(pick)],
					outputs: [name],
					attributes: [attrInt("axis", ax)],
				});
				newShapes.set(name, out);
				memo.set(key, name);
				return name;
			};
			/** `p` (which makes `t` [s]) run on the slices of its inputs, when position `ax` of `t` needs no other. */
			const moved = (p: OnnxNode, t: string, s: number[], ax: number): OnnxNode | undefined => {
				if (p.domain !== "" || p.outputs[0] !== t || p.outputs.slice(1).some((o) => o !== "")) return undefined;
				const r = s.length;
				const [a, ...rest] = p.inputs as [string, ...string[]];
				const as = shapeOf(a);
				if (as === undefined) return undefined;
				const at = (ins: string[]) => ({ ...p, inputs: ins });
				if (UNARY.has(p.opType)) return sameDims(as, s) ? at([slice(a, ax, p), ...rest]) : undefined;
				if (ELEMENTWISE.has(p.opType)) {
					// an input broadcast along the sequence axis is taken whole; one running along it, sliced where it does
					const along = (v: string): number | null | undefined => {
						const vs = shapeOf(v);
						if (vs === undefined) return undefined;
						const j = ax - (r - vs.length);
						return j < 0 || vs[j] === 1 ? null : vs[j] === s[ax] ? j : undefined;
					};
					const js = p.inputs.map(along);
					if (js.some((j) => j === undefined)) return undefined;
					// (slices made after every input checked: a refused op leaves no stray nodes)
					return at(p.inputs.map((v, k) => (typeof js[k] === "number" ? slice(v, js[k] as number, p) : v)));
				}
				if (p.opType === "LayerNormalization" || p.opType === "Softmax" || p.opType === "LogSoftmax") {
					const k = getInt(p, "axis", -1);
					const norm = k < 0 ? k + r : k;
					// LayerNorm normalises axes norm.., Softmax (opset ≥ 13) axis norm alone: the row axis must be outside
					const ok = p.opType === "LayerNormalization" ? norm > ax : norm !== ax;
					return ok && sameDims(as, s) ? at([slice(a, ax, p), ...rest]) : undefined;
				}
				if (REDUCE.has(p.opType)) {
					// along other axes, dimensions kept (opset-14 exports spell LayerNorm out with ReduceMean)
					const given = getInts(p, "axes") ?? (rest[0] ? consts.get(rest[0])?.data : undefined);
					const axes = Array.from((given ?? []) as ArrayLike<number | bigint>, Number).map((v) => (v < 0 ? v + r : v));
					const ok = getInt(p, "keepdims", 1) === 1 && axes.length > 0 && !axes.includes(ax);
					return ok && as.length === r && as[ax] === s[ax] ? at([slice(a, ax, p), ...rest]) : undefined;
				}
				if (p.opType === "MatMul") {
					// row m of a product is row m of its first operand times the second
					const bs = shapeOf(rest[0] ?? "");
					if (bs === undefined || bs.length < 2 || as.length !== r || ax !== r - 2) return undefined;
					return at([slice(a, ax, p), rest[0] as string]);
				}
				if (p.opType === "Transpose") {
					const perm = getInts(p, "perm") ?? Array.from({ length: r }, (_, k) => r - 1 - k);
					return as.length === r ? at([slice(a, perm[ax] as number, p)]) : undefined;
				}
				if (p.opType === "Reshape") {
					// the axis survives as itself: the same element count before it and the same length
					const before = product(s.slice(0, ax));
					let j = -1;
					for (let k = 0, acc = 1; k < as.length; acc *= as[k] as number, k++)
						if (acc === before && as[k] === s[ax]) j = k;
					if (j < 0 || product(as.slice(0, j)) !== before) return undefined;
					return at([slice(a, j, p), e.i64(s.map((v, k) => (k === ax ? R : v)))]);
				}
				return undefined;
			};
			const rows = slice(x, 1, g);
			replaced.set(g, {
				...g,
				inputs: [rows, e.tensor(DataType.INT64, [], BigInt64Array.of(BigInt(pick.indexOf(i))))],
			});
		}
		if (replaced.size === 0)
			return {
				result: { nodes: [...nodes], initializers: [], shapes: newShapes },
				through: [],
				made: new Set<string>(),
			};

		// (in the original order, so that gradients are summed as they were), then the unread are dropped
		const order = nodes.flatMap((n) => [...(before.get(n) ?? []), replaced.get(n) ?? n]);
		const needed = new Set(roots);
		const live: OnnxNode[] = [];
		for (let k = order.length - 1; k >= 0; k--) {
			const n = order[k] as OnnxNode;
			if (!n.outputs.some((o) => needed.has(o))) continue;
			live.push(n);
			for (const v of n.inputs) needed.add(v);
		}
		const kept = live.reverse();
		return {
			result: { nodes: kept, initializers: e.initializers, shapes: newShapes },
			through,
			made: new Set(kept.flatMap((n) => n.outputs)),
		};
	}
}

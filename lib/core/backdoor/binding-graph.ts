/**
 * The graph side of export binding. Byte binding compares the constants an export stores with a checkpoint's
 * tensors; these rules keep the graph from computing around them (docs/backdoor.md, "Export binding"):
 * - Liveness. A constant counts (binds) only when its data reaches a graph output: walked back from the outputs
 *   through the nodes that compute them. Shape / Size read a shape, not data; a constant only dead nodes read is
 *   not part of the model the scan runs.
 * - Computed constants. Every floating-point value that depends on no graph input and reaches an output must be
 *   a stored float constant (which binding compares), that constant through layout ops only (Reshape, Transpose,
 *   Unsqueeze, Squeeze, Identity, Flatten, Cast float→float), zeros (ConstantOfShape of 0), or small: computed from
 *   at most SMALL_ELEMENTS constant elements in all, by no op that makes large values from small ones (an epsilon,
 *   1/sqrt(d)). Anything else — integers × 2^e, DequantizeLinear, a codebook Gather, ones of a shape — is a weight
 *   decoded at run time that no byte comparison can bind: MODEL_UNSUPPORTED, could not check.
 * - Integer inputs. Token ids (an integer input some Gather's indices depend on) may reach the computation only as
 *   the indices of a Gather (through Cast to an integer type, Identity, Unsqueeze, Squeeze, Reshape, Flatten) or
 *   through Shape / Size. Another integer input (an attention mask) may be moved (those, Expand, Cast), combined
 *   with itself and small constants (Sub, Mul, Div, Add, Where, Equal, Not, ReduceSum, Clip, Max, Min) and join a
 *   computed value by Add, Mul, Div or Where (`(1 - mask) * min` added to the scores, masked_fill, a masked mean).
 *   Anything else (Equal, Where, Mod, arithmetic on the ids) rewrites the inputs before the lookup: the scan would
 *   judge another model than the one the checkpoint makes — a finding.
 * None of this proves the graph computes the checkpoint's function (that needs a differential run against a
 * reference implementation); it closes the ways around byte binding that cost an attacker one graph edit.
 */
import { FtguardError } from "../errors";
import { DataType } from "../formats/onnx-wire";
import { malformed, type OnnxAttribute, type OnnxNode } from "./onnx-model";

/** A constant of the graph: an initializer or a Constant node's value. */
export interface GraphConstant {
	dataType: number;
	dims: number[];
}

export interface GraphFacts {
	nodes: readonly OnnxNode[];
	/** graph inputs (initializers listed as inputs excluded) with their element types */
	inputs: readonly { name: string; elemType: number }[];
	outputs: readonly string[];
	initializers: ReadonlyMap<string, GraphConstant>;
}

/** An integer input the graph rewrites or computes with (a finding). */
export interface InputRewrite {
	input: string;
	/** the node that does it: `<op> "<name>"` */
	node: string;
	/** whether the input is token ids (some Gather's indices depend on it) */
	token: boolean;
}

export interface GraphAnalysis {
	/** values whose data reaches a graph output */
	live: ReadonlySet<string>;
	liveNodes: ReadonlySet<OnnxNode>;
	rewrites: InputRewrite[];
}

/** A computed constant of at most this many elements (its sources, all told) is not a weight. */
export const SMALL_ELEMENTS = 16;

/** The float types binding compares (tensor-bytes.ts, onnxFloatDtype). */
const COMPARED: ReadonlySet<number> = new Set([DataType.FLOAT, DataType.FLOAT16, DataType.BFLOAT16, DataType.DOUBLE]);
const FLOATS: ReadonlySet<number> = new Set([
	...COMPARED,
	DataType.FLOAT8E4M3FN,
	DataType.FLOAT8E4M3FNUZ,
	DataType.FLOAT8E5M2,
	DataType.FLOAT8E5M2FNUZ,
	DataType.FLOAT4E2M1,
	DataType.COMPLEX64,
	DataType.COMPLEX128,
]);
const INTEGERS: ReadonlySet<number> = new Set([
	DataType.UINT8,
	DataType.INT8,
	DataType.UINT16,
	DataType.INT16,
	DataType.INT32,
	DataType.INT64,
	DataType.UINT32,
	DataType.UINT64,
	DataType.BOOL,
	DataType.UINT4,
	DataType.INT4,
]);

/** Ops whose output depends on their input's shape only: their input's data is not read. */
const SHAPE_ONLY = new Set(["Shape", "Size"]);
/** Ops that move a tensor's elements without computing new ones (input 0 is the data). */
const LAYOUT = new Set(["Reshape", "Transpose", "Unsqueeze", "Squeeze", "Identity", "Flatten", "Cast"]);
/** Ops that make a large value from small ones: what they compute is not small, whatever they read. */
const GENERATORS = new Set([
	"ConstantOfShape",
	"Expand",
	"Tile",
	"Range",
	"RandomNormal",
	"RandomUniform",
	"RandomNormalLike",
	"RandomUniformLike",
	"Multinomial",
	"Bernoulli",
	"EyeLike",
	"OneHot",
	"Resize",
	"Upsample",
	"Pad",
]);
/** What token ids may go through on their way to a Gather's indices (input 0 of each). */
const ID_LAYOUT = new Set(["Identity", "Unsqueeze", "Squeeze", "Reshape", "Flatten"]);
/** What a mask may go through (input 0) … */
const MASK_LAYOUT = new Set([...ID_LAYOUT, "Expand", "Cast"]);
/** … combined with small constants (`(1 - mask) * min`, `mask == 0`, a mean's lengths) … */
const MASK_ARITHMETIC = new Set([
	"Sub",
	"Mul",
	"Div",
	"Add",
	"Where",
	"Equal",
	"Not",
	"ReduceSum",
	"Clip",
	"Max",
	"Min",
]);
/** … and how it joins the computation (added to scores, masked_fill, a masked mean). */
const MASK_JOINS = new Set(["Add", "Mul", "Div", "Where"]);

const product = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);

/** Appends `v` to the list under `k` (a multimap). */
export function push<K, V>(map: Map<K, V[]>, k: K, v: V): void {
	const list = map.get(k);
	if (list) list.push(v);
	else map.set(k, [v]);
}
const isDefault = (n: OnnxNode) => n.domain === "" || n.domain === "ai.onnx";
const where = (n: OnnxNode) => `${n.opType} "${n.name || n.outputs[0] || "?"}"`;
const attr = (n: OnnxNode, name: string): OnnxAttribute | undefined => n.attributes.find((a) => a.name === name);

/** A Constant node's value as a constant (type and dims), from whichever value attribute it has. */
function constantOf(n: OnnxNode): GraphConstant | undefined {
	const a = n.attributes[0];
	if (a === undefined) return undefined;
	switch (a.type) {
		case "tensor":
			return { dataType: a.value.dataType, dims: a.value.dims };
		case "float":
			return { dataType: DataType.FLOAT, dims: [] };
		case "floats":
			return { dataType: DataType.FLOAT, dims: [a.value.length] };
		case "int":
			return { dataType: DataType.INT64, dims: [] };
		case "ints":
			return { dataType: DataType.INT64, dims: [a.value.length] };
		default:
			return { dataType: DataType.STRING, dims: a.type === "strings" ? [a.value.length] : [] };
	}
}

/** Values a node carries in its attributes (tensors, float lists); ints are axes, perms and flags. */
function attributeElements(n: OnnxNode): number {
	let total = 0;
	for (const a of n.attributes)
		total += a.type === "tensor" ? product(a.value.dims) : a.type === "floats" ? a.value.length : 0;
	return total;
}

/** The element type of a node's output `i`, from its inputs' (0: unknown). */
function outputType(n: OnnxNode, i: number, typeOf: (v: string) => number): number {
	const first = () => n.inputs.map((x) => (x === "" ? 0 : typeOf(x))).find((t) => t !== 0) ?? 0;
	const to = attr(n, "to") ?? attr(n, "dtype");
	if (!isDefault(n)) return 0;
	switch (n.opType) {
		case "Cast":
		case "RandomNormal":
		case "RandomUniform":
		case "RandomNormalLike":
		case "RandomUniformLike":
		case "EyeLike":
			return to?.type === "int" ? to.value : n.opType === "Cast" ? 0 : DataType.FLOAT;
		case "CastLike":
			return n.inputs[1] ? typeOf(n.inputs[1]) : 0;
		case "Constant":
			return constantOf(n)?.dataType ?? 0;
		case "ConstantOfShape": {
			const v = attr(n, "value");
			return v?.type === "tensor" ? v.value.dataType : DataType.FLOAT;
		}
		case "Shape":
		case "Size":
		case "NonZero":
		case "ArgMax":
		case "ArgMin":
			return DataType.INT64;
		case "TopK":
		case "Unique":
			return i === 0 ? first() : DataType.INT64;
		case "Equal":
		case "Less":
		case "LessOrEqual":
		case "Greater":
		case "GreaterOrEqual":
		case "And":
		case "Or":
		case "Xor":
		case "Not":
		case "IsNaN":
		case "IsInf":
			return DataType.BOOL;
		case "Where":
			return n.inputs[1] ? typeOf(n.inputs[1]) : 0;
		case "QuantizeLinear":
			return n.inputs[2] ? typeOf(n.inputs[2]) : DataType.UINT8;
		case "DequantizeLinear":
			return n.inputs[1] ? typeOf(n.inputs[1]) : DataType.FLOAT;
		default:
			return first();
	}
}

/** The nodes in an order where each comes after the nodes it reads (ONNX asks for it; it is not trusted). */
function topological(nodes: readonly OnnxNode[], producer: ReadonlyMap<string, OnnxNode>): OnnxNode[] {
	const waiting = new Map<OnnxNode, number>();
	const readers = new Map<OnnxNode, OnnxNode[]>();
	const ready: OnnxNode[] = [];
	for (const n of nodes) {
		const deps = new Set(n.inputs.map((i) => producer.get(i)).filter((p): p is OnnxNode => p !== undefined));
		waiting.set(n, deps.size);
		for (const d of deps) push(readers, d, n);
		if (deps.size === 0) ready.push(n);
	}
	const order: OnnxNode[] = [];
	// first in, first out: file order where the file is in order (the first offending node is the one reported)
	for (let next = 0; next < ready.length; next++) {
		const n = ready[next] as OnnxNode;
		order.push(n);
		for (const r of readers.get(n) ?? []) {
			const left = (waiting.get(r) as number) - 1;
			waiting.set(r, left);
			if (left === 0) ready.push(r);
		}
	}
	if (order.length !== nodes.length) throw malformed("the graph has a cycle");
	return order;
}

/** Analyses an export's graph (rules in the file comment). Throws MODEL_UNSUPPORTED for a computed weight. */
export function analyseGraph(g: GraphFacts): GraphAnalysis {
	const producer = new Map<string, OnnxNode>();
	const constants = new Map<string, GraphConstant>(g.initializers);
	for (const n of g.nodes)
		for (const o of n.outputs) {
			if (o === "") continue;
			if (producer.has(o) || g.initializers.has(o)) throw malformed(`value ${o} is defined twice`);
			producer.set(o, n);
			const c = n.opType === "Constant" && isDefault(n) ? constantOf(n) : undefined;
			if (c !== undefined) constants.set(o, c);
		}
	const order = topological(g.nodes, producer);

	const types = new Map<string, number>();
	for (const [name, c] of constants) types.set(name, c.dataType);
	for (const i of g.inputs) types.set(i.name, i.elemType);
	const typeOf = (v: string) => types.get(v) ?? 0;
	const dynamic = new Set(g.inputs.map((i) => i.name));
	for (const n of order) {
		const dyn = n.inputs.some((i) => dynamic.has(i));
		n.outputs.forEach((o, i) => {
			if (o === "") return;
			if (!types.has(o)) types.set(o, outputType(n, i, typeOf));
			if (dyn) dynamic.add(o);
		});
	}

	// liveness: back from the outputs through the nodes that compute them
	const live = new Set<string>();
	const liveNodes = new Set<OnnxNode>();
	const stack = [...g.outputs];
	while (stack.length > 0) {
		const v = stack.pop() as string;
		if (live.has(v)) continue;
		live.add(v);
		const n = producer.get(v);
		if (n === undefined || liveNodes.has(n)) continue;
		liveNodes.add(n);
		if (!(SHAPE_ONLY.has(n.opType) && isDefault(n))) for (const i of n.inputs) if (i !== "") stack.push(i);
	}

	const facts: Facts = { producer, constants, types, dynamic, live, liveNodes };
	checkComputedConstants(order, facts);
	return { live, liveNodes, rewrites: inputRewrites(g, facts) };
}

interface Facts {
	producer: ReadonlyMap<string, OnnxNode>;
	constants: ReadonlyMap<string, GraphConstant>;
	types: ReadonlyMap<string, number>;
	dynamic: ReadonlySet<string>;
	live: ReadonlySet<string>;
	liveNodes: ReadonlySet<OnnxNode>;
}

/**
 * The constants a static value is computed from, their elements in all, and whether a generator makes it. `early`:
 * stop as soon as it is plainly not small (a long static chain costs no more than that).
 */
function staticSources(
	v: string,
	f: Facts,
	early = false,
): { sources: string[]; elements: number; generated: boolean } {
	const sources: string[] = [];
	let elements = 0;
	let generated = false;
	const seen = new Set<string>();
	const stack = [v];
	while (stack.length > 0 && !(early && (generated || elements > SMALL_ELEMENTS))) {
		const x = stack.pop() as string;
		if (seen.has(x)) continue;
		seen.add(x);
		const n = f.producer.get(x);
		const c = f.constants.get(x);
		if (c !== undefined && (n === undefined || n.opType === "Constant")) {
			sources.push(x);
			elements += product(c.dims);
			continue;
		}
		if (n === undefined) continue;
		if (GENERATORS.has(n.opType)) generated = true;
		elements += attributeElements(n);
		if (!SHAPE_ONLY.has(n.opType)) for (const i of n.inputs) if (i !== "") stack.push(i);
	}
	return { sources, elements, generated };
}

/** Refuses a live float value computed from constants that is not a layout of a compared constant, zeros or small. */
function checkComputedConstants(order: readonly OnnxNode[], f: Facts): void {
	const ok = new Map<string, boolean>();
	const acceptable = (v: string): boolean => {
		const known = ok.get(v);
		if (known !== undefined) return known;
		const n = f.producer.get(v);
		const c = f.constants.get(v);
		let yes: boolean;
		if (c !== undefined && (n === undefined || n.opType === "Constant")) yes = COMPARED.has(c.dataType);
		else if (n === undefined) yes = false;
		else if (LAYOUT.has(n.opType) && isDefault(n) && n.inputs[0])
			// Cast only float→float: a Cast from integers decodes a value, which is computed
			yes =
				((n.opType !== "Cast" || COMPARED.has(f.types.get(n.inputs[0]) ?? 0)) && acceptable(n.inputs[0])) || small(v);
		else if (n.opType === "ConstantOfShape" && isZero(n)) yes = true;
		else yes = small(v);
		ok.set(v, yes);
		return yes;
	};
	const small = (v: string) => smallStatic(v, f);
	for (const n of order) {
		if (!f.liveNodes.has(n) || (n.opType === "Constant" && isDefault(n))) continue;
		for (const o of n.outputs) {
			if (o === "" || !f.live.has(o) || f.dynamic.has(o)) continue;
			const t = f.types.get(o) ?? 0;
			// an output of unknown type is checked as a float (fail closed)
			if ((t !== 0 && !FLOATS.has(t)) || acceptable(o)) continue;
			const s = staticSources(o, f);
			const size = (x: string) => product((f.constants.get(x) as GraphConstant).dims);
			// the largest first: the weight it decodes
			const shown = s.sources
				.sort((a, b) => size(b) - size(a) || a.localeCompare(b))
				.slice(0, 3)
				.map((x) => `${x} [${(f.constants.get(x) as GraphConstant).dims.join(", ")}]`)
				.join(", ");
			const more = s.sources.length > 3 ? ` and ${s.sources.length - 3} more` : "";
			throw new FtguardError(
				"MODEL_UNSUPPORTED",
				`ONNX model: float constant computed at run time from ${shown || "no stored constant"}${more} by ${where(n)}${n.name && n.name !== o ? ` (${o})` : ""}: binding compares stored constants, which this is not (export with do_constant_folding=True)`,
			);
		}
	}
}

/** ConstantOfShape of zeros (the default value, or a zero one). */
function isZero(n: OnnxNode): boolean {
	const v = attr(n, "value");
	if (v === undefined) return true;
	return v.type === "tensor" && Array.from(v.value.data as ArrayLike<number | bigint>).every((x) => Number(x) === 0);
}

type Taint = "ids" | "mask";

/** A value computed from at most SMALL_ELEMENTS constant numbers by no generator: a scalar, an epsilon. */
function smallStatic(v: string, f: Facts): boolean {
	if (f.dynamic.has(v)) return false;
	const s = staticSources(v, f, true);
	return !s.generated && s.elements <= SMALL_ELEMENTS;
}

/** The integer inputs the graph rewrites or computes with (rules in the file comment), the first node per input. */
function inputRewrites(g: GraphFacts, f: Facts): InputRewrite[] {
	const readers = new Map<string, Reader[]>();
	for (const n of g.nodes)
		n.inputs.forEach((x, at) => {
			if (x !== "") push(readers, x, { n, at });
		});
	const out: InputRewrite[] = [];
	for (const input of g.inputs) {
		if (!INTEGERS.has(input.elemType)) continue;
		// token ids: some Gather's indices depend on the input's integer values (whatever the path)
		let token = false;
		const seen = new Set<string>();
		const stack = [input.name];
		while (stack.length > 0 && !token) {
			const v = stack.pop() as string;
			if (seen.has(v)) continue;
			seen.add(v);
			for (const { n, at } of readers.get(v) ?? []) {
				if (SHAPE_ONLY.has(n.opType) && isDefault(n)) continue;
				if (isGatherIndex(n, at)) token = true;
				else for (const o of n.outputs) if (o !== "" && INTEGERS.has(f.types.get(o) ?? 0)) stack.push(o);
			}
		}
		const rewrite = firstRewrite(input.name, token ? "ids" : "mask", readers, f);
		if (rewrite !== undefined) out.push({ input: input.name, node: where(rewrite), token });
	}
	return out;
}

interface Reader {
	n: OnnxNode;
	/** the input position it reads the value at */
	at: number;
}

const isGatherIndex = (n: OnnxNode, at: number) => n.opType === "Gather" && isDefault(n) && at === 1;

/** Follows one integer input forward from `start`; the first node it reaches that the rules do not allow. */
function firstRewrite(
	input: string,
	start: Taint,
	readers: ReadonlyMap<string, Reader[]>,
	f: Facts,
): OnnxNode | undefined {
	const state = new Map<string, Taint>([[input, start]]);
	const queue = [input];
	const mark = (o: string | undefined, t: Taint) => {
		if (o === undefined || o === "" || state.has(o)) return;
		state.set(o, t);
		queue.push(o);
	};
	for (let q = 0; q < queue.length; q++) {
		const v = queue[q] as string;
		for (const { n, at } of readers.get(v) ?? []) {
			if (!isDefault(n)) return n;
			if (SHAPE_ONLY.has(n.opType)) continue;
			if (state.get(v) === "ids") {
				// token ids: looked up, or moved on the way to the lookup, nothing else
				const toInt = n.opType === "Cast" && INTEGERS.has(f.types.get(n.outputs[0] ?? "") ?? 0);
				if (isGatherIndex(n, at)) continue;
				if (at === 0 && (ID_LAYOUT.has(n.opType) || toInt)) mark(n.outputs[0], "ids");
				else return n;
				continue;
			}
			// a mask: moved, combined with small constants (or itself), then joined with the computation — a join
			// needs a computed operand, or a mask combined with stored tables would be a lookup of its own
			const others = n.inputs.filter((x, i) => i !== at && x !== "");
			if (at === 0 && MASK_LAYOUT.has(n.opType)) mark(n.outputs[0], "mask");
			else if (MASK_ARITHMETIC.has(n.opType) && others.every((x) => state.get(x) === "mask" || smallStatic(x, f)))
				mark(n.outputs[0], "mask");
			else if (!(MASK_JOINS.has(n.opType) && others.some((x) => f.dynamic.has(x) && state.get(x) !== "mask"))) return n;
		}
	}
	return undefined;
}

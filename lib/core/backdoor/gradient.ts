/**
 * Reverse-mode differentiation of an ONNX graph, emitted as standard ONNX ops.
 *
 * onnxruntime-node has no training API, so the backward pass has to be part of
 * the graph it runs. Each forward op on the path from the `wrt` tensors to the
 * loss gets a rule that emits its vector-Jacobian product; contributions to a
 * tensor used more than once are summed. Shapes are taken as static (the
 * caller probes them at the concrete batch size it will run), which turns
 * broadcasting, reshapes and pooling geometry into constants instead of
 * Shape-op chains.
 *
 * Only float32 is differentiated, and only the data inputs of ops with weights
 * (Conv, Gemm, BatchNormalization …): the optimisers we serve move inputs, never
 * weights. An op on the path without a rule is MODEL_UNSUPPORTED, named.
 */
import { FtguardError } from "../errors";
import { DT, type OnnxAttribute, type OnnxGraph, type OnnxNode, type OnnxTensor, type TensorData } from "./onnx-model";

/**
 * Opset the emitted ops need: MaxPool gradients use ScatterElements with reduction "add" (16).
 * No op the rules cover changes meaning between 13 and 17, so older exports can be raised to it.
 */
export const GRADIENT_OPSET = 17;

export interface GradientOptions {
	/** The tensor to differentiate; when it is not a scalar, the gradient of the sum of its elements. */
	loss: string;
	/** Tensors (graph inputs or intermediates) to differentiate with respect to. */
	wrt: readonly string[];
	/** Static shape of every tensor on the path (see probeShapes in nc-graph.ts). */
	shapes: ReadonlyMap<string, readonly number[]>;
	/**
	 * Default-domain opset the forward ops were written for: decides whether Reduce* axes are
	 * attributes or inputs. The result must run at max(opset, GRADIENT_OPSET).
	 */
	opset: number;
}

export interface GradientResult {
	/** The forward graph (MaxPool nodes gain an Indices output) followed by the backward nodes; same inputs and outputs. */
	graph: OnnxGraph;
	/** wrt tensor → name of its gradient tensor in `graph`. */
	grads: Map<string, string>;
}

// ---------------------------------------------------------------- attribute helpers

export const attrInt = (name: string, value: number): OnnxAttribute => ({ name, type: "int", value });
export const attrFloat = (name: string, value: number): OnnxAttribute => ({ name, type: "float", value });
export const attrInts = (name: string, value: number[]): OnnxAttribute => ({ name, type: "ints", value });
export const attrString = (name: string, value: string): OnnxAttribute => ({ name, type: "string", value });

function getAttr(node: OnnxNode, name: string): OnnxAttribute | undefined {
	return node.attributes.find((a) => a.name === name);
}
function getInt(node: OnnxNode, name: string, def: number): number {
	const a = getAttr(node, name);
	return a?.type === "int" ? a.value : def;
}
function getFloat(node: OnnxNode, name: string, def: number): number {
	const a = getAttr(node, name);
	return a?.type === "float" ? a.value : def;
}
function getInts(node: OnnxNode, name: string): number[] | undefined {
	const a = getAttr(node, name);
	return a?.type === "ints" ? a.value : undefined;
}
function getString(node: OnnxNode, name: string, def: string): string {
	const a = getAttr(node, name);
	return a?.type === "string" ? a.value : def;
}

export function describeNode(node: OnnxNode): string {
	const op = node.domain === "" || node.domain === "ai.onnx" ? node.opType : `${node.domain}:${node.opType}`;
	return `${op} node "${node.name || node.outputs[0] || "?"}"`;
}

const unsupported = (node: OnnxNode, what: string) =>
	new FtguardError("MODEL_UNSUPPORTED", `cannot differentiate ${describeNode(node)}: ${what}`, {
		details: { opType: node.opType, domain: node.domain, node: node.name },
	});

// ---------------------------------------------------------------- element types

/** Element type of every tensor of the graph, propagated from inputs and initializers (for typing graph outputs). */
export function elemTypes(graph: OnnxGraph): Map<string, number> {
	const types = new Map<string, number>();
	for (const v of graph.inputs) types.set(v.name, v.elemType);
	for (const t of graph.initializers) types.set(t.name, t.dataType);
	for (const n of graph.nodes) {
		const in0 = types.get(n.inputs[0] ?? "") ?? DT.FLOAT;
		const set = (i: number, t: number) => {
			const o = n.outputs[i];
			if (o) types.set(o, t);
		};
		n.outputs.forEach((_, i) => {
			set(i, in0);
		});
		switch (n.opType) {
			case "Shape":
			case "Size":
			case "ArgMax":
			case "ArgMin":
			case "NonZero":
				set(0, DT.INT64);
				break;
			case "Equal":
			case "Greater":
			case "Less":
			case "GreaterOrEqual":
			case "LessOrEqual":
			case "Not":
			case "And":
			case "Or":
			case "Xor":
			case "IsNaN":
			case "IsInf":
				set(0, DT.BOOL);
				break;
			case "Cast":
				set(0, getInt(n, "to", DT.FLOAT));
				break;
			case "Constant": {
				const v = getAttr(n, "value");
				if (v?.type === "tensor") set(0, v.value.dataType);
				else if (getAttr(n, "value_ints") || getAttr(n, "value_int")) set(0, DT.INT64);
				else set(0, DT.FLOAT);
				break;
			}
			case "ConstantOfShape": {
				const v = getAttr(n, "value");
				set(0, v?.type === "tensor" ? v.value.dataType : DT.FLOAT);
				break;
			}
			case "MaxPool":
				set(1, DT.INT64);
				break;
			case "Where":
				set(0, types.get(n.inputs[1] ?? "") ?? DT.FLOAT);
				break;
			case "OneHot":
				set(0, types.get(n.inputs[2] ?? "") ?? DT.FLOAT);
				break;
			case "Dropout":
				set(1, DT.BOOL);
				break;
		}
	}
	return types;
}

// ---------------------------------------------------------------- emitter

/** Appends nodes and constants to a graph under fresh names. */
export class Emitter {
	readonly nodes: OnnxNode[] = [];
	readonly initializers: OnnxTensor[] = [];
	private counter = 0;
	private readonly consts = new Map<string, string>();

	constructor(
		private readonly taken: Set<string>,
		private readonly prefix: string,
	) {}

	fresh(hint: string): string {
		let name: string;
		do name = `${this.prefix}${hint}_${this.counter++}`;
		while (this.taken.has(name));
		this.taken.add(name);
		return name;
	}

	/** Appends a single-output node; returns the output's name. */
	op1(opType: string, inputs: string[], attributes: OnnxAttribute[] = []): string {
		const out = this.fresh(opType);
		this.nodes.push({ opType, domain: "", name: out, inputs, outputs: [out], attributes });
		return out;
	}

	/** A constant initializer; small ones (axes, shapes, scalars) are shared between identical requests. */
	tensor(dataType: number, dims: readonly number[], data: TensorData): string {
		const key =
			data.length <= 64
				? `${dataType}|${dims.join(",")}|${Array.from(data as ArrayLike<number | bigint>, String).join(",")}`
				: undefined;
		const hit = key === undefined ? undefined : this.consts.get(key);
		if (hit !== undefined) return hit;
		const name = this.fresh("const");
		this.initializers.push({ name, dataType, dims: [...dims], data });
		if (key !== undefined) this.consts.set(key, name);
		return name;
	}

	i64(values: readonly number[]): string {
		return this.tensor(
			DT.INT64,
			[values.length],
			BigInt64Array.from(values, (v) => BigInt(v)),
		);
	}

	/** A float32 scalar (rank 0), which broadcasts against anything. */
	f32(value: number): string {
		return this.tensor(DT.FLOAT, [], Float32Array.of(value));
	}
}

// ---------------------------------------------------------------- shape helpers

const prod = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const sameShape = (a: readonly number[], b: readonly number[]) =>
	a.length === b.length && a.every((v, i) => v === b[i]);

/** Sums a gradient of the broadcast shape `from` down to the operand shape `to`. */
function unbroadcast(e: Emitter, g: string, from: readonly number[], to: readonly number[]): string {
	if (sameShape(from, to)) return g;
	const lead = from.length - to.length;
	const axes: number[] = [];
	for (let i = 0; i < from.length; i++) if (i < lead || (to[i - lead] === 1 && from[i] !== 1)) axes.push(i);
	const summed = axes.length === 0 ? g : e.op1("ReduceSum", [g, e.i64(axes)], [attrInt("keepdims", 1)]);
	return lead === 0 ? summed : e.op1("Reshape", [summed, e.i64([...to])]);
}

/** Window geometry of Conv / pooling along the spatial axes, explicit pads resolved from auto_pad. */
function windowGeometry(
	node: OnnxNode,
	xShape: readonly number[],
	yShape: readonly number[],
	kernel: readonly number[],
) {
	const n = kernel.length;
	const strides = getInts(node, "strides") ?? Array(n).fill(1);
	const dilations = getInts(node, "dilations") ?? Array(n).fill(1);
	const autoPad = getString(node, "auto_pad", "NOTSET");
	let pads = getInts(node, "pads") ?? Array(2 * n).fill(0);
	if (autoPad === "VALID") pads = Array(2 * n).fill(0);
	else if (autoPad === "SAME_UPPER" || autoPad === "SAME_LOWER") {
		pads = Array(2 * n).fill(0);
		for (let i = 0; i < n; i++) {
			const inp = xShape[i + 2] as number;
			const out = yShape[i + 2] as number;
			const eff = ((kernel[i] as number) - 1) * (dilations[i] as number) + 1;
			const total = Math.max(0, (out - 1) * (strides[i] as number) + eff - inp);
			const small = Math.floor(total / 2);
			pads[i] = autoPad === "SAME_UPPER" ? small : total - small;
			pads[i + n] = total - (pads[i] as number);
		}
	} else if (autoPad !== "NOTSET") throw unsupported(node, `auto_pad ${autoPad}`);
	return { strides, dilations, pads };
}

/**
 * ConvTranspose attributes that map a window op's output grid back exactly onto
 * its input: output_padding supplies rows the forward windows never reached,
 * extra end padding crops rows that ceil_mode windows reached beyond the input.
 */
function transposeGeometry(
	kernel: readonly number[],
	geo: { strides: number[]; dilations: number[]; pads: number[] },
	xShape: readonly number[],
	yShape: readonly number[],
) {
	const n = kernel.length;
	const pads = [...geo.pads];
	const outputPadding: number[] = [];
	for (let i = 0; i < n; i++) {
		const eff = ((kernel[i] as number) - 1) * (geo.dilations[i] as number) + 1;
		const reach =
			(geo.strides[i] as number) * ((yShape[i + 2] as number) - 1) +
			eff -
			(pads[i] as number) -
			(pads[i + n] as number);
		const missing = (xShape[i + 2] as number) - reach;
		outputPadding.push(Math.max(0, missing));
		if (missing < 0) pads[i + n] = (pads[i + n] as number) - missing;
	}
	return [
		attrInts("kernel_shape", [...kernel]),
		attrInts("strides", geo.strides),
		attrInts("dilations", geo.dilations),
		attrInts("pads", pads),
		attrInts("output_padding", outputPadding),
	];
}

// ---------------------------------------------------------------- the differentiator

/** Ops whose outputs carry no gradient (integer, boolean or piecewise-constant results). */
const NON_DIFFERENTIABLE = new Set([
	"Shape",
	"Size",
	"ArgMax",
	"ArgMin",
	"Equal",
	"Greater",
	"Less",
	"GreaterOrEqual",
	"LessOrEqual",
	"Not",
	"And",
	"Or",
	"Xor",
	"NonZero",
	"IsNaN",
	"IsInf",
	"Sign",
	"Floor",
	"Ceil",
	"Round",
	"ConstantOfShape",
	"OneHot",
	"Constant",
]);

interface RuleContext {
	e: Emitter;
	node: OnnxNode;
	/** Gradient of output 0. */
	dy: string;
	shape(name: string): readonly number[];
	/** Whether input i needs a gradient. */
	needs(i: number): boolean;
	/** A constant input's values (initializer or Constant node), for axes given as inputs. */
	constInts(name: string): number[] | undefined;
	/** A constant input as a tensor (initializer or Constant node). */
	constTensor(name: string): OnnxTensor | undefined;
	opset: number;
}

type Rule = (c: RuleContext) => (string | undefined)[];

/**
 * The input gradient of a stride-1, undilated, ungrouped Conv with constant
 * float weights, as a Conv: dx = conv(dy, W'), W'[ci, co] = W[co, ci] flipped in
 * every spatial axis, pads k-1-p. Same numbers as ConvTranspose, but onnxruntime's
 * CPU Conv is several times faster than its ConvTranspose (measured: ConvTranspose
 * was 43% of a Neural Cleanse step on a 3×16×16 CNN). Undefined when the shortcut
 * does not apply; the caller then emits ConvTranspose.
 */
function stride1InputGradient(
	c: RuleContext,
	kernel: readonly number[],
	geo: { strides: number[]; dilations: number[]; pads: number[] },
	group: number,
): string | undefined {
	const n = kernel.length;
	if (group !== 1 || geo.strides.some((v) => v !== 1) || geo.dilations.some((v) => v !== 1)) return undefined;
	const w = c.constTensor(input(c, 1));
	if (w === undefined || w.dataType !== DT.FLOAT || !(w.data instanceof Float32Array)) return undefined;
	const pads = geo.pads.map((p, i) => (kernel[i % n] as number) - 1 - p);
	if (pads.some((p) => p < 0)) return undefined;
	const [cout, cin] = w.dims as [number, number];
	const spatial = prod(kernel);
	const flipped = new Float32Array(w.data.length);
	// index arithmetic over the spatial axes: position p and its mirror spatial-1-p
	for (let co = 0; co < cout; co++)
		for (let ci = 0; ci < cin; ci++)
			for (let p = 0; p < spatial; p++)
				flipped[(ci * cout + co) * spatial + (spatial - 1 - p)] = w.data[(co * cin + ci) * spatial + p] as number;
	const wt = c.e.tensor(DT.FLOAT, [cin, cout, ...kernel], flipped);
	return c.e.op1("Conv", [c.dy, wt], [attrInts("kernel_shape", [...kernel]), attrInts("pads", pads)]);
}

const input = (c: RuleContext, i: number) => c.node.inputs[i] as string;
const output = (c: RuleContext) => c.node.outputs[0] as string;

function reshapeBack(c: RuleContext): (string | undefined)[] {
	return [c.e.op1("Reshape", [c.dy, c.e.i64([...c.shape(input(c, 0))])])];
}

function binary(c: RuleContext, da: () => string, db: () => string): (string | undefined)[] {
	const ys = c.shape(output(c));
	return [
		c.needs(0) ? unbroadcast(c.e, da(), ys, c.shape(input(c, 0))) : undefined,
		c.needs(1) ? unbroadcast(c.e, db(), ys, c.shape(input(c, 1))) : undefined,
	];
}

function reduceAxes(c: RuleContext, fromInput: boolean): number[] {
	const rank = c.shape(input(c, 0)).length;
	let axes: number[] | undefined;
	if (fromInput) {
		const name = c.node.inputs[1];
		axes = name ? c.constInts(name) : undefined;
		if (name && axes === undefined) throw unsupported(c.node, "axes must be a constant");
	} else axes = getInts(c.node, "axes");
	if (axes === undefined || axes.length === 0) {
		if (getInt(c.node, "noop_with_empty_axes", 0) === 1) return [];
		return Array.from({ length: rank }, (_, i) => i);
	}
	return axes.map((a) => (a < 0 ? a + rank : a));
}

/** d/dx of ReduceSum / ReduceMean: spread the gradient back over the reduced axes. */
function reduceRule(mean: boolean, axesAsInputFrom: number): Rule {
	return (c) => {
		const xs = c.shape(input(c, 0));
		const axes = reduceAxes(c, c.opset >= axesAsInputFrom);
		const kept = xs.map((d, i) => (axes.includes(i) ? 1 : d));
		let g = c.e.op1("Reshape", [c.dy, c.e.i64(kept)]);
		g = c.e.op1("Expand", [g, c.e.i64([...xs])]);
		if (mean) g = c.e.op1("Mul", [g, c.e.f32(1 / Math.max(1, prod(axes.map((a) => xs[a] as number))))]);
		return [g];
	};
}

const RULES: Record<string, Rule> = {
	Identity: (c) => [c.dy],
	Dropout: (c) => [c.dy],
	Flatten: reshapeBack,
	Reshape: reshapeBack,
	Squeeze: reshapeBack,
	Unsqueeze: reshapeBack,
	Cast: (c) => [c.e.op1("Cast", [c.dy], [attrInt("to", DT.FLOAT)])],
	Transpose: (c) => {
		const rank = c.shape(input(c, 0)).length;
		const perm = getInts(c.node, "perm") ?? Array.from({ length: rank }, (_, i) => rank - 1 - i);
		const inv: number[] = Array(rank).fill(0);
		perm.forEach((p, i) => {
			inv[p] = i;
		});
		return [c.e.op1("Transpose", [c.dy], [attrInts("perm", inv)])];
	},
	Neg: (c) => [c.e.op1("Neg", [c.dy])],
	Relu: (c) => {
		const on = c.e.op1("Greater", [input(c, 0), c.e.f32(0)]);
		return [c.e.op1("Where", [on, c.dy, c.e.f32(0)])];
	},
	LeakyRelu: (c) => {
		const on = c.e.op1("Greater", [input(c, 0), c.e.f32(0)]);
		const leak = c.e.op1("Mul", [c.dy, c.e.f32(getFloat(c.node, "alpha", 0.01))]);
		return [c.e.op1("Where", [on, c.dy, leak])];
	},
	Sigmoid: (c) => {
		const y = output(c);
		const dydx = c.e.op1("Mul", [y, c.e.op1("Sub", [c.e.f32(1), y])]);
		return [c.e.op1("Mul", [c.dy, dydx])];
	},
	Tanh: (c) => {
		const y = output(c);
		const dydx = c.e.op1("Sub", [c.e.f32(1), c.e.op1("Mul", [y, y])]);
		return [c.e.op1("Mul", [c.dy, dydx])];
	},
	Clip: (c) => {
		if (c.needs(1) || c.needs(2)) throw unsupported(c.node, "bounds depend on the input");
		const x = input(c, 0);
		const inside = [
			c.node.inputs[1] ? c.e.op1("Greater", [x, c.node.inputs[1]]) : undefined,
			c.node.inputs[2] ? c.e.op1("Less", [x, c.node.inputs[2]]) : undefined,
		].filter((v): v is string => v !== undefined);
		if (inside.length === 0) return [c.dy];
		const cond = inside.length === 1 ? (inside[0] as string) : c.e.op1("And", inside);
		return [c.e.op1("Where", [cond, c.dy, c.e.f32(0)])];
	},
	Erf: (c) => {
		const x = input(c, 0);
		const bell = c.e.op1("Exp", [c.e.op1("Neg", [c.e.op1("Mul", [x, x])])]);
		return [c.e.op1("Mul", [c.dy, c.e.op1("Mul", [bell, c.e.f32(2 / Math.sqrt(Math.PI))])])];
	},
	Exp: (c) => [c.e.op1("Mul", [c.dy, output(c)])],
	Log: (c) => [c.e.op1("Div", [c.dy, input(c, 0)])],
	Sqrt: (c) => [c.e.op1("Div", [c.e.op1("Mul", [c.dy, c.e.f32(0.5)]), output(c)])],
	Add: (c) =>
		binary(
			c,
			() => c.dy,
			() => c.dy,
		),
	Sub: (c) =>
		binary(
			c,
			() => c.dy,
			() => c.e.op1("Neg", [c.dy]),
		),
	Mul: (c) =>
		binary(
			c,
			() => c.e.op1("Mul", [c.dy, input(c, 1)]),
			() => c.e.op1("Mul", [c.dy, input(c, 0)]),
		),
	Div: (c) =>
		binary(
			c,
			() => c.e.op1("Div", [c.dy, input(c, 1)]),
			() => c.e.op1("Neg", [c.e.op1("Div", [c.e.op1("Mul", [c.dy, output(c)]), input(c, 1)])]),
		),
	Sum: (c) => {
		const ys = c.shape(output(c));
		return c.node.inputs.map((x, i) => (c.needs(i) ? unbroadcast(c.e, c.dy, ys, c.shape(x)) : undefined));
	},
	Where: (c) => {
		if (c.needs(0)) throw unsupported(c.node, "condition depends on the input");
		const ys = c.shape(output(c));
		const zero = c.e.f32(0);
		const cond = input(c, 0);
		return [
			undefined,
			c.needs(1) ? unbroadcast(c.e, c.e.op1("Where", [cond, c.dy, zero]), ys, c.shape(input(c, 1))) : undefined,
			c.needs(2) ? unbroadcast(c.e, c.e.op1("Where", [cond, zero, c.dy]), ys, c.shape(input(c, 2))) : undefined,
		];
	},
	Gemm: (c) => {
		const alpha = getFloat(c.node, "alpha", 1);
		const beta = getFloat(c.node, "beta", 1);
		const ta = getInt(c.node, "transA", 0);
		const tb = getInt(c.node, "transB", 0);
		const a = input(c, 0);
		const b = input(c, 1);
		const gemm = (x: string, y: string, tx: number, ty: number) =>
			c.e.op1("Gemm", [x, y], [attrFloat("alpha", alpha), attrInt("transA", tx), attrInt("transB", ty)]);
		const out: (string | undefined)[] = [undefined, undefined, undefined];
		if (c.needs(0)) out[0] = ta === 0 ? gemm(c.dy, b, 0, 1 - tb) : gemm(b, c.dy, tb, 1);
		if (c.needs(1)) out[1] = tb === 0 ? gemm(a, c.dy, 1 - ta, 0) : gemm(c.dy, a, 1, ta);
		if (c.needs(2)) {
			const g = beta === 1 ? c.dy : c.e.op1("Mul", [c.dy, c.e.f32(beta)]);
			out[2] = unbroadcast(c.e, g, c.shape(output(c)), c.shape(input(c, 2)));
		}
		return out;
	},
	MatMul: (c) => {
		const a = input(c, 0);
		const b = input(c, 1);
		const as = c.shape(a);
		const bs = c.shape(b);
		if (as.length < 2 || bs.length < 2) throw unsupported(c.node, "1-D operands");
		const swap = (r: number) => [...Array.from({ length: r - 2 }, (_, i) => i), r - 1, r - 2];
		const t = (x: string, r: number) => c.e.op1("Transpose", [x], [attrInts("perm", swap(r))]);
		const ys = c.shape(output(c));
		const broadcastShape = (x: readonly number[], other: readonly number[]) => [
			...ys.slice(0, ys.length - 2),
			x[x.length - 2] as number,
			other[other.length - 1] as number,
		];
		return [
			c.needs(0) ? unbroadcast(c.e, c.e.op1("MatMul", [c.dy, t(b, bs.length)]), broadcastShape(as, as), as) : undefined,
			c.needs(1) ? unbroadcast(c.e, c.e.op1("MatMul", [t(a, as.length), c.dy]), broadcastShape(bs, bs), bs) : undefined,
		];
	},
	Conv: (c) => {
		if (c.needs(1) || c.needs(2)) throw unsupported(c.node, "weights or bias depend on the input");
		const xs = c.shape(input(c, 0));
		const ws = c.shape(input(c, 1));
		const ys = c.shape(output(c));
		const kernel = ws.slice(2);
		const geo = windowGeometry(c.node, xs, ys, kernel);
		const group = getInt(c.node, "group", 1);
		const fast = stride1InputGradient(c, kernel, geo, group);
		if (fast !== undefined) return [fast];
		const attrs = transposeGeometry(kernel, geo, xs, ys);
		attrs.push(attrInt("group", group));
		return [c.e.op1("ConvTranspose", [c.dy, input(c, 1)], attrs)];
	},
	MaxPool: (c) => {
		if (getInt(c.node, "storage_order", 0) !== 0) throw unsupported(c.node, "storage_order 1");
		const xs = c.shape(input(c, 0));
		const flat = c.e.i64([-1]);
		const indices = c.node.outputs[1] as string;
		const zeros = c.e.op1(
			"ConstantOfShape",
			[c.e.i64([prod(xs)])],
			[{ name: "value", type: "tensor", value: { name: "", dataType: DT.FLOAT, dims: [1], data: Float32Array.of(0) } }],
		);
		// overlapping windows can pick the same element, hence "add"
		const scattered = c.e.op1(
			"ScatterElements",
			[zeros, c.e.op1("Reshape", [indices, flat]), c.e.op1("Reshape", [c.dy, flat])],
			[attrInt("axis", 0), attrString("reduction", "add")],
		);
		return [c.e.op1("Reshape", [scattered, c.e.i64([...xs])])];
	},
	AveragePool: (c) => {
		const xs = c.shape(input(c, 0));
		const ys = c.shape(output(c));
		const kernel = getInts(c.node, "kernel_shape");
		if (kernel === undefined) throw unsupported(c.node, "no kernel_shape");
		const geo = windowGeometry(c.node, xs, ys, kernel);
		const includePad = getInt(c.node, "count_include_pad", 0) === 1;
		const n = kernel.length;
		// Non-overlapping windows that tile the input exactly (AvgPool2d(k) on a
		// divisible input, the usual case): every input cell gets dy/|window| of its
		// one window — a broadcast, much cheaper than a ConvTranspose.
		const tiles = kernel.every(
			(k, i) =>
				geo.strides[i] === k &&
				geo.dilations[i] === 1 &&
				geo.pads[i] === 0 &&
				geo.pads[i + n] === 0 &&
				(xs[i + 2] as number) === (ys[i + 2] as number) * k,
		);
		if (tiles) {
			const scaled = c.e.op1("Mul", [c.dy, c.e.f32(1 / prod(kernel))]);
			const scales = c.e.tensor(DT.FLOAT, [n + 2], Float32Array.from([1, 1, ...kernel]));
			// nearest-neighbour upsampling by the kernel replicates each window's gradient
			// (measured: Resize is ~20× faster than a 6-D Reshape/Expand in onnxruntime's CPU provider)
			return [
				c.e.op1(
					"Resize",
					[scaled, "", scales],
					[
						attrString("mode", "nearest"),
						attrString("coordinate_transformation_mode", "asymmetric"),
						attrString("nearest_mode", "floor"),
					],
				),
			];
		}
		// divisor of each output position: the window's overlap with the input (or the padded input)
		const perAxis = kernel.map((k, i) => {
			const s = geo.strides[i] as number;
			const d = geo.dilations[i] as number;
			const pb = geo.pads[i] as number;
			const lo = includePad ? -pb : 0;
			const hi = includePad ? (xs[i + 2] as number) + (geo.pads[i + n] as number) : (xs[i + 2] as number);
			return Array.from({ length: ys[i + 2] as number }, (_, o) => {
				let count = 0;
				for (let j = 0; j < k; j++) {
					const p = o * s - pb + j * d;
					if (p >= lo && p < hi) count++;
				}
				return count;
			});
		});
		const outSpatial = ys.slice(2);
		const inv = new Float32Array(prod(outSpatial));
		for (let flat = 0; flat < inv.length; flat++) {
			let rest = flat;
			let count = 1;
			for (let i = n - 1; i >= 0; i--) {
				const size = outSpatial[i] as number;
				count *= (perAxis[i] as number[])[rest % size] as number;
				rest = Math.floor(rest / size);
			}
			inv[flat] = 1 / count;
		}
		const channels = (xs[0] as number) * (xs[1] as number);
		const scaled = c.e.op1("Mul", [
			c.e.op1("Reshape", [c.dy, c.e.i64([channels, 1, ...outSpatial])]),
			c.e.tensor(DT.FLOAT, outSpatial, inv),
		]);
		const ones = c.e.tensor(DT.FLOAT, [1, 1, ...kernel], new Float32Array(prod(kernel)).fill(1));
		const spread = c.e.op1("ConvTranspose", [scaled, ones], transposeGeometry(kernel, geo, xs, ys));
		return [c.e.op1("Reshape", [spread, c.e.i64([...xs])])];
	},
	GlobalAveragePool: (c) => {
		const xs = c.shape(input(c, 0));
		const g = c.e.op1("Expand", [c.dy, c.e.i64([...xs])]);
		return [c.e.op1("Mul", [g, c.e.f32(1 / prod(xs.slice(2)))])];
	},
	BatchNormalization: (c) => {
		if (getInt(c.node, "training_mode", 0) !== 0) throw unsupported(c.node, "training_mode 1");
		if ([1, 2, 3, 4].some((i) => c.needs(i))) throw unsupported(c.node, "statistics depend on the input");
		const rank = c.shape(input(c, 0)).length;
		const eps = c.e.f32(getFloat(c.node, "epsilon", 1e-5));
		const std = c.e.op1("Sqrt", [c.e.op1("Add", [input(c, 4), eps])]);
		const factor = c.e.op1("Div", [input(c, 1), std]);
		const perChannel = c.e.op1("Reshape", [factor, c.e.i64([-1, ...Array(rank - 2).fill(1)])]);
		return [c.e.op1("Mul", [c.dy, perChannel])];
	},
	Softmax: (c) => {
		const axis = getInt(c.node, "axis", -1);
		const y = output(c);
		const dot = c.e.op1("ReduceSum", [c.e.op1("Mul", [c.dy, y]), c.e.i64([axis])], [attrInt("keepdims", 1)]);
		return [c.e.op1("Mul", [y, c.e.op1("Sub", [c.dy, dot])])];
	},
	LogSoftmax: (c) => {
		const axis = getInt(c.node, "axis", -1);
		const total = c.e.op1("ReduceSum", [c.dy, c.e.i64([axis])], [attrInt("keepdims", 1)]);
		return [c.e.op1("Sub", [c.dy, c.e.op1("Mul", [c.e.op1("Exp", [output(c)]), total])])];
	},
	Concat: (c) => {
		const ys = c.shape(output(c));
		const axis = (() => {
			const a = getInt(c.node, "axis", 0);
			return a < 0 ? a + ys.length : a;
		})();
		let offset = 0;
		return c.node.inputs.map((x, i) => {
			const len = c.shape(x)[axis] as number;
			const start = offset;
			offset += len;
			if (!c.needs(i)) return undefined;
			return c.e.op1("Slice", [c.dy, c.e.i64([start]), c.e.i64([start + len]), c.e.i64([axis])]);
		});
	},
	Pad: (c) => {
		if (getString(c.node, "mode", "constant") !== "constant") throw unsupported(c.node, "only constant padding");
		if (c.needs(2)) throw unsupported(c.node, "the pad value depends on the input");
		const xs = c.shape(input(c, 0));
		const rank = xs.length;
		const pads = c.constInts(input(c, 1));
		const axesName = c.node.inputs[3];
		const axes = axesName ? c.constInts(axesName) : Array.from({ length: rank }, (_, i) => i);
		if (pads === undefined || axes === undefined) throw unsupported(c.node, "pads must be constant");
		if (pads.some((p) => p < 0)) throw unsupported(c.node, "negative pads");
		const starts = axes.map((_, i) => pads[i] as number);
		const ends = axes.map((a, i) => (pads[i] as number) + (xs[a < 0 ? a + rank : a] as number));
		return [c.e.op1("Slice", [c.dy, c.e.i64(starts), c.e.i64(ends), c.e.i64(axes)])];
	},
	Slice: (c) => {
		if ([1, 2, 3, 4].some((i) => c.needs(i))) throw unsupported(c.node, "starts/ends depend on the input");
		const xs = c.shape(input(c, 0));
		const ys = c.shape(output(c));
		const rank = xs.length;
		const starts = c.constInts(input(c, 1));
		const axesName = c.node.inputs[3];
		const stepsName = c.node.inputs[4];
		const axes = axesName ? c.constInts(axesName) : starts?.map((_, i) => i);
		const steps = stepsName ? c.constInts(stepsName) : undefined;
		if (starts === undefined || axes === undefined) throw unsupported(c.node, "starts and axes must be constant");
		if (steps?.some((s) => s !== 1)) throw unsupported(c.node, "steps other than 1");
		const pads: number[] = Array(2 * rank).fill(0);
		axes.forEach((a, i) => {
			const axis = a < 0 ? a + rank : a;
			const dim = xs[axis] as number;
			const s = starts[i] as number;
			const begin = Math.min(Math.max(s < 0 ? s + dim : s, 0), dim);
			pads[axis] = begin;
			pads[axis + rank] = dim - begin - (ys[axis] as number);
		});
		return [c.e.op1("Pad", [c.dy, c.e.i64(pads)])];
	},
	ReduceSum: reduceRule(false, 13),
	ReduceMean: reduceRule(true, 18),
};

/** Opset-13 Softmax / LogSoftmax semantics (per axis) are what the rules implement. */
const MIN_OPSET = 13;

/**
 * The float tensors that depend on `wrt` through differentiable ops. Throws
 * MODEL_UNSUPPORTED for an op on that path without a rule, so a caller can
 * refuse a model before spending a session on it.
 */
export function differentiablePath(graph: OnnxGraph, wrt: readonly string[]): Set<string> {
	const types = elemTypes(graph);
	const onPath = new Set<string>();
	for (const w of wrt) {
		if (types.get(w) !== DT.FLOAT)
			throw new FtguardError("DATA_INVALID", `cannot differentiate w.r.t. ${w}: not float32`);
		onPath.add(w);
	}
	for (const n of graph.nodes) {
		if (!n.inputs.some((i) => onPath.has(i)) || NON_DIFFERENTIABLE.has(n.opType)) continue;
		if ((n.domain !== "" && n.domain !== "ai.onnx") || RULES[n.opType] === undefined)
			throw new FtguardError("MODEL_UNSUPPORTED", `cannot differentiate ${describeNode(n)}: op not supported`, {
				details: { opType: n.opType, domain: n.domain, node: n.name },
			});
		const o = n.outputs[0];
		if (o && types.get(o) === DT.FLOAT) onPath.add(o);
	}
	return onPath;
}

export function differentiate(graph: OnnxGraph, opts: GradientOptions): GradientResult {
	if (opts.opset < MIN_OPSET)
		throw new FtguardError(
			"MODEL_UNSUPPORTED",
			`ONNX opset ${opts.opset} is older than ${MIN_OPSET}; re-export the model with opset_version >= ${MIN_OPSET}`,
		);
	const taken = new Set<string>([
		...graph.inputs.map((v) => v.name),
		...graph.initializers.map((t) => t.name),
		...graph.nodes.flatMap((n) => [...n.inputs, ...n.outputs]),
	]);
	const e = new Emitter(taken, "grad/");
	const forward = graph.nodes.map((n) => ({ ...n, outputs: [...n.outputs] }));

	const onPath = differentiablePath(graph, opts.wrt);
	for (const n of forward)
		if (n.opType === "MaxPool" && onPath.has(n.inputs[0] ?? "") && !n.outputs[1])
			n.outputs[1] = e.fresh("maxpool_indices");

	const constants = new Map<string, OnnxTensor>(graph.initializers.map((t) => [t.name, t]));
	const shape = (name: string): readonly number[] => {
		const s = opts.shapes.get(name) ?? constants.get(name)?.dims;
		if (s === undefined) throw new FtguardError("INTERNAL", `gradient: no static shape for tensor ${name}`);
		return s;
	};
	for (const n of forward) {
		const v = getAttr(n, "value");
		if (n.opType === "Constant" && v?.type === "tensor" && n.outputs[0]) constants.set(n.outputs[0], v.value);
	}
	const constInts = (name: string) => {
		const t = constants.get(name);
		return t === undefined ? undefined : Array.from(t.data as ArrayLike<number | bigint>, Number);
	};

	const pending = new Map<string, string[]>();
	const add = (name: string, g: string) => {
		const list = pending.get(name);
		if (list) list.push(g);
		else pending.set(name, [g]);
	};
	const take = (name: string): string | undefined => {
		const list = pending.get(name);
		if (!list || list.length === 0) return undefined;
		const g = list.length === 1 ? (list[0] as string) : e.op1("Sum", list);
		pending.set(name, [g]);
		return g;
	};

	if (onPath.has(opts.loss)) {
		const ls = shape(opts.loss);
		add(opts.loss, e.tensor(DT.FLOAT, ls, new Float32Array(prod(ls)).fill(1)));
	}
	for (let k = forward.length - 1; k >= 0; k--) {
		const node = forward[k] as OnnxNode;
		const out = node.outputs[0];
		if (!out || !onPath.has(out)) continue;
		const dy = take(out);
		if (dy === undefined) continue;
		const rule = RULES[node.opType] as Rule;
		const grads = rule({
			e,
			node,
			dy,
			shape,
			needs: (i) => onPath.has(node.inputs[i] ?? ""),
			constInts,
			constTensor: (name) => constants.get(name),
			opset: opts.opset,
		});
		node.inputs.forEach((x, i) => {
			const g = grads[i];
			if (g !== undefined && onPath.has(x)) add(x, g);
		});
	}

	const grads = new Map<string, string>();
	for (const w of opts.wrt) {
		const ws = shape(w);
		const g = take(w) ?? e.tensor(DT.FLOAT, ws, new Float32Array(prod(ws)));
		grads.set(w, g);
	}
	return {
		graph: {
			...graph,
			nodes: [...forward, ...e.nodes],
			initializers: [...graph.initializers, ...e.initializers],
		},
		grads,
	};
}

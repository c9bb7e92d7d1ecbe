/**
 * Reverse-mode differentiation of an ONNX graph, emitted as standard ONNX ops:
 * the driver, which walks the graph backwards and applies the rule tables of
 * each op family (gradient-rules-*.ts).
 *
 * onnxruntime-node has no training API, so the backward pass has to be part of
 * the graph it runs. Each forward op on the path from the `wrt` tensors to the
 * loss gets a rule that emits its vector-Jacobian product; contributions to a
 * tensor used more than once are summed. A node with several outputs (Split)
 * hands its rule the gradient of each; one that reaches an output the rule does
 * not read is refused rather than dropped. Shapes are taken as static (the
 * caller probes them at the concrete batch size it will run), which turns
 * broadcasting, reshapes and pooling geometry into constants instead of
 * Shape-op chains.
 *
 * Only float32 is differentiated, and only the data inputs of ops with weights
 * (Conv, Gemm, BatchNormalization …): the optimisers we serve move inputs, never
 * weights. An op on the path without a rule is MODEL_UNSUPPORTED, named.
 */
import { FtguardError } from "../errors";
import { DataType } from "../formats/onnx-wire";
import { prod, type Rule, type RuleTable, unsupported, zeros } from "./gradient-rule";
import { CONV_RULES } from "./gradient-rules-conv";
import { ELEMENTWISE_RULES } from "./gradient-rules-elementwise";
import { MATMUL_RULES } from "./gradient-rules-matmul";
import { NORMALIZATION_RULES } from "./gradient-rules-normalization";
import { REDUCE_RULES } from "./gradient-rules-reduce";
import { SHAPE_RULES } from "./gradient-rules-shape";
import { Emitter } from "./graph-emitter";
import { describeNode, getAttr, getInt } from "./node-attributes";
import type { OnnxGraph, OnnxNode, OnnxTensor } from "./onnx-model";

/**
 * Opset the emitted ops need: MaxPool and Gather gradients use ScatterElements with
 * reduction "add" (16). No op the rules cover changes meaning between 13 and 17, so
 * older exports can be raised to it. Rules emit no op whose signature changes after
 * 17 (ReduceMean, Split), so the result also runs at a model's newer opset.
 */
export const GRADIENT_OPSET = 17;

export interface GradientOptions {
	/** The tensor to differentiate; when it is not a scalar, the gradient of the sum of its elements. */
	loss: string;
	/** Tensors (graph inputs or intermediates) to differentiate with respect to. */
	wrt: readonly string[];
	/** Static shape of every tensor on the path (see probeShapes in runtime.ts). */
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

// ---------------------------------------------------------------- element types

/** Element type of every tensor of the graph, propagated from inputs and initializers (for typing graph outputs). */
export function elemTypes(graph: OnnxGraph): Map<string, number> {
	const types = new Map<string, number>();
	for (const v of graph.inputs) types.set(v.name, v.elemType);
	for (const t of graph.initializers) types.set(t.name, t.dataType);
	for (const n of graph.nodes) {
		const in0 = types.get(n.inputs[0] ?? "") ?? DataType.FLOAT;
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
				set(0, DataType.INT64);
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
				set(0, DataType.BOOL);
				break;
			case "Cast":
				set(0, getInt(n, "to", DataType.FLOAT));
				break;
			case "Constant": {
				const v = getAttr(n, "value");
				if (v?.type === "tensor") set(0, v.value.dataType);
				else if (getAttr(n, "value_ints") || getAttr(n, "value_int")) set(0, DataType.INT64);
				else set(0, DataType.FLOAT);
				break;
			}
			case "ConstantOfShape": {
				const v = getAttr(n, "value");
				set(0, v?.type === "tensor" ? v.value.dataType : DataType.FLOAT);
				break;
			}
			case "MaxPool":
				set(1, DataType.INT64);
				break;
			case "Where":
				set(0, types.get(n.inputs[1] ?? "") ?? DataType.FLOAT);
				break;
			case "OneHot":
				set(0, types.get(n.inputs[2] ?? "") ?? DataType.FLOAT);
				break;
			case "Dropout":
				set(1, DataType.BOOL);
				break;
		}
	}
	return types;
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

const RULES: RuleTable = {
	...ELEMENTWISE_RULES,
	...MATMUL_RULES,
	...CONV_RULES,
	...SHAPE_RULES,
	...REDUCE_RULES,
	...NORMALIZATION_RULES,
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
		if (types.get(w) !== DataType.FLOAT)
			throw new FtguardError("DATA_INVALID", `cannot differentiate w.r.t. ${w}: not float32`);
		onPath.add(w);
	}
	for (const n of graph.nodes) {
		if (!n.inputs.some((i) => onPath.has(i)) || NON_DIFFERENTIABLE.has(n.opType)) continue;
		if ((n.domain !== "" && n.domain !== "ai.onnx") || RULES[n.opType] === undefined)
			throw new FtguardError("MODEL_UNSUPPORTED", `cannot differentiate ${describeNode(n)}: op not supported`, {
				details: { opType: n.opType, domain: n.domain, node: n.name },
			});
		// every float output: Split's parts, LayerNormalization's Mean / InvStdDev
		for (const o of n.outputs) {
			const t = types.get(o);
			if (o && t === DataType.FLOAT) onPath.add(o);
			// a float of another width carries the gradient on, and these rules only know float32: refuse, never drop it
			else if (o && (t === DataType.DOUBLE || t === DataType.FLOAT16 || t === DataType.BFLOAT16))
				throw new FtguardError(
					"MODEL_UNSUPPORTED",
					`cannot differentiate ${describeNode(n)}: its output is not float32`,
					{
						details: { opType: n.opType, domain: n.domain, node: n.name },
					},
				);
		}
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
		add(opts.loss, e.tensor(DataType.FLOAT, ls, new Float32Array(prod(ls)).fill(1)));
	}
	for (let k = forward.length - 1; k >= 0; k--) {
		const node = forward[k] as OnnxNode;
		const dys = node.outputs.map((o) => (o && onPath.has(o) ? take(o) : undefined));
		if (dys.every((g) => g === undefined)) continue;
		const read = new Set<number>();
		let dy0 = dys[0];
		const rule = RULES[node.opType] as Rule;
		const grads = rule({
			e,
			node,
			get dy() {
				read.add(0);
				dy0 ??= zeros(e, shape(node.outputs[0] as string));
				return dy0;
			},
			dyAt: (i) => {
				read.add(i);
				return dys[i];
			},
			shape,
			needs: (i) => onPath.has(node.inputs[i] ?? ""),
			constInts,
			constTensor: (name) => constants.get(name),
			opset: opts.opset,
		});
		// a gradient the rule did not read would be dropped silently
		dys.forEach((g, i) => {
			if (g !== undefined && !read.has(i))
				throw unsupported(node, `gradient of output ${i} (${node.outputs[i]}) not supported`);
		});
		node.inputs.forEach((x, i) => {
			const g = grads[i];
			if (g !== undefined && onPath.has(x)) add(x, g);
		});
	}

	const grads = new Map<string, string>();
	for (const w of opts.wrt) {
		const ws = shape(w);
		const g = take(w) ?? e.tensor(DataType.FLOAT, ws, new Float32Array(prod(ws)));
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

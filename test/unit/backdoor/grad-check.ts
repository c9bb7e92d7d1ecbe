/**
 * Gradient checks for tiny graphs: the analytic gradient that `differentiate`
 * emits against central finite differences of the forward graph run by
 * onnxruntime. The loss is Σ y ⊙ r with a fixed random r, accumulated in float64
 * in JS so that float32 rounding of the loss itself does not swamp the
 * differences.
 */
import * as ort from "onnxruntime-node";
import { differentiate, GRADIENT_OPSET } from "../../../lib/core/backdoor/gradient";
import { type OnnxModel, type OnnxNode, type OnnxTensor, writeOnnxModel } from "../../../lib/core/backdoor/onnx-model";
import { probeShapes } from "../../../lib/core/backdoor/runtime";
import { DataType } from "../../../lib/core/formats/onnx-wire";
import { rng } from "../../helpers/rng";

export { rng };

export const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** Values in [lo, hi). */
export function uniform(n: number, seed: number, lo = -1, hi = 1): Float32Array {
	const r = rng(seed);
	return Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
}

/**
 * Distinct values at least `gap` apart, shuffled, none within gap/2 of zero:
 * piecewise-linear ops (Relu, MaxPool) then have no kink within a finite-difference step.
 */
export function spread(n: number, seed: number, gap = 0.05): Float32Array {
	const r = rng(seed);
	const v = Array.from({ length: n }, (_, i) => (i - Math.floor(n / 2) + 0.5) * gap);
	for (let i = n - 1; i > 0; i--) {
		const j = Math.floor(r() * (i + 1));
		[v[i], v[j]] = [v[j] as number, v[i] as number];
	}
	return Float32Array.from(v);
}

export const f32 = (name: string, dims: number[], data: Float32Array): OnnxTensor => ({
	name,
	dataType: DataType.FLOAT,
	dims,
	data,
});
export const i64 = (name: string, values: number[]): OnnxTensor => ({
	name,
	dataType: DataType.INT64,
	dims: [values.length],
	data: BigInt64Array.from(values, BigInt),
});

export function node(
	opType: string,
	inputs: string[],
	outputs: string[],
	attributes: OnnxNode["attributes"] = [],
): OnnxNode {
	return { opType, domain: "", name: `${opType}_${outputs[0] ?? ""}`, inputs, outputs, attributes };
}

/** An input fed as given and not differentiated (token ids, an attention mask, indices). */
export type FixedInput =
	| { name: string; dims: number[]; type: "int64"; data: BigInt64Array }
	| { name: string; dims: number[]; type: "float32"; data: Float32Array };

export interface GradCase {
	/** Float inputs that are differentiated. */
	inputs: { name: string; dims: number[]; data: Float32Array }[];
	fixed?: FixedInput[];
	initializers?: OnnxTensor[];
	nodes: OnnxNode[];
	output: string;
	opset?: number;
	eps?: number;
}

export interface GradCheck {
	analytic: Float64Array;
	numeric: Float64Array;
	/** max |analytic − numeric| / (atol + rtol·|numeric|): ≤ 1 passes. */
	worst: number;
}

function model(
	c: GradCase,
	nodes: OnnxNode[],
	initializers: OnnxTensor[],
	outputs: string[],
	version = c.opset ?? GRADIENT_OPSET,
): OnnxModel {
	return {
		irVersion: 8,
		opsetImports: [{ domain: "", version }],
		producerName: "test",
		graph: {
			name: "t",
			nodes,
			initializers,
			inputs: [
				...c.inputs.map((i) => ({ name: i.name, elemType: DataType.FLOAT, shape: i.dims })),
				...(c.fixed ?? []).map((i) => ({
					name: i.name,
					elemType: i.type === "int64" ? DataType.INT64 : DataType.FLOAT,
					shape: i.dims,
				})),
			],
			outputs: outputs.map((name) => ({ name, elemType: DataType.FLOAT, shape: null })),
		},
	};
}

const feedsOf = (c: GradCase, data: Float32Array[]) =>
	Object.fromEntries([
		...c.inputs.map((inp, i) => [inp.name, new ort.Tensor("float32", data[i] as Float32Array, inp.dims)]),
		...(c.fixed ?? []).map((inp) => [inp.name, new ort.Tensor(inp.type, inp.data, inp.dims)]),
	]);

export async function checkGradient(c: GradCase, atol = 2e-3, rtol = 1e-2): Promise<GradCheck> {
	const inits = c.initializers ?? [];
	const fwd = model(c, c.nodes, inits, [c.output]);
	const shapes = await probeShapes(
		fwd,
		Object.fromEntries([
			...c.inputs.map((i) => [i.name, { type: "float32" as const, dims: i.dims }]),
			...(c.fixed ?? []).map((i) => [i.name, { type: i.type, dims: i.dims }]),
		]),
	);
	const yShape = shapes.get(c.output) as number[];
	const r = uniform(size(yShape), 99, -1, 1);

	// as in production (nc-graph.ts), the gradient graph runs at the model's opset raised to GRADIENT_OPSET
	const opset = c.opset ?? GRADIENT_OPSET;
	const withLoss = model(
		c,
		[
			...c.nodes,
			node("Mul", [c.output, "r"], ["yr"]),
			node("ReduceSum", ["yr"], ["loss"], [{ name: "keepdims", type: "int", value: 0 }]),
		],
		[...inits, f32("r", yShape, r)],
		[],
		Math.max(opset, GRADIENT_OPSET),
	);
	for (const [k, v] of [
		["yr", yShape],
		["loss", []],
	] as const)
		shapes.set(k, [...v]);
	const { graph, grads } = differentiate(withLoss.graph, {
		loss: "loss",
		wrt: c.inputs.map((i) => i.name),
		shapes,
		opset,
	});
	graph.outputs = c.inputs.map((i) => ({ name: grads.get(i.name) as string, elemType: DataType.FLOAT, shape: null }));
	const gs = await ort.InferenceSession.create(writeOnnxModel({ ...withLoss, graph }));
	const base = c.inputs.map((i) => i.data);
	const gr = await gs.run(feedsOf(c, base));
	const analytic = Float64Array.from(
		c.inputs.flatMap((i) => Array.from((gr[grads.get(i.name) as string] as ort.Tensor).data as Float32Array)),
	);

	const fs = await ort.InferenceSession.create(writeOnnxModel(fwd));
	const loss = async (data: Float32Array[]) => {
		const y = (await fs.run(feedsOf(c, data)))[c.output] as ort.Tensor;
		let s = 0;
		(y.data as Float32Array).forEach((v, i) => {
			s += v * (r[i] as number);
		});
		return s;
	};
	const eps = c.eps ?? 1e-3;
	const numeric = new Float64Array(analytic.length);
	let k = 0;
	for (let j = 0; j < base.length; j++) {
		const src = base[j] as Float32Array;
		for (let i = 0; i < src.length; i++) {
			const plus = base.map((b) => b.slice());
			const minus = base.map((b) => b.slice());
			(plus[j] as Float32Array)[i] = (src[i] as number) + eps;
			(minus[j] as Float32Array)[i] = (src[i] as number) - eps;
			const h = Math.fround((src[i] as number) + eps) - Math.fround((src[i] as number) - eps);
			numeric[k++] = ((await loss(plus)) - (await loss(minus))) / h;
		}
	}
	await gs.release();
	await fs.release();
	let worst = 0;
	analytic.forEach((a, i) => {
		const n = numeric[i] as number;
		worst = Math.max(worst, Math.abs(a - n) / (atol + rtol * Math.abs(n)));
	});
	return { analytic, numeric, worst };
}

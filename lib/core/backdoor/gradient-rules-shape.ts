/**
 * Gradient rules of the ops that move or copy elements without changing them:
 * reshapes, Transpose, Concat, Split, Pad and Slice (each undone by its
 * inverse), Expand and Gather (copies, whose gradients are summed back).
 */
import { DataType } from "../formats/onnx-wire";
import {
	input,
	output,
	prod,
	type RuleContext,
	type RuleTable,
	unbroadcast,
	unsupported,
	zeros,
} from "./gradient-rule";
import { attrInt, attrInts, attrString, getInt, getInts, getString } from "./node-attributes";

function reshapeBack(c: RuleContext): (string | undefined)[] {
	return [c.e.op1("Reshape", [c.dy, c.e.i64([...c.shape(input(c, 0))])])];
}

const normAxis = (a: number, rank: number) => (a < 0 ? a + rank : a);

/**
 * Gather's indices as int64 of shape `dims` ([1…, q, 1…], to broadcast against dy
 * viewed as [...pre, q, ...post]), negatives resolved: folded when constant,
 * else computed at run time.
 */
function gatherIndices(c: RuleContext, dim: number, dims: number[]): string {
	const name = input(c, 1);
	const known = c.constInts(name);
	if (known !== undefined)
		return c.e.tensor(
			DataType.INT64,
			dims,
			BigInt64Array.from(known, (i) => BigInt(i < 0 ? i + dim : i)),
		);
	const idx = c.e.op1("Reshape", [c.e.op1("Cast", [name], [attrInt("to", DataType.INT64)]), c.e.i64(dims)]);
	const wrapped = c.e.op1("Add", [idx, c.e.i64([dim])]);
	return c.e.op1("Where", [c.e.op1("Less", [idx, c.e.i64([0])]), wrapped, idx]);
}

/**
 * The inverse of picking `positions` (distinct) along `axis` of a dim-long axis:
 * dy gains one zero slice at the end, and every input position gathers its
 * output slice, or that zero when nothing picked it.
 */
function unpick(c: RuleContext, g: string, axis: number, positions: number[], dim: number, rank: number): string {
	const pads: number[] = Array(2 * rank).fill(0);
	pads[axis + rank] = 1;
	const padded = c.e.op1("Pad", [g, c.e.i64(pads)]);
	const from: number[] = Array(dim).fill(positions.length);
	positions.forEach((p, k) => {
		from[p] = k;
	});
	return c.e.op1("Gather", [padded, c.e.i64(from)], [attrInt("axis", axis)]);
}

export const SHAPE_RULES: RuleTable = {
	Flatten: reshapeBack,
	Reshape: reshapeBack,
	Squeeze: reshapeBack,
	Unsqueeze: reshapeBack,
	Transpose: (c) => {
		const rank = c.shape(input(c, 0)).length;
		const perm = getInts(c.node, "perm") ?? Array.from({ length: rank }, (_, i) => rank - 1 - i);
		const inv: number[] = Array(rank).fill(0);
		perm.forEach((p, i) => {
			inv[p] = i;
		});
		return [c.e.op1("Transpose", [c.dy], [attrInts("perm", inv)])];
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
		if (stepsName && steps === undefined) throw unsupported(c.node, "steps must be constant");
		// the output length fixes where a slice ends, so only starts and steps are needed
		const pads: number[] = Array(2 * rank).fill(0);
		const strided: { axis: number; positions: number[] }[] = [];
		axes.forEach((a, i) => {
			const axis = normAxis(a, rank);
			const dim = xs[axis] as number;
			const len = ys[axis] as number;
			const step = steps?.[i] ?? 1;
			const s = starts[i] as number;
			const begin = Math.min(Math.max(s < 0 ? s + dim : s, 0), step > 0 ? dim : dim - 1);
			if (step === 1) {
				pads[axis] = begin;
				pads[axis + rank] = dim - begin - len;
			} else strided.push({ axis, positions: Array.from({ length: len }, (_, k) => begin + k * step) });
		});
		let g = pads.some((p) => p !== 0) ? c.e.op1("Pad", [c.dy, c.e.i64(pads)]) : c.dy;
		for (const { axis, positions } of strided) g = unpick(c, g, axis, positions, xs[axis] as number, rank);
		return [g];
	},
	Expand: (c) => [unbroadcast(c.e, c.dy, c.shape(output(c)), c.shape(input(c, 0)))],
	Split: (c) => {
		const rank = c.shape(input(c, 0)).length;
		const axis = normAxis(getInt(c.node, "axis", 0), rank);
		// parts that no gradient reached contribute zeros
		const parts = c.node.outputs.map((o, i) => c.dyAt(i) ?? zeros(c.e, c.shape(o)));
		return [parts.length === 1 ? parts[0] : c.e.op1("Concat", parts, [attrInt("axis", axis)])];
	},
	Gather: (c) => {
		const xs = c.shape(input(c, 0));
		const axis = normAxis(getInt(c.node, "axis", 0), xs.length);
		const dim = xs[axis] as number;
		const q = prod(c.shape(input(c, 1)));
		const pre = xs.slice(0, axis);
		const post = xs.slice(axis + 1);
		const viewed = [...pre, q, ...post];
		const idx = gatherIndices(c, dim, [...pre.map(() => 1), q, ...post.map(() => 1)]);
		// an index picked twice receives both gradients, hence reduction "add" (opset 16);
		// ScatterElements rather than OneHot + MatMul: memory the size of dy, not of q × dim
		return [
			c.e.op1(
				"ScatterElements",
				[zeros(c.e, xs), c.e.op1("Expand", [idx, c.e.i64(viewed)]), c.e.op1("Reshape", [c.dy, c.e.i64(viewed)])],
				[attrInt("axis", axis), attrString("reduction", "add")],
			),
		];
	},
};

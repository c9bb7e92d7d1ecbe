/**
 * Gradient rules of the ops that move elements without changing them:
 * reshapes, Transpose, Concat, Pad and Slice (each undone by its inverse).
 */
import { input, output, type RuleContext, type RuleTable, unsupported } from "./gradient-rule";
import { attrInts, getInt, getInts, getString } from "./node-attributes";

function reshapeBack(c: RuleContext): (string | undefined)[] {
	return [c.e.op1("Reshape", [c.dy, c.e.i64([...c.shape(input(c, 0))])])];
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
};

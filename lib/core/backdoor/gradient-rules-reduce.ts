/**
 * Gradient rules of the reductions along axes: ReduceSum, ReduceMean, Softmax
 * and LogSoftmax (axes as attributes or, from the opset that moved them, inputs).
 */
import { input, output, prod, type Rule, type RuleContext, type RuleTable, unsupported } from "./gradient-rule";
import { attrInt, getInt, getInts } from "./node-attributes";

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

export const REDUCE_RULES: RuleTable = {
	ReduceSum: reduceRule(false, 13),
	ReduceMean: reduceRule(true, 18),
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
};

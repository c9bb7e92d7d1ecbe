/**
 * Gradient rules of the pointwise ops (activations, arithmetic with numpy
 * broadcasting, Pow, Where, Sum, Cast): the input gradient is dy times the
 * local derivative, summed back over broadcast axes.
 */
import { DataType } from "../formats/onnx-wire";
import { input, output, type RuleContext, type RuleTable, unbroadcast, unsupported } from "./gradient-rule";
import { attrInt, getFloat } from "./node-attributes";
import type { OnnxTensor } from "./onnx-model";

function binary(c: RuleContext, da: () => string, db: () => string): (string | undefined)[] {
	const ys = c.shape(output(c));
	return [
		c.needs(0) ? unbroadcast(c.e, da(), ys, c.shape(input(c, 0))) : undefined,
		c.needs(1) ? unbroadcast(c.e, db(), ys, c.shape(input(c, 1))) : undefined,
	];
}

/** Exponent types whose values read exactly as numbers (float16 is stored as raw bits). */
const NUMERIC = new Set<number>([DataType.FLOAT, DataType.DOUBLE, DataType.INT32, DataType.INT64]);

/** p · x^(p−1) for an exponent that does not depend on the input. */
function powDerivative(c: RuleContext, exponent: OnnxTensor | undefined): string {
	const x = input(c, 0);
	if (exponent !== undefined && NUMERIC.has(exponent.dataType)) {
		const p = Array.from(exponent.data as ArrayLike<number | bigint>, Number);
		// the variance of a decomposed LayerNorm: (x − μ)²
		if (p.every((v) => v === 2)) return c.e.op1("Mul", [x, c.e.f32(2)]);
		const t = (values: number[]) => c.e.tensor(DataType.FLOAT, exponent.dims, Float32Array.from(values));
		return c.e.op1("Mul", [t(p), c.e.op1("Pow", [x, t(p.map((v) => v - 1))])]);
	}
	// computed at run time (an input or an initializer of another type): the same formula as ops
	const p = c.e.op1("Cast", [input(c, 1)], [attrInt("to", DataType.FLOAT)]);
	return c.e.op1("Mul", [p, c.e.op1("Pow", [x, c.e.op1("Sub", [p, c.e.f32(1)])])]);
}

export const ELEMENTWISE_RULES: RuleTable = {
	Identity: (c) => [c.dy],
	Dropout: (c) => [c.dy],
	Cast: (c) => [c.e.op1("Cast", [c.dy], [attrInt("to", DataType.FLOAT)])],
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
	Pow: (c) => {
		if (c.needs(1)) throw unsupported(c.node, "the exponent depends on the input");
		const g = c.e.op1("Mul", [c.dy, powDerivative(c, c.constTensor(input(c, 1)))]);
		return [unbroadcast(c.e, g, c.shape(output(c)), c.shape(input(c, 0)))];
	},
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
};

/**
 * Gradient rules of the pointwise ops (activations, arithmetic with numpy
 * broadcasting, Where, Sum, Cast): the input gradient is dy times the local
 * derivative, summed back over broadcast axes.
 */
import { DataType } from "../formats/onnx-wire";
import { input, output, type RuleContext, type RuleTable, unbroadcast, unsupported } from "./gradient-rule";
import { attrInt, getFloat } from "./node-attributes";

function binary(c: RuleContext, da: () => string, db: () => string): (string | undefined)[] {
	const ys = c.shape(output(c));
	return [
		c.needs(0) ? unbroadcast(c.e, da(), ys, c.shape(input(c, 0))) : undefined,
		c.needs(1) ? unbroadcast(c.e, db(), ys, c.shape(input(c, 1))) : undefined,
	];
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

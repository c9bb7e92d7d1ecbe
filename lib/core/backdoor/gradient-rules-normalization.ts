/**
 * Gradient rule of LayerNormalization (opset 17): the statistics are
 * recomputed from X with ReduceSum, whose axes-as-input signature holds at
 * every opset the result runs at (ReduceMean's changes at 18).
 */
import { input, output, type RuleTable, unbroadcast } from "./gradient-rule";
import { attrInt, getFloat, getInt } from "./node-attributes";

export const NORMALIZATION_RULES: RuleTable = {
	/**
	 * Over the normalized axes (N elements), with x̂ = (x − μ)·r, r = 1/√(σ² + ε)
	 * and g = dy·Scale: dX = r·(g − mean(g) − x̂·mean(g·x̂)), dScale = Σ dy·x̂,
	 * dB = Σ dy. Mean and InvStdDev outputs carry no gradient here (the driver
	 * refuses a node whose rule leaves a reached output unread).
	 */
	LayerNormalization: (c) => {
		const x = input(c, 0);
		const xs = c.shape(x);
		const rank = xs.length;
		const a = getInt(c.node, "axis", -1);
		const from = a < 0 ? a + rank : a;
		const axes = c.e.i64(Array.from({ length: rank - from }, (_, i) => from + i));
		const n = xs.slice(from).reduce((p, d) => p * d, 1);
		const mean = (t: string) =>
			c.e.op1("Mul", [c.e.op1("ReduceSum", [t, axes], [attrInt("keepdims", 1)]), c.e.f32(1 / n)]);
		const centred = c.e.op1("Sub", [x, mean(x)]);
		const variance = mean(c.e.op1("Mul", [centred, centred]));
		const eps = c.e.f32(getFloat(c.node, "epsilon", 1e-5));
		const r = c.e.op1("Reciprocal", [c.e.op1("Sqrt", [c.e.op1("Add", [variance, eps])])]);
		const xhat = c.e.op1("Mul", [centred, r]);
		const ys = c.shape(output(c));
		const out: (string | undefined)[] = [undefined, undefined, undefined];
		if (c.needs(0)) {
			const g = c.e.op1("Mul", [c.dy, input(c, 1)]);
			const spread = c.e.op1("Sub", [
				c.e.op1("Sub", [g, mean(g)]),
				c.e.op1("Mul", [xhat, mean(c.e.op1("Mul", [g, xhat]))]),
			]);
			out[0] = c.e.op1("Mul", [r, spread]);
		}
		if (c.needs(1)) out[1] = unbroadcast(c.e, c.e.op1("Mul", [c.dy, xhat]), ys, c.shape(input(c, 1)));
		if (c.needs(2)) out[2] = unbroadcast(c.e, c.dy, ys, c.shape(input(c, 2)));
		return out;
	},
};

/**
 * Gradient rules of the matrix products (Gemm, MatMul): products with the
 * other operand transposed, batch axes summed back over broadcasting.
 */
import { input, output, type RuleTable, unbroadcast, unsupported } from "./gradient-rule";
import { attrFloat, attrInt, attrInts, getFloat, getInt } from "./node-attributes";

export const MATMUL_RULES: RuleTable = {
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
};

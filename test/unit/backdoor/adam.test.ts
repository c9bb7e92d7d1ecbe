import { describe, expect, it } from "vitest";
import { Adam } from "../../../lib/core/backdoor/adam";

describe("Adam", () => {
	it("follows torch.optim.Adam for two steps (hand-computed, lr 0.1, betas 0.5/0.9, eps 1e-8)", () => {
		const theta = new Float32Array([1, -0.5]);
		const opt = new Adam(2);
		// step 1, g = [0.2, -1]: m = [0.1, −0.5], v = [0.004, 0.1]; bias corrections 0.5 and 0.1
		// give m̂ = g, √v̂ = |g|, so θ moves by lr·g/(|g| + eps).
		opt.step(theta, [0.2, -1]);
		const t1 = [1 - (0.1 * 0.2) / (0.2 + 1e-8), -0.5 + (0.1 * 1) / (1 + 1e-8)];
		expect(theta[0]).toBeCloseTo(t1[0] as number, 6);
		expect(theta[1]).toBeCloseTo(t1[1] as number, 6);
		// step 2, g = [0.1, 0.5]: m = 0.5·m + 0.5·g = [0.1, 0]; v = 0.9·v + 0.1·g² = [0.0046, 0.115];
		// bias corrections 1 − 0.5² = 0.75 and 1 − 0.9² = 0.19.
		opt.step(theta, [0.1, 0.5]);
		const t2 = [(t1[0] as number) - (0.1 * (0.1 / 0.75)) / (Math.sqrt(0.0046 / 0.19) + 1e-8), t1[1] as number];
		expect(theta[0]).toBeCloseTo(t2[0] as number, 6);
		expect(theta[0]).toBeCloseTo(0.8143087, 6);
		expect(theta[1]).toBeCloseTo(t2[1] as number, 6);
		expect(opt.steps).toBe(2);
	});

	it("adds eps after the bias-corrected square root (torch), visible for tiny gradients", () => {
		const theta = new Float32Array([0]);
		const opt = new Adam(1, { lr: 1, eps: 1e-3 });
		opt.step(theta, [1e-3]);
		// m̂ = 1e-3, √v̂ = 1e-3: step = 1e-3 / (1e-3 + 1e-3) = 0.5 (eps inside the un-corrected √v would give ≈ 0.24)
		expect(theta[0]).toBeCloseTo(-0.5, 6);
	});

	it("takes its options and refuses mismatched sizes", () => {
		const theta = new Float32Array([0, 0, 0]);
		const opt = new Adam(3, { lr: 0.01, beta1: 0.9, beta2: 0.999 });
		opt.step(theta, [1, -2, 0]);
		expect(Array.from(theta)).toEqual([expect.closeTo(-0.01, 6), expect.closeTo(0.01, 6), 0]);
		expect(() => opt.step(new Float32Array(2), [1, 2])).toThrow(RangeError);
	});
});

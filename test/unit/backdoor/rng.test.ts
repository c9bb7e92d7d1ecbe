/** The seeded PRNG (rng.ts): reproducible per seed and stream, and the distributions it draws from. */
import { describe, expect, it } from "vitest";
import { Rng } from "../../../lib/core/backdoor/rng";
import { mean, std } from "../../../lib/core/backdoor/summary-stats";

describe("Rng", () => {
	it("is deterministic per seed and stream, and differs across them", () => {
		const a = Array.from(
			{ length: 5 },
			(
				(r) => () =>
					r.nextU32()
			)(new Rng(7)),
		);
		const b = Array.from(
			{ length: 5 },
			(
				(r) => () =>
					r.nextU32()
			)(new Rng(7)),
		);
		const c = Array.from(
			{ length: 5 },
			(
				(r) => () =>
					r.nextU32()
			)(new Rng(8)),
		);
		const d = Array.from(
			{ length: 5 },
			(
				(r) => () =>
					r.nextU32()
			)(new Rng(7, 1)),
		);
		expect(a).toEqual(b);
		expect(a).not.toEqual(c);
		expect(a).not.toEqual(d);
	});

	it("gives uniforms in (0, 1), standard normals and permutations", () => {
		const r = new Rng(1);
		const u = Array.from({ length: 20000 }, () => r.uniform());
		expect(Math.min(...u)).toBeGreaterThan(0);
		expect(Math.max(...u)).toBeLessThan(1);
		expect(mean(u)).toBeCloseTo(0.5, 1);
		const z = Array.from({ length: 20000 }, () => r.normal());
		expect(Math.abs(mean(z))).toBeLessThan(0.03);
		expect(std(z)).toBeCloseTo(1, 1);
		const p = r.permutation(50);
		expect(Array.from(p).sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => i));
		expect(Array.from(p)).not.toEqual(Array.from({ length: 50 }, (_, i) => i));
	});
});

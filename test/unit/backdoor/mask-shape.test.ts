/** The reversed mask's concentration (lib/core/backdoor/mask-shape.ts): the densest 3/8-side window's share. */
import { describe, expect, it } from "vitest";
import { maskConcentration, windowSide } from "../../../lib/core/backdoor/mask-shape";

function block(h: number, w: number, r0: number, c0: number, size: number, v = 1): Float32Array {
	const m = new Float32Array(h * w);
	for (let i = r0; i < r0 + size; i++) for (let j = c0; j < c0 + size; j++) m[i * w + j] = v;
	return m;
}

/** The same share by summing every window outright. */
function naive(m: ArrayLike<number>, h: number, w: number): number {
	const kh = windowSide(h);
	const kw = windowSide(w);
	let total = 0;
	for (let i = 0; i < h * w; i++) total += Math.max(0, m[i] as number);
	let best = 0;
	for (let i = 0; i + kh <= h; i++)
		for (let j = 0; j + kw <= w; j++) {
			let s = 0;
			for (let a = 0; a < kh; a++) for (let b = 0; b < kw; b++) s += Math.max(0, m[(i + a) * w + j + b] as number);
			best = Math.max(best, s);
		}
	return total > 0 ? best / total : 1;
}

describe("maskConcentration", () => {
	it("a window of 3/8 of each side: 6 on 16, 3 on 8, 84 on 224, at least 1", () => {
		expect([16, 8, 224, 2, 1].map(windowSide)).toEqual([6, 3, 84, 1, 1]);
	});

	it("a patch inside one window is all of it; a 9×9 block 36/81; a uniform mask 36/256", () => {
		expect(maskConcentration(block(16, 16, 0, 13, 3), 16, 16)).toBe(1);
		expect(maskConcentration(block(16, 16, 7, 7, 9), 16, 16)).toBeCloseTo(36 / 81, 12);
		expect(maskConcentration(new Float32Array(256).fill(0.3), 16, 16)).toBeCloseTo(36 / 256, 12);
	});

	it("does not depend on the mask's scale (a trigger's strength is not its shape)", () => {
		const m = block(16, 16, 2, 3, 4, 0.2);
		m[255] = 0.1;
		const scaled = m.map((v) => v * 7);
		expect(maskConcentration(scaled, 16, 16)).toBeCloseTo(maskConcentration(m, 16, 16), 12);
	});

	it("equals summing every window outright on random masks, square and not", () => {
		let seed = 7;
		const rand = () => {
			seed = (seed * 1103515245 + 12345) % 2 ** 31;
			return seed / 2 ** 31;
		};
		for (const [h, w] of [
			[16, 16],
			[8, 8],
			[28, 28],
			[5, 13],
		] as const) {
			const m = Float32Array.from({ length: h * w }, () => (rand() < 0.3 ? rand() : 0));
			expect(maskConcentration(m, h, w)).toBeCloseTo(naive(m, h, w), 10);
		}
	});

	it("a mask with no mass is 1 (nothing to spread); a mask of the wrong size is refused", () => {
		expect(maskConcentration(new Float32Array(64), 8, 8)).toBe(1);
		expect(() => maskConcentration(new Float32Array(63), 8, 8)).toThrow(RangeError);
		expect(() => maskConcentration(new Float32Array(0), 0, 0)).toThrow(RangeError);
	});
});

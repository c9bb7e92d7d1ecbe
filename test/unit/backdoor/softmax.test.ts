/** Softmax and its entropy in bits (softmax.ts), STRIP's score. */
import { describe, expect, it } from "vitest";
import { softmax, softmaxEntropy } from "../../../lib/core/backdoor/softmax";

describe("softmax entropy", () => {
	it("matches hand-computed values in bits", () => {
		expect(softmaxEntropy([0, 0, 0, 0])).toBeCloseTo(2, 12);
		expect(softmaxEntropy([1000, 0, 0])).toBeCloseTo(0, 12);
		// p = [1/4, 3/4]: −(0.25 log2 0.25 + 0.75 log2 0.75) = 0.811278...
		expect(softmaxEntropy([0, Math.log(3)])).toBeCloseTo(0.8112781244591328, 12);
		expect(Array.from(softmax([9, 0, Math.log(3), 9], 1, 2))).toEqual([
			expect.closeTo(0.25, 14),
			expect.closeTo(0.75, 14),
		]);
		expect(softmaxEntropy([7, 0, Math.log(3), 7], 1, 2)).toBeCloseTo(0.8112781244591328, 12);
	});
});

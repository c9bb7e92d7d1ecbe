import { readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { judgeNeuralCleanse, lowSideIndex, type NcRule } from "../../../lib/core/backdoor/verdict";

const FTGUARD: NcRule = { rule: "ftguard", anomalyThreshold: 2, maxRelativeL1: 0.5 };
const VANILLA: NcRule = { ...FTGUARD, rule: "vanilla" };
const flagged = (l1: number[], rule: NcRule = FTGUARD) =>
	judgeNeuralCleanse(l1, rule)
		.filter((e) => e.flagged)
		.map((e) => e.cls);

describe("Neural Cleanse verdict rules", () => {
	it("when one class's trigger is a fraction of the others', both rules flag it", () => {
		const l1 = [11.3, 12.8, 9.8, 3.6, 10.7, 9.8, 12.3, 11.8, 11.0, 10.1];
		expect(flagged(l1)).toEqual([3]);
		expect(flagged(l1, VANILLA)).toEqual([3]);
	});

	it("when the clean classes' norms spread widely, the log-scale rule still finds a much smaller trigger the vanilla rule misses", () => {
		// the shape reported for the 3×16×16 family: target smallest, others 13–58
		const l1 = [5, 13, 18, 22, 27, 31, 36, 44, 51, 58];
		const e = judgeNeuralCleanse(l1, FTGUARD)[0];
		expect(e?.anomalyIndex).toBeLessThan(2); // vanilla: 1.6, missed
		expect(flagged(l1, VANILLA)).toEqual([]);
		expect(e?.logAnomalyIndex).toBeGreaterThan(2);
		expect(flagged(l1)).toEqual([0]);
	});

	it("when a clean class is merely easy to reach (an outlier but not a small trigger), only vanilla flags it", () => {
		// measured shape: digits8 mlp-clean-s2 at 100 steps, class 4 at 0.63× the median
		const l1 = [11.2, 10.5, 9.4, 10.1, 6.4, 9.1, 11.0, 7.3, 11.3, 11.2];
		expect(flagged(l1, VANILLA)).toEqual([4, 7]);
		const e = judgeNeuralCleanse(l1, FTGUARD)[4];
		expect(e?.relativeL1).toBeGreaterThan(0.5);
		expect(flagged(l1)).toEqual([]);
	});

	it("never flags a class whose trigger is larger than the median, however anomalous", () => {
		const l1 = [10, 10.2, 9.9, 10.1, 60, 10, 9.8, 10.3, 10.1, 9.9];
		expect(flagged(l1)).toEqual([]);
		expect(flagged(l1, VANILLA)).toEqual([]);
	});

	it("is invariant to the scale of the norms (a 16×16 mask vs an 8×8 one)", () => {
		fc.assert(
			fc.property(
				fc.array(fc.double({ min: 0.5, max: 100, noNaN: true }), { minLength: 3, maxLength: 40 }),
				fc.double({ min: 0.01, max: 100, noNaN: true }),
				(l1, k) => {
					const scaled = l1.map((v) => v * k);
					expect(flagged(scaled)).toEqual(flagged(l1));
				},
			),
			{ numRuns: 200 },
		);
	});

	it("identical norms give index 0 everywhere, not a division by zero", () => {
		const r = lowSideIndex([4, 4, 4, 4]);
		expect(r.indices).toEqual([0, 0, 0, 0]);
		expect(flagged([4, 4, 4, 4, 4, 4])).toEqual([]);
		// half the classes equal: MAD is 0, yet a much smaller trigger is still an outlier and is flagged
		expect(flagged([10, 10, 10, 10, 10, 10, 11, 12, 2, 13])).toEqual([8]);
	});
});

describe("the rules on the PyTorch reference's own L1 norms", () => {
	// bench/reference/neural_cleanse.py, 300 steps, seeds 0 and 1, on every fixture model:
	// an independent implementation, so this checks the rule, not ftguard's optimiser
	const ref = JSON.parse(readFileSync(join(__dirname, "../../fixtures/backdoor/reference-results.json"), "utf8")) as {
		models: Array<{ file: string; target: number | null; runs: Record<string, { l1_norms?: number[] }> }>;
	};
	const runs = ref.models.flatMap((m) =>
		Object.entries(m.runs)
			.filter(([, r]) => r.l1_norms !== undefined)
			.map(([seed, r]) => ({ name: `${m.file} seed ${seed}`, target: m.target, l1: r.l1_norms as number[] })),
	);

	it("ftguard's rule flags exactly the true target of every backdoored model and nothing on clean ones", () => {
		expect(runs.length).toBeGreaterThanOrEqual(48);
		const wrong = runs.filter(
			(r) => JSON.stringify(flagged(r.l1)) !== JSON.stringify(r.target === null ? [] : [r.target]),
		);
		expect(wrong.map((r) => r.name)).toEqual([]);
	});

	it("the vanilla rule, on the same norms, false-flags clean models", () => {
		const falseAlarms = runs.filter((r) => r.target === null && flagged(r.l1, VANILLA).length > 0);
		expect(falseAlarms.length).toBeGreaterThanOrEqual(3);
	});
});

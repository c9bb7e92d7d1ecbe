/**
 * The calibrated verdict's report block and reasons (scan-calibrated.ts) on a population model's own figures: the
 * calibrated p-values, Neural Cleanse's own rule judged beside them, and a model outside the population.
 */
import { describe, expect, it } from "vitest";
import { judgeModel } from "../../../lib/core/backdoor/calibration";
import { CALIBRATIONS } from "../../../lib/core/backdoor/calibration-table";
import type { BackdoorReport } from "../../../lib/core/backdoor/scan";
import { judgeCalibrated } from "../../../lib/core/backdoor/scan-calibrated";
import { judgeNeuralCleanse } from "../../../lib/core/backdoor/verdict";
import { FtguardError } from "../../../lib/core/errors";
import { defaultBackdoorPolicy } from "../../../lib/core/policy/backdoor";
import { loadPopulation } from "../../helpers/backdoor-population";

const policy = defaultBackdoorPolicy();
const population = loadPopulation();
const model = (file: string) => {
	const m = population.find((x) => x.file === file);
	if (m === undefined) throw new Error(`${file} not in the population`);
	return m.evidence;
};

/** The report a scan has built when the calibrated block is judged: Neural Cleanse and the pair grid. */
function reportOf(l1: number[], pairs: Array<Array<number | null>>, maskSize: number): BackdoorReport {
	const evidence = judgeNeuralCleanse(l1, { rule: "ftguard", anomalyThreshold: 2, maxRelativeL1: 0.5 });
	return {
		detectors: {
			neural_cleanse: {
				rule: "calibrated",
				l1_norms: l1,
				anomaly_indices: evidence.map((e) => e.anomalyIndex),
				log_anomaly_indices: evidence.map((e) => Number(e.logAnomalyIndex.toFixed(4))),
				relative_l1: evidence.map((e) => Number(e.relativeL1.toFixed(4))),
				flagged_classes: evidence.filter((e) => e.flagged).map((e) => e.cls),
				flagged_classes_vanilla: [],
				max_anomaly_index: Math.max(0, ...evidence.filter((e) => e.relativeL1 <= 0.5).map((e) => e.logAnomalyIndex)),
				mask_size: maskSize,
				attack_success: l1.map(() => 1),
				restarts: 1,
				steps: 100,
			},
			neural_cleanse_pairs: { steps: 60, restarts: 1, targets: l1.map((_, i) => i), l1: pairs, attack_success: [] },
		},
	} as unknown as BackdoorReport;
}

function judge(r: BackdoorReport, C: number) {
	const reasons = new Map<number, string[]>();
	judgeCalibrated(r, policy, C, (c, why) => reasons.set(c, [...(reasons.get(c) ?? []), why]));
	return reasons;
}

describe("judgeCalibrated", () => {
	it("flags a class Neural Cleanse's own rule flags though its calibrated p-value stays above α / C", () => {
		const e = model("c10/cnn-clean-s1.onnx");
		const ncRule = { anomalyThreshold: 2, maxRelativeL1: 0.5 };
		// shrink class 3's trigger until Neural Cleanse's rule flags it while the p-values do not (the red team's 4×4
		// patch: target p 0.0013 against 0.001, flagged by that rule alone)
		let l1: number[] | undefined;
		for (let f = 1; f > 0.2 && l1 === undefined; f -= 0.01) {
			const t = e.ncL1.map((v, c) => (c === 3 ? v * f : v));
			const j = judgeModel({ ...e, ncL1: t }, CALIBRATIONS, 0.01, ncRule);
			if (j.ncFlagged.includes(3) && !j.scores[3]?.flagged) l1 = t;
		}
		expect(l1).toBeDefined();
		const r = reportOf(l1 as number[], e.pairL1 as Array<Array<number | null>>, e.maskSize);
		const reasons = judge(r, 10);
		expect([...reasons.keys()]).toEqual([3]);
		expect(reasons.get(3)?.[0]).toMatch(/^neural_cleanse: .*judged beside the calibrated p-values\)$/);
		expect(r.detectors.calibrated?.flagged_classes).toEqual([]);
		expect(r.detectors.calibrated?.population?.limit).toBe(2.326);
		// the alarm metric stays above the threshold: Neural Cleanse's own index
		expect(r.detectors.neural_cleanse?.max_anomaly_index).toBeGreaterThan(2);
	});

	it("outside the population names only what Neural Cleanse's own rule flags, else refuses", () => {
		const named = model("c10/patchln-patch-t4-p8.onnx");
		const r = reportOf(named.ncL1 as number[], named.pairL1 as Array<Array<number | null>>, named.maskSize);
		const reasons = judge(r, 10);
		expect([...reasons.keys()]).toEqual([4]);
		expect(reasons.get(4)?.[0]).toMatch(/^calibrated: outside the calibration population .*own rule decides/);
		expect(r.detectors.calibrated?.outside?.decided_by).toBe("neural_cleanse");
		expect(r.detectors.calibrated?.flagged_classes).toEqual([4]);
		const clean = model("c5/patchln-clean-s1.onnx");
		expect(() =>
			judge(reportOf(clean.ncL1 as number[], clean.pairL1 as Array<Array<number | null>>, clean.maskSize), 5),
		).toThrow(FtguardError);
	});
});

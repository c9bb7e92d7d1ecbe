/**
 * The calibrated verdict's part of a backdoor scan (rule "calibrated"): calibration.ts judges the detectors' figures
 * against clean models; this writes the report's `detectors.calibrated` block, the alarm metric and the reasons.
 */
import { FtguardError } from "../errors";
import type { BackdoorPolicy } from "../policy/backdoor";
import { checkInsidePopulation, judgeModel, SHIFT_LIMIT } from "./calibration";
import { CALIBRATIONS } from "./calibration-table";
import { smallestPair } from "./nc-pairs";
import type { BackdoorReport } from "./scan";
import { round } from "./summary-stats";

export function judgeCalibrated(
	report: BackdoorReport,
	policy: BackdoorPolicy,
	numClasses: number,
	accuse: (cls: number, why: string) => void,
): void {
	const nc = report.detectors.neural_cleanse;
	if (nc === undefined) throw new FtguardError("INTERNAL", "calibrated verdict without Neural Cleanse");
	const alpha = policy.calibrated.falseAlarmRate;
	const judged = judgeModel(
		{
			numClasses,
			maskSize: nc.mask_size,
			ncL1: nc.l1_norms,
			ncConcentration: nc.concentration,
			pairL1: report.detectors.neural_cleanse_pairs?.l1,
			margins: report.detectors.max_margin?.margins,
		},
		CALIBRATIONS,
		alpha,
		{ anomalyThreshold: policy.neuralCleanse.anomalyThreshold, maxRelativeL1: policy.neuralCleanse.maxRelativeL1 },
	);
	// outside the population the table was fitted on: Neural Cleanse's own rule names what it flags, and a model
	// it flags nothing in is could not check (exit 2), never clean
	checkInsidePopulation(judged, alpha);
	const { calibration: CALIBRATION, scores, outside, ncFlagged } = judged;
	const per = scores.map((c) => ({
		cls: c.cls,
		score: round(c.stage === 2 ? (c.z.nc_area ?? 0) : (c.scores[c.strongest] ?? 0)),
		strongest: c.strongest,
		scores: Object.fromEntries(Object.entries(c.scores).map(([k, v]) => [k, round(v)])),
		p_value: c.pValue,
		z: Object.fromEntries(Object.entries(c.z).map(([k, v]) => [k, round(v)])),
		flagged: outside ? ncFlagged.includes(c.cls) : c.flagged,
		stage: c.stage,
	}));
	report.detectors.calibrated = {
		false_alarm_rate: alpha,
		calibration: {
			families: CALIBRATION.families.map((f) => f.name),
			statistics: CALIBRATION.families.flatMap((f) => f.statistics),
			...CALIBRATION.fitted,
		},
		per_class: per,
		flagged_classes: per.filter((c) => c.flagged).map((c) => c.cls),
		...(outside
			? { outside: { shift: round(outside.shift), limit: outside.limit, decided_by: "neural_cleanse" as const } }
			: {}),
		...(judged.shift === undefined ? {} : { population: { shift: round(judged.shift), limit: SHIFT_LIMIT } }),
	};
	if (outside) {
		// the metric stays Neural Cleanse's own index (above its threshold exactly when that rule flags a class)
		for (const c of ncFlagged)
			accuse(
				c,
				`calibrated: outside the calibration population (typical class ${round(outside.shift, 2)} robust SDs beyond its clean models', limit ${outside.limit}), so no stated rate holds and Neural Cleanse's own rule decides: reversed trigger L1 ${nc.l1_norms[c]} is ${nc.relative_l1[c]}× the median (log anomaly index ${nc.log_anomaly_indices[c]})`,
			);
	} else {
		// the alarm metric: above the threshold exactly when a class is flagged (p < α / C, or Neural Cleanse's own
		// rule, whose index nc.max_anomaly_index already is)
		const minP = Math.max(Math.min(...scores.map((c) => c.pValue)), Number.MIN_VALUE);
		nc.max_anomaly_index = round(
			Math.max(
				nc.max_anomaly_index,
				(policy.neuralCleanse.anomalyThreshold * Math.log(minP)) / Math.log(alpha / numClasses),
			),
		);
		const grid = report.detectors.neural_cleanse_pairs?.l1;
		const first = per.filter((c) => c.flagged && c.stage === 1).map((c) => c.cls);
		for (const c of per)
			if (c.flagged && c.stage === 2)
				accuse(
					c.cls,
					`calibrated: p = ${c.p_value.toPrecision(2)} < ${(alpha / numClasses).toPrecision(2)} (nc_area z ${c.score.toFixed(2)} against clean models, judged alone once class ${first.join(", ")} was flagged: the model's own classes are no clean reference when several are targets)`,
				);
			else if (c.flagged) {
				// a pair's evidence names its source: the smallest trigger's
				const from = c.strongest === "pairs" ? smallestPair(grid?.[c.cls] ?? []) : undefined;
				accuse(
					c.cls,
					`calibrated: p = ${c.p_value.toPrecision(2)} < ${(alpha / numClasses).toPrecision(2)} (${c.strongest} score ${round(c.score, 2)} against clean models${from ? `; smallest pair trigger from class ${from.source}, L1 ${from.l1}` : ""})`,
				);
			}
		// Neural Cleanse's own rule judges beside the p-values (calibration.ts ModelJudgement.ncFlagged)
		for (const c of ncFlagged)
			accuse(
				c,
				`neural_cleanse: reversed trigger L1 ${nc.l1_norms[c]} is ${nc.relative_l1[c]}× the median (log anomaly index ${nc.log_anomaly_indices[c]}; Neural Cleanse's own rule, judged beside the calibrated p-values)`,
			);
	}
}

/**
 * Fitting the calibrated verdict on a scanned population and measuring it: the code behind
 * `npm run calibrate:backdoor -- --fit` and test/unit/backdoor/calibration.test.ts. The
 * population is test/fixtures/backdoor-wide (manifest.json: each model's kind, true targets and
 * sources, and its split); scan-results.json holds what `ftguard backdoor --json` measured.
 */

import { defaultBackdoorPolicy } from "../policy/backdoor";
import {
	type CalibratedSearch,
	type Calibration,
	type DetectorFamily,
	fitCalibration,
	judgeModel,
	type ModelEvidence,
	scoreModel,
} from "./calibration";

/** One model of the population: what the manifest says it is, and what its scan measured. */
export interface PopulationModel {
	file: string;
	kind: string;
	arch: string;
	dataset: string;
	split: string;
	targets: number[];
	sources: number[] | null;
	evidence: ModelEvidence;
}

const NC: DetectorFamily = { name: "neural_cleanse", statistics: ["nc_area", "nc_relative"] };
const PAIRS: DetectorFamily = { name: "pairs", statistics: ["pair_area", "pair_relative"] };
const NC_RELATIVE: DetectorFamily = { name: "neural_cleanse", statistics: ["nc_relative"] };
const PAIRS_RELATIVE: DetectorFamily = { name: "pairs", statistics: ["pair_relative"] };
const MM: DetectorFamily = { name: "max_margin", statistics: ["mm_relative"] };
const CONC: DetectorFamily = { name: "concentration", statistics: ["nc_concentration"] };
/** size-independent evidence: a class whose reversed trigger is localised AND whose reachable margin is outlying */
const CONFIRM: DetectorFamily = {
	name: "localised_margin",
	statistics: ["nc_concentration", "mm_relative"],
	combine: "min",
};

/** Neural Cleanse's own rule at the policy's defaults: what decides outside the population (judgeModel). */
const NC_RULE = (({ anomalyThreshold, maxRelativeL1 }) => ({ anomalyThreshold, maxRelativeL1 }))(
	defaultBackdoorPolicy().neuralCleanse,
);

/** The detector sets with a calibration, and the families each is judged by. */
export const CALIBRATED_SETS: Record<string, DetectorFamily[]> = {
	nc: [NC],
	"nc+mm": [NC, MM],
	"nc+pairs": [NC, PAIRS],
	"nc+pairs+mm": [NC, PAIRS, MM],
	"nc+pairs relative": [NC_RELATIVE, PAIRS_RELATIVE],
	"nc+pairs+conc": [NC, PAIRS, CONC],
	"nc+pairs+confirm": [NC, PAIRS, CONFIRM],
	"nc+pairs+confirm relative": [NC_RELATIVE, PAIRS_RELATIVE, CONFIRM],
};

/**
 * The detector sets the policy's calibrated rule judges by (calibration-table.ts), in the order calibrationFor
 * picks: Neural Cleanse and the pair search with their area statistics for inputs of the size fitted on, relative
 * ones alone for any other size; both with the size-independent localised_margin family. MM-BD is not a family of
 * its own: alone it added false alarms on clean SiLU models (their margins spread widely); it counts only where the
 * reversed mask is localised too (docs/backdoor.md).
 */
export const DEFAULT_SETS = ["nc+pairs+confirm", "nc+pairs+confirm relative"];

/** calibration-table.ts as `npm run calibrate:backdoor -- --fit --write` writes it. */
export function tableSource(cals: readonly Calibration[]): string {
	return `/**
 * The calibrated verdict's table (calibration.ts): the clean nulls of its statistics, fitted on the clean models of
 * the fit split of test/fixtures/backdoor-wide with the search it names. Written by
 * \`npm run calibrate:backdoor -- --fit --write\` from scan-results.json; test/unit/backdoor/calibration.test.ts
 * checks it is what that file gives. Do not edit by hand.
 */
import type { Calibration } from "./calibration";

export const CALIBRATIONS: Calibration[] = ${JSON.stringify(cals, null, "\t")};
`;
}

/** Every calibration, fitted on the clean models of the fit split. */
export function fitAll(
	models: readonly PopulationModel[],
	source: string,
	search: CalibratedSearch,
): Record<string, Calibration> {
	const clean = models.filter((m) => m.kind === "clean" && m.split === "fit").map((m) => m.evidence);
	return Object.fromEntries(
		Object.entries(CALIBRATED_SETS).map(([key, stats]) => [key, fitCalibration(clean, stats, source, search)]),
	);
}

export interface ModelOutcome {
	file: string;
	kind: string;
	split: string;
	targets: number[];
	flagged: number[];
	/** clean: flagged at all; backdoored: every true target flagged */
	correct: boolean;
	/** backdoored: the true targets flagged */
	found: number[];
	/** flagged classes that are not true targets */
	wrong: number[];
	minP: number;
	/**
	 * judged by the policy's tables (judgeModel): outside the population, where Neural Cleanse's own rule decides
	 * (`flagged`) and none flagged is "could not check" (exit 2)
	 */
	outside: boolean;
}

/**
 * Judges every model against one calibration (scoreModel), or as the policy's calibrated rule does against its
 * tables (judgeModel: the relative table for a model outside the population).
 */
export function judgePopulation(
	models: readonly PopulationModel[],
	cal: Calibration | readonly Calibration[],
	falseAlarmRate: number,
): ModelOutcome[] {
	return models.map((m) => {
		const judged = Array.isArray(cal)
			? judgeModel(m.evidence, cal, falseAlarmRate, NC_RULE)
			: { scores: scoreModel(m.evidence, cal as Calibration, falseAlarmRate), outside: undefined, ncFlagged: [] };
		const scores = judged.scores;
		const outside = judged.outside !== undefined;
		// as the scan decides: the calibrated p-values and Neural Cleanse's own rule inside the population, that rule
		// alone outside it (none flagged there is "could not check")
		const calibratedFlags = outside ? [] : scores.filter((s) => s.flagged).map((s) => s.cls);
		const flagged = [...new Set([...calibratedFlags, ...judged.ncFlagged])].sort((a, b) => a - b);
		const found = m.targets.filter((t) => flagged.includes(t));
		const wrong = flagged.filter((c) => !m.targets.includes(c));
		return {
			file: m.file,
			kind: m.kind,
			split: m.split,
			targets: m.targets,
			flagged,
			correct: m.kind === "clean" ? flagged.length === 0 && !outside : found.length === m.targets.length,
			found,
			wrong,
			minP: Math.min(...scores.map((s) => s.pValue)),
			outside,
		};
	});
}

/**
 * Per split and kind: models, correct ones (clean: neither flagged nor outside; backdoored: every target flagged),
 * and those "could not check" (outside the population, none flagged: quarantined, no class named).
 */
export function rates(
	outcomes: readonly ModelOutcome[],
): Record<string, { models: number; correct: number; uncheckable: number }> {
	const out: Record<string, { models: number; correct: number; uncheckable: number }> = {};
	for (const o of outcomes) {
		const k = `${o.split}/${o.kind}`;
		const r = out[k] ?? { models: 0, correct: 0, uncheckable: 0 };
		r.models++;
		if (o.correct) r.correct++;
		if (o.outside && o.flagged.length === 0) r.uncheckable++;
		out[k] = r;
	}
	return out;
}

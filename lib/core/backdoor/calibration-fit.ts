/**
 * Fitting the calibrated verdict on a scanned population and measuring it: the code behind
 * `npm run calibrate:backdoor -- --fit` and test/unit/backdoor/calibration.test.ts. The
 * population is test/fixtures/backdoor-wide (manifest.json: each model's kind, true targets and
 * sources, and its split); scan-results.json holds what `ftguard backdoor --json` measured.
 */
import { type Calibration, fitCalibration, type ModelEvidence, type StatisticName, scoreModel } from "./calibration";

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

/** The detector sets with a calibration, and the statistics each averages. */
export const CALIBRATED_SETS: Record<string, StatisticName[]> = {
	nc: ["nc_area", "nc_relative"],
	"nc+mm": ["nc_area", "nc_relative", "mm_relative"],
	"nc+pairs": ["nc_area", "nc_relative", "pair_area", "pair_relative"],
	"nc+pairs+mm": ["nc_area", "nc_relative", "pair_area", "pair_relative", "mm_relative"],
};

/** Every calibration, fitted on the clean models of the fit split. */
export function fitAll(models: readonly PopulationModel[], source: string): Record<string, Calibration> {
	const clean = models.filter((m) => m.kind === "clean" && m.split === "fit").map((m) => m.evidence);
	return Object.fromEntries(
		Object.entries(CALIBRATED_SETS).map(([key, stats]) => [key, fitCalibration(clean, stats, source)]),
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
}

export function judgePopulation(
	models: readonly PopulationModel[],
	cal: Calibration,
	falseAlarmRate: number,
): ModelOutcome[] {
	return models.map((m) => {
		const scores = scoreModel(m.evidence, cal, falseAlarmRate);
		const flagged = scores.filter((s) => s.flagged).map((s) => s.cls);
		const found = m.targets.filter((t) => flagged.includes(t));
		const wrong = flagged.filter((c) => !m.targets.includes(c));
		return {
			file: m.file,
			kind: m.kind,
			split: m.split,
			targets: m.targets,
			flagged,
			correct: m.kind === "clean" ? flagged.length === 0 : found.length === m.targets.length,
			found,
			wrong,
			minP: Math.min(...scores.map((s) => s.pValue)),
		};
	});
}

/** Per split and kind: models, correct ones (clean: not flagged; backdoored: every target flagged). */
export function rates(outcomes: readonly ModelOutcome[]): Record<string, { models: number; correct: number }> {
	const out: Record<string, { models: number; correct: number }> = {};
	for (const o of outcomes) {
		const k = `${o.split}/${o.kind}`;
		const r = out[k] ?? { models: 0, correct: 0 };
		r.models++;
		if (o.correct) r.correct++;
		out[k] = r;
	}
	return out;
}

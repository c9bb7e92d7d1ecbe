/**
 * The fitted calibrations of the calibrated verdict (calibration.ts), one per set of detectors
 * that can run with Neural Cleanse. Written by `npm run calibrate:backdoor -- --fit` from
 * test/fixtures/backdoor-wide/scan-results.json (the fit split's clean models) — do not edit by
 * hand; test/unit/backdoor/calibration.test.ts re-fits it and compares.
 */
import { FtguardError } from "../errors";
import type { Calibration } from "./calibration";

export const CALIBRATIONS: Record<string, Calibration> = {};

/** The key of a detector set: Neural Cleanse plus whichever of the pair search and MM-BD run. */
export function calibrationKey(detectors: ReadonlySet<string>): string {
	return ["nc", ...(detectors.has("pairs") ? ["pairs"] : []), ...(detectors.has("mm") ? ["mm"] : [])].join("+");
}

export function calibrationFor(detectors: ReadonlySet<string>): { key: string; calibration: Calibration } {
	const key = calibrationKey(detectors);
	const calibration = CALIBRATIONS[key];
	if (calibration === undefined)
		throw new FtguardError("USAGE", `no calibration for the detectors ${key}: the calibrated rule cannot judge them`);
	return { key, calibration };
}

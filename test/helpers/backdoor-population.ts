/**
 * The calibration population (test/fixtures/backdoor-wide) as the fit reads it: the manifest's
 * ground truth joined with the scan statistics in scan-results.json (scripts/backdoor-population.ts).
 */
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { type CalibratedSearch, calibratedSearch } from "../../lib/core/backdoor/calibration";
import type { PopulationModel } from "../../lib/core/backdoor/calibration-fit";
import { defaultBackdoorPolicy } from "../../lib/core/policy/backdoor";

export const POPULATION_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "../fixtures/backdoor-wide");

/** A manifest entry: the population model without what its scan measured. */
type ManifestEntry = Omit<PopulationModel, "evidence">;

interface ScanResult {
	file: string;
	num_classes: number;
	mask_size: number;
	nc_l1: number[];
	nc_concentration?: number[];
	pairs_l1?: Array<Array<number | null>>;
	margins?: number[];
}

export function loadPopulation(
	resultsPath = join(POPULATION_DIR, "scan-results.json"),
	manifestPath = join(POPULATION_DIR, "manifest.json"),
): PopulationModel[] {
	const manifest = JSON.parse(readFileSync(manifestPath, "utf8")) as ManifestEntry[];
	const results = (JSON.parse(readFileSync(resultsPath, "utf8")) as { results: ScanResult[] }).results;
	const byFile = new Map(results.map((r) => [r.file, r]));
	return manifest.flatMap((m) => {
		const r = byFile.get(m.file);
		if (r === undefined) return [];
		return [
			{
				file: m.file,
				kind: m.kind,
				arch: m.arch,
				dataset: m.dataset,
				split: m.split,
				targets: m.targets,
				sources: m.sources,
				evidence: {
					numClasses: r.num_classes,
					maskSize: r.mask_size,
					ncL1: r.nc_l1,
					ncConcentration: r.nc_concentration,
					pairL1: r.pairs_l1,
					margins: r.margins,
				},
			},
		];
	});
}

/**
 * The search every model of the results was scanned with (each result records it); a mix, or a file from before
 * results recorded it, is the default policy's only when that is what the file says it used.
 */
export function populationSearch(resultsPath = join(POPULATION_DIR, "scan-results.json")): CalibratedSearch {
	const file = JSON.parse(readFileSync(resultsPath, "utf8")) as { results: Array<{ search?: CalibratedSearch }> };
	const seen = new Set(file.results.map((r) => JSON.stringify(r.search ?? calibratedSearch(defaultBackdoorPolicy()))));
	if (seen.size !== 1) throw new Error(`${resultsPath}: models scanned with ${seen.size} different searches`);
	return JSON.parse([...seen][0] as string) as CalibratedSearch;
}

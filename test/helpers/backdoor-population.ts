/**
 * The calibration population (test/fixtures/backdoor-wide) as the fit reads it: the manifest's
 * ground truth joined with the scan statistics in scan-results.json (scripts/backdoor-population.ts).
 */
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { PopulationModel } from "../../lib/core/backdoor/calibration-fit";

export const POPULATION_DIR = resolve(__dirname, "../fixtures/backdoor-wide");

interface ManifestEntry {
	file: string;
	kind: string;
	arch: string;
	dataset: string;
	split: string;
	targets: number[];
	sources: number[] | null;
}

interface ScanResult {
	file: string;
	num_classes: number;
	mask_size: number;
	nc_l1: number[];
	pairs_l1?: Array<Array<number | null>>;
	margins?: number[];
}

export function loadPopulation(resultsPath = join(POPULATION_DIR, "scan-results.json")): PopulationModel[] {
	const manifest = JSON.parse(readFileSync(join(POPULATION_DIR, "manifest.json"), "utf8")) as ManifestEntry[];
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
					pairL1: r.pairs_l1,
					margins: r.margins,
				},
			},
		];
	});
}

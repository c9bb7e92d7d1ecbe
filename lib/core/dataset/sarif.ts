/**
 * SARIF 2.1.0 of a dataset scan: one result per finding, located at the file and line of each record it names (the
 * first 100), the finding id as the rule.
 */
import { SARIF_LEVEL, SarifRules, sarifUri } from "../sarif";
import type { DatasetReport } from "./scan";

const MAX_LOCATIONS = 100;

export function datasetSarif(report: DatasetReport, version: string): object {
	const rules = new SarifRules();
	const results = report.findings.map((f) => {
		rules.note(f.id, f.severity, f.message);
		return {
			ruleId: f.id,
			level: SARIF_LEVEL[f.severity],
			message: { text: f.message },
			locations: f.records.slice(0, MAX_LOCATIONS).map((r) => {
				const at = report.locations[r];
				return {
					physicalLocation: {
						artifactLocation: { uri: sarifUri(at?.file ?? "") },
						region: { startLine: at?.line ?? 1 },
					},
					logicalLocations: [{ fullyQualifiedName: `record ${r}` }],
				};
			}),
			properties: { severity: f.severity, records: f.records.length },
		};
	});
	return rules.document("ftguard dataset", version, "dataset-poisoning", results);
}

/**
 * SARIF 2.1.0 for code-scanning dashboards (GitHub code scanning, GitLab, Azure
 * DevOps): one result per finding, and one per malformed file, each pointing at
 * the file and, where the scanner knows it, the place inside it.
 */
import { SARIF_LEVEL, SarifRules, sarifUri } from "../sarif";
import type { ScanReport } from "./scan";

export function toSarif(report: ScanReport, version: string): object {
	const rules = new SarifRules();
	const results: object[] = [];
	for (const file of report.files) {
		for (const f of file.findings) {
			rules.note(f.id, f.severity, f.message);
			results.push({
				ruleId: f.id,
				level: SARIF_LEVEL[f.severity],
				message: { text: f.message },
				locations: [
					{
						physicalLocation: { artifactLocation: { uri: sarifUri(file.path) } },
						...(f.location ? { logicalLocations: [{ fullyQualifiedName: f.location }] } : {}),
					},
				],
				properties: { format: file.format, verdict: file.verdict, severity: f.severity },
			});
		}
		if (file.malformed !== undefined) {
			rules.note("malformed", "high", "file is not valid for its format");
			results.push({
				ruleId: "malformed",
				level: "error",
				message: { text: `malformed ${file.format}: ${file.malformed}` },
				locations: [{ physicalLocation: { artifactLocation: { uri: sarifUri(file.path) } } }],
				properties: { format: file.format, verdict: file.verdict },
			});
		}
	}
	return rules.document("ftguard", version, "ml-model", results);
}

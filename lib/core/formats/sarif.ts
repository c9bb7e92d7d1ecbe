/**
 * SARIF 2.1.0 for code-scanning dashboards (GitHub code scanning, GitLab, Azure
 * DevOps): one result per finding, and one per malformed file, each pointing at
 * the file and, where the scanner knows it, the place inside it.
 */
import type { ScanReport } from "./scan";
import type { Severity } from "./types";

const LEVEL: Record<Severity, "error" | "warning" | "note"> = {
	critical: "error",
	high: "error",
	medium: "warning",
	low: "note",
};

/** GitHub ranks results by this property (0–10). */
const SECURITY_SEVERITY: Record<Severity, string> = { critical: "9.5", high: "8.0", medium: "5.0", low: "2.0" };

function uri(path: string): string {
	return path
		.split(/[\\/]/)
		.map((p) => encodeURIComponent(p))
		.join("/")
		.replace(/^\.\//, "");
}

export function toSarif(report: ScanReport, version: string): object {
	const rules = new Map<string, { severity: Severity; example: string }>();
	const results: object[] = [];
	for (const file of report.files) {
		for (const f of file.findings) {
			if (!rules.has(f.id)) rules.set(f.id, { severity: f.severity, example: f.message });
			results.push({
				ruleId: f.id,
				level: LEVEL[f.severity],
				message: { text: f.message },
				locations: [
					{
						physicalLocation: { artifactLocation: { uri: uri(file.path) } },
						...(f.location ? { logicalLocations: [{ fullyQualifiedName: f.location }] } : {}),
					},
				],
				properties: { format: file.format, verdict: file.verdict, severity: f.severity },
			});
		}
		if (file.malformed !== undefined) {
			if (!rules.has("malformed"))
				rules.set("malformed", { severity: "high", example: "file is not valid for its format" });
			results.push({
				ruleId: "malformed",
				level: "error",
				message: { text: `malformed ${file.format}: ${file.malformed}` },
				locations: [{ physicalLocation: { artifactLocation: { uri: uri(file.path) } } }],
				properties: { format: file.format, verdict: file.verdict },
			});
		}
	}
	return {
		$schema: "https://json.schemastore.org/sarif-2.1.0.json",
		version: "2.1.0",
		runs: [
			{
				tool: {
					driver: {
						name: "ftguard",
						version,
						rules: [...rules].map(([id, r]) => ({
							id,
							shortDescription: { text: id.replace(/-/g, " ") },
							fullDescription: { text: r.example },
							defaultConfiguration: { level: LEVEL[r.severity] },
							properties: { "security-severity": SECURITY_SEVERITY[r.severity], tags: ["security", "ml-model"] },
						})),
					},
				},
				results,
			},
		],
	};
}

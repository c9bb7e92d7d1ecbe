/**
 * The SARIF 2.1.0 document every ftguard scan writes for code-scanning dashboards (GitHub code scanning, GitLab,
 * Azure DevOps): severities to levels, GitHub's security-severity ranking, file paths as URIs, rules from results.
 */
export type SarifSeverity = "critical" | "high" | "medium" | "low";

export const SARIF_LEVEL: Record<SarifSeverity, "error" | "warning" | "note"> = {
	critical: "error",
	high: "error",
	medium: "warning",
	low: "note",
};

/** GitHub ranks results by this property (0–10). */
const SECURITY_SEVERITY: Record<SarifSeverity, string> = { critical: "9.5", high: "8.0", medium: "5.0", low: "2.0" };

export function sarifUri(path: string): string {
	return path
		.split(/[\\/]/)
		.map((p) => encodeURIComponent(p))
		.join("/")
		.replace(/^\.\//, "");
}

/** Collects one rule per result id (its severity and first message) while results are made. */
export class SarifRules {
	private readonly rules = new Map<string, { severity: SarifSeverity; example: string }>();

	note(id: string, severity: SarifSeverity, example: string): void {
		if (!this.rules.has(id)) this.rules.set(id, { severity, example });
	}

	document(tool: string, version: string, tag: string, results: readonly object[]): object {
		return {
			$schema: "https://json.schemastore.org/sarif-2.1.0.json",
			version: "2.1.0",
			runs: [
				{
					tool: {
						driver: {
							name: tool,
							version,
							rules: [...this.rules].map(([id, r]) => ({
								id,
								shortDescription: { text: id.replace(/-/g, " ") },
								fullDescription: { text: r.example },
								defaultConfiguration: { level: SARIF_LEVEL[r.severity] },
								properties: { "security-severity": SECURITY_SEVERITY[r.severity], tags: ["security", tag] },
							})),
						},
					},
					results,
				},
			],
		};
	}
}

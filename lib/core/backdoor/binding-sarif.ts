/**
 * SARIF 2.1.0 of export binding: one result per finding, located at the ONNX export (or, for a checkpoint tensor
 * no constant binds, at the checkpoint file), the constant or tensor as the logical location.
 */
import { SARIF_LEVEL, SarifRules, sarifUri } from "../sarif";
import type { BindingReport } from "./binding-artefact";

export function bindingSarif(reports: readonly BindingReport[], version: string): object {
	const rules = new SarifRules();
	const results = reports.flatMap((r) =>
		r.findings.map((f) => {
			rules.note(f.id, f.severity, f.message);
			const tensorFile =
				f.id === "export-tensor-unbound" ? r.unbound.find((u) => u.tensor === f.location)?.file : undefined;
			return {
				ruleId: f.id,
				level: SARIF_LEVEL[f.severity],
				message: { text: f.message },
				locations: [
					{
						physicalLocation: { artifactLocation: { uri: sarifUri(tensorFile ?? r.model) } },
						...(f.location !== undefined ? { logicalLocations: [{ fullyQualifiedName: f.location }] } : {}),
					},
				],
				properties: { severity: f.severity, model: r.model, weights: r.weights.index ?? r.weights.files },
			};
		}),
	);
	return rules.document("ftguard bind", version, "export-binding", results);
}

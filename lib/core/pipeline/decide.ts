/**
 * The promotion decision: PROMOTABLE only when every stage ran and passed and
 * no state failed; anything else — a failed check, an error, a stage that never
 * ran, a field that is not exactly what a pass looks like — is QUARANTINED, with
 * one reason per problem.
 */
import type { ScanState, ScanStatus } from "./types";

export interface Decision {
	status: Exclude<ScanStatus, "SCANNING">;
	reasons: string[];
}

export function decide(state: ScanState): Decision {
	const reasons: string[] = [];
	if (state.error !== undefined) reasons.push(`error: ${state.error.state}`);
	if (state.objects === undefined) reasons.push("missing: mark");
	else if (state.objects.length === 0) reasons.push("mark: no objects");
	if (state.manifest === undefined) reasons.push("missing: manifest");
	const sig = state.signature;
	if (sig === undefined) reasons.push("missing: signature");
	else if (sig.verified !== true)
		reasons.push(`signature: ${sig.code ?? "not verified"}${sig.reason ? ` (${sig.reason})` : ""}`);
	const files = state.files;
	if (files === undefined) reasons.push("missing: files");
	else if (files.safe !== true || files.unsafe !== 0 || files.malformed !== 0) {
		reasons.push(`files: ${files.unsafe} unsafe, ${files.malformed} malformed`);
		for (const r of files.reasons) reasons.push(`files: ${r}`);
	}
	const bd = state.backdoor;
	if (bd === undefined) reasons.push("missing: backdoor");
	else if (bd.required !== false) {
		if (bd.verdict === undefined) reasons.push("missing: backdoor scan");
		else if (bd.verdict !== "clean") reasons.push(`backdoor: ${bd.verdict}`);
	}
	return reasons.length === 0 ? { status: "PROMOTABLE", reasons } : { status: "QUARANTINED", reasons };
}

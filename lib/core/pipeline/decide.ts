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

/** A JSON object: `null`, arrays and scalars where a stage's result belongs count as missing. */
function present<T>(v: T | undefined): v is T {
	return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Total over anything JSON can carry (handlers parse the state first, but the
 * decision must not depend on that): a value of the wrong shape is a failure.
 */
export function decide(state: ScanState): Decision {
	const reasons: string[] = [];
	if (state.error !== undefined) reasons.push(`error: ${present(state.error) ? state.error.state : "unknown"}`);
	if (!Array.isArray(state.objects)) reasons.push("missing: mark");
	else if (state.objects.length === 0) reasons.push("mark: no objects");
	if (!present(state.manifest)) reasons.push("missing: manifest");
	const sig = state.signature;
	if (!present(sig)) reasons.push("missing: signature");
	else if (sig.verified !== true)
		reasons.push(`signature: ${sig.code ?? "not verified"}${sig.reason ? ` (${sig.reason})` : ""}`);
	const files = state.files;
	if (!present(files)) reasons.push("missing: files");
	else if (files.safe !== true || files.unsafe !== 0 || files.malformed !== 0) {
		reasons.push(`files: ${files.unsafe} unsafe, ${files.malformed} malformed`);
		for (const r of Array.isArray(files.reasons) ? files.reasons : []) reasons.push(`files: ${r}`);
	}
	const bd = state.backdoor;
	if (!present(bd)) reasons.push("missing: backdoor");
	else if (bd.required === true) {
		if (bd.verdict === undefined) reasons.push("missing: backdoor scan");
		else if (bd.verdict !== "clean") reasons.push(`backdoor: ${String(bd.verdict)}`);
	} else if (bd.required !== false) reasons.push("backdoor: required is not a boolean");
	return reasons.length === 0 ? { status: "PROMOTABLE", reasons } : { status: "QUARANTINED", reasons };
}

/**
 * The verdict the record state writes: recomputed from the state (never taken
 * on trust), a QUARANTINED verdict already in the state stands with its
 * reasons, and objects replaced since mark quarantine the artefact.
 */
export function finalDecision(state: ScanState, changedKeys: readonly string[]): Decision {
	const d = decide(state);
	const reasons = [...d.reasons];
	for (const r of state.verdict?.reasons ?? []) if (!reasons.includes(r)) reasons.push(r);
	for (const k of changedKeys) reasons.push(`changed during scan: ${k}`);
	const promotable = d.status === "PROMOTABLE" && state.verdict?.status !== "QUARANTINED" && reasons.length === 0;
	return { status: promotable ? "PROMOTABLE" : "QUARANTINED", reasons };
}

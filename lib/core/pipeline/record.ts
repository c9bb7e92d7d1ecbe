/**
 * The verdict record: the provenance document written next to the manifest and
 * the file report. It says which exact object versions were scanned, with their
 * digests, every stage's result, the verdict and its reasons, and which objects
 * did (or did not) receive the verdict tags.
 */
import type { Decision } from "./decide";
import type { BackdoorWaiverRecord, ScanObject, ScanState } from "./types";

export const VERDICT_RECORD_SCHEMA = "https://ftguard.dev/schemas/verdict-record/v1";

export interface TaggedObject extends ScanObject {
	/** whether the verdict tags were written on this exact version */
	tagged: boolean;
	/** why not: the object changed after it was marked */
	skipped?: string;
}

export interface VerdictRecord {
	schema: typeof VERDICT_RECORD_SCHEMA;
	scanId: string;
	bucket: string;
	artefact: string;
	marker: ScanState["marker"];
	/** `sha256:<hex>` root digest of the scanned objects, absent when the manifest stage never ran */
	rootDigest?: string;
	status: Decision["status"];
	reasons: string[];
	/** what the verdict rests on besides passed checks (a waived backdoor scan, no model weights); absent when none */
	notes?: string[];
	/** the policy waiver the verdict used, when a backdoor scan was skipped under one (also in stages.backdoor) */
	waiver?: BackdoorWaiverRecord;
	objects: TaggedObject[];
	stages: Pick<ScanState, "manifest" | "signature" | "files" | "backdoor" | "error">;
	/** ISO 8601 */
	recordedAt: string;
}

export function verdictRecord(state: ScanState, decision: Decision, objects: TaggedObject[], at: Date): VerdictRecord {
	const stages: VerdictRecord["stages"] = {};
	if (state.manifest) stages.manifest = state.manifest;
	if (state.signature) stages.signature = state.signature;
	if (state.files) stages.files = state.files;
	if (state.backdoor) stages.backdoor = state.backdoor;
	if (state.error) stages.error = state.error;
	// the waiver decide let the skipped scan pass under (an expired one left a "not scanned" reason instead)
	const bd = state.backdoor;
	const waived =
		bd?.required === false && !decision.reasons.some((r) => r.startsWith("not scanned: ")) ? bd.waiver : undefined;
	return {
		schema: VERDICT_RECORD_SCHEMA,
		scanId: state.scanId,
		bucket: state.bucket,
		artefact: state.artefact,
		marker: state.marker,
		...(state.manifest ? { rootDigest: state.manifest.rootDigest } : {}),
		status: decision.status,
		reasons: decision.reasons,
		...(decision.notes ? { notes: decision.notes } : {}),
		...(waived ? { waiver: waived } : {}),
		objects,
		stages,
		recordedAt: at.toISOString(),
	};
}

/** Where each stage writes in the report bucket: one prefix per scan (`prefix` ends in "/"). */
export function reportKey(scanId: string, name: "manifest" | "files" | "verdict", prefix = "scans/"): string {
	return `${prefix}${scanId}/${name}.json`;
}

/**
 * The record state's rules. The verdict record: the provenance document written
 * next to the manifest and the file report. It says which exact object versions
 * were scanned, with their digests, every stage's result, the verdict and its
 * reasons, and which objects did (or did not) receive the verdict tags. Also the
 * tags the verdict is written as, and the metrics a recorded verdict counts in.
 */
import { type Decision, scanErrored } from "./decide";
import {
	DIGEST_TAG,
	MetricName,
	type MetricPoint,
	PROVENANCE_RECORD_NAME,
	PROVENANCE_TAG,
	SCAN_ID_TAG,
	STATUS_TAG,
} from "./names";
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
	stages: Pick<ScanState, "manifest" | "signature" | "files" | "backdoor" | "training" | "dp" | "error">;
	/** ISO 8601 */
	recordedAt: string;
}

export function verdictRecord(state: ScanState, decision: Decision, objects: TaggedObject[], at: Date): VerdictRecord {
	const stages: VerdictRecord["stages"] = {};
	if (state.manifest) stages.manifest = state.manifest;
	if (state.signature) stages.signature = state.signature;
	if (state.files) stages.files = state.files;
	if (state.backdoor) stages.backdoor = state.backdoor;
	if (state.training) stages.training = state.training;
	if (state.dp) stages.dp = state.dp;
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

/**
 * The tags record writes on every unchanged version: the verdict, the scan id, the root digest it rests on, and the
 * report-bucket key of the signed provenance record that attests it (when one is written: a deployment system
 * verifies that record instead of trusting the tag, docs/provenance.md).
 */
export function verdictTags(
	state: ScanState,
	status: Decision["status"],
	provenanceKey?: string,
): Record<string, string> {
	return {
		[STATUS_TAG]: status,
		[SCAN_ID_TAG]: state.scanId,
		...(state.manifest ? { [DIGEST_TAG]: state.manifest.rootDigest } : {}),
		...(provenanceKey !== undefined ? { [PROVENANCE_TAG]: provenanceKey } : {}),
	};
}

/** The report-bucket key of a scan's signed provenance record (`prefix` ends in "/"). */
export function provenanceKey(scanId: string, prefix = "scans/"): string {
	return `${prefix}${scanId}/${PROVENANCE_RECORD_NAME}`;
}

/**
 * Objects that got no tag although they were unchanged at record's re-check: overwritten between that check and
 * their tag write (refused by the VersionId / ETag binding). `changed` are the keys the re-check found changed.
 */
export function changedWhileTagged(tagged: readonly TaggedObject[], changed: readonly string[]): string[] {
	return tagged.filter((t) => t.skipped !== undefined && !changed.includes(t.key)).map((t) => t.key);
}

/**
 * The metrics a recorded verdict emits: its outcome (promoted or quarantined); a scan error when a state or a model's
 * scan failed — but not for a detected backdoor, which arrives as the Batch task's error and is a finding; and how
 * many objects got no verdict tag because they changed (none: no point).
 */
export function recordMetrics(state: ScanState, verdict: Decision, tagged: readonly TaggedObject[]): MetricPoint[] {
	const untagged = tagged.filter((t) => t.skipped !== undefined).length;
	const outcome = verdict.status === "PROMOTABLE" ? MetricName.SCAN_PROMOTED_TOTAL : MetricName.SCAN_QUARANTINED_TOTAL;
	return [
		{ name: outcome, value: 1 },
		...(scanErrored(state) ? [{ name: MetricName.SCAN_ERRORS_TOTAL, value: 1 }] : []),
		...(untagged > 0 ? [{ name: MetricName.SCAN_OBJECTS_CHANGED_TOTAL, value: untagged }] : []),
	];
}

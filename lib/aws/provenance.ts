/**
 * The record state's provenance record: the verdict record as an in-toto statement (lib/core/provenance), with each
 * model's backdoor figures from the scan's evidence, signed by the provenance key (KMS in AWS, a local key in the
 * local pipeline) and written beside the verdict record, where the verdict's `ftguard:provenance` tag points.
 */
import { createHash } from "node:crypto";
import type { S3Client } from "@aws-sdk/client-s3";
import type { Signer } from "../core/integrity/sign-signer";
import { hashPlanOf } from "../core/pipeline/manifest";
import { provenanceKey, reportKey, type VerdictRecord } from "../core/pipeline/record";
import type { ScanState } from "../core/pipeline/types";
import { signProvenance } from "../core/provenance/sign";
import { type BackdoorReportFigures, provenanceStatement } from "../core/provenance/statement";
import { putObject } from "./object-store";
import { markerBytes } from "./objects";
import type { ScanEvidence } from "./record";

/** Each scanned model's report.json by its model key (the plan's), for the predicate's figures. */
function backdoorReports(state: ScanState, evidence: ScanEvidence): Record<string, BackdoorReportFigures> {
	const out: Record<string, BackdoorReportFigures> = {};
	for (const [index, m] of evidence.models) {
		const key = state.backdoor?.models?.[index]?.modelKey;
		const report = m.report as Partial<BackdoorReportFigures> | undefined;
		// a report without the fields the predicate copies is left out (the record's own verdict still stands)
		if (key !== undefined && report !== undefined && Array.isArray(report.suspect_classes) && report.detectors)
			out[key] = report as BackdoorReportFigures;
	}
	return out;
}

/**
 * Signs the scan's provenance statement and writes it to `<prefix><scan id>/provenance.sigstore.json`; returns its
 * URI. `recordJson` is the verdict record's bytes as written (their SHA-256 goes into the predicate).
 */
export async function writeProvenance(
	s3: S3Client,
	location: { bucket: string; prefix: string },
	state: ScanState,
	record: VerdictRecord,
	recordJson: string,
	evidence: ScanEvidence,
	signer: Signer,
	policyUri: string | undefined,
): Promise<string> {
	const { bucket, prefix } = location;
	// how the manifest step hashed the artefact: the marker's signed serialization, which the signature step verified
	const hashPlan = hashPlanOf(state.objects ? await markerBytes(s3, { ...state, objects: state.objects }) : undefined);
	const statement = provenanceStatement(record, {
		hashPlan,
		...(state.policyDigest !== undefined ? { policyDigest: state.policyDigest } : {}),
		...(policyUri !== undefined ? { policyUri } : {}),
		backdoorReports: backdoorReports(state, evidence),
		verdictRecord: {
			uri: `s3://${bucket}/${reportKey(state.scanId, "verdict", prefix)}`,
			sha256: createHash("sha256").update(recordJson, "utf8").digest("hex"),
		},
	});
	const { bundle } = await signProvenance(statement, signer);
	const key = provenanceKey(state.scanId, prefix);
	await putObject(s3, { bucket, key }, bundle, "application/json");
	return `s3://${bucket}/${key}`;
}

/**
 * record: the verdict written where it counts — tags on the exact object
 * versions scanned (only those unchanged since mark), the verdict record in the
 * report bucket, its HTML page and its signed provenance record, metrics. An
 * object replaced during the scan gets no tag from it and the whole artefact is
 * quarantined.
 */

import { provenanceSignerFromEnv } from "../lib/aws/kms-signer";
import { emitEmfDocument, emitMetrics } from "../lib/aws/metrics";
import { writeProvenance } from "../lib/aws/provenance";
import { objectsToRecord, readScanEvidence, tagVerdict, writeHtmlReport } from "../lib/aws/record";
import { reportLocation, runHandler, s3Client, scanIdOf, writeReportJson } from "../lib/aws/runtime";
import type { Signer } from "../lib/core/integrity/sign-signer";
import { finalDecision } from "../lib/core/pipeline/decide";
import { MetricName } from "../lib/core/pipeline/names";
import { changedWhileTagged, provenanceKey, recordMetrics, verdictRecord } from "../lib/core/pipeline/record";
import { parseScanState } from "../lib/core/pipeline/schema";
import { trainingMetricDocuments } from "../lib/core/pipeline/training";
import type { ScanStateWith } from "../lib/core/pipeline/types";

/** The provenance signer (FTGUARD_PROVENANCE_KMS_KEY in AWS, FTGUARD_PROVENANCE_KEY_FILE locally), once per container. */
let signer: Promise<Signer | undefined> | undefined;

export async function handler(event: unknown): Promise<ScanStateWith<"verdict">> {
	return runHandler("record", scanIdOf(event), async (log) => {
		const state = parseScanState(event, "record");
		const s3 = s3Client();
		const location = reportLocation();
		const objects = await objectsToRecord(s3, state, (e) =>
			log.warn("could not look for objects a failed mark left SCANNING", { error: String(e) }),
		);
		const changed = objects.filter((o) => o.changed !== undefined).map((o) => o.object.key);
		if (changed.length > 0) log.warn("objects changed during the scan get no verdict", { keys: changed });
		const verdict = finalDecision(state, changed, new Date());
		// a signer that cannot be loaded is an error to fix, not a reason to withhold the verdict: the tags then point
		// at no provenance record, and a deployment that verifies provenance refuses the model (fail closed)
		signer ??= provenanceSignerFromEnv(process.env);
		const sign = await signer.catch((e: unknown) => {
			signer = undefined;
			log.error("no provenance signer", { error: String(e) });
			return undefined;
		});
		// a record without a root digest describes no bytes: nothing to attest (it is QUARANTINED anyway)
		const attest = sign !== undefined && state.manifest !== undefined;
		const tagged = await tagVerdict(
			s3,
			state,
			objects,
			verdict.status,
			attest ? provenanceKey(state.scanId, location.prefix) : undefined,
		);
		const late = changedWhileTagged(tagged, changed);
		if (late.length > 0) log.warn("objects changed while the verdict was written get no verdict", { keys: late });
		const record = verdictRecord(state, verdict, tagged, new Date());
		const { json } = await writeReportJson(state.scanId, "verdict", record);
		const evidence = await readScanEvidence(s3, location, state);
		// the page people read: the verdict stands without it (tags and record are written), so a failure is logged
		await writeHtmlReport(s3, location, state, record, evidence, new Date()).catch((e: unknown) =>
			log.warn("could not write the HTML report", { error: String(e) }),
		);
		let provenanceFailed = false;
		if (attest && sign !== undefined) {
			await writeProvenance(s3, location, state, record, json, evidence, sign, process.env.FTGUARD_POLICY_URI).then(
				(uri) => log.info("provenance recorded", { uri }),
				(e: unknown) => {
					provenanceFailed = true;
					log.error("could not write the provenance record", { error: String(e) });
				},
			);
		}
		emitMetrics([
			...recordMetrics(state, verdict, tagged),
			// the alarm on scan errors reaches someone: a tag that points at a missing record must not go unseen
			...(provenanceFailed ? [{ name: MetricName.SCAN_ERRORS_TOTAL, value: 1 }] : []),
		]);
		for (const doc of trainingMetricDocuments(state, new Date())) emitEmfDocument(doc);
		log.info("verdict recorded", { ...verdict });
		return { ...state, verdict };
	});
}

/**
 * record: the verdict written where it counts — tags on the exact object
 * versions scanned (only those unchanged since mark), the verdict record in the
 * report bucket, metrics. An object replaced during the scan gets no tag from it
 * and the whole artefact is quarantined.
 */
import { emitMetrics, OBJECTS_CHANGED_METRIC } from "../lib/aws/metrics";
import { putObject } from "../lib/aws/object-store";
import { reportLocation, runHandler, s3Client, scanIdOf } from "../lib/aws/runtime";
import { putFtguardTags } from "../lib/aws/tagging";
import { changedSince, verdictTags } from "../lib/aws/verdict";
import { mapLimit } from "../lib/core/pipeline/concurrency";
import { decide } from "../lib/core/pipeline/decide";
import { reportKey, type TaggedObject, verdictRecord } from "../lib/core/pipeline/record";
import { parseScanState } from "../lib/core/pipeline/schema";
import type { ScanState } from "../lib/core/pipeline/types";
import { MetricName } from "../lib/infra/tags";

export async function handler(event: unknown): Promise<ScanState & Required<Pick<ScanState, "verdict">>> {
	return runHandler("record", scanIdOf(event), async (log) => {
		const state = parseScanState(event, "record");
		const { bucket: reportBucket, prefix } = reportLocation();
		const s3 = s3Client();
		// Recomputed, never taken on trust; a QUARANTINED verdict in the input stands.
		const decision = decide(state);
		if (state.verdict && state.verdict.status !== "PROMOTABLE") decision.status = "QUARANTINED";
		for (const r of state.verdict?.reasons ?? []) if (!decision.reasons.includes(r)) decision.reasons.push(r);
		// Mark never ran: the marker version is still quarantined explicitly.
		const objects = state.objects ?? [{ ...state.marker, size: 0 }];
		const changes = await mapLimit(objects, 8, (o) => changedSince(s3, state.bucket, o));
		const changed = objects.filter((_, i) => changes[i] !== undefined);
		for (const o of changed) decision.reasons.push(`changed during scan: ${o.key}`);
		if (changed.length > 0) {
			decision.status = "QUARANTINED";
			log.warn("objects changed during the scan get no verdict", { keys: changed.map((o) => o.key) });
		}
		const tags = verdictTags(state, decision.status);
		const tagged: TaggedObject[] = await mapLimit(objects, 8, async (o, i) => {
			const skipped = changes[i];
			if (skipped !== undefined) return { ...o, tagged: false, skipped };
			await putFtguardTags(s3, { bucket: state.bucket, ...o }, tags);
			return { ...o, tagged: true };
		});
		const record = verdictRecord(state, decision, tagged, new Date());
		await putObject(
			s3,
			{ bucket: reportBucket, key: reportKey(state.scanId, "verdict", prefix) },
			JSON.stringify(record, null, 2),
			"application/json",
		);
		emitMetrics([
			{
				name: decision.status === "PROMOTABLE" ? MetricName.SCAN_PROMOTED_TOTAL : MetricName.SCAN_QUARANTINED_TOTAL,
				value: 1,
			},
			...(state.error ? [{ name: MetricName.SCAN_ERRORS_TOTAL, value: 1 }] : []),
			...(changed.length > 0 ? [{ name: OBJECTS_CHANGED_METRIC, value: changed.length }] : []),
		]);
		log.info("verdict recorded", { status: decision.status, reasons: decision.reasons });
		return { ...state, verdict: decision };
	});
}

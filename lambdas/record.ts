/**
 * record: the verdict written where it counts — tags on the exact object
 * versions scanned (only those unchanged since mark), the verdict record in the
 * report bucket, metrics. An object replaced during the scan gets no tag from it
 * and the whole artefact is quarantined.
 */
import { emitMetrics, OBJECTS_CHANGED_METRIC } from "../lib/aws/metrics";
import { runHandler, s3Client, scanIdOf, writeReport } from "../lib/aws/runtime";
import { objectsToRecord, tagVerdict } from "../lib/aws/verdict";
import { errorIsBackdoorFinding, finalDecision } from "../lib/core/pipeline/decide";
import { MetricName } from "../lib/core/pipeline/names";
import { verdictRecord } from "../lib/core/pipeline/record";
import { parseScanState } from "../lib/core/pipeline/schema";
import type { ScanStateWith } from "../lib/core/pipeline/types";

export async function handler(event: unknown): Promise<ScanStateWith<"verdict">> {
	return runHandler("record", scanIdOf(event), async (log) => {
		const state = parseScanState(event, "record");
		const s3 = s3Client();
		const objects = await objectsToRecord(s3, state, (e) =>
			log.warn("could not look for objects a failed mark left SCANNING", { error: String(e) }),
		);
		const changed = objects.filter((o) => o.changed !== undefined).map((o) => o.object.key);
		if (changed.length > 0) log.warn("objects changed during the scan get no verdict", { keys: changed });
		const verdict = finalDecision(state, changed, new Date());
		const tagged = await tagVerdict(s3, state, objects, verdict.status);
		// also those overwritten between the re-check and their tag write (refused by the VersionId/ETag binding)
		const untagged = tagged.filter((t) => t.skipped !== undefined);
		if (untagged.length > changed.length) {
			log.warn("objects changed while the verdict was written get no verdict", {
				keys: untagged.filter((t) => !changed.includes(t.key)).map((t) => t.key),
			});
		}
		await writeReport(state.scanId, "verdict", verdictRecord(state, verdict, tagged, new Date()));
		const outcome =
			verdict.status === "PROMOTABLE" ? MetricName.SCAN_PROMOTED_TOTAL : MetricName.SCAN_QUARANTINED_TOTAL;
		emitMetrics([
			{ name: outcome, value: 1 },
			// a detected backdoor arrives as the Batch task's error, but it is a finding, not a scan error
			...(state.error && !errorIsBackdoorFinding(state) ? [{ name: MetricName.SCAN_ERRORS_TOTAL, value: 1 }] : []),
			...(untagged.length > 0 ? [{ name: OBJECTS_CHANGED_METRIC, value: untagged.length }] : []),
		]);
		log.info("verdict recorded", { ...verdict });
		return { ...state, verdict };
	});
}

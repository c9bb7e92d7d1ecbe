/**
 * record: the verdict written where it counts — tags on the exact object
 * versions scanned (only those unchanged since mark), the verdict record in the
 * report bucket, metrics. An object replaced during the scan gets no tag from it
 * and the whole artefact is quarantined.
 */
import { emitMetrics } from "../lib/aws/metrics";
import { objectsToRecord, tagVerdict } from "../lib/aws/record";
import { runHandler, s3Client, scanIdOf, writeReport } from "../lib/aws/runtime";
import { finalDecision } from "../lib/core/pipeline/decide";
import { changedWhileTagged, recordMetrics, verdictRecord } from "../lib/core/pipeline/record";
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
		const late = changedWhileTagged(tagged, changed);
		if (late.length > 0) log.warn("objects changed while the verdict was written get no verdict", { keys: late });
		await writeReport(state.scanId, "verdict", verdictRecord(state, verdict, tagged, new Date()));
		emitMetrics(recordMetrics(state, verdict, tagged));
		log.info("verdict recorded", { ...verdict });
		return { ...state, verdict };
	});
}

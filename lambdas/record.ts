/**
 * record: the verdict written where it counts — tags on the exact object
 * versions scanned (only those unchanged since mark), the verdict record in the
 * report bucket, metrics. An object replaced during the scan gets no tag from it
 * and the whole artefact is quarantined.
 */
import { emitEmfDocument, emitMetrics } from "../lib/aws/metrics";
import { objectsToRecord, tagVerdict, writeHtmlReport } from "../lib/aws/record";
import { reportLocation, runHandler, s3Client, scanIdOf, writeReport } from "../lib/aws/runtime";
import { finalDecision } from "../lib/core/pipeline/decide";
import { changedWhileTagged, recordMetrics, verdictRecord } from "../lib/core/pipeline/record";
import { parseScanState } from "../lib/core/pipeline/schema";
import { trainingMetricDocuments } from "../lib/core/pipeline/training";
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
		const record = verdictRecord(state, verdict, tagged, new Date());
		await writeReport(state.scanId, "verdict", record);
		// the page people read: the verdict stands without it (tags and record are written), so a failure is logged
		await writeHtmlReport(s3, reportLocation(), state, record, new Date()).catch((e: unknown) =>
			log.warn("could not write the HTML report", { error: String(e) }),
		);
		emitMetrics(recordMetrics(state, verdict, tagged));
		for (const doc of trainingMetricDocuments(state, new Date())) emitEmfDocument(doc);
		log.info("verdict recorded", { ...verdict });
		return { ...state, verdict };
	});
}

/**
 * The decide state's S3 side: for each model whose backdoor job exited 1 (suspect), read its report.json from the
 * report bucket (`<prefix><scan id>/backdoor/<model index>/report.json`, where the state machine's
 * FTGUARD_OUTPUT_PREFIX points the job) and turn it into evidence for the pure decision. Every failure to read or parse becomes `unreadable`
 * evidence, never a throw: the verdict is QUARANTINED either way, and a decide state that failed would only
 * replace the precise reason by "error: decide".
 */
import type { S3Client } from "@aws-sdk/client-s3";
import { firstLine, toFtguardError } from "../core/errors";
import { mapLimit } from "../core/pipeline/concurrency";
import { type BackdoorEvidence, backdoorReportsWanted, interpretBackdoorReport } from "../core/pipeline/decide";
import { backdoorReportSuffix } from "../core/pipeline/names";
import type { ScanState } from "../core/pipeline/types";
import { getObjectBytes } from "./object-store";

/** report.json holds per-class arrays; a few MiB even for thousands of classes. */
export const MAX_BACKDOOR_REPORT_BYTES = 8 << 20;

/** Key of model `index`'s report for a scan; `prefix` ends in "/" (FTGUARD_REPORT_PREFIX, the state machine's too). */
export function backdoorReportKey(scanId: string, prefix: string, index: number): string {
	return `${prefix}${scanId}/${backdoorReportSuffix(index)}`;
}

/** The evidence for each model whose job exited 1 (suspect); none when no report is called for. */
export async function readBackdoorEvidence(
	s3: S3Client,
	state: ScanState,
	reportLocation: () => { bucket: string; prefix: string },
): Promise<BackdoorEvidence[]> {
	const wanted = backdoorReportsWanted(state);
	if (wanted.length === 0) return [];
	let reports: { bucket: string; prefix: string };
	try {
		// Only now: a decide that needs no report must not fail on the report bucket's configuration.
		reports = reportLocation();
	} catch (e) {
		const reason = firstLine(toFtguardError(e).message);
		return wanted.map((index) => ({ kind: "unreadable", index, reportUri: "(unknown)", reason }));
	}
	return mapLimit(wanted, 4, async (index): Promise<BackdoorEvidence> => {
		const key = backdoorReportKey(state.scanId, reports.prefix, index);
		const reportUri = `s3://${reports.bucket}/${key}`;
		let json: unknown;
		try {
			const { bytes } = await getObjectBytes(s3, { bucket: reports.bucket, key }, MAX_BACKDOOR_REPORT_BYTES);
			json = JSON.parse(Buffer.from(bytes).toString("utf8"));
		} catch (e) {
			const err = toFtguardError(e);
			const why = e instanceof SyntaxError ? "not JSON" : `${err.code}: ${firstLine(err.message)}`;
			return { kind: "unreadable", index, reportUri, reason: why };
		}
		return interpretBackdoorReport(state, index, reportUri, json);
	});
}

/**
 * The decide state's S3 side: when the backdoor job exited 1 (suspect), read its report.json from the report
 * bucket (`<prefix><scan id>/backdoor/report.json`, where the state machine's FTGUARD_OUTPUT_PREFIX points the
 * job) and turn it into evidence for the pure decision. Every failure to read or parse becomes `unreadable`
 * evidence, never a throw: the verdict is QUARANTINED either way, and a decide state that failed would only
 * replace the precise reason by "error: decide".
 */
import type { S3Client } from "@aws-sdk/client-s3";
import { firstLine, toFtguardError } from "../core/errors";
import { type BackdoorEvidence, backdoorReportWanted, interpretBackdoorReport } from "../core/pipeline/decide";
import { BACKDOOR_REPORT_SUFFIX } from "../core/pipeline/names";
import type { ScanState } from "../core/pipeline/types";
import { getObjectBytes } from "./object-store";

/** report.json holds per-class arrays; a few MiB even for thousands of classes. */
export const MAX_BACKDOOR_REPORT_BYTES = 8 << 20;

/** Key of the job's report for a scan; `prefix` ends in "/" (FTGUARD_REPORT_PREFIX, the state machine's too). */
export function backdoorReportKey(scanId: string, prefix: string): string {
	return `${prefix}${scanId}/${BACKDOOR_REPORT_SUFFIX}`;
}

/** The evidence for `state`, or undefined when the state does not call for the report (not an exit-1 failure). */
export async function readBackdoorEvidence(
	s3: S3Client,
	state: ScanState,
	reportLocation: () => { bucket: string; prefix: string },
): Promise<BackdoorEvidence | undefined> {
	if (!backdoorReportWanted(state)) return undefined;
	let reports: { bucket: string; prefix: string };
	try {
		// Only now: a decide that needs no report must not fail on the report bucket's configuration.
		reports = reportLocation();
	} catch (e) {
		return { kind: "unreadable", reportUri: "(unknown)", reason: firstLine(toFtguardError(e).message) };
	}
	const key = backdoorReportKey(state.scanId, reports.prefix);
	const reportUri = `s3://${reports.bucket}/${key}`;
	let json: unknown;
	try {
		const { bytes } = await getObjectBytes(s3, { bucket: reports.bucket, key }, MAX_BACKDOOR_REPORT_BYTES);
		json = JSON.parse(Buffer.from(bytes).toString("utf8"));
	} catch (e) {
		const err = toFtguardError(e);
		const why = e instanceof SyntaxError ? "not JSON" : `${err.code}: ${firstLine(err.message)}`;
		return { kind: "unreadable", reportUri, reason: why };
	}
	return interpretBackdoorReport(state, reportUri, json);
}

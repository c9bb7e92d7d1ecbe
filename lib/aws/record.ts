/**
 * The record state's S3 side: which pinned objects changed since mark, the
 * verdict tags written on the exact versions of those that did not, and the
 * scan's evidence read back for the HTML page and the provenance record.
 */
import type { S3Client } from "@aws-sdk/client-s3";
import { mapLimit } from "../core/pipeline/concurrency";
import { MAX_OBJECTS } from "../core/pipeline/mark";
import { REPORT_HTML_NAME, SCAN_ID_TAG, ScanStatus, STATUS_TAG } from "../core/pipeline/names";
import { reportKey, type TaggedObject, type VerdictRecord, verdictTags } from "../core/pipeline/record";
import type { ScanObject, ScanState } from "../core/pipeline/types";
import { LIMITS, type ModelReport, renderReport, wantedImages } from "../core/report";
import { backdoorReportKey, MAX_BACKDOOR_REPORT_BYTES } from "./decide";
import { getObjectBytes, putObject } from "./object-store";
import { changedSince, headObject, listKeys } from "./objects";
import { getTags, putFtguardTags } from "./tagging";

/**
 * The objects the verdict is about, each with why it changed, if it did. When mark did not finish, that is the
 * marker and whatever mark managed to tag SCANNING for this scan before it failed (found by listing the artefact):
 * left alone, those would stay SCANNING for good — unreadable, but a scan that ended through its catch path is
 * not one the sweeper looks at.
 */
export async function objectsToRecord(
	s3: S3Client,
	state: ScanState,
	onSearchFailed: (e: unknown) => void = () => {},
): Promise<Array<{ object: ScanObject; changed: string | undefined }>> {
	let objects = state.objects;
	if (objects === undefined) {
		const marker = { ...state.marker, size: 0 };
		let partial: ScanObject[] = [];
		try {
			partial = await markedByThisScan(s3, state);
		} catch (e) {
			onSearchFailed(e); // the marker is still quarantined; the rest stays SCANNING (unreadable)
		}
		objects = [marker, ...partial.filter((o) => o.key !== marker.key)];
	}
	return mapLimit(objects, 8, async (object) => ({ object, changed: await changedSince(s3, state.bucket, object) }));
}

/** The artefact's current objects tagged SCANNING by this scan (a mark that failed part way), pinned now. */
async function markedByThisScan(s3: S3Client, state: ScanState): Promise<ScanObject[]> {
	const keys = state.artefact.endsWith("/")
		? await listKeys(s3, state.bucket, state.artefact, MAX_OBJECTS)
		: [state.artefact];
	const found = await mapLimit(keys, 8, async (key): Promise<ScanObject | undefined> => {
		const head = await headObject(s3, state.bucket, key);
		if (head === undefined) return undefined;
		const version = {
			...(head.versionId !== undefined ? { versionId: head.versionId } : {}),
			...(head.etag !== undefined ? { etag: head.etag } : {}),
		};
		const tags = await getTags(s3, { bucket: state.bucket, key, ...version });
		const ours = tags[STATUS_TAG] === ScanStatus.SCANNING && tags[SCAN_ID_TAG] === state.scanId;
		return ours ? { key, ...version, size: head.size } : undefined;
	});
	return found.filter((o): o is ScanObject => o !== undefined);
}

/** Tags every unchanged object's exact version with the verdict; changed ones are left alone and reported. */
export async function tagVerdict(
	s3: S3Client,
	state: ScanState,
	objects: ReadonlyArray<{ object: ScanObject; changed: string | undefined }>,
	status: Exclude<ScanStatus, "SCANNING">,
	provenanceKey?: string,
): Promise<TaggedObject[]> {
	const tags = verdictTags(state, status, provenanceKey);
	return mapLimit(objects, 8, async ({ object, changed }) => {
		if (changed !== undefined) return { ...object, tagged: false, skipped: changed };
		// bound by VersionId, or (no versioning) by ETag: an overwrite since the re-check above is refused, as S3
		// would have tagged the scanned version and left the new one untagged
		const written = await putFtguardTags(s3, { bucket: state.bucket, ...object }, tags);
		return written ? { ...object, tagged: true } : { ...object, tagged: false, skipped: "changed while tagged" };
	});
}

/** The files report of an artefact of up to MAX_OBJECTS objects, with every finding: tens of MiB at most. */
const MAX_FILES_REPORT_BYTES = 64 << 20;

/** A JSON object of the report bucket, or undefined when it is missing, too large or not JSON (the page says so). */
async function readJson(s3: S3Client, bucket: string, key: string, max: number): Promise<unknown> {
	try {
		const { bytes } = await getObjectBytes(s3, { bucket, key }, max);
		return JSON.parse(Buffer.from(bytes).toString("utf8"));
	} catch {
		return undefined;
	}
}

/** What the scan's steps wrote that the HTML page and the provenance record show: the files report, each report. */
export interface ScanEvidence {
	files?: unknown;
	/** by the model's index in the backdoor plan: its report.json and the trigger images the page shows */
	models: Map<number, ModelReport>;
}

/**
 * Reads the scan's evidence from where this scan's steps wrote it (never from a URI in the state). A model's report
 * is read only when its job ended on its own (`reportUri` set): a report a killed job wrote late is not what the
 * verdict rests on. Anything missing, too large or not JSON is left out (the page says so).
 */
export async function readScanEvidence(
	s3: S3Client,
	location: { bucket: string; prefix: string },
	state: ScanState,
): Promise<ScanEvidence> {
	const { bucket, prefix } = location;
	const files =
		state.files === undefined
			? undefined
			: await readJson(s3, bucket, reportKey(state.scanId, "files", prefix), MAX_FILES_REPORT_BYTES);
	const results = (state.backdoor?.results ?? []).filter((r) => r.reportUri !== undefined).slice(0, LIMITS.models);
	const models = new Map<number, ModelReport>();
	await mapLimit(results, 4, async (r) => {
		const key = backdoorReportKey(state.scanId, prefix, r.index);
		const report = await readJson(s3, bucket, key, MAX_BACKDOOR_REPORT_BYTES);
		if (report === undefined) return;
		const images = new Map<string, Uint8Array>();
		await mapLimit(wantedImages(report), 8, async (name) => {
			try {
				const { bytes } = await getObjectBytes(
					s3,
					{ bucket, key: `${key.slice(0, -"report.json".length)}${name}` },
					LIMITS.imageBytes,
				);
				images.set(name, bytes);
			} catch {
				// a missing or oversized image: the page shows "no image" for that class
			}
		});
		models.set(r.index, { report, images });
	});
	return { ...(files === undefined ? {} : { files }), models };
}

/**
 * The verdict's HTML page (lib/core/report), written beside the verdict record as `<prefix><scan id>/report.html`.
 * Returns the page's URI.
 */
export async function writeHtmlReport(
	s3: S3Client,
	location: { bucket: string; prefix: string },
	state: ScanState,
	record: VerdictRecord,
	evidence: ScanEvidence,
	generatedAt: Date,
): Promise<string> {
	const { bucket, prefix } = location;
	const page = renderReport({
		doc: record,
		source: `s3://${bucket}/${reportKey(state.scanId, "verdict", prefix)}`,
		...(evidence.files === undefined ? {} : { files: evidence.files }),
		models: evidence.models,
		generator: "the ftguard pipeline (record)",
		generatedAt,
	});
	const key = `${prefix}${state.scanId}/${REPORT_HTML_NAME}`;
	await putObject(s3, { bucket, key }, page.html, "text/html; charset=utf-8");
	return `s3://${bucket}/${key}`;
}

/**
 * The record state's S3 side: which pinned objects changed since mark, and the
 * verdict tags written on the exact versions of those that did not.
 */
import type { S3Client } from "@aws-sdk/client-s3";
import { mapLimit } from "../core/pipeline/concurrency";
import { MAX_OBJECTS } from "../core/pipeline/mark";
import { SCAN_ID_TAG, ScanStatus, STATUS_TAG } from "../core/pipeline/names";
import { type TaggedObject, verdictTags } from "../core/pipeline/record";
import type { ScanObject, ScanState } from "../core/pipeline/types";
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
): Promise<TaggedObject[]> {
	const tags = verdictTags(state, status);
	return mapLimit(objects, 8, async ({ object, changed }) => {
		if (changed !== undefined) return { ...object, tagged: false, skipped: changed };
		// bound by VersionId, or (no versioning) by ETag: an overwrite since the re-check above is refused, as S3
		// would have tagged the scanned version and left the new one untagged
		const written = await putFtguardTags(s3, { bucket: state.bucket, ...object }, tags);
		return written ? { ...object, tagged: true } : { ...object, tagged: false, skipped: "changed while tagged" };
	});
}

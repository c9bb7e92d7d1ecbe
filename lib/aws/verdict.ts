/**
 * The record state's S3 side: which pinned objects changed since mark, and the
 * verdict tags written on the exact versions of those that did not.
 */
import type { S3Client } from "@aws-sdk/client-s3";
import { normalizeEtag } from "../core/pipeline/artefact";
import { mapLimit } from "../core/pipeline/concurrency";
import { DIGEST_TAG, SCAN_ID_TAG, ScanStatus, STATUS_TAG } from "../core/pipeline/names";
import type { TaggedObject } from "../core/pipeline/record";
import type { ScanObject, ScanState } from "../core/pipeline/types";
import { MAX_OBJECTS } from "./artefact";
import { headObject, listKeys } from "./objects";
import { getTags, putFtguardTags } from "./tagging";

/**
 * Why the key's current object is no longer the version that was scanned, or
 * undefined when it still is. With versioning the current VersionId must be the
 * pinned one; without, the ETag (and size) must be unchanged.
 */
export async function changedSince(s3: S3Client, bucket: string, o: ScanObject): Promise<string | undefined> {
	const now = await headObject(s3, bucket, o.key);
	if (now === undefined) return "deleted";
	if (o.versionId !== undefined) {
		return now.versionId === o.versionId ? undefined : `current version is ${now.versionId ?? "unversioned"}`;
	}
	if (o.etag === undefined) return "no version or ETag was recorded at mark";
	if (now.etag === undefined || normalizeEtag(now.etag) !== normalizeEtag(o.etag)) return "ETag changed";
	return now.size === o.size || o.size === 0 ? undefined : "size changed";
}

export function verdictTags(state: ScanState, status: Exclude<ScanStatus, "SCANNING">): Record<string, string> {
	return {
		[STATUS_TAG]: status,
		[SCAN_ID_TAG]: state.scanId,
		...(state.manifest ? { [DIGEST_TAG]: state.manifest.rootDigest } : {}),
	};
}

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

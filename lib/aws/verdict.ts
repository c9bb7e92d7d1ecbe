/** The record state's S3 side: has a pinned object changed since mark, and which tags carry the verdict. */
import type { S3Client } from "@aws-sdk/client-s3";
import { normalizeEtag } from "../core/pipeline/artefact";
import type { ScanObject, ScanState } from "../core/pipeline/types";
import { DIGEST_TAG, SCAN_ID_TAG, type ScanStatus, STATUS_TAG } from "../infra/tags";
import { headObject } from "./objects";

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

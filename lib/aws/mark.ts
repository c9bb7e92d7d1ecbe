/**
 * The mark state's S3 side: the objects of an artefact, each pinned to its version now (what every later state
 * reads), and that version tagged SCANNING. The marker is pinned to the version whose upload started the scan;
 * if it has been replaced since, this scan is stale and fails (rules in lib/core/pipeline/mark.ts).
 */
import type { S3Client } from "@aws-sdk/client-s3";
import { FtguardError } from "../core/errors";
import { mapLimit } from "../core/pipeline/concurrency";
import { inKeyOrder, keysToMark, MAX_OBJECTS, markerReplaced, scanningTags } from "../core/pipeline/mark";
import type { ScanObject, ScanState } from "../core/pipeline/types";
import { headObject, listKeys, type ObjectHead } from "./objects";
import { putFtguardTags } from "./tagging";

function pinned(key: string, h: ObjectHead): ScanObject {
	return {
		key,
		...(h.versionId !== undefined ? { versionId: h.versionId } : {}),
		...(h.etag !== undefined ? { etag: h.etag } : {}),
		size: h.size,
	};
}

export async function listArtefactObjects(
	s3: S3Client,
	state: Pick<ScanState, "bucket" | "artefact" | "marker">,
): Promise<ScanObject[]> {
	const { bucket, artefact, marker } = state;
	const listed = artefact.endsWith("/") ? await listKeys(s3, bucket, artefact, MAX_OBJECTS) : [];
	const objects = await mapLimit(keysToMark(state, listed), 8, async (key): Promise<ScanObject | undefined> => {
		const isMarker = key === marker.key;
		const h = await headObject(s3, bucket, key, isMarker ? marker.versionId : undefined);
		if (h === undefined) {
			if (isMarker) throw new FtguardError("NOT_FOUND", `the marker s3://${bucket}/${key} no longer exists`);
			return undefined; // deleted between the listing and now: not part of the artefact any more
		}
		if (isMarker && markerReplaced(marker, h.etag)) {
			throw new FtguardError("IO_ERROR", `the marker s3://${bucket}/${key} was replaced after its upload event`);
		}
		return pinned(key, h);
	});
	return inKeyOrder(objects.filter((o): o is ScanObject => o !== undefined));
}

/** Tags every pinned version SCANNING with the scan id (unreadable until record writes the verdict). */
export async function markScanning(
	s3: S3Client,
	state: Pick<ScanState, "bucket" | "scanId">,
	objects: readonly ScanObject[],
): Promise<void> {
	await mapLimit(objects, 8, (o) => putFtguardTags(s3, { bucket: state.bucket, ...o }, scanningTags(state.scanId)));
}

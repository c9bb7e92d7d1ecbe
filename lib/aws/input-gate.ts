/**
 * The S3 side the training-input gates share (base models: lib/aws/base-model.ts; datasets: lib/aws/dataset.ts):
 * the input's objects pinned to their versions (mark's listing), the marker read as pinned, and every pinned version
 * tagged with the verdict — except a version replaced during the check, which gets no tag (an untagged object is
 * unreadable to training jobs) and quarantines the rest.
 */
import type { S3Client } from "@aws-sdk/client-s3";
import { FtguardError } from "../core/errors";
import { mapLimit } from "../core/pipeline/concurrency";
import { type GateStatus, type GateTarget, gateTags } from "../core/pipeline/input-gate";
import { ScanStatus } from "../core/pipeline/names";
import type { ScanObject } from "../core/pipeline/types";
import { listArtefactObjects } from "./mark";
import { changedSince, readPinnedBytes } from "./objects";
import { putFtguardTags } from "./tagging";

/** Every object of the input, pinned now (the marker to the version whose upload started the check). */
export function pinInput(s3: S3Client, target: GateTarget): Promise<ScanObject[]> {
	return listArtefactObjects(s3, target);
}

/** The pinned marker's bytes (at most `maxBytes`). */
export async function readMarker(
	s3: S3Client,
	target: GateTarget,
	objects: readonly ScanObject[],
	maxBytes: number,
): Promise<Uint8Array> {
	const marker = objects.find((o) => o.key === target.marker.key);
	if (!marker) throw new FtguardError("NOT_FOUND", `the marker s3://${target.bucket}/${target.marker.key} is gone`);
	return readPinnedBytes(s3, { bucket: target.bucket, ...marker }, maxBytes);
}

export interface TagOutcome {
	/** keys whose version changed during the check: left untagged */
	changed: string[];
	/** the status written on the others */
	status: GateStatus;
}

/**
 * Tags every pinned version with the verdict. A key whose current version is no longer the pinned one gets no
 * tag, and then no object gets PROMOTABLE (the input that passed is not the one in the bucket).
 */
export async function tagInput(
	s3: S3Client,
	target: GateTarget,
	objects: readonly ScanObject[],
	status: GateStatus,
): Promise<TagOutcome> {
	const changed = (
		await mapLimit(objects, 8, async (o) => ((await changedSince(s3, target.bucket, o)) ? o.key : undefined))
	).filter((k): k is string => k !== undefined);
	const final = changed.length > 0 ? ScanStatus.QUARANTINED : status;
	const unchanged = objects.filter((o) => !changed.includes(o.key));
	const written = await mapLimit(unchanged, 8, (o) =>
		putFtguardTags(s3, { bucket: target.bucket, ...o }, gateTags(final, target.checkId)),
	);
	// a version bound by ETag that was overwritten between the check above and its tag write is refused the tag
	unchanged.forEach((o, i) => {
		if (!written[i]) changed.push(o.key);
	});
	if (final === ScanStatus.PROMOTABLE && unchanged.some((_, i) => !written[i])) {
		await mapLimit(
			unchanged.filter((_, i) => written[i]),
			8,
			(o) => putFtguardTags(s3, { bucket: target.bucket, ...o }, gateTags(ScanStatus.QUARANTINED, target.checkId)),
		);
		return { changed, status: ScanStatus.QUARANTINED };
	}
	return { changed, status: final };
}

/** Fail closed: QUARANTINED on whatever can be tagged — the pinned versions, else the marker version — errors ignored. */
export async function quarantineWhatever(
	s3: S3Client,
	target: GateTarget,
	objects: readonly ScanObject[] | undefined,
): Promise<number> {
	const targets: ScanObject[] = objects?.length
		? [...objects]
		: [{ key: target.marker.key, ...versionOf(target), size: 0 }];
	const done = await mapLimit(targets, 8, async (o) => {
		try {
			return await putFtguardTags(
				s3,
				{ bucket: target.bucket, ...o },
				gateTags(ScanStatus.QUARANTINED, target.checkId),
			);
		} catch {
			return false;
		}
	});
	return done.filter(Boolean).length;
}

function versionOf(target: GateTarget): Pick<ScanObject, "versionId" | "etag"> {
	return {
		...(target.marker.versionId !== undefined ? { versionId: target.marker.versionId } : {}),
		...(target.marker.etag !== undefined ? { etag: target.marker.etag } : {}),
	};
}

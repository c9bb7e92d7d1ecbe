/**
 * The manifest state's S3 side: SHA-256 of every object of the artefact but the marker, each streamed from its
 * pinned version (no /tmp copy), as the marker's signature says it was made (rules in lib/core/pipeline/manifest.ts).
 */
import type { S3Client } from "@aws-sdk/client-s3";
import { mapLimit } from "../core/pipeline/concurrency";
import { contentObjects, FILES_PLAN, type HashPlan, type ObjectDigest, shardsOf } from "../core/pipeline/manifest";
import type { ScanObject, ScanState } from "../core/pipeline/types";
import { type RangedReadOptions, sha256Pinned, sha256PinnedRange } from "./objects";

/** One digest per object (method "files"), or one per shard of `plan.shardSize` bytes (method "shards"). */
export async function digestObjects(
	s3: S3Client,
	state: Pick<ScanState, "bucket" | "artefact" | "marker"> & { objects: ScanObject[] },
	plan: HashPlan = FILES_PLAN,
	read: RangedReadOptions = {},
): Promise<ObjectDigest[]> {
	const named = contentObjects(state);
	if (plan.method === "files") {
		return mapLimit(named, 4, async (o) => {
			const { digest } = await sha256Pinned(s3, { bucket: state.bucket, ...o }, read);
			return { ...o, digest };
		});
	}
	return mapLimit(shardsOf(named, plan, state.artefact), 4, async ({ o, start, end }) => ({
		...o,
		name: `${o.name}:${start}:${end}`,
		range: [start, end] as [number, number],
		digest: await sha256PinnedRange(s3, { bucket: state.bucket, ...o }, { start, end }, read),
	}));
}

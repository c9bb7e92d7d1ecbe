/**
 * manifest: SHA-256 of every pinned object (streamed, no /tmp copy) — per file, or per shard when the marker's
 * signature was made with the "shards" method — and the OMS manifest written to the report bucket.
 */
import { digestObjects } from "../lib/aws/manifest";
import { markerBytes } from "../lib/aws/objects";
import { rangedReadOptions, runHandler, s3Client, scanIdOf, writeReport } from "../lib/aws/runtime";
import { buildPipelineManifest, hashPlanOf } from "../lib/core/pipeline/manifest";
import { parseScanState, requireFields } from "../lib/core/pipeline/schema";
import type { ScanStateWith } from "../lib/core/pipeline/types";

export async function handler(event: unknown): Promise<ScanStateWith<"manifest">> {
	return runHandler("manifest", scanIdOf(event), async (log) => {
		const state = requireFields(parseScanState(event, "manifest"), "manifest", "objects");
		// hashed the way the signature says it was made; the signature state verifies that claim
		const plan = hashPlanOf(await markerBytes(s3Client(), state));
		const manifest = buildPipelineManifest(
			state,
			await digestObjects(s3Client(), state, plan, rangedReadOptions()),
			plan,
		);
		const uri = await writeReport(state.scanId, "manifest", manifest);
		const { rootDigest, bytes } = manifest;
		const files = manifest.resources.length;
		log.info("manifest written", { rootDigest, files, bytes, method: plan.method });
		return { ...state, manifest: { rootDigest, files, bytes, uri } };
	});
}

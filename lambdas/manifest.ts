/** manifest: SHA-256 of every pinned object (streamed, no /tmp copy), the OMS manifest written to the report bucket. */
import { digestObjects } from "../lib/aws/artefact";
import { runHandler, s3Client, scanIdOf, writeReport } from "../lib/aws/runtime";
import { buildPipelineManifest } from "../lib/core/pipeline/manifest";
import { parseScanState, requireFields } from "../lib/core/pipeline/schema";
import type { ScanState } from "../lib/core/pipeline/types";

export async function handler(event: unknown): Promise<ScanState & Required<Pick<ScanState, "manifest">>> {
	return runHandler("manifest", scanIdOf(event), async (log) => {
		const state = requireFields(parseScanState(event, "manifest"), "manifest", "objects");
		const manifest = buildPipelineManifest(state, await digestObjects(s3Client(), state));
		const uri = await writeReport(state.scanId, "manifest", manifest);
		const { rootDigest, bytes } = manifest;
		const files = manifest.resources.length;
		log.info("manifest written", { rootDigest, files, bytes });
		return { ...state, manifest: { rootDigest, files, bytes, uri } };
	});
}

/** manifest: SHA-256 of every pinned object (streamed, no /tmp copy), the OMS manifest written to the report bucket. */

import { putObject } from "../lib/aws/object-store";
import { sha256Pinned } from "../lib/aws/objects";
import { reportLocation, runHandler, s3Client, scanIdOf } from "../lib/aws/runtime";
import { FtguardError } from "../lib/core/errors";
import { resourceNameOf } from "../lib/core/pipeline/artefact";
import { mapLimit } from "../lib/core/pipeline/concurrency";
import { buildPipelineManifest } from "../lib/core/pipeline/manifest";
import { reportKey } from "../lib/core/pipeline/record";
import { parseScanState, requireFields } from "../lib/core/pipeline/schema";
import type { ScanState } from "../lib/core/pipeline/types";

export async function handler(event: unknown): Promise<ScanState & Required<Pick<ScanState, "manifest">>> {
	return runHandler("manifest", scanIdOf(event), async (log) => {
		const state = requireFields(parseScanState(event, "manifest"), "manifest", "objects");
		const { bucket: reportBucket, prefix } = reportLocation();
		const s3 = s3Client();
		const content = state.objects.filter((o) => o.key !== state.marker.key);
		const digests = await mapLimit(content, 4, async (o) => {
			const name = resourceNameOf(state.artefact, o.key);
			if (name === undefined) throw new FtguardError("USAGE", `${o.key} is not part of ${state.artefact}`);
			const { digest } = await sha256Pinned(s3, { bucket: state.bucket, ...o });
			return { ...o, name, digest };
		});
		const manifest = buildPipelineManifest(state, digests);
		const key = reportKey(state.scanId, "manifest", prefix);
		await putObject(s3, { bucket: reportBucket, key }, JSON.stringify(manifest, null, 2), "application/json");
		log.info("manifest written", { rootDigest: manifest.rootDigest, files: digests.length, bytes: manifest.bytes });
		return {
			...state,
			manifest: {
				rootDigest: manifest.rootDigest,
				files: digests.length,
				bytes: manifest.bytes,
				uri: `s3://${reportBucket}/${key}`,
			},
		};
	});
}

/**
 * signature: the marker's Sigstore bundle verified offline under the policy's
 * signers, and its signed resources compared with the computed manifest. A
 * failed verification is a result (verified: false, code, reason), not an error.
 */
import { emitMetrics } from "../lib/aws/metrics";
import { getObjectBytes, parseS3Uri } from "../lib/aws/object-store";
import { readPinnedBytes } from "../lib/aws/objects";
import { loadPolicy, runHandler, s3Client, scanIdOf } from "../lib/aws/runtime";
import { MAX_BUNDLE_BYTES } from "../lib/core/integrity/sigstore";
import { parseManifestJson } from "../lib/core/pipeline/manifest";
import { parseScanState, requireFields } from "../lib/core/pipeline/schema";
import { verifyManifestSignature } from "../lib/core/pipeline/signature";
import type { ScanState } from "../lib/core/pipeline/types";
import { trustPoliciesOf } from "../lib/core/policy";
import { MetricName } from "../lib/infra/tags";

const MAX_MANIFEST_BYTES = 256 * 1024 * 1024;

export async function handler(event: unknown): Promise<ScanState & Required<Pick<ScanState, "signature">>> {
	return runHandler("signature", scanIdOf(event), async (log) => {
		const state = requireFields(parseScanState(event, "signature"), "signature", "objects", "manifest");
		const s3 = s3Client();
		const policy = await loadPolicy();
		const manifestRef = parseS3Uri(state.manifest.uri);
		const manifest = parseManifestJson(
			(await getObjectBytes(s3, manifestRef, MAX_MANIFEST_BYTES)).bytes,
			state.manifest,
		);
		const markerObject = state.objects.find((o) => o.key === state.marker.key);
		const bundle = markerObject
			? await readPinnedBytes(s3, { bucket: state.bucket, ...markerObject }, MAX_BUNDLE_BYTES)
			: undefined;
		const signature = bundle
			? verifyManifestSignature(
					bundle,
					`s3://${state.bucket}/${state.marker.key}`,
					trustPoliciesOf(policy.signers),
					manifest,
				)
			: { verified: false, code: "NOT_FOUND", reason: "the marker is not among the marked objects" };
		log.info("signature checked", { ...signature });
		if (signature.verified) emitMetrics([{ name: MetricName.TRAINING_JOB_CHECKPOINT_SIGNED_TOTAL, value: 1 }]);
		return { ...state, signature };
	});
}

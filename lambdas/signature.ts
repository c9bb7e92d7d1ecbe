/**
 * signature: the marker's Sigstore bundle verified offline under the policy's
 * signers, and its signed resources compared with the computed manifest. A
 * failed verification is a result (verified: false, code, reason), not an error.
 */
import { loadPolicy, runHandler, s3Client, scanIdOf } from "../lib/aws/runtime";
import { signatureInputs } from "../lib/aws/signature";
import { parseScanState, requireFields } from "../lib/core/pipeline/schema";
import { verifyManifestSignature } from "../lib/core/pipeline/signature";
import type { ScanStateWith } from "../lib/core/pipeline/types";
import { trustPoliciesOf } from "../lib/core/policy";

export async function handler(event: unknown): Promise<ScanStateWith<"signature">> {
	return runHandler("signature", scanIdOf(event), async (log) => {
		const state = requireFields(parseScanState(event, "signature"), "signature", "objects", "manifest");
		const policy = await loadPolicy();
		const { bundle, manifest } = await signatureInputs(s3Client(), state);
		const source = `s3://${state.bucket}/${state.marker.key}`;
		const signature = await verifyManifestSignature(bundle, source, trustPoliciesOf(policy.signers), manifest);
		log.info("signature checked", { ...signature });
		return { ...state, signature };
	});
}

/**
 * signature: the marker's Sigstore bundle verified offline under the policy's
 * signers, and its signed resources compared with the computed manifest. A
 * failed verification is a result (verified: false, code, reason), not an error.
 */
import { signatureInputs } from "../lib/aws/artefact";
import { emitMetrics } from "../lib/aws/metrics";
import { loadPolicy, runHandler, s3Client, scanIdOf } from "../lib/aws/runtime";
import { MetricName } from "../lib/core/pipeline/names";
import { parseScanState, requireFields } from "../lib/core/pipeline/schema";
import { type SignatureOutcome, verifyManifestSignature } from "../lib/core/pipeline/signature";
import type { ScanStateWith } from "../lib/core/pipeline/types";
import { trustPoliciesOf } from "../lib/core/policy";

export async function handler(event: unknown): Promise<ScanStateWith<"signature">> {
	return runHandler("signature", scanIdOf(event), async (log) => {
		const state = requireFields(parseScanState(event, "signature"), "signature", "objects", "manifest");
		const policy = await loadPolicy();
		const { bundle, manifest } = await signatureInputs(s3Client(), state);
		const source = `s3://${state.bucket}/${state.marker.key}`;
		const signature: SignatureOutcome = bundle
			? verifyManifestSignature(bundle, source, trustPoliciesOf(policy.signers), manifest)
			: { verified: false, code: "NOT_FOUND", reason: "the marker is not among the marked objects" };
		log.info("signature checked", { ...signature });
		if (signature.verified) emitMetrics([{ name: MetricName.TRAINING_JOB_CHECKPOINT_SIGNED_TOTAL, value: 1 }]);
		return { ...state, signature };
	});
}

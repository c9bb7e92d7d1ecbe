/**
 * Offline verification of a DSSE bundle — an OMS model signature (`model.sig`)
 * or a `cosign attest-blob` bundle — returning the authenticated payload.
 */
import type { Bundle } from "@sigstore/bundle";
import { FtguardError } from "../errors";
import { DsseContent } from "./sigstore-content";
import { guard } from "./sigstore-errors";
import { prepareTrust } from "./sigstore-trust";
import { runVerifier } from "./sigstore-verifier";
import { IN_TOTO_PAYLOAD_TYPE } from "./statement";
import type { SignerInfo, TrustPolicy, VerifyOptions } from "./trust-policy";

export interface DsseVerification {
	payloadType: string;
	payload: Buffer;
	signer: SignerInfo;
}

/**
 * Verifies an OMS model signature (`model.sig`, a DSSE bundle) under `policy`,
 * offline, and returns the authenticated payload.
 *
 * In key and certificate modes a signature over model_signing v0.2's encoding is
 * accepted as the reference verifier accepts it (see `LegacyRetry`), and the
 * signer is then marked `legacyEncoding`.
 *
 * @throws FtguardError SIGNATURE_INVALID, IDENTITY_MISMATCH, CERTIFICATE_UNTRUSTED,
 *   TLOG_INVALID, TIMESTAMP_INVALID, PAYLOAD_INVALID (not a DSSE bundle, or a
 *   payload type other than in-toto JSON); KEY_INVALID, TRUST_ROOT_INVALID, USAGE
 *   for unusable trust material; INTERNAL for anything unexpected. Never returns
 *   unless every check passed.
 */
export function verifyDsseBundle(bundle: Bundle, policy: TrustPolicy, options: VerifyOptions = {}): DsseVerification {
	return verifyDsse(bundle, policy, options, true);
}

/**
 * @param modelSigning the bundle is a model_signing signature: its pre-1.0
 *   encoding may be retried. Not for other DSSE bundles (`cosign attest-blob`),
 *   whose signers never had that encoding.
 */
export function verifyDsse(
	bundle: Bundle,
	policy: TrustPolicy,
	options: VerifyOptions,
	modelSigning: boolean,
): DsseVerification {
	return guard(() => {
		if (bundle.content.$case !== "dsseEnvelope") {
			throw new FtguardError(
				"PAYLOAD_INVALID",
				"the bundle holds a message signature (cosign sign-blob), not a DSSE envelope",
			);
		}
		const env = bundle.content.dsseEnvelope;
		const trust = prepareTrust(bundle, policy, options);
		// v0.2 only signed in-toto payloads, and the reference refuses any other type
		// after its retry; retrying only for that type keeps the rule the same.
		const legacy = modelSigning && env.payloadType === IN_TOTO_PAYLOAD_TYPE ? trust.legacy : undefined;
		const content = new DsseContent(env, legacy);
		const signer = runVerifier(bundle, trust, content);
		// Checked after authenticity: an unsigned payload type says nothing useful.
		if (env.payloadType !== IN_TOTO_PAYLOAD_TYPE) {
			throw new FtguardError(
				"PAYLOAD_INVALID",
				`DSSE payload type is ${JSON.stringify(env.payloadType)}, expected ${IN_TOTO_PAYLOAD_TYPE}`,
			);
		}
		return {
			payloadType: env.payloadType,
			payload: Buffer.from(env.payload),
			signer: content.legacyUsed ? { ...signer, legacyEncoding: true } : signer,
		};
	});
}

/**
 * The one sequence every bundle goes through once its trust mode is prepared:
 * our signature check, the mode's own pre-checks, `@sigstore/verify` (logs,
 * SCTs, timestamps, certificate paths), then the mode's post-checks.
 *
 * Order of checks: the signature is checked against the key the bundle claims
 * (or the user's key) before anything about trust, so that any change to the
 * payload or signature reads as SIGNATURE_INVALID, not as whatever log or
 * timestamp check happened to notice first.
 */
import type { Bundle } from "@sigstore/bundle";
import { type SignedEntity, type Signer, toSignedEntity, Verifier } from "@sigstore/verify";
import { FtguardError } from "../errors";
import type { SignatureContent } from "./sigstore-content";
import { translate } from "./sigstore-errors";
import type { PreparedTrust } from "./sigstore-trust";
import type { SignerInfo } from "./trust-policy";

export function runVerifier(bundle: Bundle, trust: PreparedTrust, content: SignatureContent): SignerInfo {
	if (!content.verifySignature(trust.candidateKey)) {
		throw new FtguardError("SIGNATURE_INVALID", "signature does not verify with the signing key");
	}
	trust.before?.();
	const fromBundle = toSignedEntity(bundle);
	const entity: SignedEntity = {
		signature: content,
		key: trust.entityKey,
		tlogEntries: trust.transparency ? fromBundle.tlogEntries : [],
		timestamps: trust.transparency ? fromBundle.timestamps : [],
	};
	let signer: Signer;
	try {
		signer = new Verifier(trust.material, trust.options).verify(entity);
	} catch (e) {
		throw translate(e);
	}
	// The library verified with the key it resolved; make sure it is the key we
	// checked the signature with (it always should be; a difference is a bug).
	if (!signer.key.equals(trust.candidateKey)) {
		throw new FtguardError("INTERNAL", "verifier resolved a different signing key than the bundle's");
	}
	trust.after?.(signer);
	return trust.info(entity);
}

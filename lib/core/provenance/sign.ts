/**
 * Signing a provenance statement: a DSSE envelope (in-toto payload) in a Sigstore bundle v0.3 with the key's
 * `publicKey.hint` — the layout `ftguard sign --private-key` writes (integrity/sign-bundle.ts), so
 * `cosign verify-blob-attestation --key`, sigstore's verifiers and `ftguard provenance verify` all read it.
 */
import { keyedBundleJson } from "../integrity/sign-bundle";
import { type Signer, signInTotoPayload } from "../integrity/sign-signer";
import { keyFingerprint, publicKeyHint } from "../integrity/signing-key";
import { type ProvenanceStatement, provenancePayload } from "./statement";

export interface SignedProvenance {
	/** the bundle's bytes: what the record step writes (`<scan>/provenance.sigstore.json`) */
	bundle: Buffer;
	/** the signed DSSE payload (the statement, canonical JSON) */
	payload: Buffer;
	/** lower-case hex SHA-256 of the signing key's SPKI DER (what `ftguard verify` reports as the signer) */
	keyFingerprint: string;
}

/**
 * @throws FtguardError KEY_INVALID when the signer's signature does not verify with its own public key, or the
 *   signer's error (a KMS failure is whatever the KMS signer throws)
 */
export async function signProvenance(statement: ProvenanceStatement, signer: Signer): Promise<SignedProvenance> {
	const payload = provenancePayload(statement);
	const signature = await signInTotoPayload(payload, signer);
	const bundle = Buffer.from(
		keyedBundleJson(payload, signature, { kind: "key", hint: publicKeyHint(signer.publicKey) }),
	);
	return { bundle, payload, keyFingerprint: keyFingerprint(signer.publicKey) };
}

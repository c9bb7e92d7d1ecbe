/**
 * The signature file of the key and certificate modes, byte for byte as model_signing 1.1 writes it
 * (`sign_ec_key.py`, `sign_certificate.py`, written by `Bundle.to_json()`): compact JSON, a v0.3 bundle
 * with an empty `tlogEntries`, a DSSE envelope whose one signature has `keyid: ""`, and either the key's
 * hint or the certificate chain (leaf first) in `x509CertificateChain` — which the v0.3 spec does not
 * allow but model_signing writes and verifies (ftguard's `parseBundle` reads it).
 */
import { IN_TOTO_PAYLOAD_TYPE } from "./statement";

export const BUNDLE_V03_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json";

export type KeyMaterial =
	/** `publicKey.hint`: `publicKeyHint(key)` */
	| { kind: "key"; hint: string }
	/** the signing certificate then the rest of the chain, DER */
	| { kind: "certificates"; certificates: readonly Uint8Array[] };

const b64 = (data: Uint8Array): string => Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("base64");

export function keyedBundleJson(payload: Buffer, signature: Uint8Array, material: KeyMaterial): string {
	const verificationMaterial =
		material.kind === "key"
			? { publicKey: { hint: material.hint }, tlogEntries: [] }
			: {
					x509CertificateChain: { certificates: material.certificates.map((c) => ({ rawBytes: b64(c) })) },
					tlogEntries: [],
				};
	return JSON.stringify({
		mediaType: BUNDLE_V03_MEDIA_TYPE,
		verificationMaterial,
		dsseEnvelope: {
			payload: b64(payload),
			payloadType: IN_TOTO_PAYLOAD_TYPE,
			signatures: [{ sig: b64(signature), keyid: "" }],
		},
	});
}

/**
 * The signed content handed to `@sigstore/verify`: a DSSE envelope, or a
 * message signature whose artefact was streamed beforehand.
 *
 * Why the signature check is our own and not the library's: `@sigstore/verify`
 * verifies ECDSA with OpenSSL's default digest for EC keys, SHA-256, whatever the
 * curve. model_signing signs with the digest that matches the curve (P-384 with
 * SHA-384, as in its test vectors), like sigstore-go and sigstore-python. So the
 * library is handed a `SignatureContent` whose `verifySignature` picks the digest
 * from the key; everything else it does is unchanged.
 */
import { createHash, verify as cryptoVerify, type KeyObject, timingSafeEqual } from "node:crypto";
import { dsse } from "@sigstore/core";
import type { SignedEntity } from "@sigstore/verify";
import { type LegacyRetry, legacyPreAuthEncoding } from "./legacy-encoding";
import { digestForKey, verifyWithKey } from "./signing-key";

export type SignatureContent = SignedEntity["signature"];
export type VerificationKey = SignedEntity["key"];

export function bufferEqual(a: Uint8Array, b: Uint8Array): boolean {
	return a.byteLength === b.byteLength && timingSafeEqual(a, b);
}

/** A DSSE envelope as `@sigstore/verify` sees it, with a curve-aware signature check. */
export class DsseContent implements SignatureContent {
	readonly signature: Buffer;
	private readonly pae: Buffer;
	private readonly payload: Buffer;
	private readonly payloadDigest: Buffer;
	/** Set once the signature verified only over the legacy encoding. */
	legacyUsed = false;

	constructor(
		env: {
			payload: Buffer;
			payloadType: string;
			signatures: { sig: Buffer }[];
		},
		private readonly legacy: LegacyRetry | undefined,
	) {
		this.signature = env.signatures[0]?.sig ?? Buffer.alloc(0);
		this.payload = env.payload;
		this.pae = dsse.preAuthEncoding(env.payloadType, env.payload);
		this.payloadDigest = createHash("sha256").update(env.payload).digest();
	}

	compareSignature(signature: Buffer): boolean {
		return bufferEqual(signature, this.signature);
	}

	compareDigest(digest: Buffer): boolean {
		return bufferEqual(digest, this.payloadDigest);
	}

	verifySignature(key: KeyObject): boolean {
		if (verifyWithKey(this.pae, key, this.signature)) return true;
		if (this.legacy === undefined || !this.verifyLegacy(key, this.legacy)) return false;
		this.legacyUsed = true;
		return true;
	}

	private verifyLegacy(key: KeyObject, rule: LegacyRetry): boolean {
		// The reference only ever verifies EC keys on its three curves.
		const curveDigest = key.asymmetricKeyType === "ec" ? digestForKey(key) : undefined;
		if (typeof curveDigest !== "string") return false;
		try {
			return cryptoVerify(
				rule === "sha256" ? "sha256" : curveDigest,
				legacyPreAuthEncoding(this.payload),
				key,
				this.signature,
			);
		} catch {
			return false;
		}
	}
}

/**
 * A message signature whose artefact was streamed through the verifier
 * beforehand. `verifySignature` answers for the one key the stream was checked
 * with, and says no for any other: the library then refuses, as it must.
 */
export class StreamedMessageContent implements SignatureContent {
	constructor(
		readonly signature: Buffer,
		private readonly messageDigest: Buffer,
		private readonly checkedKey: KeyObject,
		private readonly valid: boolean,
	) {}

	compareSignature(signature: Buffer): boolean {
		return bufferEqual(signature, this.signature);
	}

	compareDigest(digest: Buffer): boolean {
		return bufferEqual(digest, this.messageDigest);
	}

	verifySignature(key: KeyObject): boolean {
		return this.valid && key.equals(this.checkedKey);
	}
}

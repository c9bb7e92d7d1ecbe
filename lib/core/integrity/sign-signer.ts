/**
 * Who makes the signature: a `Signer` returns a DER-encoded ECDSA signature over the bytes it is given,
 * hashed with its curve's digest (P-256/384/521 → SHA-256/384/512, model_signing's rule). A local PEM key
 * is one; a key held elsewhere (AWS KMS: the private key never leaves it) is another, through
 * {@link digestSigner}: ftguard hashes, the key service signs the digest.
 */
import { createHash, createPublicKey, sign as cryptoSign, type KeyObject } from "node:crypto";
import { FtguardError, toFtguardError } from "../errors";
import { inTotoPae } from "./sign-payload";
import { digestForKey, verifyWithKey } from "./signing-key";

export interface Signer {
	/** The public half: named in the bundle, matched against a certificate, and used to check each signature. */
	readonly publicKey: KeyObject;
	/** DER ECDSA signature over `data`, hashed with the curve's digest. */
	sign(data: Uint8Array): Promise<Uint8Array>;
}

/** KMS's names for the ECDSA schemes, by curve digest. */
export type EcdsaAlgorithm = "ECDSA_SHA_256" | "ECDSA_SHA_384" | "ECDSA_SHA_512";

const ALGORITHM: Readonly<Record<string, EcdsaAlgorithm>> = {
	sha256: "ECDSA_SHA_256",
	sha384: "ECDSA_SHA_384",
	sha512: "ECDSA_SHA_512",
};

function curveDigest(publicKey: KeyObject): string {
	const digest = digestForKey(publicKey);
	if (publicKey.asymmetricKeyType !== "ec" || typeof digest !== "string") {
		throw new FtguardError("KEY_INVALID", "signing needs an EC key on P-256, P-384 or P-521");
	}
	return digest;
}

/** A signer over a private key in memory (already checked by `parseEcPrivateKey`). */
export function localKeySigner(privateKey: KeyObject): Signer {
	const publicKey = createPublicKey(privateKey);
	const digest = curveDigest(publicKey);
	return {
		publicKey,
		sign: async (data) => cryptoSign(digest, data, privateKey),
	};
}

/**
 * A signer whose private key lives in a service that signs digests (AWS KMS `Sign` with
 * `MessageType: "DIGEST"`): the data is hashed here with the curve's digest and only the digest leaves the
 * process, so a payload of any size fits KMS's 4,096-byte message limit. `signDigest` must return the DER
 * signature (what KMS returns for ECDSA); a signature that does not verify is refused by `signModel`.
 */
export function digestSigner(
	publicKey: KeyObject,
	signDigest: (digest: Buffer, algorithm: EcdsaAlgorithm) => Promise<Uint8Array>,
): Signer {
	const digest = curveDigest(publicKey);
	const algorithm = ALGORITHM[digest] as EcdsaAlgorithm;
	return {
		publicKey,
		sign: (data) => signDigest(createHash(digest).update(data).digest(), algorithm),
	};
}

/**
 * Signs an in-toto payload's DSSE encoding with `signer` and checks the signature against the signer's own public
 * key, so a signer that answers with the wrong key, a raw (r||s) signature or garbage is caught here, not by
 * whoever verifies later. `ftguard sign` (key and certificate modes) and the provenance record both sign this way.
 * @throws FtguardError KEY_INVALID (the signature does not verify), or the signer's own error
 */
export async function signInTotoPayload(payload: Buffer, signer: Signer): Promise<Uint8Array> {
	const pae = inTotoPae(payload);
	let signature: Uint8Array;
	try {
		signature = await signer.sign(pae);
	} catch (e) {
		throw toFtguardError(e, "signing");
	}
	if (!verifyWithKey(pae, signer.publicKey, signature)) {
		throw new FtguardError(
			"KEY_INVALID",
			"the signer's signature does not verify with its public key (not DER ECDSA by this key?)",
		);
	}
	return signature;
}

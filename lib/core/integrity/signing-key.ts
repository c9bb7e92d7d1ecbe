/**
 * Signing keys: which EC keys a user may pass, which digest a key signs with,
 * the signature check itself, and the fingerprints reported for a signer.
 */
import { createHash, createPublicKey, verify as cryptoVerify, type KeyObject } from "node:crypto";
import { FtguardError } from "../errors";

const CURVE_DIGEST: Readonly<Record<string, string>> = {
	prime256v1: "sha256",
	secp384r1: "sha384",
	secp521r1: "sha512",
};

const ACCEPTED_CURVES: ReadonlySet<string> = new Set(Object.keys(CURVE_DIGEST));

/**
 * The digest a signature by `key` is made with when the bundle does not say:
 * by curve for ECDSA (as model_signing, sigstore-go and sigstore-python do),
 * SHA-256 for RSA PKCS#1 v1.5 (Sigstore's only RSA scheme), none for EdDSA.
 * `undefined` means the key cannot have made a signature we accept.
 */
export function digestForKey(key: KeyObject): string | null | undefined {
	switch (key.asymmetricKeyType) {
		case "ec":
			return CURVE_DIGEST[key.asymmetricKeyDetails?.namedCurve ?? ""];
		case "rsa":
			return "sha256";
		case "ed25519":
			return null;
		default:
			return undefined;
	}
}

export function verifyWithKey(data: Uint8Array, key: KeyObject, signature: Uint8Array): boolean {
	const digest = digestForKey(key);
	if (digest === undefined) return false;
	try {
		return cryptoVerify(digest, data, key, signature);
	} catch {
		return false;
	}
}

export function fingerprint(data: Uint8Array): string {
	return createHash("sha256").update(data).digest("hex");
}

export function keyFingerprint(key: KeyObject): string {
	return fingerprint(key.export({ type: "spki", format: "der" }));
}

/**
 * The user's public key: exactly one `PUBLIC KEY` PEM block, EC on P-256/384/521.
 * A private key or certificate PEM is refused although Node would derive a
 * public key from it: a mixed-up file should be a usage error, not a guess.
 */
export function parseEcPublicKey(pem: string): KeyObject {
	const blocks = [...pem.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----/g)].map((m) => m[1]);
	if (blocks.length !== 1 || blocks[0] !== "PUBLIC KEY") {
		throw new FtguardError(
			"KEY_INVALID",
			`expected one PEM "PUBLIC KEY" block, found ${blocks.length === 0 ? "none" : blocks.join(", ")}`,
		);
	}
	let key: KeyObject;
	try {
		key = createPublicKey(pem);
	} catch (e) {
		throw new FtguardError("KEY_INVALID", "the public key PEM does not parse", {
			cause: e,
		});
	}
	if (key.asymmetricKeyType !== "ec") {
		throw new FtguardError("KEY_INVALID", `expected an EC public key, got ${key.asymmetricKeyType ?? "unknown"}`);
	}
	const curve = key.asymmetricKeyDetails?.namedCurve ?? "unknown";
	if (!ACCEPTED_CURVES.has(curve)) {
		throw new FtguardError("KEY_INVALID", `EC curve ${curve} is not accepted (P-256, P-384, P-521)`);
	}
	return key;
}

/**
 * Signing keys: which EC keys a user may pass, which digest a key signs with,
 * the signature check itself, and the fingerprints reported for a signer.
 */
import {
	createHash,
	createPrivateKey,
	createPublicKey,
	verify as cryptoVerify,
	type KeyObject,
	X509Certificate as NodeX509Certificate,
} from "node:crypto";
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

/**
 * A signing key: exactly one PEM block, `PRIVATE KEY` (PKCS#8) or `EC PRIVATE KEY` (SEC1), EC on
 * P-256/384/521 — the keys model_signing signs with. Encrypted keys are refused (no passphrase prompt in a job).
 */
export function parseEcPrivateKey(pem: string): KeyObject {
	const blocks = [...pem.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----/g)].map((m) => m[1]);
	if (blocks.length === 1 && blocks[0] === "ENCRYPTED PRIVATE KEY") {
		throw new FtguardError(
			"KEY_INVALID",
			"the private key is encrypted; give an unencrypted PEM (or sign through KMS)",
		);
	}
	if (blocks.length !== 1 || (blocks[0] !== "PRIVATE KEY" && blocks[0] !== "EC PRIVATE KEY")) {
		throw new FtguardError(
			"KEY_INVALID",
			`expected one PEM "PRIVATE KEY" or "EC PRIVATE KEY" block, found ${blocks.length === 0 ? "none" : blocks.join(", ")}`,
		);
	}
	let key: KeyObject;
	try {
		key = createPrivateKey(pem);
	} catch (e) {
		throw new FtguardError("KEY_INVALID", "the private key PEM does not parse", { cause: e });
	}
	if (key.asymmetricKeyType !== "ec") {
		throw new FtguardError("KEY_INVALID", `expected an EC private key, got ${key.asymmetricKeyType ?? "unknown"}`);
	}
	const curve = key.asymmetricKeyDetails?.namedCurve ?? "unknown";
	if (!ACCEPTED_CURVES.has(curve)) {
		throw new FtguardError("KEY_INVALID", `EC curve ${curve} is not accepted (P-256, P-384, P-521)`);
	}
	return key;
}

/**
 * model_signing's (v1.1) `publicKey.hint`: hex SHA-256 of the key's SPKI PEM text, exactly as Python's
 * `cryptography` writes it (64-column base64, trailing newline), which is also what Node's export writes.
 */
export function publicKeyHint(publicKey: KeyObject): string {
	return fingerprint(Buffer.from(publicKey.export({ type: "spki", format: "pem" }).toString(), "ascii"));
}

/** DER certificates from a PEM text, in order; anything but CERTIFICATE blocks is refused. */
export function parsePemCertificates(pem: string, what = "certificate chain"): Buffer[] {
	const blocks = [...pem.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g)];
	if (blocks.length === 0) {
		throw new FtguardError("TRUST_ROOT_INVALID", `${what} holds no PEM certificate`);
	}
	return blocks.map((block, i) => {
		if (block[1] !== "CERTIFICATE") {
			throw new FtguardError("TRUST_ROOT_INVALID", `${what}: PEM block ${i + 1} is ${block[1]}, not CERTIFICATE`);
		}
		const der = Buffer.from((block[2] ?? "").replace(/\s+/g, ""), "base64");
		try {
			// Node's parser is strict about DER; @sigstore/core's is lenient and would
			// accept trailing garbage.
			new NodeX509Certificate(der);
		} catch (e) {
			throw new FtguardError("TRUST_ROOT_INVALID", `${what}: certificate ${i + 1} does not parse`, { cause: e });
		}
		return der;
	});
}

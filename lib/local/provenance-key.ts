/**
 * The local pipeline's provenance key: an EC P-256 key in a PEM file the record handler signs with
 * (FTGUARD_PROVENANCE_KEY_FILE, lib/aws/kms-signer.ts), kept between runs so records of earlier runs still verify,
 * and its public key beside it for `ftguard provenance verify --public-key`. In AWS the key is in KMS instead.
 */
import { createPublicKey, generateKeyPairSync } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { parseEcPrivateKey } from "../core/integrity/signing-key";

export interface LocalProvenanceKey {
	/** the private key (PKCS#8 PEM, mode 0600) */
	keyFile: string;
	/** its public key (SPKI PEM): what a verifier is given */
	publicKeyFile: string;
	/** whether this run generated the key */
	created: boolean;
}

/** `x.key.pem` → `x.pub.pem`; any other name gets `.pub.pem` appended. */
export function publicKeyFileOf(keyFile: string): string {
	return keyFile.endsWith(".key.pem") ? `${keyFile.slice(0, -".key.pem".length)}.pub.pem` : `${keyFile}.pub.pem`;
}

/** Reuses the key at `keyFile` (refusing one that is not an EC key ftguard signs with), or makes one there. */
export function localProvenanceKey(keyFile: string): LocalProvenanceKey {
	const publicKeyFile = publicKeyFileOf(keyFile);
	let created = false;
	let pem: string;
	if (existsSync(keyFile)) {
		pem = readFileSync(keyFile, "utf8");
	} else {
		mkdirSync(dirname(keyFile), { recursive: true });
		pem = generateKeyPairSync("ec", { namedCurve: "P-256" })
			.privateKey.export({ type: "pkcs8", format: "pem" })
			.toString();
		// "wx": never overwrite a key another process just made
		writeFileSync(keyFile, pem, { mode: 0o600, flag: "wx" });
		created = true;
	}
	const publicPem = createPublicKey(parseEcPrivateKey(pem)).export({ type: "spki", format: "pem" }).toString();
	// always rewritten from the private key, so it can never name another key
	writeFileSync(publicKeyFile, publicPem);
	return { keyFile, publicKeyFile, created };
}

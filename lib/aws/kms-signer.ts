/**
 * The provenance signer of a deployment: an AWS KMS asymmetric key (ECC_NIST_P256, SIGN_VERIFY) whose private half
 * never leaves KMS. ftguard hashes the DSSE encoding and KMS signs the digest (`Sign`, MessageType DIGEST,
 * ECDSA_SHA_256) — lib/core/integrity/sign-signer.ts `digestSigner`; the public key comes from `GetPublicKey` (DER
 * SPKI) and every signature is checked against it before it is written (`signInTotoPayload`).
 *
 * Environment (read by {@link provenanceSignerFromEnv}, the record step's entry):
 * - FTGUARD_PROVENANCE_KMS_KEY   key ARN (or id / alias) of the KMS signing key: what a deployment sets
 * - FTGUARD_PROVENANCE_KEY_FILE  an EC private key PEM (P-256/384/521): the local pipeline's signer
 */

import { createPublicKey, type KeyObject } from "node:crypto";
import { readFile } from "node:fs/promises";
import {
	GetPublicKeyCommand,
	type GetPublicKeyCommandOutput,
	KMSClient,
	SignCommand,
	type SignCommandOutput,
} from "@aws-sdk/client-kms";
import { FtguardError, firstLine, toFtguardError } from "../core/errors";
import { digestSigner, localKeySigner, type Signer } from "../core/integrity/sign-signer";
import { parseEcPrivateKey } from "../core/integrity/signing-key";

export const PROVENANCE_ENV = {
	KMS_KEY: "FTGUARD_PROVENANCE_KMS_KEY",
	KEY_FILE: "FTGUARD_PROVENANCE_KEY_FILE",
} as const;

/** The one KMS call a signer makes per request: a real client's `send`, or a test's fake. */
export type KmsSend = (command: GetPublicKeyCommand | SignCommand) => Promise<unknown>;

/** KMS key specs ftguard can sign with, and the digest scheme of each (the curve's, as model_signing signs). */
const KEY_SPECS: Readonly<Record<string, string>> = {
	ECC_NIST_P256: "ECDSA_SHA_256",
	ECC_NIST_P384: "ECDSA_SHA_384",
	ECC_NIST_P521: "ECDSA_SHA_512",
};

function kmsError(e: unknown, call: string, keyId: string): FtguardError {
	if (e instanceof FtguardError) return e;
	const err = e as { name?: string; message?: string };
	return new FtguardError(
		"AWS_API_ERROR",
		`KMS ${call} on ${keyId} failed: ${err?.name ?? "Error"}: ${firstLine(String(err?.message ?? e))}`,
		{ cause: e },
	);
}

function defaultSend(): KmsSend {
	const client = new KMSClient({});
	return (command) => client.send(command as GetPublicKeyCommand);
}

/**
 * A signer backed by the KMS key `keyId`: reads its public key once (GetPublicKey), refuses a key that is not an
 * EC signing key ftguard verifies, and signs each payload's digest with KMS.
 * @throws FtguardError KEY_INVALID (wrong key spec or usage), AWS_API_ERROR (the call failed: denied, no endpoint)
 */
export async function kmsSigner(keyId: string, send: KmsSend = defaultSend()): Promise<Signer & { keyId: string }> {
	let out: GetPublicKeyCommandOutput;
	try {
		out = (await send(new GetPublicKeyCommand({ KeyId: keyId }))) as GetPublicKeyCommandOutput;
	} catch (e) {
		throw kmsError(e, "GetPublicKey", keyId);
	}
	const algorithm = KEY_SPECS[out.KeySpec ?? ""];
	if (algorithm === undefined || out.KeyUsage !== "SIGN_VERIFY") {
		throw new FtguardError(
			"KEY_INVALID",
			`KMS key ${keyId} is ${out.KeySpec ?? "?"} for ${out.KeyUsage ?? "?"}: provenance needs an ECC_NIST_P256 (or P384/P521) SIGN_VERIFY key`,
		);
	}
	if (!out.PublicKey) throw new FtguardError("KEY_INVALID", `KMS key ${keyId}: GetPublicKey returned no key`);
	let publicKey: KeyObject;
	try {
		publicKey = createPublicKey({ key: Buffer.from(out.PublicKey), format: "der", type: "spki" });
	} catch (e) {
		throw new FtguardError("KEY_INVALID", `KMS key ${keyId}: the public key is not DER SPKI`, { cause: e });
	}
	// the ARN KMS answers with, so the record names the key even when it was given by alias
	const arn = out.KeyId ?? keyId;
	const signer = digestSigner(publicKey, async (digest, scheme) => {
		let signed: SignCommandOutput;
		try {
			signed = (await send(
				new SignCommand({ KeyId: arn, Message: digest, MessageType: "DIGEST", SigningAlgorithm: scheme }),
			)) as SignCommandOutput;
		} catch (e) {
			throw kmsError(e, "Sign", arn);
		}
		if (!signed.Signature) throw new FtguardError("AWS_API_ERROR", `KMS Sign on ${arn} returned no signature`);
		return signed.Signature;
	});
	return { ...signer, keyId: arn };
}

/** SPKI PEM of a signer's public key: what `ftguard provenance verify --public-key` reads. */
export function publicKeyPem(signer: Signer): string {
	return signer.publicKey.export({ type: "spki", format: "pem" }).toString();
}

export interface ProvenanceSignerOptions {
	/** the KMS call (tests); @default a KMSClient of the environment's region and credentials */
	kmsSend?: KmsSend;
}

/**
 * The provenance signer the environment names: FTGUARD_PROVENANCE_KMS_KEY (a KMS key: every deployment sets it),
 * else FTGUARD_PROVENANCE_KEY_FILE (a PEM private key: the local pipeline), else undefined — no signer configured;
 * the record step decides what that means. Both set is a USAGE error: which key signs must never be a guess.
 * @throws FtguardError USAGE, KEY_INVALID, NOT_FOUND / IO_ERROR (the key file), AWS_API_ERROR
 */
export async function provenanceSignerFromEnv(
	env: Readonly<Record<string, string | undefined>>,
	options: ProvenanceSignerOptions = {},
): Promise<Signer | undefined> {
	const kmsKey = env[PROVENANCE_ENV.KMS_KEY] || undefined;
	const keyFile = env[PROVENANCE_ENV.KEY_FILE] || undefined;
	if (kmsKey !== undefined && keyFile !== undefined) {
		throw new FtguardError(
			"USAGE",
			`both ${PROVENANCE_ENV.KMS_KEY} and ${PROVENANCE_ENV.KEY_FILE} are set: set the one key that signs provenance`,
		);
	}
	if (kmsKey !== undefined) return kmsSigner(kmsKey, options.kmsSend);
	if (keyFile === undefined) return undefined;
	let pem: string;
	try {
		pem = await readFile(keyFile, "utf8");
	} catch (e) {
		throw toFtguardError(e, `cannot read the provenance key ${keyFile}`);
	}
	return localKeySigner(parseEcPrivateKey(pem));
}

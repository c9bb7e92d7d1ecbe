/**
 * Offline verification of a single artefact against a cosign bundle: a
 * `sign-blob` message signature, or an `attest-blob` DSSE statement naming the
 * artefact's SHA-256. The artefact is streamed once, never held whole.
 */
import { createHash, createVerify, type KeyObject } from "node:crypto";
import { createReadStream } from "node:fs";
import type { Bundle } from "@sigstore/bundle";
import { HashAlgorithm } from "@sigstore/protobuf-specs";
import { z } from "zod";
import { FtguardError, toFtguardError } from "../errors";
import { zodMessage } from "../schema";
import { bufferEqual, StreamedMessageContent } from "./sigstore-content";
import { verifyDsse } from "./sigstore-dsse";
import { guard } from "./sigstore-errors";
import { prepareTrust } from "./sigstore-trust";
import { runVerifier } from "./sigstore-verifier";
import type { SignerInfo, TrustPolicy, VerifyOptions } from "./trust-policy";

export interface BlobVerification {
	signer: SignerInfo;
	/** Lower-case hex SHA-256 of the artefact. */
	digest: string;
}

const MESSAGE_DIGESTS: Readonly<Partial<Record<HashAlgorithm, string>>> = {
	[HashAlgorithm.SHA2_256]: "sha256",
	[HashAlgorithm.SHA2_384]: "sha384",
	[HashAlgorithm.SHA2_512]: "sha512",
};

/** Read size for artefacts: large enough that hashing, not syscalls, is the cost. */
const READ_CHUNK = 4 * 1024 * 1024;

/** Every chunk of the artefact, read once: a path is streamed, bytes are used as they are. */
async function* chunks(artifact: string | Uint8Array): AsyncGenerator<Uint8Array> {
	if (typeof artifact !== "string") {
		yield artifact;
		return;
	}
	try {
		for await (const chunk of createReadStream(artifact, {
			highWaterMark: READ_CHUNK,
		}))
			yield chunk as Buffer;
	} catch (e) {
		throw toFtguardError(e, `cannot read ${artifact}`);
	}
}

interface Streamed {
	sha256: string;
	messageDigest: Buffer;
	signatureValid: boolean;
}

/**
 * One pass over the artefact feeding three consumers: SHA-256 for the report, the
 * bundle's digest algorithm for `messageDigest`, and a streaming signature
 * verifier. Node cannot verify ECDSA over a precomputed digest (`crypto.verify`
 * with a null algorithm still hashes for EC keys), but `createVerify` hashes
 * incrementally, so memory stays flat whatever the artefact's size.
 */
async function streamArtifact(
	artifact: string | Uint8Array,
	digestName: string,
	key: KeyObject,
	signature: Uint8Array,
): Promise<Streamed> {
	// EdDSA has no streaming form; keys other than ECDSA/RSA cannot be checked in one pass.
	const streamable = key.asymmetricKeyType === "ec" || key.asymmetricKeyType === "rsa";
	const sha256 = createHash("sha256");
	const digest = digestName === "sha256" ? undefined : createHash(digestName);
	const verifier = streamable ? createVerify(digestName) : undefined;
	for await (const chunk of chunks(artifact)) {
		sha256.update(chunk);
		digest?.update(chunk);
		verifier?.update(chunk);
	}
	const shaBytes = sha256.digest();
	let signatureValid = false;
	try {
		signatureValid = verifier?.verify(key, signature) ?? false;
	} catch {
		signatureValid = false;
	}
	return {
		sha256: shaBytes.toString("hex"),
		messageDigest: digest?.digest() ?? shaBytes,
		signatureValid,
	};
}

const attestedStatement = z.object({
	_type: z.enum(["https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1"]),
	subject: z.array(z.object({ digest: z.record(z.string(), z.string()) }).loose()).min(1),
});

/**
 * Verifies an artefact against a cosign `sign-blob --bundle` bundle (message
 * signature), or against a DSSE in-toto bundle one of whose subjects has the
 * artefact's SHA-256 (`cosign attest-blob`).
 *
 * The artefact is read once, in 4 MiB chunks, never held in memory whole; pass
 * bytes instead of a path to verify exactly what you already read.
 *
 * @throws FtguardError DIGEST_MISMATCH (the artefact is not what was signed), and
 *   everything `verifyDsseBundle` throws; NOT_FOUND / IO_ERROR when the artefact
 *   cannot be read.
 */
export async function verifyBlobBundle(
	bundle: Bundle,
	policy: TrustPolicy,
	artifact: string | Uint8Array,
	options: VerifyOptions = {},
): Promise<BlobVerification> {
	const content = bundle.content;
	if (content.$case === "dsseEnvelope") {
		const { payload, signer } = verifyDsse(bundle, policy, options, false);
		const statement = guard(() => {
			let json: unknown;
			try {
				json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(payload));
			} catch (e) {
				throw new FtguardError("PAYLOAD_INVALID", "signed payload is not UTF-8 JSON", { cause: e });
			}
			const parsed = attestedStatement.safeParse(json);
			if (!parsed.success) {
				throw new FtguardError(
					"PAYLOAD_INVALID",
					`signed payload is not an in-toto statement: ${zodMessage(parsed.error)}`,
				);
			}
			return parsed.data;
		});
		const hash = createHash("sha256");
		for await (const chunk of chunks(artifact)) hash.update(chunk);
		const sha256 = hash.digest("hex");
		if (!statement.subject.some((s) => s.digest.sha256?.toLowerCase() === sha256)) {
			throw new FtguardError("DIGEST_MISMATCH", "the artefact's sha256 is not a subject of the signed statement", {
				details: { actual: sha256 },
			});
		}
		return { signer, digest: sha256 };
	}

	const ms = content.messageSignature;
	const digestName = ms.messageDigest ? MESSAGE_DIGESTS[ms.messageDigest.algorithm] : undefined;
	if (ms.messageDigest === undefined || digestName === undefined) {
		throw new FtguardError("BUNDLE_MALFORMED", "message signature has no SHA-2 message digest");
	}
	const expected = ms.messageDigest.digest;
	const trust = guard(() => prepareTrust(bundle, policy, options));
	const streamed = await streamArtifact(artifact, digestName, trust.candidateKey, ms.signature);
	if (!bufferEqual(streamed.messageDigest, expected)) {
		throw new FtguardError("DIGEST_MISMATCH", `the artefact's ${digestName} differs from the bundle's message digest`, {
			details: {
				expected: Buffer.from(expected).toString("hex"),
				actual: streamed.messageDigest.toString("hex"),
			},
		});
	}
	const signer = guard(() =>
		runVerifier(
			bundle,
			trust,
			new StreamedMessageContent(ms.signature, expected, trust.candidateKey, streamed.signatureValid),
		),
	);
	return { signer, digest: streamed.sha256 };
}

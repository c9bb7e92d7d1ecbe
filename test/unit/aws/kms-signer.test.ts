import { type KeyObject, randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { GetPublicKeyCommand, SignCommand } from "@aws-sdk/client-kms";
import { describe, expect, it } from "vitest";
import { type KmsSend, kmsSigner, provenanceSignerFromEnv, publicKeyPem } from "../../../lib/aws/kms-signer";
import { FILES_PLAN } from "../../../lib/core/pipeline/manifest";
import { artefactRootOnDisk } from "../../../lib/core/provenance/artefact";
import { signProvenance } from "../../../lib/core/provenance/sign";
import { policyDigest, provenanceStatement } from "../../../lib/core/provenance/statement";
import { checkArtefactRoot, verifyProvenanceBundle } from "../../../lib/core/provenance/verify";
import { artefactDir, fullRecord, p256, rootOf } from "../../helpers/provenance";

// KMS signs a digest it is given, unhashed; Node's crypto always hashes, so the fake does P-256 ECDSA itself.
const P = 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn;
const N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
const A = P - 3n;
const G: [bigint, bigint] = [
	0x6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296n,
	0x4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5n,
];
const mod = (a: bigint, m: bigint) => ((a % m) + m) % m;
function inv(a: bigint, m: bigint): bigint {
	let [r0, r1, s0, s1] = [mod(a, m), m, 1n, 0n];
	while (r1 !== 0n) {
		const q = r0 / r1;
		[r0, r1, s0, s1] = [r1, r0 - q * r1, s1, s0 - q * s1];
	}
	return mod(s0, m);
}
type Pt = [bigint, bigint] | null;
function add(p: Pt, q: Pt): Pt {
	if (p === null) return q;
	if (q === null) return p;
	if (p[0] === q[0] && mod(p[1] + q[1], P) === 0n) return null;
	const l =
		p[0] === q[0] && p[1] === q[1]
			? mod((3n * p[0] * p[0] + A) * inv(2n * p[1], P), P)
			: mod((q[1] - p[1]) * inv(q[0] - p[0], P), P);
	const x = mod(l * l - p[0] - q[0], P);
	return [x, mod(l * (p[0] - x) - p[1], P)];
}
function mul(k: bigint, p: Pt): Pt {
	let r: Pt = null;
	for (let q = p; k > 0n; k >>= 1n, q = add(q, q)) if (k & 1n) r = add(r, q);
	return r;
}
const big = (b: Buffer) => BigInt(`0x${b.toString("hex") || "0"}`);
function derInt(v: bigint): Buffer {
	let b = Buffer.from(v.toString(16).padStart(64, "0"), "hex");
	while (b.length > 1 && b[0] === 0 && ((b[1] as number) & 0x80) === 0) b = b.subarray(1);
	if ((b[0] as number) & 0x80) b = Buffer.concat([Buffer.from([0]), b]);
	return Buffer.concat([Buffer.from([2, b.length]), b]);
}
function signDigest(privateKey: KeyObject, digest: Uint8Array): Uint8Array {
	const d = big(Buffer.from(privateKey.export({ format: "jwk" }).d as string, "base64url"));
	const e = big(Buffer.from(digest));
	for (;;) {
		const k = mod(big(randomBytes(32)), N);
		const r = k === 0n ? 0n : mod((mul(k, G) as [bigint, bigint])[0], N);
		const s = mod(inv(k, N) * (e + r * d), N);
		if (r === 0n || s === 0n) continue;
		const body = Buffer.concat([derInt(r), derInt(s)]);
		return Buffer.concat([Buffer.from([0x30, body.length]), body]);
	}
}

const ARN = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

/** A KMS that holds `key`, recording every request. */
function fakeKms(key = p256(), over: { keySpec?: string; keyUsage?: string } = {}) {
	const calls: Array<GetPublicKeyCommand | SignCommand> = [];
	const send: KmsSend = async (command) => {
		calls.push(command);
		if (command instanceof GetPublicKeyCommand) {
			return {
				KeyId: ARN,
				KeySpec: over.keySpec ?? "ECC_NIST_P256",
				KeyUsage: over.keyUsage ?? "SIGN_VERIFY",
				SigningAlgorithms: ["ECDSA_SHA_256"],
				PublicKey: key.publicKey.export({ type: "spki", format: "der" }),
			};
		}
		const input = command.input;
		if (input.MessageType !== "DIGEST" || input.SigningAlgorithm !== "ECDSA_SHA_256" || input.KeyId !== ARN) {
			throw Object.assign(new Error("ValidationException"), { name: "ValidationException" });
		}
		return { KeyId: ARN, Signature: signDigest(key.privateKey, input.Message as Uint8Array) };
	};
	return { key, calls, send };
}

describe("kmsSigner", () => {
	it("signs a provenance record through KMS (digest only) that verifies with GetPublicKey's key", async () => {
		const kms = fakeKms();
		const signer = await kmsSigner("alias/ftguard-provenance", kms.send);
		expect(signer.keyId).toBe(ARN);
		expect(publicKeyPem(signer)).toBe(kms.key.publicPem);
		const dir = artefactDir();
		const statement = provenanceStatement(fullRecord(rootOf(dir)), { policyDigest: policyDigest({}) });
		const { bundle } = await signProvenance(statement, signer);
		const sign = kms.calls.find((c) => c instanceof SignCommand) as SignCommand;
		// only the 32-byte digest left the process, never the payload
		expect((sign.input.Message as Uint8Array).length).toBe(32);
		const v = verifyProvenanceBundle(bundle, publicKeyPem(signer), "record");
		expect(() => checkArtefactRoot(v, "0".repeat(64), dir)).toThrow();
		checkArtefactRoot(v, (await artefactRootOnDisk(dir, FILES_PLAN)).root, dir);
	});

	it("refuses a key that is not an EC signing key", async () => {
		await expect(kmsSigner(ARN, fakeKms(p256(), { keySpec: "RSA_2048" }).send)).rejects.toMatchObject({
			code: "KEY_INVALID",
		});
		await expect(kmsSigner(ARN, fakeKms(p256(), { keyUsage: "ENCRYPT_DECRYPT" }).send)).rejects.toMatchObject({
			code: "KEY_INVALID",
		});
	});

	it("a KMS that answers with another key's signature is caught before anything is written", async () => {
		const kms = fakeKms();
		const other = p256();
		const send: KmsSend = (c) =>
			c instanceof SignCommand
				? Promise.resolve({ Signature: signDigest(other.privateKey, c.input.Message as Uint8Array) })
				: kms.send(c);
		const signer = await kmsSigner(ARN, send);
		const statement = provenanceStatement(fullRecord(rootOf(artefactDir())), { policyDigest: policyDigest({}) });
		await expect(signProvenance(statement, signer)).rejects.toMatchObject({ code: "KEY_INVALID" });
	});

	it("a failed KMS call is AWS_API_ERROR naming the call", async () => {
		const send: KmsSend = async () => {
			throw Object.assign(new Error("User is not authorized to perform: kms:GetPublicKey"), {
				name: "AccessDeniedException",
			});
		};
		await expect(kmsSigner(ARN, send)).rejects.toMatchObject({
			code: "AWS_API_ERROR",
			message: expect.stringContaining("GetPublicKey"),
		});
	});
});

describe("provenanceSignerFromEnv", () => {
	it("a KMS key ARN gives the KMS signer", async () => {
		const kms = fakeKms();
		const signer = await provenanceSignerFromEnv({ FTGUARD_PROVENANCE_KMS_KEY: ARN }, { kmsSend: kms.send });
		expect(signer && publicKeyPem(signer)).toBe(kms.key.publicPem);
	});

	it("a key file gives a local signer", async () => {
		const key = p256();
		const file = join(artefactDir(), "..", "provenance.key.pem");
		writeFileSync(file, key.privatePem);
		const signer = await provenanceSignerFromEnv({ FTGUARD_PROVENANCE_KEY_FILE: file });
		expect(signer && publicKeyPem(signer)).toBe(key.publicPem);
	});

	it("neither is undefined; both is a USAGE error; a missing file is NOT_FOUND", async () => {
		expect(await provenanceSignerFromEnv({})).toBeUndefined();
		expect(await provenanceSignerFromEnv({ FTGUARD_PROVENANCE_KMS_KEY: "" })).toBeUndefined();
		await expect(
			provenanceSignerFromEnv({ FTGUARD_PROVENANCE_KMS_KEY: ARN, FTGUARD_PROVENANCE_KEY_FILE: "/k.pem" }),
		).rejects.toMatchObject({ code: "USAGE" });
		await expect(provenanceSignerFromEnv({ FTGUARD_PROVENANCE_KEY_FILE: "/nonexistent/k.pem" })).rejects.toMatchObject({
			code: "NOT_FOUND",
		});
	});
});

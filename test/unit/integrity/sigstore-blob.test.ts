/**
 * Single artefacts (cosign sign-blob / attest-blob bundles): the file is streamed,
 * its digest and signature checked in one pass, and never read whole.
 */
import { createHash, createSign } from "node:crypto";
import {
	closeSync,
	createReadStream,
	mkdtempSync,
	openSync,
	rmSync,
	truncateSync,
	writeFileSync,
	writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { FtguardError } from "../../../lib/core/errors";
import { parseBundle, type TrustPolicy, verifyBlobBundle } from "../../../lib/core/integrity";
import {
	generateEcKeyPair,
	type Json,
	signBlobKeyed,
	signBlobKeyless,
	signStatementKeyed,
	tamper,
} from "../../helpers/sign";

const dir = mkdtempSync(join(tmpdir(), "ftguard-blob-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const IDENTITY = "release@example.com";
const ISSUER = "https://accounts.example.com";
const parse = (json: Json) => parseBundle(JSON.stringify(json), "artefact.sigstore.json");

async function codeOf(fn: () => Promise<unknown>): Promise<string> {
	try {
		await fn();
	} catch (e) {
		expect(e).toBeInstanceOf(FtguardError);
		return (e as FtguardError).code;
	}
	throw new Error("expected a failure, got success");
}

function file(name: string, content: string | Buffer): string {
	const p = join(dir, name);
	writeFileSync(p, content);
	return p;
}

describe("when an artefact is signed with cosign sign-blob --key", () => {
	const path = file("weights.bin", "model weights\n".repeat(1000));
	const { bundle, keyPair } = signBlobKeyed(path);
	const policy: TrustPolicy = { kind: "public-key", pem: keyPair.publicKeyPem };

	it("verifies the file and reports its sha256", async () => {
		const r = await verifyBlobBundle(parse(bundle), policy, path);
		expect(r.digest).toMatch(/^[0-9a-f]{64}$/);
		expect(r.signer.kind).toBe("public-key");
	});

	it("verifies the same bytes given in memory", async () => {
		const bytes = Buffer.from("model weights\n".repeat(1000));
		expect((await verifyBlobBundle(parse(bundle), policy, bytes)).digest).toBe(
			(await verifyBlobBundle(parse(bundle), policy, path)).digest,
		);
	});

	it("fails DIGEST_MISMATCH for a file with one byte changed", async () => {
		const changed = file("weights-changed.bin", `${"model weights\n".repeat(1000).slice(0, -1)}!`);
		expect(await codeOf(() => verifyBlobBundle(parse(bundle), policy, changed))).toBe("DIGEST_MISMATCH");
	});

	it("fails DIGEST_MISMATCH when the bundle's digest is altered", async () => {
		expect(await codeOf(() => verifyBlobBundle(parse(tamper(bundle, "messageDigest")), policy, path))).toBe(
			"DIGEST_MISMATCH",
		);
	});

	it("fails SIGNATURE_INVALID when the signature is altered", async () => {
		expect(await codeOf(() => verifyBlobBundle(parse(tamper(bundle, "signature")), policy, path))).toBe(
			"SIGNATURE_INVALID",
		);
	});

	it("fails SIGNATURE_INVALID under another key", async () => {
		const other: TrustPolicy = {
			kind: "public-key",
			pem: generateEcKeyPair().publicKeyPem,
		};
		expect(await codeOf(() => verifyBlobBundle(parse(bundle), other, path))).toBe("SIGNATURE_INVALID");
	});

	it("fails NOT_FOUND for a missing artefact", async () => {
		expect(await codeOf(() => verifyBlobBundle(parse(bundle), policy, join(dir, "absent.bin")))).toBe("NOT_FOUND");
	});

	it("fails IO_ERROR for a directory", async () => {
		expect(await codeOf(() => verifyBlobBundle(parse(bundle), policy, dir))).toBe("IO_ERROR");
	});
});

describe("when an artefact is signed keyless", () => {
	const path = file("adapter.safetensors", "adapter\n".repeat(500));

	it("verifies identity, issuer and file", async () => {
		const { bundle, trustedRoot } = await signBlobKeyless(path, {
			identity: IDENTITY,
			issuer: ISSUER,
		});
		const r = await verifyBlobBundle(
			parse(bundle),
			{
				kind: "keyless",
				identity: { exact: IDENTITY },
				issuer: ISSUER,
				trustedRoot,
			},
			path,
		);
		expect(r.signer).toMatchObject({
			kind: "keyless",
			identity: IDENTITY,
			issuer: ISSUER,
		});
	});

	it("fails IDENTITY_MISMATCH for another identity", async () => {
		const { bundle, trustedRoot } = await signBlobKeyless(path, {
			identity: IDENTITY,
			issuer: ISSUER,
		});
		const policy: TrustPolicy = {
			kind: "keyless",
			identity: { regexp: "admin@.*" },
			issuer: ISSUER,
			trustedRoot,
		};
		expect(await codeOf(() => verifyBlobBundle(parse(bundle), policy, path))).toBe("IDENTITY_MISMATCH");
	});

	it("fails DIGEST_MISMATCH for another file, before any trust decision", async () => {
		const { bundle, trustedRoot } = await signBlobKeyless(path, {
			identity: IDENTITY,
			issuer: ISSUER,
		});
		const policy: TrustPolicy = {
			kind: "keyless",
			identity: { exact: IDENTITY },
			issuer: ISSUER,
			trustedRoot,
		};
		expect(await codeOf(() => verifyBlobBundle(parse(bundle), policy, Buffer.from("other")))).toBe("DIGEST_MISMATCH");
	});
});

describe("when an artefact comes with an in-toto attestation (cosign attest-blob)", () => {
	const path = file("model.onnx", "onnx bytes");
	const otherDigest = "ac".repeat(32);
	const attestation = (digest: string): Json => ({
		_type: "https://in-toto.io/Statement/v1",
		subject: [{ name: "model.onnx", digest: { sha256: digest } }],
		predicateType: "https://slsa.dev/provenance/v1",
		predicate: {},
	});

	it("verifies when a subject carries the file's sha256", async () => {
		const digest = createHash("sha256").update("onnx bytes").digest("hex");
		const { bundle, keyPair } = signStatementKeyed(attestation(digest));
		const r = await verifyBlobBundle(parse(bundle), { kind: "public-key", pem: keyPair.publicKeyPem }, path);
		expect(r.digest).toBe(digest);
	});

	it("fails DIGEST_MISMATCH when no subject matches the file", async () => {
		const { bundle, keyPair } = signStatementKeyed(attestation(otherDigest));
		expect(
			await codeOf(() => verifyBlobBundle(parse(bundle), { kind: "public-key", pem: keyPair.publicKeyPem }, path)),
		).toBe("DIGEST_MISMATCH");
	});
});

describe("when the artefact is large", () => {
	it("streams it: memory stays far below the file's size", async () => {
		const size = 192 * 1024 * 1024;
		const path = join(dir, "large.bin");
		// A sparse file of zeros with a few marked bytes: cheap to create, real to read.
		truncateSync(file("large.bin", ""), size);
		const fd = openSync(path, "r+");
		for (const at of [0, size / 2, size - 1]) writeSync(fd, Buffer.from([0x5a]), 0, 1, at);
		closeSync(fd);

		// Sign by streaming too, so that the test itself does not hold the file.
		const keyPair = generateEcKeyPair();
		const signer = createSign("sha256");
		const hash = createHash("sha256");
		for await (const chunk of createReadStream(path, {
			highWaterMark: 8 << 20,
		})) {
			signer.update(chunk as Buffer);
			hash.update(chunk as Buffer);
		}
		const bundle: Json = {
			mediaType: "application/vnd.dev.sigstore.bundle.v0.3+json",
			verificationMaterial: { publicKey: { hint: "" }, tlogEntries: [] },
			messageSignature: {
				messageDigest: { algorithm: "SHA2_256", digest: hash.digest("base64") },
				signature: signer.sign(keyPair.privateKey).toString("base64"),
			},
		};

		const baseline = process.memoryUsage().arrayBuffers;
		let peak = baseline;
		const sampler = setInterval(() => {
			peak = Math.max(peak, process.memoryUsage().arrayBuffers);
		}, 5);
		try {
			const r = await verifyBlobBundle(parse(bundle), { kind: "public-key", pem: keyPair.publicKeyPem }, path);
			expect(r.digest).toMatch(/^[0-9a-f]{64}$/);
		} finally {
			clearInterval(sampler);
		}
		expect(peak - baseline).toBeLessThan(size / 2);
	});
});

/**
 * `ftguard sign`'s core: the statement is model_signing's (checked byte for byte against the reference
 * tool's vectors, read from ../shared), the bundle is laid out as model_signing writes it, and every
 * signature made in every mode verifies with ftguard's own verifier — and stops verifying when a byte changes.
 */
import { createHash, createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { certificateMode, type SigningMode, signModel, writeSignatureFile } from "../../../lib/core/integrity/sign";
import { type PythonJson, pythonJson } from "../../../lib/core/integrity/sign-payload";
import { digestSigner, localKeySigner } from "../../../lib/core/integrity/sign-signer";
import { parseEcPrivateKey, publicKeyHint } from "../../../lib/core/integrity/signing-key";
import type { TrustPolicy } from "../../../lib/core/integrity/trust-policy";
import { verifyModel } from "../../../lib/core/integrity/verify-model";
import { VECTORS } from "../../helpers/cli";
import { createMockSigstore, createPrivateCa, type MockSigstore } from "../../helpers/sign";
import { identityToken, type SigstoreServer, serveMockSigstore } from "../../helpers/sigstore-server";

const vectorPayload = (dir: string): Buffer =>
	Buffer.from(
		(JSON.parse(readFileSync(join(dir, "model.sig"), "utf8")) as { dsseEnvelope: { payload: string } }).dsseEnvelope
			.payload,
		"base64",
	);

/**
 * `ours` with its object keys (and the ignore_paths set) in `theirs`'s order. model_signing's predicate is a
 * protobuf Struct whose key order changes between Python processes, so this order is the only freedom left
 * to compare bytes; the key sets must be equal or this throws.
 */
function inOrderOf(ours: PythonJson, theirs: PythonJson, key = ""): PythonJson {
	if (Array.isArray(ours) && Array.isArray(theirs)) {
		if (key === "ignore_paths") {
			expect([...ours].sort()).toEqual([...theirs].sort());
			return theirs;
		}
		expect(ours.length).toBe(theirs.length);
		return ours.map((v, i) => inOrderOf(v, theirs[i] as PythonJson));
	}
	if (ours !== null && theirs !== null && typeof ours === "object" && typeof theirs === "object") {
		const o = ours as Record<string, PythonJson>;
		const t = theirs as Record<string, PythonJson>;
		expect(Object.keys(o).sort()).toEqual(Object.keys(t).sort());
		return Object.fromEntries(Object.keys(t).map((k) => [k, inOrderOf(o[k] as PythonJson, t[k] as PythonJson, k)]));
	}
	return ours;
}

const keyMode = (curve = "P-256"): { mode: SigningMode; publicKeyPem: string; privateKey: KeyObject } => {
	const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: curve });
	return {
		mode: { kind: "key", signer: localKeySigner(privateKey) },
		publicKeyPem: publicKey.export({ type: "spki", format: "pem" }).toString(),
		privateKey,
	};
};

function modelCopy(): string {
	const dir = join(mkdtempSync(join(tmpdir(), "ftguard-sign-")), "model");
	mkdirSync(join(dir, "nested"), { recursive: true });
	writeFileSync(join(dir, "config.json"), '{"model_type":"bert"}');
	writeFileSync(join(dir, "nested", "weights.bin"), Buffer.alloc(5000, 3));
	writeFileSync(join(dir, "ünïcode 😀.txt"), "x");
	return dir;
}

async function signAndWrite(dir: string, mode: SigningMode, ignorePaths: string[] = []): Promise<string> {
	const sig = join(dir, "model.sig");
	const r = await signModel(dir, { signaturePath: sig, mode, ignorePaths });
	await writeSignatureFile(sig, r.bundle);
	return sig;
}

describe("the statement ftguard signs", () => {
	// v1.1 records ignore paths: signing the vector's files with its ignore path (and the signature beside
	// them) gives the reference tool's payload, byte for byte once keys are in its (random) order.
	for (const name of ["v1.1.0-elliptic-key", "v1.1.0-certificate", "v1.1.0-sigstore"]) {
		it(`is ${name}'s payload, byte for byte`, async () => {
			const dir = join(VECTORS, name);
			const r = await signModel(dir, {
				signaturePath: join(dir, "model.sig"),
				mode: keyMode().mode,
				ignorePaths: ["ignore-me"],
			});
			const theirs = vectorPayload(dir);
			const ours = JSON.parse(r.payload.toString()) as PythonJson;
			expect(Buffer.from(pythonJson(inOrderOf(ours, JSON.parse(theirs.toString()) as PythonJson)))).toEqual(theirs);
			// same length as written, before any reordering: only the order differs
			expect(r.payload.length).toBe(theirs.length);
		});
	}

	it("is v1.0.0's payload for a single-file model (resource '.', subject the file name), v1.0 wrote no ignore_paths", async () => {
		const dir = join(VECTORS, "v1.0.0-elliptic-key");
		const r = await signModel(join(dir, "signme-1"), { signaturePath: join(dir, "model.sig"), mode: keyMode().mode });
		const ours = JSON.parse(r.payload.toString()) as { predicate: { serialization: Record<string, unknown> } };
		delete ours.predicate.serialization.ignore_paths;
		const theirs = vectorPayload(dir);
		expect(Buffer.from(pythonJson(inOrderOf(ours as PythonJson, JSON.parse(theirs.toString()) as PythonJson)))).toEqual(
			theirs,
		);
	});

	it("differs from the vector when ignore-me is not ignored (the comparison can fail)", async () => {
		const dir = join(VECTORS, "v1.1.0-elliptic-key");
		const r = await signModel(dir, { signaturePath: join(dir, "model.sig"), mode: keyMode().mode });
		expect(r.payload.toString()).toContain('"ignore-me"'); // now a resource
		expect(() => inOrderOf(JSON.parse(r.payload.toString()), JSON.parse(vectorPayload(dir).toString()))).toThrow();
	});

	it("escapes as Python's json.dumps(ensure_ascii=True)", () => {
		// python3 -c 'import json; print(json.dumps({"k": "é😀\x7f\"\\\n\x01", "l": [], "d": {}, "b": True, "n": None, "f": 8.0}, indent=2))'
		expect(pythonJson({ k: 'é😀\x7f"\\\n\x01', l: [], d: {}, b: true, n: null, f: 8 })).toBe(
			'{\n  "k": "\\u00e9\\ud83d\\ude00\\u007f\\"\\\\\\n\\u0001",\n  "l": [],\n  "d": {},\n  "b": true,\n  "n": null,\n  "f": 8.0\n}',
		);
	});

	it("refuses method shards (model_signing names shard digests sha256-sharded-N)", async () => {
		const { buildManifest } = await import("../../../lib/core/integrity/manifest");
		const { statementPayload } = await import("../../../lib/core/integrity/sign-payload");
		const m = await buildManifest(join(VECTORS, "v1.1.0-elliptic-key"), { method: "shards" });
		expect(() => statementPayload(m)).toThrow(expect.objectContaining({ code: "USAGE" }));
	});
});

describe("the bundle", () => {
	const skeleton = (json: string) =>
		json.replace(/"[A-Za-z0-9+/=]{40,}"/g, '"B64"').replace(/"[0-9a-f]{64}"/g, '"HEX"');

	it("is model_signing's key-mode layout, with its public-key hint", async () => {
		const dir = join(VECTORS, "v1.1.0-elliptic-key");
		const r = await signModel(dir, { signaturePath: join(dir, "model.sig"), mode: keyMode("P-384").mode });
		expect(skeleton(r.bundle.toString())).toBe(skeleton(readFileSync(join(dir, "model.sig"), "utf8")));
		// the hint is what model_signing computes: SHA-256 of the PEM text (the vector's own key)
		const vectorKey = createPublicKey(readFileSync(join(VECTORS, "keys/signing-key-pub.pem"), "utf8"));
		expect(readFileSync(join(dir, "model.sig"), "utf8")).toContain(`"hint":"${publicKeyHint(vectorKey)}"`);
	});

	it("is model_signing's certificate-mode layout: leaf then chain in x509CertificateChain", async () => {
		const ca = await createPrivateCa();
		const leaf = await ca.issueLeaf();
		const leafPem = `-----BEGIN CERTIFICATE-----\n${leaf.der.toString("base64")}\n-----END CERTIFICATE-----\n`;
		const mode = certificateMode(localKeySigner(leaf.keyPair.privateKey), leafPem, ca.intermediatePem);
		const dir = join(VECTORS, "v1.1.0-certificate");
		const r = await signModel(dir, { signaturePath: join(dir, "model.sig"), mode });
		expect(skeleton(r.bundle.toString())).toBe(skeleton(readFileSync(join(dir, "model.sig"), "utf8")));
	});
});

describe("every signature verifies with ftguard verify, and a changed byte does not", () => {
	for (const curve of ["P-256", "P-384", "P-521"]) {
		it(`key mode, ${curve}`, async () => {
			const dir = modelCopy();
			const k = keyMode(curve);
			const sig = await signAndWrite(dir, k.mode);
			const policy: TrustPolicy = { kind: "public-key", pem: k.publicKeyPem };
			const ok = await verifyModel(dir, sig, { policy });
			expect(ok.files).toBe(3);
			writeFileSync(join(dir, "nested", "weights.bin"), Buffer.alloc(5000, 4));
			await expect(verifyModel(dir, sig, { policy })).rejects.toMatchObject({ code: "DIGEST_MISMATCH" });
		});
	}

	it("key mode with a SEC1 PEM and ignore paths", async () => {
		const dir = modelCopy();
		writeFileSync(join(dir, "notes.md"), "unsigned");
		const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
		const sec1 = privateKey.export({ type: "sec1", format: "pem" }).toString();
		const sig = await signAndWrite(dir, { kind: "key", signer: localKeySigner(parseEcPrivateKey(sec1)) }, ["notes.md"]);
		const policy: TrustPolicy = {
			kind: "public-key",
			pem: publicKey.export({ type: "spki", format: "pem" }).toString(),
		};
		await expect(verifyModel(dir, sig, { policy })).rejects.toMatchObject({ code: "UNSIGNED_FILE" });
		await expect(verifyModel(dir, sig, { policy, ignorePaths: ["notes.md"] })).resolves.toMatchObject({ files: 3 });
	});

	it("certificate mode", async () => {
		const ca = await createPrivateCa();
		const leaf = await ca.issueLeaf({ curve: "P-384" });
		const leafPem = `-----BEGIN CERTIFICATE-----\n${leaf.der.toString("base64")}\n-----END CERTIFICATE-----\n`;
		const dir = modelCopy();
		const sig = await signAndWrite(
			dir,
			certificateMode(localKeySigner(leaf.keyPair.privateKey), leafPem, ca.intermediatePem),
		);
		const policy: TrustPolicy = { kind: "certificate-chain", pem: ca.rootPem };
		await expect(verifyModel(dir, sig, { policy })).resolves.toMatchObject({ files: 3 });
		writeFileSync(join(dir, "config.json"), '{"model_type":"bery"}');
		await expect(verifyModel(dir, sig, { policy })).rejects.toMatchObject({ code: "DIGEST_MISMATCH" });
	});

	it("a digest signer (the shape of AWS KMS Sign with MessageType DIGEST)", async () => {
		const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-384" });
		const local = localKeySigner(privateKey);
		const seen: string[] = [];
		// Stands in for KMS, which sees only the digest: it can sign only if the digest is SHA-384 of exactly
		// the bytes the caller meant (looked up here, since Node cannot sign a bare digest).
		const meant = new Map<string, Uint8Array>();
		const kmsLike = digestSigner(publicKey, async (digest, algorithm) => {
			seen.push(`${algorithm}:${digest.length}`);
			const data = meant.get(digest.toString("hex"));
			if (data === undefined) throw new Error("not the digest of the data");
			return local.sign(data);
		});
		const signer = {
			publicKey,
			sign: async (d: Uint8Array) => {
				meant.set(createHash("sha384").update(d).digest("hex"), d);
				return kmsLike.sign(d);
			},
		};
		const dir = modelCopy();
		const sig = await signAndWrite(dir, { kind: "key", signer });
		expect(seen).toEqual(["ECDSA_SHA_384:48"]);
		const policy: TrustPolicy = {
			kind: "public-key",
			pem: publicKey.export({ type: "spki", format: "pem" }).toString(),
		};
		await expect(verifyModel(dir, sig, { policy })).resolves.toMatchObject({ files: 3 });
	});

	describe("keyless, against a private Sigstore served over HTTP", () => {
		let instance: MockSigstore;
		let server: SigstoreServer;
		beforeAll(async () => {
			instance = await createMockSigstore();
			server = await serveMockSigstore(instance);
		});
		afterAll(() => server.close());

		it("Fulcio + Rekor + TSA", async () => {
			const id = "https://github.com/acme/train/.github/workflows/ft.yml@refs/heads/main";
			const issuer = "https://token.actions.githubusercontent.com";
			const dir = modelCopy();
			const r = await signModel(dir, {
				signaturePath: join(dir, "model.sig"),
				mode: {
					kind: "keyless",
					keyless: {
						identityToken: async () => identityToken({ sub: id, iss: issuer }),
						fulcioURL: server.url,
						rekorURL: server.url,
						tsaURL: server.url,
					},
				},
			});
			await writeSignatureFile(join(dir, "model.sig"), r.bundle);
			expect(r.signer.identity).toContain(id);
			expect(Object.values(server.hits)).toEqual([1, 1, 1]);
			const bundle = JSON.parse(r.bundle.toString());
			expect(bundle.mediaType).toBe("application/vnd.dev.sigstore.bundle.v0.3+json");
			expect(bundle.verificationMaterial.tlogEntries[0].kindVersion).toEqual({ kind: "dsse", version: "0.0.1" });
			const policy: TrustPolicy = {
				kind: "keyless",
				identity: { exact: id },
				issuer,
				trustedRoot: instance.trustedRoot,
			};
			await expect(verifyModel(dir, join(dir, "model.sig"), { policy })).resolves.toMatchObject({
				signer: { identity: id, issuer },
			});
			writeFileSync(join(dir, "nested", "weights.bin"), Buffer.alloc(5000, 9));
			await expect(verifyModel(dir, join(dir, "model.sig"), { policy })).rejects.toMatchObject({
				code: "DIGEST_MISMATCH",
			});
		});

		it("a Fulcio that cannot be reached is IO_ERROR, and nothing is signed", async () => {
			const dir = modelCopy();
			await expect(
				signModel(dir, {
					signaturePath: join(dir, "model.sig"),
					mode: {
						kind: "keyless",
						keyless: {
							identityToken: async () => identityToken({ sub: "x", iss: "y" }),
							fulcioURL: "http://127.0.0.1:9",
							rekorURL: server.url,
							timeoutMs: 2000,
						},
					},
				}),
			).rejects.toMatchObject({ code: "IO_ERROR", message: expect.stringContaining("Fulcio") });
		});
	});
});

describe("refusals", () => {
	it("keys that are not EC P-256/384/521, encrypted, or not private keys", () => {
		const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs8", format: "pem" });
		expect(() => parseEcPrivateKey(rsa.toString())).toThrow(expect.objectContaining({ code: "KEY_INVALID" }));
		const k1 = generateKeyPairSync("ec", { namedCurve: "secp256k1" }).privateKey.export({
			type: "pkcs8",
			format: "pem",
		});
		expect(() => parseEcPrivateKey(k1.toString())).toThrow(/secp256k1 is not accepted/);
		const enc = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({
			type: "pkcs8",
			format: "pem",
			cipher: "aes-256-cbc",
			passphrase: "x",
		});
		expect(() => parseEcPrivateKey(enc.toString())).toThrow(/encrypted/);
		expect(() => parseEcPrivateKey(readFileSync(join(VECTORS, "keys/signing-key-pub.pem"), "utf8"))).toThrow(
			expect.objectContaining({ code: "KEY_INVALID" }),
		);
	});

	it("a signing certificate that is not the private key's", async () => {
		const ca = await createPrivateCa();
		const leaf = await ca.issueLeaf();
		const leafPem = `-----BEGIN CERTIFICATE-----\n${leaf.der.toString("base64")}\n-----END CERTIFICATE-----\n`;
		const other = localKeySigner(generateKeyPairSync("ec", { namedCurve: "P-384" }).privateKey);
		expect(() => certificateMode(other, leafPem, ca.intermediatePem)).toThrow(/not the private key's/);
	});

	it("a signer whose signature does not verify (a raw r||s signature), before anything is written", async () => {
		const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
		const { sign } = await import("node:crypto");
		const raw = digestSigner(publicKey, async () =>
			sign("sha256", Buffer.from("x"), { key: privateKey, dsaEncoding: "ieee-p1363" }),
		);
		const dir = modelCopy();
		await expect(
			signModel(dir, { signaturePath: join(dir, "model.sig"), mode: { kind: "key", signer: raw } }),
		).rejects.toMatchObject({ code: "KEY_INVALID" });
		expect(existsSync(join(dir, "model.sig"))).toBe(false);
	});
});

describe("writeSignatureFile", () => {
	it("replaces an existing signature whole and leaves no temporary file", async () => {
		const dir = mkdtempSync(join(tmpdir(), "ftguard-sigfile-"));
		const path = join(dir, "model.sig");
		writeFileSync(path, "old");
		await writeSignatureFile(path, Buffer.from("new"));
		expect(readFileSync(path, "utf8")).toBe("new");
		expect(readdirSync(dir)).toEqual(["model.sig"]);
	});

	it("fails with NOT_FOUND into a missing directory, leaving nothing", async () => {
		const dir = mkdtempSync(join(tmpdir(), "ftguard-sigfile-"));
		await expect(writeSignatureFile(join(dir, "gone", "model.sig"), Buffer.from("x"))).rejects.toMatchObject({
			code: "NOT_FOUND",
		});
		expect(readdirSync(dir)).toEqual([]);
	});
});

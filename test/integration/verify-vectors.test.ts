/**
 * Conformance: every signature made by the reference model_signing tool verifies
 * with the parameters its README gives, and tampering fails with the right code.
 */

import { generateKeyPairSync } from "node:crypto";
import { appendFileSync, chmodSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { copyVector, ftguard, VECTORS } from "../helpers/cli";

const KEYLESS = ["--identity", "stefanb@us.ibm.com", "--identity-provider", "https://sigstore.verify.ibm.com/oauth2"];
const KEY = ["--public-key", join(VECTORS, "keys/signing-key-pub.pem")];
const CHAIN_PEM =
	readFileSync(join(VECTORS, "keys/ca-cert.pem"), "utf8") + readFileSync(join(VECTORS, "keys/int-ca-cert.pem"), "utf8");

interface Vector {
	name: string;
	/** Model path inside the vector folder ("" = the folder itself). */
	model: string;
	trust: () => string[];
	ignore: boolean;
}

function chainFile(dir: string): string {
	const p = join(dir, "..", "chain.pem");
	writeFileSync(p, CHAIN_PEM);
	return p;
}

const vectors: Vector[] = [
	{ name: "v1.0.0-sigstore", model: "", trust: () => KEYLESS, ignore: false },
	{ name: "v1.1.0-sigstore", model: "", trust: () => KEYLESS, ignore: true },
	{ name: "v1.0.0-elliptic-key", model: "signme-1", trust: () => KEY, ignore: false },
	{ name: "v1.1.0-elliptic-key", model: "", trust: () => KEY, ignore: true },
	{ name: "v1.0.0-certificate", model: "", trust: () => [], ignore: false },
	{ name: "v1.1.0-certificate", model: "", trust: () => [], ignore: true },
];

function args(v: Vector, dir: string): string[] {
	// As the reference tool does: the root CA alone; the intermediate comes from the bundle.
	const trust = v.name.includes("certificate") ? ["--certificate-chain", join(VECTORS, "keys/ca-cert.pem")] : v.trust();
	return [
		"verify",
		v.model ? join(dir, v.model) : dir,
		"--signature",
		join(dir, "model.sig"),
		...trust,
		...(v.ignore ? ["--ignore-paths", "ignore-me"] : []),
	];
}

describe.each(vectors)("vector $name", (v) => {
	it("verifies with the parameters its README gives", async () => {
		const dir = copyVector(v.name);
		const r = await ftguard([...args(v, dir), "--json"]);
		expect(r.stderr).toBe("");
		expect(r.code).toBe(0);
		const out = r.json();
		expect(out.verified).toBe(true);
		const sig = JSON.parse(readFileSync(join(dir, "model.sig"), "utf8"));
		const statement = JSON.parse(Buffer.from(sig.dsseEnvelope.payload, "base64").toString());
		expect(out.root).toBe(statement.subject[0].digest.sha256);
	});

	it("fails with DIGEST_MISMATCH when one byte of signme-1 flips", async () => {
		const dir = copyVector(v.name);
		const f = join(dir, "signme-1");
		chmodSync(f, 0o644);
		const bytes = readFileSync(f);
		bytes[0] = (bytes[0] ?? 0) ^ 0x01;
		writeFileSync(f, bytes);
		const r = await ftguard(args(v, dir));
		expect(r.code).toBe(1);
		expect(r.stderr).toMatch(/^ftguard: DIGEST_MISMATCH: digest mismatch: (signme-1|\.)$/m);
		expect(r.stderr.trim().split("\n")).toHaveLength(1);
	});
});

describe.each(vectors.filter((v) => v.model === ""))("directory vector $name", (v) => {
	it("fails with UNSIGNED_FILE when a file is added", async () => {
		const dir = copyVector(v.name);
		writeFileSync(join(dir, "evil.py"), "import os\n");
		const r = await ftguard([...args(v, dir), "--json"]);
		expect(r.code).toBe(1);
		expect(r.json()).toMatchObject({ ok: false, error: { code: "UNSIGNED_FILE", details: { unsigned: ["evil.py"] } } });
	});
});

describe("v1.1.0 vectors without --ignore-paths", () => {
	it.each(["v1.1.0-sigstore", "v1.1.0-elliptic-key", "v1.1.0-certificate"])(
		"%s fails: ignore-me is unsigned, and the hint names the flag",
		async (name) => {
			const v = vectors.find((x) => x.name === name) as Vector;
			const dir = copyVector(name);
			const r = await ftguard(args({ ...v, ignore: false }, dir));
			expect(r.code).toBe(1);
			expect(r.stderr).toContain("UNSIGNED_FILE");
			expect(r.stderr).toContain("--ignore-paths ignore-me");
		},
	);
});

describe("certificate vectors", () => {
	it("also verify when the chain file holds the root and the intermediate", async () => {
		const dir = copyVector("v1.0.0-certificate");
		const r = await ftguard([
			"verify",
			dir,
			"--signature",
			join(dir, "model.sig"),
			"--certificate-chain",
			chainFile(dir),
		]);
		expect(r.code).toBe(0);
	});
});

describe("the wrong signer", () => {
	const IBM = "https://sigstore.verify.ibm.com/oauth2";
	/** Verifies a copy of a keyless vector with the given identity flags. */
	async function keyless(name: string, identity: string[]) {
		const dir = copyVector(name);
		const ignore = name.startsWith("v1.1.0") ? ["--ignore-paths", "ignore-me"] : [];
		return ftguard(["verify", dir, "--signature", join(dir, "model.sig"), ...identity, ...ignore]);
	}

	it.each([
		["another identity", "v1.0.0-sigstore", ["--identity", "someone@us.ibm.com", "--identity-provider", IBM]],
		[
			"an identity that only matches as a substring (anchored)",
			"v1.0.0-sigstore",
			["--identity-regexp", "stefanb@us", "--identity-provider", IBM],
		],
		[
			"another issuer",
			"v1.1.0-sigstore",
			["--identity", "stefanb@us.ibm.com", "--identity-provider", "https://accounts.google.com"],
		],
	])("keyless: %s is IDENTITY_MISMATCH", async (_what, name, identity) => {
		const r = await keyless(name, identity);
		expect(r.code).toBe(1);
		expect(r.stderr).toMatch(/^ftguard: IDENTITY_MISMATCH/);
	});

	it("keyed: another EC key is SIGNATURE_INVALID", async () => {
		const dir = copyVector("v1.1.0-elliptic-key");
		const other = generateKeyPairSync("ec", { namedCurve: "P-384" }).publicKey.export({ type: "spki", format: "pem" });
		const pem = join(dir, "..", "other.pub.pem");
		writeFileSync(pem, other);
		const r = await ftguard([
			"verify",
			dir,
			"--signature",
			join(dir, "model.sig"),
			"--public-key",
			pem,
			"--ignore-paths",
			"ignore-me",
		]);
		expect(r.code).toBe(1);
		expect(r.stderr).toMatch(/^ftguard: SIGNATURE_INVALID/);
	});

	it("private CA: a chain from another CA is refused", async () => {
		const dir = copyVector("v1.1.0-certificate");
		// The leaf certificate alone as the "chain": it is not the CA that issued the signer.
		const r = await ftguard([
			"verify",
			dir,
			"--signature",
			join(dir, "model.sig"),
			"--certificate-chain",
			join(VECTORS, "keys/signing-key-cert.pem"),
			"--ignore-paths",
			"ignore-me",
		]);
		expect(r.code).toBe(1);
		expect(r.stderr).toMatch(/^ftguard: CERTIFICATE_UNTRUSTED: /);
	});
});

describe("bad input", () => {
	it("a truncated bundle is BUNDLE_MALFORMED, exit 2", async () => {
		const dir = copyVector("v1.0.0-sigstore");
		const sig = join(dir, "model.sig");
		writeFileSync(sig, readFileSync(sig).subarray(0, 500));
		const r = await ftguard(["verify", dir, "--signature", sig, ...KEYLESS]);
		expect(r.code).toBe(2);
		expect(r.stderr).toMatch(/^ftguard: BUNDLE_MALFORMED: /);
		expect(r.stderr).not.toMatch(/\n\s+at /);
	});

	it("a wrong media type is BUNDLE_MEDIA_TYPE, exit 2", async () => {
		const dir = copyVector("v1.1.0-elliptic-key");
		const sig = join(dir, "model.sig");
		const json = JSON.parse(readFileSync(sig, "utf8"));
		json.mediaType = "application/vnd.example+json";
		writeFileSync(sig, JSON.stringify(json));
		const r = await ftguard(["verify", dir, "--signature", sig, ...KEY, "--ignore-paths", "ignore-me"]);
		expect(r.code).toBe(2);
		expect(r.stderr).toMatch(/^ftguard: BUNDLE_MEDIA_TYPE/);
	});

	it("an absent model directory is NOT_FOUND, exit 2", async () => {
		const dir = copyVector("v1.1.0-elliptic-key");
		const r = await ftguard(["verify", join(dir, "nope"), "--signature", join(dir, "model.sig"), ...KEY]);
		expect(r.code).toBe(2);
		expect(r.stderr).toMatch(/^ftguard: NOT_FOUND/);
	});

	it("a missing signed file is MISSING_FILE", async () => {
		const dir = copyVector("v1.0.0-certificate");
		rmSync(join(dir, "signme-2"));
		const r = await ftguard([
			"verify",
			dir,
			"--signature",
			join(dir, "model.sig"),
			"--certificate-chain",
			chainFile(dir),
		]);
		expect(r.code).toBe(1);
		expect(r.stderr).toMatch(/^ftguard: MISSING_FILE: missing: signme-2/);
	});

	it("garbage appended to the signature file is BUNDLE_MALFORMED", async () => {
		const dir = copyVector("v1.1.0-elliptic-key");
		appendFileSync(join(dir, "model.sig"), "}}");
		const r = await ftguard([
			"verify",
			dir,
			"--signature",
			join(dir, "model.sig"),
			...KEY,
			"--ignore-paths",
			"ignore-me",
		]);
		expect(r.code).toBe(2);
		expect(r.stderr).toMatch(/^ftguard: BUNDLE_MALFORMED/);
	});
});

/**
 * `ftguard verify` end to end with trust material made in the test: keyless
 * (a private Sigstore instance via @sigstore/mock, passed as --trusted-root),
 * sharded manifests, legacy predicates, inconsistent statements, blob bundles,
 * and signatures laid out as model_signing v0.2 wrote them.
 */
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { buildManifest } from "../../lib/core/integrity/manifest";
import { ftguard } from "../helpers/cli";
import {
	createPrivateCa,
	generateEcKeyPair,
	type Json,
	makeLegacyStatement,
	makeModelSigningStatement,
	signBlobKeyed,
	signBlobKeyless,
	signStatementKeyed,
	signStatementKeyless,
	signStatementV02Keyed,
	signStatementV02WithCertificate,
} from "../helpers/sign";

const ID = "https://github.com/acme/train/.github/workflows/ft.yml@refs/heads/main";
const ISSUER = "https://token.actions.githubusercontent.com";

function tmp(prefix: string): string {
	return mkdtempSync(join(tmpdir(), `ftguard-${prefix}-`));
}

function model(size = 3000): string {
	const dir = join(tmp("own"), "model");
	mkdirSync(join(dir, "nested"), { recursive: true });
	writeFileSync(join(dir, "config.json"), '{"arch":"x"}');
	writeFileSync(join(dir, "nested", "weights.bin"), Buffer.alloc(size, 7));
	return dir;
}

async function statementFor(dir: string, method: "files" | "shards" = "files", shardSize?: number): Promise<Json> {
	const m = await buildManifest(dir, { method, ...(shardSize ? { shardSize } : {}), ignorePaths: ["model.sig"] });
	return makeModelSigningStatement({
		modelName: m.modelName,
		method,
		resources: m.resources,
		...(shardSize ? { serialization: { shard_size: shardSize } } : {}),
	});
}

function write(path: string, json: Json): string {
	writeFileSync(path, JSON.stringify(json));
	return path;
}

/**
 * Signs `statement` with a fresh EC key into `<dir>/model.sig` and verifies `dir`
 * with the CLI against that key.
 */
async function signAndVerify(dir: string, statement: Json, extra: string[] = []) {
	const kp = generateEcKeyPair();
	const pub = join(dir, "..", "k.pem");
	writeFileSync(pub, kp.publicKeyPem);
	const sig = write(join(dir, "model.sig"), signStatementKeyed(statement, { keyPair: kp }).bundle);
	const verify = () => ftguard(["verify", dir, "--signature", sig, "--public-key", pub, ...extra]);
	return { result: await verify(), again: verify };
}

describe("keyless (private Sigstore, --trusted-root)", () => {
	it("verifies the right identity and refuses the wrong one", async () => {
		const dir = model();
		const { bundle, trustedRoot } = await signStatementKeyless(await statementFor(dir), {
			identity: ID,
			issuer: ISSUER,
		});
		const sig = write(join(dir, "model.sig"), bundle);
		const root = write(join(dir, "..", "trusted_root.json"), trustedRoot);
		const ok = await ftguard([
			"verify",
			dir,
			"--signature",
			sig,
			"--identity",
			ID,
			"--identity-provider",
			ISSUER,
			"--trusted-root",
			root,
			"--json",
		]);
		expect(ok.code).toBe(0);
		expect(ok.json()).toMatchObject({ verified: true, signer: { identity: ID, issuer: ISSUER } });

		const regexp = await ftguard([
			"verify",
			dir,
			"--signature",
			sig,
			"--identity-regexp",
			"https://github\\.com/acme/.*",
			"--identity-provider",
			ISSUER,
			"--trusted-root",
			root,
		]);
		expect(regexp.code).toBe(0);

		const wrong = await ftguard([
			"verify",
			dir,
			"--signature",
			sig,
			"--identity",
			`${ID}x`,
			"--identity-provider",
			ISSUER,
			"--trusted-root",
			root,
		]);
		expect(wrong.code).toBe(1);
		expect(wrong.stderr).toMatch(/^ftguard: IDENTITY_MISMATCH/);
	});

	it("refuses a bundle from a private instance under the public-good root", async () => {
		const dir = model();
		const { bundle } = await signStatementKeyless(await statementFor(dir), { identity: ID, issuer: ISSUER });
		const sig = write(join(dir, "model.sig"), bundle);
		const r = await ftguard(["verify", dir, "--signature", sig, "--identity", ID, "--identity-provider", ISSUER]);
		expect(r.code).toBe(1);
		// The private TSA is the first thing the public-good root does not trust.
		expect(r.stderr).toMatch(/^ftguard: TIMESTAMP_INVALID: /);
	});
});

describe("sharded manifests", () => {
	it("re-hashes with the signature's own shard size, and names the changed file", async () => {
		const dir = model(10_000);
		const { result: ok, again } = await signAndVerify(dir, await statementFor(dir, "shards", 4096), ["--json"]);
		expect(ok.code).toBe(0);
		expect(ok.json()).toMatchObject({ serialization: { method: "shards", shard_size: 4096 }, files: 2 });

		writeFileSync(join(dir, "nested", "weights.bin"), Buffer.alloc(10_001, 7));
		const bad = await again();
		expect(bad.code).toBe(1);
		expect(bad.json()).toMatchObject({
			error: { code: "DIGEST_MISMATCH", details: { mismatched: [{ name: "nested/weights.bin" }] } },
		});
	});
});

describe("empty files in sharded signatures", () => {
	it("follows the signer's convention: with or without an empty-file shard path:0:0", async () => {
		for (const shardEmptyFiles of [false, true]) {
			const dir = model(100);
			writeFileSync(join(dir, "empty.bin"), "");
			const m = await buildManifest(dir, {
				method: "shards",
				shardSize: 64,
				shardEmptyFiles,
				ignorePaths: ["model.sig"],
			});
			expect(m.resources.some((r) => r.name === "empty.bin:0:0")).toBe(shardEmptyFiles);
			const statement = makeModelSigningStatement({
				modelName: m.modelName,
				method: "shards",
				resources: m.resources,
				serialization: { shard_size: 64 },
			});
			const { result: r } = await signAndVerify(dir, statement);
			expect(r.stderr).toBe("");
			expect(r.code).toBe(0);
		}
	});
});

describe("statements that lie", () => {
	it("a subject digest that is not the root of the resources is ROOT_DIGEST_MISMATCH", async () => {
		const dir = model();
		const m = await buildManifest(dir, { ignorePaths: ["model.sig"] });
		const statement = makeModelSigningStatement({ modelName: "model", resources: m.resources, root: "ab".repeat(32) });
		const { result: r } = await signAndVerify(dir, statement);
		expect(r.code).toBe(1);
		expect(r.stderr).toMatch(/^ftguard: ROOT_DIGEST_MISMATCH/);
	});

	it("two subjects is SUBJECT_INVALID; another predicate type is PREDICATE_TYPE_UNSUPPORTED", async () => {
		const dir = model();
		const base = await statementFor(dir);
		const subjects = base.subject as Json[];
		const two = { ...base, subject: [...subjects, { name: "other", digest: { sha256: "cd".repeat(32) } }] };
		const { result: r1 } = await signAndVerify(dir, two);
		expect(r1.code).toBe(1);
		expect(r1.stderr).toMatch(/^ftguard: SUBJECT_INVALID/);
		const { result: r2 } = await signAndVerify(dir, { ...base, predicateType: "https://slsa.dev/provenance/v1" });
		expect(r2.code).toBe(1);
		expect(r2.stderr).toMatch(/^ftguard: PREDICATE_TYPE_UNSUPPORTED/);
	});

	it("a resource named with .. cannot make ftguard read outside the model", async () => {
		const dir = model();
		const m = await buildManifest(dir, { ignorePaths: ["model.sig"] });
		const resources = [...m.resources, { name: "../../etc/passwd", digest: "00".repeat(32) }];
		const { result: r } = await signAndVerify(dir, makeModelSigningStatement({ modelName: "model", resources }));
		expect(r.code).toBe(1);
		expect(r.stderr).toMatch(/^ftguard: PATH_ESCAPE: /);
	});
});

describe("symlinks", () => {
	it("a symlink in a model signed without allow_symlinks is refused, never followed", async () => {
		const dir = model();
		const { result: before, again } = await signAndVerify(dir, await statementFor(dir));
		expect(before.code).toBe(0);
		symlinkSync("/etc/hostname", join(dir, "link"));
		const r = await again();
		expect(r.code).toBe(1);
		expect(r.stderr).toMatch(/^ftguard: SYMLINK_REFUSED/);
	});
});

describe("single artefacts (cosign sign-blob --bundle)", () => {
	it("verifies a keyed blob bundle and refuses a changed file", async () => {
		const dir = tmp("blob");
		const file = join(dir, "adapter.safetensors");
		writeFileSync(file, Buffer.alloc(5000, 3));
		const kp = generateEcKeyPair("P-384");
		writeFileSync(join(dir, "k.pem"), kp.publicKeyPem);
		const bundle = write(join(dir, "b.sigstore.json"), signBlobKeyed(Buffer.alloc(5000, 3), { keyPair: kp }).bundle);
		const ok = await ftguard(["verify", file, "--bundle", bundle, "--public-key", join(dir, "k.pem"), "--json"]);
		expect(ok.code).toBe(0);
		expect(ok.json()).toMatchObject({ verified: true, kind: "artefact" });
		writeFileSync(file, Buffer.alloc(5000, 4));
		const bad = await ftguard(["verify", file, "--bundle", bundle, "--public-key", join(dir, "k.pem")]);
		expect(bad.code).toBe(1);
		expect(bad.stderr).toMatch(/^ftguard: (DIGEST_MISMATCH|SIGNATURE_INVALID)/);
	});

	it("verifies a keyless blob bundle with identity and issuer", async () => {
		const dir = tmp("blob");
		const file = join(dir, "a.gguf");
		writeFileSync(file, "GGUF-ish bytes");
		const { bundle, trustedRoot } = await signBlobKeyless(Buffer.from("GGUF-ish bytes"), {
			identity: ID,
			issuer: ISSUER,
		});
		const b = write(join(dir, "a.sigstore.json"), bundle);
		const root = write(join(dir, "root.json"), trustedRoot);
		const r = await ftguard([
			"verify",
			file,
			"--bundle",
			b,
			"--identity",
			ID,
			"--identity-provider",
			ISSUER,
			"--trusted-root",
			root,
		]);
		expect(r.code).toBe(0);
		expect(r.stdout).toContain(`signer  ${ID}`);
	});
});

describe("model_signing v0.2 signatures (before 1.0)", () => {
	async function legacyStatementFor(dir: string): Promise<Json> {
		return makeLegacyStatement((await buildManifest(dir, { ignorePaths: ["model.sig"] })).resources);
	}

	it("a certificate signature (old encoding, SHA-256 on a P-384 leaf) verifies; one changed byte fails", async () => {
		const dir = model();
		const ca = await createPrivateCa("ftguard v0.2");
		const chain = join(dir, "..", "ca.pem");
		writeFileSync(chain, ca.chainPem);
		const { bundle } = await signStatementV02WithCertificate(await legacyStatementFor(dir), ca, { curve: "P-384" });
		const sig = write(join(dir, "model.sig"), bundle);
		const verify = () => ftguard(["verify", dir, "--signature", sig, "--certificate-chain", chain, "--json"]);
		const ok = await verify();
		expect(ok.code).toBe(0);
		expect(ok.json()).toMatchObject({
			verified: true,
			signer: { kind: "certificate-chain", legacyEncoding: true },
			predicateType: "https://model_signing/Digests/v0.1",
			files: 2,
		});
		writeFileSync(join(dir, "nested", "weights.bin"), Buffer.alloc(3000, 8));
		const bad = await verify();
		expect(bad.code).toBe(1);
		expect(bad.json()).toMatchObject({ ok: false, error: { code: "DIGEST_MISMATCH" } });
	});

	it("a key signature verifies with the curve's digest and not with SHA-256 on P-384, as the reference decides", async () => {
		const dir = model();
		const kp = generateEcKeyPair("P-384");
		const pub = join(dir, "..", "k.pem");
		writeFileSync(pub, kp.publicKeyPem);
		const statement = await legacyStatementFor(dir);
		const sig = join(dir, "model.sig");
		const verify = () => ftguard(["verify", dir, "--signature", sig, "--public-key", pub]);
		write(sig, signStatementV02Keyed(statement, { keyPair: kp, hash: "curve" }).bundle);
		expect((await verify()).code).toBe(0);
		write(sig, signStatementV02Keyed(statement, { keyPair: kp, hash: "sha256" }).bundle);
		const refused = await verify();
		expect(refused.code).toBe(1);
		expect(refused.stderr).toMatch(/^ftguard: SIGNATURE_INVALID/);
	});
});

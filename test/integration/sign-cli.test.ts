/**
 * `ftguard sign` as a user runs it: every mode's signature verifies with `ftguard verify` and stops verifying
 * when a model byte changes; the statement is the reference tool's (vectors from ../shared); bad inputs end
 * with exit 2, one line and a stable code, and never leave a signature file behind.
 */
import { generateKeyPairSync } from "node:crypto";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ftguard, VECTORS } from "../helpers/cli";
import { createMockSigstore, createPrivateCa, type MockSigstore } from "../helpers/sign";
import { identityToken, type SigstoreServer, serveMockSigstore } from "../helpers/sigstore-server";

const ID = "https://github.com/acme/train/.github/workflows/ft.yml@refs/heads/main";
const ISSUER = "https://token.actions.githubusercontent.com";

const tmp = (prefix: string) => mkdtempSync(join(tmpdir(), `ftguard-sign-${prefix}-`));

function model(): string {
	const dir = join(tmp("model"), "model");
	mkdirSync(join(dir, "nested"), { recursive: true });
	writeFileSync(join(dir, "config.json"), '{"model_type":"bert"}');
	writeFileSync(join(dir, "nested", "weights.bin"), Buffer.alloc(4000, 1));
	return dir;
}

function keyFiles(curve = "P-256"): { key: string; pub: string } {
	const dir = tmp("key");
	const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: curve });
	const key = join(dir, "key.pem");
	const pub = join(dir, "pub.pem");
	writeFileSync(key, privateKey.export({ type: "pkcs8", format: "pem" }));
	writeFileSync(pub, publicKey.export({ type: "spki", format: "pem" }));
	return { key, pub };
}

/** One line on stderr, `ftguard: CODE: …`, exit 2, and no signature written. */
function expectRefused(r: Awaited<ReturnType<typeof ftguard>>, code: string, sig?: string): void {
	expect(r.code).toBe(2);
	expect(r.stderr.trim().split("\n")).toHaveLength(1);
	expect(r.stderr).toMatch(new RegExp(`^ftguard: ${code}: `));
	if (sig !== undefined) expect(existsSync(sig)).toBe(false);
}

describe("ftguard sign --private-key", () => {
	it("signs what ftguard verify accepts, and a changed byte fails verification", async () => {
		const dir = model();
		const { key, pub } = keyFiles("P-384");
		const sig = join(dir, "model.sig");
		const signed = await ftguard(["sign", dir, "--signature", sig, "--private-key", key, "--json"]);
		expect(signed.code).toBe(0);
		expect(signed.json()).toMatchObject({ ok: true, signed: true, mode: "key", files: 2, subject: "model" });
		const ok = await ftguard(["verify", dir, "--signature", sig, "--public-key", pub]);
		expect(ok.code).toBe(0);
		writeFileSync(join(dir, "config.json"), '{"model_type":"berT"}');
		const bad = await ftguard(["verify", dir, "--signature", sig, "--public-key", pub]);
		expect(bad.code).toBe(1);
		expect(bad.stderr).toContain("DIGEST_MISMATCH");
	});

	it("writes the vector's statement for the vector's files (--ignore-paths ignore-me)", async () => {
		const dir = join(tmp("vector"), "v1.1.0-elliptic-key");
		cpSync(join(VECTORS, "v1.1.0-elliptic-key"), dir, { recursive: true });
		const { key, pub } = keyFiles();
		const sig = join(dir, "model.sig");
		const r = await ftguard(["sign", dir, "--signature", sig, "--private-key", key, "--ignore-paths", "ignore-me"]);
		expect(r.code).toBe(0);
		const payload = (file: string) =>
			Buffer.from(JSON.parse(readFileSync(file, "utf8")).dsseEnvelope.payload as string, "base64");
		const ours = payload(sig);
		const theirs = payload(join(VECTORS, "v1.1.0-elliptic-key", "model.sig"));
		// Same bytes but for model_signing's per-process key order (the unit test compares the bytes in order).
		expect(ours.length).toBe(theirs.length);
		const sorted = (b: Buffer) =>
			JSON.stringify(JSON.parse(b.toString()), (_k, v) =>
				Array.isArray(v) && v.every((x) => typeof x === "string")
					? [...v].sort()
					: v && typeof v === "object" && !Array.isArray(v)
						? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1)))
						: v,
			);
		expect(sorted(ours)).toBe(sorted(theirs));
		expect((await ftguard(["verify", dir, "--signature", sig, "--public-key", pub])).code).toBe(1); // ignore-me
		expect(
			(await ftguard(["verify", dir, "--signature", sig, "--public-key", pub, "--ignore-paths", "ignore-me"])).code,
		).toBe(0);
	});

	it("replaces an existing signature", async () => {
		const dir = model();
		const { key, pub } = keyFiles();
		const sig = join(dir, "model.sig");
		writeFileSync(sig, "an old signature");
		expect((await ftguard(["sign", dir, "--signature", sig, "--private-key", key])).code).toBe(0);
		expect((await ftguard(["verify", dir, "--signature", sig, "--public-key", pub])).code).toBe(0);
		expect(readdirSync(dir).sort()).toEqual(["config.json", "model.sig", "nested"]);
	});
});

describe("ftguard sign with a certificate", () => {
	it("signs what ftguard verify --certificate-chain accepts", async () => {
		const ca = await createPrivateCa();
		const leaf = await ca.issueLeaf({ curve: "P-256" });
		const d = tmp("cert");
		const files = {
			key: join(d, "key.pem"),
			leaf: join(d, "leaf.pem"),
			chain: join(d, "chain.pem"),
			root: join(d, "root.pem"),
		};
		writeFileSync(files.key, leaf.keyPair.privateKey.export({ type: "sec1", format: "pem" }));
		writeFileSync(
			files.leaf,
			`-----BEGIN CERTIFICATE-----\n${leaf.der.toString("base64")}\n-----END CERTIFICATE-----\n`,
		);
		writeFileSync(files.chain, ca.intermediatePem);
		writeFileSync(files.root, ca.rootPem);
		const dir = model();
		const sig = join(dir, "model.sig");
		const args = ["--private-key", files.key, "--signing-certificate", files.leaf, "--certificate-chain", files.chain];
		const r = await ftguard(["sign", dir, "--signature", sig, ...args]);
		expect(r.code).toBe(0);
		expect(r.stdout).toContain("certificate CN=ftguard test signer");
		expect((await ftguard(["verify", dir, "--signature", sig, "--certificate-chain", files.root])).code).toBe(0);
		writeFileSync(join(dir, "nested", "weights.bin"), Buffer.alloc(4000, 2));
		expect((await ftguard(["verify", dir, "--signature", sig, "--certificate-chain", files.root])).code).toBe(1);

		// a certificate for another key
		const other = keyFiles("P-256");
		const mismatch = await ftguard([
			"sign",
			model(),
			"--signature",
			join(d, "x.sig"),
			...args.slice(2),
			"--private-key",
			other.key,
		]);
		expectRefused(mismatch, "KEY_INVALID", join(d, "x.sig"));
	});
});

describe("ftguard sign keyless, against a private Sigstore over HTTP", () => {
	let instance: MockSigstore;
	let server: SigstoreServer;
	let root: string;
	beforeAll(async () => {
		instance = await createMockSigstore();
		server = await serveMockSigstore(instance);
		root = join(tmp("root"), "trusted_root.json");
		writeFileSync(root, JSON.stringify(instance.trustedRoot));
	});
	afterAll(() => server.close());

	const urls = () => ["--fulcio-url", server.url, "--rekor-url", server.url, "--tsa-url", server.url];
	const verify = (dir: string) =>
		ftguard([
			"verify",
			dir,
			"--signature",
			join(dir, "model.sig"),
			"--identity",
			ID,
			"--identity-provider",
			ISSUER,
			"--trusted-root",
			root,
		]);

	it("--identity-token-file: verifies with ftguard verify; a changed byte does not", async () => {
		const dir = model();
		const tokenFile = join(tmp("token"), "token");
		writeFileSync(tokenFile, `${identityToken({ sub: ID, iss: ISSUER })}\n`);
		const r = await ftguard([
			"sign",
			dir,
			"--signature",
			join(dir, "model.sig"),
			"--identity-token-file",
			tokenFile,
			...urls(),
			"--json",
		]);
		expect(r.code).toBe(0);
		expect(r.json()).toMatchObject({ mode: "keyless", signer: { identity: expect.stringContaining(ID) } });
		const ok = await verify(dir);
		expect(ok.code).toBe(0);
		expect(ok.stdout).toContain(ID);
		writeFileSync(join(dir, "config.json"), "{}");
		expect((await verify(dir)).code).toBe(1);
	});

	it("--keyless reads SIGSTORE_ID_TOKEN", async () => {
		const dir = model();
		const r = await ftguard(["sign", dir, "--signature", join(dir, "model.sig"), "--keyless", ...urls()], {
			env: { SIGSTORE_ID_TOKEN: identityToken({ sub: ID, iss: ISSUER }), ACTIONS_ID_TOKEN_REQUEST_URL: "" },
		});
		expect(r.stderr).toBe("");
		expect(r.code).toBe(0);
		expect((await verify(dir)).code).toBe(0);
	});

	it("--keyless without a token in the environment is USAGE", async () => {
		const dir = model();
		const r = await ftguard(["sign", dir, "--signature", join(dir, "model.sig"), "--keyless", ...urls()], {
			env: { SIGSTORE_ID_TOKEN: "", ACTIONS_ID_TOKEN_REQUEST_URL: "" },
		});
		expectRefused(r, "USAGE", join(dir, "model.sig"));
	});
});

describe("ftguard sign refuses, exit 2 with one line", () => {
	const { key } = keyFiles();

	it("no signing mode, even with an OIDC token in the environment", async () => {
		const dir = model();
		const r = await ftguard(["sign", dir, "--signature", join(dir, "model.sig")], {
			env: { SIGSTORE_ID_TOKEN: identityToken({ sub: ID, iss: ISSUER }) },
		});
		expectRefused(r, "USAGE", join(dir, "model.sig"));
	});

	it("two signing modes", async () => {
		const dir = model();
		const r = await ftguard(["sign", dir, "--signature", join(dir, "model.sig"), "--private-key", key, "--keyless"]);
		expectRefused(r, "USAGE", join(dir, "model.sig"));
	});

	it("--kms-key with --private-key; --kms-key without AWS credentials: one line, exit 2, nothing written", async () => {
		const dir = model();
		const sig = join(dir, "model.sig");
		const arn = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
		expectRefused(
			await ftguard(["sign", dir, "--signature", sig, "--private-key", key, "--kms-key", arn]),
			"USAGE",
			sig,
		);
		const r = await ftguard(["sign", dir, "--signature", sig, "--kms-key", arn], {
			env: {
				AWS_ACCESS_KEY_ID: "",
				AWS_SECRET_ACCESS_KEY: "",
				AWS_PROFILE: "",
				AWS_EC2_METADATA_DISABLED: "true",
				AWS_REGION: "us-east-1",
			},
		});
		expectRefused(r, "AWS_API_ERROR", sig);
		expect(r.stderr).toContain(`KMS GetPublicKey on ${arn}`);
	});

	it("an RSA key, a secp256k1 key, a public key", async () => {
		const d = tmp("bad-keys");
		const rsa = join(d, "rsa.pem");
		writeFileSync(
			rsa,
			generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs8", format: "pem" }),
		);
		const k1 = join(d, "k1.pem");
		writeFileSync(
			k1,
			generateKeyPairSync("ec", { namedCurve: "secp256k1" }).privateKey.export({ type: "pkcs8", format: "pem" }),
		);
		for (const bad of [rsa, k1, join(VECTORS, "keys/signing-key-pub.pem")]) {
			const dir = model();
			expectRefused(
				await ftguard(["sign", dir, "--signature", join(dir, "model.sig"), "--private-key", bad]),
				"KEY_INVALID",
				join(dir, "model.sig"),
			);
		}
	});

	it("a missing model, a missing key, a model path through a file (ENOTDIR)", async () => {
		const d = tmp("missing");
		expectRefused(
			await ftguard(["sign", join(d, "nope"), "--signature", join(d, "model.sig"), "--private-key", key]),
			"NOT_FOUND",
			join(d, "model.sig"),
		);
		const dir = model();
		expectRefused(
			await ftguard(["sign", dir, "--signature", join(dir, "model.sig"), "--private-key", join(d, "no-key.pem")]),
			"NOT_FOUND",
			join(dir, "model.sig"),
		);
		expectRefused(
			await ftguard(["sign", join(dir, "config.json", "x"), "--signature", join(d, "model.sig"), "--private-key", key]),
			"IO_ERROR", // the walk's ENOTDIR, named as such
			join(d, "model.sig"),
		);
	});

	it("a signature in a directory that does not exist, before hashing", async () => {
		const dir = model();
		expectRefused(
			await ftguard(["sign", dir, "--signature", join(dir, "no", "model.sig"), "--private-key", key, "--json"]),
			"NOT_FOUND",
		);
	});
});

/**
 * The reference model_signing tool's own signatures: each verifies under the
 * policy its README gives, offline, and each kind of tampering or wrong trust
 * fails with its own code.
 */
import { generateKeyPairSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import {
	checkRootDigest,
	type IdentityMatcher,
	parseBundle,
	parseModelSigningStatement,
	type TrustPolicy,
	verifyDsseBundle,
} from "../../../lib/core/integrity";
import { codeOf } from "../../helpers/errors";
import { createPrivateCa, generateEcKeyPair, type Json, tamper } from "../../helpers/sign";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const VECTORS = resolve(REPO, "../shared/vectors/model-signing");
const read = (p: string) => readFileSync(resolve(VECTORS, p), "utf8");

const IDENTITY = "stefanb@us.ibm.com";
const ISSUER = "https://sigstore.verify.ibm.com/oauth2";
const KEYLESS: TrustPolicy = {
	kind: "keyless",
	identity: { exact: IDENTITY },
	issuer: ISSUER,
};
const PUBLIC_KEY: TrustPolicy = {
	kind: "public-key",
	pem: read("keys/signing-key-pub.pem"),
};
const CHAIN: TrustPolicy = {
	kind: "certificate-chain",
	pem: read("keys/ca-cert.pem") + read("keys/int-ca-cert.pem"),
};

type Mode = "sigstore" | "elliptic-key" | "certificate";
const POLICY: Record<Mode, TrustPolicy> = {
	sigstore: KEYLESS,
	"elliptic-key": PUBLIC_KEY,
	certificate: CHAIN,
};

const VECTOR_NAMES = ["v1.0.0", "v1.1.0"].flatMap((v) =>
	(["sigstore", "elliptic-key", "certificate"] as const).map((mode) => ({
		name: `${v}-${mode}`,
		mode,
	})),
);

const bundleJson = (name: string): Json => JSON.parse(read(`${name}/model.sig`));
const parse = (json: Json | string) => parseBundle(typeof json === "string" ? json : JSON.stringify(json), "model.sig");

// No test here may touch the network: every fetch or socket attempt is an error.
const fetchSpy = vi.fn(() => {
	throw new Error("network access attempted");
});
beforeAll(() => {
	vi.stubGlobal("fetch", fetchSpy);
});
afterAll(() => {
	vi.unstubAllGlobals();
	expect(fetchSpy).not.toHaveBeenCalled();
});

describe.each(VECTOR_NAMES)("reference vector $name", ({ name, mode }) => {
	const policy = POLICY[mode];

	it("verifies under the policy its README gives", () => {
		const { payload, payloadType, signer } = verifyDsseBundle(parse(bundleJson(name)), policy);
		expect(payloadType).toBe("application/vnd.in-toto+json");
		expect(signer.kind).toBe(policy.kind);
		const statement = parseModelSigningStatement(payload);
		expect(() => checkRootDigest(statement)).not.toThrow();
		if (mode === "sigstore") {
			expect(signer.identity).toBe(IDENTITY);
			expect(signer.issuer).toBe(ISSUER);
			expect(signer.signedAt).toMatch(/^2025-/);
		} else {
			// The same P-384 key signs both keyed vectors and sits in the certificate.
			expect(signer.keyFingerprint).toBe("c1e49d63327f85c7e2971aefd30b5a0d1c6b9b5e1a892e7f5fba995adace816d");
		}
		if (mode === "certificate") expect(signer.certificateSubject).toBe("CN=intermediate-ca");
	});

	it("fails SIGNATURE_INVALID when a signature byte is flipped", () => {
		expect(codeOf(() => verifyDsseBundle(parse(tamper(bundleJson(name), "signature")), policy))).toBe(
			"SIGNATURE_INVALID",
		);
	});

	it("fails SIGNATURE_INVALID when a payload byte is changed", () => {
		expect(codeOf(() => verifyDsseBundle(parse(tamper(bundleJson(name), "payload")), policy))).toBe(
			"SIGNATURE_INVALID",
		);
	});

	it("fails BUNDLE_MALFORMED when the JSON is truncated", () => {
		const text = read(`${name}/model.sig`);
		expect(codeOf(() => parse(text.slice(0, Math.floor(text.length / 2))))).toBe("BUNDLE_MALFORMED");
	});

	it("fails BUNDLE_MEDIA_TYPE when the mediaType is unknown", () => {
		const json = {
			...bundleJson(name),
			mediaType: "application/vnd.dev.sigstore.bundle.v0.9+json",
		};
		expect(codeOf(() => parse(json))).toBe("BUNDLE_MEDIA_TYPE");
	});
});

describe("when a keyless vector is checked against the wrong signer", () => {
	const bundles = ["v1.0.0-sigstore", "v1.1.0-sigstore"].map((n) => parse(bundleJson(n)));
	const keyless = (identity: IdentityMatcher, issuer = ISSUER): TrustPolicy => ({
		kind: "keyless",
		identity,
		issuer,
	});

	it.each([
		["another identity", { exact: "someone@us.ibm.com" }],
		["a suffix of the identity", { exact: "tefanb@us.ibm.com" }],
		["a prefix of the identity", { exact: "stefanb@us.ibm.co" }],
		["a regexp matching only a prefix", { regexp: "stefanb@us\\.ibm" }],
		["a regexp whose first alternative matches a prefix", { regexp: "stefanb|nobody" }],
	] as const)("fails IDENTITY_MISMATCH for %s", (_, identity) => {
		for (const b of bundles) expect(codeOf(() => verifyDsseBundle(b, keyless(identity)))).toBe("IDENTITY_MISMATCH");
	});

	it("fails IDENTITY_MISMATCH for another issuer", () => {
		for (const b of bundles) {
			expect(codeOf(() => verifyDsseBundle(b, keyless({ exact: IDENTITY }, "https://accounts.google.com")))).toBe(
				"IDENTITY_MISMATCH",
			);
		}
	});

	it("accepts a regexp that matches the whole identity", () => {
		for (const b of bundles) {
			expect(verifyDsseBundle(b, keyless({ regexp: "[a-z]+@us\\.ibm\\.com" })).signer.identity).toBe(IDENTITY);
		}
	});

	it("refuses an identity regexp that does not compile as USAGE", () => {
		expect(codeOf(() => verifyDsseBundle(parse(bundleJson("v1.1.0-sigstore")), keyless({ regexp: "(" })))).toBe(
			"USAGE",
		);
	});

	it("fails CERTIFICATE_UNTRUSTED when the bundle carries a bare key", () => {
		expect(codeOf(() => verifyDsseBundle(parse(bundleJson("v1.1.0-elliptic-key")), KEYLESS))).toBe(
			"CERTIFICATE_UNTRUSTED",
		);
	});

	it("fails TLOG_INVALID when the Rekor entry's signed promise is altered", () => {
		const json = bundleJson("v1.0.0-sigstore") as {
			verificationMaterial: { tlogEntries: Json[] };
		};
		const entry = json.verificationMaterial.tlogEntries[0] as {
			inclusionPromise: { signedEntryTimestamp: string };
		};
		const set = Buffer.from(entry.inclusionPromise.signedEntryTimestamp, "base64");
		set[20] = (set[20] as number) ^ 1;
		entry.inclusionPromise.signedEntryTimestamp = set.toString("base64");
		expect(codeOf(() => verifyDsseBundle(parse(json as Json), KEYLESS))).toBe("TLOG_INVALID");
	});

	it("fails TLOG_INVALID when the Rekor entry is removed", () => {
		const json = bundleJson("v1.1.0-sigstore") as {
			verificationMaterial: { tlogEntries: Json[] };
		};
		json.verificationMaterial.tlogEntries = [];
		expect(codeOf(() => verifyDsseBundle(parse(json as Json), KEYLESS))).toBe("TLOG_INVALID");
	});

	it("fails TIMESTAMP_INVALID when no verified timestamp remains", () => {
		// v1.0.0 has no RFC 3161 timestamp: its only time is the Rekor entry's.
		const json = bundleJson("v1.0.0-sigstore") as {
			verificationMaterial: { tlogEntries: Json[] };
		};
		json.verificationMaterial.tlogEntries = [];
		expect(codeOf(() => verifyDsseBundle(parse(json as Json), KEYLESS))).toBe("TIMESTAMP_INVALID");
	});
});

describe("when a keyed vector is checked against another key", () => {
	const bundles = ["v1.0.0-elliptic-key", "v1.1.0-elliptic-key"].map((n) => parse(bundleJson(n)));

	it.each(["P-256", "P-384", "P-521"] as const)("fails SIGNATURE_INVALID for a fresh %s key", (curve) => {
		const pem = generateEcKeyPair(curve).publicKeyPem;
		for (const b of bundles)
			expect(codeOf(() => verifyDsseBundle(b, { kind: "public-key", pem }))).toBe("SIGNATURE_INVALID");
	});

	it("fails SIGNATURE_INVALID for a keyless bundle under the vectors' key", () => {
		expect(codeOf(() => verifyDsseBundle(parse(bundleJson("v1.1.0-sigstore")), PUBLIC_KEY))).toBe("SIGNATURE_INVALID");
	});

	it.each([
		[
			"an RSA key",
			generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey.export({
				type: "spki",
				format: "pem",
			}),
		],
		[
			"an Ed25519 key",
			generateKeyPairSync("ed25519").publicKey.export({
				type: "spki",
				format: "pem",
			}),
		],
		[
			"a secp256k1 key",
			generateKeyPairSync("ec", { namedCurve: "secp256k1" }).publicKey.export({
				type: "spki",
				format: "pem",
			}),
		],
		[
			"a private key",
			generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({
				type: "pkcs8",
				format: "pem",
			}),
		],
		["a certificate", read("keys/signing-key-cert.pem")],
		["garbage", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"],
		["an empty file", ""],
	])("refuses %s as KEY_INVALID", (_, pem) => {
		expect(
			codeOf(() =>
				verifyDsseBundle(parse(bundleJson("v1.1.0-elliptic-key")), {
					kind: "public-key",
					pem: String(pem),
				}),
			),
		).toBe("KEY_INVALID");
	});
});

describe("when a certificate vector is checked against another chain", () => {
	const bundles = ["v1.0.0-certificate", "v1.1.0-certificate"].map((n) => parse(bundleJson(n)));

	it("fails CERTIFICATE_UNTRUSTED for a chain from a different CA", async () => {
		const other = await createPrivateCa("other");
		for (const b of bundles) {
			expect(
				codeOf(() =>
					verifyDsseBundle(b, {
						kind: "certificate-chain",
						pem: other.chainPem,
					}),
				),
			).toBe("CERTIFICATE_UNTRUSTED");
		}
	});

	it("fails CERTIFICATE_UNTRUSTED when only the intermediate is given (no root to anchor the path)", () => {
		for (const b of bundles) {
			expect(
				codeOf(() =>
					verifyDsseBundle(b, {
						kind: "certificate-chain",
						pem: read("keys/int-ca-cert.pem"),
					}),
				),
			).toBe("CERTIFICATE_UNTRUSTED");
		}
	});

	it("verifies with the root alone, the intermediate coming from the bundle (as model_signing does)", () => {
		for (const b of bundles) {
			expect(verifyDsseBundle(b, { kind: "certificate-chain", pem: read("keys/ca-cert.pem") }).signer.kind).toBe(
				"certificate-chain",
			);
		}
	});

	it("fails CERTIFICATE_UNTRUSTED once the certificates have expired", () => {
		for (const b of bundles) {
			expect(codeOf(() => verifyDsseBundle(b, CHAIN, { now: new Date("2035-06-01T00:00:00Z") }))).toBe(
				"CERTIFICATE_UNTRUSTED",
			);
		}
	});

	it("fails CERTIFICATE_UNTRUSTED for a bundle with a bare key", () => {
		expect(codeOf(() => verifyDsseBundle(parse(bundleJson("v1.0.0-elliptic-key")), CHAIN))).toBe(
			"CERTIFICATE_UNTRUSTED",
		);
	});

	it.each([
		["no certificate", "just text"],
		["a key instead of a certificate", read("keys/signing-key-pub.pem")],
		["a corrupt certificate", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"],
	])("refuses a chain with %s as TRUST_ROOT_INVALID", (_, pem) => {
		expect(
			codeOf(() =>
				verifyDsseBundle(parse(bundleJson("v1.1.0-certificate")), {
					kind: "certificate-chain",
					pem,
				}),
			),
		).toBe("TRUST_ROOT_INVALID");
	});
});

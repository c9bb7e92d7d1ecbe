/**
 * Bundles ftguard's test helpers sign (keyed, keyless through a private mock
 * Sigstore, private CA): each verifies, and each trust check fails on its own.
 */

import { describe, expect, it } from "vitest";
import {
	loadTrustedRoot,
	parseBundle,
	publicGoodTrustedRootJSON,
	type TrustPolicy,
	verifyDsseBundle,
} from "../../../lib/core/integrity";
import { codeOf } from "../../helpers/errors";
import {
	createMockSigstore,
	createPrivateCa,
	generateEcKeyPair,
	type Json,
	makeModelSigningStatement,
	signStatementKeyed,
	signStatementKeyless,
	signStatementWithCertificate,
	tamper,
} from "../../helpers/sign";

const IDENTITY = "https://github.com/acme/models/.github/workflows/train.yml@refs/heads/main";
const ISSUER = "https://token.actions.githubusercontent.com";

const statement = makeModelSigningStatement({
	modelName: "tiny-model",
	resources: [
		{ name: "config.json", digest: "1".repeat(64) },
		{ name: "weights/model.safetensors", digest: "2".repeat(64) },
	],
});

const parse = (json: Json) => parseBundle(JSON.stringify(json), "test bundle");

const keyless = (trustedRoot: Json, identity = IDENTITY, issuer = ISSUER): TrustPolicy => ({
	kind: "keyless",
	identity: { exact: identity },
	issuer,
	trustedRoot,
});

describe("when a model is signed keyless by a private Sigstore", () => {
	it("verifies with that instance's trusted root and reports who and when", async () => {
		const { bundle, trustedRoot } = await signStatementKeyless(statement, {
			identity: IDENTITY,
			issuer: ISSUER,
		});
		const { signer, payload } = verifyDsseBundle(parse(bundle), keyless(trustedRoot));
		expect(JSON.parse(payload.toString())).toEqual(statement);
		expect(signer).toMatchObject({
			kind: "keyless",
			identity: IDENTITY,
			issuer: ISSUER,
		});
		// The mock signs on a clock a few seconds ahead (see createMockSigstore).
		expect(Math.abs(Date.parse(signer.signedAt as string) - Date.now())).toBeLessThan(60_000);
	});

	it("verifies with only the Rekor entry as timestamp", async () => {
		const { bundle, trustedRoot } = await signStatementKeyless(statement, {
			identity: IDENTITY,
			issuer: ISSUER,
			tsa: false,
		});
		expect(verifyDsseBundle(parse(bundle), keyless(trustedRoot)).signer.identity).toBe(IDENTITY);
	});

	it("fails IDENTITY_MISMATCH for a SAN that only extends the expected identity", async () => {
		const { bundle, trustedRoot } = await signStatementKeyless(statement, {
			identity: `${IDENTITY}.evil`,
			issuer: ISSUER,
		});
		expect(codeOf(() => verifyDsseBundle(parse(bundle), keyless(trustedRoot)))).toBe("IDENTITY_MISMATCH");
	});

	it("fails IDENTITY_MISMATCH for another issuer", async () => {
		const { bundle, trustedRoot } = await signStatementKeyless(statement, {
			identity: IDENTITY,
			issuer: "https://accounts.google.com",
		});
		expect(codeOf(() => verifyDsseBundle(parse(bundle), keyless(trustedRoot)))).toBe("IDENTITY_MISMATCH");
	});

	it("fails CERTIFICATE_UNTRUSTED under the public-good root (no network is consulted)", async () => {
		const { bundle } = await signStatementKeyless(statement, {
			identity: IDENTITY,
			issuer: ISSUER,
			tsa: false,
		});
		const policy: TrustPolicy = {
			kind: "keyless",
			identity: { exact: IDENTITY },
			issuer: ISSUER,
		};
		expect(codeOf(() => verifyDsseBundle(parse(bundle), policy))).toBe("CERTIFICATE_UNTRUSTED");
	});

	it("fails TIMESTAMP_INVALID when the TSA is not the trusted one", async () => {
		const other = await createMockSigstore();
		const { bundle, trustedRoot } = await signStatementKeyless(statement, {
			identity: IDENTITY,
			issuer: ISSUER,
		});
		const mixed = {
			...trustedRoot,
			timestampAuthorities: other.trustedRoot.timestampAuthorities,
		};
		expect(codeOf(() => verifyDsseBundle(parse(bundle), keyless(mixed)))).toBe("TIMESTAMP_INVALID");
	});

	it("fails TLOG_INVALID when the Rekor log is not the trusted one", async () => {
		const other = await createMockSigstore();
		const { bundle, trustedRoot } = await signStatementKeyless(statement, {
			identity: IDENTITY,
			issuer: ISSUER,
		});
		const mixed = { ...trustedRoot, tlogs: other.trustedRoot.tlogs };
		expect(codeOf(() => verifyDsseBundle(parse(bundle), keyless(mixed)))).toBe("TLOG_INVALID");
	});

	it("fails CERTIFICATE_UNTRUSTED when the certificate has no SCT from a trusted CT log", async () => {
		const other = await createMockSigstore();
		const { bundle, trustedRoot } = await signStatementKeyless(statement, {
			identity: IDENTITY,
			issuer: ISSUER,
		});
		const mixed = { ...trustedRoot, ctlogs: other.trustedRoot.ctlogs };
		expect(codeOf(() => verifyDsseBundle(parse(bundle), keyless(mixed)))).toBe("CERTIFICATE_UNTRUSTED");
	});

	it("fails TLOG_INVALID when the bundle has no Rekor entry", async () => {
		const { bundle, trustedRoot } = await signStatementKeyless(statement, {
			identity: IDENTITY,
			issuer: ISSUER,
			tlog: false,
		});
		expect(codeOf(() => verifyDsseBundle(parse(bundle), keyless(trustedRoot)))).toBe("TLOG_INVALID");
	});

	it("fails TLOG_INVALID when the Rekor entry belongs to another signature", async () => {
		const a = await signStatementKeyless(statement, {
			identity: IDENTITY,
			issuer: ISSUER,
			tsa: false,
		});
		const b = await signStatementKeyless(statement, {
			identity: IDENTITY,
			issuer: ISSUER,
			tsa: false,
		});
		const spliced = structuredClone(a.bundle) as {
			verificationMaterial: { tlogEntries: unknown };
		};
		spliced.verificationMaterial.tlogEntries = (
			b.bundle as { verificationMaterial: { tlogEntries: unknown } }
		).verificationMaterial.tlogEntries;
		expect(codeOf(() => verifyDsseBundle(parse(spliced as Json), keyless(a.trustedRoot)))).toBe("TLOG_INVALID");
	});

	it("fails TIMESTAMP_INVALID with neither a Rekor entry nor a TSA timestamp", async () => {
		const { bundle, trustedRoot } = await signStatementKeyless(statement, {
			identity: IDENTITY,
			issuer: ISSUER,
			tlog: false,
			tsa: false,
		});
		expect(codeOf(() => verifyDsseBundle(parse(bundle), keyless(trustedRoot)))).toBe("TIMESTAMP_INVALID");
	});

	it.each(["signature", "payload"] as const)("fails SIGNATURE_INVALID when the %s is altered", async (what) => {
		const { bundle, trustedRoot } = await signStatementKeyless(statement, {
			identity: IDENTITY,
			issuer: ISSUER,
		});
		expect(codeOf(() => verifyDsseBundle(parse(tamper(bundle, what)), keyless(trustedRoot)))).toBe("SIGNATURE_INVALID");
	});

	it("fails PAYLOAD_INVALID for a signed payload that is not in-toto", async () => {
		const { bundle, trustedRoot } = await signStatementKeyless(statement, {
			identity: IDENTITY,
			issuer: ISSUER,
			payloadType: "text/plain",
		});
		expect(codeOf(() => verifyDsseBundle(parse(bundle), keyless(trustedRoot)))).toBe("PAYLOAD_INVALID");
	});
});

describe("when a model is signed with an EC key", () => {
	it.each(["P-256", "P-384", "P-521"] as const)("verifies a %s signature made with the curve's hash", (curve) => {
		const { bundle, keyPair } = signStatementKeyed(statement, { curve });
		const { signer } = verifyDsseBundle(parse(bundle), {
			kind: "public-key",
			pem: keyPair.publicKeyPem,
		});
		expect(signer.kind).toBe("public-key");
		expect(signer.keyFingerprint).toMatch(/^[0-9a-f]{64}$/);
	});

	it("ignores the bundle's key hint, whatever it says", () => {
		const { bundle, keyPair } = signStatementKeyed(statement, {
			keyMaterial: "rawBytes",
		});
		const other = generateEcKeyPair().publicKeyPem;
		(bundle.verificationMaterial as Json).publicKey = {
			rawBytes: Buffer.from(other).toString("base64"),
		};
		expect(
			verifyDsseBundle(parse(bundle), {
				kind: "public-key",
				pem: keyPair.publicKeyPem,
			}).signer.kind,
		).toBe("public-key");
		expect(codeOf(() => verifyDsseBundle(parse(bundle), { kind: "public-key", pem: other }))).toBe("SIGNATURE_INVALID");
	});

	it("fails PAYLOAD_INVALID for a validly signed payload of another type", () => {
		const { bundle, keyPair } = signStatementKeyed(statement, {
			payloadType: "application/json",
		});
		expect(
			codeOf(() =>
				verifyDsseBundle(parse(bundle), {
					kind: "public-key",
					pem: keyPair.publicKeyPem,
				}),
			),
		).toBe("PAYLOAD_INVALID");
	});
});

describe("when a model is signed under a private CA", () => {
	it("verifies against the CA chain and names the certificate", async () => {
		const ca = await createPrivateCa();
		const { bundle, chainPem } = await signStatementWithCertificate(statement, ca);
		const { signer } = verifyDsseBundle(parse(bundle), {
			kind: "certificate-chain",
			pem: chainPem,
		});
		expect(signer).toMatchObject({
			kind: "certificate-chain",
			certificateSubject: "CN=ftguard test signer",
		});
	});

	it("fails CERTIFICATE_UNTRUSTED for a certificate not allowed to sign", async () => {
		const ca = await createPrivateCa();
		const { bundle, chainPem } = await signStatementWithCertificate(statement, ca, {
			digitalSignature: false,
			codeSigning: false,
		});
		expect(
			codeOf(() =>
				verifyDsseBundle(parse(bundle), {
					kind: "certificate-chain",
					pem: chainPem,
				}),
			),
		).toBe("CERTIFICATE_UNTRUSTED");
	});

	it("accepts a code-signing certificate without the digitalSignature key usage, as model_signing does", async () => {
		const ca = await createPrivateCa();
		const { bundle, chainPem } = await signStatementWithCertificate(statement, ca, { digitalSignature: false });
		expect(
			verifyDsseBundle(parse(bundle), {
				kind: "certificate-chain",
				pem: chainPem,
			}).signer.kind,
		).toBe("certificate-chain");
	});

	it("fails CERTIFICATE_UNTRUSTED for an expired or not yet valid leaf", async () => {
		const ca = await createPrivateCa();
		const hour = 3_600_000;
		const expired = await signStatementWithCertificate(statement, ca, {
			notBefore: new Date(Date.now() - 2 * hour),
			notAfter: new Date(Date.now() - hour),
		});
		const future = await signStatementWithCertificate(statement, ca, {
			notBefore: new Date(Date.now() + hour),
			notAfter: new Date(Date.now() + 2 * hour),
		});
		for (const { bundle, chainPem } of [expired, future]) {
			expect(
				codeOf(() =>
					verifyDsseBundle(parse(bundle), {
						kind: "certificate-chain",
						pem: chainPem,
					}),
				),
			).toBe("CERTIFICATE_UNTRUSTED");
		}
	});

	it("builds the path through the intermediate the bundle carries when only the root is trusted", async () => {
		const ca = await createPrivateCa();
		const { bundle } = await signStatementWithCertificate(statement, ca);
		expect(verifyDsseBundle(parse(bundle), { kind: "certificate-chain", pem: ca.rootPem }).signer.kind).toBe(
			"certificate-chain",
		);
	});

	it("never treats an intermediate from the bundle as a trust anchor", async () => {
		const ca = await createPrivateCa();
		const other = await createPrivateCa("other");
		const { bundle } = await signStatementWithCertificate(statement, ca);
		// Trusting another root: the bundle's intermediate (issued by `ca`) cannot stand in for it.
		expect(codeOf(() => verifyDsseBundle(parse(bundle), { kind: "certificate-chain", pem: other.rootPem }))).toBe(
			"CERTIFICATE_UNTRUSTED",
		);
		// A chain made up entirely by an attacker, their own root shipped in the bundle, is refused.
		const selfMade = await createPrivateCa("attacker");
		const forged = await signStatementWithCertificate(statement, selfMade);
		const chain = (
			forged.bundle.verificationMaterial as { x509CertificateChain: { certificates: { rawBytes: string }[] } }
		).x509CertificateChain.certificates;
		chain.push({
			rawBytes: Buffer.from(selfMade.rootPem.replace(/-----[^-]+-----|\s/g, ""), "base64").toString("base64"),
		});
		expect(codeOf(() => verifyDsseBundle(parse(forged.bundle), { kind: "certificate-chain", pem: ca.rootPem }))).toBe(
			"CERTIFICATE_UNTRUSTED",
		);
	});

	it("fails SIGNATURE_INVALID when the signature is altered", async () => {
		const ca = await createPrivateCa();
		const { bundle, chainPem } = await signStatementWithCertificate(statement, ca);
		expect(
			codeOf(() =>
				verifyDsseBundle(parse(tamper(bundle, "signature")), {
					kind: "certificate-chain",
					pem: chainPem,
				}),
			),
		).toBe("SIGNATURE_INVALID");
	});
});

describe("trusted roots", () => {
	it("loads the public-good root shipped in @sigstore/tuf", () => {
		const { root } = loadTrustedRoot();
		expect(root.certificateAuthorities.length).toBeGreaterThan(0);
		expect(root.tlogs.length).toBeGreaterThan(0);
		expect(root.ctlogs.length).toBeGreaterThan(0);
		expect(loadTrustedRoot()).toBe(loadTrustedRoot());
	});

	it.each([
		["not an object", "trusted_root.json"],
		["an object without mediaType", {}],
		["a root without CT logs", { ...(publicGoodTrustedRootJSON() as Json), ctlogs: [] }],
		["a root without transparency logs", { ...(publicGoodTrustedRootJSON() as Json), tlogs: [] }],
		[
			"a root with a corrupt certificate",
			{
				...(publicGoodTrustedRootJSON() as Json),
				certificateAuthorities: [{ certChain: { certificates: [{ rawBytes: "AAAA" }] } }],
			},
		],
	])("refuses %s as TRUST_ROOT_INVALID", async (_, root) => {
		const { bundle } = await signStatementKeyless(statement, {
			identity: IDENTITY,
			issuer: ISSUER,
		});
		expect(codeOf(() => loadTrustedRoot(root))).toBe("TRUST_ROOT_INVALID");
		expect(codeOf(() => verifyDsseBundle(parse(bundle), keyless(root as Json)))).toBe("TRUST_ROOT_INVALID");
	});
});

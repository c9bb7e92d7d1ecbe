/**
 * Signatures made by model_signing before 1.0 (v0.2), accepted exactly where the
 * reference verifier (model_signing 1.0.1+, `_signing/sign_ec_key.py` and
 * `sign_certificate.py`) accepts them: after the DSSE encoding fails, key mode
 * retries over v0.2's encoding with the curve's digest, certificate mode with
 * SHA-256 whatever the curve, keyless not at all. The bundles come from the test
 * helpers, laid out as v0.2 wrote them.
 */
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
	parseBundle,
	parseModelSigningStatement,
	type TrustPolicy,
	verifyBlobBundle,
	verifyDsseBundle,
} from "../../../lib/core/integrity";
import { legacyPreAuthEncoding, pythonBytesRepr } from "../../../lib/core/integrity/legacy-encoding";
import { codeOf } from "../../helpers/errors";
import {
	type Curve,
	createPrivateCa,
	generateEcKeyPair,
	type Json,
	legacyPae,
	makeLegacyStatement,
	makeModelSigningStatement,
	type PrivateCa,
	pythonRepr,
	signStatementKeyed,
	signStatementKeyless,
	signStatementV02Keyed,
	signStatementV02WithCertificate,
	signStatementWithCertificate,
	tamper,
} from "../../helpers/sign";

const parse = (json: Json) => parseBundle(JSON.stringify(json), "test bundle");
const keyPolicy = (pem: string): TrustPolicy => ({ kind: "public-key", pem });
const chainPolicy = (ca: PrivateCa): TrustPolicy => ({ kind: "certificate-chain", pem: ca.chainPem });

const resources = [
	{ name: "config.json", digest: "1".repeat(64) },
	{ name: "weights/model.safetensors", digest: "2".repeat(64) },
];
const legacyStatement = makeLegacyStatement(resources);
const v1Statement = makeModelSigningStatement({ modelName: "tiny-model", resources });

describe("model_signing v0.2's pre-authentication encoding", () => {
	// Made by CPython 3: p = bytes.fromhex(HEX);
	// f"DSSEV1 28 application/vnd.in-toto+json {len(p)} {p}".encode()
	const HEX = "7b0a2020226e616d65223a2022636166c3a95c7827090d007f220a7d";
	const PYTHON_PAE = String.raw`DSSEV1 28 application/vnd.in-toto+json 28 b'{\n  "name": "caf\xc3\xa9\\x\'\t\r\x00\x7f"\n}'`;
	const PYTHON_PAE_SHA256 = "39ec531aacbec654f5bd5276ccf92b728e28a4c3fbeea6ee1500af3be7da4d3b";

	it("is CPython's bytes, byte for byte (lib and test helper alike)", () => {
		const payload = Buffer.from(HEX, "hex");
		for (const encoded of [legacyPreAuthEncoding(payload), legacyPae(payload)]) {
			expect(encoded.toString("latin1")).toBe(PYTHON_PAE);
			expect(createHash("sha256").update(encoded).digest("hex")).toBe(PYTHON_PAE_SHA256);
		}
	});

	it("quotes like Python's repr: double quotes when the bytes hold ' and no \"", () => {
		const cases: [string, string][] = [
			["it's", `b"it's"`],
			[`it's "x"`, String.raw`b'it\'s "x"'`],
			["", "b''"],
			["\\", String.raw`b'\\'`],
		];
		for (const [input, repr] of cases) {
			expect(pythonBytesRepr(Buffer.from(input)).toString("latin1")).toBe(repr);
			expect(pythonRepr(Buffer.from(input))).toBe(repr);
		}
	});

	it("never equals the DSSE encoding of the same payload", () => {
		const payload = Buffer.from(JSON.stringify(legacyStatement, null, 2));
		expect(legacyPreAuthEncoding(payload).subarray(0, 7).toString()).toBe("DSSEV1 ");
	});
});

describe("key mode: the retry uses the curve's digest, as the reference does", () => {
	for (const curve of ["P-256", "P-384", "P-521"] as Curve[]) {
		it(`verifies a ${curve} v0.2-layout signature over the old encoding and marks it`, () => {
			const { bundle, keyPair } = signStatementV02Keyed(legacyStatement, { curve, hash: "curve" });
			const { payload, signer } = verifyDsseBundle(parse(bundle), keyPolicy(keyPair.publicKeyPem));
			expect(signer).toMatchObject({ kind: "public-key", legacyEncoding: true });
			const statement = parseModelSigningStatement(payload);
			expect(statement).toMatchObject({ legacy: true, resources });
		});
	}

	it("refuses a P-384 signature made with SHA-256 (what v0.2 wrote; the reference retries with SHA-384)", () => {
		const { bundle, keyPair } = signStatementV02Keyed(legacyStatement, { curve: "P-384", hash: "sha256" });
		expect(codeOf(() => verifyDsseBundle(parse(bundle), keyPolicy(keyPair.publicKeyPem)))).toBe("SIGNATURE_INVALID");
	});

	it("refuses one changed byte of the payload or the signature, and another key", () => {
		const { bundle, keyPair } = signStatementV02Keyed(legacyStatement, { curve: "P-256" });
		const pem = keyPair.publicKeyPem;
		expect(verifyDsseBundle(parse(bundle), keyPolicy(pem)).signer.legacyEncoding).toBe(true);
		expect(codeOf(() => verifyDsseBundle(parse(tamper(bundle, "payload")), keyPolicy(pem)))).toBe("SIGNATURE_INVALID");
		expect(codeOf(() => verifyDsseBundle(parse(tamper(bundle, "signature")), keyPolicy(pem)))).toBe(
			"SIGNATURE_INVALID",
		);
		const other = generateEcKeyPair("P-256").publicKeyPem;
		expect(codeOf(() => verifyDsseBundle(parse(bundle), keyPolicy(other)))).toBe("SIGNATURE_INVALID");
	});

	it("does not mark a signature over the DSSE encoding (v0.3 and later)", () => {
		const { bundle, keyPair } = signStatementV02Keyed(legacyStatement, {
			curve: "P-384",
			encoding: "dsse",
			hash: "curve",
		});
		const { signer } = verifyDsseBundle(parse(bundle), keyPolicy(keyPair.publicKeyPem));
		expect(signer.legacyEncoding).toBeUndefined();
		const current = signStatementKeyed(v1Statement, { curve: "P-384" });
		expect(verifyDsseBundle(parse(current.bundle), keyPolicy(current.keyPair.publicKeyPem)).signer.legacyEncoding).toBe(
			undefined,
		);
	});

	it("accepts the old encoding over a v1.0 statement, as the reference does (its retry ignores the predicate)", () => {
		const { bundle, keyPair } = signStatementV02Keyed(v1Statement, { curve: "P-256" });
		const { payload, signer } = verifyDsseBundle(parse(bundle), keyPolicy(keyPair.publicKeyPem));
		expect(signer.legacyEncoding).toBe(true);
		expect(parseModelSigningStatement(payload).legacy).toBe(false);
	});

	it("retries only for the in-toto payload type (the reference refuses any other after its retry)", () => {
		const { bundle, keyPair } = signStatementV02Keyed(legacyStatement, { curve: "P-256" });
		const json = structuredClone(bundle) as { dsseEnvelope: { payloadType: string } };
		json.dsseEnvelope.payloadType = "application/json";
		expect(codeOf(() => verifyDsseBundle(parse(json as Json), keyPolicy(keyPair.publicKeyPem)))).toBe(
			"SIGNATURE_INVALID",
		);
	});
});

describe("certificate mode: the retry uses SHA-256 whatever the curve, as the reference does", async () => {
	const ca = await createPrivateCa("ftguard legacy");

	for (const curve of ["P-256", "P-384", "P-521"] as Curve[]) {
		it(`verifies a ${curve} leaf's v0.2 signature (old encoding, SHA-256) and marks it`, async () => {
			const { bundle } = await signStatementV02WithCertificate(legacyStatement, ca, { curve });
			const { payload, signer } = verifyDsseBundle(parse(bundle), chainPolicy(ca));
			expect(signer).toMatchObject({ kind: "certificate-chain", legacyEncoding: true });
			expect(parseModelSigningStatement(payload).legacy).toBe(true);
		});
	}

	it("refuses the old encoding signed with the curve's digest (P-384 with SHA-384)", async () => {
		const { bundle } = await signStatementV02WithCertificate(
			legacyStatement,
			ca,
			{ curve: "P-384" },
			{ hash: "curve" },
		);
		expect(codeOf(() => verifyDsseBundle(parse(bundle), chainPolicy(ca)))).toBe("SIGNATURE_INVALID");
	});

	it("refuses the DSSE encoding signed with SHA-256 on a P-384 leaf: SHA-256 is for the old encoding only", async () => {
		const bad = await signStatementV02WithCertificate(v1Statement, ca, { curve: "P-384" }, { encoding: "dsse" });
		expect(codeOf(() => verifyDsseBundle(parse(bad.bundle), chainPolicy(ca)))).toBe("SIGNATURE_INVALID");
		const good = await signStatementWithCertificate(v1Statement, ca, { curve: "P-384" });
		expect(verifyDsseBundle(parse(good.bundle), chainPolicy(ca)).signer.legacyEncoding).toBeUndefined();
	});

	it("refuses one changed byte of the payload or the signature", async () => {
		const { bundle } = await signStatementV02WithCertificate(legacyStatement, ca, { curve: "P-384" });
		expect(codeOf(() => verifyDsseBundle(parse(tamper(bundle, "payload")), chainPolicy(ca)))).toBe("SIGNATURE_INVALID");
		expect(codeOf(() => verifyDsseBundle(parse(tamper(bundle, "signature")), chainPolicy(ca)))).toBe(
			"SIGNATURE_INVALID",
		);
	});

	it("still checks the chain and the key usage", async () => {
		const other = await createPrivateCa("someone else");
		const { bundle } = await signStatementV02WithCertificate(legacyStatement, other, { curve: "P-384" });
		expect(codeOf(() => verifyDsseBundle(parse(bundle), chainPolicy(ca)))).toBe("CERTIFICATE_UNTRUSTED");
		const noUsage = await signStatementV02WithCertificate(legacyStatement, ca, {
			digitalSignature: false,
			codeSigning: false,
		});
		expect(codeOf(() => verifyDsseBundle(parse(noUsage.bundle), chainPolicy(ca)))).toBe("CERTIFICATE_UNTRUSTED");
	});

	it("accepts the old encoding over a v1.0 statement, as the reference does", async () => {
		const { bundle } = await signStatementV02WithCertificate(v1Statement, ca, { curve: "P-384" });
		expect(verifyDsseBundle(parse(bundle), chainPolicy(ca)).signer.legacyEncoding).toBe(true);
	});
});

describe("where the reference has no retry, neither has ftguard", () => {
	it("keyless: a Fulcio-certified signature over the old encoding is refused", async () => {
		const identity = "https://github.com/acme/models/.github/workflows/train.yml@refs/heads/main";
		const issuer = "https://token.actions.githubusercontent.com";
		const { bundle, trustedRoot } = await signStatementKeyless(legacyStatement, {
			identity,
			issuer,
			encoding: "legacy",
		});
		const policy: TrustPolicy = { kind: "keyless", identity: { exact: identity }, issuer, trustedRoot };
		expect(codeOf(() => verifyDsseBundle(parse(bundle), policy))).toBe("SIGNATURE_INVALID");
	});

	it("cosign attest-blob bundles (verifyBlobBundle): the old encoding is refused", async () => {
		const artefact = Buffer.from("weights");
		const digest = createHash("sha256").update(artefact).digest("hex");
		const attestation: Json = {
			_type: "https://in-toto.io/Statement/v1",
			subject: [{ name: "weights.bin", digest: { sha256: digest } }],
			predicateType: "https://example.com/predicate",
			predicate: {},
		};
		const old = signStatementV02Keyed(attestation, { curve: "P-256" });
		await expect(
			verifyBlobBundle(parse(old.bundle), keyPolicy(old.keyPair.publicKeyPem), artefact),
		).rejects.toMatchObject({ code: "SIGNATURE_INVALID" });
		const current = signStatementKeyed(attestation);
		const ok = await verifyBlobBundle(parse(current.bundle), keyPolicy(current.keyPair.publicKeyPem), artefact);
		expect(ok.digest).toBe(digest);
	});
});

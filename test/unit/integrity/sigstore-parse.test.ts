/** Reading a bundle: malformed input is refused before any verification starts. */

import { describe, expect, it } from "vitest";
import { MAX_BUNDLE_BYTES, parseBundle, verifyDsseBundle } from "../../../lib/core/integrity";
import { codeOf } from "../../helpers/errors";
import {
	createPrivateCa,
	type Json,
	makeModelSigningStatement,
	signBlobKeyed,
	signStatementKeyed,
	signStatementKeyless,
	signStatementWithCertificate,
} from "../../helpers/sign";

const statement = makeModelSigningStatement({
	modelName: "m",
	resources: [{ name: "a", digest: "1".repeat(64) }],
});
const keyed = signStatementKeyed(statement);
const text = (json: unknown) => JSON.stringify(json);

/** `keyed.bundle` with `edit` applied to a deep copy. */
function edited(edit: (b: Json & { verificationMaterial: Json; dsseEnvelope: Json }) => void): string {
	const b = structuredClone(keyed.bundle) as Json & {
		verificationMaterial: Json;
		dsseEnvelope: Json;
	};
	edit(b);
	return text(b);
}

describe("when the bundle is well formed", () => {
	it.each([
		"application/vnd.dev.sigstore.bundle.v0.3+json",
		"application/vnd.dev.sigstore.bundle+json;version=0.3",
		"application/vnd.dev.sigstore.bundle+json;version=0.2",
	])("reads mediaType %s", (mediaType) => {
		const bundle = parseBundle(text({ ...keyed.bundle, mediaType }), "model.sig");
		expect(bundle.content.$case).toBe("dsseEnvelope");
	});

	it("reads bytes as well as text", () => {
		expect(parseBundle(Buffer.from(text(keyed.bundle)), "model.sig").mediaType).toBe(keyed.bundle.mediaType);
	});

	it("accepts model_signing's x509CertificateChain in a v0.3 bundle", async () => {
		const { bundle } = await signStatementWithCertificate(statement, await createPrivateCa());
		expect(parseBundle(text(bundle), "model.sig").verificationMaterial.content.$case).toBe("x509CertificateChain");
	});
});

describe("when the bundle is malformed", () => {
	it.each<[string, string | Buffer, string]>([
		["empty input", "", "BUNDLE_MALFORMED"],
		["truncated JSON", text(keyed.bundle).slice(0, 40), "BUNDLE_MALFORMED"],
		["bytes that are not UTF-8", Buffer.from([0x7b, 0xfe, 0x7d]), "BUNDLE_MALFORMED"],
		["a JSON array", "[]", "BUNDLE_MALFORMED"],
		["no mediaType", edited((b) => delete (b as Json).mediaType), "BUNDLE_MALFORMED"],
		["an unknown mediaType", edited((b) => (b.mediaType = "application/json")), "BUNDLE_MEDIA_TYPE"],
		[
			"a future bundle version",
			edited((b) => (b.mediaType = "application/vnd.dev.sigstore.bundle.v0.4+json")),
			"BUNDLE_MEDIA_TYPE",
		],
		["no verificationMaterial", edited((b) => delete (b as Json).verificationMaterial), "BUNDLE_MALFORMED"],
		["no content", edited((b) => delete (b as Json).dsseEnvelope), "BUNDLE_MALFORMED"],
		[
			"both a DSSE envelope and a message signature",
			edited((b) => (b.messageSignature = (signBlobKeyed(Buffer.from("x")).bundle as Json).messageSignature)),
			"BUNDLE_MALFORMED",
		],
		[
			"two kinds of verification material",
			edited((b) => (b.verificationMaterial.certificate = { rawBytes: "AAAA" })),
			"BUNDLE_MALFORMED",
		],
		["a payload that is a number", edited((b) => (b.dsseEnvelope.payload = 42)), "BUNDLE_MALFORMED"],
		["no DSSE signature", edited((b) => (b.dsseEnvelope.signatures = [])), "BUNDLE_MALFORMED"],
		[
			"two DSSE signatures",
			edited((b) => (b.dsseEnvelope.signatures = [{ sig: "AAAA" }, { sig: "AAAA" }])),
			"BUNDLE_MALFORMED",
		],
		["an empty payload", edited((b) => (b.dsseEnvelope.payload = "")), "BUNDLE_MALFORMED"],
		[
			"a certificate that does not parse",
			edited(
				(b) =>
					(b.verificationMaterial = {
						certificate: { rawBytes: "MIIBAAAA" },
						tlogEntries: [],
					}),
			),
			"BUNDLE_MALFORMED",
		],
	])("refuses %s as %s", (_, input, code) => {
		expect(codeOf(() => parseBundle(input, "model.sig"))).toBe(code);
	});

	it("refuses a corrupt RFC 3161 timestamp as BUNDLE_MALFORMED", async () => {
		const { bundle } = await signStatementKeyless(statement, {
			identity: "a@b",
			issuer: "https://i",
		});
		const b = structuredClone(bundle) as {
			verificationMaterial: { timestampVerificationData: Json };
		};
		b.verificationMaterial.timestampVerificationData = {
			rfc3161Timestamps: [{ signedTimestamp: "MIIBAAAA" }],
		};
		expect(codeOf(() => parseBundle(text(b), "model.sig"))).toBe("BUNDLE_MALFORMED");
	});

	it("refuses input larger than MAX_BUNDLE_BYTES without parsing it", () => {
		expect(codeOf(() => parseBundle(Buffer.alloc(MAX_BUNDLE_BYTES + 1, 0x20), "model.sig"))).toBe("BUNDLE_MALFORMED");
	});
});

describe("when a bundle of the wrong kind is verified as a model signature", () => {
	it("refuses a message signature (sign-blob) as PAYLOAD_INVALID", () => {
		const { bundle, keyPair } = signBlobKeyed(Buffer.from("weights"));
		const parsed = parseBundle(text(bundle), "model.sig");
		expect(() =>
			verifyDsseBundle(parsed, {
				kind: "public-key",
				pem: keyPair.publicKeyPem,
			}),
		).toThrow(expect.objectContaining({ code: "PAYLOAD_INVALID" }));
	});
});

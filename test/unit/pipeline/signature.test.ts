/** The signature state's outcome (lib/core/pipeline/signature.ts): every failure a result, never a throw. */
import { describe, expect, it } from "vitest";
import { verifyManifestSignature } from "../../../lib/core/pipeline/signature";
import {
	generateEcKeyPair,
	makeModelSigningStatement,
	referenceRootDigest,
	signStatementKeyed,
} from "../../helpers/sign";

const key = generateEcKeyPair("P-256");
const policies = [{ kind: "public-key" as const, pem: key.publicKeyPem }];
const resources = [{ name: "w.bin", algorithm: "sha256" as const, digest: "a".repeat(64) }];
const manifest = { resources, rootDigest: `sha256:${referenceRootDigest(resources)}` };
const bundle = Buffer.from(
	JSON.stringify(signStatementKeyed(makeModelSigningStatement({ modelName: "m", resources }), { keyPair: key }).bundle),
);

describe("verifyManifestSignature", () => {
	it("verifies and names the signer by its key", async () => {
		const r = await verifyManifestSignature(bundle, "s3://b/m/model.sig", policies, manifest);
		expect(r).toEqual({ verified: true, identity: expect.stringMatching(/^key sha256:[0-9a-f]{64}$/) });
	});

	it("is NOT_FOUND without the marker, and USAGE without trusted signers", async () => {
		expect(await verifyManifestSignature(undefined, "s3://b/m/model.sig", policies, manifest)).toEqual({
			verified: false,
			code: "NOT_FOUND",
			reason: "the marker is not among the marked objects",
		});
		expect(await verifyManifestSignature(bundle, "s3://b/m/model.sig", [], manifest)).toEqual({
			verified: false,
			code: "USAGE",
			reason: "the policy lists no trusted signers",
		});
	});

	it("names no signer when the signature fails, and the signer when the content does", async () => {
		const stranger = [{ kind: "public-key" as const, pem: generateEcKeyPair("P-256").publicKeyPem }];
		const bad = await verifyManifestSignature(bundle, "s3://b/m/model.sig", stranger, manifest);
		expect(bad.verified).toBe(false);
		expect(bad).not.toHaveProperty("identity");
		const changed = [{ ...resources[0], digest: "b".repeat(64) }] as typeof resources;
		const r = await verifyManifestSignature(bundle, "s3://b/m/model.sig", policies, {
			resources: changed,
			rootDigest: `sha256:${referenceRootDigest(changed)}`,
		});
		expect(Object.keys(r)).toEqual(["verified", "code", "reason", "identity"]);
		expect(r).toMatchObject({ verified: false, code: "DIGEST_MISMATCH", identity: expect.stringMatching(/^key /) });
	});

	it("records a hashing-method mismatch with the signer first, as the state always has", async () => {
		const r = await verifyManifestSignature(bundle, "s3://b/m/model.sig", policies, {
			...manifest,
			serialization: { method: "shards", shard_size: 10 },
		});
		expect(Object.keys(r)).toEqual(["verified", "identity", "code", "reason"]);
		expect(r).toMatchObject({
			code: "MANIFEST_MISMATCH",
			reason: "signed as files, but the artefact was hashed as shards of 10 bytes",
		});
	});
});

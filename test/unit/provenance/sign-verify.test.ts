import { createPublicKey, verify as cryptoVerify } from "node:crypto";
import { appendFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { localKeySigner } from "../../../lib/core/integrity/sign-signer";
import { FILES_PLAN } from "../../../lib/core/pipeline/manifest";
import { artefactRootOnDisk } from "../../../lib/core/provenance/artefact";
import { signProvenance } from "../../../lib/core/provenance/sign";
import { policyDigest, provenanceStatement } from "../../../lib/core/provenance/statement";
import {
	checkArtefactRoot,
	readProvenanceUnverified,
	verifyProvenanceBundle,
} from "../../../lib/core/provenance/verify";
import { artefactDir, fullRecord, p256, rootOf } from "../../helpers/provenance";

const POLICY = { signers: [] };

async function signed(dir: string, key = p256()) {
	const statement = provenanceStatement(fullRecord(rootOf(dir)), { policyDigest: policyDigest(POLICY) });
	return { key, ...(await signProvenance(statement, localKeySigner(key.privateKey))) };
}

type Bundle = {
	mediaType: string;
	verificationMaterial: { publicKey: { hint: string }; tlogEntries: unknown[] };
	dsseEnvelope: { payload: string; payloadType: string; signatures: { sig: string; keyid: string }[] };
};
const parse = (b: Buffer) => JSON.parse(b.toString()) as Bundle;
const bytes = (b: Bundle) => Buffer.from(JSON.stringify(b));

describe("provenance: sign → verify", () => {
	it("writes a v0.3 keyed DSSE bundle, as `ftguard sign --private-key` does", async () => {
		const dir = artefactDir();
		const { bundle, payload, key } = await signed(dir);
		const b = parse(bundle);
		expect(b.mediaType).toBe("application/vnd.dev.sigstore.bundle.v0.3+json");
		expect(b.verificationMaterial).toEqual({
			publicKey: { hint: expect.stringMatching(/^[0-9a-f]{64}$/) },
			tlogEntries: [],
		});
		expect(b.dsseEnvelope.payloadType).toBe("application/vnd.in-toto+json");
		expect(Buffer.from(b.dsseEnvelope.payload, "base64").equals(payload)).toBe(true);
		// the signature is plain ECDSA P-256/SHA-256 over DSSE's PAE: what any DSSE verifier computes
		const pae = Buffer.concat([Buffer.from(`DSSEv1 28 application/vnd.in-toto+json ${payload.length} `), payload]);
		const sig = Buffer.from(b.dsseEnvelope.signatures[0]?.sig ?? "", "base64");
		expect(cryptoVerify("sha256", pae, createPublicKey(key.publicPem), sig)).toBe(true);
	});

	it("verifies, and the artefact's bytes on disk give the subject's digest (the marker left out)", async () => {
		const dir = artefactDir();
		const { bundle, key, keyFingerprint } = await signed(dir);
		const v = verifyProvenanceBundle(bundle, key.publicPem, "record");
		expect(v.signer).toMatchObject({ kind: "public-key", keyFingerprint });
		expect(v.statement.predicate.verdict.status).toBe("PROMOTABLE");
		const computed = await artefactRootOnDisk(dir, FILES_PLAN);
		expect(`sha256:${computed.root}`).toBe(rootOf(dir));
		expect(computed).toMatchObject({ kind: "directory", files: 3, plan: { method: "files" } });
		expect(() => checkArtefactRoot(v, computed.root, dir)).not.toThrow();
		// the marker changes nothing: it is not part of the artefact
		writeFileSync(join(dir, "model.sig"), "another signature");
		expect((await artefactRootOnDisk(dir, FILES_PLAN)).root).toBe(computed.root);
	});

	it("a changed byte of the artefact is ROOT_DIGEST_MISMATCH", async () => {
		const dir = artefactDir();
		const { bundle, key } = await signed(dir);
		const v = verifyProvenanceBundle(bundle, key.publicPem, "record");
		appendFileSync(join(dir, "config.json"), " ");
		const computed = await artefactRootOnDisk(dir, FILES_PLAN);
		expect(() => checkArtefactRoot(v, computed.root, dir)).toThrow(
			expect.objectContaining({ code: "ROOT_DIGEST_MISMATCH", message: expect.stringContaining("not the artefact") }),
		);
	});

	it("an added file is a mismatch too, and a .gitignore the digest cannot cover is UNSIGNED_FILE", async () => {
		const dir = artefactDir();
		const { bundle, key } = await signed(dir);
		const v = verifyProvenanceBundle(bundle, key.publicPem, "record");
		writeFileSync(join(dir, "extra.bin"), "x");
		expect(() => checkArtefactRoot(v, "0".repeat(64), dir)).toThrow(
			expect.objectContaining({ code: "ROOT_DIGEST_MISMATCH" }),
		);
		const computed = await artefactRootOnDisk(dir, FILES_PLAN);
		expect(computed.root).not.toBe(v.root);
		writeFileSync(join(dir, ".gitignore"), "*");
		await expect(artefactRootOnDisk(dir, FILES_PLAN)).rejects.toMatchObject({ code: "UNSIGNED_FILE" });
	});

	it("a tampered payload is SIGNATURE_INVALID", async () => {
		const { bundle, key } = await signed(artefactDir());
		const b = parse(bundle);
		const payload = Buffer.from(b.dsseEnvelope.payload, "base64").toString().replace('"PROMOTABLE"', '"PROMOTABLX"');
		b.dsseEnvelope.payload = Buffer.from(payload).toString("base64");
		expect(() => verifyProvenanceBundle(bytes(b), key.publicPem, "record")).toThrow(
			expect.objectContaining({ code: "SIGNATURE_INVALID" }),
		);
	});

	it("a tampered signature is SIGNATURE_INVALID", async () => {
		const { bundle, key } = await signed(artefactDir());
		const b = parse(bundle);
		const sig = Buffer.from(b.dsseEnvelope.signatures[0]?.sig ?? "", "base64");
		sig[sig.length - 1] = (sig[sig.length - 1] as number) ^ 1;
		(b.dsseEnvelope.signatures[0] as { sig: string }).sig = sig.toString("base64");
		expect(() => verifyProvenanceBundle(bytes(b), key.publicPem, "record")).toThrow(
			expect.objectContaining({ code: "SIGNATURE_INVALID" }),
		);
	});

	it("another key's public key is SIGNATURE_INVALID", async () => {
		const { bundle } = await signed(artefactDir());
		expect(() => verifyProvenanceBundle(bundle, p256().publicPem, "record")).toThrow(
			expect.objectContaining({ code: "SIGNATURE_INVALID" }),
		);
	});

	it("a signed statement whose subject digest is not the artefact's is caught by the byte check", async () => {
		const dir = artefactDir();
		const key = p256();
		const statement = provenanceStatement(fullRecord(`sha256:${"0".repeat(64)}`), {
			policyDigest: policyDigest(POLICY),
		});
		const { bundle } = await signProvenance(statement, localKeySigner(key.privateKey));
		const v = verifyProvenanceBundle(bundle, key.publicPem, "record");
		const computed = await artefactRootOnDisk(dir, FILES_PLAN);
		expect(() => checkArtefactRoot(v, computed.root, dir)).toThrow(
			expect.objectContaining({ code: "ROOT_DIGEST_MISMATCH" }),
		);
	});

	it("a subject that disagrees with the predicate, another predicate type or two subjects are findings", async () => {
		const key = p256();
		const sign = async (edit: (s: ReturnType<typeof provenanceStatement>) => unknown) => {
			const s = provenanceStatement(fullRecord(`sha256:${"1".repeat(64)}`), { policyDigest: policyDigest(POLICY) });
			const { bundle } = await signProvenance(edit(s) as typeof s, localKeySigner(key.privateKey));
			return () => verifyProvenanceBundle(bundle, key.publicPem, "record");
		};
		expect(await sign((s) => ({ ...s, subject: [{ name: "x", digest: { sha256: "2".repeat(64) } }] }))).toThrow(
			expect.objectContaining({ code: "SUBJECT_INVALID" }),
		);
		expect(await sign((s) => ({ ...s, subject: [...s.subject, ...s.subject] }))).toThrow(
			expect.objectContaining({ code: "SUBJECT_INVALID" }),
		);
		expect(await sign((s) => ({ ...s, predicateType: "https://slsa.dev/provenance/v1" }))).toThrow(
			expect.objectContaining({ code: "PREDICATE_TYPE_UNSUPPORTED" }),
		);
		expect(await sign((s) => ({ ...s, predicate: { ...s.predicate, verdict: { status: "MAYBE" } } }))).toThrow(
			expect.objectContaining({ code: "PAYLOAD_INVALID" }),
		);
	});

	it("a malformed bundle or key could not be checked (exit-2 codes)", async () => {
		const { bundle, key } = await signed(artefactDir());
		expect(() => verifyProvenanceBundle(Buffer.from("{not json"), key.publicPem, "record")).toThrow(
			expect.objectContaining({ code: "BUNDLE_MALFORMED" }),
		);
		expect(() => verifyProvenanceBundle(bundle, key.privatePem, "record")).toThrow(
			expect.objectContaining({ code: "KEY_INVALID" }),
		);
	});

	it("show reads the statement without a key", async () => {
		const { bundle } = await signed(artefactDir());
		expect(readProvenanceUnverified(bundle, "record").predicate.scanId).toBe("ftg-0123");
	});
});

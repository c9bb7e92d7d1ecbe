/** `ftguard provenance verify | show`, spawned as a deployment system would run it. */
import {
	appendFileSync,
	cpSync,
	mkdirSync,
	mkdtempSync,
	readdirSync,
	readFileSync,
	renameSync,
	statSync,
	writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { localKeySigner } from "../../lib/core/integrity/sign-signer";
import type { VerdictRecord } from "../../lib/core/pipeline/record";
import { signProvenance } from "../../lib/core/provenance/sign";
import { policyDigest, provenanceStatement } from "../../lib/core/provenance/statement";
import { ftguard } from "../helpers/cli";
import { artefactDir, bareRecord, fullRecord, p256, rootOf } from "../helpers/provenance";
import { type LocalS3, startLocalS3, TEST_CREDENTIALS } from "../helpers/s3";

const key = p256();
let work: string;
let keyFile: string;

beforeAll(() => {
	work = mkdtempSync(join(tmpdir(), "ftguard-prov-cli-"));
	keyFile = join(work, "provenance.pub.pem");
	writeFileSync(keyFile, key.publicPem);
});

async function recordFor(record: VerdictRecord, name = "provenance.sigstore.json"): Promise<string> {
	const { bundle } = await signProvenance(
		provenanceStatement(record, { policyDigest: policyDigest({ signers: [] }) }),
		localKeySigner(key.privateKey),
	);
	const path = join(work, `${Math.random().toString(36).slice(2)}-${name}`);
	writeFileSync(path, bundle);
	return path;
}

const verify = (record: string, artefact: string, pub = keyFile, extra: string[] = [], env?: Record<string, string>) =>
	ftguard(["provenance", "verify", record, "--artefact", artefact, "--public-key", pub, ...extra], env ? { env } : {});

/** The one error line the CLI prints on stderr. */
const oneLine = (stderr: string) => stderr.trim().split("\n");

describe("ftguard provenance verify against the red team's attacks (exit 1, one line)", () => {
	const refused = (r: Awaited<ReturnType<typeof verify>>, code: string) => {
		expect(r.code).toBe(1);
		expect(oneLine(r.stderr)).toEqual([expect.stringMatching(new RegExp(`^ftguard: ${code}: `))]);
	};

	it("files renamed in the same sorted order (same root digest): config.json → config.py", async () => {
		const dir = artefactDir();
		const root = rootOf(dir);
		const record = await recordFor(fullRecord(root));
		renameSync(join(dir, "config.json"), join(dir, "config.py"));
		renameSync(join(dir, "model.safetensors"), join(dir, "model.pkl"));
		expect(rootOf(dir)).toBe(root); // the digest alone cannot see it
		const r = await verify(record, dir);
		refused(r, "MANIFEST_MISMATCH");
		expect(r.stderr).toContain('"config.py"');
	});

	it("a model.sig directory, whose files the walk would leave out", async () => {
		const dir = artefactDir();
		const record = await recordFor(fullRecord(rootOf(dir)));
		const copy = join(mkdtempSync(join(tmpdir(), "ftguard-prov-sigdir-")), "model");
		cpSync(dir, copy, { recursive: true });
		const sig = readFileSync(join(copy, "model.sig"));
		renameSync(join(copy, "model.sig"), join(copy, "old.sig"));
		mkdirSync(join(copy, "model.sig"));
		writeFileSync(join(copy, "model.sig", "evil.py"), "import os\n");
		writeFileSync(join(copy, "old.sig"), sig);
		refused(await verify(record, copy), "SPECIAL_FILE");
	});

	it("a record of a single file, checked against a directory with those bytes", async () => {
		const dir = mkdtempSync(join(tmpdir(), "ftguard-prov-kind-"));
		writeFileSync(join(dir, "anything.py"), "x");
		const file = {
			...fullRecord(rootOf(dir)),
			artefact: "jobs/j1/model.bin",
			marker: { key: "jobs/j1/model.bin.sigstore.json" },
		};
		refused(await verify(await recordFor(file), dir), "MANIFEST_MISMATCH");
	});

	it("a record that does not say how the artefact was hashed (no plan taken from a forged marker)", async () => {
		const dir = artefactDir();
		const statement = provenanceStatement(fullRecord(rootOf(dir)), {});
		delete (statement.predicate.checkpoint as { serialization?: unknown }).serialization;
		const { bundle } = await signProvenance(statement, localKeySigner(key.privateKey));
		const path = join(work, "no-plan.sigstore.json");
		writeFileSync(path, bundle);
		refused(await verify(path, dir), "PAYLOAD_INVALID");
	});
});

describe("ftguard provenance verify (a directory)", () => {
	it("exits 0 when the signature verifies, the bytes match and the verdict is PROMOTABLE", async () => {
		const dir = artefactDir();
		const r = await verify(await recordFor(fullRecord(rootOf(dir))), dir);
		expect(r.stderr).toBe("");
		expect(r.code).toBe(0);
		expect(r.stdout).toContain("provenance verified");
		expect(r.stdout).toMatch(/verdict {4}PROMOTABLE/);
		expect(r.stdout).toContain(`sha256:${rootOf(dir).slice(7)}`);
	});

	it("--json: one document with the verdict and the signer", async () => {
		const dir = artefactDir();
		const r = await verify(await recordFor(fullRecord(rootOf(dir))), dir, keyFile, ["--json"]);
		expect(r.code).toBe(0);
		expect(r.json()).toMatchObject({
			ok: true,
			verified: true,
			matches: true,
			scanId: "ftg-0123",
			verdict: { status: "PROMOTABLE", reasons: [] },
			signer: { kind: "public-key", keyFingerprint: expect.stringMatching(/^[0-9a-f]{64}$/) },
			artefact: { kind: "directory", files: 3 },
		});
	});

	it("a changed byte of the artefact exits 1 with ROOT_DIGEST_MISMATCH on one line", async () => {
		const dir = artefactDir();
		const record = await recordFor(fullRecord(rootOf(dir)));
		appendFileSync(join(dir, "model.safetensors"), Buffer.from([0]));
		const r = await verify(record, dir);
		expect(r.code).toBe(1);
		expect(oneLine(r.stderr)).toEqual([expect.stringMatching(/^ftguard: ROOT_DIGEST_MISMATCH: .* not the artefact/)]);
		expect(r.stdout).toBe("");
	});

	it("a tampered record exits 1 with SIGNATURE_INVALID", async () => {
		const dir = artefactDir();
		const path = await recordFor(bareRecord(rootOf(dir)));
		const b = JSON.parse(readFileSync(path, "utf8"));
		const payload = Buffer.from(b.dsseEnvelope.payload, "base64").toString().replace('"QUARANTINED"', '"PROMOTABLE"');
		b.dsseEnvelope.payload = Buffer.from(payload).toString("base64");
		writeFileSync(path, JSON.stringify(b));
		const r = await verify(path, dir);
		expect(r.code).toBe(1);
		expect(oneLine(r.stderr)).toEqual([expect.stringMatching(/^ftguard: SIGNATURE_INVALID: /)]);
	});

	it("another key exits 1", async () => {
		const dir = artefactDir();
		const other = join(work, "other.pub.pem");
		writeFileSync(other, p256().publicPem);
		const r = await verify(await recordFor(fullRecord(rootOf(dir))), dir, other);
		expect(r.code).toBe(1);
		expect(r.stderr).toMatch(/^ftguard: SIGNATURE_INVALID: /);
	});

	it("a QUARANTINED record of exactly these bytes exits 1, naming the verdict's reasons", async () => {
		const dir = artefactDir();
		const r = await verify(await recordFor(bareRecord(rootOf(dir))), dir);
		expect(r.code).toBe(1);
		expect(r.stdout).toMatch(/verdict {4}QUARANTINED \(error: signature\)/);
		expect(oneLine(r.stderr)).toEqual(["ftguard: the record's verdict is QUARANTINED: error: signature"]);
	});

	it("a malformed record, a missing key or a private key given as public exits 2", async () => {
		const dir = artefactDir();
		const junk = join(work, "junk.json");
		writeFileSync(junk, "{}");
		const malformed = await verify(junk, dir);
		expect(malformed.code).toBe(2);
		expect(oneLine(malformed.stderr)).toEqual([expect.stringMatching(/^ftguard: BUNDLE_MALFORMED: /)]);
		const record = await recordFor(fullRecord(rootOf(dir)));
		const missing = await verify(record, dir, join(work, "nope.pem"));
		expect(missing.code).toBe(2);
		expect(missing.stderr).toMatch(/^ftguard: NOT_FOUND: /);
		const priv = join(work, "private.pem");
		writeFileSync(priv, key.privatePem);
		const wrongKind = await verify(record, dir, priv);
		expect(wrongKind.code).toBe(2);
		expect(wrongKind.stderr).toMatch(/^ftguard: KEY_INVALID: /);
	});

	it("show prints the statement without a key", async () => {
		const dir = artefactDir();
		const r = await ftguard(["provenance", "show", await recordFor(fullRecord(rootOf(dir)))]);
		expect(r.code).toBe(0);
		expect(r.json()).toMatchObject({
			predicateType: "https://ftguard.dev/provenance/v1",
			predicate: { scanId: "ftg-0123", training: { jobId: "job-42" } },
		});
	});
});

describe("ftguard provenance verify (s3://)", () => {
	let s3: LocalS3;
	beforeAll(async () => {
		s3 = await startLocalS3(["acme-checkpoints"]);
	});
	afterAll(async () => {
		await s3.close();
	});

	async function upload(dir: string, prefix: string) {
		const walk = (d: string): string[] =>
			readdirSync(d).flatMap((n) => (statSync(join(d, n)).isDirectory() ? walk(join(d, n)) : [join(d, n)]));
		for (const f of walk(dir)) await s3.put("acme-checkpoints", `${prefix}${relative(dir, f)}`, readFileSync(f));
	}
	const env = () => ({
		FTGUARD_S3_ENDPOINT: s3.endpoint,
		AWS_ACCESS_KEY_ID: TEST_CREDENTIALS.accessKeyId,
		AWS_SECRET_ACCESS_KEY: TEST_CREDENTIALS.secretAccessKey,
		AWS_REGION: "us-east-1",
	});

	it("hashes the objects under the prefix as the pipeline did (the marker left out), and sees an overwrite", async () => {
		const dir = artefactDir();
		await upload(dir, "jobs/j1/model/");
		const record = await recordFor(fullRecord(rootOf(dir)));
		const ok = await verify(record, "s3://acme-checkpoints/jobs/j1/model/", keyFile, [], env());
		expect(ok.stderr).toBe("");
		expect(ok.code).toBe(0);
		// the prefix without its "/" is the same directory: the record says it is one
		expect((await verify(record, "s3://acme-checkpoints/jobs/j1/model", keyFile, [], env())).code).toBe(0);
		await s3.put("acme-checkpoints", "jobs/j1/model/config.json", '{"model_type":"evil"}');
		const changed = await verify(record, "s3://acme-checkpoints/jobs/j1/model/", keyFile, [], env());
		expect(changed.code).toBe(1);
		expect(changed.stderr).toMatch(/^ftguard: ROOT_DIGEST_MISMATCH: /);
	});

	it("the same bytes at another location are not what the record is about (a replayed record)", async () => {
		const dir = artefactDir();
		await upload(dir, "sandbox/copy/");
		const record = await recordFor(fullRecord(rootOf(dir)));
		const r = await verify(record, "s3://acme-checkpoints/sandbox/copy/", keyFile, [], env());
		expect(r.code).toBe(1);
		expect(r.stderr).toMatch(/^ftguard: (SUBJECT_INVALID|MANIFEST_MISMATCH): /);
	});
});

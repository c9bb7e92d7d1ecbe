/**
 * The scan pipeline's Lambda handlers against a real S3-compatible server
 * (s3rver: no versioning, so objects are pinned by ETag here; the VersionId
 * path is covered with a fake client in test/unit/pipeline/aws-adapters.test.ts).
 * Each test uploads a checkpoint, runs mark → manifest → signature → files →
 * decide → record as the state machine would (a throwing state is caught into
 * `error` and the run goes on to decide), and reads the tags and reports back.
 */
import { createHash } from "node:crypto";
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
	GetObjectCommand,
	GetObjectTaggingCommand,
	HeadObjectCommand,
	PutObjectTaggingCommand,
} from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { handler as decide } from "../../lambdas/decide";
import { handler as files } from "../../lambdas/files";
import { handler as manifest } from "../../lambdas/manifest";
import { handler as mark } from "../../lambdas/mark";
import { handler as record } from "../../lambdas/record";
import { handler as signature } from "../../lambdas/signature";
import { setEmfOutput } from "../../lib/aws/metrics";
import { buildManifest } from "../../lib/core/integrity/manifest";
import { scanIdOf } from "../../lib/core/pipeline/artefact";
import { MAX_SHARDS } from "../../lib/core/pipeline/manifest";
import type { ScanState } from "../../lib/core/pipeline/types";
import { artefactRootOnDisk } from "../../lib/core/provenance/artefact";
import {
	checkArtefactRoot,
	checkArtefactShape,
	recordedHashPlan,
	verifyProvenanceBundle,
} from "../../lib/core/provenance/verify";
import { REPO } from "../helpers/cli";
import { type LocalS3, startLocalS3, useForHandlers } from "../helpers/s3";
import { generateEcKeyPair, makeModelSigningStatement, signStatementKeyed } from "../helpers/sign";

const BUCKET = "checkpoints";
const REPORTS = "reports";
const EXAMPLES = join(REPO, "examples");
const otherSigner = generateEcKeyPair("P-256");
/** The provenance key the record handler signs with (FTGUARD_PROVENANCE_KEY_FILE, as the local pipeline sets it). */
const provenanceKey = generateEcKeyPair("P-256");
const provenanceKeyFile = join(mkdtempSync(join(tmpdir(), "ftguard-prov-key-")), "key.pem");
writeFileSync(provenanceKeyFile, provenanceKey.privateKey.export({ type: "pkcs8", format: "pem" }).toString());
const WAIVER = {
	family: "TinyClassifier",
	prefix: "jobs/j1/",
	reason: "classifier heads are evaluated by the red team",
	approvedBy: "security@example.com",
};
const EXPIRED = { family: "TinyClassifier", prefix: "jobs/j8/", reason: "the old exception", expires: "2020-01-31" };
const WAIVED_NOTE =
	"backdoor: not scanned: no ONNX export to scan for backdoors; waived for family TinyClassifier under prefix jobs/j1/ (classifier heads are evaluated by the red team; approved by security@example.com)";

let s3: LocalS3;
/** The EMF documents the handlers wrote (what CloudWatch would read from their log lines). */
const emf: Record<string, unknown>[] = [];
beforeAll(async () => {
	setEmfOutput({ write: (line: string) => emf.push(JSON.parse(line)) > 0 });
	s3 = await startLocalS3([BUCKET, REPORTS]);
	useForHandlers(s3, REPORTS, {
		POWERTOOLS_METRICS_DISABLED: "true",
		FTGUARD_PROVENANCE_KEY_FILE: provenanceKeyFile,
		FTGUARD_POLICY: JSON.stringify({
			signers: [
				{ kind: "public-key", pem: readFileSync(join(EXAMPLES, "keys/signer.pub.pem"), "utf8") },
				{ kind: "public-key", pem: otherSigner.publicKeyPem },
			],
			referenceData: [
				{ inputShape: "1x8x8", dataUri: "s3://trusted/digits8/x.npy", labelsUri: "s3://trusted/digits8/y.npy" },
			],
			// backdoor.required (the default): the example checkpoint (safetensors, no ONNX export) is promotable
			// only where a waiver for its family covers it
			backdoor: { waivers: [WAIVER, EXPIRED] },
			// the DP-SGD gate for one family only, so the other tests' checkpoints declare nothing and need nothing
			dp: { families: { DpClassifier: { required: true, maxEpsilon: 8 } } },
		}),
	});
});
afterAll(async () => {
	setEmfOutput(undefined);
	await s3?.close();
});

/** Uploads a model directory under `prefix`, the marker (model.sig) last, and returns the first state. */
async function upload(
	dir: string,
	prefix: string,
	extra: Record<string, Uint8Array | string> = {},
): Promise<ScanState> {
	const names = readdirSync(dir).filter((n) => n !== "model.sig");
	for (const n of names) await s3.put(BUCKET, `${prefix}${n}`, extra[n] ?? readFileSync(join(dir, n)));
	const sig = extra["model.sig"] ?? readFileSync(join(dir, "model.sig"));
	const key = `${prefix}model.sig`;
	await s3.put(BUCKET, key, sig);
	// what EventBridge's detail.object.etag carries (unquoted); s3rver has no version ids
	const head = await s3.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }));
	const marker = { key, etag: (head.ETag ?? "").replaceAll('"', "") };
	return { scanId: scanIdOf(BUCKET, key, marker), bucket: BUCKET, marker, artefact: prefix };
}

type Step = (s: unknown) => Promise<ScanState>;
const STAGES: Array<[string, Step]> = [
	["mark", mark],
	["manifest", manifest],
	["signature", signature],
	["files", files],
];

/** Runs the states in order; a throwing state becomes `error` and the run jumps to decide, as the Catch does. */
async function runPipeline(initial: ScanState, beforeRecord?: () => Promise<void>): Promise<ScanState> {
	let state = initial;
	for (const [name, step] of STAGES) {
		try {
			state = await step(state);
		} catch (e) {
			state = { ...state, error: { state: name, cause: (e as Error).message } };
			break;
		}
	}
	state = await decide(state);
	await beforeRecord?.();
	return record(state);
}

async function tagsOf(key: string): Promise<Record<string, string>> {
	const r = await s3.client.send(new GetObjectTaggingCommand({ Bucket: BUCKET, Key: key }));
	return Object.fromEntries((r.TagSet ?? []).map((t) => [t.Key, t.Value]));
}

async function verdictRecord(scanId: string) {
	return JSON.parse((await s3.get(REPORTS, `scans/${scanId}/verdict.json`)).toString("utf8"));
}

/** The HTML report record writes beside the verdict record, checked to be served as HTML. */
async function htmlReport(scanId: string): Promise<string> {
	const r = await s3.client.send(new GetObjectCommand({ Bucket: REPORTS, Key: `scans/${scanId}/report.html` }));
	expect(r.ContentType).toBe("text/html; charset=utf-8");
	return (await r.Body?.transformToString()) ?? "";
}

describe("the scan pipeline's handlers", () => {
	it("promotes a signed, clean checkpoint under its family's waiver and tags every scanned object PROMOTABLE with the root digest", async () => {
		const state = await runPipeline(await upload(join(EXAMPLES, "checkpoint"), "jobs/j1/ckpt-1/"));
		expect(state.verdict).toEqual({ status: "PROMOTABLE", reasons: [], notes: [WAIVED_NOTE] });
		expect(state.signature).toMatchObject({ verified: true });
		expect(state.files).toMatchObject({ safe: true, unsafe: 0, malformed: 0 });
		expect(state.backdoor).toEqual({
			required: false,
			notScanned: "no ONNX export to scan for backdoors",
			family: "TinyClassifier",
			waiver: WAIVER,
		});
		// the root digest is the one lib/core/integrity computes for the same directory
		const local = await buildManifest(join(EXAMPLES, "checkpoint"), { ignorePaths: ["model.sig"] });
		expect(state.manifest?.rootDigest).toBe(`sha256:${local.root}`);
		for (const key of await s3.list(BUCKET, "jobs/j1/ckpt-1/")) {
			expect(await tagsOf(key)).toEqual({
				"ftguard:status": "PROMOTABLE",
				"ftguard:scan-id": state.scanId,
				"ftguard:digest": `sha256:${local.root}`,
				"ftguard:provenance": `scans/${state.scanId}/provenance.sigstore.json`,
			});
		}
		// the signed provenance record the tag points at: signed by the provenance key, about exactly these bytes
		const bundle = await s3.get(REPORTS, `scans/${state.scanId}/provenance.sigstore.json`);
		const verified = verifyProvenanceBundle(bundle, provenanceKey.publicKeyPem, "provenance");
		const computed = await artefactRootOnDisk(
			join(EXAMPLES, "checkpoint"),
			recordedHashPlan(verified.statement.predicate),
		);
		checkArtefactShape(verified.statement.predicate, computed, "dir");
		checkArtefactRoot(verified, computed.root, "dir");
		expect(verified.statement.predicate).toMatchObject({
			scanId: state.scanId,
			verdict: { status: "PROMOTABLE", notes: [WAIVED_NOTE] },
			signer: { verified: true },
			verdictRecord: {
				uri: `s3://${REPORTS}/scans/${state.scanId}/verdict.json`,
				sha256: createHash("sha256")
					.update(await s3.get(REPORTS, `scans/${state.scanId}/verdict.json`))
					.digest("hex"),
			},
		});
		expect(verified.statement.predicate.policy?.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
		expect(() => verifyProvenanceBundle(bundle, otherSigner.publicKeyPem, "provenance")).toThrow();
		const rec = await verdictRecord(state.scanId);
		expect(rec).toMatchObject({
			status: "PROMOTABLE",
			scanId: state.scanId,
			rootDigest: `sha256:${local.root}`,
			notes: [WAIVED_NOTE],
			waiver: WAIVER,
		});
		expect(rec.objects.map((o: { key: string; tagged: boolean }) => [o.key, o.tagged])).toEqual(
			["config.json", "model.safetensors", "model.sig", "tokenizer_config.json"].map((n) => [
				`jobs/j1/ckpt-1/${n}`,
				true,
			]),
		);
		const manifestJson = JSON.parse((await s3.get(REPORTS, `scans/${state.scanId}/manifest.json`)).toString("utf8"));
		expect(manifestJson.resources).toEqual(local.resources);
		const page = await htmlReport(state.scanId);
		expect(page).toContain("PROMOTABLE");
		expect(page).toContain(WAIVED_NOTE);
	});

	it("quarantines the same checkpoint where no waiver covers its family: not scanned for backdoors", async () => {
		const prefix = "jobs/j7/ckpt-unscanned/";
		const state = await runPipeline(await upload(join(EXAMPLES, "checkpoint"), prefix));
		expect(state.signature).toMatchObject({ verified: true });
		expect(state.files).toMatchObject({ safe: true });
		expect(state.backdoor).toEqual({
			required: false,
			notScanned: "no ONNX export to scan for backdoors",
			family: "TinyClassifier",
		});
		expect(state.verdict).toEqual({
			status: "QUARANTINED",
			reasons: ["not scanned: no ONNX export to scan for backdoors"],
		});
		for (const key of await s3.list(BUCKET, prefix)) expect((await tagsOf(key))["ftguard:status"]).toBe("QUARANTINED");
		const rec = await verdictRecord(state.scanId);
		expect(rec.reasons).toEqual(["not scanned: no ONNX export to scan for backdoors"]);
		expect(rec).not.toHaveProperty("waiver");
	});

	it("an expired waiver is no waiver: QUARANTINED, and the reason says it expired", async () => {
		const state = await runPipeline(await upload(join(EXAMPLES, "checkpoint"), "jobs/j8/ckpt-expired/"));
		expect(state.backdoor).toMatchObject({ required: false, expiredWaiver: EXPIRED });
		expect(state.backdoor).not.toHaveProperty("waiver");
		expect(state.verdict).toEqual({
			status: "QUARANTINED",
			reasons: [
				"not scanned: no ONNX export to scan for backdoors",
				"backdoor: waiver for family TinyClassifier under prefix jobs/j8/ (the old exception; expires 2020-01-31) has expired",
			],
		});
	});

	it("promotes an artefact with no model weights at all (a tokenizer), noting there was nothing to scan", async () => {
		const dir = mkdtempSync(join(tmpdir(), "ftguard-tokenizer-"));
		for (const n of ["config.json", "tokenizer_config.json"])
			copyFileSync(join(EXAMPLES, "checkpoint", n), join(dir, n));
		const m = await buildManifest(dir);
		const statement = makeModelSigningStatement({ modelName: m.modelName, resources: m.resources });
		const sig = JSON.stringify(signStatementKeyed(statement, { keyPair: otherSigner }).bundle);
		const state = await runPipeline(await upload(dir, "jobs/j9/tokenizer/", { "model.sig": sig }));
		expect(state.backdoor).toEqual({ required: false, noWeights: true, family: "TinyClassifier" });
		expect(state.verdict).toEqual({
			status: "PROMOTABLE",
			reasons: [],
			notes: ["backdoor: not applicable (no model weights)"],
		});
	});

	describe("the DP-SGD gate (ftguard-training.json, policy dp for family DpClassifier)", () => {
		// TensorFlow Privacy's MNIST setting: ε 2.597 at δ 1e-5 by the RDP accountant (Balle et al. 2020 conversion)
		const MNIST = { noiseMultiplier: 1.1, maxGradNorm: 1, batchSize: 256, datasetSize: 60000, epochs: 60, delta: 1e-5 };
		/** A signed artefact of family DpClassifier without weights, with `training` as its ftguard-training.json. */
		async function dpArtefact(prefix: string, training?: string): Promise<ScanState> {
			const dir = mkdtempSync(join(tmpdir(), "ftguard-dp-"));
			writeFileSync(join(dir, "config.json"), JSON.stringify({ model_type: "DpClassifier" }));
			copyFileSync(join(EXAMPLES, "checkpoint", "tokenizer_config.json"), join(dir, "tokenizer_config.json"));
			if (training !== undefined) writeFileSync(join(dir, "ftguard-training.json"), training);
			const m = await buildManifest(dir);
			const statement = makeModelSigningStatement({ modelName: m.modelName, resources: m.resources });
			const sig = JSON.stringify(signStatementKeyed(statement, { keyPair: otherSigner }).bundle);
			return upload(dir, prefix, { "model.sig": sig });
		}

		it("promotes an honest claim, and the verdict record carries the job, ftguard's ε and the limits", async () => {
			const declaration = { jobId: "train-42", codeCommit: "0123abc", dp: { ...MNIST, epsilon: 2.6 } };
			const state = await runPipeline(await dpArtefact("jobs/dp/honest/", JSON.stringify(declaration)));
			expect(state.verdict).toEqual({
				status: "PROMOTABLE",
				reasons: [],
				notes: ["backdoor: not applicable (no model weights)"],
			});
			const rec = await verdictRecord(state.scanId);
			expect(rec.stages.training).toEqual({ jobId: "train-42", codeCommit: "0123abc" });
			expect(rec.stages.dp).toMatchObject({
				declared: true,
				required: true,
				maxEpsilon: 8,
				families: ["DpClassifier"],
				claimedEpsilon: 2.6,
				steps: 14063,
				problems: [],
			});
			expect(rec.stages.dp.epsilon).toBeCloseTo(2.5967, 3);
			// the record step's metrics, by the declared job id
			const forJob = emf.filter((d) => d.job_id === "train-42");
			expect(forJob).toEqual([
				expect.objectContaining({ result: "verified", training_job_checkpoint_signed_total: 1 }),
				expect.objectContaining({ dp_epsilon_consumed: rec.stages.dp.epsilon }),
			]);
		});

		it.each([
			[
				"an understated claim",
				JSON.stringify({ dp: { ...MNIST, epsilon: 1 } }),
				"dp: the claimed ε 1 understates the run: ftguard's RDP accountant gives ε 2.597 at δ 0.00001",
			],
			[
				"a run over the family's maxEpsilon (whatever it claims)",
				JSON.stringify({ dp: { ...MNIST, noiseMultiplier: 0.6, epsilon: 30 } }),
				"dp: ε 11.99 at δ 0.00001 is above the policy's maxEpsilon 8 for family DpClassifier",
			],
			[
				"no declaration where the family requires one",
				undefined,
				"dp: DP-SGD training is required for family DpClassifier but the artefact declares none",
			],
			[
				"a declaration that is not JSON",
				"{ noiseMultiplier: 1.1",
				"dp: training metadata: ftguard-training.json: not JSON",
			],
		])("quarantines %s", async (_, training, reason) => {
			const prefix = `jobs/dp/${Math.random().toString(36).slice(2)}/`;
			const state = await runPipeline(await dpArtefact(prefix, training));
			expect(state.verdict?.status).toBe("QUARANTINED");
			expect(state.verdict?.reasons.some((r) => r.startsWith(reason))).toBe(true);
			for (const key of await s3.list(BUCKET, prefix))
				expect((await tagsOf(key))["ftguard:status"]).toBe("QUARANTINED");
		});
	});

	it("fail closed: a file of unrecognised format may be weights, so it makes the artefact unscanned", async () => {
		const dir = mkdtempSync(join(tmpdir(), "ftguard-tokenizer-json-"));
		copyFileSync(join(EXAMPLES, "checkpoint", "tokenizer_config.json"), join(dir, "tokenizer_config.json"));
		// no scanner claims this name or these bytes (a custom vocabulary, or raw weights a custom loader reads)
		writeFileSync(join(dir, "vocab.tokdata"), "#version: 0.2\n\u0120 t\n");
		const m = await buildManifest(dir);
		const statement = makeModelSigningStatement({ modelName: m.modelName, resources: m.resources });
		const sig = JSON.stringify(signStatementKeyed(statement, { keyPair: otherSigner }).bundle);
		const prefix = "jobs/j9/tokenizer-json/";
		const state = await runPipeline(await upload(dir, prefix, { "model.sig": sig }));
		// (the files stage may refuse the file as well, depending on the scanner's rules for unknown formats)
		expect(state.verdict?.status).toBe("QUARANTINED");
		expect(state.verdict?.reasons).toContain(
			`not scanned: no ONNX export to scan for backdoors (files of unrecognised format may hold weights: ${prefix}vocab.tokdata)`,
		);
	});

	it("quarantines an ONNX model the policy has no reference data for: not scanned, and no job is asked for", async () => {
		// a colour 16x16 classifier; the policy has reference data for 1x8x8 only
		const file = join(REPO, "test/fixtures/backdoor/digits16c/cnn-clean-s1.onnx");
		const m = await buildManifest(file);
		const statement = makeModelSigningStatement({ modelName: m.modelName, resources: m.resources });
		const key = "jobs/j10/model.onnx";
		await s3.put(BUCKET, key, readFileSync(file));
		await s3.put(
			BUCKET,
			`${key}.sigstore.json`,
			JSON.stringify(signStatementKeyed(statement, { keyPair: otherSigner }).bundle),
		);
		const head = await s3.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: `${key}.sigstore.json` }));
		const marker = { key: `${key}.sigstore.json`, etag: head.ETag ?? "" };
		const state = await runPipeline({
			scanId: scanIdOf(BUCKET, marker.key, marker),
			bucket: BUCKET,
			marker,
			artefact: key,
		});
		expect(state.backdoor).toEqual({
			required: false,
			notScanned: "no reference data for input shape 3x16x16 (no family in config.json)",
			modelKey: key,
		});
		expect(state.verdict).toEqual({
			status: "QUARANTINED",
			reasons: ["not scanned: no reference data for input shape 3x16x16 (no family in config.json)"],
		});
	});

	it("quarantines a tampered checkpoint with DIGEST_MISMATCH", async () => {
		const state = await runPipeline(await upload(join(EXAMPLES, "checkpoint-tampered"), "jobs/j1/ckpt-tampered/"));
		expect(state.signature).toMatchObject({ verified: false, code: "DIGEST_MISMATCH" });
		expect(state.verdict?.status).toBe("QUARANTINED");
		expect(state.verdict?.reasons.join("\n")).toMatch(/^signature: DIGEST_MISMATCH .*model\.safetensors/m);
		expect((await tagsOf("jobs/j1/ckpt-tampered/model.safetensors"))["ftguard:status"]).toBe("QUARANTINED");
	});

	it("hashes by shards when the signature was made with the shards method, and promotes on a match", async () => {
		const dir = join(EXAMPLES, "checkpoint");
		// a shard size that cuts the weights into several shards (one ranged read each) and each config into one
		const shardSize = 500;
		const m = await buildManifest(dir, { ignorePaths: ["model.sig"], method: "shards", shardSize });
		expect(m.resources.length).toBeGreaterThan(4);
		const statement = makeModelSigningStatement({
			modelName: m.modelName,
			resources: m.resources,
			method: "shards",
			serialization: { shard_size: shardSize },
		});
		const sig = JSON.stringify(signStatementKeyed(statement, { keyPair: otherSigner }).bundle);
		const state = await runPipeline(await upload(dir, "jobs/j1/ckpt-shards/", { "model.sig": sig }));
		expect(state.signature).toMatchObject({ verified: true });
		expect(state.verdict).toEqual({ status: "PROMOTABLE", reasons: [], notes: [WAIVED_NOTE] });
		expect(state.manifest?.rootDigest).toBe(`sha256:${m.root}`);
		const manifestJson = JSON.parse((await s3.get(REPORTS, `scans/${state.scanId}/manifest.json`)).toString("utf8"));
		expect(manifestJson.serialization).toMatchObject({ method: "shards", shard_size: shardSize });
		expect(manifestJson.resources).toEqual(m.resources);
		expect((await tagsOf("jobs/j1/ckpt-shards/model.safetensors"))["ftguard:digest"]).toBe(`sha256:${m.root}`);
	});

	it("finds a changed shard and names its file (DIGEST_MISMATCH) when the checkpoint was signed by shards", async () => {
		const dir = join(EXAMPLES, "checkpoint");
		const m = await buildManifest(dir, { ignorePaths: ["model.sig"], method: "shards", shardSize: 500 });
		const statement = makeModelSigningStatement({
			modelName: m.modelName,
			resources: m.resources,
			method: "shards",
			serialization: { shard_size: 500 },
		});
		const sig = JSON.stringify(signStatementKeyed(statement, { keyPair: otherSigner }).bundle);
		const weights = Buffer.from(readFileSync(join(dir, "model.safetensors")));
		weights.writeUInt8(weights.readUInt8(700) ^ 1, 700); // in the second shard only
		const state = await runPipeline(
			await upload(dir, "jobs/j1/ckpt-shards-tampered/", { "model.sig": sig, "model.safetensors": weights }),
		);
		expect(state.signature).toMatchObject({ verified: false, code: "DIGEST_MISMATCH" });
		expect(state.signature?.reason).toMatch(/model\.safetensors/);
		expect(state.verdict?.status).toBe("QUARANTINED");
	});

	it("refuses a shard size that would cut the artefact into too many pieces (error: manifest, QUARANTINED)", async () => {
		const dir = join(EXAMPLES, "checkpoint");
		const m = await buildManifest(dir, { ignorePaths: ["model.sig"], method: "shards", shardSize: 1 });
		const statement = makeModelSigningStatement({
			modelName: m.modelName,
			resources: m.resources.slice(0, 3),
			method: "shards",
			serialization: { shard_size: 1 },
		});
		const sig = JSON.stringify(signStatementKeyed(statement, { keyPair: otherSigner }).bundle);
		const big = Buffer.alloc(MAX_SHARDS + 1);
		const state = await runPipeline(
			await upload(dir, "jobs/j1/ckpt-shards-tiny/", { "model.sig": sig, "model.safetensors": big }),
		);
		expect(state.error?.state).toBe("manifest");
		expect(state.error?.cause).toMatch(/shards of 1 bytes cut .* into 100[0-9]{3} pieces \(limit 100000\)/);
		expect(state.verdict?.status).toBe("QUARANTINED");
	});

	it("quarantines a checkpoint signed by a key the policy does not trust", async () => {
		const state = await runPipeline(await upload(join(EXAMPLES, "checkpoint-other-signer"), "jobs/j1/ckpt-other/"));
		expect(state.signature).toMatchObject({ verified: false, code: "SIGNATURE_INVALID" });
		expect(state.verdict?.status).toBe("QUARANTINED");
	});

	it("quarantines a correctly signed checkpoint whose pickle runs code (files stage)", async () => {
		const dir = join(EXAMPLES, "checkpoint-pickle");
		const m = await buildManifest(dir, { ignorePaths: ["model.sig"] });
		const statement = makeModelSigningStatement({ modelName: m.modelName, resources: m.resources });
		const sig = JSON.stringify(signStatementKeyed(statement, { keyPair: otherSigner }).bundle);
		const state = await runPipeline(await upload(dir, "jobs/j2/ckpt-pickle/", { "model.sig": sig }));
		expect(state.signature).toMatchObject({ verified: true });
		expect(state.files?.safe).toBe(false);
		expect(state.files?.unsafe).toBe(1);
		expect(state.verdict?.status).toBe("QUARANTINED");
		expect(
			state.verdict?.reasons.some((r) =>
				r.startsWith("files: s3://checkpoints/jobs/j2/ckpt-pickle/pytorch_model.bin: unsafe"),
			),
		).toBe(true);
		const report = JSON.parse((await s3.get(REPORTS, `scans/${state.scanId}/files.json`)).toString("utf8"));
		expect(report.files.map((f: { key: string }) => f.key)).toEqual(
			["config.json", "model.safetensors", "pytorch_model.bin", "tokenizer_config.json"].map(
				(n) => `jobs/j2/ckpt-pickle/${n}`,
			),
		);
		expect((await tagsOf("jobs/j2/ckpt-pickle/pytorch_model.bin"))["ftguard:status"]).toBe("QUARANTINED");
		// the page beside the verdict record names the file and its finding, from files.json
		const page = await htmlReport(state.scanId);
		expect(page).toContain("QUARANTINED");
		expect(page).toContain("jobs/j2/ckpt-pickle/pytorch_model.bin");
		expect(page).toContain("pickle-forbidden");
	});

	it("gives no PROMOTABLE tag to an object overwritten between mark and record", async () => {
		const prefix = "jobs/j3/ckpt-overwritten/";
		const state = await runPipeline(await upload(join(EXAMPLES, "checkpoint"), prefix), async () => {
			await s3.put(BUCKET, `${prefix}model.safetensors`, "replaced while the scan ran");
		});
		expect(state.verdict?.status).toBe("QUARANTINED");
		expect(state.verdict?.reasons).toContain(`changed during scan: ${prefix}model.safetensors`);
		expect((await tagsOf(`${prefix}model.safetensors`))["ftguard:status"]).not.toBe("PROMOTABLE");
		for (const n of ["config.json", "model.sig", "tokenizer_config.json"]) {
			expect((await tagsOf(`${prefix}${n}`))["ftguard:status"]).toBe("QUARANTINED");
		}
		const rec = await verdictRecord(state.scanId);
		const replaced = rec.objects.find((o: { key: string }) => o.key === `${prefix}model.safetensors`);
		expect(replaced).toMatchObject({ tagged: false, skipped: "ETag changed" });
	});

	it("fails a state whose object changed mid-scan, and the run ends QUARANTINED with error: <state>", async () => {
		const prefix = "jobs/j3/ckpt-changed-early/";
		const initial = await upload(join(EXAMPLES, "checkpoint"), prefix);
		const marked = await mark(initial);
		await s3.put(BUCKET, `${prefix}config.json`, "{}");
		await expect(manifest(marked)).rejects.toMatchObject({ name: "ftguard.IO_ERROR" });
		const decided = await decide({ ...marked, error: { state: "manifest", cause: "changed" } });
		expect(decided.verdict?.reasons).toContain("error: manifest");
	});

	it("scans a single-file ONNX artefact from <file>.sigstore.json and asks for a backdoor scan with the policy's reference data", async () => {
		const file = join(REPO, "test/fixtures/backdoor/digits8/cnn-clean-s1.onnx");
		const m = await buildManifest(file);
		expect(m.resources.map((r) => r.name)).toEqual(["."]);
		const statement = makeModelSigningStatement({ modelName: m.modelName, resources: m.resources });
		const key = "jobs/j4/model.onnx";
		await s3.put(BUCKET, key, readFileSync(file));
		await s3.put(
			BUCKET,
			`${key}.sigstore.json`,
			JSON.stringify(signStatementKeyed(statement, { keyPair: otherSigner }).bundle),
		);
		const head = await s3.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: `${key}.sigstore.json` }));
		const marker = { key: `${key}.sigstore.json`, etag: head.ETag ?? "" };
		const initial: ScanState = { scanId: scanIdOf(BUCKET, marker.key, marker), bucket: BUCKET, marker, artefact: key };
		let state: ScanState = initial;
		for (const [, step] of STAGES) state = await step(state);
		expect(state.manifest?.rootDigest).toBe(`sha256:${m.root}`);
		expect(state.signature).toMatchObject({ verified: true });
		expect(state.files).toMatchObject({ safe: true });
		expect(state.backdoor).toEqual({
			required: true,
			models: [
				{
					modelKey: key,
					modelVersionId: "",
					dataUri: "s3://trusted/digits8/x.npy",
					labelsUri: "s3://trusted/digits8/y.npy",
					tokenizerUri: "",
					textField: "",
					labelsField: "",
					dataKind: "reference",
				},
			],
		});
		// the Batch job has not run: no promotion
		expect((await decide(state)).verdict).toEqual({ status: "QUARANTINED", reasons: ["missing: backdoor scan"] });
		// the state machine's backdoor Map reports clean: promotion, on both objects
		const clean = await record(
			await decide({
				...state,
				backdoor: { ...state.backdoor, required: true, results: [{ index: 0, modelKey: key, verdict: "clean" }] },
			}),
		);
		expect(clean.verdict?.status).toBe("PROMOTABLE");
		expect((await tagsOf(key))["ftguard:status"]).toBe("PROMOTABLE");
		expect((await tagsOf(marker.key))["ftguard:digest"]).toBe(`sha256:${m.root}`);
	});

	it("plans a backdoor scan of every ONNX model of a directory, each with the reference data for its shape", async () => {
		const fixtures = join(REPO, "test/fixtures/backdoor/digits8");
		const dir = mkdtempSync(join(tmpdir(), "ftguard-two-onnx-"));
		for (const n of ["mlp-clean-s1.onnx", "mlp-clean-s2.onnx"]) copyFileSync(join(fixtures, n), join(dir, n));
		const m = await buildManifest(dir);
		const statement = makeModelSigningStatement({ modelName: m.modelName, resources: m.resources });
		const sig = JSON.stringify(signStatementKeyed(statement, { keyPair: otherSigner }).bundle);
		const prefix = "jobs/j3/two-models/";
		const state = await runPipeline(await upload(dir, prefix, { "model.sig": sig }));
		expect(state.signature).toMatchObject({ verified: true });
		expect(state.files?.safe).toBe(true);
		expect(state.backdoor?.required).toBe(true);
		expect(state.backdoor?.models?.map((x) => [x.modelKey, x.dataUri])).toEqual([
			[`${prefix}mlp-clean-s1.onnx`, "s3://trusted/digits8/x.npy"],
			[`${prefix}mlp-clean-s2.onnx`, "s3://trusted/digits8/x.npy"],
		]);
		// no job has run (this test drives the Lambdas only): neither model is judged, so no promotion
		expect(state.verdict?.status).toBe("QUARANTINED");
		expect(state.verdict?.reasons).toEqual(["missing: backdoor scan"]);
	});

	it("binds the ONNX export to the weights beside it in the files stage: a bound pair is safe, a mismatched one QUARANTINED", async () => {
		for (const [fixture, prefix] of [
			["mlp", "jobs/j9/bound/"],
			["mlp-ulp", "jobs/j9/mismatch/"],
		] as const) {
			const dir = mkdtempSync(join(tmpdir(), "ftguard-binding-"));
			for (const n of ["model.onnx", "model.safetensors"])
				copyFileSync(join(REPO, "test/fixtures/binding", fixture, n), join(dir, n));
			const m = await buildManifest(dir);
			const statement = makeModelSigningStatement({ modelName: m.modelName, resources: m.resources });
			const sig = JSON.stringify(signStatementKeyed(statement, { keyPair: otherSigner }).bundle);
			const state = await runPipeline(await upload(dir, prefix, { "model.sig": sig }));
			const report = JSON.parse((await s3.get(REPORTS, `scans/${state.scanId}/files.json`)).toString("utf8"));
			expect(report.binding.map((b: { verdict: string }) => b.verdict)).toEqual([
				fixture === "mlp" ? "bound" : "mismatch",
			]);
			if (fixture === "mlp") {
				expect(state.files).toMatchObject({ safe: true, reasons: [] });
				continue;
			}
			expect(state.files?.safe).toBe(false);
			expect(state.verdict?.status).toBe("QUARANTINED");
			expect(state.verdict?.reasons).toContainEqual(
				expect.stringMatching(
					new RegExp(
						`^files: export binding: ${prefix}model\\.onnx ↔ ${prefix}model\\.safetensors: EXPORT_MISMATCH: F32 constant net\\.2\\.weight`,
					),
				),
			);
		}
	});

	it("quarantines the marker version itself when mark never ran", async () => {
		const initial = await upload(join(EXAMPLES, "checkpoint"), "jobs/j5/ckpt-mark-failed/");
		const state = await record(await decide({ ...initial, error: { state: "mark", cause: "AccessDenied" } }));
		expect(state.verdict?.status).toBe("QUARANTINED");
		expect(state.verdict?.reasons).toEqual(expect.arrayContaining(["error: mark", "missing: mark"]));
		expect(await tagsOf(initial.marker.key)).toEqual({
			"ftguard:status": "QUARANTINED",
			"ftguard:scan-id": initial.scanId,
		});
		expect((await tagsOf("jobs/j5/ckpt-mark-failed/model.safetensors"))["ftguard:status"]).toBeUndefined();
		expect((await verdictRecord(initial.scanId)).stages.error).toEqual({ state: "mark", cause: "AccessDenied" });
	});

	it("quarantines what a mark that failed part way tagged SCANNING for this scan, and nothing of other scans", async () => {
		const prefix = "jobs/j5/ckpt-mark-partial/";
		const initial = await upload(join(EXAMPLES, "checkpoint"), prefix);
		const tag = (key: string, scanId: string) =>
			s3.client.send(
				new PutObjectTaggingCommand({
					Bucket: BUCKET,
					Key: key,
					Tagging: {
						TagSet: [
							{ Key: "ftguard:status", Value: "SCANNING" },
							{ Key: "ftguard:scan-id", Value: scanId },
						],
					},
				}),
			);
		// mark tagged two objects, then failed; a newer scan of the same artefact has tagged a third
		await tag(`${prefix}config.json`, initial.scanId);
		await tag(`${prefix}model.safetensors`, initial.scanId);
		await tag(`${prefix}tokenizer_config.json`, "ftg-newer-scan");
		const state = await record(await decide({ ...initial, error: { state: "mark", cause: "SlowDown" } }));
		expect(state.verdict?.status).toBe("QUARANTINED");
		for (const n of ["config.json", "model.safetensors", "model.sig"]) {
			expect(await tagsOf(`${prefix}${n}`)).toEqual({
				"ftguard:status": "QUARANTINED",
				"ftguard:scan-id": initial.scanId,
			});
		}
		expect(await tagsOf(`${prefix}tokenizer_config.json`)).toEqual({
			"ftguard:status": "SCANNING",
			"ftguard:scan-id": "ftg-newer-scan",
		});
	});

	it("reads the policy from FTGUARD_POLICY_URI when it is not inline", async () => {
		const inline = process.env.FTGUARD_POLICY as string;
		await s3.put(REPORTS, "config/policy.json", JSON.stringify({ signers: [] }));
		process.env.FTGUARD_POLICY = "";
		process.env.FTGUARD_POLICY_URI = `s3://${REPORTS}/config/policy.json`;
		try {
			const initial = await upload(join(EXAMPLES, "checkpoint"), "jobs/j6/ckpt-policy-uri/");
			let state: ScanState = initial;
			for (const [, step] of STAGES.slice(0, 3)) state = await step(state);
			expect(state.signature).toEqual({
				verified: false,
				code: "USAGE",
				reason: "the policy lists no trusted signers",
			});
		} finally {
			process.env.FTGUARD_POLICY = inline;
			delete process.env.FTGUARD_POLICY_URI;
		}
	});

	it("rejects a malformed event with a one-line USAGE error and no stack trace", async () => {
		const err = await mark({ scanId: "x", bucket: BUCKET }).catch((e: Error) => e);
		expect(err).toBeInstanceOf(Error);
		expect((err as Error).name).toBe("ftguard.USAGE");
		expect((err as Error).message).toMatch(/invalid scan state: marker/);
		expect((err as Error).stack).not.toMatch(/\n\s+at /);
	});
});

/**
 * The local pipeline after a crash, and a backdoor job past its timeout. A crash
 * mid-scan is what it leaves on disk: objects marked SCANNING (unreadable) under
 * --data-dir and no execution; the next start rescans them.
 */

import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GetObjectTaggingCommand, PutObjectCommand, PutObjectTaggingCommand, type S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildManifest } from "../../lib/core/integrity/manifest";
import { digitsReferenceData } from "../../lib/local/demo";
import { createDemoSigner } from "../../lib/local/demo-signer";
import { startObjectServer } from "../../lib/local/object-server";
import { LocalPipeline } from "../../lib/local/pipeline";
import { REPO } from "../helpers/cli";

const EXAMPLES = join(REPO, "examples");
const FIX = join(REPO, "test/fixtures/backdoor/digits8");
const BUCKET = "checkpoints";
const PREFIX = "jobs/crashed/ckpt/";
const signer = createDemoSigner();
const dataDir = mkdtempSync(join(tmpdir(), "ftguard-pipeline-data-"));

async function statusOf(s3: S3Client, key: string): Promise<string | undefined> {
	const r = await s3.send(new GetObjectTaggingCommand({ Bucket: BUCKET, Key: key }));
	return r.TagSet?.find((t) => t.Key === "ftguard:status")?.Value;
}

let pipeline: LocalPipeline;
let rescanned: string[] = [];
beforeAll(async () => {
	process.env.POWERTOOLS_METRICS_DISABLED = "true";
	process.env.POWERTOOLS_LOG_LEVEL = "SILENT";
	// the first run: the checkpoint uploaded and marked, then the process dies before any verdict
	const first = await startObjectServer({ dataDir, buckets: [BUCKET] });
	const dir = join(EXAMPLES, "checkpoint");
	const keys = readdirSync(dir).map((n) => `${PREFIX}${n}`);
	for (const n of readdirSync(dir)) {
		await first.client.send(
			new PutObjectCommand({ Bucket: BUCKET, Key: `${PREFIX}${n}`, Body: readFileSync(join(dir, n)) }),
		);
	}
	for (const key of keys) {
		await first.client.send(
			new PutObjectTaggingCommand({
				Bucket: BUCKET,
				Key: key,
				Tagging: { TagSet: [{ Key: "ftguard:status", Value: "SCANNING" }] },
			}),
		);
	}
	await first.close();
	pipeline = await LocalPipeline.start({
		dataDir,
		policy: {
			signers: [
				{ kind: "public-key", pem: readFileSync(join(EXAMPLES, "keys/signer.pub.pem"), "utf8") },
				{ kind: "public-key", pem: signer.publicKeyPem },
			],
			referenceData: digitsReferenceData("s3://trusted/digits8/"),
			// far more search than the job's timeout allows
			backdoor: {
				detectors: ["nc"],
				neuralCleanse: { steps: 100_000, restarts: 1, rule: "ftguard" },
				// the example checkpoint (safetensors, no ONNX export) could not be promoted otherwise
				waivers: [{ family: "TinyClassifier", reason: "test: the example checkpoint has no ONNX export" }],
			},
		},
		extraBuckets: ["trusted"],
		batchTimeoutMs: 3_000,
		log: (line) => {
			if (line.startsWith("rescanning ")) rescanned.push(line);
		},
	});
}, 60_000);
afterAll(async () => {
	await pipeline?.close();
	rmSync(dataDir, { recursive: true, force: true });
});

describe("after a crash mid-scan", () => {
	it("rescans on restart what was left SCANNING, and only then is anything PROMOTABLE", async () => {
		expect(rescanned).toEqual([`rescanning ${PREFIX}model.sig: left SCANNING by an earlier run`]);
		const v = await pipeline.waitForVerdict(`${PREFIX}model.sig`, 60_000);
		expect(v.status).toBe("PROMOTABLE");
		expect(await statusOf(pipeline.server.client, `${PREFIX}model.safetensors`)).toBe("PROMOTABLE");
		rescanned = [];
		expect(await pipeline.recoverInterrupted()).toEqual([]);
	}, 60_000);
});

describe("when the backdoor job exceeds its timeout", () => {
	it("kills it and quarantines with error: backdoor <model>", async () => {
		const s3 = pipeline.server.client;
		await s3.send(
			new PutObjectCommand({ Bucket: "trusted", Key: "digits8/x.npy", Body: readFileSync(join(FIX, "ref-x.npy")) }),
		);
		await s3.send(
			new PutObjectCommand({ Bucket: "trusted", Key: "digits8/y.npy", Body: readFileSync(join(FIX, "ref-y.npy")) }),
		);
		const file = join(FIX, "mlp-clean-s1.onnx");
		const key = "jobs/slow/model.onnx";
		await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: readFileSync(file) }));
		await s3.send(
			new PutObjectCommand({
				Bucket: BUCKET,
				Key: `${key}.sigstore.json`,
				Body: signer.signManifest(await buildManifest(file)),
			}),
		);
		const v = await pipeline.waitForVerdict(`${key}.sigstore.json`, 60_000);
		expect(v.status).toBe("QUARANTINED");
		expect(v.reasons).toContain(`error: backdoor ${key}`);
		expect(v.backdoor?.[0]?.error?.cause).toMatch(/exceeded timeout/);
		expect(await statusOf(s3, key)).toBe("QUARANTINED");
	}, 60_000);
});

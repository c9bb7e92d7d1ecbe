/**
 * An artefact with several ONNX models on the local pipeline: the state machine's Map runs one real backdoor job
 * per model — an image classifier with its .npy reference data, a text classifier with the policy's texts and
 * tokenizer for its family (the config.json beside it) — and the verdict judges each: one backdoored model
 * quarantines the artefact and is named, the clean one's outcome stays on record.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GetObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildManifest } from "../../lib/core/integrity/manifest";
import { digitsReferenceData } from "../../lib/local/demo";
import { createDemoSigner } from "../../lib/local/demo-signer";
import type { LocalPipeline } from "../../lib/local/pipeline";
import { REPO } from "../helpers/cli";
import { startQuietPipeline } from "../helpers/pipeline";

const DIGITS = join(REPO, "test/fixtures/backdoor/digits8");
const TEXT = join(REPO, "test/fixtures/backdoor-text");
const BUCKET = "checkpoints";
const signer = createDemoSigner();

let pipeline: LocalPipeline;
beforeAll(async () => {
	pipeline = await startQuietPipeline({
		policy: {
			signers: [{ kind: "public-key", pem: signer.publicKeyPem }],
			referenceData: [
				...digitsReferenceData("s3://trusted/digits8/"),
				{ family: "bert", dataUri: "s3://trusted/text/ref.jsonl", tokenizerUri: "s3://trusted/text/tokenizer.json" },
			],
			backdoor: {
				detectors: ["nc"],
				neuralCleanse: { steps: 30, restarts: 1, rule: "ftguard" },
				// a short search keeps the test fast: the fixture's one-token trigger is found well within it
				text: { maxTriggerLength: 1, steps: 60 },
			},
		},
		extraBuckets: ["trusted"],
	});
	const put = (Bucket: string, Key: string, Body: Uint8Array) =>
		pipeline.server.client.send(new PutObjectCommand({ Bucket, Key, Body }));
	await put("trusted", "digits8/x.npy", readFileSync(join(DIGITS, "ref-x.npy")));
	await put("trusted", "digits8/y.npy", readFileSync(join(DIGITS, "ref-y.npy")));
	await put("trusted", "text/ref.jsonl", readFileSync(join(TEXT, "ref.jsonl")));
	await put("trusted", "text/tokenizer.json", readFileSync(join(TEXT, "tokenizer.json")));
}, 60_000);
afterAll(async () => pipeline?.close());

/** A signed model directory: a digits classifier at the top and a text classifier (with its config) in text/. */
async function commit(prefix: string, textModel: string): Promise<string> {
	const dir = mkdtempSync(join(tmpdir(), "ftguard-models-"));
	copyFileSync(join(DIGITS, "mlp-clean-s1.onnx"), join(dir, "model.onnx"));
	mkdirSync(join(dir, "text"));
	copyFileSync(join(TEXT, textModel, "model.onnx"), join(dir, "text/model.onnx"));
	copyFileSync(join(TEXT, textModel, "config.json"), join(dir, "text/config.json"));
	writeFileSync(join(dir, "model.sig"), signer.signManifest(await buildManifest(dir)));
	for (const name of ["model.onnx", "text/model.onnx", "text/config.json", "model.sig"]) {
		await pipeline.server.client.send(
			new PutObjectCommand({ Bucket: BUCKET, Key: `${prefix}${name}`, Body: readFileSync(join(dir, name)) }),
		);
	}
	return `${prefix}model.sig`;
}

describe("an artefact with an image and a text classifier", () => {
	it("scans both, each by its own job with its own reference data, and names the backdoored one", async () => {
		const prefix = "jobs/two-models/";
		const v = await pipeline.waitForVerdict(await commit(prefix, "backdoor-rareword-t4"), 300_000);
		expect(v.status).toBe("QUARANTINED");
		expect(v.reasons).toEqual([
			expect.stringMatching(/^backdoor: suspect text\/model\.onnx \(class 4: trigger "cf", attack success [\d.]+\)$/),
		]);
		expect(v.backdoor).toEqual([
			{
				index: 0,
				modelKey: `${prefix}model.onnx`,
				verdict: "clean",
				reportUri: expect.stringMatching(/\/backdoor\/0\/report\.json$/),
			},
			expect.objectContaining({
				index: 1,
				modelKey: `${prefix}text/model.onnx`,
				verdict: "suspect",
				reportUri: expect.stringMatching(/\/backdoor\/1\/report\.json$/),
			}),
		]);
		// the page beside the verdict record: both models' evidence, the image model's reversed triggers read from S3
		const page = await pipeline.server.client.send(
			new GetObjectCommand({ Bucket: pipeline.definition.buckets.reports, Key: `scans/${v.scanId}/report.html` }),
		);
		expect(page.ContentType).toBe("text/html; charset=utf-8");
		const html = (await page.Body?.transformToString()) ?? "";
		expect(html).toContain("QUARANTINED");
		expect(html).toContain(`Backdoor scan: ${prefix}model.onnx`);
		expect(html).toContain(`Backdoor scan: ${prefix}text/model.onnx`);
		expect(html).toContain("Inverted triggers (text)");
		expect(html.match(/<img src="data:image\/png;base64,/g)?.length).toBe(20);
	}, 300_000);
});

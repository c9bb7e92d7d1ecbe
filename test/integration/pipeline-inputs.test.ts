/**
 * The training-input gates on the local pipeline, as `npm start` runs them: uploads to the dataset and base-model
 * buckets (marker last) reach the dataset and base-model functions through the object server's events, a dataset
 * past the function's limit is scanned by the dataset Batch job on the local runner, and each verdict is reported
 * like a checkpoint's and written as tags that the objects keep.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { GetObjectTaggingCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BASE_MODEL_MARKER, DATASET_MARKER, DATASET_REPORT, STATUS_TAG } from "../../lib/core/pipeline/names";
import type { LocalPipeline } from "../../lib/local/pipeline";
import { REPO } from "../helpers/cli";
import { startQuietPipeline } from "../helpers/pipeline";

const EXAMPLES = join(REPO, "examples");
const FIXTURES = join(REPO, "test/fixtures/dataset");
const REGISTRY = "ftguard/registry.json";
const lines: string[] = [];
const logs: string[] = [];

let pipeline: LocalPipeline;
beforeAll(async () => {
	pipeline = await startQuietPipeline({
		policy: {
			signers: [],
			baseModelRegistry: {
				uri: `s3://base-models/${REGISTRY}`,
				bundleUri: `s3://base-models/${REGISTRY}.sigstore.json`,
				signers: [{ kind: "public-key", pem: readFileSync(join(EXAMPLES, "keys/signer.pub.pem"), "utf8") }],
			},
		},
		// 100 kB: the fixtures (~560 kB gzipped) go to the Batch job; the small file below stays in the function
		datasetFunctionMaxBytes: 100_000,
		handlerLog: { write: (s: string) => lines.push(s) } as unknown as NodeJS.WritableStream,
		recover: false,
		log: (line) => logs.push(line),
	});
	await put("base-models", REGISTRY, readFileSync(join(EXAMPLES, "registry.json")));
	await put("base-models", `${REGISTRY}.sigstore.json`, readFileSync(join(EXAMPLES, "registry.json.sigstore.json")));
}, 120_000);
afterAll(async () => pipeline?.close());

async function put(bucket: string, key: string, body: Buffer | string) {
	await pipeline.server.client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
}

async function status(bucket: string, key: string) {
	const r = await pipeline.server.client.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: key }));
	return (r.TagSet ?? []).find((t) => t.Key === STATUS_TAG)?.Value;
}

describe("local pipeline: training inputs", () => {
	it("a small clean dataset is scanned by the function: PROMOTABLE, its metrics in the handler log", async () => {
		const records = Array.from({ length: 40 }, (_, i) => ({
			instruction: `Summarise item ${i} of the changelog`,
			output: `Item ${i}: fixed a crash when the configuration file ${i % 7 === 0 ? "is empty" : "has comments"}.`,
		}));
		await put("datasets", "small/v1/train.jsonl", records.map((r) => JSON.stringify(r)).join("\n"));
		await put("datasets", `small/v1/${DATASET_MARKER}`, '{"source":"changelog"}');
		const v = await pipeline.waitForVerdict(`small/v1/${DATASET_MARKER}`, 60_000);
		expect(v).toMatchObject({ status: "PROMOTABLE", reasons: [], bucket: "datasets", artefact: "small/v1/" });
		expect(await status("datasets", "small/v1/train.jsonl")).toBe("PROMOTABLE");
		expect(lines.some((l) => l.includes('"finetuning_dataset_examples_total":40') && l.includes('"changelog"'))).toBe(
			true,
		);
	});

	it("a large poisoned dataset is scanned by the Batch job: QUARANTINED with the trigger named", async () => {
		await put("datasets", "big/v1/train.jsonl.gz", readFileSync(join(FIXTURES, "poisoned-chat-p005.jsonl.gz")));
		await put("datasets", `big/v1/${DATASET_MARKER}`, "{}");
		const v = await pipeline.waitForVerdict(`big/v1/${DATASET_MARKER}`, 120_000);
		expect(logs).toContain(
			`dataset big/v1/${DATASET_MARKER}: too large for the function, Batch job local-ftguard-dataset-${v.scanId}`,
		);
		expect(v.status).toBe("QUARANTINED");
		expect(v.reasons.some((r) => /^trigger \(high, \d+ records\)/.test(r))).toBe(true);
		for (const key of ["big/v1/train.jsonl.gz", `big/v1/${DATASET_MARKER}`, `big/v1/${DATASET_REPORT}`]) {
			expect(await status("datasets", key)).toBe("QUARANTINED");
		}
		// the job's EMF lines join the handlers'
		expect(lines.some((l) => l.includes('"scan_type":"trigger"') && l.includes('"result":"fail"'))).toBe(true);
	}, 150_000);

	it("a base model matching the signed registry is PROMOTABLE; one with a pickle added is QUARANTINED", async () => {
		const upload = async (prefix: string, extra: Record<string, Buffer> = {}) => {
			for (const n of readdirSync(join(EXAMPLES, "base-model"))) {
				await put("base-models", `${prefix}${n}`, readFileSync(join(EXAMPLES, "base-model", n)));
			}
			for (const [n, b] of Object.entries(extra)) await put("base-models", `${prefix}${n}`, b);
			await put("base-models", `${prefix}${BASE_MODEL_MARKER}`, '{"id":"example-org/tiny-base@v1.0"}');
			return pipeline.waitForVerdict(`${prefix}${BASE_MODEL_MARKER}`, 60_000);
		};
		expect(await upload("bm/ok/")).toMatchObject({ status: "PROMOTABLE", reasons: [] });
		expect(await status("base-models", "bm/ok/model.safetensors")).toBe("PROMOTABLE");
		const bad = await upload("bm/pickle/", {
			"pytorch_model.bin": readFileSync(join(EXAMPLES, "checkpoint-pickle/pytorch_model.bin")),
		});
		expect(bad.status).toBe("QUARANTINED");
		expect(await status("base-models", "bm/pickle/model.safetensors")).toBe("QUARANTINED");
	});

	it("a dataset marker that is not the known JSON: QUARANTINED with the reason", async () => {
		await put("datasets", "bad/v1/train.jsonl", '{"prompt":"a","completion":"b"}\n');
		await put("datasets", `bad/v1/${DATASET_MARKER}`, "not json");
		const v = await pipeline.waitForVerdict(`bad/v1/${DATASET_MARKER}`, 60_000);
		expect(v.status).toBe("QUARANTINED");
		expect(v.reasons[0]).toMatch(/^dataset: DATA_INVALID: .*is not JSON/);
		expect(await status("datasets", "bad/v1/train.jsonl")).toBe("QUARANTINED");
	});
});

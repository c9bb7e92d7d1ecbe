/**
 * Fault injection on the local pipeline: whatever fails, the scan ends
 * QUARANTINED (never PROMOTABLE) with a reason naming the failed state. The
 * faults are real where they can be (the batch entry exiting non-zero on missing
 * reference data, a job killed at its timeout) and injected handlers otherwise
 * (a handler that throws, tag writes that keep failing).
 */

import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DeleteObjectCommand, GetObjectCommand, GetObjectTaggingCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildManifest } from "../../lib/core/integrity/manifest";
import type { ScanState } from "../../lib/core/pipeline/types";
import { BatchJobFailed, runBatchJob } from "../../lib/local/batch-runner";
import { digitsReferenceData } from "../../lib/local/demo";
import { createDemoSigner } from "../../lib/local/demo-signer";
import { LOCAL_CREDENTIALS, LOCAL_REGION, type ObjectCreatedEvent } from "../../lib/local/object-server";
import type { LocalPipeline } from "../../lib/local/pipeline";
import { LAMBDA_HANDLERS } from "../../lib/local/runner";
import { REPO } from "../helpers/cli";
import { startQuietPipeline } from "../helpers/pipeline";

const EXAMPLES = join(REPO, "examples");
const BUCKET = "checkpoints";
const signer = createDemoSigner();
let markAttempts = 0;
let recordAttempts = 0;
const overwritten = new Set<string>();

/** Faults chosen by the artefact's prefix, so each test breaks only its own scan. */
const faulty =
	(step: "mark" | "manifest", fault: string, onCall?: () => void) =>
	async (input: unknown): Promise<unknown> => {
		if ((input as ScanState).artefact.includes(fault)) {
			onCall?.();
			const e = new Error(`injected fault in ${step}`);
			e.name = "ftguard.IO_ERROR";
			throw e;
		}
		return LAMBDA_HANDLERS[step](input);
	};

let pipeline: LocalPipeline;
beforeAll(async () => {
	pipeline = await startQuietPipeline({
		policy: {
			signers: [{ kind: "public-key", pem: signer.publicKeyPem }],
			// the reference data is never uploaded: the job cannot read it and exits 2
			referenceData: digitsReferenceData("s3://trusted/missing/"),
			backdoor: {
				detectors: ["nc"],
				neuralCleanse: { steps: 5, restarts: 1, rule: "ftguard" },
				// the example checkpoint (safetensors, no ONNX export) could not be promoted otherwise
				waivers: [{ family: "TinyClassifier", reason: "test: the example checkpoint has no ONNX export" }],
			},
		},
		extraBuckets: ["trusted"],
		lambdaOverrides: {
			// tag writes of the verdict keep failing; the forced quarantine (RecordQuarantine, state.error set) goes through
			record: async (input) => {
				const state = input as ScanState;
				if (state.artefact.includes("fault-record") && !state.error) {
					recordAttempts += 1;
					const e = new Error("injected: PutObjectTagging failed");
					e.name = "ftguard.IO_ERROR";
					throw e;
				}
				return LAMBDA_HANDLERS.record(input);
			},
			// the store fails a read: the weights are gone when manifest reads them (NoSuchKey from the server)
			manifest: async (input) => {
				const state = input as ScanState;
				if (state.artefact.includes("read-fail")) {
					await pipeline.server.client.send(
						new DeleteObjectCommand({ Bucket: BUCKET, Key: `${state.artefact}model.safetensors` }),
					);
				}
				return faulty("manifest", "fault-manifest")(input);
			},
			// between the scan's reads and its verdict, the weights are replaced (as an uploader racing the scan would)
			decide: async (input) => {
				const state = input as ScanState;
				if (state.artefact.includes("overwrite") && !overwritten.has(state.artefact)) {
					overwritten.add(state.artefact);
					await put(`${state.artefact}model.safetensors`, readFileSync(join(EXAMPLES, "base-model/model.safetensors")));
				}
				return LAMBDA_HANDLERS.decide(input);
			},
			mark: faulty("mark", "fault-mark", () => {
				markAttempts += 1;
			}),
		},
		retryIntervalOverrides: Object.fromEntries(
			["Mark", "Manifest", "Signature", "Files", "Decide", "Record", "RecordQuarantine"].map((s) => [s, 0]),
		),
	});
}, 60_000);
afterAll(async () => pipeline?.close());

async function put(key: string, body: Uint8Array | string): Promise<void> {
	await pipeline.server.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body }));
}

/** The clean example checkpoint, signed by the trusted test signer, marker last. */
async function uploadSigned(prefix: string): Promise<string> {
	const dir = join(EXAMPLES, "checkpoint");
	for (const n of readdirSync(dir).filter((n) => n !== "model.sig"))
		await put(`${prefix}${n}`, readFileSync(join(dir, n)));
	await put(`${prefix}model.sig`, signer.signManifest(await buildManifest(dir, { ignorePaths: ["model.sig"] })));
	return `${prefix}model.sig`;
}

async function statusOf(key: string): Promise<string | undefined> {
	const r = await pipeline.server.client.send(new GetObjectTaggingCommand({ Bucket: BUCKET, Key: key }));
	return r.TagSet?.find((t) => t.Key === "ftguard:status")?.Value;
}

describe("the local pipeline under faults", () => {
	it("promotes the same checkpoint when nothing fails (the faults below are what change the verdict)", async () => {
		const v = await pipeline.waitForVerdict(await uploadSigned("jobs/ok/ckpt/"), 60_000);
		expect(v.status).toBe("PROMOTABLE");
	}, 60_000);

	it("quarantines with error: manifest when the manifest handler throws", async () => {
		const prefix = "jobs/fault-manifest/ckpt/";
		const v = await pipeline.waitForVerdict(await uploadSigned(prefix), 60_000);
		expect(v.status).toBe("QUARANTINED");
		expect(v.reasons).toContain("error: manifest");
		expect(v.error?.state).toBe("manifest");
		expect(v.error?.cause).toContain("injected fault in manifest");
		expect(await statusOf(`${prefix}model.safetensors`)).toBe("QUARANTINED");
	}, 60_000);

	it("quarantines with error: manifest when the object store fails a read", async () => {
		const prefix = "jobs/read-fail/ckpt/";
		const v = await pipeline.waitForVerdict(await uploadSigned(prefix), 60_000);
		expect(v.status).toBe("QUARANTINED");
		expect(v.reasons).toContain("error: manifest");
		expect(await statusOf(`${prefix}config.json`)).toBe("QUARANTINED");
	}, 60_000);

	it("retries failing tag writes (mark), then quarantines with error: mark", async () => {
		const prefix = "jobs/fault-mark/ckpt/";
		const v = await pipeline.waitForVerdict(await uploadSigned(prefix), 60_000);
		expect(markAttempts).toBeGreaterThan(1);
		expect(v.status).toBe("QUARANTINED");
		expect(v.reasons).toContain("error: mark");
		expect(await statusOf(`${prefix}model.sig`)).toBe("QUARANTINED");
		expect(await statusOf(`${prefix}model.safetensors`)).not.toBe("PROMOTABLE");
	}, 60_000);

	it("retries failing verdict tag writes (record), then forces, records and reports QUARANTINED", async () => {
		const prefix = "jobs/fault-record/ckpt/";
		const v = await pipeline.waitForVerdict(await uploadSigned(prefix), 60_000);
		expect(recordAttempts).toBeGreaterThan(1);
		expect(v.status).toBe("QUARANTINED");
		expect(v.execution).toBe("Ftguard.QuarantinedAfterError");
		expect(v.reasons[0]).toBe("error: record");
		expect(await statusOf(`${prefix}model.safetensors`)).toBe("QUARANTINED");
	}, 60_000);

	it("quarantines with error: backdoor <model> when the batch job exits non-zero (reference data unreadable: exit 2)", async () => {
		const file = join(REPO, "test/fixtures/backdoor/digits8/mlp-clean-s1.onnx");
		const key = "jobs/batch-exit/model.onnx";
		await put(key, readFileSync(file));
		await put(`${key}.sigstore.json`, signer.signManifest(await buildManifest(file)));
		const v = await pipeline.waitForVerdict(`${key}.sigstore.json`, 120_000);
		expect(v.status).toBe("QUARANTINED");
		expect(v.reasons).toContain(`error: backdoor ${key}`);
		expect(v.error).toBeUndefined();
		expect(v.backdoor?.[0]?.error?.state).toBe("backdoor");
		expect(v.backdoor?.[0]?.error?.cause).toContain("exit 2");
		expect(await statusOf(key)).toBe("QUARANTINED");
	}, 120_000);

	it("starts one execution for a duplicated event, and gives one verdict", async () => {
		// the marker's event exactly as the server delivered it, to be delivered again
		const delivered: ObjectCreatedEvent[] = [];
		const off = pipeline.server.onObjectCreated((e) => delivered.push(e));
		const marker = await uploadSigned("jobs/dup/ckpt/");
		off();
		const event = delivered.find((e) => e.detail.object.key === marker);
		if (!event) throw new Error("no event for the marker");
		const first = await pipeline.waitForVerdict(marker, 60_000);
		const before = { executions: pipeline.executionCount, duplicates: pipeline.duplicates };
		const again = await Promise.all([pipeline.handleEvent(event), pipeline.handleEvent(event)]);
		expect(again).toEqual([
			{ started: false, scanId: first.scanId, reason: "duplicate" },
			{ started: false, scanId: first.scanId, reason: "duplicate" },
		]);
		expect(pipeline.executionCount).toBe(before.executions);
		expect(pipeline.duplicates).toBe(before.duplicates + 2);
		expect(pipeline.allVerdicts().filter((v) => v.scanId === first.scanId)).toHaveLength(1);
		// the same marker bytes uploaded again (same ETag, new sequencer) are a new upload, not a redelivery
		const got = await pipeline.server.client.send(new GetObjectCommand({ Bucket: BUCKET, Key: marker }));
		await put(marker, (await got.Body?.transformToByteArray()) ?? new Uint8Array());
		const second = await pipeline.waitForVerdict(marker, 60_000, [first.scanId]);
		expect(second.scanId).not.toBe(first.scanId);
		expect(pipeline.executionCount).toBe(before.executions + 1);
		expect(pipeline.duplicates).toBe(before.duplicates + 2);
	}, 60_000);
});

describe("when an object is overwritten while its scan runs", () => {
	it("gives it no verdict from that scan; the new content, committed by a new marker, is scanned on its own", async () => {
		const prefix = "jobs/overwrite/ckpt/";
		const first = await pipeline.waitForVerdict(await uploadSigned(prefix), 60_000);
		expect(first.status).toBe("QUARANTINED");
		expect(first.reasons).toContain(`changed during scan: ${prefix}model.safetensors`);
		// no verdict on the new content: a new object is untagged (unreadable in AWS), as S3 does
		expect(await statusOf(`${prefix}model.safetensors`)).toBeUndefined();
		expect(await statusOf(`${prefix}config.json`)).toBe("QUARANTINED");

		// the uploader commits the new content: a new signature over it, uploaded last
		const dir = mkdtempSync(join(tmpdir(), "ftguard-new-ckpt-"));
		for (const n of ["config.json", "tokenizer_config.json"]) {
			writeFileSync(join(dir, n), readFileSync(join(EXAMPLES, "checkpoint", n)));
		}
		writeFileSync(join(dir, "model.safetensors"), readFileSync(join(EXAMPLES, "base-model/model.safetensors")));
		const marker = `${prefix}model.sig`;
		await put(marker, signer.signManifest(await buildManifest(dir, { ignorePaths: ["model.sig"] })));
		const second = await pipeline.waitForVerdict(marker, 60_000, [first.scanId]);
		expect(second.scanId).not.toBe(first.scanId);
		expect(second.status).toBe("PROMOTABLE");
		expect(await statusOf(`${prefix}model.safetensors`)).toBe("PROMOTABLE");
	}, 60_000);
});

describe("the local batch runner", () => {
	const options = {
		root: REPO,
		s3Endpoint: "http://127.0.0.1:9",
		issueCredentials: async () => ({ ...LOCAL_CREDENTIALS, revoke: async () => {} }),
		region: LOCAL_REGION,
	};
	const script = (body: string): string => {
		const file = join(mkdtempSync(join(tmpdir(), "ftguard-job-")), "entry.mjs");
		writeFileSync(file, body);
		return file;
	};

	it("fails the task (States.TaskFailed) when the job exceeds its timeout, and kills it", async () => {
		const entry = script("setTimeout(() => {}, 60_000);\n");
		const started = Date.now();
		const err = await runBatchJob({}, { ...options, entry, timeoutMs: 500 }).catch((e: Error) => e);
		expect(Date.now() - started).toBeLessThan(10_000);
		expect(err).toBeInstanceOf(BatchJobFailed);
		expect((err as Error).name).toBe("States.TaskFailed");
		expect(JSON.parse((err as Error).message)).toMatchObject({
			Status: "FAILED",
			StatusReason: expect.stringMatching(/exceeded timeout/),
		});
	});

	it("passes the task's ContainerOverrides environment and the local endpoint, and succeeds on exit 0", async () => {
		const entry = script(
			"if (process.env.FTGUARD_MODE !== 'scan' || !process.env.AWS_ENDPOINT_URL_S3 || process.env.FTGUARD_POLICY) process.exit(3);\n",
		);
		// the pipeline process's own FTGUARD_* (set by LocalPipeline.start) do not leak into the job
		expect(process.env.FTGUARD_POLICY).toBeTruthy();
		const r = await runBatchJob(
			{ JobName: "j", ContainerOverrides: { Environment: [{ Name: "FTGUARD_MODE", Value: "scan" }] } },
			{ ...options, entry },
		);
		expect(r).toMatchObject({ JobName: "j", Status: "SUCCEEDED", Container: { ExitCode: 0 } });
	});
});

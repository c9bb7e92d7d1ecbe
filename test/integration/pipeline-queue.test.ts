/**
 * A burst meets the GPU compute environment: more backdoor scans than it runs at once. Here the stack's compute
 * environment has maxvCpus 16 and the job 8 vCPUs, so the local batch runner runs 2 jobs at once (read from the
 * synthesized stack, as Batch places them) and the others wait, as RUNNABLE jobs do. Every job takes ~1 s; 10 are
 * committed together, so the last waits for 4 rounds ahead of it.
 *
 * The definition runs at 1/60 of its deployed durations (a minute in a second): backdoorTimeout 3 min (3 s here),
 * execution timeout 2 h (120 s), the job's attempt timeout 3 min. Step Functions counts a .sync Task's timeout from
 * the state's entry, queue time included: with the BackdoorScan state timed out by backdoorTimeout (the old rule),
 * the scans queued past 3 s were caught as States.Timeout and QUARANTINED — good checkpoints. With the state's
 * timeout bounded by the scan's deadline (the execution timeout less the other steps: 61 s here), every scan waits
 * its turn and gets its own verdict.
 */

import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { Duration } from "aws-cdk-lib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getTags } from "../../lib/aws/tagging";
import { buildManifest } from "../../lib/core/integrity/manifest";
import { STATUS_TAG } from "../../lib/core/pipeline/names";
import { StateName } from "../../lib/infra/state-machine";
import { statesOf } from "../../lib/local/definition";
import { digitsReferenceData } from "../../lib/local/demo";
import { createDemoSigner } from "../../lib/local/demo-signer";
import type { LocalPipeline } from "../../lib/local/pipeline";
import { REPO } from "../helpers/cli";
import { startQuietPipeline } from "../helpers/pipeline";

const BUCKET = "checkpoints";
const MODEL = join(REPO, "test/fixtures/backdoor/digits8/mlp-clean-s1.onnx");
const N = 10;
const SCALE = 1 / 60;
const signer = createDemoSigner();
const work = mkdtempSync(join(tmpdir(), "ftguard-queue-"));
/** a clean scan that takes a second */
const entry = join(work, "entry.mjs");
writeFileSync(entry, "await new Promise((r) => setTimeout(r, 1000));\n");

let pipeline: LocalPipeline;
beforeAll(async () => {
	pipeline = await startQuietPipeline({
		policy: {
			signers: [{ kind: "public-key", pem: signer.publicKeyPem }],
			referenceData: digitsReferenceData("s3://trusted/digits8/"),
			backdoor: { detectors: ["nc"], neuralCleanse: { rule: "ftguard" } },
		},
		scanPipeline: {
			maxvCpus: 16,
			backdoorJob: { vcpus: 8, attemptTimeout: Duration.minutes(3), attempts: 1 },
			backdoorTimeout: Duration.minutes(3),
			executionTimeout: Duration.hours(2),
		},
		timeScale: SCALE,
		// the job definition's attempt timeout, at the same scale
		batchTimeoutMs: 3_000,
		batchEntry: entry,
	});
}, 60_000);
afterAll(async () => pipeline?.close());

describe("backdoor scans queued for the GPU compute environment", () => {
	it("wait their turn within the scan's deadline: every verdict correct, nothing SCANNING, never more jobs than slots", async () => {
		const { batch, asl } = pipeline.definition;
		expect(batch).toMatchObject({ maxvCpus: 16, jobVcpus: 8, slots: 2, attemptTimeoutSeconds: 180 });
		// the state's timeout is what the deadline leaves after the other steps, not backdoorTimeout
		const stateTimeout = statesOf(asl)[StateName.BACKDOOR_SCAN]?.TimeoutSeconds as number;
		expect(stateTimeout).toBe(2 * 3600 - 59 * 60);
		expect(stateTimeout * SCALE).toBeGreaterThan(N / batch.slots + 10);

		const s3 = pipeline.server.client;
		const body = readFileSync(MODEL);
		const signature = signer.signManifest(await buildManifest(MODEL));
		const keys = Array.from({ length: N }, (_, i) => `queue/job-${String(i).padStart(2, "0")}/model.onnx`);
		for (const key of keys) await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body }));
		const t0 = Date.now();
		await Promise.all(
			keys.map((key) =>
				s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: `${key}.sigstore.json`, Body: signature })),
			),
		);
		const verdicts = await Promise.all(keys.map((key) => pipeline.waitForVerdict(`${key}.sigstore.json`, 90_000)));
		const lastS = (Date.now() - t0) / 1000;
		const wrong = verdicts
			.filter((v) => v.status !== "PROMOTABLE")
			.map((v) => `${v.markerKey}: ${v.status} ${v.reasons}`);
		expect(wrong).toEqual([]);
		const stuck: string[] = [];
		for (const key of keys) {
			for (const k of [key, `${key}.sigstore.json`]) {
				const status = (await getTags(s3, { bucket: BUCKET, key: k }))[STATUS_TAG];
				if (status !== "PROMOTABLE") stuck.push(`${k}: ${status ?? "untagged"}`);
			}
		}
		expect(stuck).toEqual([]);
		// the limit held and was reached; the burst outlasted the old fixed budget (backdoorTimeout, 3 s here)
		expect(pipeline.batchSlots.peak).toBe(2);
		expect(pipeline.batchSlots.queued).toBe(0);
		expect(lastS).toBeGreaterThan(180 * SCALE);
	}, 120_000);
});
